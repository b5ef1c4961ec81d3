package lsm

import (
	"bytes"

	"github.com/kvs-lab/kvs"
	"github.com/kvs-lab/kvs/internal/base"
)

// dbIter turns an internal iterator (usually a mergingIter over every
// memtable and table) into the user's kvs.Iterator at one snapshot. For
// each user key in [lower, upper) it shows the newest version whose
// sequence number is <= the snapshot's, and nothing at all when that
// version is a deletion; versions newer than the snapshot and versions
// shadowed by a newer visible one stay hidden.
//
// The internal iterator yields the versions of one user key next to each
// other, newest first. Going forward, the first visible version met is the
// one to show, so dbIter stops on it and its value aliases the internal
// iterator's. Going backward the versions arrive oldest first: dbIter must
// walk past all of them, remembering the newest visible one, before it
// knows what to show, so it copies that version's value (see
// findPrevEntry). In both directions it keeps a copy of the current user
// key, since the internal iterator's key changes when it moves.
//
// Where the internal iterator is, relative to the current user key k:
//   - forward: at k's version that is shown;
//   - backward: at the oldest version of the user key before k, or off
//     the start.
//
// A direction change re-seeks the internal iterator (see Next and Prev).
//
// As kvs.Iterator asks, Key and Value stay valid until the next move, and
// errors are sticky. Next from before the first key moves to the first key
// and Prev from past the last moves to the last; Next past the end, Prev
// before the start and either before any positioning return false. A
// dbIter belongs to one goroutine at a time.
type dbIter struct {
	iter base.InternalIterator
	// seq is the snapshot: versions with a larger sequence number are
	// invisible.
	seq          uint64
	lower, upper []byte
	pos          iterPos
	// reverse tells where iter is (see dbIter).
	reverse bool
	// key is the current user key, owned by dbIter.
	key []byte
	// value is the current value: iter's memory going forward, valueBuf
	// going backward.
	value    []byte
	valueBuf []byte
	err      error
	closed   bool
}

// iterPos is where a dbIter stands.
type iterPos uint8

const (
	// posUnset: not positioned yet, or failed.
	posUnset iterPos = iota
	posValid
	// posBeforeStart: Prev or SeekLT ran off the start; Next goes to the
	// first key.
	posBeforeStart
	// posAfterEnd: Next or SeekGE ran off the end; Prev goes to the last
	// key.
	posAfterEnd
)

var _ kvs.Iterator = (*dbIter)(nil)

// newDBIter returns an unpositioned iterator over iter's user keys in
// o's [LowerBound, UpperBound) as of snapshot seq. It owns iter: Close
// closes it. It keeps o's bounds: the caller must not modify them while
// the iterator is in use.
func newDBIter(iter base.InternalIterator, seq uint64, o kvs.IterOptions) *dbIter {
	return &dbIter{iter: iter, seq: seq, lower: o.LowerBound, upper: o.UpperBound}
}

// usable reports whether the iterator may move.
func (d *dbIter) usable() bool { return !d.closed && d.err == nil }

// First moves to the smallest visible key >= the lower bound.
func (d *dbIter) First() bool {
	if !d.usable() {
		return false
	}
	if d.lower != nil {
		d.iter.SeekGE(d.lower)
	} else {
		d.iter.First()
	}
	return d.findNextEntry()
}

// Last moves to the largest visible key < the upper bound.
func (d *dbIter) Last() bool {
	if !d.usable() {
		return false
	}
	if d.upper != nil {
		d.iter.SeekLT(d.upper)
	} else {
		d.iter.Last()
	}
	return d.findPrevEntry()
}

// SeekGE moves to the smallest visible key >= key within the bounds.
func (d *dbIter) SeekGE(key []byte) bool {
	if !d.usable() {
		return false
	}
	if d.lower != nil && bytes.Compare(key, d.lower) < 0 {
		key = d.lower
	}
	d.iter.SeekGE(key)
	return d.findNextEntry()
}

// SeekLT moves to the largest visible key < key within the bounds.
func (d *dbIter) SeekLT(key []byte) bool {
	if !d.usable() {
		return false
	}
	if d.upper != nil && bytes.Compare(key, d.upper) > 0 {
		key = d.upper
	}
	d.iter.SeekLT(key)
	return d.findPrevEntry()
}

// Next moves to the following visible key.
func (d *dbIter) Next() bool {
	if !d.usable() {
		return false
	}
	switch d.pos {
	case posBeforeStart:
		return d.First()
	case posValid:
	default:
		return false
	}
	if d.reverse {
		// iter is before every version of d.key: put it on the newest
		// one, so that skipping d.key's versions below leaves it on the
		// next user key. A seek costs more than stepping, but iter (a
		// mergingIter) re-seeks its children on a direction change anyway.
		d.iter.SeekGE(d.key)
	}
	for d.iter.Valid() && bytes.Equal(d.iter.Key().UserKey, d.key) {
		d.iter.Next()
	}
	return d.findNextEntry()
}

