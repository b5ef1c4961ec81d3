package bitcask

import (
	"bytes"
	"errors"
	"io/fs"
	"strings"
	"sync/atomic"
	"testing"

	"github.com/kvs-lab/kvs"
	"github.com/kvs-lab/kvs/internal/vfs"
)

func TestBadInputIsRejectedAndDataIntact(t *testing.T) {
	const maxValue = 100
	hugeKey := bytes.Repeat([]byte("k"), kvs.MaxKeySize+1)
	for _, tc := range []struct {
		name string
		call func(db *DB) error
		want error
	}{
		{"put with empty key", func(db *DB) error { return db.Put(nil, []byte("v"), kvs.Sync) }, kvs.ErrEmptyKey},
		{"delete with empty key", func(db *DB) error { return db.Delete([]byte{}, kvs.NoSync) }, kvs.ErrEmptyKey},
		{"get with empty key", func(db *DB) error { _, err := db.Get(nil); return err }, kvs.ErrEmptyKey},
		{"put with a key of 64 KiB + 1", func(db *DB) error { return db.Put(hugeKey, []byte("v"), kvs.NoSync) }, kvs.ErrKeyTooLarge},
		{"delete with a key of 64 KiB + 1", func(db *DB) error { return db.Delete(hugeKey, kvs.Sync) }, kvs.ErrKeyTooLarge},
		{"put with a value over MaxValueSize", func(db *DB) error {
			return db.Put([]byte("a"), make([]byte, maxValue+1), kvs.Sync)
		}, kvs.ErrValueTooLarge},
		{"batch with one value over MaxValueSize", func(db *DB) error {
			var b kvs.Batch
			b.Put([]byte("a"), []byte("overwrite"))
			b.Delete([]byte("b"))
			b.Put([]byte("c"), make([]byte, maxValue+1))
			return db.Write(&b, kvs.Sync)
		}, kvs.ErrValueTooLarge},
		{"batch with an empty key", func(db *DB) error {
			var b kvs.Batch
			b.Put([]byte("a"), []byte("overwrite"))
			b.Delete(nil)
			return db.Write(&b, kvs.NoSync)
		}, kvs.ErrEmptyKey},
	} {
		t.Run(tc.name, func(t *testing.T) {
			mem := vfs.NewMem()
			o := testOptions(mem, kvs.IndexHash)
			o.MaxValueSize = maxValue
			db := openDB(t, testDir, o)
			want := map[string]string{"a": "1", "b": "2"}
			mustPut(t, db, "a", "1", kvs.NoSync)
			mustPut(t, db, "b", "2", kvs.Sync)
			err := tc.call(db)
			if !errors.Is(err, tc.want) || !strings.HasPrefix(err.Error(), "kvs/bitcask: ") {
				t.Fatalf("error %v, want one wrapping %v with the kvs/bitcask prefix", err, tc.want)
			}
			checkContents(t, db, want, "c")
			mustPut(t, db, "d", "works", kvs.NoSync)
			want["d"] = "works"
			mustClose(t, db)
			db = openDB(t, testDir, o)
			checkContents(t, db, want, "c")
		})
	}
}

// populated returns a MemFS holding a closed DB in testDir with one key.
func populated(t *testing.T) *vfs.MemFS {
	mem := vfs.NewMem()
	db := openDB(t, testDir, testOptions(mem, kvs.IndexHash))
	mustPut(t, db, "k", "v", kvs.NoSync)
	mustClose(t, db)
	return mem
}

