package bitcask

import (
	"errors"
	"fmt"
	"io"
	"io/fs"
	"slices"
	"sync"
	"sync/atomic"
	"time"

	"github.com/kvs-lab/kvs"
	"github.com/kvs-lab/kvs/internal/vfs"
	"github.com/sirupsen/logrus"
)

// engineName is the name bitcask registers and writes to ENGINE.
const engineName = "bitcask"

func init() {
	kvs.Register(engineName, func(dir string, opts *kvs.Options) (kvs.Engine, error) {
		db, err := Open(dir, opts)
		if err != nil {
			return nil, err // NB: not db, which would be a non-nil interface holding a nil *DB
		}
		return db, nil
	})
}

// DB is a bitcask engine open on one directory. It implements kvs.Engine;
// all its methods are safe for concurrent use. See the package
// documentation for the locking rules.
type DB struct {
	dir       string
	mergePath string
	fs        vfs.FS
	opts      *kvs.Options
	log       *logrus.Entry
	lock      io.Closer

	// closeMu is held for reading by every call for its whole duration and
	// for writing by Close, so that Close waits for the calls in flight
	// (a running merge included) and no call sees a half-closed engine.
	closeMu    sync.RWMutex
	closed     bool
	closedFlag atomic.Bool // closed, readable without closeMu by iterator moves

	// writeMu serializes appends to the active segment and rotations.
	writeMu  sync.Mutex
	active   *segment // its id is mirrored in activeID, under mu, for Stats
	nextSeq  uint64
	appended int64  // log position: bytes appended to segments since Open
	wbuf     []byte // encoding buffer of the write in progress

	// nextFileID is the id the next new segment (active or merge output)
	// gets.
	nextFileID atomic.Uint64

	// Group commit. synced is the log position known durable: every byte
	// appended before it has been fsynced. syncing is true while one
	// writer (the leader) runs an fsync for everybody; syncCond wakes the
	// others when it ends.
	syncMu   sync.Mutex
	syncCond *sync.Cond
	synced   int64
	syncing  bool

	// failErr is the sticky write failure (see fail).
	failMu  sync.Mutex
	failErr error

	// mu guards the keydir, the segment table and every counter that
	// changes with them. Writers of the keydir hold it for writing;
	// readers (Get, NewIter, NewSnapshot, Stats) for reading.
	mu            sync.RWMutex
	keydir        index
	segs          map[uint64]*segment // live segments by id, the active one included
	activeID      uint64
	liveUserBytes int64 // key+value bytes of the live keys

	// mergeMu makes merges run one at a time.
	mergeMu sync.Mutex

	// obsMu guards the segments that merges replaced but that are still
	// on disk (pinned, or their removal failed), and the merge/ directory,
	// which must outlive them (see merge.go).
	obsMu     sync.Mutex
	pending   map[uint64]*segment
	merging   bool
	obsClosed bool // set by Close: from then on nothing touches the directory
	doneBytes int64

	stats struct {
		gets, diskReads, syncs                      atomic.Int64
		userBytesWritten, diskBytesWritten          atomic.Int64
		compactions, compactionNanos                atomic.Int64
		compactionBytesRead, compactionBytesWritten atomic.Int64
	}
}

var _ kvs.Engine = (*DB)(nil)

