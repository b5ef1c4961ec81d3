package lsm

import (
	"bytes"
	"errors"
	"fmt"
	"io"
	"io/fs"
	"strconv"
	"strings"
	"sync/atomic"

	"github.com/kvs-lab/kvs"
	"github.com/kvs-lab/kvs/compaction"
	"github.com/kvs-lab/kvs/internal/vfs"
	"github.com/kvs-lab/kvs/wal"
	"github.com/sirupsen/logrus"
)

// The MANIFEST is the LSM tree's record of which tables exist: a log, in
// the wal package's format, of version edits. Its first record is a
// snapshot edit that adds every table of the version it started from; each
// later record is one flush or compaction. CURRENT names the MANIFEST in
// use:
//
//	CURRENT            "MANIFEST-000009\n"
//	MANIFEST-000009    | snapshot edit | edit | edit | ... |   (wal records)
//
// A new MANIFEST is written at every Open (its snapshot edit makes the old
// one unnecessary) and CURRENT is switched to it atomically: write
// CURRENT.tmp, fsync it, rename it over CURRENT, fsync the directory. A
// crash before the rename leaves the old CURRENT naming the old, complete
// MANIFEST. docs/formats/manifest.md gives the bytes.

const (
	currentFile    = "CURRENT"
	manifestPrefix = "MANIFEST-"
)

func manifestName(num uint64) string { return fmt.Sprintf("%s%06d", manifestPrefix, num) }

// versionState is what replaying a MANIFEST recovers.
type versionState struct {
	version        *compaction.Version
	logNumber      uint64 // WALs numbered below this hold nothing unflushed
	nextFileNumber uint64 // the next file number to hand out
	lastSeq        uint64 // the last sequence number made durable by a flush
	compaction     string // the policy recorded, "" in a MANIFEST older than the tag
}

// snapshotEdit returns the edit that rebuilds s from an empty version.
func (s *versionState) snapshotEdit() *VersionEdit {
	e := &VersionEdit{LogNumber: s.logNumber, NextFileNumber: s.nextFileNumber, LastSeq: s.lastSeq, Compaction: s.compaction}
	for level, tables := range s.version.Levels {
		for _, t := range tables {
			e.Added = append(e.Added, NewTable{Level: level, Meta: t})
		}
	}
	return e
}

// absorb applies e's counters to s (its tables are applied separately).
func (s *versionState) absorb(e *VersionEdit) {
	s.logNumber = max(s.logNumber, e.LogNumber)
	s.nextFileNumber = max(s.nextFileNumber, e.NextFileNumber)
	s.lastSeq = max(s.lastSeq, e.LastSeq)
	if e.Compaction != "" {
		s.compaction = e.Compaction
	}
}

// manifest is the open MANIFEST that edits are appended to. It is not safe
// for concurrent use: the engine serializes version changes.
type manifest struct {
	fs    vfs.FS
	dir   string
	num   uint64
	w     *wal.Writer
	state versionState
	// syncs counts the fsyncs made for the MANIFEST: its records, CURRENT
	// and the directory (the engine's Stats counter).
	syncs *atomic.Int64
	// baseBytes is the size of the snapshot record the MANIFEST starts
	// with; the edits appended since make up the rest.
	baseBytes int64
}

// createManifest writes MANIFEST-num holding a snapshot of st, makes it
// durable and points CURRENT at it. It adds its fsyncs, and later those of
// apply, to syncs.
func createManifest(fsys vfs.FS, dir string, num uint64, st versionState, syncs *atomic.Int64) (*manifest, error) {
	path := fsys.PathJoin(dir, manifestName(num))
	f, err := fsys.Create(path)
	if err != nil {
		return nil, fmt.Errorf("kvs/lsm: create %s: %w", path, err)
	}
	m := &manifest{fs: fsys, dir: dir, num: num, w: wal.NewWriter(f, num), state: st, syncs: syncs}
	// NB: baseBytes is set below, once the snapshot record is written.
	if _, err := m.w.SyncRecord(st.snapshotEdit().Encode(nil)); err != nil {
		m.w.Close()
		return nil, fmt.Errorf("kvs/lsm: write %s: %w", path, err)
	}
	if err := vfs.SyncDir(fsys, dir); err != nil {
		m.w.Close()
		return nil, err
	}
	if err := setCurrent(fsys, dir, num); err != nil {
		m.w.Close()
		return nil, err
	}
	// The record, the directory, CURRENT.tmp and the directory again.
	syncs.Add(4)
	m.baseBytes = m.w.Size()
	return m, nil
}

// setCurrent points CURRENT at MANIFEST-num atomically.
func setCurrent(fsys vfs.FS, dir string, num uint64) error {
	tmp := fsys.PathJoin(dir, currentFile+".tmp")
	f, err := fsys.Create(tmp)
	if err != nil {
		return fmt.Errorf("kvs/lsm: create %s: %w", tmp, err)
	}
	_, err = f.Write([]byte(manifestName(num) + "\n"))
	if err == nil {
		err = f.Sync()
	}
	if cerr := f.Close(); err == nil {
		err = cerr
	}
	if err != nil {
		return fmt.Errorf("kvs/lsm: write %s: %w", tmp, err)
	}
	// Sync CURRENT.tmp before the rename: a crash right after the rename
	// must find the new CURRENT whole, or the old one.
	if err := fsys.Rename(tmp, fsys.PathJoin(dir, currentFile)); err != nil {
		return fmt.Errorf("kvs/lsm: install %s: %w", currentFile, err)
	}
	return vfs.SyncDir(fsys, dir)
}

