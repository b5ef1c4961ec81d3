package lsm

import (
	"bytes"
	"fmt"
	"slices"
	"sync/atomic"

	"github.com/kvs-lab/kvs"
	"github.com/kvs-lab/kvs/compaction"
	"github.com/kvs-lab/kvs/internal/base"
	"github.com/kvs-lab/kvs/memtable"
	"github.com/kvs-lab/kvs/sstable"
)

// memTable is a memtable and the number of the WAL that holds its
// entries: once the memtable is flushed, that WAL is obsolete.
type memTable struct {
	*memtable.Memtable
	logNum uint64
}

// table is an open sstable of the current version (or of an older one a
// reader still holds). Every readState containing it holds a reference;
// when the last goes, its file is closed, and deleted if an edit removed
// it from the version (obsolete).
type table struct {
	db       *DB
	meta     *compaction.TableMeta
	r        *sstable.Reader
	refs     atomic.Int32
	obsolete atomic.Bool
}

func (t *table) ref() { t.refs.Add(1) }

func (t *table) unref() {
	switch n := t.refs.Add(-1); {
	case n == 0:
		t.db.retire(t)
	case n < 0:
		panic("kvs/lsm: table reference count below zero") // a broken invariant, not bad input
	}
}

// readState is everything a read needs, fixed at one moment: the mutable
// memtable, the immutable ones waiting for their flush (newest first) and
// the tables of each level (L0 newest first, deeper levels by key). A
// reader takes a reference (DB.loadReadState) and keeps it for as long as
// it reads: the tables it holds are not deleted, even when a compaction
// replaces them, and the memtables stay in memory. Memtables need no
// reference count: the garbage collector frees them.
type readState struct {
	mem    *memTable
	imm    []*memTable // newest first
	levels [compaction.NumLevels][]*table
	refs   atomic.Int32
}

// newReadState returns a read state with one reference, which takes a
// reference on each of its tables.
func newReadState(mem *memTable, imm []*memTable, levels [compaction.NumLevels][]*table) *readState {
	rs := &readState{mem: mem, imm: imm, levels: levels}
	rs.refs.Store(1)
	for _, tables := range levels {
		for _, t := range tables {
			t.ref()
		}
	}
	return rs
}

func (rs *readState) ref() { rs.refs.Add(1) }

func (rs *readState) unref() {
	switch n := rs.refs.Add(-1); {
	case n == 0:
		for _, tables := range rs.levels {
			for _, t := range tables {
				t.unref()
			}
		}
	case n < 0:
		panic("kvs/lsm: read state reference count below zero")
	}
}

// mems returns the memtables, newest first.
func (rs *readState) mems() []*memTable {
	return append([]*memTable{rs.mem}, rs.imm...)
}

// version returns the table set as the compaction picker sees it.
func (rs *readState) version() *compaction.Version {
	v := &compaction.Version{}
	for level, tables := range rs.levels {
		for _, t := range tables {
			v.Levels[level] = append(v.Levels[level], t.meta)
		}
	}
	return v
}

// loadReadState returns the current read state, referenced, and the
// sequence number a read starting now sees. Both are taken under db.mu,
// so every batch at or below the sequence number is in the read state's
// memtables or tables.
func (db *DB) loadReadState() (*readState, uint64, error) {
	db.mu.Lock()
	defer db.mu.Unlock()
	if db.rs == nil {
		return nil, 0, kvs.ErrClosed
	}
	db.rs.ref()
	return db.rs, db.visibleSeq.Load(), nil
}

// Get returns the value of key, or kvs.ErrNotFound. The slice is the
// caller's.
func (db *DB) Get(key []byte) ([]byte, error) {
	db.closeMu.RLock()
	defer db.closeMu.RUnlock()
	if db.closed.Load() {
		return nil, kvs.ErrClosed
	}
	rs, seq, err := db.loadReadState()
	if err != nil {
		return nil, err
	}
	defer rs.unref()
	return db.get(rs, key, seq)
}