// Open opens the bitcask engine in dir, creating the directory if it is
// missing (unless opts.ErrorIfNotExist), and recovers its contents as
// docs/formats/bitcask.md's recovery rules say. opts may be nil; Open
// works on a copy. Errors: kvs.ErrLocked when another engine holds dir,
// kvs.ErrNotKVSDir when dir holds a file bitcask did not write or belongs
// to another engine, a *kvs.CorruptionError (matching kvs.ErrCorruption)
// naming the file and offset of damaged data, and an error wrapping
// fs.ErrNotExist for a missing dir with ErrorIfNotExist.
func Open(dir string, opts *kvs.Options) (*DB, error) {
	opts = opts.Clone().EnsureDefaults()
	if err := opts.Validate(); err != nil {
		return nil, fmt.Errorf("kvs/bitcask: open %s: %w", dir, err)
	}
	fsys := opts.FS
	if err := prepareDir(fsys, dir, opts.ErrorIfNotExist); err != nil {
		return nil, err
	}
	// Refuse a foreign directory before Lock creates LOCK in it.
	names, err := fsys.List(dir)
	if err != nil {
		return nil, fmt.Errorf("kvs/bitcask: open %s: %w", dir, err)
	}
	if err := checkNames(fsys, dir, names); err != nil {
		return nil, err
	}
	lock, err := fsys.Lock(fsys.PathJoin(dir, lockFile))
	if err != nil {
		if errors.Is(err, vfs.ErrLocked) {
			return nil, fmt.Errorf("kvs/bitcask: open %s: %w (%v)", dir, kvs.ErrLocked, err)
		}
		return nil, fmt.Errorf("kvs/bitcask: open %s: lock: %w", dir, err)
	}
	db := &DB{
		dir:       dir,
		mergePath: fsys.PathJoin(dir, mergeDir),
		fs:        fsys,
		opts:      opts,
		log:       opts.Logger.WithFields(logrus.Fields{"engine": engineName, "dir": dir}),
		lock:      lock,
		keydir:    newIndex(opts.Bitcask.Index),
		segs:      make(map[uint64]*segment),
		pending:   make(map[uint64]*segment),
	}
	db.syncCond = sync.NewCond(&db.syncMu)
	if err := db.recover(); err != nil {
		for _, s := range db.segs {
			s.closeFile()
		}
		lock.Close()
		return nil, err
	}
	return db, nil
}

// prepareDir makes sure dir exists and is a directory.
func prepareDir(fsys vfs.FS, dir string, errorIfNotExist bool) error {
	st, err := fsys.Stat(dir)
	switch {
	case err == nil && !st.IsDir():
		return fmt.Errorf("kvs/bitcask: open %s: %w: it is a file, not a directory", dir, kvs.ErrNotKVSDir)
	case err == nil:
		return nil
	case !errors.Is(err, fs.ErrNotExist):
		return fmt.Errorf("kvs/bitcask: open %s: %w", dir, err)
	case errorIfNotExist:
		return fmt.Errorf("kvs/bitcask: open %s: directory does not exist (ErrorIfNotExist is set): %w", dir, err)
	}
	// Note the directories MkdirAll will create, top down: each is a new
	// entry of its parent, and a crash forgets an entry whose directory
	// was not synced, with everything under it.
	var created []string
	for d := dir; ; {
		created = append(created, d)
		parent := fsys.PathDir(d)
		if parent == d {
			break // the root, or "." for a relative path: it exists
		}
		if _, err := fsys.Stat(parent); err == nil {
			break
		} else if !errors.Is(err, fs.ErrNotExist) {
			return fmt.Errorf("kvs/bitcask: open %s: %w", dir, err)
		}
		d = parent
	}
	slices.Reverse(created)
	if err := fsys.MkdirAll(dir, 0o755); err != nil {
		return fmt.Errorf("kvs/bitcask: create %s: %w", dir, err)
	}
	// Sync the deepest directory that existed, then each new one but dir
	// itself: that makes every new entry durable, down to dir's entry in
	// its parent. (checkEngineFile syncs dir's parent again, for a
	// directory an earlier Open created.)
	for _, d := range created {
		if err := vfs.SyncDir(fsys, fsys.PathDir(d)); err != nil {
			return fmt.Errorf("kvs/bitcask: create %s: %w", dir, err)
		}
	}
	return nil
}

// engineTmpFile is the temporary name kvs.WriteEngineFile writes ENGINE
// under; a crash can leave it behind in a new directory.
const engineTmpFile = kvs.EngineFile + ".tmp"

// checkNames returns an error wrapping kvs.ErrNotKVSDir, naming the file,
// when names (dir's entries) holds one bitcask does not write, in dir or
// in its merge/ directory.
func checkNames(fsys vfs.FS, dir string, names []string) error {
	for _, name := range names {
		switch _, kind := ParseFileName(name); {
		case kind != FileUnknown, name == engineTmpFile:
			continue
		case name == mergeDir:
			if st, err := fsys.Stat(fsys.PathJoin(dir, name)); err == nil && st.IsDir() {
				if err := checkMergeDir(fsys, fsys.PathJoin(dir, name)); err != nil {
					return fmt.Errorf("kvs/bitcask: open %s: %w", dir, err)
				}
				continue
			}
		}
		return fmt.Errorf("kvs/bitcask: open %s: %w", dir, notOurs(fsys.PathJoin(dir, name)))
	}
	return nil
}

