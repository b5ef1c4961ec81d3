package memtable

import (
	"bytes"
	"errors"
	"fmt"
	"math"
	"sync/atomic"

	"github.com/kvs-lab/kvs/internal/base"
)

// Errors returned by Add. Check them with errors.Is: Add wraps them with
// the key and sizes.
var (
	// ErrArenaFull is returned by Add when the arena has no room left for
	// the entry. Nothing was added. The entry fits in an empty memtable of
	// the same capacity: the engine rotates to a new memtable and retries.
	ErrArenaFull = errors.New("kvs/memtable: arena full")
	// ErrEntryTooLarge is returned by Add for an entry whose MaxNodeSize
	// exceeds Capacity - EmptySize: an empty memtable of this capacity
	// might not hold it. Rotating does not help; the engine must reject the
	// write or use a larger memtable.
	ErrEntryTooLarge = errors.New("kvs/memtable: entry too large for the arena")
	// ErrKeyExists is returned by Add when the memtable already holds the
	// internal key (the same user key and trailer). The memtable is
	// unchanged, except that a loser of a race between concurrent Adds of
	// the same key may leave its unlinked node's bytes counted in Size.
	ErrKeyExists = errors.New("kvs/memtable: internal key already present")
)

// MaxArenaBytes is the largest arena: links are uint32 offsets.
const MaxArenaBytes = 1<<32 - 4

// EmptySize is Size of a new memtable: the arena bytes of the head node, a
// tower of maxHeight links with an empty key and value. It is also the
// smallest capacity New gives.
const EmptySize = maxHeight*linkSize + headerSize

// Memtable is a sorted, in-memory set of internal keys with values: a
// skiplist whose nodes live in one arena (see the package doc).
//
// Add is safe for concurrent use by many goroutines, and so are Get, NewIter
// and the size methods, which never block and take no lock. An Iterator
// belongs to one goroutine at a time.
type Memtable struct {
	arena *arena
	// head is the head node's offset: a sentinel before every entry, with
	// a full tower and an empty key that is never compared.
	head uint32
	// height is the number of levels in use, 1..maxHeight. It only grows,
	// and grows before a taller node is linked, so a search starting at
	// height-1 misses no link (a stale, lower value only costs time).
	height atomic.Uint32
	// count is the number of Adds that returned nil.
	count atomic.Int64
	// filter holds every user key added (and a few that lost a race to
	// add), so that Get can skip the search for most absent keys.
	filter *filter
}

// New returns an empty memtable with an arena of arenaBytes bytes, rounded
// down to a multiple of 4 and clamped to [EmptySize, MaxArenaBytes]. The
// whole arena is allocated here, however little the memtable comes to
// hold.
func New(arenaBytes int) *Memtable {
	capacity := uint64(max(arenaBytes, 0)) &^ 3
	capacity = min(max(capacity, EmptySize), MaxArenaBytes)
	m := &Memtable{arena: newArena(int(capacity)), filter: newFilter(int(capacity))}
	head, ok := m.arena.newNode(maxHeight, base.InternalKey{}, nil)
	if !ok {
		panic("memtable: the head node does not fit in a minimum-size arena")
	}
	m.head = head
	m.height.Store(1)
	return m
}

// MaxNodeSize returns the most arena bytes one Add of a keyLen-byte user
// key and a valueLen-byte value can use: a node of the tallest height
// (usually a node is shorter; Size says what was used). An engine can sum
// it over a batch to check that the batch fits before applying it.
func MaxNodeSize(keyLen, valueLen int) int {
	return int(min(nodeSize(maxHeight, max(keyLen, 0), max(valueLen, 0)), math.MaxInt))
}

// Capacity returns the arena's size in bytes: Size never exceeds it.
func (m *Memtable) Capacity() int { return len(m.arena.buf) }

// Size returns the arena bytes used: EmptySize plus the size of every node
// allocated, align4(16 + 4h + len(user key) + len(value)) for a node of
// height h. Each Add that returns nil adds its node's size; an Add that
// fails leaves Size unchanged, with one exception: an Add that loses a race
// with a concurrent Add of the same internal key has already allocated its
// node, whose bytes stay used and counted. Size never exceeds Capacity. The
// engine compares it with its memtable budget.
func (m *Memtable) Size() int { return m.arena.size() }

