package sstable

import (
	"bufio"
	"bytes"
	"encoding/binary"
	"errors"
	"fmt"

	"github.com/golang/snappy"
	"github.com/kvs-lab/kvs/internal/base"
	"github.com/kvs-lab/kvs/internal/vfs"
)

// Compression selects how the writer compresses blocks.
type Compression int

// Compression choices.
const (
	// DefaultCompression, the zero value, means SnappyCompression.
	DefaultCompression Compression = iota
	// NoCompression stores every block as is.
	NoCompression
	// SnappyCompression compresses each block with snappy, keeping the
	// result only when it saves at least 1/8 of the block.
	SnappyCompression
)

// maxBlockSize bounds WriterOptions.BlockSize, and maxEntrySize one
// entry, so that a block never outgrows the u32 offsets of its restart
// array.
const (
	maxBlockSize = 1 << 30
	maxEntrySize = 1 << 31
)

// WriterOptions configure a Writer. The zero value gives the defaults.
type WriterOptions struct {
	// BlockSize is the uncompressed size at which a data block is cut
	// (default 4096 bytes, at most 1 GiB). A block holds at least one
	// entry, so one large entry makes a larger block.
	BlockSize int
	// BlockRestartInterval is the number of entries between restart points
	// in data blocks (default 16). Index blocks always use 1.
	BlockRestartInterval int
	// Compression picks the block compression (default snappy). A block is
	// stored compressed only when that saves at least 1/8 of its size.
	Compression Compression
	// FilterBitsPerKey sizes the bloom filter (default
	// DefaultFilterBitsPerKey); negative writes no filter.
	FilterBitsPerKey int
}

// EnsureDefaults fills in zero fields with their defaults.
func (o *WriterOptions) EnsureDefaults() {
	if o.BlockSize <= 0 {
		o.BlockSize = 4096
	}
	o.BlockSize = min(o.BlockSize, maxBlockSize)
	if o.BlockRestartInterval <= 0 {
		o.BlockRestartInterval = 16
	}
	if o.Compression == DefaultCompression {
		o.Compression = SnappyCompression
	}
	if o.FilterBitsPerKey == 0 {
		o.FilterBitsPerKey = DefaultFilterBitsPerKey
	}
}

// writeBufferSize is how many bytes of finished blocks the Writer gathers
// before it writes them to the file: one write per block would cost a
// system call per 4 KiB.
const writeBufferSize = 256 << 10

// errWriterClosed is returned by calls after Close.
var errWriterClosed = errors.New("kvs/sstable: writer is closed")

// Writer writes one table to a file. Entries must be added in strictly
// increasing internal key order (base.InternalCompare). A Writer is not
// safe for concurrent use. I/O errors are sticky: after a write fails,
// every call returns that error (Close still closes the file).
type Writer struct {
	f    vfs.File
	bw   *bufio.Writer // batches blocks into large writes
	opts WriterOptions

	offset     uint64 // bytes written so far
	data       blockWriter
	index      blockWriter
	lastKey    []byte // encoded internal key of the last Add
	hashes     []uint64
	lastUser   []byte // user key of the last filter hash
	hasLast    bool
	pending    bool        // a finished data block waits for its index entry
	pendingBH  blockHandle // its handle
	compressed []byte
	scratch    []byte
	props      Properties
	err        error
	closed     bool
}

// NewWriter returns a Writer that writes a table to f from its current
// offset (normally 0). The Writer owns f: Close syncs and closes it.
func NewWriter(f vfs.File, o WriterOptions) *Writer {
	o.EnsureDefaults()
	return &Writer{
		f:     f,
		bw:    bufio.NewWriterSize(f, writeBufferSize),
		opts:  o,
		data:  blockWriter{restartInterval: o.BlockRestartInterval},
		index: blockWriter{restartInterval: 1},
	}
}

// Add appends an entry. key must sort strictly after the previous key and
// have a known kind, and key and value together must be under 2 GiB;
// otherwise Add returns an error and the table is unchanged. The caller
// may reuse key and value after Add returns.
func (w *Writer) Add(key base.InternalKey, value []byte) error {
	if w.closed {
		return errWriterClosed
	}
	if w.err != nil {
		return w.err
	}
	if k := key.Kind(); k != base.KindSet && k != base.KindDelete {
		return fmt.Errorf("kvs/sstable: add %s: unknown kind", key)
	}
	if uint64(key.Size())+uint64(len(value)) >= maxEntrySize {
		return fmt.Errorf("kvs/sstable: add %s: entry of %d bytes is too large", key, key.Size()+len(value))
	}
	w.scratch = key.Append(w.scratch[:0])
	if w.props.NumEntries > 0 && base.CompareEncoded(w.scratch, w.lastKey) <= 0 {
		prev, _ := base.DecodeInternalKey(w.lastKey)
		return fmt.Errorf("kvs/sstable: add %s: keys out of order (previous %s)", key, prev)
	}
	if w.pending {
		// The block before this key is finished: its index entry can now
		// use a short separator between its last key and this one.
		w.addIndexEntry(w.lastKey, w.scratch)
	}
	if w.props.NumEntries == 0 {
		w.props.Smallest = key.Clone()
	}
	w.lastKey = append(w.lastKey[:0], w.scratch...)

	if w.opts.FilterBitsPerKey > 0 && (!w.hasLast || !bytes.Equal(key.UserKey, w.lastUser)) {
		w.hashes = append(w.hashes, filterHash(key.UserKey))
		w.lastUser = append(w.lastUser[:0], key.UserKey...)
		w.hasLast = true
	}
	w.props.NumEntries++
	if key.Kind() == base.KindDelete {
		w.props.NumDeletions++
	}
	w.props.RawKeySize += uint64(len(w.scratch))
	w.props.RawValueSize += uint64(len(value))

	w.data.add(w.scratch, value)
	if w.data.estimatedSize() >= w.opts.BlockSize {
		w.flushData()
	}
	return w.err
}