// checkMergeDir returns an error wrapping kvs.ErrNotKVSDir, naming the
// file, when the merge directory at path holds anything but DONE and
// DONE.tmp.
func checkMergeDir(fsys vfs.FS, path string) error {
	names, err := fsys.List(path)
	if err != nil {
		return err
	}
	for _, name := range names {
		if name != doneFile && name != doneTmpFile {
			return notOurs(fsys.PathJoin(path, name))
		}
	}
	return nil
}

// notOurs is the error for a file at path that bitcask does not write.
func notOurs(path string) error {
	return fmt.Errorf("%w: %s is not a file bitcask writes (kvs never deletes it)", kvs.ErrNotKVSDir, path)
}

// checkEngineFile checks that dir's ENGINE file names bitcask, writing it
// when the directory is new.
func (db *DB) checkEngineFile(names []string) error {
	if slices.Contains(names, kvs.EngineFile) {
		name, err := kvs.DetectEngine(db.fs, db.dir)
		if err != nil {
			return fmt.Errorf("kvs/bitcask: open %s: %w", db.dir, err)
		}
		if name != engineName {
			return fmt.Errorf("kvs/bitcask: open %s: %w: it holds a %q engine", db.dir, kvs.ErrNotKVSDir, name)
		}
		return nil
	}
	for _, name := range names {
		if _, kind := ParseFileName(name); kind == FileSegment || kind == FileHint || kind == FileMergeOutput || name == mergeDir {
			// ENGINE is written, durably, before any segment: this
			// directory was not made by bitcask.
			return fmt.Errorf("kvs/bitcask: open %s: %w: it holds %s but no %s file", db.dir, kvs.ErrNotKVSDir, name, kvs.EngineFile)
		}
	}
	// A new directory: make its entry in the parent durable (whoever
	// created it, this Open or an earlier one that failed), then record
	// the engine.
	if err := vfs.SyncDir(db.fs, db.fs.PathDir(db.dir)); err != nil {
		return fmt.Errorf("kvs/bitcask: open %s: %w", db.dir, err)
	}
	if err := kvs.WriteEngineFile(db.fs, db.dir, engineName); err != nil {
		return fmt.Errorf("kvs/bitcask: open %s: %w", db.dir, err)
	}
	db.stats.diskBytesWritten.Add(int64(len(engineName) + 1))
	return nil
}

// path returns the path of name in the engine's directory.
func (db *DB) path(name string) string { return db.fs.PathJoin(db.dir, name) }

// createSegment creates segment id with its file header and syncs the
// directory, so that the file's existence is durable before any synced
// write lands in it. The header itself is synced with the first fsync of
// the segment; until then a crash may leave the file shorter than its
// header, which recovery treats as a torn, empty newest segment.
func (db *DB) createSegment(id uint64) (*segment, error) {
	if id > maxFileID {
		return nil, fmt.Errorf("kvs/bitcask: file id %d exceeds %d", id, uint64(maxFileID))
	}
	path := db.path(segmentName(id))
	f, err := db.fs.Create(path)
	if err != nil {
		return nil, fmt.Errorf("kvs/bitcask: create %s: %w", path, err)
	}
	if _, err := f.Write(appendFileHeader(nil, segmentMagic, segmentVersion)); err != nil {
		f.Close()
		return nil, fmt.Errorf("kvs/bitcask: write %s: %w", path, err)
	}
	if err := vfs.SyncDir(db.fs, db.dir); err != nil {
		f.Close()
		return nil, fmt.Errorf("kvs/bitcask: create %s: %w", path, err)
	}
	db.stats.diskBytesWritten.Add(fileHeaderLen)
	s := newSegment(id, path, f)
	s.bytes = fileHeaderLen
	s.setFlushed(fileHeaderLen)
	// The active segment grows to about MaxSegmentBytes: map that much
	// now, so that reads of records appended later need no new map.
	db.mapSegment(s, db.opts.Bitcask.MaxSegmentBytes)
	return s, nil
}

// mapSegment maps the first length bytes of s's file when the engine reads
// through maps (Options.ReadMode). A file that cannot be mapped is
// read with pread; only an unexpected failure is worth a log line.
func (db *DB) mapSegment(s *segment, length int64) {
	if db.opts.ReadMode != kvs.ReadModeMmap {
		return
	}
	if err := s.mapFile(length); err != nil && !errors.Is(err, vfs.ErrNoMmap) {
		db.log.WithError(err).WithField("file", s.path).Warn("cannot map a segment; reading it with pread")
	}
}

