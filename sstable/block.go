package sstable

import (
	"bytes"
	"encoding/binary"

	"github.com/kvs-lab/kvs"
	"github.com/kvs-lab/kvs/internal/base"
)

// A block is a run of key-value entries, sorted by key, followed by a
// restart array (see the package documentation):
//
//	+---------+---------+-----+------------+-----+------------+-----------------+
//	| entry 0 | entry 1 | ... | restart[0] | ... | restart[r] | num restarts r+1|
//	+---------+---------+-----+------------+-----+------------+-----------------+
//	                            u32 offsets of restart entries   u32
//
//	entry: shared uvarint | unshared uvarint | value length uvarint |
//	       key[shared:] (unshared bytes) | value
//
// Each entry stores only the suffix of its key that differs from the
// previous key. Every restartInterval entries the full key is stored
// (shared = 0) and the entry's offset recorded in the restart array, so a
// reader can binary search the restart points and decode from there.

// blockWriter builds one block in memory.
type blockWriter struct {
	restartInterval int
	buf             []byte
	restarts        []uint32
	lastKey         []byte
	nEntries        int // entries since the last restart
	count           int // entries in the block
}

func (w *blockWriter) add(key, value []byte) {
	shared := 0
	if w.nEntries == w.restartInterval || w.count == 0 {
		w.restarts = append(w.restarts, uint32(len(w.buf)))
		w.nEntries = 0
	} else {
		n := min(len(key), len(w.lastKey))
		for shared < n && key[shared] == w.lastKey[shared] {
			shared++
		}
	}
	w.buf = binary.AppendUvarint(w.buf, uint64(shared))
	w.buf = binary.AppendUvarint(w.buf, uint64(len(key)-shared))
	w.buf = binary.AppendUvarint(w.buf, uint64(len(value)))
	w.buf = append(w.buf, key[shared:]...)
	w.buf = append(w.buf, value...)
	w.lastKey = append(w.lastKey[:0], key...)
	w.nEntries++
	w.count++
}

// estimatedSize is the size finish would return now.
func (w *blockWriter) estimatedSize() int {
	return len(w.buf) + 4*len(w.restarts) + 4
}

// finish appends the restart array and returns the block. The slice is
// valid until the next reset.
func (w *blockWriter) finish() []byte {
	for _, r := range w.restarts {
		w.buf = binary.LittleEndian.AppendUint32(w.buf, r)
	}
	w.buf = binary.LittleEndian.AppendUint32(w.buf, uint32(len(w.restarts)))
	return w.buf
}

func (w *blockWriter) reset() {
	w.buf = w.buf[:0]
	w.restarts = w.restarts[:0]
	w.lastKey = w.lastKey[:0]
	w.nEntries = 0
	w.count = 0
}

// blockIter walks the entries of one decoded block. Keys are compared as
// encoded internal keys when internal is set (data and index blocks) and
// bytewise otherwise (the properties block). Malformed contents never
// panic: they stop the iterator with a *kvs.CorruptionError naming the
// block's file and offset.
type blockIter struct {
	file     string // for errors
	blockOff int64  // the block's offset in file, for errors
	internal bool

	data        []byte // entries: the block without its restart array
	restarts    []byte // the restart array (u32 each)
	numRestarts int

	offset     int // offset of the current entry in data
	nextOffset int // offset of the entry after it
	key        []byte
	saved      []byte           // scratch for SeekLT
	ikey       base.InternalKey // key decoded, when internal
	val        []byte
	valid      bool
	err        error
}

// init points the iterator at block b. It reports a corrupt restart array
// through i.err.
func (i *blockIter) init(b []byte, file string, blockOff int64, internal bool) {
	*i = blockIter{file: file, blockOff: blockOff, internal: internal, key: i.key[:0], saved: i.saved[:0]}
	if len(b) < 4 {
		i.corrupt("block too short for its restart count")
		return
	}
	n := binary.LittleEndian.Uint32(b[len(b)-4:])
	if uint64(n) > uint64(len(b)-4)/4 {
		i.corrupt("restart count %d does not fit in a %d-byte block", n, len(b))
		return
	}
	end := len(b) - 4 - 4*int(n)
	if n == 0 && end != 0 {
		i.corrupt("block has entries but no restart points")
		return
	}
	i.data, i.restarts, i.numRestarts = b[:end], b[end:len(b)-4], int(n)
}

