package sstable

import (
	"github.com/kvs-lab/kvs"
	"github.com/kvs-lab/kvs/internal/base"
)

// This file holds the inspection API that `kvs inspect` and tests use to
// show a table's structure: its blocks, index, filter and properties.

// BlockInfo describes one block of a table.
type BlockInfo struct {
	// Kind is "data", "filter", "index", "properties" or "footer".
	Kind string
	// Offset and Length locate the stored block (compressed, if it is),
	// trailer excluded; for the footer, Length is 64.
	Offset, Length uint64
	// Compression is "none" or "snappy" ("" for the footer).
	Compression string
	// DecodedLength is the block's size after decompression.
	DecodedLength int
	// Entries counts a data, index or properties block's entries.
	Entries int
	// Separator is, for a data block, the index key that names it: >=
	// every key in the block, < every key of the next.
	Separator base.InternalKey
}

// Layout is a table's structure, block by block, in file order.
type Layout struct {
	Blocks []BlockInfo
	// FilterProbes is the bloom filter's k (0: no filter), FilterBits its
	// size in bits.
	FilterProbes int
	FilterBits   uint64
}

// Layout reads every block of the table (bypassing the cache), verifies
// it and describes it. It returns the first error met, a
// *kvs.CorruptionError for a damaged block.
func (r *Reader) Layout() (Layout, error) {
	var l Layout
	ftBuf := make([]byte, footerLen)
	if err := r.readAt(ftBuf, r.dataEnd); err != nil {
		return Layout{}, err
	}
	ft, reason := decodeFooter(ftBuf)
	if reason != "" {
		return Layout{}, kvs.Corruptf(r.name, r.dataEnd, "sstable: footer: %s", reason)
	}
	describe := func(kind string, h blockHandle, internal bool) (BlockInfo, error) {
		b, err := r.readBlockNoCache(h, kind)
		if err != nil {
			return BlockInfo{}, err
		}
		var typ [1]byte
		if err := r.readAt(typ[:], int64(h.Offset+h.Length)); err != nil {
			return BlockInfo{}, err
		}
		info := BlockInfo{Kind: kind, Offset: h.Offset, Length: h.Length, DecodedLength: len(b), Compression: "none"}
		if typ[0] == blockTypeSnappy {
			info.Compression = "snappy"
		}
		if kind != "filter" {
			var it blockIter
			it.init(b, r.name, int64(h.Offset), internal)
			for ok := it.First(); ok; ok = it.Next() {
				info.Entries++
			}
			if it.err != nil {
				return BlockInfo{}, it.err
			}
		}
		return info, nil
	}

	var index blockIter
	index.init(r.index, r.name, r.indexOff, true)
	for ok := index.First(); ok; ok = index.Next() {
		h, n, ok := decodeHandle(index.val)
		if !ok || n != len(index.val) {
			return Layout{}, kvs.Corruptf(r.name, r.indexOff, "sstable: index: bad block handle")
		}
		info, err := describe("data", h, true)
		if err != nil {
			return Layout{}, err
		}
		info.Separator = index.ikey.Clone()
		l.Blocks = append(l.Blocks, info)
	}
	if index.err != nil {
		return Layout{}, index.err
	}
	for _, b := range []struct {
		kind string
		h    blockHandle
	}{{"filter", ft.filter}, {"index", ft.index}, {"properties", ft.properties}} {
		if b.kind == "filter" && b.h.Length == 0 {
			continue
		}
		info, err := describe(b.kind, b.h, b.kind == "index")
		if err != nil {
			return Layout{}, err
		}
		l.Blocks = append(l.Blocks, info)
	}
	l.Blocks = append(l.Blocks, BlockInfo{Kind: "footer", Offset: uint64(r.dataEnd), Length: footerLen})
	if r.hasFilt {
		l.FilterProbes, l.FilterBits = r.filter.k, uint64(r.filter.nBits)
	}
	return l, nil
}
