package bitcask

import (
	"errors"
	"io/fs"
	oldrand "math/rand"
	"math/rand/v2"
	"strings"
	"sync"
	"sync/atomic"
	"testing"

	"github.com/kvs-lab/kvs"
	"github.com/kvs-lab/kvs/internal/vfs"
)

// TestMergeReclaimsSpace checks the bound the issue asks for: once every
// key has been written and then overwritten 5 times, a merge brings the
// bytes on disk, every file counted (segments, hints, ENGINE), to at most
// 1.3 times the live data (key and value bytes of the live keys), with
// every value the last one written; and so it stays after a reopen.
func TestMergeReclaimsSpace(t *testing.T) {
	keys := 20000
	if testing.Short() {
		keys = 5000
	}
	const rounds = 6 // the first write of each key and 5 overwrites
	dir := t.TempDir()
	o := &kvs.Options{Logger: kvs.DiscardLogger(), Bitcask: kvs.BitcaskOptions{MaxSegmentBytes: 1 << 20}}
	db := openDB(t, dir, o)
	want := map[string]string{}
	for r := 0; r < rounds; r++ {
		for i := 0; i < keys; i++ {
			mustPut(t, db, keyN(i), valueN(i, r, 100), kvs.NoSync)
			want[keyN(i)] = valueN(i, r, 100)
		}
	}
	before := db.Stats()
	mustCompact(t, db)

	// A 116-byte pair (16-byte key, 100-byte value) costs a 126-byte
	// record (crc, type, a 3-byte seq, two 1-byte lengths) and a 19-byte
	// hint entry (a 1-byte seq delta, two 1-byte lengths, the key): 1.25x,
	// plus a few dozen bytes per file.
	check := func(when string) {
		t.Helper()
		s := db.Stats()
		t.Logf("%s: %d bytes on disk for %d live bytes: %.3fx (%.2fx before the merge)",
			when, s.BytesOnDisk, s.LiveBytes, float64(s.BytesOnDisk)/float64(s.LiveBytes), before.SpaceAmp())
		if s.LiveBytes != int64(keys*(16+100)) || s.LiveKeys != int64(keys) {
			t.Fatalf("%s: live keys %d, live bytes %d; want %d and %d", when, s.LiveKeys, s.LiveBytes, keys, keys*116)
		}
		if limit := 1.3 * float64(s.LiveBytes); float64(s.BytesOnDisk) > limit {
			t.Errorf("%s: %d bytes on disk, want at most 1.3 x %d = %.0f", when, s.BytesOnDisk, s.LiveBytes, limit)
		}
		if got := diskBytes(t, dir); got != s.BytesOnDisk {
			t.Errorf("%s: Stats.BytesOnDisk = %d, the directory holds %d", when, s.BytesOnDisk, got)
		}
		for _, seg := range s.Segments {
			if !seg.Active && (!seg.Hint || seg.LiveRecords != seg.Records) {
				t.Errorf("%s: merge output %+v: want a hint and only live records", when, seg)
			}
		}
		checkContents(t, db, want)
	}
	check("after the merge")
	if after := db.Stats(); after.Compactions != 1 || after.CompactionBytesRead < before.BytesOnDisk/2 || after.CompactionBytesWritten < after.BytesOnDisk/2 {
		t.Errorf("compaction stats %+v", after)
	}
	mustClose(t, db)
	db = openDB(t, dir, o)
	check("after reopening")
}

// diskBytes sums the sizes of the files in dir (not recursing).
func diskBytes(t testing.TB, dir string) int64 {
	t.Helper()
	names, err := vfs.Default.List(dir)
	if err != nil {
		t.Fatal(err)
	}
	var n int64
	for _, name := range names {
		st, err := vfs.Default.Stat(vfs.Default.PathJoin(dir, name))
		if err != nil {
			t.Fatal(err)
		}
		if !st.IsDir() {
			n += st.Size()
		}
	}
	return n
}

// mergeWorkload fills db with puts, overwrites and deletes spread over
// many small segments, so that a tombstone and the put it hides often lie
// in different files, and makes it all durable. It returns the contents
// and the deleted keys.
func mergeWorkload(t testing.TB, db *DB, seed uint64) (map[string]string, []string) {
	t.Helper()
	rng := rand.New(rand.NewPCG(seed, seed))
	want := map[string]string{}
	for i := 0; i < 300; i++ {
		k := keyN(rng.IntN(60))
		switch {
		case rng.IntN(4) == 0:
			mustDelete(t, db, k, kvs.NoSync)
			delete(want, k)
		case rng.IntN(10) == 0:
			var b kvs.Batch
			b.Put([]byte(k), []byte(valueN(i, 1, 30)))
			k2 := keyN(rng.IntN(60))
			b.Delete([]byte(k2))
			if err := db.Write(&b, kvs.NoSync); err != nil {
				t.Fatal(err)
			}
			want[k] = valueN(i, 1, 30)
			delete(want, k2)
		default:
			v := valueN(i, 0, 20+rng.IntN(80))
			mustPut(t, db, k, v, kvs.NoSync)
			want[k] = v
		}
	}
	mustPut(t, db, "sync", "point", kvs.Sync)
	want["sync"] = "point"
	var deleted []string
	for i := 0; i < 60; i++ {
		if _, ok := want[keyN(i)]; !ok {
			deleted = append(deleted, keyN(i))
		}
	}
	return want, deleted
}

