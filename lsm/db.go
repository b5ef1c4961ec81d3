package lsm

import (
	"errors"
	"fmt"
	"io"
	"io/fs"
	"slices"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"

	"github.com/kvs-lab/kvs"
	"github.com/kvs-lab/kvs/compaction"
	"github.com/kvs-lab/kvs/internal/vfs"
	"github.com/kvs-lab/kvs/sstable"
	"github.com/kvs-lab/kvs/wal"
	"github.com/sirupsen/logrus"
)

// engineName is the name written to the ENGINE file.
const engineName = "lsm"

// Files in an LSM directory. Numbered files share one counter
// (versionState.nextFileNumber), so a number names one file for good.
const (
	lockFile      = "LOCK"
	engineTmpFile = kvs.EngineFile + ".tmp"
	currentTmp    = currentFile + ".tmp"
	logSuffix     = ".log"
	tableSuffix   = ".sst"
)

func logName(num uint64) string   { return fmt.Sprintf("%06d%s", num, logSuffix) }
func tableName(num uint64) string { return fmt.Sprintf("%06d%s", num, tableSuffix) }

// fileKind says what a file name in the directory is.
type fileKind uint8

const (
	fileUnknown fileKind = iota
	fileLog
	fileTable
	fileManifest
	fileOther // CURRENT, CURRENT.tmp, LOCK, ENGINE, ENGINE.tmp
)

// parseFileName returns the kind of name and, for numbered files, its
// number.
func parseFileName(name string) (uint64, fileKind) {
	switch name {
	case currentFile, currentTmp, lockFile, kvs.EngineFile, engineTmpFile:
		return 0, fileOther
	}
	number := func(s string) (uint64, bool) {
		n, err := strconv.ParseUint(s, 10, 64)
		return n, err == nil && len(s) >= 6 && s[0] != '+'
	}
	if s, ok := strings.CutPrefix(name, manifestPrefix); ok {
		if n, ok := number(s); ok {
			return n, fileManifest
		}
	}
	if s, ok := strings.CutSuffix(name, logSuffix); ok {
		if n, ok := number(s); ok {
			return n, fileLog
		}
	}
	if s, ok := strings.CutSuffix(name, tableSuffix); ok {
		if n, ok := number(s); ok {
			return n, fileTable
		}
	}
	return 0, fileUnknown
}

// DB is an LSM engine open on one directory. It implements kvs.Engine;
// every method is safe for concurrent use.
//
// Locks, in the order they are taken:
//
//   - closeMu (read) is held by every call for its whole duration, (write)
//     by Close, so Close waits for calls in flight.
//   - commitMu serializes writers: sequence numbers are assigned, the WAL
//     record appended, the memtable filled and the visible sequence
//     number published under it, so WAL order, sequence order and
//     visibility order agree.
//   - flushMu serializes flushes (the flush goroutine and Compact); a
//     flush never waits for a compaction, so writers stalled on a full
//     memtable wait for one memtable's worth of work at most.
//   - jobMu serializes compactions (the compaction goroutine and
//     Compact). Holding flushMu and jobMu freezes the table set.
//   - manifestMu serializes MANIFEST edits and the installation of the
//     version each produces, so versions are installed in edit order.
//   - mu guards the memtables, the WAL writer, the current read state,
//     the table set, the file number counter and the failure; it is held
//     only briefly and never across I/O.
type DB struct {
	dir  string
	fs   vfs.FS
	opts *kvs.Options
	lo   *Options
	log  *logrus.Entry
	lock io.Closer

	cache  *sstable.Cache
	picker picker // jobMu (set by Open)
	// copts are the picker's options, defaults filled in; read anywhere.
	copts compaction.Options

	closeMu sync.RWMutex
	closed  atomic.Bool

	commitMu sync.Mutex
	// visibleSeq is the sequence number readers see up to: every batch
	// with a sequence number at or below it is wholly in the memtables
	// (or flushed from them).
	visibleSeq atomic.Uint64
	// nextSeq is the sequence number the next batch's first entry gets
	// (commitMu).
	nextSeq uint64

	flushMu sync.Mutex
	jobMu   sync.Mutex
	// merged lists the tables the last compaction wrote (jobMu).
	merged     []uint64
	manifestMu sync.Mutex
	manifest   *manifest // manifestMu (and Open)

	mu sync.Mutex
	// walw is the WAL of the mutable memtable.
	walw *wal.Writer
	// rs is the current read state: mutable and immutable memtables and
	// the tables of the current version.
	rs *readState
	// tables maps the file number of every table of the current version
	// to its handle.
	tables      map[uint64]*table
	nextFileNum uint64
	// snapshots are the open snapshots.
	snapshots map[*snapshot]struct{}
	// stall wakes writers waiting for a flush or compaction; bgWork
	// wakes the background goroutine waiting for work.
	stall     *sync.Cond
	bgWork    *sync.Cond
	bgClosing bool
	// gen counts read state changes; the background goroutine uses it to
	// tell whether anything changed since it last found no work.
	gen     int
	bgDone  chan struct{} // closed when both background goroutines are gone
	failErr error
	// levelStats accumulates per-level compaction counters.
	levelStats [compaction.NumLevels]kvs.LevelStats

	// removeMu orders the deletion of obsolete tables with Close. A
	// compaction marks its inputs obsolete (zombies) once its edit is
	// durable; the last reader to let go of one deletes its file
	// (retire). Close deletes the zombies readers still hold, so no
	// obsolete table outlives the engine, and after Close nothing is
	// deleted: the directory may belong to a new Open by then. Lock
	// order: db.mu, then removeMu.
	removeMu     sync.Mutex
	zombies      map[uint64]struct{} // removeMu
	filesRetired bool                // removeMu; set by Close

	stats struct {
		gets, diskReads, filterSkips, syncs atomic.Int64
		memFilterSkips                      atomic.Int64
		userBytesWritten, diskBytesWritten  atomic.Int64
		compactions, compactionNanos        atomic.Int64
		compactionRead, compactionWritten   atomic.Int64
		flushes                             atomic.Int64
		stallNanos                          atomic.Int64
	}
}