// maxFileID is the largest file id a keydir entry can hold.
const maxFileID = 1<<32 - 1

// fail records err as the engine's sticky failure, if it is the first, and
// returns the error writers get from now on. After a write or an fsync of
// the log fails, the engine cannot know what reached the disk: the page
// cache may have dropped the dirty pages a failed fsync reported (the
// "fsyncgate" lesson, PostgreSQL 2018), so retrying the fsync could
// succeed without the data. Writes acknowledged with Sync before the
// failure are durable; the rest is for recovery to sort out.
//
// NB: a reopen in the same boot re-reads the files through the page cache
// and fsyncs the newest segment again, which trusts those pages. Linux may
// have marked them clean after the failed writeback, so that fsync can
// succeed without writing them; fully closing that hole would take
// rewriting the newest segment's records at open.
func (db *DB) fail(err error) error {
	db.failMu.Lock()
	defer db.failMu.Unlock()
	if db.failErr == nil {
		db.failErr = fmt.Errorf("kvs/bitcask: %w: %w", kvs.ErrFailed, err)
		db.log.WithError(err).Error("write failed; refusing further writes until reopened")
	}
	return db.failErr
}

// failure returns the sticky failure, or nil.
func (db *DB) failure() error {
	db.failMu.Lock()
	defer db.failMu.Unlock()
	return db.failErr
}

// Close syncs the active segment, closes every file and releases the
// directory lock. Calls after Close, a second Close included, return
// kvs.ErrClosed. Close waits for calls in flight, a running Compact
// included. Snapshots and iterators still open are cut off: their calls
// return kvs.ErrClosed. Close returns the sticky write failure, if the
// engine had one, or the error of the final sync.
func (db *DB) Close() error {
	db.closeMu.Lock()
	defer db.closeMu.Unlock()
	if db.closed {
		return kvs.ErrClosed
	}
	db.closed = true
	db.closedFlag.Store(true)
	err := db.failure()
	if err == nil {
		if serr := db.active.syncFile(); serr != nil {
			err = fmt.Errorf("kvs/bitcask: close: %w", serr)
		} else {
			db.stats.syncs.Add(1)
		}
	}
	db.obsMu.Lock()
	db.obsClosed = true
	for _, s := range db.pending {
		s.closeFile()
	}
	db.obsMu.Unlock()
	// The files close now, so that snapshots and iterators still open are
	// cut off; their maps go when the last reference does. The segment
	// table lets go of its references here: a segment nothing else holds
	// is released at once, one an open iterator pins when it closes.
	db.mu.Lock()
	segs := make([]*segment, 0, len(db.segs))
	for _, s := range db.segs {
		s.closeFD()
		segs = append(segs, s)
	}
	db.mu.Unlock()
	db.unref(segs...)
	if lerr := db.lock.Close(); lerr != nil && err == nil {
		err = fmt.Errorf("kvs/bitcask: close: release lock: %w", lerr)
	}
	db.log.Info("closed")
	return err
}

// Stats returns the engine's counters and the layout of its segments. It
// is cheap: every figure is kept up to date as the engine runs. It works
// after Close too, reporting the final figures. IndexBytes estimates the
// live keydir only, not the copies hash-keydir snapshots hold; Syncs
// counts fsyncs of files (segments, hints, DONE), not of directories.
func (db *DB) Stats() kvs.Stats {
	s := kvs.Stats{
		Engine:                 engineName,
		UserBytesWritten:       db.stats.userBytesWritten.Load(),
		DiskBytesWritten:       db.stats.diskBytesWritten.Load(),
		Gets:                   db.stats.gets.Load(),
		DiskReads:              db.stats.diskReads.Load(),
		Syncs:                  db.stats.syncs.Load(),
		Compactions:            db.stats.compactions.Load(),
		CompactionTime:         time.Duration(db.stats.compactionNanos.Load()),
		CompactionBytesRead:    db.stats.compactionBytesRead.Load(),
		CompactionBytesWritten: db.stats.compactionBytesWritten.Load(),
		IndexKind:              db.opts.Bitcask.Index,
		BytesOnDisk:            int64(len(engineName) + 1), // ENGINE
	}
	db.mu.RLock()
	s.LiveKeys = int64(db.keydir.len())
	s.LiveBytes = db.liveUserBytes
	s.IndexBytes = db.keydir.memBytes()
	ids := make([]uint64, 0, len(db.segs))
	for id := range db.segs {
		ids = append(ids, id)
	}
	slices.Sort(ids)
	for _, id := range ids {
		seg := db.segs[id]
		s.Segments = append(s.Segments, kvs.SegmentStats{
			ID:          id,
			Bytes:       seg.bytes,
			LiveBytes:   seg.liveBytes,
			Records:     seg.records,
			LiveRecords: seg.liveRecords,
			Active:      id == db.activeID,
			Hint:        seg.hintBytes > 0,
		})
		s.BytesOnDisk += seg.bytes + seg.hintBytes
	}
	db.mu.RUnlock()
	db.obsMu.Lock()
	for _, seg := range db.pending {
		s.BytesOnDisk += seg.bytes + seg.hintBytes
	}
	s.BytesOnDisk += db.doneBytes
	db.obsMu.Unlock()
	return s
}

