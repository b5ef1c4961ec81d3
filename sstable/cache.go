package sstable

import (
	"math/bits"
	"sync"
	"sync/atomic"
)

// Cache is a size-bounded cache of decoded (checksum-verified and
// decompressed) blocks, shared by any number of Readers. Blocks are keyed
// by (table id, block offset): each Reader gets its own id. A Cache is safe
// for concurrent use.
//
// Cached blocks are immutable. An iterator that holds a block keeps it
// alive after eviction (the garbage collector frees it), so eviction never
// invalidates a reader.
//
// # Design
//
// The cache is split into shards by a hash of the key, each with its own
// lock, map and byte budget, so that readers on different cores rarely
// wait for one another. Each shard evicts by CLOCK (Corbató 1968, the
// "second chance" approximation of least-recently-used): its entries sit
// in a ring, a hit only sets the entry's referenced bit, and eviction
// sweeps a hand around the ring, clearing set bits and evicting the first
// entry whose bit is clear. A hit therefore writes nothing but one flag in
// the entry it found. An LRU list would move the entry to the front on
// every hit, writing the links of its two neighbours and of the head: three
// more cache lines, each a likely miss when most of the cache is cold.
type Cache struct {
	shards   []cacheShard
	shift    uint // 64 - log2(len(shards))
	capacity int64
	nextID   atomic.Uint64
	hits     atomic.Int64
	misses   atomic.Int64
}

// cacheShard is one lock's worth of the cache.
type cacheShard struct {
	mu       sync.Mutex
	capacity int64
	size     int64
	entries  map[cacheKey]*cacheEntry
	// ring holds every entry once; hand is the next one the clock looks
	// at.
	ring []*cacheEntry
	hand int
	_    [64]byte // keep neighbouring shards' locks off one cache line
}

type cacheKey struct {
	id, offset uint64
}

type cacheEntry struct {
	key   cacheKey
	block []byte
	// referenced is set by a hit and cleared by the clock hand passing.
	// Guarded by the shard's mu.
	referenced bool
	slot       int // index in the shard's ring
}

// cacheEntryOverhead approximates the bytes an entry costs beyond its
// block: the entry, its map slot and its ring slot.
const cacheEntryOverhead = 96

// Sharding: at most maxCacheShards shards, and no shard smaller than
// minShardBytes, so that a small cache is one shard (exactly bounded, and
// able to hold a block of most of its size). A block larger than its
// shard's budget (capacity / shards) is not cached: with the default 8
// MiB cache, 8 shards of 1 MiB, far above the 4 KiB data blocks.
const (
	maxCacheShards = 16
	minShardBytes  = 1 << 20
)

// NewCache returns a cache holding at most bytes bytes of blocks.
func NewCache(bytes int64) *Cache {
	n := 1
	for n < maxCacheShards && bytes/int64(2*n) >= minShardBytes {
		n *= 2
	}
	c := &Cache{shards: make([]cacheShard, n), shift: uint(64 - bits.TrailingZeros(uint(n))), capacity: bytes}
	for i := range c.shards {
		s := &c.shards[i]
		s.capacity = bytes / int64(n)
		s.entries = make(map[cacheKey]*cacheEntry)
	}
	return c
}

// NewID returns an id no other caller of NewID on c has been given, for
// ReaderOptions.CacheID.
func (c *Cache) NewID() uint64 { return c.nextID.Add(1) }

// CacheMetrics counts a cache's use.
type CacheMetrics struct {
	// Hits and Misses count lookups.
	Hits, Misses int64
	// Size is the bytes held; Capacity the bound; Count the blocks.
	Size, Capacity int64
	Count          int
	// Shards is the number of independently locked parts.
	Shards int
}

// Metrics returns the cache's counters.
func (c *Cache) Metrics() CacheMetrics {
	m := CacheMetrics{Hits: c.hits.Load(), Misses: c.misses.Load(), Capacity: c.capacity, Shards: len(c.shards)}
	for i := range c.shards {
		s := &c.shards[i]
		s.mu.Lock()
		m.Size += s.size
		m.Count += len(s.entries)
		s.mu.Unlock()
	}
	return m
}

// shard returns the shard of key k: the top bits of a multiplicative
// hash of the table id and the offset.
func (c *Cache) shard(k cacheKey) *cacheShard {
	if len(c.shards) == 1 {
		return &c.shards[0]
	}
	h := k.id*0x9e3779b97f4a7c15 ^ k.offset*0xbf58476d1ce4e5b9
	return &c.shards[h>>c.shift]
}

// get returns the cached block or nil.
func (c *Cache) get(id, offset uint64) []byte {
	k := cacheKey{id, offset}
	s := c.shard(k)
	s.mu.Lock()
	e := s.entries[k]
	var b []byte
	if e != nil {
		e.referenced = true
		b = e.block
	}
	s.mu.Unlock()
	if b == nil {
		c.misses.Add(1)
		return nil
	}
	c.hits.Add(1)
	return b
}

// set adds a block, evicting blocks by CLOCK to keep the shard within its
// budget. A block larger than the shard's whole budget is not kept.
func (c *Cache) set(id, offset uint64, block []byte) {
	k := cacheKey{id, offset}
	s := c.shard(k)
	cost := int64(len(block)) + cacheEntryOverhead
	if cost > s.capacity {
		return
	}
	s.mu.Lock()
	defer s.mu.Unlock()
	if old := s.entries[k]; old != nil {
		s.remove(old)
	}
	// NB: a new entry starts unreferenced: it must be hit once before the
	// hand comes round to earn a second chance, so a scan's blocks, read
	// once, leave first.
	e := &cacheEntry{key: k, block: block, slot: len(s.ring)}
	s.entries[k] = e
	s.ring = append(s.ring, e)
	s.size += cost
	for s.size > s.capacity {
		s.evictOne()
	}
}

// evictOne advances the hand to the first unreferenced entry, clearing
// the referenced bits it passes, and evicts that entry. mu is held and
// the ring is not empty.
func (s *cacheShard) evictOne() {
	for {
		if s.hand >= len(s.ring) {
			s.hand = 0
		}
		e := s.ring[s.hand]
		if e.referenced {
			e.referenced = false
			s.hand++
			continue
		}
		s.remove(e)
		return
	}
}

// remove drops e from the map and the ring. The ring's last entry takes
// e's slot, so removal is O(1). mu is held.
func (s *cacheShard) remove(e *cacheEntry) {
	delete(s.entries, e.key)
	last := len(s.ring) - 1
	moved := s.ring[last]
	s.ring[e.slot] = moved
	moved.slot = e.slot
	s.ring[last] = nil
	s.ring = s.ring[:last]
	s.size -= int64(len(e.block)) + cacheEntryOverhead
}

// EvictTable drops every block of table id, for a deleted table.
func (c *Cache) EvictTable(id uint64) {
	for i := range c.shards {
		s := &c.shards[i]
		s.mu.Lock()
		for k, e := range s.entries {
			if k.id == id {
				s.remove(e)
			}
		}
		s.mu.Unlock()
	}
}
