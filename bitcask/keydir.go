package bitcask

import (
	"maps"
	"slices"
	"sort"
	"strings"
	"sync"
	"unsafe"

	"github.com/google/btree"
	"github.com/kvs-lab/kvs"
)

// The keydir is the in-memory map from every live key to where its newest
// record lies (Bitcask paper, §2: "keydir"). This file holds its entry,
// the small interface the engine uses, and the two implementations
// Options.Bitcask.Index selects:
//
//	"hash"  a Go map keyed by string, the paper's design. O(1) Get. An
//	        ordered scan collects the keys in range (O(n) over the map) and
//	        sorts them (O(k log k)); a snapshot copies the map (O(n)).
//	"btree" a google/btree BTreeG ordered by key. O(log n) Get; iterators
//	        and snapshots Clone it in O(1) (copy-on-write: the first writes
//	        after a Clone copy the nodes on their path).

// entry says where the newest record of a key lies. Its 24 bytes are most
// of the keydir's memory per key, so it is kept compact: 4-byte file id,
// 4-byte record size (a record is at most 35 B + 64 KiB + 1 GiB), 8-byte
// offset (a segment may exceed 4 GiB) and the 8-byte sequence number,
// which recovery needs to let the newest record win and which, with the
// key length, also gives the value's length (valueLenOf).
type entry struct {
	fileID uint32
	size   uint32
	offset int64
	seq    uint64
}

// item is a key with its entry, as the btree stores it and as ordered
// views return it.
type item struct {
	key string
	e   entry
}

// readIndex is a keydir that can be read: the live one under db.mu, or a
// snapshot's frozen copy, which needs no lock.
type readIndex interface {
	get(key []byte) (entry, bool)
	len() int
	// view returns the items in [lower, upper) (nil bounds are open) as
	// of now, in key order. The caller holds db.mu at least for reading
	// when reading the live keydir; the view needs no lock afterwards.
	view(lower, upper []byte) orderedView
}

// index is the live keydir. Writers hold db.mu; readers hold it for
// reading.
type index interface {
	readIndex
	// set stores e under key, returning the entry it replaced.
	set(key string, e entry) (old entry, replaced bool)
	// remove deletes key, returning the entry it held.
	remove(key []byte) (old entry, removed bool)
	// memBytes estimates the keydir's memory (see hashIndex.memBytes and
	// btreeIndex.memBytes for the formulas).
	memBytes() int64
	// reserve makes room for about n keys in an empty index, so that
	// recovery does not grow it step by step; a no-op where it does not
	// help.
	reserve(n int)
	// snapshot returns a frozen copy: O(1) for the btree, O(n) for the
	// hash map. The caller holds db.mu for reading.
	snapshot() readIndex
}

// orderedView is a point-in-time, read-only, ordered sequence of items,
// the base of an iterator. Each call appends up to n items to dst. A view
// is used by one goroutine at a time.
type orderedView interface {
	// ascend appends, in increasing key order, items with key >= start
	// (key > start when after), within the view's bounds. A nil start
	// means the lower bound.
	ascend(dst []item, start []byte, after bool, n int) []item
	// descend appends, in decreasing key order, items with key < start
	// within the view's bounds. A nil start means the upper bound.
	descend(dst []item, start []byte, n int) []item
}

func newIndex(kind string) index {
	if kind == kvs.IndexBTree {
		return newBTreeIndex()
	}
	return &hashIndex{m: make(map[string]entry)}
}

// allocSize approximates the bytes Go's allocator hands out for an n-byte
// allocation: small objects are rounded up to a size class. The classes
// step by 8 bytes up to 32, by 16 up to 256, by 32 up to 512, by 64 up to
// 1 KiB, and by about an eighth beyond; large objects take whole 8 KiB
// pages.
func allocSize(n int) int64 {
	roundUp := func(n, to int) int64 { return int64((n + to - 1) / to * to) }
	switch {
	case n <= 0:
		return 0
	case n <= 32:
		return roundUp(n, 8)
	case n <= 256:
		return roundUp(n, 16)
	case n <= 512:
		return roundUp(n, 32)
	case n <= 1024:
		return roundUp(n, 64)
	case n <= 32<<10:
		step := 128 // the largest power of two <= (n-1)/8
		for step*2*8 <= n-1 {
			step *= 2
		}
		return roundUp(n, step)
	}
	return roundUp(n, 8<<10)
}

// hashIndex is the paper's keydir: a hash table from key to entry.
type hashIndex struct {
	m        map[string]entry
	keyBytes int64 // allocSize of every key string
	peak     int   // the most keys the map has held: Go maps never shrink
}

// hashBytesPerSlot is what one slot of a Go map (Go 1.24+ swiss tables)
// costs: it holds the 16-byte string header and the 24-byte entry, eight
// slots share an 8-byte control word (41 bytes per slot), and a full-size
// table of 1024 slots (41,984 bytes) is a large allocation, rounded up to
// whole 8 KiB pages (49,152 bytes): 48 bytes per slot.
const hashBytesPerSlot = 48

