package raftstorage

import (
	"go.etcd.io/raft/v3/raftpb"
	"google.golang.org/protobuf/proto"
)

// entryCache keeps the newest entries of the log in memory, so that raft's
// reads of them (Entries for committed entries to apply and for appends to
// followers, Term for log matching) do not go to the engine. In a healthy
// cluster those reads are almost all near the tail: an entry is appended,
// sent to the followers, committed and applied within a few rounds. The
// engine is the slow path, and on some engines a very slow one: bitcask's
// hash keydir answers a range read by sorting every key it holds.
//
// The cache holds a run of consecutive entries that, when not empty, ends
// at the log's last index: an append that overwrites a tail replaces the
// cache's tail too, log GC trims its front, a snapshot empties it. It keeps
// at most maxEntries entries and maxBytes of encoded entries, the newest;
// an older entry is read from the engine.
//
// Only Update.Commit changes it, under Storage.mu, after the engine write
// that holds the same entries succeeded: the cache never holds an entry
// the engine does not. Entries are shared, not copied: raft does not
// modify an entry once it has handed it to Ready, and neither may anyone
// else.
type entryCache struct {
	ents  []*raftpb.Entry // consecutive indexes
	sizes []int           // proto.Size of each entry
	bytes int             // sum of sizes
	// maxEntries and maxBytes bound the cache; the newest entries stay.
	maxEntries, maxBytes int
	// hits and misses count entries served from memory and read from the
	// engine by Entries and Term.
	hits, misses uint64
}

// Default bounds of a Storage's entry cache: enough for the entries in
// flight between append and apply under a heavy write load, and for a
// follower a few rounds behind.
const (
	defaultCacheEntries = 4096
	defaultCacheBytes   = 4 << 20
)

// firstIndex returns the index of the first cached entry, 0 if none.
func (c *entryCache) firstIndex() uint64 {
	if len(c.ents) == 0 {
		return 0
	}
	return c.ents[0].GetIndex()
}

// lastIndex returns the index of the last cached entry, 0 if none.
func (c *entryCache) lastIndex() uint64 {
	if len(c.ents) == 0 {
		return 0
	}
	return c.ents[len(c.ents)-1].GetIndex()
}

// get returns entry i and its encoded size, if it is cached.
func (c *entryCache) get(i uint64) (e *raftpb.Entry, size int, ok bool) {
	first := c.firstIndex()
	if first == 0 || i < first || i > c.lastIndex() {
		return nil, 0, false
	}
	return c.ents[i-first], c.sizes[i-first], true
}

// append adds consecutive entries that Update.Append wrote: cached entries
// at or after the first new index are replaced (a conflicting tail), and
// if the new entries do not follow the cached ones directly, the cache
// starts again with them.
func (c *entryCache) append(ents []*raftpb.Entry) {
	if len(ents) == 0 {
		return
	}
	first, idx := c.firstIndex(), ents[0].GetIndex()
	switch {
	case first == 0 || idx < first || idx > c.lastIndex()+1:
		c.clear()
	default:
		c.truncateFrom(idx)
	}
	for _, e := range ents {
		n := proto.Size(e)
		c.ents = append(c.ents, e)
		c.sizes = append(c.sizes, n)
		c.bytes += n
	}
	c.evict()
}

// truncateFrom drops the cached entries with index >= i.
func (c *entryCache) truncateFrom(i uint64) {
	first := c.firstIndex()
	if first == 0 || i > c.lastIndex() {
		return
	}
	keep := int(max(i, first) - first)
	for _, n := range c.sizes[keep:] {
		c.bytes -= n
	}
	clear(c.ents[keep:]) // let the garbage collector have them
	c.ents, c.sizes = c.ents[:keep], c.sizes[:keep]
}

// compactTo drops the cached entries with index <= i (log GC).
func (c *entryCache) compactTo(i uint64) {
	first := c.firstIndex()
	if first == 0 || i < first {
		return
	}
	c.dropFront(int(min(i, c.lastIndex()) - first + 1))
}

// evict drops the oldest entries until the cache is within its bounds.
func (c *entryCache) evict() {
	n := 0
	bytes := c.bytes
	for len(c.ents)-n > c.maxEntries || (bytes > c.maxBytes && len(c.ents)-n > 0) {
		bytes -= c.sizes[n]
		n++
	}
	c.dropFront(n)
}

// dropFront drops the first n entries. (Slicing them off also takes them
// out of the slices' capacity, so the next append that grows the arrays
// copies only the entries still cached.)
func (c *entryCache) dropFront(n int) {
	if n == 0 {
		return
	}
	for _, s := range c.sizes[:n] {
		c.bytes -= s
	}
	clear(c.ents[:n])
	c.ents, c.sizes = c.ents[n:], c.sizes[n:]
}

// clear empties the cache.
func (c *entryCache) clear() {
	clear(c.ents)
	c.ents, c.sizes, c.bytes = c.ents[:0], c.sizes[:0], 0
}
