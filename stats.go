package kvs

import "time"

// Stats is a snapshot of an engine's counters and on-disk layout. Counters
// are cumulative since Open; sizes are current. Amplification figures derive
// from them (WriteAmp, SpaceAmp, ReadAmp).
type Stats struct {
	Engine string // registered engine name

	// LiveKeys and LiveBytes are the keys a full scan would return and
	// their key+value bytes: exact for bitcask (its keydir knows), an
	// estimate for lsm, exact after a full Compact (lsm.DB.Stats says how).
	LiveKeys  int64
	LiveBytes int64

	UserBytesWritten int64 // key+value bytes accepted by Put, Delete and Write
	DiskBytesWritten int64 // every byte written to files: records, hints, merges, metadata
	BytesOnDisk      int64 // size of all the engine's files now

	Gets      int64 // Get calls (engine and snapshots)
	DiskReads int64 // file reads made to answer Gets
	// FilterSkips counts the tables a Get skipped because their bloom
	// filter ruled the key out (lsm). Tables probed = DiskReads+FilterSkips.
	FilterSkips int64
	// MemtableFilterSkips counts the memtables a Get skipped because their
	// bloom filter ruled the key out (lsm), without searching them.
	MemtableFilterSkips int64
	Syncs               int64 // fsyncs of data files and logs

	Compactions            int64         // completed merges or compactions
	CompactionTime         time.Duration // time spent in them
	CompactionBytesRead    int64
	CompactionBytesWritten int64

	StallTime time.Duration // time writers waited on write slowdown or stop

	IndexBytes int64 // estimated memory of in-memory indexes (keydir, bloom filters, ...)
	IndexKind  string
	Compaction string // lsm: the compaction policy in force, leveled or tiered

	Segments []SegmentStats // bitcask: one per data file, oldest first
	Levels   []LevelStats   // lsm: one per level
}

// SegmentStats describes one bitcask data file.
type SegmentStats struct {
	ID          uint64
	Bytes       int64 // file size
	LiveBytes   int64 // bytes of records the keydir still points at
	Records     int64 // records in the file
	LiveRecords int64
	Active      bool // the segment new writes go to
	Hint        bool // a hint file exists for it
}

// LevelStats describes one LSM level.
type LevelStats struct {
	Level          int
	Files          int
	Bytes          int64
	Score          float64
	BytesRead      int64 // compaction input read from this level
	BytesWritten   int64 // compaction output written to this level
	Compactions    int64
	CompactionTime time.Duration
}

// WriteAmp is DiskBytesWritten / UserBytesWritten (0 before any write).
func (s Stats) WriteAmp() float64 {
	if s.UserBytesWritten == 0 {
		return 0
	}
	return float64(s.DiskBytesWritten) / float64(s.UserBytesWritten)
}

// SpaceAmp is BytesOnDisk / LiveBytes (0 when nothing is live).
func (s Stats) SpaceAmp() float64 {
	if s.LiveBytes == 0 {
		return 0
	}
	return float64(s.BytesOnDisk) / float64(s.LiveBytes)
}

// ReadAmp is DiskReads / Gets: file reads per point lookup.
func (s Stats) ReadAmp() float64 {
	if s.Gets == 0 {
		return 0
	}
	return float64(s.DiskReads) / float64(s.Gets)
}

// MemoryPerKey is IndexBytes / LiveKeys.
func (s Stats) MemoryPerKey() float64 {
	if s.LiveKeys == 0 {
		return 0
	}
	return float64(s.IndexBytes) / float64(s.LiveKeys)
}
