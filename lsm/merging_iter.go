package lsm

import (
	"github.com/kvs-lab/kvs/internal/base"
)

// mergingIter merges several internal iterators (memtables, L0 tables
// newest first, one iterator per deeper level) into one that walks the
// union of their entries in base.InternalCompare order, in both
// directions. It implements base.InternalIterator and hides nothing: every
// version of every key shows up, and dbIter decides what a reader sees.
//
// A binary heap holds the children that are positioned, keyed by their
// current entry: a min-heap when moving forward, a max-heap when moving
// backward. The top is the merged iterator's entry. Next advances the top
// child and restores the heap in O(log n) for n children; seeks position
// every child and rebuild the heap in O(n) plus n child seeks.
//
// Ties: two children should never hold the same internal key (sequence
// numbers are unique in a correct LSM tree), but if they do, the lower
// child index comes first in forward order, so the caller should pass
// newer sources first; backward iteration yields the exact reverse. The
// merged order is thus by (internal key, child index).
//
// Positioning methods on a mergingIter that is not at an entry (Next after
// the end, or before any seek) return false, as the children's do. Errors
// are sticky: the first error any child reports ends iteration, Valid is
// false from then on and Error returns it. A mergingIter belongs to one
// goroutine at a time.
type mergingIter struct {
	children []mergingChild
	// heap holds the indexes into children of the positioned children,
	// ordered by heapLess.
	heap []int
	// reverse is true while moving backward: heap is then a max-heap.
	reverse bool
	err     error
	closed  bool
}

// mergingChild is one source of a mergingIter.
type mergingChild struct {
	iter base.InternalIterator
	// key caches iter.Key() while the child is in the heap, so that heap
	// comparisons do not call through the interface.
	key base.InternalKey
}

var _ base.InternalIterator = (*mergingIter)(nil)

// newMergingIter returns an unpositioned iterator over the union of iters.
// Pass newer sources first: that order breaks ties (see mergingIter). The
// merging iterator owns the children: its Close closes them.
func newMergingIter(iters ...base.InternalIterator) *mergingIter {
	m := &mergingIter{
		children: make([]mergingChild, len(iters)),
		heap:     make([]int, 0, len(iters)),
	}
	for i, it := range iters {
		m.children[i].iter = it
	}
	return m
}

// SeekGE moves to the newest version of the first user key >= key.
func (m *mergingIter) SeekGE(key []byte) bool {
	return m.position(false, func(it base.InternalIterator) bool { return it.SeekGE(key) })
}

// SeekLT moves to the oldest version of the last user key < key.
func (m *mergingIter) SeekLT(key []byte) bool {
	return m.position(true, func(it base.InternalIterator) bool { return it.SeekLT(key) })
}

// First moves to the first entry.
func (m *mergingIter) First() bool {
	return m.position(false, base.InternalIterator.First)
}

// Last moves to the last entry.
func (m *mergingIter) Last() bool {
	return m.position(true, base.InternalIterator.Last)
}

// position moves every child with move and builds the heap for the
// direction reverse.
func (m *mergingIter) position(reverse bool, move func(base.InternalIterator) bool) bool {
	if m.closed || m.err != nil {
		return false
	}
	m.heap = m.heap[:0]
	for i := range m.children {
		move(m.children[i].iter)
		if !m.admit(i) {
			return false
		}
	}
	m.init(reverse)
	return m.Valid()
}

// Next moves to the following entry.
func (m *mergingIter) Next() bool {
	if !m.Valid() {
		return false
	}
	if m.reverse && !m.switchToForward() {
		return false
	}
	top := m.heap[0]
	m.children[top].iter.Next()
	m.advanced(top)
	return m.Valid()
}

// Prev moves to the preceding entry.
func (m *mergingIter) Prev() bool {
	if !m.Valid() {
		return false
	}
	if !m.reverse && !m.switchToReverse() {
		return false
	}
	top := m.heap[0]
	m.children[top].iter.Prev()
	m.advanced(top)
	return m.Valid()
}

// switchToForward turns a backward iteration around: the merged iterator
// is at entry cur (the top of the max-heap), and Next must find the entry
// that follows cur in the union.
//
// Moving backward, each other child sits at its last entry before cur, or
// is exhausted; moving forward, each must sit at its first entry after
// cur. Stepping each child once is not enough: an exhausted child has no
// position to step from, and the interface has no seek to an internal key.
// So, as leveldb's MergingIterator and pebble's mergingIter do, re-seek
// every other child relative to cur: SeekGE(cur's user key) lands on that
// user key's newest version, then step over the versions that come before
// cur in the merged order. The child at cur stays; Next then advances it.
// A turn thus costs a seek per child, plus a step per version of cur's
// user key that a child holds before cur. It returns false if a child
// failed.
func (m *mergingIter) switchToForward() bool {
	cur := m.heap[0]
	m.heap = m.heap[:0]
	for i := range m.children {
		if i == cur {
			continue
		}
		m.seekAfter(i, cur)
		if !m.admit(i) {
			return false
		}
	}
	m.heap = append(m.heap, cur)
	m.init(false)
	return true
}

