package sstable

import (
	"bytes"
	"encoding/binary"
	"errors"
	"fmt"
	"io"
	"sync"

	"github.com/golang/snappy"
	"github.com/kvs-lab/kvs"
	"github.com/kvs-lab/kvs/internal/base"
	"github.com/kvs-lab/kvs/internal/vfs"
)

// ReaderOptions configure a Reader. The zero value reads without a cache.
type ReaderOptions struct {
	// Cache, when set, holds data blocks shared with other Readers.
	Cache *Cache
	// CacheID names this table in Cache; 0 asks Cache.NewID for a fresh
	// one. Give a table the same id only if its contents are the same.
	// Closing a Reader leaves its blocks to age out of the cache; call
	// Cache.EvictTable(Reader.CacheID()) to drop a deleted table's blocks
	// at once.
	CacheID uint64
	// Mmap reads blocks out of a read-only memory map of the file instead
	// of with one pread(2) each: no system call per block read. A file
	// that cannot be mapped (not an operating-system file, or shorter
	// than size) is read with pread. A fault while reading the map (the
	// file cut short under it, a disk error) is an error, not a crash.
	// The map is removed by Close, so the Reader must not be used after.
	Mmap bool
}

// Reader reads one table. Open reads and verifies the footer, the index,
// filter and properties blocks and keeps them in memory; data blocks are
// read (through the cache, if any) as iterators and Get need them. A
// Reader is safe for concurrent use; its Iterators are not.
type Reader struct {
	f       vfs.File
	name    string
	size    int64
	mm      []byte // a map of the file's size bytes (ReaderOptions.Mmap), or nil
	cache   *Cache
	cacheID uint64

	// dataEnd is the offset at which the footer starts: every block
	// handle must end before it.
	dataEnd int64
	index   []byte
	// indexOff is the index block's offset, for errors.
	indexOff int64
	filter   bloomFilter
	hasFilt  bool
	props    Properties
}

// maxSnappyRatio bounds how much a snappy block may expand, so a corrupt
// length can never make the reader allocate more than the format allows:
// snappy's densest op, a 3-byte copy, produces 64 bytes.
const maxSnappyRatio = 22

// Open opens the table in f (of size bytes; name is used in errors). The
// Reader owns f: Close closes it, and so does Open when it fails. A
// damaged file gives an error matching kvs.ErrCorruption, a
// *kvs.CorruptionError naming name and the offset of the damage.
func Open(f vfs.File, name string, size int64, o ReaderOptions) (*Reader, error) {
	r, err := open(f, name, size, o)
	if err != nil {
		f.Close()
		return nil, err
	}
	return r, nil
}

func open(f vfs.File, name string, size int64, o ReaderOptions) (*Reader, error) {
	r := &Reader{f: f, name: name, size: size, cache: o.Cache, cacheID: o.CacheID}
	if r.cache != nil && r.cacheID == 0 {
		r.cacheID = r.cache.NewID()
	}
	if size < footerLen {
		return nil, kvs.Corruptf(name, 0, "sstable: file of %d bytes is shorter than a footer", size)
	}
	if o.Mmap {
		// NB: only a file that holds all size bytes is mapped: past its
		// end a map faults, where pread reports the truncation clearly.
		if st, err := f.Stat(); err == nil && st.Size() >= size {
			if m, err := vfs.Mmap(f, size); err == nil {
				r.mm = m
			}
		}
	}
	ok := false
	defer func() {
		if !ok {
			r.unmap()
		}
	}()
	r.dataEnd = size - footerLen
	buf := make([]byte, footerLen)
	if err := r.readAt(buf, r.dataEnd); err != nil {
		return nil, err
	}
	ft, reason := decodeFooter(buf)
	if reason != "" {
		return nil, kvs.Corruptf(name, r.dataEnd, "sstable: footer: %s", reason)
	}

	var err error
	if r.index, err = r.readBlockNoCache(ft.index, "index"); err != nil {
		return nil, err
	}
	r.indexOff = int64(ft.index.Offset)
	if err := r.checkIndex(); err != nil {
		return nil, err
	}
	if ft.filter.Length > 0 {
		b, err := r.readBlockNoCache(ft.filter, "filter")
		if err != nil {
			return nil, err
		}
		var reason string
		if r.filter, reason = decodeFilter(b); reason != "" {
			return nil, kvs.Corruptf(name, int64(ft.filter.Offset), "sstable: %s", reason)
		}
		r.hasFilt = true
	}
	pb, err := r.readBlockNoCache(ft.properties, "properties")
	if err != nil {
		return nil, err
	}
	var it blockIter
	it.init(pb, name, int64(ft.properties.Offset), false)
	if r.props, reason = decodeProperties(&it); reason != "" {
		return nil, kvs.Corruptf(name, int64(ft.properties.Offset), "sstable: properties: %s", reason)
	}
	if it.err != nil {
		return nil, it.err
	}
	ok = true
	return r, nil
}

