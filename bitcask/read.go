package bitcask

import (
	"bytes"
	"fmt"
	"sync/atomic"

	"github.com/kvs-lab/kvs"
)

// Get returns the value stored under key, or kvs.ErrNotFound. It looks
// the key up in the keydir and reads the whole record with one ReadAt,
// checking its checksum: a damaged record is a *kvs.CorruptionError
// naming the file and the record's offset. The returned slice belongs to
// the caller.
func (db *DB) Get(key []byte) ([]byte, error) {
	if err := kvs.CheckKey(key); err != nil {
		return nil, fmt.Errorf("kvs/bitcask: get: %w", err)
	}
	db.closeMu.RLock()
	defer db.closeMu.RUnlock()
	if db.closed {
		return nil, kvs.ErrClosed
	}
	db.stats.gets.Add(1)
	db.mu.RLock()
	e, ok := db.keydir.get(key)
	seg := db.segs[uint64(e.fileID)]
	if ok && seg != nil {
		// Hold the file open across the read, which runs without db.mu:
		// a merge may retire the segment meanwhile.
		seg.ref()
	}
	db.mu.RUnlock()
	if !ok {
		return nil, kvs.ErrNotFound
	}
	if seg == nil {
		return nil, fmt.Errorf("kvs/bitcask: get: keydir points at segment %d, which is not open", e.fileID)
	}
	defer db.unref(seg)
	return db.readValue(seg, e, key)
}

// readValue reads the value of the record e points at in seg for a Get.
func (db *DB) readValue(seg *segment, e entry, key []byte) ([]byte, error) {
	db.stats.diskReads.Add(1)
	_, _, v, err := seg.readRecord(nil, e, key)
	if err != nil {
		return nil, err
	}
	// v aliases a buffer allocated for this call, so it is the caller's.
	return v, nil
}

// pinAllLocked takes a reference on every live segment, for a snapshot
// or an iterator that may read any of them. db.mu is held.
func (db *DB) pinAllLocked() pinSet {
	pins := make(pinSet, len(db.segs))
	for id, s := range db.segs {
		s.ref()
		pins[id] = s
	}
	return pins
}

// repin takes one more reference on every segment of pins, for an
// iterator made from a snapshot.
func repin(pins pinSet) pinSet {
	c := make(pinSet, len(pins))
	for id, s := range pins {
		s.ref()
		c[id] = s
	}
	return c
}

func (db *DB) unpin(pins pinSet) {
	segs := make([]*segment, 0, len(pins))
	for _, s := range pins {
		segs = append(segs, s)
	}
	db.unref(segs...)
}

// NewSnapshot returns a point-in-time read view. With the btree keydir it
// costs O(1) (a copy-on-write Clone); with the hash keydir it copies the
// map, O(n) time and memory. The snapshot pins every segment so that
// merges cannot delete a file it may read; close it to release them.
func (db *DB) NewSnapshot() (kvs.Snapshot, error) {
	db.closeMu.RLock()
	defer db.closeMu.RUnlock()
	if db.closed {
		return nil, kvs.ErrClosed
	}
	db.mu.RLock()
	idx := db.keydir.snapshot()
	pins := db.pinAllLocked()
	db.mu.RUnlock()
	return &snapshot{db: db, idx: idx, pins: pins}, nil
}

// snapshot implements kvs.Snapshot over a frozen keydir and the segments
// it pinned. Get and NewIter are safe for concurrent use; Close must not
// race with them.
type snapshot struct {
	db     *DB
	idx    readIndex
	pins   pinSet
	closed atomic.Bool
}

func (s *snapshot) Get(key []byte) ([]byte, error) {
	if err := kvs.CheckKey(key); err != nil {
		return nil, fmt.Errorf("kvs/bitcask: get: %w", err)
	}
	db := s.db
	db.closeMu.RLock()
	defer db.closeMu.RUnlock()
	if db.closed || s.closed.Load() {
		return nil, kvs.ErrClosed
	}
	db.stats.gets.Add(1)
	e, ok := s.idx.get(key)
	if !ok {
		return nil, kvs.ErrNotFound
	}
	seg := s.pins[uint64(e.fileID)]
	if seg == nil {
		return nil, fmt.Errorf("kvs/bitcask: get: snapshot points at segment %d, which it did not pin", e.fileID)
	}
	return db.readValue(seg, e, key)
}