// Len returns the number of entries. While Adds run concurrently it may lag
// behind entries that readers can already see.
func (m *Memtable) Len() int { return int(m.count.Load()) }

// Empty reports whether the memtable holds no entry.
func (m *Memtable) Empty() bool { return m.arena.next(m.head, 0) == 0 }

// Add inserts value under key. The memtable copies both; the caller may
// reuse them on return. Add returns ErrArenaFull, ErrEntryTooLarge or
// ErrKeyExists (wrapped; see each) or an error for a kind other than
// base.KindSet and base.KindDelete, and adds nothing when it fails.
//
// Add is safe for concurrent use: adders link their nodes with
// compare-and-swap, and a reader sees an entry either whole or not at all.
// An entry is visible to readers from the moment it is linked at level 0,
// which happens before Add returns.
func (m *Memtable) Add(key base.InternalKey, value []byte) error {
	if kind := key.Kind(); kind != base.KindSet && kind != base.KindDelete {
		return fmt.Errorf("kvs/memtable: add %s: unknown kind", key)
	}
	// NB: an entry that fits the head-less arena at the tallest height fits
	// an empty memtable whatever height it draws, so a rotation always
	// makes room for an entry that failed with ErrArenaFull.
	if nodeSize(maxHeight, len(key.UserKey), len(value)) > uint64(m.Capacity()-EmptySize) {
		return fmt.Errorf("%w: %d-byte key and %d-byte value need up to %d bytes, the arena holds %d",
			ErrEntryTooLarge, len(key.UserKey), len(value), MaxNodeSize(len(key.UserKey), len(value)), m.Capacity()-EmptySize)
	}

	// Find, at every level, the last node before key (prev) and the first
	// node after it (next): the splice the new node goes into.
	var prev, next [maxHeight]uint32
	if m.findSplice(key.UserKey, key.Trailer, &prev, &next) {
		return fmt.Errorf("%w: %s", ErrKeyExists, key)
	}

	h := randomHeight()
	nd, ok := m.arena.newNode(h, key, value)
	if !ok {
		return fmt.Errorf("%w: %s needs %d bytes, %d of %d used",
			ErrArenaFull, key, nodeSize(h, len(key.UserKey), len(value)), m.Size(), m.Capacity())
	}
	// The key goes into the filter before the node is linked, so a reader
	// that can reach the node also passes the filter.
	m.filter.add(key.UserKey)

	// Raise the list height before linking above it, so searches that
	// start at the list height can reach the new levels.
	for lh := m.height.Load(); h > lh; lh = m.height.Load() {
		if m.height.CompareAndSwap(lh, h) {
			break
		}
	}

	// Link bottom-up: once linked at level 0 the node is in the list, and
	// each higher link only makes it faster to find (Pugh 1990, §2). The
	// node's own link at level i is set before the CAS that publishes it
	// at level i; its key and value were written before the first CAS.
	for i := 0; i < int(h); i++ {
		for {
			m.arena.setNext(nd, i, next[i])
			if m.arena.casNext(prev[i], i, next[i], nd) {
				break
			}
			// Another Add linked a node after prev[i] since the splice was
			// found. Nodes are never removed, so prev[i] still sorts before
			// key: search again from it at this level only.
			var found bool
			prev[i], next[i], found = m.findSpliceForLevel(key.UserKey, key.Trailer, i, prev[i])
			if found {
				if i > 0 {
					// Level 0 admits one node per key; a twin above it
					// means the list is broken.
					panic(fmt.Sprintf("memtable: %s linked twice at level %d", key, i))
				}
				// A concurrent Add of the same key won. This node stays
				// unreachable; its bytes stay counted in Size.
				return fmt.Errorf("%w: %s", ErrKeyExists, key)
			}
		}
	}
	m.count.Add(1)
	return nil
}

// MayContain reports whether the memtable may hold a version of userKey,
// by its bloom filter alone; false is certain. Get consults the filter
// itself; an engine that counts filter skips calls MayContain first.
func (m *Memtable) MayContain(userKey []byte) bool { return m.filter.mayContain(userKey) }