// TestMergeCrashAtEveryStepKeepsContents crashes (CrashClone: only what
// was fsynced survives) before every file system operation of a merge,
// including the deletions a snapshot held back, and checks that each
// crash image reopens to exactly the contents before the merge: no lost
// key, no resurrected one. With random=true each image also keeps a
// random part of what was not synced, as a real power cut may.
func TestMergeCrashAtEveryStepKeepsContents(t *testing.T) {
	for _, tc := range []struct {
		name           string
		pinned, random bool
	}{
		{"plain", false, false},
		{"inputs pinned by a snapshot", true, false},
		{"torn images", false, true},
		{"torn images, inputs pinned", true, true},
	} {
		t.Run(tc.name, func(t *testing.T) {
			mem := vfs.NewMem()
			var (
				mu     sync.Mutex
				armed  atomic.Bool
				images []*vfs.MemFS
				ops    []string
				rng    = oldrand.New(oldrand.NewSource(7))
			)
			inj := vfs.InjectorFunc(func(op vfs.Op, p string) error {
				if armed.Load() {
					mu.Lock()
					if tc.random {
						images = append(images, mem.CrashCloneRandom(rng))
					} else {
						images = append(images, mem.CrashClone())
					}
					ops = append(ops, op.String()+" "+p)
					mu.Unlock()
				}
				return nil
			})
			o := testOptions(vfs.Inject(mem, inj), kvs.IndexHash)
			o.Bitcask.MaxSegmentBytes = 2 << 10
			db := openDB(t, testDir, o)
			want, deleted := mergeWorkload(t, db, 1)
			var snap kvs.Snapshot
			if tc.pinned {
				var err error
				if snap, err = db.NewSnapshot(); err != nil {
					t.Fatal(err)
				}
			}
			armed.Store(true)
			mustCompact(t, db)
			if tc.pinned {
				// A second merge while the first one's inputs are still
				// pinned, then the unpinning that lets them go.
				mustCompact(t, db)
				checkContents(t, snap, want, deleted...)
				if err := snap.Close(); err != nil {
					t.Fatal(err)
				}
			}
			armed.Store(false)
			images = append(images, mem.CrashClone())
			ops = append(ops, "(after)")
			if _, err := mem.Stat(testDir + "/merge"); !errors.Is(err, fs.ErrNotExist) {
				t.Fatalf("merge/ still exists after the merges: %v", err)
			}
			t.Logf("%d crash points", len(images))
			for i, img := range images {
				db, err := Open(testDir, testOptions(img, kvs.IndexBTree))
				if err != nil {
					t.Fatalf("crash before op %d (%s): open: %v", i, ops[i], err)
				}
				checkContents(t, db, want, deleted...)
				checkInvariants(t, db)
				if _, err := img.Stat(testDir + "/merge"); !errors.Is(err, fs.ErrNotExist) {
					t.Fatalf("crash before op %d (%s): merge/ survived recovery", i, ops[i])
				}
				mustClose(t, db)
				if t.Failed() {
					t.Fatalf("crash before op %d (%s)", i, ops[i])
				}
			}
		})
	}
}