// NewIter returns an iterator over the snapshot. With the hash keydir it
// collects and sorts the keys in range (O(n + k log k)).
func (s *snapshot) NewIter(o *kvs.IterOptions) (kvs.Iterator, error) {
	db := s.db
	db.closeMu.RLock()
	defer db.closeMu.RUnlock()
	if db.closed || s.closed.Load() {
		return nil, kvs.ErrClosed
	}
	lower, upper := bounds(o)
	return newIterator(db, s.idx.view(lower, upper), repin(s.pins), lower, upper), nil
}

// Close releases the snapshot's segments. A second Close returns nil.
func (s *snapshot) Close() error {
	if !s.closed.CompareAndSwap(false, true) {
		return nil
	}
	s.db.unpin(s.pins)
	s.pins, s.idx = nil, nil
	return nil
}

// bounds returns copies of o's bounds, so that the caller may reuse its
// slices.
func bounds(o *kvs.IterOptions) (lower, upper []byte) {
	if o == nil {
		return nil, nil
	}
	if o.LowerBound != nil {
		lower = bytes.Clone(o.LowerBound)
	}
	if o.UpperBound != nil {
		upper = bytes.Clone(o.UpperBound)
	}
	return lower, upper
}

// NewIter returns an iterator over [o.LowerBound, o.UpperBound) as of
// now. Its cost depends on the keydir: the btree is cloned in O(1); the
// hash map is scanned in full for the keys in range, O(n), which are
// sorted on first use, O(k log k). Values are read from the segments
// lazily, when Value is called. The iterator pins every segment until it
// is closed.
func (db *DB) NewIter(o *kvs.IterOptions) (kvs.Iterator, error) {
	db.closeMu.RLock()
	defer db.closeMu.RUnlock()
	if db.closed {
		return nil, kvs.ErrClosed
	}
	lower, upper := bounds(o)
	db.mu.RLock()
	view := db.keydir.view(lower, upper)
	pins := db.pinAllLocked()
	db.mu.RUnlock()
	return newIterator(db, view, pins, lower, upper), nil
}

// iterState is where an iterator stands.
type iterState int8

const (
	iterUnpositioned iterState = iota // before the first positioning call
	iterValid                         // at win[pos]
	iterBeforeStart                   // moved before the first key: Next goes to First
	iterAfterEnd                      // moved past the last key: Prev goes to Last
	iterClosed
)

// windowSize is how many items an iterator fetches from its view at a
// time: a btree view descends from the root for each batch.
const windowSize = 64

// iterator implements kvs.Iterator over an orderedView. It keeps a window
// of consecutive items in key order and refills it from the view when a
// move leaves it. It is not safe for concurrent use.
type iterator struct {
	db           *DB
	view         orderedView
	pins         pinSet
	lower, upper []byte

	win   []item
	pos   int
	state iterState

	key     []byte // copy of win[pos].key, valid until the next move
	value   []byte // aliases buf once loaded
	loaded  bool
	buf     []byte // the current record
	scratch []item // reversal buffer for backward refills
	err     error
}

func newIterator(db *DB, view orderedView, pins pinSet, lower, upper []byte) *iterator {
	return &iterator{db: db, view: view, pins: pins, lower: lower, upper: upper}
}

// usable reports whether the iterator may move, recording kvs.ErrClosed
// when the engine was closed under it.
func (it *iterator) usable() bool {
	switch {
	case it.state == iterClosed || it.err != nil:
		return false
	case it.db.isClosed():
		it.err = kvs.ErrClosed
		it.state = iterUnpositioned
		return false
	}
	return true
}

// settle moves to win[pos], or to the given exhausted state when the
// window is empty.
func (it *iterator) settle(pos int, exhausted iterState) bool {
	it.loaded = false
	it.value = nil
	if len(it.win) == 0 {
		it.state = exhausted
		it.key = it.key[:0]
		return false
	}
	it.pos, it.state = pos, iterValid
	it.key = append(it.key[:0], it.win[pos].key...)
	return true
}

// forward fills the window with items >= start (> start when after).
func (it *iterator) forward(start []byte, after bool) bool {
	it.win = it.view.ascend(it.win[:0], start, after, windowSize)
	return it.settle(0, iterAfterEnd)
}