func TestOpenRefusesWhatItCannotOwn(t *testing.T) {
	for _, tc := range []struct {
		name    string
		prepare func(t *testing.T, mem *vfs.MemFS)
		want    error
		mention string // the error must name it
	}{
		{"stray file", func(t *testing.T, mem *vfs.MemFS) {
			writeAt(t, mem, testDir+"/notes.txt", 0, []byte("mine"))
		}, kvs.ErrNotKVSDir, testDir + "/notes.txt"},
		{"stray file named almost like a segment", func(t *testing.T, mem *vfs.MemFS) {
			writeAt(t, mem, testDir+"/7.data", 0, []byte("mine"))
		}, kvs.ErrNotKVSDir, testDir + "/7.data"},
		{"merge is a file", func(t *testing.T, mem *vfs.MemFS) {
			writeAt(t, mem, testDir+"/merge", 0, []byte("mine"))
		}, kvs.ErrNotKVSDir, testDir + "/merge"},
		{"stray file in merge/", func(t *testing.T, mem *vfs.MemFS) {
			mem.MkdirAll(testDir+"/merge", 0o755)
			writeAt(t, mem, testDir+"/merge/notes.txt", 0, []byte("mine"))
		}, kvs.ErrNotKVSDir, testDir + "/merge/notes.txt"},
		{"stray file in merge/ beside a DONE", func(t *testing.T, mem *vfs.MemFS) {
			mem.MkdirAll(testDir+"/merge", 0o755)
			writeAt(t, mem, testDir+"/merge/DONE", 0, encodeDone(nil, nil))
			writeAt(t, mem, testDir+"/merge/DONE.old", 0, []byte("mine"))
		}, kvs.ErrNotKVSDir, testDir + "/merge/DONE.old"},
		{"another engine", func(t *testing.T, mem *vfs.MemFS) {
			mem.Remove(testDir + "/ENGINE")
			if err := kvs.WriteEngineFile(mem, testDir, "lsm"); err != nil {
				t.Fatal(err)
			}
		}, kvs.ErrNotKVSDir, `"lsm"`},
		{"segments without ENGINE", func(t *testing.T, mem *vfs.MemFS) {
			mem.Remove(testDir + "/ENGINE")
		}, kvs.ErrNotKVSDir, "no ENGINE"},
		{"bad header in a sealed segment", func(t *testing.T, mem *vfs.MemFS) {
			writeSegment(t, mem, testDir+"/"+segmentName(5))
			flipByte(t, mem, testDir+"/000001.data", 0)
		}, kvs.ErrCorruption, testDir + "/000001.data"},
		{"segment of another format version", func(t *testing.T, mem *vfs.MemFS) {
			writeSegment(t, mem, testDir+"/"+segmentName(5))
			writeAt(t, mem, testDir+"/000001.data", 0, append([]byte("kvsbcseg\x02\x00\x00\x00"), 0, 0, 0, 0))
		}, kvs.ErrCorruption, testDir + "/000001.data"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			mem := populated(t)
			tc.prepare(t, mem)
			before := snapshotFiles(t, mem, testDir)
			_, err := Open(testDir, testOptions(mem, kvs.IndexHash))
			if !errors.Is(err, tc.want) || !strings.Contains(err.Error(), tc.mention) {
				t.Fatalf("open = %v, want an error wrapping %v that mentions %s", err, tc.want, tc.mention)
			}
			if after := snapshotFiles(t, mem, testDir); !equalFiles(before, after) {
				t.Fatalf("a refused open changed the directory:\nbefore %v\nafter  %v", keysOf(before), keysOf(after))
			}
		})
	}
}

func TestOpenOfForeignDirectoryLeavesNoLock(t *testing.T) {
	mem := vfs.NewMem()
	mem.MkdirAll("/foreign", 0o755)
	writeAt(t, mem, "/foreign/photo.jpg", 0, []byte("jpeg"))
	if _, err := Open("/foreign", testOptions(mem, kvs.IndexHash)); !errors.Is(err, kvs.ErrNotKVSDir) {
		t.Fatalf("open = %v, want kvs.ErrNotKVSDir", err)
	}
	if names, _ := mem.List("/foreign"); len(names) != 1 {
		t.Fatalf("the foreign directory now holds %v", names)
	}
}

func TestOpenMissingDirWithErrorIfNotExist(t *testing.T) {
	mem := vfs.NewMem()
	o := testOptions(mem, kvs.IndexHash)
	o.ErrorIfNotExist = true
	_, err := Open("/missing", o)
	if !errors.Is(err, fs.ErrNotExist) || !strings.Contains(err.Error(), "/missing") {
		t.Fatalf("open = %v, want an error wrapping fs.ErrNotExist naming /missing", err)
	}
	if _, err := mem.Stat("/missing"); !errors.Is(err, fs.ErrNotExist) {
		t.Fatalf("open created the directory: %v", err)
	}
	// An existing directory opens with the option set.
	populated := populated(t)
	o = testOptions(populated, kvs.IndexHash)
	o.ErrorIfNotExist = true
	db := openDB(t, testDir, o)
	checkContents(t, db, map[string]string{"k": "v"})
}

