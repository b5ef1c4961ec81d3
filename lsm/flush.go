package lsm

import (
	"errors"
	"fmt"
	"io/fs"
	"sync"
	"time"

	"github.com/kvs-lab/kvs"
	"github.com/kvs-lab/kvs/compaction"
	"github.com/kvs-lab/kvs/internal/base"
	"github.com/kvs-lab/kvs/internal/vfs"
	"github.com/kvs-lab/kvs/memtable"
	"github.com/kvs-lab/kvs/sstable"
	"github.com/sirupsen/logrus"
)

// tableBuilder writes one new table and computes its metadata.
type tableBuilder struct {
	db   *DB
	path string
	w    *sstable.Writer
	meta *compaction.TableMeta
	n    int
}

// newTableBuilder creates table num.
func (db *DB) newTableBuilder(num uint64) (*tableBuilder, error) {
	path := db.path(tableName(num))
	f, err := db.fs.Create(path)
	if err != nil {
		return nil, fmt.Errorf("kvs/lsm: create %s: %w", path, err)
	}
	return &tableBuilder{db: db, path: path, w: sstable.NewWriter(f, db.lo.Table), meta: &compaction.TableMeta{FileNum: num}}, nil
}

// add appends an entry; entries come in increasing internal key order.
func (b *tableBuilder) add(k base.InternalKey, v []byte) error {
	if err := b.w.Add(k, v); err != nil {
		return fmt.Errorf("kvs/lsm: write %s: %w", b.path, err)
	}
	m := b.meta
	if b.n == 0 {
		m.Smallest = k.Clone()
		m.SmallestSeq, m.LargestSeq = k.Seq(), k.Seq()
	}
	m.SmallestSeq = min(m.SmallestSeq, k.Seq())
	m.LargestSeq = max(m.LargestSeq, k.Seq())
	b.n++
	return nil
}

// finish closes (and syncs) the table and syncs the directory, so the
// table is durable before any MANIFEST edit names it.
func (b *tableBuilder) finish() (*compaction.TableMeta, error) {
	props, err := b.w.Close()
	if err != nil {
		b.db.fs.Remove(b.path)
		return nil, fmt.Errorf("kvs/lsm: finish %s: %w", b.path, err)
	}
	b.meta.Largest = props.Largest
	if err := vfs.SyncDir(b.db.fs, b.db.dir); err != nil {
		b.db.fs.Remove(b.path)
		return nil, err
	}
	st, err := b.db.fs.Stat(b.path)
	if err != nil {
		return nil, fmt.Errorf("kvs/lsm: stat %s: %w", b.path, err)
	}
	b.meta.Size = st.Size()
	b.db.stats.diskBytesWritten.Add(b.meta.Size)
	b.db.stats.syncs.Add(2) // the table (in Close) and the directory
	return b.meta, nil
}

// abandon closes and deletes an unfinished table.
func (b *tableBuilder) abandon() {
	b.w.Close()
	b.db.fs.Remove(b.path)
}

// writeTable writes the entries of it to table num and returns the
// table's metadata, or nil when it is empty (no file is left then).
func (db *DB) writeTable(it base.InternalIterator, num uint64) (*compaction.TableMeta, error) {
	defer it.Close()
	if !it.First() {
		return nil, it.Error()
	}
	b, err := db.newTableBuilder(num)
	if err != nil {
		return nil, err
	}
	for ok := true; ok; ok = it.Next() {
		if err := b.add(it.Key(), it.Value()); err != nil {
			b.abandon()
			return nil, err
		}
	}
	if err := it.Error(); err != nil {
		b.abandon()
		return nil, err
	}
	return b.finish()
}

// newMemSource returns an iterator over every entry of m.
func newMemSource(m *memtable.Memtable) base.InternalIterator { return m.NewIter(nil, nil) }

// openTable opens the table meta describes.
func (db *DB) openTable(meta *compaction.TableMeta) (*table, error) {
	path := db.path(tableName(meta.FileNum))
	f, err := db.fs.Open(path)
	if err != nil {
		return nil, fmt.Errorf("kvs/lsm: open table: %w", err)
	}
	r, err := sstable.Open(f, path, meta.Size, sstable.ReaderOptions{Cache: db.cache, Mmap: db.opts.ReadMode == kvs.ReadModeMmap})
	if err != nil {
		return nil, err
	}
	return &table{db: db, meta: meta, r: r}, nil
}

