package sstable

import (
	"sync"
	"sync/atomic"
)

// Cache is a size-bounded LRU cache of decoded (checksum-verified and
// decompressed) blocks, shared by any number of Readers. Blocks are keyed
// by (table id, block offset): each Reader gets its own id. A Cache is safe
// for concurrent use.
//
// Cached blocks are immutable. An iterator that holds a block keeps it
// alive after eviction (the garbage collector frees it), so eviction never
// invalidates a reader.
type Cache struct {
	mu       sync.Mutex
	capacity int64
	size     int64
	entries  map[cacheKey]*cacheEntry
	// head is a sentinel: head.next is the most recently used entry,
	// head.prev the least.
	head   cacheEntry
	nextID atomic.Uint64
	hits   atomic.Int64
	misses atomic.Int64
}

type cacheKey struct {
	id, offset uint64
}

type cacheEntry struct {
	key        cacheKey
	block      []byte
	prev, next *cacheEntry
}

// cacheEntryOverhead approximates the bytes an entry costs beyond its
// block: the entry, its map slot and its list links.
const cacheEntryOverhead = 96

// NewCache returns a cache holding at most bytes bytes of blocks.
func NewCache(bytes int64) *Cache {
	c := &Cache{capacity: bytes, entries: make(map[cacheKey]*cacheEntry)}
	c.head.next, c.head.prev = &c.head, &c.head
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
}

// Metrics returns the cache's counters.
func (c *Cache) Metrics() CacheMetrics {
	c.mu.Lock()
	defer c.mu.Unlock()
	return CacheMetrics{Hits: c.hits.Load(), Misses: c.misses.Load(), Size: c.size, Capacity: c.capacity, Count: len(c.entries)}
}

// get returns the cached block or nil.
func (c *Cache) get(id, offset uint64) []byte {
	c.mu.Lock()
	e := c.entries[cacheKey{id, offset}]
	if e != nil {
		c.unlink(e)
		c.pushFront(e)
	}
	c.mu.Unlock()
	if e == nil {
		c.misses.Add(1)
		return nil
	}
	c.hits.Add(1)
	return e.block
}

// set adds a block, evicting least recently used blocks to stay within
// capacity. A block larger than the whole cache is not kept.
func (c *Cache) set(id, offset uint64, block []byte) {
	cost := int64(len(block)) + cacheEntryOverhead
	if cost > c.capacity {
		return
	}
	c.mu.Lock()
	defer c.mu.Unlock()
	k := cacheKey{id, offset}
	if old := c.entries[k]; old != nil {
		c.remove(old)
	}
	e := &cacheEntry{key: k, block: block}
	c.entries[k] = e
	c.pushFront(e)
	c.size += cost
	for c.size > c.capacity {
		c.remove(c.head.prev)
	}
}

// EvictTable drops every block of table id, for a deleted table.
func (c *Cache) EvictTable(id uint64) {
	c.mu.Lock()
	defer c.mu.Unlock()
	for k, e := range c.entries {
		if k.id == id {
			c.remove(e)
		}
	}
}

func (c *Cache) remove(e *cacheEntry) {
	c.unlink(e)
	delete(c.entries, e.key)
	c.size -= int64(len(e.block)) + cacheEntryOverhead
}

func (c *Cache) unlink(e *cacheEntry) {
	e.prev.next, e.next.prev = e.next, e.prev
	e.prev, e.next = nil, nil
}

func (c *Cache) pushFront(e *cacheEntry) {
	e.prev, e.next = &c.head, c.head.next
	c.head.next.prev = e
	c.head.next = e
}