// FilterBytes returns the memory of the memtable's bloom filter, which is
// allocated at New beside the arena and not counted in Size or Capacity.
func (m *Memtable) FilterBytes() int { return m.filter.bytes() }

// Get returns the newest version of userKey with a sequence number at most
// seq, as a reader at snapshot seq sees it: its value and kind. found is
// false when the memtable holds no such version. A version of kind
// base.KindDelete is found too: it hides older versions in older tables.
// seq above base.SeqMax means base.SeqMax.
//
// The value aliases the arena: the caller must not modify it. It stays valid
// and unchanged for as long as the caller holds it, after the memtable is
// dropped too. Get is safe for concurrent use and never blocks.
func (m *Memtable) Get(userKey []byte, seq uint64) (value []byte, kind base.Kind, found bool) {
	if !m.filter.mayContain(userKey) {
		return nil, 0, false
	}
	return m.GetPastFilter(userKey, seq)
}

// GetPastFilter is Get without the filter check, for a caller that has
// just asked MayContain (to count what the filter saves) and need not
// hash the key twice.
func (m *Memtable) GetPastFilter(userKey []byte, seq uint64) (value []byte, kind base.Kind, found bool) {
	// Versions of userKey sort newest first, so the first node at or after
	// (userKey, seq, KindMax) is the newest version visible at seq, if its
	// user key is userKey.
	nd := m.findGE(userKey, base.MakeTrailer(min(seq, base.SeqMax), base.KindMax))
	if nd == 0 || !bytes.Equal(m.arena.userKey(nd), userKey) {
		return nil, 0, false
	}
	return m.arena.value(nd), base.Kind(m.arena.trailer(nd) & 0xff), true
}

// findSplice fills prev and next, at every level, with the last node
// before the internal key (userKey, trailer) and the first node at or after
// it (0 at the end of a level). Levels above the list height get the head
// and 0. found reports whether next[0] holds the key itself.
func (m *Memtable) findSplice(userKey []byte, trailer uint64, prev, next *[maxHeight]uint32) (found bool) {
	lh := int(m.height.Load())
	for i := lh; i < maxHeight; i++ {
		prev[i], next[i] = m.head, 0
	}
	x := m.head
	for i := lh - 1; i >= 0; i-- {
		x, next[i], found = m.findSpliceForLevel(userKey, trailer, i, x)
		prev[i] = x
	}
	return found
}

// findSpliceForLevel walks level i from start, which must sort before the
// internal key (userKey, trailer) or be the head, and returns the last node
// before the key and the first at or after it (0 at the end of the level).
// found reports whether that node holds the key itself.
func (m *Memtable) findSpliceForLevel(userKey []byte, trailer uint64, i int, start uint32) (prev, next uint32, found bool) {
	prev = start
	for {
		next = m.arena.next(prev, i)
		if next == 0 {
			return prev, 0, false
		}
		if c := m.arena.compare(next, userKey, trailer); c >= 0 {
			return prev, next, c == 0
		}
		prev = next
	}
}

// findGE returns the first node at or after the internal key (userKey,
// trailer), or 0 if there is none. O(log n) expected.
func (m *Memtable) findGE(userKey []byte, trailer uint64) uint32 {
	x, next := m.head, uint32(0)
	for i := int(m.height.Load()) - 1; i >= 0; i-- {
		x, next, _ = m.findSpliceForLevel(userKey, trailer, i, x)
	}
	return next
}

// findLT returns the last node before the internal key (userKey, trailer),
// or 0 if there is none. O(log n) expected.
func (m *Memtable) findLT(userKey []byte, trailer uint64) uint32 {
	x := m.head
	for i := int(m.height.Load()) - 1; i >= 0; i-- {
		x, _, _ = m.findSpliceForLevel(userKey, trailer, i, x)
	}
	if x == m.head {
		return 0
	}
	return x
}

// findLast returns the last node, or 0 if the memtable is empty. O(log n)
// expected: it runs right as far as it can on each level, then descends.
func (m *Memtable) findLast() uint32 {
	x := m.head
	for i := int(m.height.Load()) - 1; i >= 0; i-- {
		for n := m.arena.next(x, i); n != 0; n = m.arena.next(x, i) {
			x = n
		}
	}
	if x == m.head {
		return 0
	}
	return x
}