// retire closes a table no reader holds any more and, if an edit removed
// it from the version, deletes its file, unless Close has already done so
// (see DB.removeMu).
func (db *DB) retire(t *table) {
	t.r.Close()
	db.cache.EvictTable(t.r.CacheID())
	if !t.obsolete.Load() {
		return
	}
	db.removeMu.Lock()
	defer db.removeMu.Unlock()
	if db.filesRetired {
		return
	}
	delete(db.zombies, t.meta.FileNum)
	db.removeTable(t.meta.FileNum)
}

// startBackground starts the two background goroutines: one flushes
// immutable memtables, the other runs compactions. They work side by side
// (a flush does not wait for a long compaction, so writers stalled on a
// full memtable are released after one flush) and take turns only for the
// MANIFEST (manifestMu). bgDone is closed when both have returned.
func (db *DB) startBackground() {
	var wg sync.WaitGroup
	wg.Add(2)
	go func() {
		defer wg.Done()
		db.background(&db.flushMu, func() bool { return len(db.rs.imm) > 0 }, db.flushOldest)
	}()
	go func() {
		defer wg.Done()
		db.background(&db.jobMu, db.compactionDueLocked, db.compactOnce)
	}()
	go func() {
		wg.Wait()
		close(db.bgDone)
	}()
}

// background runs job under jobLock whenever due says there is work, until
// Close or a failure. job reports whether it did anything; when it did
// not, background waits for the read state to change before it asks due
// again. due is called with db.mu held.
func (db *DB) background(jobLock *sync.Mutex, due func() bool, job func() (bool, error)) {
	idleAt := -1 // the generation at which there was nothing to do
	db.mu.Lock()
	for {
		for !db.bgClosing && db.failErr == nil && (db.gen == idleAt || !due()) {
			db.bgWork.Wait()
		}
		if db.bgClosing || db.failErr != nil {
			db.mu.Unlock()
			return
		}
		gen := db.gen
		db.mu.Unlock()
		jobLock.Lock()
		did, err := job()
		jobLock.Unlock()
		db.mu.Lock()
		if err != nil {
			db.failLocked(err)
		}
		if !did {
			idleAt = gen
		}
	}
}

// needsWorkLocked reports whether a flush or a compaction is due. db.mu is
// held.
func (db *DB) needsWorkLocked() bool {
	return len(db.rs.imm) > 0 || db.compactionDueLocked()
}

// compactionDueLocked reports whether some level's score has reached 1.
// db.mu is held.
func (db *DB) compactionDueLocked() bool {
	if db.lo.DisableAutomaticCompactions {
		return false
	}
	for _, s := range compaction.Scores(db.rs.version(), db.copts) {
		if s >= 1 {
			return true
		}
	}
	return false
}

// compactOnce runs one picked compaction and reports whether there was
// one. jobMu is held.
func (db *DB) compactOnce() (bool, error) {
	if db.lo.DisableAutomaticCompactions {
		return false, nil
	}
	db.mu.Lock()
	v := db.rs.version()
	db.mu.Unlock()
	c := db.picker.Pick(v, nil)
	if c == nil {
		return false, nil
	}
	return true, db.runCompaction(c)
}

