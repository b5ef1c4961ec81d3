package lsm

import (
	"errors"
	"fmt"
	"io/fs"
	"sync/atomic"
	"testing"

	"github.com/kvs-lab/kvs"
	"github.com/kvs-lab/kvs/compaction"
	"github.com/kvs-lab/kvs/internal/vfs"
)

func newTestManifest(t *testing.T, fsys vfs.FS) *manifest {
	t.Helper()
	if err := fsys.MkdirAll("/db", 0o755); err != nil {
		t.Fatal(err)
	}
	if err := vfs.SyncDir(fsys, "/"); err != nil {
		t.Fatal(err)
	}
	m, err := createManifest(fsys, "/db", 1, versionState{version: &compaction.Version{}, nextFileNumber: 2}, new(atomic.Int64))
	if err != nil {
		t.Fatal(err)
	}
	return m
}

func mustApply(t *testing.T, m *manifest, e *VersionEdit) versionState {
	t.Helper()
	st, err := m.apply(e)
	if err != nil {
		t.Fatal(err)
	}
	return st
}

func sameState(t *testing.T, got, want versionState) {
	t.Helper()
	if got.logNumber != want.logNumber || got.nextFileNumber != want.nextFileNumber || got.lastSeq != want.lastSeq {
		t.Fatalf("counters: got log %d next %d seq %d, want %d %d %d", got.logNumber, got.nextFileNumber, got.lastSeq,
			want.logNumber, want.nextFileNumber, want.lastSeq)
	}
	if a, b := describeLevels(got.version), describeLevels(want.version); a != b {
		t.Fatalf("tables:\n got %s\nwant %s", a, b)
	}
}

func TestManifestReplayRebuildsTheVersion(t *testing.T) {
	mem := vfs.NewMem()
	m := newTestManifest(t, mem)
	mustApply(t, m, &VersionEdit{LogNumber: 3, NextFileNumber: 5, LastSeq: 10, Added: []NewTable{{0, meta(4, "a", "k", 1, 10)}}})
	want := mustApply(t, m, &VersionEdit{NextFileNumber: 7, LastSeq: 20, Deleted: []DeletedTable{{0, 4}},
		Added: []NewTable{{1, meta(5, "a", "c", 1, 10)}, {1, meta(6, "d", "k", 1, 10)}}})
	// Every apply returned after an fsync: a crash keeps all of it.
	got, num, err := replayManifest(mem.CrashClone(), "/db", kvs.DiscardLogger())
	if err != nil {
		t.Fatal(err)
	}
	if num != 1 {
		t.Fatalf("CURRENT names MANIFEST %d, want 1", num)
	}
	sameState(t, got, want)

	// A new MANIFEST from a snapshot replays to the same state.
	m2, err := createManifest(mem, "/db", 8, got, new(atomic.Int64))
	if err != nil {
		t.Fatal(err)
	}
	m2.close()
	again, num, err := replayManifest(mem, "/db", kvs.DiscardLogger())
	if err != nil || num != 8 {
		t.Fatalf("after switching MANIFEST: %d, %v", num, err)
	}
	sameState(t, again, want)
}

func TestManifestRejectsAnEditThatDoesNotApply(t *testing.T) {
	m := newTestManifest(t, vfs.NewMem())
	if _, err := m.apply(&VersionEdit{Deleted: []DeletedTable{{0, 42}}}); err == nil {
		t.Fatal("deleting an absent table was accepted")
	}
	st, _, err := replayManifest(m.fs, "/db", kvs.DiscardLogger())
	if err != nil || len(st.version.Levels[0]) != 0 {
		t.Fatalf("the rejected edit reached the MANIFEST: %v, %v", st.version.Levels, err)
	}
}

func TestManifestTornTailDropsOnlyTheLastEdit(t *testing.T) {
	mem := vfs.NewMem()
	m := newTestManifest(t, mem)
	want := mustApply(t, m, &VersionEdit{LastSeq: 5, Added: []NewTable{{0, meta(2, "a", "b", 1, 5)}}})
	mustApply(t, m, &VersionEdit{LastSeq: 9, Added: []NewTable{{0, meta(3, "c", "d", 6, 9)}}})
	path := "/db/" + manifestName(1)
	st, _ := mem.Stat(path)
	f, _ := mem.OpenReadWrite(path)
	f.Truncate(st.Size() - 3)
	f.Close()
	got, _, err := replayManifest(mem, "/db", kvs.DiscardLogger())
	if err != nil {
		t.Fatal(err)
	}
	sameState(t, got, want)
}