// checkIndex walks the index once, so that a damaged index fails Open
// rather than a later read: every entry must hold a well-formed handle
// that ends before the footer, separators must increase, and blocks must
// follow each other in the file.
func (r *Reader) checkIndex() error {
	var it blockIter
	it.init(r.index, r.name, r.indexOff, true)
	var prevKey []byte
	next := uint64(0) // where the next data block must start
	for ok := it.First(); ok; ok = it.Next() {
		h, n, ok := decodeHandle(it.val)
		if !ok || n != len(it.val) {
			return kvs.Corruptf(r.name, r.indexOff, "sstable: index: bad block handle for separator %s", it.ikey)
		}
		if h.Offset != next || !h.endsBefore(uint64(r.dataEnd)) {
			return kvs.Corruptf(r.name, r.indexOff, "sstable: index: block handle (offset %d, length %d) does not follow the previous block", h.Offset, h.Length)
		}
		if prevKey != nil && base.CompareEncoded(prevKey, it.key) >= 0 {
			return kvs.Corruptf(r.name, r.indexOff, "sstable: index: separators out of order at %s", it.ikey)
		}
		prevKey = append(prevKey[:0], it.key...)
		next = h.Offset + h.Length + blockTrailerLen
	}
	return it.err
}

// readAt fills buf from off; a short read is corruption (the file is
// truncated), other failures are I/O errors.
func (r *Reader) readAt(buf []byte, off int64) error {
	if r.mm != nil && off >= 0 && off+int64(len(buf)) <= int64(len(r.mm)) {
		return r.readMapped(buf, off)
	}
	n, err := r.f.ReadAt(buf, off)
	if n == len(buf) {
		return nil
	}
	if err == nil || errors.Is(err, io.EOF) || errors.Is(err, io.ErrUnexpectedEOF) {
		return kvs.Corruptf(r.name, off, "sstable: file truncated: read %d of %d bytes", n, len(buf))
	}
	return fmt.Errorf("kvs/sstable: read %s at %d: %w", r.name, off, err)
}

// readBlock returns the decoded block at h, from the cache when it is
// there. The slice must not be modified.
func (r *Reader) readBlock(h blockHandle, what string) ([]byte, error) {
	if r.cache == nil {
		return r.readBlockNoCache(h, what)
	}
	if b := r.cache.get(r.cacheID, h.Offset); b != nil {
		return b, nil
	}
	b, err := r.readBlockNoCache(h, what)
	if err != nil {
		return nil, err
	}
	r.cache.set(r.cacheID, h.Offset, b)
	return b, nil
}