// hashSlots is how many slots a map that has held n keys has: with a
// uniform hash its tables fill, and split, in step, so it behaves like one
// table that doubles when 7/8 full.
func hashSlots(n int) int64 {
	if n == 0 {
		return 0 // a map allocates nothing until its first insert
	}
	c := int64(8)
	for c*7/8 < int64(n) {
		c *= 2
	}
	return c
}

// memBytes estimates the map's memory: hashBytesPerSlot per slot of a map
// grown to the peak key count, plus each key string's allocation. So the
// figure per key swings between about 55 and 110 bytes, plus the key, as
// the map doubles; BenchmarkIndexMemory measures within a few percent of
// it.
func (h *hashIndex) memBytes() int64 { return hashSlots(h.peak)*hashBytesPerSlot + h.keyBytes }

func (h *hashIndex) get(key []byte) (entry, bool) {
	e, ok := h.m[string(key)] // NB: the compiler does not allocate for this lookup
	return e, ok
}

func (h *hashIndex) len() int { return len(h.m) }

func (h *hashIndex) set(key string, e entry) (entry, bool) {
	old, ok := h.m[key]
	h.m[key] = e
	if !ok {
		h.keyBytes += allocSize(len(key))
		h.peak = max(h.peak, len(h.m))
	}
	return old, ok
}

// reserve sizes the empty map for n keys up front: growing a Go map
// rehashes every key at each doubling, which is most of what an Open with
// hint files would otherwise spend.
func (h *hashIndex) reserve(n int) {
	if len(h.m) == 0 && n > 0 {
		h.m = make(map[string]entry, n)
		h.peak = max(h.peak, n)
	}
}

func (h *hashIndex) remove(key []byte) (entry, bool) {
	old, ok := h.m[string(key)]
	if ok {
		delete(h.m, string(key))
		h.keyBytes -= allocSize(len(key))
	}
	return old, ok
}

// view collects the keys in [lower, upper) with their entries: O(n) over
// the whole map, however narrow the range. The view sorts them, O(k log k),
// when first used, so that the sort runs outside db.mu.
func (h *hashIndex) view(lower, upper []byte) orderedView { return collect(h.m, lower, upper) }

// snapshot copies the map: O(n) time and memory.
func (h *hashIndex) snapshot() readIndex { return hashSnapshot(maps.Clone(h.m)) }

// hashSnapshot is a frozen copy of a hashIndex's map.
type hashSnapshot map[string]entry

func (s hashSnapshot) get(key []byte) (entry, bool) {
	e, ok := s[string(key)]
	return e, ok
}

func (s hashSnapshot) len() int { return len(s) }

func (s hashSnapshot) view(lower, upper []byte) orderedView { return collect(s, lower, upper) }

// collect returns the items of m in [lower, upper) as an unsorted
// sliceView.
func collect(m map[string]entry, lower, upper []byte) *sliceView {
	lo, hi := string(lower), string(upper)
	v := &sliceView{}
	for k, e := range m {
		if (lower != nil && k < lo) || (upper != nil && k >= hi) {
			continue
		}
		v.items = append(v.items, item{k, e})
	}
	return v
}

// sliceView is an orderedView over a slice of items all within bounds,
// sorted when first read.
type sliceView struct {
	items  []item
	sorted bool
}

func (v *sliceView) sort() {
	if !v.sorted {
		slices.SortFunc(v.items, func(a, b item) int { return strings.Compare(a.key, b.key) })
		v.sorted = true
	}
}

func (v *sliceView) ascend(dst []item, start []byte, after bool, n int) []item {
	v.sort()
	i := 0
	if start != nil {
		s := string(start)
		i = sort.Search(len(v.items), func(i int) bool {
			if after {
				return v.items[i].key > s
			}
			return v.items[i].key >= s
		})
	}
	return append(dst, v.items[i:min(i+n, len(v.items))]...)
}

func (v *sliceView) descend(dst []item, start []byte, n int) []item {
	v.sort()
	j := len(v.items) // items[:j] are < start
	if start != nil {
		s := string(start)
		j = sort.Search(len(v.items), func(i int) bool { return v.items[i].key >= s })
	}
	for i := j - 1; i >= 0 && i >= j-n; i-- {
		dst = append(dst, v.items[i])
	}
	return dst
}

// btreeDegree is the google/btree degree: nodes hold 31 to 63 items of
// 40 bytes, about 2.5 KiB, which keeps a Get at about four node visits for
// a million keys.
const btreeDegree = 32

// btreeIndex is an ordered keydir. Iterators and snapshots Clone it in
// O(1); google/btree then copies nodes lazily as either tree changes.
type btreeIndex struct {
	// cloneMu serializes Clone, which writes the tree's copy-on-write
	// context: callers of view and snapshot hold db.mu only for reading,
	// so two of them may run at once. Writers hold db.mu for writing,
	// which excludes both.
	cloneMu  sync.Mutex
	t        *btree.BTreeG[item]
	keyBytes int64
	// inserts counts new keys; appends those greater than every key
	// before them (maxKey), which leave the nodes they split half full.
	inserts, appends int64
	maxKey           string
}