func TestManifestCorruptionNamesFileAndOffset(t *testing.T) {
	mem := vfs.NewMem()
	m := newTestManifest(t, mem)
	mustApply(t, m, &VersionEdit{LastSeq: 5, Added: []NewTable{{0, meta(2, "a", "b", 1, 5)}}})
	mustApply(t, m, &VersionEdit{LastSeq: 9, Added: []NewTable{{0, meta(3, "c", "d", 6, 9)}}})
	path := "/db/" + manifestName(1)
	f, _ := mem.OpenReadWrite(path)
	b := make([]byte, 1)
	f.ReadAt(b, 14) // inside the first record's payload
	b[0] ^= 0x40
	f.Seek(14, 0)
	f.Write(b)
	f.Close()
	_, _, err := replayManifest(mem, "/db", kvs.DiscardLogger())
	var ce *kvs.CorruptionError
	if !errors.As(err, &ce) || ce.File != path {
		t.Fatalf("replay of a damaged MANIFEST = %v, want a CorruptionError naming %s", err, path)
	}
}

func TestReadCurrent(t *testing.T) {
	mem := vfs.NewMem()
	mem.MkdirAll("/db", 0o755)
	vfs.SyncDir(mem, "/")
	if _, err := readCurrent(mem, "/db"); !errors.Is(err, fs.ErrNotExist) {
		t.Fatalf("no CURRENT: %v, want fs.ErrNotExist", err)
	}
	for _, bad := range []string{"", "MANIFEST-\n", "MANIFEST-12", "MANIFEST-x1\n", "notes\n", "MANIFEST-1\n"} {
		f, _ := mem.Create("/db/CURRENT")
		f.Write([]byte(bad))
		f.Close()
		if _, err := readCurrent(mem, "/db"); !errors.Is(err, kvs.ErrCorruption) {
			t.Errorf("CURRENT %q: %v, want corruption", bad, err)
		}
	}
	if err := setCurrent(mem, "/db", 12); err != nil {
		t.Fatal(err)
	}
	if n, err := readCurrent(mem.CrashClone(), "/db"); err != nil || n != 12 {
		t.Fatalf("after setCurrent and a crash: %d, %v", n, err)
	}
}

// describeLevels prints every table's fields, level by level (an empty
// level and a nil one print alike).
func describeLevels(v *compaction.Version) string {
	var out string
	for level, tables := range v.Levels {
		for _, t := range tables {
			out += fmt.Sprintf("L%d:%+v ", level, *t)
		}
	}
	return out
}

// FuzzReadManifest feeds arbitrary bytes to ReadManifest as a MANIFEST
// file: it must return a version that passes its invariant check, or an
// error (a *kvs.CorruptionError for damage), and never panic. The seeds
// are a MANIFEST the engine wrote after churn, with tiered and leveled
// edits, and cuts of it.
func FuzzReadManifest(f *testing.F) {
	for _, policy := range []string{kvs.CompactionLeveled, kvs.CompactionTiered} {
		fs := vfs.NewMem()
		lo := smallOptions()
		lo.Policy = policy
		db, err := OpenWith(testDir, &kvs.Options{FS: fs, Logger: kvs.DiscardLogger()}, lo)
		if err != nil {
			f.Fatal(err)
		}
		for i := 0; i < 3000; i++ {
			if err := db.Put(fmt.Appendf(nil, "key%04d", i%700), fmt.Appendf(nil, "value-%d", i), kvs.NoSync); err != nil {
				f.Fatal(err)
			}
		}
		if err := db.Close(); err != nil {
			f.Fatal(err)
		}
		num, err := readCurrent(fs, testDir)
		if err != nil {
			f.Fatal(err)
		}
		file, err := fs.Open(fs.PathJoin(testDir, manifestName(num)))
		if err != nil {
			f.Fatal(err)
		}
		st, _ := fs.Stat(fs.PathJoin(testDir, manifestName(num)))
		b := make([]byte, st.Size())
		if _, err := file.ReadAt(b, 0); err != nil {
			f.Fatal(err)
		}
		file.Close()
		f.Add(b, num)
		f.Add(b[:len(b)/2], num)
		f.Add(b[:len(b)-1], num)
	}
	f.Add([]byte{}, uint64(1))
	f.Fuzz(func(t *testing.T, b []byte, num uint64) {
		fs := vfs.NewMem()
		file, err := fs.Create("/MANIFEST-000001")
		if err != nil {
			t.Fatal(err)
		}
		if _, err := file.Write(b); err != nil {
			t.Fatal(err)
		}
		file.Close()
		edits := 0
		v, _, err := ReadManifest(fs, "/MANIFEST-000001", num, func(int64, *VersionEdit, *compaction.Version) { edits++ })
		if err != nil {
			return
		}
		if edits == 0 {
			t.Fatal("ReadManifest accepted a MANIFEST without an edit")
		}
		if cerr := v.Check(); cerr != nil {
			t.Fatalf("ReadManifest returned a version that fails its check: %v", cerr)
		}
	})
}
