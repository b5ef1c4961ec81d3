package lsm

import (
	"bytes"
	"fmt"
	"math"
	"slices"
	"time"

	"github.com/kvs-lab/kvs"
	"github.com/kvs-lab/kvs/compaction"
	"github.com/kvs-lab/kvs/internal/base"
	"github.com/sirupsen/logrus"
)

// runCompaction carries out c, picked on the current version, and records
// it in one MANIFEST edit. jobMu is held.
//
// A trivial move only edits the MANIFEST. Otherwise the inputs are merged
// (a mergingIter over one iterator per input table) into new tables of the
// output level, cut at the target file size (or earlier, when an output
// would overlap too much of the level below), keeping per user key its
// newest version and the newest version each open snapshot sees; an
// iterator or Get holds the read state it started with, and with it the
// input tables, so it needs nothing more. A deletion is dropped too when
// every snapshot sees it and no deeper level holds the key: there is
// nothing left for it to hide.
//
// Once the edit is durable the inputs are marked obsolete; each is deleted
// when the last read state holding it goes.
func (db *DB) runCompaction(c *compaction.Compaction) error {
	start := time.Now()
	edit := &VersionEdit{}
	for i, level := range []int{c.Level, c.OutputLevel} {
		for _, m := range c.Inputs[i] {
			edit.Deleted = append(edit.Deleted, DeletedTable{Level: level, FileNum: m.FileNum})
		}
	}
	var outputs []*table
	if c.TrivialMove {
		edit.Added = []NewTable{{Level: c.OutputLevel, Meta: c.Inputs[0][0]}}
	} else {
		var err error
		if outputs, err = db.mergeTables(c); err != nil {
			return err
		}
		for _, t := range outputs {
			edit.Added = append(edit.Added, NewTable{Level: c.OutputLevel, Meta: t.meta})
		}
	}
	db.mu.Lock()
	edit.NextFileNumber = db.nextFileNum
	db.mu.Unlock()
	db.manifestMu.Lock()
	defer db.manifestMu.Unlock()
	st, err := db.logEdit(edit)
	if err != nil {
		for _, t := range outputs {
			t.r.Close()
		}
		return err
	}

	var read0, read1, written int64
	for _, m := range c.Inputs[0] {
		read0 += m.Size
	}
	for _, m := range c.Inputs[1] {
		read1 += m.Size
	}
	for _, t := range outputs {
		written += t.meta.Size
	}
	elapsed := time.Since(start)
	db.mu.Lock()
	if !c.TrivialMove {
		for i := range c.Inputs {
			for _, m := range c.Inputs[i] {
				// NB: before installLocked drops the old read state's
				// references, so the last one deletes the file.
				db.tables[m.FileNum].obsolete.Store(true)
				delete(db.tables, m.FileNum)
				db.removeMu.Lock()
				db.zombies[m.FileNum] = struct{}{}
				db.removeMu.Unlock()
			}
		}
		for _, t := range outputs {
			db.tables[t.meta.FileNum] = t
		}
	}
	db.installLocked(st.version, db.rs.mem, db.rs.imm)
	db.merged = db.merged[:0]
	for _, t := range outputs {
		db.merged = append(db.merged, t.meta.FileNum)
	}
	if !c.TrivialMove {
		ls := &db.levelStats
		ls[c.Level].BytesRead += read0
		ls[c.OutputLevel].BytesRead += read1
		ls[c.OutputLevel].BytesWritten += written
		ls[c.OutputLevel].Compactions++
		ls[c.OutputLevel].CompactionTime += elapsed
	}
	db.mu.Unlock()

	if !c.TrivialMove {
		db.stats.compactions.Add(1)
		db.stats.compactionNanos.Add(int64(elapsed))
		db.stats.compactionRead.Add(read0 + read1)
		db.stats.compactionWritten.Add(written)
	}
	if c.TrivialMove {
		// NB: a move rewrites only the MANIFEST; the table is not read.
		db.log.WithFields(logrus.Fields{
			"from": c.Level, "to": c.OutputLevel, "table": tableName(c.Inputs[0][0].FileNum), "bytes": read0, "duration": elapsed,
		}).Info("moved")
		return nil
	}
	db.log.WithFields(logrus.Fields{
		"from": c.Level, "to": c.OutputLevel, "inputs": len(c.Inputs[0]) + len(c.Inputs[1]),
		"outputs": len(outputs), "read": read0 + read1, "written": written, "duration": elapsed,
	}).Info("compacted")
	return nil
}