// readBlockNoCache reads the block at h with its trailer, verifies the
// checksum and decompresses it.
func (r *Reader) readBlockNoCache(h blockHandle, what string) ([]byte, error) {
	// Check the handle before trusting it with an allocation.
	if !h.endsBefore(uint64(r.dataEnd)) {
		return nil, kvs.Corruptf(r.name, int64(min(h.Offset, uint64(r.dataEnd))),
			"sstable: %s block handle (offset %d, length %d) points past the blocks (%d bytes)", what, h.Offset, h.Length, r.dataEnd)
	}
	off := int64(h.Offset)
	n := int(h.Length + blockTrailerLen)
	if r.mm != nil && off+int64(n) <= int64(len(r.mm)) {
		// Through the map the stored block needs no copy: the checksum
		// and the decoder read it where it lies, under the fault guard.
		return r.decodeMapped(r.mm[off:off+int64(n):off+int64(n)], h, off, what)
	}
	// Otherwise the block as stored is read into a pooled buffer: a
	// compressed block is needed only until it is decoded into the block
	// returned, and an uncompressed one is copied out. Either way each
	// read allocates just the block it returns.
	var buf []byte
	if n <= maxPooledRead {
		rb := readBufPool.Get().(*[]byte)
		defer readBufPool.Put(rb)
		if cap(*rb) < n {
			*rb = make([]byte, n)
		}
		buf = (*rb)[:n]
	} else {
		buf = make([]byte, n) // an index or filter block, read once at Open
	}
	if err := r.readAt(buf, off); err != nil {
		return nil, err
	}
	return r.decodeBlock(buf, h, off, what)
}

// decodeMapped is decodeBlock of a block read in place from the map: a
// fault while reading it (the file cut short under the map, a disk error)
// is an error naming the file (vfs.CatchFault).
func (r *Reader) decodeMapped(buf []byte, h blockHandle, off int64, what string) (b []byte, err error) {
	ferr := vfs.CatchFault(func() { b, err = r.decodeBlock(buf, h, off, what) })
	if ferr != nil {
		return nil, fmt.Errorf("kvs/sstable: read %s at offset %d: %w", r.name, off, ferr)
	}
	return b, err
}

// decodeBlock verifies the checksum of buf, a block as stored with its
// trailer, and returns the block decompressed, in memory of its own (buf
// may be a pooled buffer or the map).
func (r *Reader) decodeBlock(buf []byte, h blockHandle, off int64, what string) ([]byte, error) {
	stored, typ := buf[:h.Length], buf[h.Length]
	if got, want := blockChecksum(stored, typ), binary.LittleEndian.Uint32(buf[h.Length+1:]); got != want {
		return nil, kvs.Corruptf(r.name, off, "sstable: %s block checksum mismatch (stored %#08x, computed %#08x)", what, want, got)
	}
	switch typ {
	case blockTypeNone:
		return bytes.Clone(stored), nil
	case blockTypeSnappy:
		n, err := snappy.DecodedLen(stored)
		if err != nil || n > maxSnappyRatio*len(stored)+64 {
			return nil, kvs.Corruptf(r.name, off, "sstable: %s block: bad snappy length", what)
		}
		b, err := snappy.Decode(make([]byte, n), stored)
		if err != nil {
			return nil, kvs.Corruptf(r.name, off, "sstable: %s block: snappy: %v", what, err)
		}
		return b, nil
	}
	return nil, kvs.Corruptf(r.name, off, "sstable: %s block: unknown compression type %d", what, typ)
}

// Properties returns the table's properties. The key slices are shared:
// do not modify them.
func (r *Reader) Properties() Properties { return r.props }

// CacheID returns the table's id in the block cache (0 without a cache).
func (r *Reader) CacheID() uint64 { return r.cacheID }

// Name returns the name given to Open.
func (r *Reader) Name() string { return r.name }

// Close closes the file. The Reader and its iterators must not be used
// afterwards.
func (r *Reader) Close() error {
	r.unmap()
	if err := r.f.Close(); err != nil {
		return fmt.Errorf("kvs/sstable: close %s: %w", r.name, err)
	}
	return nil
}