var _ kvs.Engine = (*DB)(nil)

// picker picks the next compaction over a version: compaction.Leveled or
// compaction.Tiered.
type picker interface {
	Pick(v *compaction.Version, busy func(*compaction.TableMeta) bool) *compaction.Compaction
}

// newPicker returns the picker of lo.Policy (defaults filled in).
//
// The tiered picker merges runs of similar size from L0CompactionTrigger
// runs on (at most 4). Only below the slowdown trigger does it merge the
// newest runs whatever their sizes (MaxRuns): writers would otherwise be
// slowed, and those stopped at L0StopTrigger must always have a merge to
// wait for. (MaxRuns at the compaction trigger would merge the newest
// runs as soon as there are enough of them, the oldest big run included:
// size-tiering would never get to choose.)
func newPicker(lo *Options) picker {
	if lo.Policy != kvs.CompactionTiered {
		return compaction.NewLeveled(lo.Compaction)
	}
	trigger := lo.Compaction.L0CompactionTrigger
	width := min(max(trigger, 2), 4)
	return compaction.NewTiered(compaction.TieredOptions{
		MinMergeWidth: width,
		MaxRuns:       max(min(lo.L0SlowdownTrigger, lo.L0StopTrigger)-1, width-1, 1),
	})
}

// Open opens the LSM engine in dir configured by opts, its LSM section
// included (see OptionsFrom); kvs.Open("lsm", ...) calls it. See OpenWith.
func Open(dir string, opts *kvs.Options) (*DB, error) {
	var lsmOpts kvs.LSMOptions
	if opts != nil {
		lsmOpts = opts.LSM
	}
	return OpenWith(dir, opts, OptionsFrom(lsmOpts))
}

