package memtable

import (
	"bytes"
	"encoding/binary"
	"math/bits"
	"math/rand/v2"

	"github.com/kvs-lab/kvs/internal/base"
)

// A node is one skiplist entry, laid out in the arena as (see doc.go):
//
//	alloc start                                 node offset nd
//	v                                           v
//	| next[h-1] | ... | next[1] | next[0] | trailer | keyLen | valueLen | user key | value | pad |
//	  u32               u32       u32       u64 LE    u32 LE   u32 LE
//
// A node is named by the offset of its header, nd; its tower of h links
// lies just below, next[i] at nd-4(i+1), so the header and the low links
// (the ones every search reads) share a cache line and the node needs no
// height field. Links are read and written only atomically; everything
// from nd on is written once, before the node is linked, and never again.
const (
	linkSize   = 4                   // one next link: a uint32 arena offset
	headerSize = base.TrailerLen + 8 // trailer, keyLen, valueLen

	offKeyLen   = base.TrailerLen     // keyLen's offset from nd
	offValueLen = base.TrailerLen + 4 // valueLen's offset from nd
)

// maxHeight is the tallest tower. With p = 1/2 a list of n entries uses
// about log2(n) levels, so 16 levels keep searches logarithmic up to 2^16
// (65,536) entries, about an 8 MiB arena of 16-byte keys and 100-byte
// values. Past that the top level grows longer, slowly: a 64 MiB arena's
// 470,000 entries put about 14 nodes on it, all of them hot in the cache.
const maxHeight = 16

// randomHeight draws a tower height: 1 with probability 1/2, 2 with 1/4,
// and so on, each level kept with probability p = 1/2; every zero bit at
// the bottom of a random word adds a level. LevelDB and RocksDB use
// p = 1/4, which Pugh (1990, §3) recommends: it spends fewer links (4/3
// per node against 2) for about the same number of comparisons. But the
// comparisons are not alike. A search that drops a level compares again
// the node that stopped it on the level above, and that node is already
// in the cache; with p = 1/2 about half the comparisons are such repeats,
// with p = 1/4 a quarter, so p = 1/2 touches fewer new cache lines. It
// measured 12% faster for random inserts and 13% for Gets of 100,000
// entries (BenchmarkAdd, BenchmarkGet; docs/02 §3), for 2.7 more bytes
// per entry. math/rand/v2's top-level functions are safe for concurrent
// use.
func randomHeight() uint32 {
	h := 1 + uint32(bits.TrailingZeros32(rand.Uint32()))
	return min(h, maxHeight)
}

// align4 rounds n up to a multiple of 4.
func align4(n uint64) uint64 { return (n + 3) &^ 3 }

// nodeSize returns the arena bytes of a node of height h holding a user key
// of keyLen bytes and a value of valueLen bytes. It is computed in uint64 so
// that no input can overflow it.
func nodeSize(h uint32, keyLen, valueLen int) uint64 {
	return align4(uint64(h)*linkSize + headerSize + uint64(keyLen) + uint64(valueLen))
}

// newNode allocates a node of height h and fills in its header, key and
// value. Its links are zero (nil); the caller sets them before linking the
// node into the list. ok is false when the arena is full.
func (a *arena) newNode(h uint32, key base.InternalKey, value []byte) (nd uint32, ok bool) {
	// The caller has checked that the size fits in the arena, so in uint32.
	start, ok := a.alloc(uint32(nodeSize(h, len(key.UserKey), len(value))))
	if !ok {
		return 0, false
	}
	nd = start + h*linkSize
	binary.LittleEndian.PutUint64(a.buf[nd:], key.Trailer)
	binary.LittleEndian.PutUint32(a.buf[nd+offKeyLen:], uint32(len(key.UserKey)))
	binary.LittleEndian.PutUint32(a.buf[nd+offValueLen:], uint32(len(value)))
	k := nd + headerSize
	copy(a.buf[k:], key.UserKey)
	copy(a.buf[k+uint32(len(key.UserKey)):], value)
	return nd, true
}

// next atomically loads node nd's link at level i.
func (a *arena) next(nd uint32, i int) uint32 { return a.load(nd - uint32(i+1)*linkSize) }

// setNext atomically stores node nd's link at level i. Only for a node not
// yet reachable at level i: a reachable link changes only by casNext.
func (a *arena) setNext(nd uint32, i int, v uint32) { a.store(nd-uint32(i+1)*linkSize, v) }

// casNext atomically swings node nd's link at level i from the node from
// to the node to, and reports whether it did.
func (a *arena) casNext(nd uint32, i int, from, to uint32) bool {
	return a.cas(nd-uint32(i+1)*linkSize, from, to)
}

// trailer returns node nd's trailer (seq << 8 | kind).
func (a *arena) trailer(nd uint32) uint64 { return binary.LittleEndian.Uint64(a.buf[nd:]) }

// userKey returns node nd's user key. It aliases the arena.
func (a *arena) userKey(nd uint32) []byte {
	n := binary.LittleEndian.Uint32(a.buf[nd+offKeyLen:])
	return a.bytes(nd+headerSize, n)
}

// value returns node nd's value. It aliases the arena.
func (a *arena) value(nd uint32) []byte {
	k := binary.LittleEndian.Uint32(a.buf[nd+offKeyLen:])
	n := binary.LittleEndian.Uint32(a.buf[nd+offValueLen:])
	return a.bytes(nd+headerSize+k, n)
}

// compare orders node nd against the internal key (userKey, trailer) as
// base.InternalCompare does: user key ascending, then trailer descending.
func (a *arena) compare(nd uint32, userKey []byte, trailer uint64) int {
	if c := bytes.Compare(a.userKey(nd), userKey); c != 0 {
		return c
	}
	switch t := a.trailer(nd); {
	case t > trailer:
		return -1
	case t < trailer:
		return 1
	}
	return 0
}
