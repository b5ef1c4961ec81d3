package lsm

import (
	"errors"
	"fmt"
	"io"
	"io/fs"
	"slices"

	"github.com/kvs-lab/kvs"
	"github.com/kvs-lab/kvs/compaction"
	"github.com/kvs-lab/kvs/memtable"
	"github.com/kvs-lab/kvs/wal"
	"github.com/sirupsen/logrus"
)

// recover rebuilds the engine's state at Open:
//
//  1. Replay the MANIFEST that CURRENT names: the tables, the log number
//     (WALs below it hold nothing unflushed), the last sequence number.
//  2. Replay the WALs numbered at or above the log number, oldest first,
//     into memtables, flushing each to an L0 table when it fills and the
//     last one at the end. Only the newest WAL may end in a torn tail (a
//     crash while appending); older ones were synced whole when they were
//     rotated away, so damage in them is corruption.
//  3. Write a new MANIFEST holding the tables plus the new L0 tables, with
//     a log number past every replayed WAL, and switch CURRENT to it. From
//     here on the old WALs, the old MANIFEST and any table no version
//     holds (the output of a flush or compaction a crash interrupted) are
//     garbage, and are deleted.
//  4. Create the new WAL. A crash before it exists leaves a MANIFEST whose
//     log number names no file: nothing to replay, which is right.
//
// Flushing the replayed WALs, rather than appending to the newest, means a
// torn tail is never followed by new records, so the rule "a torn tail
// only in the newest WAL" stays true across any number of crashes.
func (db *DB) recover() error {
	st, _, err := replayManifest(db.fs, db.dir, db.log)
	fresh := errors.Is(err, fs.ErrNotExist)
	if err != nil && !fresh {
		return fmt.Errorf("kvs/lsm: open %s: %w", db.dir, err)
	}
	if fresh {
		st = versionState{version: &compaction.Version{}}
	}
	names, err := db.fs.List(db.dir)
	if err != nil {
		return fmt.Errorf("kvs/lsm: open %s: %w", db.dir, err)
	}
	var logs []uint64
	maxNum := uint64(0)
	for _, name := range names {
		num, kind := parseFileName(name)
		maxNum = max(maxNum, num)
		if kind == fileLog && num >= st.logNumber {
			logs = append(logs, num)
		}
		if fresh && (kind == fileLog || kind == fileTable) {
			// CURRENT is made before any WAL or table: without it there
			// can be none.
			return kvs.Corruptf(db.path(currentFile), 0, "CURRENT is missing but %s exists", name)
		}
	}
	slices.Sort(logs)
	db.nextFileNum = max(st.nextFileNumber, maxNum+1, 1)
	lastSeq := st.lastSeq

	// Replay the WALs.
	edit := &VersionEdit{}
	var mem *memtable.Memtable
	flushMem := func() error {
		if mem == nil || mem.Empty() {
			return nil
		}
		num := db.nextFileNum
		db.nextFileNum++
		meta, err := db.writeTable(newMemSource(mem), num)
		if err != nil {
			return err
		}
		if meta != nil {
			edit.Added = append(edit.Added, NewTable{Level: 0, Meta: meta})
		}
		mem = nil
		return nil
	}
	for i, num := range logs {
		n, err := db.replayWAL(num, i == len(logs)-1, func(b *kvs.Batch) error {
			need := batchNodeBytes(b)
			if mem != nil && mem.Size()+need > mem.Capacity() {
				if err := flushMem(); err != nil {
					return err
				}
			}
			if mem == nil {
				mem = memtable.New(max(db.lo.MemtableBytes, need+memtable.EmptySize))
			}
			if err := applyBatch(mem, b, b.Seq()); err != nil {
				return err
			}
			lastSeq = max(lastSeq, b.Seq()+uint64(b.Count())-1)
			return nil
		})
		if err != nil {
			return err
		}
		if n > 0 {
			db.log.WithFields(logrus.Fields{"wal": logName(num), "batches": n}).Info("replayed WAL")
		}
	}
	if err := flushMem(); err != nil {
		return err
	}

	// Install the new MANIFEST.
	logNum := db.nextFileNum
	manifestNum := logNum + 1
	db.nextFileNum += 2
	v, err := edit.Apply(st.version)
	if err != nil {
		return fmt.Errorf("kvs/lsm: open %s: %w", db.dir, err)
	}
	if err := db.choosePolicy(st.compaction); err != nil {
		return err
	}
	st = versionState{version: v, logNumber: logNum, nextFileNumber: db.nextFileNum, lastSeq: lastSeq, compaction: db.lo.Policy}
	m, err := createManifest(db.fs, db.dir, manifestNum, st, &db.stats.syncs)
	if err != nil {
		return fmt.Errorf("kvs/lsm: open %s: %w", db.dir, err)
	}
	db.manifest = m
	db.stats.diskBytesWritten.Add(m.w.Size())

	// Open the tables.
	var levels [compaction.NumLevels][]*table
	for level, metas := range v.Levels {
		for _, meta := range metas {
			t, err := db.openTable(meta)
			if err != nil {
				db.closeTables()
				m.close()
				return err
			}
			db.tables[meta.FileNum] = t
			levels[level] = append(levels[level], t)
		}
	}
	w, err := db.createWAL(logNum)
	if err != nil {
		db.closeTables()
		m.close()
		return fmt.Errorf("kvs/lsm: open %s: %w", db.dir, err)
	}
	db.walw = w
	db.rs = newReadState(&memTable{Memtable: memtable.New(db.lo.MemtableBytes), logNum: logNum}, nil, levels)
	db.nextSeq = lastSeq + 1
	db.visibleSeq.Store(lastSeq)

	// Delete what the new MANIFEST made garbage. A crash in the middle
	// leaves garbage the next Open deletes.
	for _, name := range names {
		num, kind := parseFileName(name)
		garbage := kind == fileLog && num < logNum ||
			kind == fileTable && db.tables[num] == nil ||
			kind == fileManifest && num != manifestNum ||
			name == currentTmp
		if garbage {
			if err := db.fs.Remove(db.path(name)); err != nil && !errors.Is(err, fs.ErrNotExist) {
				db.log.WithError(err).Warn("cannot delete an obsolete file; the next open will")
			}
		}
	}
	return nil
}

