package memtable

import (
	"sync/atomic"
	"unsafe"
)

// An arena is a fixed block of memory handed out by bumping an offset. It
// never frees: a memtable is dropped whole once it has been flushed. Space
// is addressed by uint32 offsets rather than pointers, so a skiplist link is
// four bytes and the garbage collector sees one object, not one per entry.
//
// Offset 0 means "no node" (nil): every node starts with at least one
// four-byte link before its header (see node.go), so no node's offset is 0.
type arena struct {
	// buf is the memory, len(buf) == capacity. Its first byte is 8-byte
	// aligned, and every allocation is a multiple of 4 bytes long, so every
	// allocation starts 4-byte aligned, as atomic uint32 access needs.
	buf []byte
	// used is the number of bytes handed out, the next allocation's start.
	// It only grows and never exceeds len(buf).
	used atomic.Uint64
}

// newArena returns an arena of capacity bytes. capacity must be a multiple
// of 4 and at most MaxArenaBytes; New ensures both.
func newArena(capacity int) *arena {
	// Allocate words, not bytes, so the base address is 8-byte aligned
	// whatever the size: a []byte of a few bytes may come from the tiny
	// allocator at any address.
	words := make([]uint64, (capacity+7)/8)
	buf := unsafe.Slice((*byte)(unsafe.Pointer(unsafe.SliceData(words))), len(words)*8)
	return &arena{buf: buf[:capacity:capacity]}
}

// alloc reserves size bytes (a multiple of 4) and returns their offset. ok
// is false, and nothing is reserved, when the arena cannot hold them. alloc
// is safe for concurrent use: the offset moves by compare-and-swap, so it
// never passes the capacity and Size never counts bytes nobody got.
func (a *arena) alloc(size uint32) (off uint32, ok bool) {
	for {
		used := a.used.Load()
		end := used + uint64(size)
		if end > uint64(len(a.buf)) {
			return 0, false
		}
		if a.used.CompareAndSwap(used, end) {
			return uint32(used), true
		}
	}
}

// size returns the bytes handed out so far.
func (a *arena) size() int { return int(a.used.Load()) }

// word returns the 4-byte-aligned uint32 at off for atomic access. Indexing
// buf (rather than pointer arithmetic) keeps Go's bounds check.
func (a *arena) word(off uint32) *uint32 {
	return (*uint32)(unsafe.Pointer(&a.buf[off]))
}

// load atomically reads the uint32 at off.
func (a *arena) load(off uint32) uint32 { return atomic.LoadUint32(a.word(off)) }

// store atomically writes the uint32 at off.
func (a *arena) store(off, v uint32) { atomic.StoreUint32(a.word(off), v) }

// cas atomically replaces the uint32 at off with to if it holds from, and
// reports whether it did.
func (a *arena) cas(off, from, to uint32) bool {
	return atomic.CompareAndSwapUint32(a.word(off), from, to)
}

// bytes returns n bytes at off, with the capacity cut at n so that an
// append by the caller copies instead of overwriting the next node.
func (a *arena) bytes(off, n uint32) []byte {
	return a.buf[off : off+n : off+n]
}