// mergeTables merges c's input tables into new, open tables of the output
// level (see runCompaction). jobMu is held.
func (db *DB) mergeTables(c *compaction.Compaction) (outputs []*table, err error) {
	db.mu.Lock()
	var iters []base.InternalIterator
	for i := range c.Inputs {
		for _, m := range c.Inputs[i] {
			it, ierr := db.tables[m.FileNum].r.NewIter(nil, nil)
			if ierr != nil && err == nil {
				err = ierr
			}
			if ierr == nil {
				iters = append(iters, it)
			}
		}
	}
	deeper := db.rs.version()
	snaps := db.snapshotSeqsLocked()
	db.mu.Unlock()
	mi := newMergingIter(iters...)
	defer mi.Close()
	if err != nil {
		return outputs, err
	}

	// atBottom reports whether no level below the output level holds key.
	// NB: a tiered merge writes to L0, where the older runs it does not
	// merge lie below it too.
	inputs := map[uint64]bool{}
	for i := range c.Inputs {
		for _, m := range c.Inputs[i] {
			inputs[m.FileNum] = true
		}
	}
	atBottom := func(key []byte) bool {
		if c.OutputLevel == 0 {
			for _, m := range deeper.Levels[0] {
				if !inputs[m.FileNum] && bytes.Compare(key, m.Smallest.UserKey) >= 0 && bytes.Compare(key, m.Largest.UserKey) <= 0 {
					return false
				}
			}
		}
		for level := c.OutputLevel + 1; level < compaction.NumLevels; level++ {
			for _, m := range deeper.Levels[level] {
				if bytes.Compare(key, m.Smallest.UserKey) >= 0 && bytes.Compare(key, m.Largest.UserKey) <= 0 {
					return false
				}
			}
		}
		return true
	}
	target := db.copts.TargetFileSize
	if c.OutputLevel == 0 {
		// A tiered merge writes one sorted run: one table.
		target = math.MaxInt64
	}
	// Grandparent overlap (LevelDB's ShouldStopBefore): cut the output
	// early once it overlaps more than MaxGrandparentOverlapBytes of the
	// level below the output, so that compacting it later stays small.
	gp, gpIndex, gpOverlap, gpSeen := c.Grandparents, 0, int64(0), false
	tooMuchOverlap := func(key []byte) bool {
		for gpIndex < len(gp) && bytes.Compare(key, gp[gpIndex].Largest.UserKey) > 0 {
			if gpSeen {
				gpOverlap += gp[gpIndex].Size
			}
			gpIndex++
		}
		gpSeen = true
		if gpOverlap > db.copts.MaxGrandparentOverlapBytes {
			gpOverlap = 0
			return true
		}
		return false
	}
	var b *tableBuilder
	defer func() {
		// NB: every error return hands back the outputs finished so far,
		// so that this closes and deletes them.
		if err != nil {
			if b != nil {
				b.abandon()
			}
			for _, t := range outputs {
				t.r.Close()
				db.fs.Remove(db.path(tableName(t.meta.FileNum)))
			}
			outputs = nil
		}
	}()
	finish := func() error {
		meta, err := b.finish()
		b = nil
		if err != nil {
			return err
		}
		t, err := db.openTable(meta)
		if err != nil {
			db.fs.Remove(db.path(tableName(meta.FileNum)))
			return err
		}
		outputs = append(outputs, t)
		return nil
	}
	// The snapshots cut the sequence numbers into stripes: stripe i holds
	// the versions in (snaps[i-1], snaps[i]], the last one those above
	// every snapshot. Versions in one stripe are seen by the same
	// snapshots, so of each user key's versions in a stripe only the
	// newest is kept; current readers hold their own read states (with
	// the input tables) and need nothing from the output.
	stripe := func(seq uint64) int {
		i, _ := slices.BinarySearch(snaps, seq)
		return i
	}
	var prev []byte // the user key of the previous entry, once there is one
	havePrev, prevStripe := false, 0
	for ok := mi.First(); ok; ok = mi.Next() {
		k := mi.Key()
		st := stripe(k.Seq())
		newKey := !havePrev || !bytes.Equal(k.UserKey, prev)
		if !newKey && st == prevStripe {
			continue // shadowed by the newer version met just before
		}
		prev, havePrev, prevStripe = append(prev[:0], k.UserKey...), true, st
		// A deletion seen by every snapshot (stripe 0), with no deeper
		// level holding the key, has nothing left to hide; the older
		// versions it hid in its stripe are dropped above.
		if k.Kind() == base.KindDelete && st == 0 && atBottom(k.UserKey) {
			continue
		}
		// Cut the output between user keys once it is big enough; one
		// user key's versions never span two tables of a level.
		if cut := newKey && tooMuchOverlap(k.UserKey); newKey && b != nil && (cut || int64(b.w.EstimatedSize()) >= target) {
			if err = finish(); err != nil {
				return outputs, err
			}
		}
		if b == nil {
			db.mu.Lock()
			num := db.nextFileNum
			db.nextFileNum++
			db.mu.Unlock()
			if b, err = db.newTableBuilder(num); err != nil {
				return outputs, err
			}
		}
		if err = b.add(k, mi.Value()); err != nil {
			return outputs, err
		}
	}
	if err = mi.Error(); err != nil {
		return nil, fmt.Errorf("kvs/lsm: compaction input: %w", err)
	}
	if b != nil {
		if err = finish(); err != nil {
			return outputs, err
		}
	}
	return outputs, nil
}