func lessItem(a, b item) bool { return a.key < b.key }

func newBTreeIndex() *btreeIndex {
	return &btreeIndex{t: btree.NewG(btreeDegree, lessItem)}
}

// The memory one key costs inside the btree, key bytes aside: a 40-byte
// item (string header and entry) in a node's items slice, plus a share of
// the children slices and node headers. A node's slice keeps the capacity
// of 64 items it grew to before splitting, so the cost depends on how
// full splits leave the nodes: keys inserted in random order leave them
// about 2/3 full (63 B per key, measured), keys inserted in ascending
// order leave every split node half full for good (89 B per key).
const (
	btreeRandomBytes    = 63
	btreeAscendingBytes = 89
)

// memBytes estimates the btree's memory: per key, btreeRandomBytes plus
// the extra cost of ascending inserts in proportion to their share of all
// inserts, plus each key string's allocation.
// reserve does nothing: a btree grows a node at a time, with no rehash.
func (b *btreeIndex) reserve(int) {}

func (b *btreeIndex) memBytes() int64 {
	perKey := float64(btreeRandomBytes)
	if b.inserts > 0 {
		perKey += float64(btreeAscendingBytes-btreeRandomBytes) * float64(b.appends) / float64(b.inserts)
	}
	return int64(perKey*float64(b.t.Len())) + b.keyBytes
}

// probe returns an item for looking key up without copying it.
// NB: the string aliases key; the tree only compares it, never keeps it.
func probe(key []byte) item {
	return item{key: unsafe.String(unsafe.SliceData(key), len(key))}
}

func (b *btreeIndex) get(key []byte) (entry, bool) {
	it, ok := b.t.Get(probe(key))
	return it.e, ok
}

func (b *btreeIndex) len() int { return b.t.Len() }

func (b *btreeIndex) set(key string, e entry) (entry, bool) {
	old, ok := b.t.ReplaceOrInsert(item{key, e})
	if !ok {
		b.keyBytes += allocSize(len(key))
		b.inserts++
		if key > b.maxKey {
			b.appends++
			b.maxKey = key
		}
	}
	return old.e, ok
}

func (b *btreeIndex) remove(key []byte) (entry, bool) {
	old, ok := b.t.Delete(probe(key))
	if ok {
		b.keyBytes -= allocSize(len(key))
	}
	return old.e, ok
}

func (b *btreeIndex) clone() *btree.BTreeG[item] {
	b.cloneMu.Lock()
	defer b.cloneMu.Unlock()
	return b.t.Clone()
}

// view clones the tree: O(1).
func (b *btreeIndex) view(lower, upper []byte) orderedView {
	return newBTreeView(b.clone(), lower, upper)
}

// snapshot clones the tree: O(1).
func (b *btreeIndex) snapshot() readIndex { return btreeSnapshot{b.clone()} }

// btreeSnapshot is a frozen clone of a btreeIndex. Nothing writes to it,
// so any number of goroutines may read it without a lock.
type btreeSnapshot struct{ t *btree.BTreeG[item] }

func (s btreeSnapshot) get(key []byte) (entry, bool) {
	it, ok := s.t.Get(probe(key))
	return it.e, ok
}

func (s btreeSnapshot) len() int { return s.t.Len() }

// view reads the frozen tree directly: it is never written, so it needs
// no Clone (which would write it).
func (s btreeSnapshot) view(lower, upper []byte) orderedView {
	return newBTreeView(s.t, lower, upper)
}

// btreeView walks a tree nobody writes, between bounds. google/btree has
// no cursor, only callbacks, so each call descends from the root: O(log n)
// per batch of n items.
type btreeView struct {
	t            *btree.BTreeG[item]
	lower, upper []byte // copies; nil means open
}

func newBTreeView(t *btree.BTreeG[item], lower, upper []byte) *btreeView {
	return &btreeView{t: t, lower: lower, upper: upper}
}

func (v *btreeView) ascend(dst []item, start []byte, after bool, n int) []item {
	if start == nil {
		start, after = v.lower, false
	}
	upper := v.upper
	count := 0
	fn := func(it item) bool {
		if upper != nil && it.key >= string(upper) {
			return false
		}
		if after && it.key == string(start) {
			return true
		}
		dst = append(dst, it)
		count++
		return count < n
	}
	if start == nil {
		v.t.Ascend(fn)
	} else {
		v.t.AscendGreaterOrEqual(probe(start), fn)
	}
	return dst
}

func (v *btreeView) descend(dst []item, start []byte, n int) []item {
	if start == nil {
		start = v.upper
	}
	lower := v.lower
	count := 0
	fn := func(it item) bool {
		if lower != nil && it.key < string(lower) {
			return false
		}
		if start != nil && it.key == string(start) {
			return true // descend is strict: key < start
		}
		dst = append(dst, it)
		count++
		return count < n
	}
	if start == nil {
		v.t.Descend(fn)
	} else {
		v.t.DescendLessOrEqual(probe(start), fn)
	}
	return dst
}