func TestOpenRefusesRegularFile(t *testing.T) {
	mem := vfs.NewMem()
	writeAt(t, mem, "/file", 0, []byte("data"))
	if _, err := Open("/file", testOptions(mem, kvs.IndexHash)); !errors.Is(err, kvs.ErrNotKVSDir) {
		t.Fatalf("open of a regular file = %v, want kvs.ErrNotKVSDir", err)
	}
}

func TestSecondOpenOfSameDirIsLocked(t *testing.T) {
	for _, tc := range []struct {
		name string
		fs   func(t *testing.T) (vfs.FS, string)
	}{
		{"memfs", func(t *testing.T) (vfs.FS, string) { return vfs.NewMem(), testDir }},
		{"os", func(t *testing.T) (vfs.FS, string) { return vfs.Default, t.TempDir() }},
	} {
		t.Run(tc.name, func(t *testing.T) {
			fsys, dir := tc.fs(t)
			db := openDB(t, dir, testOptions(fsys, kvs.IndexHash))
			mustPut(t, db, "k", "v", kvs.Sync)
			_, err := Open(dir, testOptions(fsys, kvs.IndexHash))
			if !errors.Is(err, kvs.ErrLocked) || !strings.Contains(err.Error(), dir) {
				t.Fatalf("second open = %v, want kvs.ErrLocked naming %s", err, dir)
			}
			// The first engine is unharmed and the lock frees on Close.
			mustPut(t, db, "k2", "v2", kvs.NoSync)
			checkContents(t, db, map[string]string{"k": "v", "k2": "v2"})
			mustClose(t, db)
			db = openDB(t, dir, testOptions(fsys, kvs.IndexHash))
			checkContents(t, db, map[string]string{"k": "v", "k2": "v2"})
		})
	}
}

func TestOpenByNameThroughRegistry(t *testing.T) {
	dir := t.TempDir()
	e, err := kvs.Open("bitcask", dir, &kvs.Options{Logger: kvs.DiscardLogger()})
	if err != nil {
		t.Fatal(err)
	}
	mustPut(t, e, "k", "v", kvs.Sync)
	mustClose(t, e)
	if name, err := kvs.DetectEngine(vfs.Default, dir); name != "bitcask" || err != nil {
		t.Fatalf("ENGINE says %q, %v", name, err)
	}
	e, err = kvs.Open("", dir, &kvs.Options{Logger: kvs.DiscardLogger()})
	if err != nil {
		t.Fatal(err)
	}
	defer e.Close()
	checkContents(t, e, map[string]string{"k": "v"})
	if _, err := kvs.Open("bitcask", dir, &kvs.Options{Bitcask: kvs.BitcaskOptions{Index: "trie"}}); err == nil {
		t.Fatal("open with an unknown index succeeded")
	}
}

func TestCallsAfterCloseReturnErrClosed(t *testing.T) {
	for _, index := range indexes {
		t.Run("index="+index, func(t *testing.T) {
			db := openDB(t, testDir, testOptions(vfs.NewMem(), index))
			mustPut(t, db, "k", "v", kvs.NoSync)
			snap, err := db.NewSnapshot()
			if err != nil {
				t.Fatal(err)
			}
			it, err := db.NewIter(nil)
			if err != nil {
				t.Fatal(err)
			}
			if !it.First() {
				t.Fatal("first")
			}
			mustClose(t, db)
			if err := db.Close(); !errors.Is(err, kvs.ErrClosed) {
				t.Fatalf("second close = %v", err)
			}
			if _, err := snap.Get([]byte("k")); !errors.Is(err, kvs.ErrClosed) {
				t.Fatalf("snapshot get after close = %v", err)
			}
			if _, err := snap.NewIter(nil); !errors.Is(err, kvs.ErrClosed) {
				t.Fatalf("snapshot iterator after close = %v", err)
			}
			if it.Next() || it.First() || !errors.Is(it.Error(), kvs.ErrClosed) {
				t.Fatalf("iterator after close: valid %v, error %v", it.Valid(), it.Error())
			}
			if err := it.Close(); !errors.Is(err, kvs.ErrClosed) {
				t.Fatalf("iterator close after engine close = %v", err)
			}
			if err := snap.Close(); err != nil {
				t.Fatalf("snapshot close after engine close = %v", err)
			}
			if db.Stats().LiveKeys != 1 {
				t.Fatalf("stats after close: %+v", db.Stats())
			}
		})
	}
}