// get looks key up in rs as of seq: the memtables newest first (each
// skipped when its bloom filter rules the key out), then the
// L0 tables newest first, then the one table of each deeper level whose
// key range holds key. The first version found is the newest: every
// source holds only versions older than those of the sources before it.
func (db *DB) get(rs *readState, key []byte, seq uint64) ([]byte, error) {
	db.stats.gets.Add(1)
	for i := -1; i < len(rs.imm); i++ {
		m := rs.mem
		if i >= 0 {
			m = rs.imm[i]
		}
		// Most Gets of a read-mostly workload are for keys in the tables:
		// the memtable's filter answers those without a skiplist search.
		if !m.MayContain(key) {
			db.stats.memFilterSkips.Add(1)
			continue
		}
		if v, kind, ok := m.GetPastFilter(key, seq); ok {
			if kind == base.KindDelete {
				return nil, kvs.ErrNotFound
			}
			return bytes.Clone(v), nil
		}
	}
	for level, tables := range rs.levels {
		if level > 0 {
			// A deeper level is sorted and does not overlap: at most one
			// table, the first whose largest key is >= key, may hold it.
			i, _ := slices.BinarySearchFunc(tables, key, func(t *table, k []byte) int {
				return bytes.Compare(t.meta.Largest.UserKey, k)
			})
			tables = tables[i:min(i+1, len(tables))]
		}
		for _, t := range tables {
			if bytes.Compare(key, t.meta.Smallest.UserKey) < 0 || bytes.Compare(key, t.meta.Largest.UserKey) > 0 {
				continue
			}
			if !t.r.MayContain(key) {
				db.stats.filterSkips.Add(1)
				continue
			}
			db.stats.diskReads.Add(1)
			v, kind, ok, err := t.r.Search(key, seq)
			if err != nil {
				return nil, fmt.Errorf("kvs/lsm: get from L%d table %s: %w", level, tableName(t.meta.FileNum), err)
			}
			if ok {
				if kind == base.KindDelete {
					return nil, kvs.ErrNotFound
				}
				if v == nil {
					v = []byte{}
				}
				return v, nil
			}
		}
	}
	return nil, kvs.ErrNotFound
}

// NewIter returns an iterator over [o.LowerBound, o.UpperBound) as of now.
// It holds the current read state until it is closed.
func (db *DB) NewIter(o *kvs.IterOptions) (kvs.Iterator, error) {
	db.closeMu.RLock()
	defer db.closeMu.RUnlock()
	if db.closed.Load() {
		return nil, kvs.ErrClosed
	}
	rs, seq, err := db.loadReadState()
	if err != nil {
		return nil, err
	}
	it, err := db.newIter(rs, seq, o)
	rs.unref()
	return it, err
}

// newIter returns an iterator over rs at seq; it takes its own reference
// on rs.
func (db *DB) newIter(rs *readState, seq uint64, o *kvs.IterOptions) (kvs.Iterator, error) {
	var io kvs.IterOptions
	if o != nil {
		io = *o
	}
	// NB: the children keep the bounds; copy them so the caller may reuse
	// its slices.
	io.LowerBound = cloneBound(io.LowerBound)
	io.UpperBound = cloneBound(io.UpperBound)
	if io.LowerBound != nil && io.UpperBound != nil && bytes.Compare(io.LowerBound, io.UpperBound) > 0 {
		io.UpperBound = io.LowerBound // an empty range
	}
	var children []base.InternalIterator
	for _, m := range rs.mems() {
		children = append(children, m.NewIter(io.LowerBound, io.UpperBound))
	}
	for _, tables := range rs.levels {
		for _, t := range tables {
			if io.UpperBound != nil && bytes.Compare(t.meta.Smallest.UserKey, io.UpperBound) >= 0 ||
				io.LowerBound != nil && bytes.Compare(t.meta.Largest.UserKey, io.LowerBound) < 0 {
				continue
			}
			ti, err := t.r.NewIter(io.LowerBound, io.UpperBound)
			if err != nil {
				for _, c := range children {
					c.Close()
				}
				return nil, fmt.Errorf("kvs/lsm: iterate table %s: %w", tableName(t.meta.FileNum), err)
			}
			children = append(children, ti)
		}
	}
	rs.ref()
	return &iterator{dbIter: newDBIter(newMergingIter(children...), seq, io), db: db, rs: rs}, nil
}