// apply makes e durable in the MANIFEST and returns the new state. If e
// does not apply to the current version nothing is written. A failed write
// leaves the manifest unusable (the wal writer's errors are sticky): the
// engine must stop, because it cannot know whether the edit reached the
// disk.
func (m *manifest) apply(e *VersionEdit) (versionState, error) {
	v, err := e.Apply(m.state.version)
	if err != nil {
		return m.state, err
	}
	if _, err := m.w.SyncRecord(e.Encode(nil)); err != nil {
		return m.state, fmt.Errorf("kvs/lsm: append to %s: %w", manifestName(m.num), err)
	}
	m.syncs.Add(1)
	m.state.version = v
	m.state.absorb(e)
	return m.state, nil
}

// minManifestRotateBytes is the size below which a MANIFEST is never
// rewritten; see DB.logEdit.
const minManifestRotateBytes = 64 << 10

// close syncs and closes the MANIFEST.
func (m *manifest) close() error { return m.w.Close() }

// readCurrent returns the MANIFEST number CURRENT names. It wraps
// fs.ErrNotExist when there is no CURRENT (a new directory).
func readCurrent(fsys vfs.FS, dir string) (uint64, error) {
	path := fsys.PathJoin(dir, currentFile)
	f, err := fsys.Open(path)
	if err != nil {
		return 0, err
	}
	defer f.Close()
	b, err := io.ReadAll(io.LimitReader(f, 64))
	if err != nil {
		return 0, fmt.Errorf("kvs/lsm: read %s: %w", path, err)
	}
	name, ok := strings.CutSuffix(string(b), "\n")
	num, err := strconv.ParseUint(strings.TrimPrefix(name, manifestPrefix), 10, 64)
	if !ok || !strings.HasPrefix(name, manifestPrefix) || err != nil || manifestName(num) != name {
		return 0, kvs.Corruptf(path, 0, "CURRENT holds %q, not a MANIFEST name and a newline", bytes.TrimSpace(b))
	}
	return num, nil
}

// replayManifest rebuilds the version state from the MANIFEST that CURRENT
// names (see ReadManifest), logging a torn tail once.
func replayManifest(fsys vfs.FS, dir string, log *logrus.Entry) (versionState, uint64, error) {
	st := versionState{version: &compaction.Version{}}
	num, err := readCurrent(fsys, dir)
	if err != nil {
		return st, 0, err
	}
	path := fsys.PathJoin(dir, manifestName(num))
	v, torn, err := ReadManifest(fsys, path, num, func(_ int64, e *VersionEdit, _ *compaction.Version) { st.absorb(e) })
	if errors.Is(err, fs.ErrNotExist) {
		// NB: only a missing CURRENT means a new directory.
		return st, 0, kvs.Corruptf(fsys.PathJoin(dir, currentFile), 0, "CURRENT names %s, which does not exist", manifestName(num))
	}
	if err != nil {
		return st, 0, err
	}
	st.version = v
	if torn != nil {
		log.WithFields(logrus.Fields{"file": path, "offset": torn.Offset, "bytes": torn.Bytes, "reason": torn.Reason}).
			Warn("dropped the torn tail of the MANIFEST: an edit a crash interrupted")
	}
	return st, num, nil
}

// ReadManifest replays the MANIFEST at path, whose log number is num: it
// decodes each version edit, applies it to the version so far and calls fn
// (when not nil) with the edit's offset, the edit and the version it
// produced. It returns the final version and, when the file ends in a torn
// tail (an edit whose append never returned), what was dropped. An edit
// that does not decode or does not apply, damage before the tail, and a
// MANIFEST without a single edit are each a *kvs.CorruptionError naming
// the file and offset. The engine replays with it at Open; `kvs inspect`
// prints with it.
func ReadManifest(fsys vfs.FS, path string, num uint64, fn func(offset int64, e *VersionEdit, v *compaction.Version)) (*compaction.Version, *wal.TornTail, error) {
	v := &compaction.Version{}
	f, err := fsys.Open(path)
	if err != nil {
		return v, nil, fmt.Errorf("kvs/lsm: open MANIFEST: %w", err)
	}
	defer f.Close()
	r := wal.NewReader(f, path, num)
	edits := 0
	for {
		rec, err := r.Next()
		if err == io.EOF {
			break
		}
		if err != nil {
			return v, nil, err
		}
		e, err := DecodeVersionEdit(rec)
		if err != nil {
			return v, nil, kvs.Corruptf(path, r.Offset(), "%v", err)
		}
		next, err := e.Apply(v)
		if err != nil {
			return v, nil, kvs.Corruptf(path, r.Offset(), "%v", err)
		}
		v = next
		edits++
		if fn != nil {
			fn(r.Offset(), e, v)
		}
	}
	if edits == 0 {
		return v, nil, kvs.Corruptf(path, 0, "the MANIFEST holds no version edit")
	}
	if t, ok := r.TornTail(); ok {
		return v, &t, nil
	}
	return v, nil, nil
}