// Compact flushes the memtable and then pushes every table down, level by
// level, until all the data sits in one level: a full manual compaction
// (compaction.Manual), which drops every overwritten version and every
// deletion no open snapshot needs. It runs in the caller, taking turns
// with the background flushes and compactions. Writes made while it runs
// may be left in L0: it does not chase them.
func (db *DB) Compact() error {
	db.closeMu.RLock()
	defer db.closeMu.RUnlock()
	if db.closed.Load() {
		return kvs.ErrClosed
	}
	// Make the mutable memtable immutable so the flushes below take it.
	// Everything written before Compact has a sequence number at or below
	// startSeq.
	db.commitMu.Lock()
	startSeq := db.visibleSeq.Load()
	db.mu.Lock()
	var err error
	if db.failErr != nil {
		err = db.failErr
	} else if !db.rs.mem.Empty() {
		if rerr := db.rotateLocked(0); rerr != nil {
			err = db.failLocked(rerr)
		}
	}
	db.mu.Unlock()
	db.commitMu.Unlock()
	if err != nil {
		return err
	}

	step := func(f func() error) error {
		if db.closed.Load() {
			return kvs.ErrClosed
		}
		if err := db.failure(); err != nil {
			return err
		}
		if err := f(); err != nil {
			return db.fail(err)
		}
		return nil
	}
	// merged collects the tables merges of this call write.
	merged := map[uint64]bool{}
	compact := func(c *compaction.Compaction) error {
		return step(func() error {
			err := db.runCompaction(c)
			for _, num := range db.merged {
				merged[num] = true
			}
			return err
		})
	}
	// Flush every immutable memtable (the flush goroutine may take some).
	db.flushMu.Lock()
	for flushed := true; flushed; {
		if err := step(func() (err error) { flushed, err = db.flushOldest(); return err }); err != nil {
			db.flushMu.Unlock()
			return err
		}
	}
	db.flushMu.Unlock()

	db.jobMu.Lock()
	defer db.jobMu.Unlock()
	for level := 0; level < compaction.NumLevels-1; level++ {
		for {
			db.mu.Lock()
			v := db.rs.version()
			db.mu.Unlock()
			// Stop at the last level holding data: moving it further
			// down gains nothing.
			below := false
			for l := level + 1; l < compaction.NumLevels; l++ {
				below = below || len(v.Levels[l]) > 0
			}
			if len(v.Levels[level]) == 0 || (!below && level > 0) {
				break
			}
			// NB: the flush goroutine keeps adding L0 tables while
			// writers write; chasing them could go on forever. Every
			// table left in L0 holds only writes newer than the call.
			if level == 0 && !slices.ContainsFunc(v.Levels[0], func(m *compaction.TableMeta) bool { return m.SmallestSeq <= startSeq }) {
				break
			}
			c := compaction.Manual(v, level, nil, nil)
			if c == nil {
				break
			}
			if err := compact(c); err != nil {
				return err
			}
		}
	}
	// Everything now sits in the bottom level, but tables that were
	// already there, or moved there trivially, have not been merged: they
	// may hold versions and deletions kept for snapshots since closed, or
	// a flushed memtable's overwritten versions. Rewrite the level in
	// place unless every table in it is the output of a merge above.
	db.mu.Lock()
	v := db.rs.version()
	db.mu.Unlock()
	for bottom := compaction.NumLevels - 1; bottom > 0; bottom-- {
		tables := v.Levels[bottom]
		if len(tables) == 0 {
			continue
		}
		if slices.ContainsFunc(tables, func(m *compaction.TableMeta) bool { return !merged[m.FileNum] }) {
			c := &compaction.Compaction{Level: bottom, OutputLevel: bottom, Reason: "manual: rewrite the bottom level"}
			c.Inputs[0] = tables
			if err := compact(c); err != nil {
				return err
			}
		}
		break
	}
	return nil
}