func (i *blockIter) corrupt(format string, args ...any) {
	i.valid = false
	if i.err == nil {
		i.err = kvs.Corruptf(i.file, i.blockOff, "sstable: block: "+format, args...)
	}
}

// restartOffset returns the offset of restart point r, or -1 (with i.err
// set) when it lies outside the entries.
func (i *blockIter) restartOffset(r int) int {
	off := binary.LittleEndian.Uint32(i.restarts[4*r:])
	if uint64(off) >= uint64(len(i.data)) {
		i.corrupt("restart point %d at %d is past the entries (%d bytes)", r, off, len(i.data))
		return -1
	}
	return int(off)
}

// decodeAt decodes the entry at off, whose predecessor's key is in i.key
// (ignored for restart entries). It sets the current entry and reports
// whether that worked.
func (i *blockIter) decodeAt(off int) bool {
	if i.err != nil {
		return false
	}
	p := i.data[off:]
	var shared, unshared, vlen uint64
	var n1, n2, n3 int
	if len(p) >= 3 && (p[0]|p[1]|p[2])&0x80 == 0 {
		// The common case, a key and value shorter than 128 bytes: three
		// one-byte varints, decoded without a call.
		shared, unshared, vlen, n1, n2, n3 = uint64(p[0]), uint64(p[1]), uint64(p[2]), 1, 1, 1
	} else {
		if shared, n1 = binary.Uvarint(p); n1 <= 0 {
			i.corrupt("bad shared length at entry offset %d", off)
			return false
		}
		if unshared, n2 = binary.Uvarint(p[n1:]); n2 <= 0 {
			i.corrupt("bad unshared length at entry offset %d", off)
			return false
		}
		if vlen, n3 = binary.Uvarint(p[n1+n2:]); n3 <= 0 {
			i.corrupt("bad value length at entry offset %d", off)
			return false
		}
	}
	p = p[n1+n2+n3:]
	if shared > uint64(len(i.key)) || unshared > uint64(len(p)) || vlen > uint64(len(p))-unshared {
		i.corrupt("entry at offset %d overruns its block or shares more than the previous key", off)
		return false
	}
	i.key = append(i.key[:shared], p[:unshared]...)
	i.val = p[unshared : unshared+vlen : unshared+vlen]
	i.offset = off
	i.nextOffset = off + n1 + n2 + n3 + int(unshared) + int(vlen)
	if i.internal {
		k, ok := base.DecodeInternalKey(i.key)
		if !ok {
			i.corrupt("bad internal key at entry offset %d", off)
			return false
		}
		i.ikey = k
	}
	i.valid = true
	return true
}

// restartKey returns the key of restart point r's entry, in place: a
// restart entry shares nothing with its predecessor, so its key bytes are
// all in the block. ok is false, with i.err set, for a damaged entry.
func (i *blockIter) restartKey(r int) (key []byte, ok bool) {
	off := i.restartOffset(r)
	if off < 0 {
		return nil, false
	}
	p := i.data[off:]
	var shared, unshared uint64
	var n1, n2, n3 int
	if len(p) >= 3 && (p[0]|p[1]|p[2])&0x80 == 0 {
		shared, unshared, n1, n2, n3 = uint64(p[0]), uint64(p[1]), 1, 1, 1
	} else {
		if shared, n1 = binary.Uvarint(p); n1 <= 0 {
			i.corrupt("bad shared length at entry offset %d", off)
			return nil, false
		}
		if unshared, n2 = binary.Uvarint(p[n1:]); n2 <= 0 {
			i.corrupt("bad unshared length at entry offset %d", off)
			return nil, false
		}
		if _, n3 = binary.Uvarint(p[n1+n2:]); n3 <= 0 {
			i.corrupt("bad value length at entry offset %d", off)
			return nil, false
		}
	}
	p = p[n1+n2+n3:]
	if shared != 0 || unshared > uint64(len(p)) {
		i.corrupt("restart entry at offset %d shares %d bytes or overruns its block", off, shared)
		return nil, false
	}
	key = p[:unshared:unshared]
	if i.internal {
		if _, ok := base.DecodeInternalKey(key); !ok {
			i.corrupt("bad internal key at entry offset %d", off)
			return nil, false
		}
	}
	return key, true
}