// OpenWith opens the LSM engine in dir, creating the directory if it is
// missing (unless opts.ErrorIfNotExist), and recovers it: the MANIFEST
// gives the tables, the WALs it does not cover are replayed and flushed to
// L0 (see recover.go). opts and lo may be nil; OpenWith works on copies.
// The LSM knobs come from lo alone (nil: the defaults), never from
// opts.LSM: OpenWith is for tests and tools that need the knobs only
// Options has (DisableAutomaticCompactions, MaxImmutableMemtables).
// Errors: kvs.ErrLocked when another engine holds dir, kvs.ErrNotKVSDir
// for a directory holding files the engine did not write or another
// engine's, a *kvs.CorruptionError for damaged files.
func OpenWith(dir string, opts *kvs.Options, lo *Options) (*DB, error) {
	opts = opts.Clone().EnsureDefaults()
	if err := opts.Validate(); err != nil {
		return nil, fmt.Errorf("kvs/lsm: open %s: %w", dir, err)
	}
	if lo == nil {
		lo = &Options{}
	} else {
		c := *lo
		lo = &c
	}
	if err := lo.Validate(); err != nil {
		return nil, fmt.Errorf("kvs/lsm: open %s: %w", dir, err)
	}
	lo.EnsureDefaults()
	if lo.L0StopTrigger < lo.Compaction.L0CompactionTrigger {
		// NB: writers stopped by L0 would wait for a compaction that
		// never comes.
		return nil, fmt.Errorf("kvs/lsm: open %s: option L0StopTrigger %d is below Compaction.L0CompactionTrigger %d",
			dir, lo.L0StopTrigger, lo.Compaction.L0CompactionTrigger)
	}
	fsys := opts.FS
	dirSyncs, err := prepareDir(fsys, dir, opts.ErrorIfNotExist)
	if err != nil {
		return nil, err
	}
	// Refuse a foreign directory before Lock creates LOCK in it.
	names, err := fsys.List(dir)
	if err != nil {
		return nil, fmt.Errorf("kvs/lsm: open %s: %w", dir, err)
	}
	for _, name := range names {
		if _, kind := parseFileName(name); kind == fileUnknown {
			return nil, fmt.Errorf("kvs/lsm: open %s: %w: %s is not a file the lsm engine writes (kvs never deletes it)",
				dir, kvs.ErrNotKVSDir, fsys.PathJoin(dir, name))
		}
	}
	lock, err := fsys.Lock(fsys.PathJoin(dir, lockFile))
	if err != nil {
		if errors.Is(err, vfs.ErrLocked) {
			return nil, fmt.Errorf("kvs/lsm: open %s: %w (%v)", dir, kvs.ErrLocked, err)
		}
		return nil, fmt.Errorf("kvs/lsm: open %s: lock: %w", dir, err)
	}
	db := &DB{
		dir:       dir,
		fs:        fsys,
		opts:      opts,
		lo:        lo,
		log:       opts.Logger.WithFields(logrus.Fields{"engine": engineName, "dir": dir}),
		lock:      lock,
		cache:     sstable.NewCache(lo.BlockCacheBytes),
		copts:     *lo.Compaction.EnsureDefaults(),
		tables:    map[uint64]*table{},
		zombies:   map[uint64]struct{}{},
		snapshots: map[*snapshot]struct{}{},
		bgDone:    make(chan struct{}),
	}
	db.stats.syncs.Add(int64(dirSyncs))
	db.stall = sync.NewCond(&db.mu)
	db.bgWork = sync.NewCond(&db.mu)
	for level := range db.levelStats {
		db.levelStats[level].Level = level
	}
	if err := db.checkEngineFile(names); err != nil {
		lock.Close()
		return nil, err
	}
	if err := db.recover(); err != nil {
		db.closeFiles()
		lock.Close()
		return nil, err
	}
	db.startBackground()
	db.log.Info("opened")
	return db, nil
}

// prepareDir makes sure dir exists and is a directory, creating it (and
// syncing every new directory's parent) when it is missing. It returns the
// number of directory fsyncs it made.
func prepareDir(fsys vfs.FS, dir string, errorIfNotExist bool) (int, error) {
	st, err := fsys.Stat(dir)
	switch {
	case err == nil && !st.IsDir():
		return 0, fmt.Errorf("kvs/lsm: open %s: %w: it is a file, not a directory", dir, kvs.ErrNotKVSDir)
	case err == nil:
		return 0, nil
	case !errors.Is(err, fs.ErrNotExist):
		return 0, fmt.Errorf("kvs/lsm: open %s: %w", dir, err)
	case errorIfNotExist:
		return 0, fmt.Errorf("kvs/lsm: open %s: directory does not exist (ErrorIfNotExist is set): %w", dir, err)
	}
	// Note the directories MkdirAll will create, top down: each is a new
	// entry of its parent, and a crash forgets an entry whose parent was
	// not synced, with everything under it.
	var created []string
	for d := dir; ; {
		created = append(created, d)
		parent := fsys.PathDir(d)
		if parent == d {
			break
		}
		if _, err := fsys.Stat(parent); err == nil {
			break
		} else if !errors.Is(err, fs.ErrNotExist) {
			return 0, fmt.Errorf("kvs/lsm: open %s: %w", dir, err)
		}
		d = parent
	}
	slices.Reverse(created)
	if err := fsys.MkdirAll(dir, 0o755); err != nil {
		return 0, fmt.Errorf("kvs/lsm: create %s: %w", dir, err)
	}
	for i, d := range created {
		if err := vfs.SyncDir(fsys, fsys.PathDir(d)); err != nil {
			return i, fmt.Errorf("kvs/lsm: create %s: %w", dir, err)
		}
	}
	return len(created), nil
}