// closeTables closes every table opened by recover, when it fails.
func (db *DB) closeTables() {
	for num, t := range db.tables {
		t.r.Close()
		delete(db.tables, num)
	}
}

// replayWAL reads WAL num and calls apply with each batch, returning how
// many it read. newest says whether it is the newest WAL, the only one in
// which a torn tail is acceptable.
func (db *DB) replayWAL(num uint64, newest bool, apply func(*kvs.Batch) error) (int, error) {
	path := db.path(logName(num))
	f, err := db.fs.Open(path)
	if err != nil {
		return 0, fmt.Errorf("kvs/lsm: open %s: %w", path, err)
	}
	defer f.Close()
	r := wal.NewReader(f, path, num)
	n := 0
	for {
		rec, err := r.Next()
		if err == io.EOF {
			break
		}
		if err != nil {
			return n, err
		}
		b, err := kvs.DecodeBatch(rec)
		if err != nil {
			return n, kvs.Corruptf(path, r.Offset(), "bad batch: %v", err)
		}
		if b.Empty() {
			return n, kvs.Corruptf(path, r.Offset(), "empty batch")
		}
		if err := apply(b); err != nil {
			return n, fmt.Errorf("kvs/lsm: replay %s at offset %d: %w", path, r.Offset(), err)
		}
		n++
	}
	if t, ok := r.TornTail(); ok {
		if !newest {
			return n, kvs.Corruptf(path, t.Offset, "torn tail in a WAL that is not the newest: %s", t.Reason)
		}
		db.log.WithFields(logrus.Fields{"file": path, "offset": t.Offset, "bytes": t.Bytes, "reason": t.Reason}).
			Warn("dropped the torn tail of the WAL: a write a crash interrupted")
	}
	return n, nil
}

// choosePolicy settles the compaction policy: the one the options name,
// else the one recorded in the MANIFEST, else leveled. Open records it in
// the new MANIFEST, so a directory keeps its policy across opens that do
// not name one (a `kvs stats` must not start reshaping a tiered tree into
// levels).
func (db *DB) choosePolicy(recorded string) error {
	switch asked := db.lo.Policy; {
	case asked == "" && recorded != "":
		db.lo.Policy = recorded
	case asked == "":
		db.lo.Policy = kvs.CompactionLeveled
	case recorded != "" && asked != recorded:
		db.log.WithFields(logrus.Fields{"from": recorded, "to": asked}).Info("compaction policy changed")
	}
	if db.lo.Policy == kvs.CompactionTiered && db.lo.L0StopTrigger < 2 {
		// NB: tiered compaction merges L0 runs into one run, never fewer.
		return fmt.Errorf("kvs/lsm: open %s: option L0StopTrigger %d: tiered compaction needs at least 2", db.dir, db.lo.L0StopTrigger)
	}
	db.picker = newPicker(db.lo)
	return nil
}