// snapshotFiles returns the contents of every file under dir.
func snapshotFiles(t testing.TB, fsys vfs.FS, dir string) map[string][]byte {
	t.Helper()
	out := map[string][]byte{}
	names, err := fsys.List(dir)
	if err != nil {
		t.Fatal(err)
	}
	for _, n := range names {
		p := fsys.PathJoin(dir, n)
		if st, err := fsys.Stat(p); err == nil && st.IsDir() {
			for k, v := range snapshotFiles(t, fsys, p) {
				out[k] = v
			}
			continue
		}
		b, err := readWhole(fsys, p)
		if err != nil {
			t.Fatal(err)
		}
		out[p] = b
	}
	return out
}

func equalFiles(a, b map[string][]byte) bool {
	if len(a) != len(b) {
		return false
	}
	for k, v := range a {
		if w, ok := b[k]; !ok || !bytes.Equal(v, w) {
			return false
		}
	}
	return true
}

func keysOf(m map[string][]byte) []string {
	var out []string
	for k := range m {
		out = append(out, k)
	}
	return out
}

// emptySegments returns the names of the segments in dir that hold
// nothing but their header.
func emptySegments(t testing.TB, fsys vfs.FS, dir string) []string {
	t.Helper()
	names, err := fsys.List(dir)
	if err != nil {
		t.Fatal(err)
	}
	var empty []string
	for _, name := range names {
		if _, kind := ParseFileName(name); kind == FileSegment && fileSize(t, fsys, dir+"/"+name) == fileHeaderLen {
			empty = append(empty, name)
		}
	}
	return empty
}

// TestReopenAndCompactLeaveNoEmptySegments checks that the header-only
// segment every Open starts does not pile up: over many Open/Close cycles,
// with and without writes and merges, the directory never holds more than
// one empty segment, the active one, and the segment count stays
// bounded.
func TestReopenAndCompactLeaveNoEmptySegments(t *testing.T) {
	mem := vfs.NewMem()
	o := testOptions(mem, kvs.IndexHash)
	want := map[string]string{}
	for cycle := 0; cycle < 12; cycle++ {
		db := openDB(t, testDir, o)
		if cycle%3 == 0 {
			k := keyN(cycle % 4)
			mustPut(t, db, k, valueN(cycle, 0, 20), kvs.NoSync)
			want[k] = valueN(cycle, 0, 20)
		}
		if cycle%2 == 0 {
			mustCompact(t, db)
			mustCompact(t, db)
		}
		if empty := emptySegments(t, mem, testDir); len(empty) > 1 || len(empty) == 1 && empty[0] != segmentName(db.active.id) {
			t.Fatalf("cycle %d: empty segments %v, want at most the active %s", cycle, empty, segmentName(db.active.id))
		}
		checkContents(t, db, want)
		mustClose(t, db)
		if segs := len(db.Stats().Segments); segs > 3 {
			t.Fatalf("cycle %d: %d segments for %d keys", cycle, segs, len(want))
		}
	}
}

