package sstable

import (
	"encoding/binary"
	"fmt"

	"github.com/kvs-lab/kvs/internal/base"
)

// Properties describe a table. The writer computes them and stores them in
// the properties block; Reader.Properties returns them. Key slices in a
// Properties returned by a Reader or Writer are the caller's.
type Properties struct {
	// Smallest and Largest are the first and last internal keys (zero when
	// the table is empty).
	Smallest, Largest base.InternalKey
	// NumEntries counts all entries; NumDeletions those of KindDelete.
	NumEntries, NumDeletions uint64
	// RawKeySize and RawValueSize sum the encoded internal key and value
	// lengths before prefix and block compression.
	RawKeySize, RawValueSize uint64
	// NumDataBlocks counts data blocks.
	NumDataBlocks uint64
	// DataSize, IndexSize and FilterSize are the bytes the data blocks,
	// the index block and the filter block take in the file, trailers
	// included.
	DataSize, IndexSize, FilterSize uint64
	// FilterBitsPerKey is the filter's bits per key (0: no filter).
	FilterBitsPerKey uint64
}

// String formats p on one line, for tools and tests.
func (p Properties) String() string {
	return fmt.Sprintf("entries=%d deletions=%d smallest=%s largest=%s raw-key=%d raw-value=%d data-blocks=%d data=%d index=%d filter=%d bits-per-key=%d",
		p.NumEntries, p.NumDeletions, p.Smallest, p.Largest, p.RawKeySize, p.RawValueSize,
		p.NumDataBlocks, p.DataSize, p.IndexSize, p.FilterSize, p.FilterBitsPerKey)
}

// Property names in the properties block, in the sorted order the block
// needs. Names are part of the format: add, never reuse.
const (
	propDataBlocks   = "kvs.data.blocks"
	propDataSize     = "kvs.data.size"
	propFilterBits   = "kvs.filter.bits-per-key"
	propFilterSize   = "kvs.filter.size"
	propIndexSize    = "kvs.index.size"
	propLargest      = "kvs.key.largest"
	propSmallest     = "kvs.key.smallest"
	propNumDeletions = "kvs.num.deletions"
	propNumEntries   = "kvs.num.entries"
	propRawKeySize   = "kvs.raw.key.size"
	propRawValueSize = "kvs.raw.value.size"
)

// encode returns the properties block: a block with restart interval 1
// whose keys are property names and whose values are uvarints, or encoded
// internal keys for the two key properties (absent when the table is
// empty). Names are added in sorted order, as a block requires.
func (p Properties) encode() []byte {
	w := blockWriter{restartInterval: 1}
	num := func(name string, v uint64) { w.add([]byte(name), binary.AppendUvarint(nil, v)) }
	num(propDataBlocks, p.NumDataBlocks)
	num(propDataSize, p.DataSize)
	num(propFilterBits, p.FilterBitsPerKey)
	num(propFilterSize, p.FilterSize)
	num(propIndexSize, p.IndexSize)
	if p.NumEntries > 0 {
		w.add([]byte(propLargest), p.Largest.Append(nil))
		w.add([]byte(propSmallest), p.Smallest.Append(nil))
	}
	num(propNumDeletions, p.NumDeletions)
	num(propNumEntries, p.NumEntries)
	num(propRawKeySize, p.RawKeySize)
	num(propRawValueSize, p.RawValueSize)
	return w.finish()
}

// decodeProperties parses the properties block it has been initialised
// with. Unknown names are skipped,
// so later versions may add properties. The reason is empty on success.
func decodeProperties(it *blockIter) (Properties, string) {
	var p Properties
	for ok := it.First(); ok; ok = it.Next() {
		name, v := string(it.key), it.val
		var dst *uint64
		switch name {
		case propDataBlocks:
			dst = &p.NumDataBlocks
		case propDataSize:
			dst = &p.DataSize
		case propFilterBits:
			dst = &p.FilterBitsPerKey
		case propFilterSize:
			dst = &p.FilterSize
		case propIndexSize:
			dst = &p.IndexSize
		case propNumDeletions:
			dst = &p.NumDeletions
		case propNumEntries:
			dst = &p.NumEntries
		case propRawKeySize:
			dst = &p.RawKeySize
		case propRawValueSize:
			dst = &p.RawValueSize
		case propSmallest, propLargest:
			k, ok := base.DecodeInternalKey(v)
			if !ok {
				return Properties{}, "bad key in property " + name
			}
			k = k.Clone()
			if name == propSmallest {
				p.Smallest = k
			} else {
				p.Largest = k
			}
			continue
		default:
			continue
		}
		x, n := binary.Uvarint(v)
		if n <= 0 || n != len(v) {
			return Properties{}, "bad number in property " + name
		}
		*dst = x
	}
	return p, ""
}
