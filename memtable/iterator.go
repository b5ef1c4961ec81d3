package memtable

import (
	"bytes"

	"github.com/kvs-lab/kvs/internal/base"
)

// Iterator walks a memtable's entries in internal key order (user key
// ascending, newest version first), limited to user keys in [lower, upper).
// It implements base.InternalIterator.
//
// An Iterator belongs to one goroutine at a time; many iterators may run
// over one memtable while Adds go on, without locks. An iterator sees each
// entry whole or not at all. Entries added after it was positioned may or
// may not show up as it moves, but an entry it has seen stays in the list.
//
// Costs, for n entries: SeekGE, SeekLT, First and Last are O(log n)
// expected; Next is O(1); Prev is O(log n) expected, because nodes have no
// back links: it searches from the head for the last node before the
// current one.
type Iterator struct {
	m *Memtable
	// nd is the current node, 0 when the iterator is not at an entry.
	nd uint32
	// lower and upper bound the user keys: lower inclusive, upper
	// exclusive, nil for no bound.
	lower, upper []byte
}

var _ base.InternalIterator = (*Iterator)(nil)

// NewIter returns an unpositioned iterator over the user keys in [lower,
// upper); a nil bound means no bound. The iterator keeps lower and upper:
// the caller must not modify them while it is in use.
func (m *Memtable) NewIter(lower, upper []byte) *Iterator {
	return &Iterator{m: m, lower: lower, upper: upper}
}

// SeekGE moves to the newest version of the first user key >= key, or of
// the first user key >= lower if key is below the lower bound.
func (it *Iterator) SeekGE(key []byte) bool {
	if it.lower != nil && bytes.Compare(key, it.lower) < 0 {
		key = it.lower
	}
	it.nd = it.m.findGE(key, base.MakeTrailer(base.SeqMax, base.KindMax))
	return it.checkUpper()
}

// SeekLT moves to the oldest version of the last user key < key, or of the
// last user key < upper if key is above the upper bound.
func (it *Iterator) SeekLT(key []byte) bool {
	if it.upper != nil && bytes.Compare(key, it.upper) > 0 {
		key = it.upper
	}
	// (key, SeqMax, KindMax) sorts before every version of key, so the
	// last node before it is the oldest version of the previous user key.
	it.nd = it.m.findLT(key, base.MakeTrailer(base.SeqMax, base.KindMax))
	return it.checkLower()
}

// First moves to the first entry within the bounds.
func (it *Iterator) First() bool {
	if it.lower != nil {
		return it.SeekGE(it.lower)
	}
	it.nd = it.m.arena.next(it.m.head, 0)
	return it.checkUpper()
}

// Last moves to the last entry within the bounds.
func (it *Iterator) Last() bool {
	if it.upper != nil {
		return it.SeekLT(it.upper)
	}
	it.nd = it.m.findLast()
	return it.checkLower()
}

// Next moves to the following entry. On an iterator that is not at an
// entry it returns false and stays there.
func (it *Iterator) Next() bool {
	if it.nd == 0 {
		return false
	}
	it.nd = it.m.arena.next(it.nd, 0)
	return it.checkUpper()
}

// Prev moves to the preceding entry, in O(log n) (see Iterator). On an
// iterator that is not at an entry it returns false and stays there.
func (it *Iterator) Prev() bool {
	if it.nd == 0 {
		return false
	}
	it.nd = it.m.findLT(it.m.arena.userKey(it.nd), it.m.arena.trailer(it.nd))
	return it.checkLower()
}

// Valid reports whether the iterator is at an entry.
func (it *Iterator) Valid() bool { return it.nd != 0 }

// Key returns the current entry's internal key, or the zero key when the
// iterator is not at an entry. The user key aliases the memtable's arena:
// the caller must not modify it; it stays valid and unchanged for as long
// as the caller holds it, longer than base.InternalIterator promises.
func (it *Iterator) Key() base.InternalKey {
	if it.nd == 0 {
		return base.InternalKey{}
	}
	return base.InternalKey{UserKey: it.m.arena.userKey(it.nd), Trailer: it.m.arena.trailer(it.nd)}
}

// Value returns the current entry's value, or nil when the iterator is not
// at an entry. It aliases the arena, as Key's user key does.
func (it *Iterator) Value() []byte {
	if it.nd == 0 {
		return nil
	}
	return it.m.arena.value(it.nd)
}

// Error returns nil: a memtable iterator reads only memory and cannot fail.
func (it *Iterator) Error() error { return nil }

// Close unpositions the iterator and returns nil. It may be called more
// than once.
func (it *Iterator) Close() error {
	it.nd = 0
	return nil
}

// checkUpper leaves the iterator unpositioned if it went past the upper
// bound, and returns Valid().
func (it *Iterator) checkUpper() bool {
	if it.nd != 0 && it.upper != nil && bytes.Compare(it.m.arena.userKey(it.nd), it.upper) >= 0 {
		it.nd = 0
	}
	return it.nd != 0
}

// checkLower leaves the iterator unpositioned if it went before the lower
// bound, and returns Valid().
func (it *Iterator) checkLower() bool {
	if it.nd != 0 && it.lower != nil && bytes.Compare(it.m.arena.userKey(it.nd), it.lower) < 0 {
		it.nd = 0
	}
	return it.nd != 0
}