// switchToReverse turns a forward iteration around: each other child must
// move to its last entry before cur. As in switchToForward, re-seek it to
// its first entry after cur, then step back once; a child with no entry
// after cur moves to its Last instead. The child at cur stays; Prev then
// moves it back. It returns false if a child failed.
//
// NB: SeekLT(cur's user key) would not do: it lands on the oldest version
// of the user key before cur's, skipping the versions of cur's own user
// key that are newer than cur, which Prev must still visit.
func (m *mergingIter) switchToReverse() bool {
	cur := m.heap[0]
	m.heap = m.heap[:0]
	for i := range m.children {
		if i == cur {
			continue
		}
		m.seekAfter(i, cur)
		it := m.children[i].iter
		switch {
		case it.Valid():
			it.Prev()
		case it.Error() == nil:
			it.Last()
		}
		if !m.admit(i) {
			return false
		}
	}
	m.heap = append(m.heap, cur)
	m.init(true)
	return true
}

// seekAfter moves child i to its first entry after children[cur].key in
// the merged order (internal key, then child index), or off its end.
//
// NB: for i != cur, "after" and "at or after" are the same, because no two
// children share an index: an entry equal to cur's key comes after it
// exactly when i > cur.
func (m *mergingIter) seekAfter(i, cur int) {
	key := m.children[cur].key
	it := m.children[i].iter
	for ok := it.SeekGE(key.UserKey); ok; ok = it.Next() {
		c := base.InternalCompare(it.Key(), key)
		if c > 0 || (c == 0 && i > cur) {
			return
		}
	}
}

// admit appends child i to the (unordered) heap if it is at an entry, and
// records its error if it failed. It returns false on error, having
// emptied the heap.
func (m *mergingIter) admit(i int) bool {
	c := &m.children[i]
	if c.iter.Valid() {
		c.key = c.iter.Key()
		m.heap = append(m.heap, i)
		return true
	}
	if err := c.iter.Error(); err != nil {
		m.fail(err)
		return false
	}
	return true
}

// advanced restores the heap after the top child, i, moved: it sinks to
// its new place, or leaves the heap when exhausted or failed.
func (m *mergingIter) advanced(i int) {
	c := &m.children[i]
	if c.iter.Valid() {
		c.key = c.iter.Key()
		m.down(0)
		return
	}
	if err := c.iter.Error(); err != nil {
		m.fail(err)
		return
	}
	n := len(m.heap) - 1
	m.heap[0] = m.heap[n]
	m.heap = m.heap[:n]
	if n > 0 {
		m.down(0)
	}
}

// fail records err, the first error, and ends iteration.
func (m *mergingIter) fail(err error) {
	if m.err == nil {
		m.err = err
	}
	m.heap = m.heap[:0]
}

// Valid reports whether the iterator is at an entry.
func (m *mergingIter) Valid() bool { return len(m.heap) > 0 && m.err == nil }

// Key returns the current entry's internal key. It aliases the child's
// memory: valid until the next move, not to be modified.
func (m *mergingIter) Key() base.InternalKey {
	if !m.Valid() {
		return base.InternalKey{}
	}
	return m.children[m.heap[0]].key
}

// Value returns the current entry's value, under the same terms as Key.
func (m *mergingIter) Value() []byte {
	if !m.Valid() {
		return nil
	}
	return m.children[m.heap[0]].iter.Value()
}

// Error returns the first error any child reported.
func (m *mergingIter) Error() error { return m.err }

// Close closes every child and returns the first error: the one that
// ended iteration, else the first a child's Close returned. It may be
// called more than once; later calls return the same error and close
// nothing.
func (m *mergingIter) Close() error {
	if m.closed {
		return m.err
	}
	m.closed = true
	m.heap = m.heap[:0]
	for i := range m.children {
		if err := m.children[i].iter.Close(); err != nil && m.err == nil {
			m.err = err
		}
	}
	return m.err
}

// The heap: a binary heap over m.heap, hand-rolled rather than through
// container/heap to avoid an interface call per comparison and swap.

// init orders m.heap for direction reverse, in O(n).
func (m *mergingIter) init(reverse bool) {
	m.reverse = reverse
	for i := len(m.heap)/2 - 1; i >= 0; i-- {
		m.down(i)
	}
}

// less reports whether heap slot a belongs above slot b: the smaller
// (internal key, child index) going forward, the larger going backward.
func (m *mergingIter) less(a, b int) bool {
	ia, ib := m.heap[a], m.heap[b]
	c := base.InternalCompare(m.children[ia].key, m.children[ib].key)
	if c == 0 {
		c = ia - ib
	}
	if m.reverse {
		return c > 0
	}
	return c < 0
}

// down sinks the item in slot i until neither child slot belongs above it.
func (m *mergingIter) down(i int) {
	n := len(m.heap)
	for {
		l := 2*i + 1
		if l >= n {
			return
		}
		j := l
		if r := l + 1; r < n && m.less(r, l) {
			j = r
		}
		if !m.less(j, i) {
			return
		}
		m.heap[i], m.heap[j] = m.heap[j], m.heap[i]
		i = j
	}
}
