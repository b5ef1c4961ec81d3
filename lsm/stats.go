package lsm

import (
	"time"

	"github.com/kvs-lab/kvs"
	"github.com/kvs-lab/kvs/compaction"
	"github.com/kvs-lab/kvs/internal/base"
)

// Stats returns the engine's counters and the layout of its levels. It
// works after Close too, reporting the final counters (the live and memory
// figures, which need the open tables, are then 0). The figures that an
// LSM tree cannot simply count are defined as follows.
//
//   - BytesOnDisk is the size of every file in the directory the engine
//     owns: tables (obsolete ones a reader still holds included), WALs,
//     MANIFESTs, CURRENT and ENGINE. Stats lists the directory for it.
//   - Syncs counts every fsync: of WALs (group commit shares one among
//     writers), tables, the MANIFEST and CURRENT, and of the directory
//     after a file is created or renamed.
//   - IndexBytes is the memory the engine holds for reading: the arena
//     bytes in use and the bloom filter of each memtable (mutable and
//     immutable) + the index and bloom filter blocks of every open table
//     (Reader keeps both in memory; counted at their size in the file) +
//     the block cache's bytes in use. IndexKind is "lsm".
//   - LiveKeys and LiveBytes are an estimate: the tree holds old versions
//     and tombstones until compaction drops them, and only a full scan
//     counts live keys exactly. Over all tables and memtables, with S set
//     entries holding B bytes of user keys and values and D tombstones,
//     LiveKeys = max(0, S−D) (each tombstone assumed to cancel one set,
//     RocksDB's estimate-num-keys) and LiveBytes = B·LiveKeys/S. Both are
//     exact when every live key has one version and there are no
//     tombstones, as after Compact with no snapshot open; overwrites not
//     yet compacted make them too high.
func (db *DB) Stats() kvs.Stats {
	s := kvs.Stats{
		Engine:                 engineName,
		UserBytesWritten:       db.stats.userBytesWritten.Load(),
		DiskBytesWritten:       db.stats.diskBytesWritten.Load(),
		Gets:                   db.stats.gets.Load(),
		DiskReads:              db.stats.diskReads.Load(),
		FilterSkips:            db.stats.filterSkips.Load(),
		MemtableFilterSkips:    db.stats.memFilterSkips.Load(),
		Syncs:                  db.stats.syncs.Load(),
		Compactions:            db.stats.compactions.Load(),
		CompactionTime:         time.Duration(db.stats.compactionNanos.Load()),
		CompactionBytesRead:    db.stats.compactionRead.Load(),
		CompactionBytesWritten: db.stats.compactionWritten.Load(),
		StallTime:              time.Duration(db.stats.stallNanos.Load()),
		IndexKind:              engineName,
		Compaction:             db.lo.Policy,
		Levels:                 make([]kvs.LevelStats, compaction.NumLevels),
	}
	db.mu.Lock()
	copy(s.Levels, db.levelStats[:])
	rs := db.rs
	if rs != nil {
		rs.ref() // db.rs holds a reference, so rs cannot be retired under us
	}
	if db.walw != nil {
		ws := db.walw.Stats()
		s.DiskBytesWritten += ws.Bytes
		s.Syncs += ws.Syncs
	}
	db.mu.Unlock()

	// The rest reads the directory, the memtables and table properties;
	// it runs outside db.mu so that writers are not held up.
	s.BytesOnDisk = db.bytesOnDisk()
	if rs == nil {
		return s
	}
	defer rs.unref()
	var live liveCount
	scores := compaction.Scores(rs.version(), db.copts)
	for level, tables := range rs.levels {
		s.Levels[level].Files = len(tables)
		s.Levels[level].Score = scores[level]
		for _, t := range tables {
			s.Levels[level].Bytes += t.meta.Size
			p := t.r.Properties()
			s.IndexBytes += int64(p.IndexSize + p.FilterSize)
			live.addTable(p.NumEntries, p.NumDeletions, p.RawKeySize, p.RawValueSize)
		}
	}
	for _, m := range rs.mems() {
		s.IndexBytes += int64(m.Size() + m.FilterBytes())
		live.addMemtable(m)
	}
	s.IndexBytes += db.cache.Metrics().Size
	s.LiveKeys, s.LiveBytes = live.estimate()
	return s
}

// bytesOnDisk sums the sizes of the files in the directory that the
// engine owns (see parseFileName). A file deleted between the listing and
// its Stat is skipped: it is no longer on disk.
func (db *DB) bytesOnDisk() int64 {
	names, err := db.fs.List(db.dir)
	if err != nil {
		db.log.WithError(err).Warn("stats: list directory")
		return 0
	}
	var n int64
	for _, name := range names {
		if _, kind := parseFileName(name); kind == fileUnknown {
			continue
		}
		if st, err := db.fs.Stat(db.path(name)); err == nil && !st.IsDir() {
			n += st.Size()
		}
	}
	return n
}

// liveCount accumulates the entry counts behind the LiveKeys and
// LiveBytes estimate (see DB.Stats).
type liveCount struct {
	sets, dels int64
	setBytes   float64 // user key + value bytes of the set entries
}

// addTable adds a table's properties. They do not split key bytes between
// sets and tombstones, so the sets are given the mean user key size.
func (c *liveCount) addTable(entries, dels, rawKey, rawValue uint64) {
	if entries == 0 {
		return
	}
	sets := entries - min(dels, entries)
	userKeyBytes := float64(rawKey) - float64(entries*base.TrailerLen)
	c.sets += int64(sets)
	c.dels += int64(dels)
	// NB: a tombstone's value is empty, so RawValueSize is the sets'.
	c.setBytes += userKeyBytes*float64(sets)/float64(entries) + float64(rawValue)
}

// addMemtable walks m, which holds at most a memtable's worth of entries.
func (c *liveCount) addMemtable(m *memTable) {
	it := m.NewIter(nil, nil)
	defer it.Close()
	for ok := it.First(); ok; ok = it.Next() {
		k := it.Key()
		if k.Kind() == base.KindDelete {
			c.dels++
			continue
		}
		c.sets++
		c.setBytes += float64(len(k.UserKey) + len(it.Value()))
	}
}

// estimate returns LiveKeys and LiveBytes.
func (c *liveCount) estimate() (keys, bytes int64) {
	if c.sets <= c.dels {
		return 0, 0
	}
	keys = c.sets - c.dels
	if c.dels == 0 {
		// NB: the common exact case, kept free of rounding.
		return keys, int64(c.setBytes + 0.5)
	}
	return keys, int64(c.setBytes*float64(keys)/float64(c.sets) + 0.5)
}
