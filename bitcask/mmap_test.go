package bitcask

import (
	"bytes"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/kvs-lab/kvs"
	"github.com/kvs-lab/kvs/internal/vfs"
)

// TestReadModes writes enough to fill several segments, merges and
// reopens, and reads every key back after each step, in both read modes:
// with "mmap" every segment on an operating-system file is mapped (the
// active one, sealed ones, merge outputs, segments loaded at open), with
// "pread" none is. The same reads must give the same answers.
func TestReadModes(t *testing.T) {
	for _, mode := range []string{kvs.ReadModeMmap, kvs.ReadModePread} {
		t.Run("mode="+mode, func(t *testing.T) {
			dir := t.TempDir()
			o := testOptions(vfs.Default, kvs.IndexHash)
			o.ReadMode = mode
			o.Bitcask.MaxSegmentBytes = 64 << 10
			db := openDB(t, dir, o)
			const n = 3000
			val := func(i, round int) []byte {
				return fmt.Appendf(nil, "value-%d-%d-%s", i, round, strings.Repeat("x", i%50))
			}
			check := func(step string, db *DB, round int) {
				t.Helper()
				for i := range n {
					got, err := db.Get(fmt.Appendf(nil, "key%05d", i))
					if err != nil || !bytes.Equal(got, val(i, round)) {
						t.Fatalf("%s: get key%05d = %q, %v; want %q", step, i, got, err, val(i, round))
					}
				}
				db.mu.RLock()
				defer db.mu.RUnlock()
				if len(db.segs) < 2 && step != "after merge" {
					t.Fatalf("%s: %d segments, want several", step, len(db.segs))
				}
				for id, s := range db.segs {
					if mapped := s.mm != nil; mapped != (mode == kvs.ReadModeMmap) {
						t.Errorf("%s: segment %d mapped = %v in mode %s", step, id, mapped, mode)
					}
				}
			}
			for round := range 2 {
				for i := range n {
					if err := db.Put(fmt.Appendf(nil, "key%05d", i), val(i, round), kvs.NoSync); err != nil {
						t.Fatal(err)
					}
				}
			}
			check("after writes", db, 1)
			if err := db.Compact(); err != nil {
				t.Fatal(err)
			}
			check("after merge", db, 1)
			mustClose(t, db)
			db = openDB(t, dir, o)
			check("after reopen", db, 1)
		})
	}
}

// TestMemFSReadsWithPread: files that are not the operating system's
// cannot be mapped, so the engine reads them with pread whatever the mode.
func TestMemFSReadsWithPread(t *testing.T) {
	o := testOptions(vfs.NewMem(), kvs.IndexHash)
	o.ReadMode = kvs.ReadModeMmap
	db := openDB(t, "/db", o)
	mustPut(t, db, "k", "v", kvs.NoSync)
	if got, err := db.Get([]byte("k")); err != nil || string(got) != "v" {
		t.Fatalf("get k = %q, %v", got, err)
	}
	if db.active.mm != nil {
		t.Fatal("a MemFS segment was mapped")
	}
}

// TestMappedReadOfACutFileIsAnError cuts a sealed segment short under a
// running engine (as a bad disk or another process might): a Get of a
// record past the new end would read a page the map no longer backs,
// which raises SIGBUS. The engine must turn that into an error naming the
// file, not die.
func TestMappedReadOfACutFileIsAnError(t *testing.T) {
	dir := t.TempDir()
	o := testOptions(vfs.Default, kvs.IndexHash)
	o.Bitcask.MaxSegmentBytes = 256 << 10
	db := openDB(t, dir, o)
	const n = 4000
	for i := range n {
		mustPut(t, db, fmt.Sprintf("key%05d", i), strings.Repeat("v", 100), kvs.NoSync)
	}
	db.mu.RLock()
	first := db.segs[1]
	db.mu.RUnlock()
	if first == nil || first == db.active || first.mm == nil {
		t.Fatal("segment 1 is not a sealed, mapped segment")
	}
	if err := os.Truncate(filepath.Join(dir, segmentName(1)), 4096); err != nil {
		t.Fatal(err)
	}
	// key 1000's record lies far past 4096 bytes, in segment 1.
	e, ok := db.keydir.get([]byte("key01000"))
	if !ok || e.fileID != 1 || e.offset < 3*4096 {
		t.Fatalf("key01000 is at %+v, want well inside segment 1", e)
	}
	_, err := db.Get([]byte("key01000"))
	if err == nil || !strings.Contains(err.Error(), segmentName(1)) {
		t.Fatalf("get of a record past the cut = %v, want an error naming %s", err, segmentName(1))
	}
	t.Logf("error: %v", err)
	// The engine is still up: keys in other segments read fine.
	if _, err := db.Get([]byte(fmt.Sprintf("key%05d", n-1))); err != nil {
		t.Fatalf("get of the newest key: %v", err)
	}
	// Keep the invariant check at cleanup from reading the cut file.
	mustClose(t, db)
}

// TestIteratorOutlivesClose: an iterator left open across Close keeps its
// segments' maps until it is closed, and reports ErrClosed meanwhile.
func TestIteratorOutlivesClose(t *testing.T) {
	dir := t.TempDir()
	o := testOptions(vfs.Default, kvs.IndexBTree)
	o.Bitcask.MaxSegmentBytes = 16 << 10
	db := openDB(t, dir, o)
	for i := range 1000 {
		mustPut(t, db, fmt.Sprintf("key%05d", i), strings.Repeat("v", 50), kvs.NoSync)
	}
	it, err := db.NewIter(nil)
	if err != nil {
		t.Fatal(err)
	}
	if !it.First() || len(it.Value()) != 50 {
		t.Fatalf("first: %q %v", it.Value(), it.Error())
	}
	mustClose(t, db)
	if it.Next() {
		t.Fatal("Next after Close moved")
	}
	if !errors.Is(it.Error(), kvs.ErrClosed) {
		t.Fatalf("iterator error after Close = %v, want ErrClosed", it.Error())
	}
	if err := it.Close(); err != nil && !errors.Is(err, kvs.ErrClosed) {
		t.Fatalf("iterator close: %v", err)
	}
	for id, s := range db.segs {
		if s.refs.Load() != 0 {
			t.Errorf("segment %d still has %d references after Close and the iterator's Close", id, s.refs.Load())
		}
	}
}