// unmap removes the file's map, if there is one.
func (r *Reader) unmap() {
	if r.mm != nil {
		// NB: munmap fails only for a range that is not a map.
		_ = vfs.Munmap(r.mm)
		r.mm = nil
	}
}

// readMapped copies len(buf) bytes at off out of the map; a fault while
// reading it is an error naming the file (vfs.CatchFault).
func (r *Reader) readMapped(buf []byte, off int64) error {
	if err := vfs.CatchFault(func() { copy(buf, r.mm[off:off+int64(len(buf))]) }); err != nil {
		return fmt.Errorf("kvs/sstable: read %s at offset %d: %w", r.name, off, err)
	}
	return nil
}

// Mapped reports whether the Reader reads through a memory map.
func (r *Reader) Mapped() bool { return r.mm != nil }

// MayContain reports whether the table may hold userKey, by its bloom
// filter alone; false is certain. A table written without a filter may
// hold any key. Callers that count filter hits call it, then Search.
func (r *Reader) MayContain(userKey []byte) bool {
	return !r.hasFilt || r.filter.mayContain(userKey)
}

// Get returns the newest version of userKey with a sequence number <= seq:
// its value (a copy, the caller's), its kind and found = true. A KindDelete
// entry is returned as found with a nil value: the key was deleted at that
// snapshot. found is false when the table holds no such version. Get
// consults the bloom filter first and reads no data block when it says
// the key is absent.
func (r *Reader) Get(userKey []byte, seq uint64) (value []byte, kind base.Kind, found bool, err error) {
	if !r.MayContain(userKey) {
		return nil, 0, false, nil
	}
	return r.Search(userKey, seq)
}

// Search is Get without the bloom filter: it always searches the index
// and a data block. It is for callers that asked MayContain already.
func (r *Reader) Search(userKey []byte, seq uint64) (value []byte, kind base.Kind, found bool, err error) {
	g := getStatePool.Get().(*getState)
	defer getStatePool.Put(g)
	// The first entry >= (userKey, seq, KindMax) is the newest version
	// visible at seq, if it has userKey.
	g.target = base.MakeInternalKey(userKey, min(seq, base.SeqMax), base.KindMax).Append(g.target[:0])
	index, data := &g.index, &g.data
	index.init(r.index, r.name, r.indexOff, true)
	for ok := index.SeekGE(g.target); ok; ok = index.Next() {
		b, off, err := r.dataBlock(index.val)
		if err != nil {
			return nil, 0, false, err
		}
		data.init(b, r.name, off, true)
		if data.SeekGE(g.target) {
			if !bytes.Equal(data.ikey.UserKey, userKey) {
				return nil, 0, false, nil
			}
			k := data.ikey.Kind()
			if k == base.KindDelete {
				return nil, k, true, nil
			}
			return bytes.Clone(data.val), k, true, nil
		}
		if data.err != nil {
			return nil, 0, false, data.err
		}
		// Every key in this block is < target: the answer, if any, is
		// the first entry of the next block.
	}
	return nil, 0, false, index.err
}

// readBufPool holds the buffers blocks are read into before they are
// verified and decoded: data blocks, about BlockSize each. Larger reads
// (maxPooledRead) get a buffer of their own, so the pool never keeps a
// big one alive.
var readBufPool = sync.Pool{New: func() any { return new([]byte) }}

const maxPooledRead = 256 << 10

// getState is the scratch space of one Get, pooled so that Gets allocate
// only the value they return.
type getState struct {
	index, data blockIter
	target      []byte
}

var getStatePool = sync.Pool{New: func() any { return new(getState) }}

// dataBlock decodes the block handle in an index entry's value and reads
// the block.
func (r *Reader) dataBlock(v []byte) ([]byte, int64, error) {
	h, n, ok := decodeHandle(v)
	if !ok || n != len(v) {
		return nil, 0, kvs.Corruptf(r.name, r.indexOff, "sstable: index: bad block handle")
	}
	b, err := r.readBlock(h, "data")
	return b, int64(h.Offset), err
}