// TestOpenRemovesEmptySealedSegment checks that Open deletes a header-only
// segment that is not the newest, such as a dropped active segment whose
// removal a crash undid (see merger.keepActiveNewest).
func TestOpenRemovesEmptySealedSegment(t *testing.T) {
	mem := vfs.NewMem()
	o := testOptions(mem, kvs.IndexHash)
	db := openDB(t, testDir, o)
	mustPut(t, db, "a", "1", kvs.NoSync)
	mustClose(t, db)
	// Segment 1 holds "a"; make an empty segment 2 and a segment 3 with "b".
	writeSegment(t, mem, testDir+"/000002.data")
	writeSegment(t, mem, testDir+"/000003.data", appendRecord(nil, typePut, 2, []byte("b"), []byte("2")))
	db = openDB(t, testDir, o)
	if fileSize(t, mem, testDir+"/000002.data") != -1 {
		t.Fatalf("the empty sealed segment 000002.data survived Open")
	}
	if empty := emptySegments(t, mem, testDir); len(empty) != 1 || empty[0] != segmentName(db.active.id) {
		t.Fatalf("empty segments %v, want only the active %s", empty, segmentName(db.active.id))
	}
	checkContents(t, db, map[string]string{"a": "1", "b": "2"})
}

// TestOpenCreatesMissingParentsDurably opens a directory whose parents do
// not exist either: each new directory must be durable as an entry of its
// parent, or a crash loses the whole tree with every synced write in it.
func TestOpenCreatesMissingParentsDurably(t *testing.T) {
	for _, tc := range []struct {
		name, dir string
		existing  string // a directory made (and synced) beforehand
	}{
		{"two new parents", "/a/b/db", ""},
		{"one new parent", "/a/b/db", "/a"},
		{"relative path", "a/b/db", ""},
	} {
		t.Run(tc.name, func(t *testing.T) {
			mem := vfs.NewMem()
			if tc.existing != "" {
				if err := mem.MkdirAll(tc.existing, 0o755); err != nil {
					t.Fatal(err)
				}
				if err := vfs.SyncDir(mem, "/"); err != nil {
					t.Fatal(err)
				}
			}
			db := openDB(t, tc.dir, testOptions(mem, kvs.IndexHash))
			mustPut(t, db, "k", "v", kvs.Sync)
			crashed := mem.CrashClone()
			mustClose(t, db)
			db = openDB(t, tc.dir, testOptions(crashed, kvs.IndexHash))
			checkContents(t, db, map[string]string{"k": "v"})
		})
	}
}

// TestMergeLeavesForeignFileInMergeDir puts a file kvs did not write in
// merge/ while a merge runs. kvs never deletes what it does not
// recognise: the merge leaves merge/ and the file, and the next Open
// refuses the directory, naming the file, until the file is gone.
func TestMergeLeavesForeignFileInMergeDir(t *testing.T) {
	mem := vfs.NewMem()
	foreign := testDir + "/merge/notes.txt"
	var once atomic.Bool
	inj := vfs.InjectorFunc(func(op vfs.Op, p string) error {
		if op == vfs.OpCreate && strings.HasSuffix(p, "/"+doneTmpFile) && once.CompareAndSwap(false, true) {
			writeAt(t, mem, foreign, 0, []byte("mine"))
		}
		return nil
	})
	o := testOptions(vfs.Inject(mem, inj), kvs.IndexHash)
	o.Bitcask.MaxSegmentBytes = 1 << 10
	db := openDB(t, testDir, o)
	want := map[string]string{}
	for i := 0; i < 40; i++ {
		mustPut(t, db, keyN(i%10), valueN(i, 0, 50), kvs.NoSync)
		want[keyN(i%10)] = valueN(i, 0, 50)
	}
	mustCompact(t, db)
	if !once.Load() {
		t.Fatal("the merge wrote no DONE.tmp")
	}
	mustClose(t, db)
	if fileSize(t, mem, foreign) != 4 {
		t.Fatalf("the merge removed %s", foreign)
	}
	if _, err := Open(testDir, testOptions(mem, kvs.IndexHash)); !errors.Is(err, kvs.ErrNotKVSDir) || !strings.Contains(err.Error(), foreign) {
		t.Fatalf("open = %v, want kvs.ErrNotKVSDir naming %s", err, foreign)
	}
	if err := mem.Remove(foreign); err != nil {
		t.Fatal(err)
	}
	db = openDB(t, testDir, testOptions(mem, kvs.IndexHash))
	checkContents(t, db, want)
	if _, err := mem.Stat(testDir + "/merge"); !errors.Is(err, fs.ErrNotExist) {
		t.Fatalf("merge/ survived the open: %v", err)
	}
}