func cloneBound(b []byte) []byte {
	if b == nil {
		return nil
	}
	return append([]byte{}, b...)
}

// iterator is the kvs.Iterator the engine hands out: a dbIter that holds a
// read state until it is closed and stops working once the engine is
// closed.
type iterator struct {
	*dbIter
	db *DB
	rs *readState
}

func (it *iterator) alive() bool {
	if it.db.closed.Load() && it.dbIter.err == nil {
		it.dbIter.err = kvs.ErrClosed
	}
	return it.dbIter.err == nil
}

func (it *iterator) First() bool          { return it.alive() && it.dbIter.First() }
func (it *iterator) Last() bool           { return it.alive() && it.dbIter.Last() }
func (it *iterator) SeekGE(k []byte) bool { return it.alive() && it.dbIter.SeekGE(k) }
func (it *iterator) SeekLT(k []byte) bool { return it.alive() && it.dbIter.SeekLT(k) }
func (it *iterator) Next() bool           { return it.alive() && it.dbIter.Next() }
func (it *iterator) Prev() bool           { return it.alive() && it.dbIter.Prev() }

// Close closes the iterator and lets go of its read state. It may be
// called more than once.
func (it *iterator) Close() error {
	err := it.dbIter.Close()
	if it.rs != nil {
		it.rs.unref()
		it.rs = nil
	}
	return err
}

// snapshot is a sequence number registered with the engine. It reads the
// current read state at that sequence number, like pebble's snapshots:
// flushes keep every version, and compactions keep, for each open
// snapshot, the newest version of each key it can see (see mergeTables),
// so a snapshot pins no memtable and no table; it costs only the old
// versions compactions keep for it.
type snapshot struct {
	db     *DB
	seq    uint64
	closed atomic.Bool
}

// NewSnapshot returns a point-in-time read view. It must be closed.
func (db *DB) NewSnapshot() (kvs.Snapshot, error) {
	db.closeMu.RLock()
	defer db.closeMu.RUnlock()
	if db.closed.Load() {
		return nil, kvs.ErrClosed
	}
	db.mu.Lock()
	defer db.mu.Unlock()
	// NB: the sequence number is taken and registered under db.mu, which
	// compactions take to list the snapshots: a compaction that does not
	// see this one started earlier, and all its input is at or below seq.
	s := &snapshot{db: db, seq: db.visibleSeq.Load()}
	db.snapshots[s] = struct{}{}
	return s, nil
}

// snapshotSeqs returns the open snapshots' sequence numbers, ascending.
// db.mu is held.
func (db *DB) snapshotSeqsLocked() []uint64 {
	seqs := make([]uint64, 0, len(db.snapshots))
	for s := range db.snapshots {
		seqs = append(seqs, s.seq)
	}
	slices.Sort(seqs)
	return slices.Compact(seqs)
}

func (s *snapshot) usable() error {
	if s.closed.Load() || s.db.closed.Load() {
		return kvs.ErrClosed
	}
	return nil
}

// Get returns key's value as of the snapshot.
func (s *snapshot) Get(key []byte) ([]byte, error) {
	if err := s.usable(); err != nil {
		return nil, err
	}
	rs, _, err := s.db.loadReadState()
	if err != nil {
		return nil, err
	}
	defer rs.unref()
	return s.db.get(rs, key, s.seq)
}

// NewIter returns an iterator over the snapshot. It holds the read state
// current when it was made, as every iterator does.
func (s *snapshot) NewIter(o *kvs.IterOptions) (kvs.Iterator, error) {
	if err := s.usable(); err != nil {
		return nil, err
	}
	rs, _, err := s.db.loadReadState()
	if err != nil {
		return nil, err
	}
	defer rs.unref()
	return s.db.newIter(rs, s.seq, o)
}

// Close releases the snapshot: compactions stop keeping versions for it.
// A second Close returns kvs.ErrClosed.
func (s *snapshot) Close() error {
	if s.closed.Swap(true) {
		return kvs.ErrClosed
	}
	s.db.mu.Lock()
	delete(s.db.snapshots, s)
	s.db.mu.Unlock()
	return nil
}
