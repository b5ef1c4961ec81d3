package sstable

import (
	"bytes"
	"errors"

	"github.com/kvs-lab/kvs/internal/base"
)

// Iterator walks a table's entries in internal key order, optionally
// limited to user keys in [lower, upper). It is two-level: an iterator
// over the index block picks a data block, and a second iterator walks
// that block. It implements base.InternalIterator. An Iterator is not safe
// for concurrent use; Key and Value alias the iterator's buffers and block
// memory: they stay valid until the next move and must not be modified.
//
// Next and Prev on an iterator that is not at an entry return false: after
// falling off either end, reposition it with a seek, First or Last.
type Iterator struct {
	r            *Reader
	lower, upper []byte
	index        blockIter
	data         blockIter
	valid        bool
	err          error
	closed       bool
	target       []byte // scratch for search keys
}

var _ base.InternalIterator = (*Iterator)(nil)

// NewIter returns an iterator over the entries whose user keys lie in
// [lower, upper); a nil bound is open. The bounds are not copied: keep them
// unchanged while the iterator is in use. It returns an error only for
// inconsistent bounds.
func (r *Reader) NewIter(lower, upper []byte) (*Iterator, error) {
	if lower != nil && upper != nil && bytes.Compare(lower, upper) > 0 {
		return nil, errBounds
	}
	it := &Iterator{r: r, lower: lower, upper: upper}
	it.index.init(r.index, r.name, r.indexOff, true)
	if it.index.err != nil {
		return nil, it.index.err
	}
	return it, nil
}

// errBounds is returned by NewIter for lower > upper.
var errBounds = errors.New("kvs/sstable: lower bound is above upper bound")

// loadBlock reads the data block the index iterator is at.
func (i *Iterator) loadBlock() bool {
	b, off, err := i.r.dataBlock(i.index.val)
	if err != nil {
		i.err = err
		return false
	}
	i.data.init(b, i.r.name, off, true)
	if i.data.err != nil {
		i.err = i.data.err
		return false
	}
	return true
}

// skipForward moves past empty (or exhausted) data blocks to the first
// entry of the next non-empty one.
func (i *Iterator) skipForward() bool {
	for !i.data.valid {
		if i.data.err != nil {
			i.err = i.data.err
			return false
		}
		if !i.index.Next() {
			i.err = i.index.err
			return false
		}
		if !i.loadBlock() {
			return false
		}
		i.data.First()
	}
	return true
}

// skipBackward is skipForward's mirror: to the last entry of the previous
// non-empty block.
func (i *Iterator) skipBackward() bool {
	for !i.data.valid {
		if i.data.err != nil {
			i.err = i.data.err
			return false
		}
		if !i.index.Prev() {
			i.err = i.index.err
			return false
		}
		if !i.loadBlock() {
			return false
		}
		i.data.Last()
	}
	return true
}

// checkUpper ends a forward move at the upper bound.
func (i *Iterator) checkUpper(ok bool) bool {
	i.valid = ok && i.err == nil && (i.upper == nil || bytes.Compare(i.data.ikey.UserKey, i.upper) < 0)
	return i.valid
}

// checkLower ends a backward move at the lower bound.
func (i *Iterator) checkLower(ok bool) bool {
	i.valid = ok && i.err == nil && (i.lower == nil || bytes.Compare(i.data.ikey.UserKey, i.lower) >= 0)
	return i.valid
}

// start resets the state before a positioning call; it reports false when
// the iterator cannot move (closed, or stopped by an error).
func (i *Iterator) start() bool {
	i.valid = false
	return !i.closed && i.err == nil
}

// SeekGE moves to the first entry whose user key is >= key (the newest
// version of it), clamped to the lower bound.
func (i *Iterator) SeekGE(key []byte) bool {
	if !i.start() {
		return false
	}
	if i.lower != nil && bytes.Compare(key, i.lower) < 0 {
		key = i.lower
	}
	// The first index separator >= the search key names the only block
	// that can hold the answer, or the answer is the next block's first
	// entry.
	i.target = base.MakeSearchKey(key).Append(i.target[:0])
	if !i.index.SeekGE(i.target) {
		i.err = i.index.err
		return false
	}
	if !i.loadBlock() {
		return false
	}
	i.data.SeekGE(i.target)
	return i.checkUpper(i.skipForward())
}

// SeekLT moves to the last entry whose user key is < key (the oldest
// version of it), clamped to the upper bound.
func (i *Iterator) SeekLT(key []byte) bool {
	if !i.start() {
		return false
	}
	if i.upper != nil && bytes.Compare(key, i.upper) > 0 {
		key = i.upper
	}
	// The search key sorts after every version of smaller user keys. The
	// answer is in the first block whose separator is >= it, or in the
	// block before; with no such block every entry is smaller.
	i.target = base.MakeSearchKey(key).Append(i.target[:0])
	if !i.index.SeekGE(i.target) {
		if i.index.err != nil {
			i.err = i.index.err
			return false
		}
		if !i.index.Last() {
			i.err = i.index.err
			return false
		}
	}
	if !i.loadBlock() {
		return false
	}
	i.data.SeekLT(i.target)
	return i.checkLower(i.skipBackward())
}

// First moves to the first entry (at or above the lower bound).
func (i *Iterator) First() bool {
	if i.lower != nil {
		return i.SeekGE(i.lower)
	}
	if !i.start() {
		return false
	}
	if !i.index.First() {
		i.err = i.index.err
		return false
	}
	if !i.loadBlock() {
		return false
	}
	i.data.First()
	return i.checkUpper(i.skipForward())
}

// Last moves to the last entry (below the upper bound).
func (i *Iterator) Last() bool {
	if i.upper != nil {
		return i.SeekLT(i.upper)
	}
	if !i.start() {
		return false
	}
	if !i.index.Last() {
		i.err = i.index.err
		return false
	}
	if !i.loadBlock() {
		return false
	}
	i.data.Last()
	return i.checkLower(i.skipBackward())
}

// Next moves to the following entry.
func (i *Iterator) Next() bool {
	if !i.valid || !i.start() {
		return false
	}
	i.data.Next()
	return i.checkUpper(i.skipForward())
}

// Prev moves to the preceding entry.
func (i *Iterator) Prev() bool {
	if !i.valid || !i.start() {
		return false
	}
	i.data.Prev()
	return i.checkLower(i.skipBackward())
}

// Valid reports whether the iterator is at an entry.
func (i *Iterator) Valid() bool { return i.valid }

// Key returns the current entry's internal key; its UserKey aliases block
// memory until the next move.
func (i *Iterator) Key() base.InternalKey { return i.data.ikey }

// Value returns the current entry's value, valid until the next move.
func (i *Iterator) Value() []byte { return i.data.val }

// Error returns the first error met: a *kvs.CorruptionError for a damaged
// block, or an I/O error.
func (i *Iterator) Error() error { return i.err }

// Close releases the iterator and returns Error(). It may be called more
// than once; positioning calls after it return false.
func (i *Iterator) Close() error {
	i.closed = true
	i.valid = false
	return i.Error()
}