// TestReadsAndWritesDuringMerge runs readers (Gets and scans of keys
// nobody writes), writers (overwrites and deletes of their own keys) and
// merges at once. Run it with -race.
func TestReadsAndWritesDuringMerge(t *testing.T) {
	for _, index := range indexes {
		t.Run("index="+index, func(t *testing.T) {
			o := testOptions(vfs.NewMem(), index)
			o.Bitcask.MaxSegmentBytes = 16 << 10
			db := openDB(t, testDir, o)
			stable := map[string]string{}
			for i := 0; i < 500; i++ {
				k := "stable-" + keyN(i)
				stable[k] = valueN(i, 0, 40)
				mustPut(t, db, k, stable[k], kvs.NoSync)
				mustPut(t, db, "hot-"+keyN(i), "initial", kvs.NoSync)
			}
			merges := 8
			if testing.Short() {
				merges = 4
			}
			var done atomic.Bool
			var wg sync.WaitGroup
			for r := 0; r < 3; r++ {
				wg.Add(1)
				go func() {
					defer wg.Done()
					rng := rand.New(rand.NewPCG(uint64(r), 1))
					for n := 0; !done.Load() || n < 50; n++ {
						if n%20 == 0 {
							it, err := db.NewIter(&kvs.IterOptions{LowerBound: []byte("stable-"), UpperBound: []byte("stable-~")})
							if err != nil {
								t.Error(err)
								return
							}
							count := 0
							for ok := it.First(); ok; ok = it.Next() {
								if v := string(it.Value()); v != stable[string(it.Key())] {
									t.Errorf("scan during merge: %q = %.20q", it.Key(), v)
								}
								count++
							}
							if err := it.Close(); err != nil || count != len(stable) {
								t.Errorf("scan during merge: %d keys, %v", count, err)
							}
							continue
						}
						k := "stable-" + keyN(rng.IntN(500))
						if v, err := db.Get([]byte(k)); err != nil || string(v) != stable[k] {
							t.Errorf("get %s during merge = %.20q, %v", k, v, err)
						}
					}
				}()
			}
			hot := make([]map[string]string, 2)
			for w := range hot {
				hot[w] = map[string]string{}
				wg.Add(1)
				go func() {
					defer wg.Done()
					for r := 1; r == 1 || !done.Load(); r++ { // every key at least once
						for i := w; i < 500; i += 2 {
							k := "hot-" + keyN(i)
							if (i+r)%4 == 0 {
								if err := db.Delete([]byte(k), kvs.NoSync); err != nil {
									t.Error(err)
									return
								}
								hot[w][k] = ""
								continue
							}
							v := valueN(i, r, 30)
							if err := db.Put([]byte(k), []byte(v), kvs.NoSync); err != nil {
								t.Error(err)
								return
							}
							hot[w][k] = v
						}
					}
				}()
			}
			for i := 0; i < merges; i++ {
				mustCompact(t, db)
			}
			done.Store(true)
			wg.Wait()
			want := copyMap(stable)
			var deleted []string
			for _, h := range hot {
				for k, v := range h {
					if v == "" {
						deleted = append(deleted, k)
					} else {
						want[k] = v
					}
				}
			}
			checkContents(t, db, want, deleted...)
			if s := db.Stats(); s.Compactions != int64(merges) {
				t.Fatalf("%d compactions counted, want %d", s.Compactions, merges)
			}
			mustClose(t, db)
			db = openDB(t, testDir, o)
			checkContents(t, db, want, deleted...)
		})
	}
}

// copyMap copies m.
func copyMap(m map[string]string) map[string]string {
	c := make(map[string]string, len(m))
	for k, v := range m {
		c[k] = v
	}
	return c
}

// TestMergeKeepsPinnedFilesUntilUnpinned checks that a merge deletes its
// inputs only when the last snapshot or iterator reading them is closed,
// and that merge/DONE stays until then.
func TestMergeKeepsPinnedFilesUntilUnpinned(t *testing.T) {
	for _, index := range indexes {
		t.Run("index="+index, func(t *testing.T) {
			mem := vfs.NewMem()
			o := testOptions(mem, index)
			o.Bitcask.MaxSegmentBytes = 1 << 10
			db := openDB(t, testDir, o)
			want, deleted := mergeWorkload(t, db, 3)
			old := db.Stats().Segments
			snap, err := db.NewSnapshot()
			if err != nil {
				t.Fatal(err)
			}
			it, err := db.NewIter(nil)
			if err != nil {
				t.Fatal(err)
			}
			mustCompact(t, db)
			for _, s := range old {
				if fileSize(t, mem, testDir+"/"+segmentName(s.ID)) < 0 {
					t.Fatalf("segment %d deleted while pinned", s.ID)
				}
			}
			if _, err := mem.Stat(testDir + "/merge/DONE"); err != nil {
				t.Fatalf("merge/DONE gone while inputs are pinned: %v", err)
			}
			checkContents(t, snap, want, deleted...)
			snap.Close()
			if _, err := mem.Stat(testDir + "/merge/DONE"); err != nil {
				t.Fatalf("merge/DONE gone while an iterator pins the inputs: %v", err)
			}
			if got := walk(t, it, want, it.First, it.Next); len(got) != len(want) {
				t.Fatalf("iterator over merged files saw %d keys, want %d", len(got), len(want))
			}
			it.Close()
			for _, s := range old {
				if !s.Active && fileSize(t, mem, testDir+"/"+segmentName(s.ID)) >= 0 {
					t.Fatalf("segment %d survived its unpinning", s.ID)
				}
			}
			if _, err := mem.Stat(testDir + "/merge"); !errors.Is(err, fs.ErrNotExist) {
				t.Fatalf("merge/ survived the unpinning: %v", err)
			}
			checkContents(t, db, want, deleted...)
			if s := db.Stats(); s.BytesOnDisk != memDiskBytes(t, mem, testDir) {
				t.Fatalf("Stats.BytesOnDisk = %d, the directory holds %d", s.BytesOnDisk, memDiskBytes(t, mem, testDir))
			}
		})
	}
}