// flushData writes the current data block and leaves its index entry
// pending until the next key (or Close) is known.
func (w *Writer) flushData() {
	if w.data.count == 0 {
		return
	}
	h, n := w.writeBlock(w.data.finish())
	w.data.reset()
	w.props.NumDataBlocks++
	w.props.DataSize += n
	w.pending, w.pendingBH = true, h
}

// addIndexEntry adds the pending block's index entry with a separator key
// s such that last <= s < next (next is nil after the last block).
func (w *Writer) addIndexEntry(last, next []byte) {
	sep := last
	if next != nil {
		sep = separator(last, next)
	}
	var hb [maxHandleVarintLen]byte
	w.index.add(sep, appendHandle(hb[:0], w.pendingBH))
	w.pending = false
}

// separator returns an encoded internal key s with a <= s < b, shorter
// than a when possible: the shortest user key between a's and b's user
// keys with the largest trailer, which sorts before every real version of
// that user key.
func separator(a, b []byte) []byte {
	ua, ub := a[:len(a)-base.TrailerLen], b[:len(b)-base.TrailerLen]
	n := 0
	for n < len(ua) && n < len(ub) && ua[n] == ub[n] {
		n++
	}
	if n < len(ua) && n < len(ub) && ua[n] < 0xff && ua[n]+1 < ub[n] {
		sep := append(bytes.Clone(ua[:n]), ua[n]+1)
		return base.MakeSearchKey(sep).Append(nil)
	}
	return bytes.Clone(a)
}

// writeBlock compresses (when it pays), writes block with its trailer and
// returns its handle and the bytes written.
func (w *Writer) writeBlock(block []byte) (blockHandle, uint64) {
	typ, stored := blockTypeNone, block
	if w.opts.Compression == SnappyCompression {
		w.compressed = snappy.Encode(w.compressed[:cap(w.compressed)], block)
		if len(w.compressed) <= len(block)-len(block)/8 {
			typ, stored = blockTypeSnappy, w.compressed
		}
	}
	var trailer [blockTrailerLen]byte
	trailer[0] = typ
	binary.LittleEndian.PutUint32(trailer[1:], blockChecksum(stored, typ))
	h := blockHandle{Offset: w.offset, Length: uint64(len(stored))}
	w.write(stored)
	w.write(trailer[:])
	return h, uint64(len(stored) + blockTrailerLen)
}

func (w *Writer) write(p []byte) {
	if w.err != nil {
		return
	}
	n, err := w.bw.Write(p)
	w.offset += uint64(n)
	if err != nil {
		w.err = fmt.Errorf("kvs/sstable: write: %w", err)
	}
}

// EstimatedSize returns the table's size if it were closed now, not
// counting the index, filter and properties blocks.
func (w *Writer) EstimatedSize() uint64 {
	return w.offset + uint64(w.data.estimatedSize())
}

// Close writes the remaining data block, the filter, index and properties
// blocks and the footer, syncs and closes the file, and returns the
// table's properties. Calling Close again returns an error.
func (w *Writer) Close() (Properties, error) {
	if w.closed {
		return Properties{}, errWriterClosed
	}
	w.closed = true
	if w.err == nil {
		w.finishTable()
	}
	if w.err == nil {
		if err := w.bw.Flush(); err != nil {
			w.err = fmt.Errorf("kvs/sstable: write: %w", err)
		}
	}
	if w.err == nil {
		if err := w.f.Sync(); err != nil {
			w.err = fmt.Errorf("kvs/sstable: sync: %w", err)
		}
	}
	if err := w.f.Close(); err != nil && w.err == nil {
		w.err = fmt.Errorf("kvs/sstable: close: %w", err)
	}
	if w.err != nil {
		return Properties{}, w.err
	}
	return w.props, nil
}

func (w *Writer) finishTable() {
	w.flushData()
	if w.pending {
		w.addIndexEntry(w.lastKey, nil)
	}
	if w.props.NumEntries > 0 {
		k, _ := base.DecodeInternalKey(w.lastKey)
		w.props.Largest = k.Clone()
	}
	var ft footer
	ft.version = FormatVersion
	if w.opts.FilterBitsPerKey > 0 {
		var n uint64
		ft.filter, n = w.writeBlock(buildFilter(w.hashes, w.opts.FilterBitsPerKey))
		w.props.FilterSize = n
		w.props.FilterBitsPerKey = uint64(w.opts.FilterBitsPerKey)
	}
	var n uint64
	ft.index, n = w.writeBlock(w.index.finish())
	w.props.IndexSize = n
	ft.properties, _ = w.writeBlock(w.props.encode())
	w.write(ft.encode())
}