// applyLocked makes the keydir reflect one record just appended to seg at
// e: a put points key at it, a tombstone removes key. It keeps the
// per-segment live counters right. db.mu is held for writing.
func (db *DB) applyLocked(seg *segment, kind kvs.Kind, key []byte, e entry, valueLen int) {
	seg.records++
	if kind == kvs.KindDelete {
		if old, ok := db.keydir.remove(key); ok {
			db.killLocked(old, len(key))
		}
		return
	}
	if old, ok := db.keydir.set(string(key), e); ok {
		db.killLocked(old, len(key))
	}
	seg.liveRecords++
	seg.liveBytes += int64(e.size)
	db.liveUserBytes += int64(len(key) + valueLen)
}

// killLocked accounts for old, an entry of a key with keyLen bytes, no
// longer being live. db.mu is held for writing.
func (db *DB) killLocked(old entry, keyLen int) {
	if s := db.segs[uint64(old.fileID)]; s != nil {
		s.liveRecords--
		s.liveBytes -= int64(old.size)
	}
	db.liveUserBytes -= int64(keyLen + valueLenOf(int64(old.size), old.seq, keyLen))
}

// unref drops one reference to each of segs. A segment nobody references
// any more has its file closed and, when a merge replaced it, deleted.
func (db *DB) unref(segs ...*segment) {
	var dead []*segment
	for _, s := range segs {
		if n := s.refs.Add(-1); n == 0 {
			dead = append(dead, s)
		} else if n < 0 {
			panic("kvs/bitcask: segment reference count below zero") // a broken invariant, not bad input
		}
	}
	if len(dead) > 0 {
		db.retire(dead)
	}
}

// retire closes the files of segments nobody references and deletes those
// a merge replaced, then removes merge/ if nothing it protects is left
// (see merge.go for why merge/DONE must outlive the replaced files).
func (db *DB) retire(dead []*segment) {
	db.obsMu.Lock()
	defer db.obsMu.Unlock()
	var removed []*segment
	for _, s := range dead {
		s.closeFile()
		if !s.obsolete.Load() || db.obsClosed {
			continue
		}
		if err := db.removeSegmentFiles(s.id); err != nil {
			// NB: s stays pending, so merge/DONE stays too and the next
			// Open deletes the file.
			db.log.WithError(err).Warn("cannot delete a merged segment; the next open will")
			continue
		}
		removed = append(removed, s)
	}
	if len(removed) == 0 {
		return
	}
	// The removals must be durable before the segments leave the pending
	// set, whose emptiness lets merge/DONE go.
	if err := vfs.SyncDir(db.fs, db.dir); err != nil {
		db.fail(err)
		return
	}
	for _, s := range removed {
		delete(db.pending, s.id)
	}
	db.removeMergeDirLocked()
}

// removeSegmentFiles deletes segment id's hint file, then its data file,
// so that a crash in between never leaves a hint without its segment.
func (db *DB) removeSegmentFiles(id uint64) error {
	for _, name := range []string{hintName(id), segmentName(id)} {
		if err := db.fs.Remove(db.path(name)); err != nil && !errors.Is(err, fs.ErrNotExist) {
			return fmt.Errorf("kvs/bitcask: remove %s: %w", db.path(name), err)
		}
	}
	return nil
}