// Prev moves to the preceding visible key.
func (d *dbIter) Prev() bool {
	if !d.usable() {
		return false
	}
	switch d.pos {
	case posAfterEnd:
		return d.Last()
	case posValid:
	default:
		return false
	}
	if !d.reverse {
		// iter is at d.key's shown version, with d.key's newer
		// (invisible) versions before it: SeekLT lands below all of them.
		d.iter.SeekLT(d.key)
	}
	return d.findPrevEntry()
}

// findNextEntry moves iter forward from where it is to the newest visible
// version of the next user key that has one, and shows it unless it is a
// deletion, in which case it goes on with the next user key.
func (d *dbIter) findNextEntry() bool {
	d.reverse = false
	for d.iter.Valid() {
		k := d.iter.Key()
		if d.upper != nil && bytes.Compare(k.UserKey, d.upper) >= 0 {
			break
		}
		if k.Seq() > d.seq {
			d.iter.Next() // newer than the snapshot
			continue
		}
		// NB: copy the user key before iter moves.
		d.key = append(d.key[:0], k.UserKey...)
		if k.Kind() == base.KindSet {
			d.value = d.iter.Value()
			d.pos = posValid
			return true
		}
		// A deletion hides every older version of the key.
		for d.iter.Next() && bytes.Equal(d.iter.Key().UserKey, d.key) {
		}
	}
	return d.stop(posAfterEnd)
}

// findPrevEntry moves iter backward from where it is, over every version
// of the user key it is at, oldest first, and shows the newest visible one
// unless it is a deletion (or there is none), in which case it goes on
// with the previous user key.
//
// Going backward the newest visible version is the last visible one met
// before iter leaves the user key, and only leaving it tells which one
// that was; by then iter's memory has moved on, so each visible version's
// value is copied as it is met. (Visible versions come first, since their
// sequence numbers are the smallest; a later refinement could stop copying
// at the first invisible one.)
func (d *dbIter) findPrevEntry() bool {
	d.reverse = true
	for d.iter.Valid() {
		k := d.iter.Key()
		if d.lower != nil && bytes.Compare(k.UserKey, d.lower) < 0 {
			break
		}
		d.key = append(d.key[:0], k.UserKey...)
		shown := false
		for ; d.iter.Valid() && bytes.Equal(d.iter.Key().UserKey, d.key); d.iter.Prev() {
			v := d.iter.Key()
			if v.Seq() > d.seq {
				continue // newer than the snapshot
			}
			shown = v.Kind() == base.KindSet
			if shown {
				d.valueBuf = append(d.valueBuf[:0], d.iter.Value()...)
			}
		}
		// NB: iter may have left d.key because it failed, not because it
		// reached another key; then nothing may be shown.
		if !d.iter.Valid() && d.iter.Error() != nil {
			break
		}
		if shown {
			d.value = d.valueBuf
			d.pos = posValid
			return true
		}
	}
	return d.stop(posBeforeStart)
}

// stop leaves the iterator off the end pos, or failed if iter failed, and
// returns false.
func (d *dbIter) stop(pos iterPos) bool {
	d.key, d.value = d.key[:0], nil
	d.pos = pos
	if !d.iter.Valid() {
		if err := d.iter.Error(); err != nil {
			d.err = err
			d.pos = posUnset
		}
	}
	return false
}

// Valid reports whether the iterator is at a key.
func (d *dbIter) Valid() bool { return d.pos == posValid && d.usable() }

// Key returns the current key. It stays valid until the next move; the
// caller must not modify it.
func (d *dbIter) Key() []byte {
	if !d.Valid() {
		return nil
	}
	return d.key
}

// Value returns the current value. It stays valid until the next move;
// the caller must not modify it.
func (d *dbIter) Value() []byte {
	if !d.Valid() {
		return nil
	}
	return d.value
}

// Error returns the first error the internal iterator reported.
func (d *dbIter) Error() error { return d.err }

// Close closes the internal iterator and returns the first error met.
// Calling it again returns the same error; moves after it return false.
func (d *dbIter) Close() error {
	if d.closed {
		return d.err
	}
	d.closed = true
	d.pos = posUnset
	if err := d.iter.Close(); err != nil && d.err == nil {
		d.err = err
	}
	d.key, d.value, d.valueBuf = nil, nil, nil
	return d.err
}