// checkEngineFile checks that the ENGINE file names lsm, writing it when
// the directory is new.
func (db *DB) checkEngineFile(names []string) error {
	if slices.Contains(names, kvs.EngineFile) {
		name, err := kvs.DetectEngine(db.fs, db.dir)
		if err != nil {
			return fmt.Errorf("kvs/lsm: open %s: %w", db.dir, err)
		}
		if name != engineName {
			return fmt.Errorf("kvs/lsm: open %s: %w: it holds a %q engine", db.dir, kvs.ErrNotKVSDir, name)
		}
		return nil
	}
	for _, name := range names {
		if _, kind := parseFileName(name); kind == fileLog || kind == fileTable || kind == fileManifest || name == currentFile {
			// ENGINE is written, durably, before any other file.
			return fmt.Errorf("kvs/lsm: open %s: %w: it holds %s but no %s file", db.dir, kvs.ErrNotKVSDir, name, kvs.EngineFile)
		}
	}
	// A new directory: make its entry in the parent durable (whoever
	// created it), then record the engine.
	if err := vfs.SyncDir(db.fs, db.fs.PathDir(db.dir)); err != nil {
		return fmt.Errorf("kvs/lsm: open %s: %w", db.dir, err)
	}
	if err := kvs.WriteEngineFile(db.fs, db.dir, engineName); err != nil {
		return fmt.Errorf("kvs/lsm: open %s: %w", db.dir, err)
	}
	// The parent above, then ENGINE and the directory in WriteEngineFile.
	db.stats.syncs.Add(3)
	db.stats.diskBytesWritten.Add(int64(len(engineName) + 1))
	return nil
}

// path returns the path of name in the engine's directory.
func (db *DB) path(name string) string { return db.fs.PathJoin(db.dir, name) }

// fail records err as the engine's sticky failure, if it is the first, and
// returns the error writers get from now on. After a write or fsync of the
// WAL or the MANIFEST fails, the engine cannot know what reached the disk
// (a failed fsync may have dropped dirty pages), so it stops acknowledging
// writes; recovery at the next Open sorts out what survived. db.mu must
// not be held.
func (db *DB) fail(err error) error {
	db.mu.Lock()
	defer db.mu.Unlock()
	return db.failLocked(err)
}

// failLocked is fail with db.mu held.
func (db *DB) failLocked(err error) error {
	if db.failErr == nil {
		db.failErr = fmt.Errorf("kvs/lsm: %w: %w", kvs.ErrFailed, err)
		db.log.WithError(err).Error("write failed; refusing further writes until reopened")
		db.stall.Broadcast()
		db.bgWork.Broadcast()
	}
	return db.failErr
}

// failure returns the sticky failure, or nil.
func (db *DB) failure() error {
	db.mu.Lock()
	defer db.mu.Unlock()
	return db.failErr
}

// Close stops the background work (waiting for a flush or compaction in
// progress), syncs and closes the WAL and the MANIFEST, closes the tables
// and releases the directory lock. The memtables are not flushed: their
// WAL is replayed at the next Open. Calls after Close, a second Close
// included, return kvs.ErrClosed; snapshots and iterators still open are
// cut off the same way. Close returns the sticky failure, if the engine
// had one, or the error of the final sync.
func (db *DB) Close() error {
	// Wake stalled writers and the background goroutine first: Close
	// waits for the calls in flight, and a stalled writer would otherwise
	// wait for a flush forever.
	if db.closed.Swap(true) {
		return kvs.ErrClosed
	}
	db.mu.Lock()
	db.bgClosing = true
	db.stall.Broadcast()
	db.bgWork.Broadcast()
	db.mu.Unlock()
	<-db.bgDone
	db.closeMu.Lock()
	defer db.closeMu.Unlock()

	err := db.failure()
	db.commitMu.Lock()
	db.mu.Lock()
	w := db.walw
	db.mu.Unlock()
	if werr := w.Close(); werr != nil && err == nil {
		err = fmt.Errorf("kvs/lsm: close: %w", werr)
	}
	db.commitMu.Unlock()
	db.manifestMu.Lock()
	if merr := db.manifest.close(); merr != nil && err == nil {
		err = fmt.Errorf("kvs/lsm: close: %w", merr)
	}
	db.manifestMu.Unlock()
	db.closeFiles()
	db.removeZombies()
	if lerr := db.lock.Close(); lerr != nil && err == nil {
		err = fmt.Errorf("kvs/lsm: close: release lock: %w", lerr)
	}
	db.log.Info("closed")
	return err
}

// closeFiles drops the engine's reference to the current read state; the
// tables close once the snapshots and iterators still holding them let go.
func (db *DB) closeFiles() {
	db.mu.Lock()
	rs := db.rs
	db.rs = nil
	db.mu.Unlock()
	if rs != nil {
		rs.unref()
	}
}

// removeZombies deletes the files of the obsolete tables that snapshots or
// iterators still hold (their open handles keep reading them) and stops
// retire from deleting anything more.
func (db *DB) removeZombies() {
	db.removeMu.Lock()
	defer db.removeMu.Unlock()
	db.filesRetired = true
	for num := range db.zombies {
		db.removeTable(num)
		delete(db.zombies, num)
	}
}

// removeTable deletes table num's file. A failure is logged: the next
// Open deletes what the MANIFEST does not name.
func (db *DB) removeTable(num uint64) {
	if err := db.fs.Remove(db.path(tableName(num))); err != nil && !errors.Is(err, fs.ErrNotExist) {
		db.log.WithError(err).Warn("cannot delete an obsolete table; the next open will")
	}
}