// flushOldest writes the oldest immutable memtable to an L0 table and
// records it in the MANIFEST with a log number past its WAL, which is then
// deleted. It reports false when there was no immutable memtable. flushMu
// is held.
func (db *DB) flushOldest() (bool, error) {
	start := time.Now()
	db.mu.Lock()
	imm := db.rs.imm
	if len(imm) == 0 {
		db.mu.Unlock()
		return false, nil
	}
	m := imm[len(imm)-1]
	// The next WAL still needed is the one of the next newer memtable.
	nextLog := db.rs.mem.logNum
	if len(imm) > 1 {
		nextLog = imm[len(imm)-2].logNum
	}
	num := db.nextFileNum
	db.nextFileNum++
	db.mu.Unlock()

	meta, err := db.writeTable(newMemSource(m.Memtable), num)
	if err != nil {
		return false, err
	}
	var t *table
	edit := &VersionEdit{LogNumber: nextLog}
	if meta != nil {
		if t, err = db.openTable(meta); err != nil {
			db.fs.Remove(db.path(tableName(num)))
			return false, err
		}
		edit.Added = []NewTable{{Level: 0, Meta: meta}}
		edit.LastSeq = meta.LargestSeq
	}
	db.mu.Lock()
	edit.NextFileNumber = db.nextFileNum
	db.mu.Unlock()
	db.manifestMu.Lock()
	st, err := db.logEdit(edit)
	if err != nil {
		db.manifestMu.Unlock()
		if t != nil {
			t.r.Close()
		}
		return false, err
	}
	db.mu.Lock()
	if t != nil {
		db.tables[meta.FileNum] = t
		db.levelStats[0].BytesWritten += meta.Size
	}
	cur := db.rs.imm // NB: rotations may have added newer memtables since
	db.installLocked(st.version, db.rs.mem, cur[:len(cur)-1])
	db.mu.Unlock()
	db.manifestMu.Unlock()
	db.stats.flushes.Add(1)
	// The edit is durable: the flushed memtable's WAL is garbage.
	if err := db.fs.Remove(db.path(logName(m.logNum))); err != nil && !errors.Is(err, fs.ErrNotExist) {
		db.log.WithError(err).Warn("cannot delete a flushed WAL; the next open will")
	}
	fields := logrus.Fields{"wal": logName(m.logNum), "duration": time.Since(start)}
	if meta != nil {
		fields["table"], fields["bytes"] = tableName(num), meta.Size
	}
	db.log.WithFields(fields).Info("flushed memtable")
	return true, nil
}

// installLocked makes a read state of the memtables and the tables of v
// (found in db.tables) current, and wakes stalled writers. db.mu is held.
func (db *DB) installLocked(v *compaction.Version, mem *memTable, imm []*memTable) {
	var levels [compaction.NumLevels][]*table
	for level, metas := range v.Levels {
		for _, meta := range metas {
			t := db.tables[meta.FileNum]
			if t == nil {
				panic(fmt.Sprintf("kvs/lsm: version holds table %06d, which is not open", meta.FileNum))
			}
			levels[level] = append(levels[level], t)
		}
	}
	old := db.rs
	db.rs = newReadState(mem, imm, levels)
	old.unref()
	db.gen++
	db.stall.Broadcast()
	db.bgWork.Broadcast()
}

// logEdit makes edit durable in the MANIFEST (see manifest.apply) and
// returns the new state. manifestMu is held, and stays held until the
// version st holds is installed, so that versions are installed in the
// order of their edits.
//
// A MANIFEST grows by an edit per flush and compaction, without bound
// under a steady write load. So once it is larger than
// minManifestRotateBytes and four times the snapshot it started with,
// logEdit writes a new MANIFEST holding a snapshot of the current state,
// points CURRENT at it and deletes the old one: the MANIFEST stays within
// a small multiple of the size of a snapshot. A crash before CURRENT is
// renamed leaves the old MANIFEST in charge; recovery deletes whichever
// MANIFEST CURRENT does not name.
func (db *DB) logEdit(edit *VersionEdit) (versionState, error) {
	size := db.manifest.w.Size()
	st, err := db.manifest.apply(edit)
	// NB: the record's framing counts too, as it does for the WAL.
	db.stats.diskBytesWritten.Add(db.manifest.w.Size() - size)
	if err != nil {
		return st, err
	}
	old := db.manifest
	if size := old.w.Size(); size < minManifestRotateBytes || size < 4*old.baseBytes {
		return st, nil
	}
	db.mu.Lock()
	num := db.nextFileNum
	db.nextFileNum++
	next := st
	next.nextFileNumber = db.nextFileNum
	db.mu.Unlock()
	m, err := createManifest(db.fs, db.dir, num, next, &db.stats.syncs)
	if err != nil {
		// NB: the edit is durable in the old MANIFEST, so the caller
		// installs it; but CURRENT may name either MANIFEST now, so no
		// further edit may be appended to the old one.
		db.fail(fmt.Errorf("rotate %s: %w", manifestName(old.num), err))
		return st, nil
	}
	db.manifest = m
	db.stats.diskBytesWritten.Add(m.w.Size())
	if err := old.close(); err != nil {
		db.log.WithError(err).Warn("close the old MANIFEST")
	}
	if err := db.fs.Remove(db.path(manifestName(old.num))); err != nil && !errors.Is(err, fs.ErrNotExist) {
		db.log.WithError(err).Warn("cannot delete the old MANIFEST; the next open will")
	}
	db.log.WithFields(logrus.Fields{"old": manifestName(old.num), "new": manifestName(num), "bytes": m.w.Size()}).Info("rewrote MANIFEST")
	return m.state, nil
}
