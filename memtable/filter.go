package memtable

import (
	"math/bits"
	"sync/atomic"

	"github.com/cespare/xxhash/v2"
)

// A filter is a blocked bloom filter over the user keys added to a
// memtable, so that Get can answer "not here" for most absent keys without
// searching the skiplist. An LSM Get probes the memtables before any
// table, and in a read-mostly workload most keys live in the tables: every
// one of those Gets would otherwise walk O(log n) skiplist nodes, each a
// likely cache miss, to find nothing (RocksDB calls the same idea
// memtable_whole_key_filtering).
//
// The filter is blocked (Putze, Sanders and Singler, "Cache-, Hash- and
// Space-Efficient Bloom Filters", 2007): the key's hash picks one 64-byte
// block, a cache line, and all k probe bits fall inside it, so a lookup
// costs one cache miss instead of k. The price is a slightly higher false
// positive rate than a classic filter with the same bits per key.
//
// Bits are only ever set, with atomic ORs, and read with atomic loads, so
// adders and readers need no lock. A key's bits are set before its node is
// linked into the list, so a reader that could find the node also finds
// the bits. A false positive costs one skiplist search, as without the
// filter; there are no false negatives.
type filter struct {
	words   []uint64 // nblocks * blockWords
	nblocks uint64
}

const (
	// blockWords is a block's size in uint64s: 8 words, 512 bits, one
	// 64-byte cache line.
	blockWords = 8
	// filterProbes is k, the bits set per key. With about 10 bits per key
	// the optimum for a classic filter is 7 (k = ln 2 * bits/key); a
	// blocked filter loses little with one fewer.
	filterProbes = 6
	// filterBitsPerEntry and filterEntryBytes size the filter from the
	// arena: one entry per filterEntryBytes of arena, filterBitsPerEntry
	// bits each. A node costs 16 bytes of header plus links, key and
	// value, so 64 bytes is a small entry (a 16-byte key with a 20-byte
	// value); memtables of larger entries get more bits per key and fewer
	// false positives. For 16-byte keys and 100-byte values (140 arena
	// bytes per entry) that is about 22 bits per key, and the filter is
	// 1/51 of the arena.
	filterBitsPerEntry = 10
	filterEntryBytes   = 64
)

// newFilter returns a filter sized for an arena of capacity bytes: at
// least one block.
func newFilter(capacity int) *filter {
	entries := uint64(capacity) / filterEntryBytes
	nblocks := max(1, (entries*filterBitsPerEntry+blockWords*64-1)/(blockWords*64))
	return &filter{words: make([]uint64, nblocks*blockWords), nblocks: nblocks}
}

// probes returns the first word of key's block and the two halves of its
// hash from which the probe bits are derived (double hashing, as in
// Kirsch and Mitzenmacher, "Less Hashing, Same Performance", 2006).
func (f *filter) probes(key []byte) (block uint64, h1, h2 uint32) {
	h := xxhash.Sum64(key)
	// The high 32 bits pick the block by multiply-shift, which maps them
	// onto [0, nblocks) without a division.
	hi, _ := bits.Mul64(h>>32, f.nblocks<<32)
	// The low 32 bits give the probes: h1, bits 0-31, the first bit and
	// h2, bits 9-40 made odd, the stride, so that the first bit and the
	// stride inside the block's 512 bits (the low 9 bits of each) come
	// from different bits of the hash than each other and the block.
	h1 = uint32(h)
	h2 = uint32(h>>9) | 1
	return hi * blockWords, h1, h2
}

// add sets key's bits.
func (f *filter) add(key []byte) {
	block, h1, h2 := f.probes(key)
	for range filterProbes {
		bit := h1 & (blockWords*64 - 1)
		w := &f.words[block+uint64(bit/64)]
		if m := uint64(1) << (bit % 64); atomic.LoadUint64(w)&m == 0 {
			atomic.OrUint64(w, m)
		}
		h1 += h2
	}
}

// mayContain reports whether key may have been added; false is certain.
func (f *filter) mayContain(key []byte) bool {
	block, h1, h2 := f.probes(key)
	for range filterProbes {
		bit := h1 & (blockWords*64 - 1)
		if atomic.LoadUint64(&f.words[block+uint64(bit/64)])&(uint64(1)<<(bit%64)) == 0 {
			return false
		}
		h1 += h2
	}
	return true
}

// bytes returns the filter's memory.
func (f *filter) bytes() int { return len(f.words) * 8 }