func memDiskBytes(t testing.TB, mem *vfs.MemFS, dir string) int64 {
	var n int64
	for _, b := range snapshotFiles(t, mem, dir) {
		n += int64(len(b))
	}
	return n
}

// TestMergeIsNoOpOnEmptyEngine checks that Compact on an engine with
// nothing sealed does nothing.
func TestMergeIsNoOpOnEmptyEngine(t *testing.T) {
	mem := vfs.NewMem()
	db := openDB(t, testDir, testOptions(mem, kvs.IndexHash))
	mustCompact(t, db)
	if s := db.Stats(); s.Compactions != 0 || len(s.Segments) != 1 {
		t.Fatalf("stats after compacting nothing: %+v", s)
	}
	mustPut(t, db, "k", "v", kvs.NoSync)
	mustCompact(t, db)
	mustCompact(t, db)
	checkContents(t, db, map[string]string{"k": "v"})
}

// TestFailedWriteDuringMergeAbortsCompact fails a write while a merge
// copies: the write leaves half a batch at the end of the active segment
// and fails the engine. The merge must not seal that segment (its
// keepActiveNewest would rotate it, fsyncing the half batch into a segment
// that is no longer the newest, which recovery reports as corruption):
// Compact returns the failure, and the directory reopens, as it is and
// after a crash, with every synced write and without the half batch.
func TestFailedWriteDuringMergeAbortsCompact(t *testing.T) {
	mem := vfs.NewMem()
	var (
		db              *DB
		armed, failNext atomic.Bool
		writeErr        error
	)
	inj := vfs.InjectorFunc(func(op vfs.Op, p string) error {
		if op == vfs.OpCreate && strings.HasSuffix(p, segmentSuffix+mergingSuffix) && armed.CompareAndSwap(true, false) {
			// A concurrent writer's batch, run here for determinism: the
			// merge holds no write lock while it creates an output.
			if err := db.Put([]byte("w"), []byte("ok"), kvs.Sync); err != nil {
				panic(err)
			}
			failNext.Store(true)
			var b kvs.Batch
			b.Put([]byte("x1"), []byte(strings.Repeat("x", 100)))
			b.Put([]byte("x2"), []byte(strings.Repeat("y", 100)))
			// NB: synced, so the batch reaches the file now (an
			// unsynced one would wait in the segment's append buffer).
			writeErr = db.Write(&b, kvs.Sync)
		}
		if op == vfs.OpWrite && strings.HasSuffix(p, segmentSuffix) && failNext.CompareAndSwap(true, false) {
			return &vfs.InjectedError{Op: op, Path: p, Err: vfs.ErrNoSpace, Partial: true}
		}
		return nil
	})
	o := testOptions(vfs.Inject(mem, inj), kvs.IndexHash)
	o.Bitcask.MaxSegmentBytes = 1 << 10
	var err error
	if db, err = Open(testDir, o); err != nil {
		t.Fatal(err)
	}
	want := map[string]string{"w": "ok"}
	for i := 0; i < 50; i++ {
		k, v := keyN(i), valueN(i, 0, 50)
		mustPut(t, db, k, v, kvs.Sync)
		want[k] = v
	}
	armed.Store(true)
	cerr := db.Compact()
	if !errors.Is(writeErr, kvs.ErrFailed) {
		t.Fatalf("the half-written batch returned %v, want kvs.ErrFailed", writeErr)
	}
	if !errors.Is(cerr, kvs.ErrFailed) || !errors.Is(cerr, vfs.ErrNoSpace) {
		t.Fatalf("compact = %v, want the engine's failure (kvs.ErrFailed wrapping ENOSPC)", cerr)
	}
	crashed := mem.CrashClone()
	if err := db.Close(); !errors.Is(err, kvs.ErrFailed) {
		t.Fatalf("close = %v, want the failure reported", err)
	}
	for _, img := range []struct {
		name string
		fs   *vfs.MemFS
	}{{"after close", mem}, {"after a crash", crashed}} {
		db := openDB(t, testDir, testOptions(img.fs, kvs.IndexBTree))
		checkContents(t, db, want, "x1", "x2")
		mustClose(t, db)
	}
}