// seekRestart positions the iterator at restart point r.
func (i *blockIter) seekRestart(r int) bool {
	off := i.restartOffset(r)
	if off < 0 {
		return false
	}
	i.key = i.key[:0] // a restart entry shares nothing
	return i.decodeAt(off)
}

func (i *blockIter) compare(a, b []byte) int {
	if i.internal {
		return base.CompareEncoded(a, b)
	}
	return bytes.Compare(a, b)
}

// searchRestarts returns the number of restart points whose key is < target
// (-1 on corruption), by binary search.
func (i *blockIter) searchRestarts(target []byte) int {
	lo, hi := 0, i.numRestarts
	for lo < hi {
		mid := int(uint(lo+hi) >> 1)
		// NB: a restart entry's key is stored whole, so the search
		// compares it where it lies instead of decoding the entry; the
		// caller decodes the one restart it lands on.
		k, ok := i.restartKey(mid)
		if !ok {
			return -1
		}
		if i.compare(k, target) < 0 {
			lo = mid + 1
		} else {
			hi = mid
		}
	}
	return lo
}

// First moves to the first entry.
func (i *blockIter) First() bool {
	i.valid = false
	if i.numRestarts == 0 {
		return false
	}
	return i.seekRestart(0)
}

// Last moves to the last entry.
func (i *blockIter) Last() bool {
	i.valid = false
	if i.numRestarts == 0 || !i.seekRestart(i.numRestarts-1) {
		return false
	}
	for i.nextOffset < len(i.data) {
		if !i.decodeAt(i.nextOffset) {
			return false
		}
	}
	return true
}

// Next moves to the following entry.
func (i *blockIter) Next() bool {
	if !i.valid {
		return false
	}
	if i.nextOffset >= len(i.data) {
		i.valid = false
		return false
	}
	return i.decodeAt(i.nextOffset)
}

// Prev moves to the preceding entry: back to the last restart point before
// the current entry, then forward to the entry just before it.
func (i *blockIter) Prev() bool {
	if !i.valid {
		return false
	}
	cur := i.offset
	if cur == 0 {
		i.valid = false
		return false
	}
	// The last restart point strictly before cur.
	lo, hi := 0, i.numRestarts
	for lo < hi {
		mid := int(uint(lo+hi) >> 1)
		off := i.restartOffset(mid)
		if off < 0 {
			return false
		}
		if off < cur {
			lo = mid + 1
		} else {
			hi = mid
		}
	}
	if lo == 0 {
		i.corrupt("no restart point before entry offset %d", cur)
		return false
	}
	if !i.seekRestart(lo - 1) {
		return false
	}
	for i.nextOffset < cur {
		if !i.decodeAt(i.nextOffset) {
			return false
		}
	}
	if i.nextOffset != cur {
		i.corrupt("entries do not chain to offset %d", cur)
		return false
	}
	return true
}

// SeekGE moves to the first entry whose key is >= target.
func (i *blockIter) SeekGE(target []byte) bool {
	i.valid = false
	if i.numRestarts == 0 {
		return false
	}
	// Restart idx-1 has a key < target and restart idx one >= target, so
	// the answer lies after restart idx-1 (or at restart 0).
	idx := i.searchRestarts(target)
	if idx < 0 || !i.seekRestart(max(idx-1, 0)) {
		return false
	}
	for i.compare(i.key, target) < 0 {
		if !i.Next() {
			return false
		}
	}
	return true
}

// SeekLT moves to the last entry whose key is < target.
func (i *blockIter) SeekLT(target []byte) bool {
	i.valid = false
	if i.numRestarts == 0 {
		return false
	}
	idx := i.searchRestarts(target)
	if idx <= 0 {
		i.valid = false
		return false // error, or every key is >= target
	}
	if !i.seekRestart(idx - 1) {
		return false
	}
	// Walk forward while the following entry is still < target, keeping
	// a copy of the current entry to return to.
	for i.nextOffset < len(i.data) {
		i.saved = append(i.saved[:0], i.key...)
		off, next, val := i.offset, i.nextOffset, i.val
		if !i.decodeAt(next) {
			return false
		}
		if i.compare(i.key, target) >= 0 {
			i.key = append(i.key[:0], i.saved...)
			i.offset, i.nextOffset, i.val = off, next, val
			if i.internal {
				i.ikey, _ = base.DecodeInternalKey(i.key) // decoded fine before
			}
			return true
		}
	}
	return true
}