// backward fills the window with the items just below start (nil: the
// upper bound), kept in increasing order, and moves to the last.
func (it *iterator) backward(start []byte) bool {
	it.scratch = it.view.descend(it.scratch[:0], start, windowSize)
	it.win = it.win[:0]
	for i := len(it.scratch) - 1; i >= 0; i-- {
		it.win = append(it.win, it.scratch[i])
	}
	return it.settle(len(it.win)-1, iterBeforeStart)
}

// First moves to the smallest key >= the lower bound.
func (it *iterator) First() bool {
	if !it.usable() {
		return false
	}
	return it.forward(nil, false)
}

// Last moves to the largest key < the upper bound.
func (it *iterator) Last() bool {
	if !it.usable() {
		return false
	}
	return it.backward(nil)
}

// SeekGE moves to the smallest key >= key within the bounds.
func (it *iterator) SeekGE(key []byte) bool {
	if !it.usable() {
		return false
	}
	if it.lower != nil && bytes.Compare(key, it.lower) < 0 {
		key = it.lower
	}
	return it.forward(key, false)
}

// SeekLT moves to the largest key < key within the bounds.
func (it *iterator) SeekLT(key []byte) bool {
	if !it.usable() {
		return false
	}
	if it.upper != nil && bytes.Compare(key, it.upper) > 0 {
		key = it.upper
	}
	return it.backward(key)
}

// Next moves forward one key. From before the first key it moves to the
// first; past the last, or before any positioning, it returns false.
func (it *iterator) Next() bool {
	if !it.usable() {
		return false
	}
	switch it.state {
	case iterBeforeStart:
		return it.forward(nil, false)
	case iterValid:
		if it.pos+1 < len(it.win) {
			return it.settle(it.pos+1, iterAfterEnd)
		}
		last := it.win[len(it.win)-1].key
		return it.forward([]byte(last), true)
	}
	return false
}

// Prev moves back one key. From past the last key it moves to the last;
// before the first, or before any positioning, it returns false.
func (it *iterator) Prev() bool {
	if !it.usable() {
		return false
	}
	switch it.state {
	case iterAfterEnd:
		return it.backward(nil)
	case iterValid:
		if it.pos > 0 {
			return it.settle(it.pos-1, iterBeforeStart)
		}
		return it.backward([]byte(it.win[0].key))
	}
	return false
}

// Valid reports whether the iterator is at a key.
func (it *iterator) Valid() bool { return it.state == iterValid && it.err == nil }

// Key returns the current key, valid until the next move.
func (it *iterator) Key() []byte {
	if !it.Valid() {
		return nil
	}
	return it.key
}

// Value returns the current value, valid until the next move. It reads the
// record from its segment on the first call at a position. A read error
// (a damaged record is a *kvs.CorruptionError) makes the iterator invalid
// and is returned by Error.
func (it *iterator) Value() []byte {
	if !it.Valid() {
		return nil
	}
	if !it.loaded {
		v, err := it.readValue(it.win[it.pos].e)
		if err != nil {
			it.err = err
			return nil
		}
		it.value, it.loaded = v, true
	}
	return it.value
}

func (it *iterator) readValue(e entry) ([]byte, error) {
	db := it.db
	db.closeMu.RLock()
	defer db.closeMu.RUnlock()
	if db.closed {
		return nil, kvs.ErrClosed
	}
	seg := it.pins[uint64(e.fileID)]
	if seg == nil {
		return nil, fmt.Errorf("kvs/bitcask: iterator points at segment %d, which it did not pin", e.fileID)
	}
	rec, _, v, err := seg.readRecord(it.buf, e, it.key)
	it.buf = rec
	return v, err
}

// Error returns the first error the iterator met.
func (it *iterator) Error() error { return it.err }

// Close releases the iterator's segments and returns Error(). Calling it
// again returns the same.
func (it *iterator) Close() error {
	if it.state == iterClosed {
		return it.err
	}
	it.state = iterClosed
	it.db.unpin(it.pins)
	it.pins, it.view, it.win, it.scratch, it.buf = nil, nil, nil, nil, nil
	return it.err
}

// isClosed reports whether Close has begun, without waiting for it.
func (db *DB) isClosed() bool { return db.closedFlag.Load() }
