package bitcask

import (
	"errors"
	"fmt"
	"path"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/kvs-lab/kvs"
	"github.com/kvs-lab/kvs/internal/vfs"
)

// slowSyncs makes every fsync of a data file take d, as a disk's would, so
// that concurrent synced writers pile up behind one.
func slowSyncs(d time.Duration) vfs.Injector {
	return vfs.InjectorFunc(func(op vfs.Op, p string) error {
		if op == vfs.OpSync && path.Ext(p) == segmentSuffix {
			time.Sleep(d)
		}
		return nil
	})
}

func TestGroupCommitSharesFsyncs(t *testing.T) {
	const writers = 16
	perWriter := 25
	if testing.Short() {
		perWriter = 10
	}
	writes := writers * perWriter
	for _, tc := range []struct {
		name    string
		disable bool
	}{
		{"group commit", false},
		{"group commit disabled", true},
	} {
		t.Run(tc.name, func(t *testing.T) {
			mem := vfs.NewMem()
			o := testOptions(vfs.Inject(mem, slowSyncs(time.Millisecond)), kvs.IndexHash)
			o.DisableGroupCommit = tc.disable
			db := openDB(t, testDir, o)
			before := db.Stats().Syncs
			var wg sync.WaitGroup
			for w := 0; w < writers; w++ {
				wg.Add(1)
				go func() {
					defer wg.Done()
					for i := 0; i < perWriter; i++ {
						k := fmt.Sprintf("w%02d-%03d", w, i)
						if err := db.Put([]byte(k), []byte(k), kvs.Sync); err != nil {
							t.Error(err)
							return
						}
					}
				}()
			}
			wg.Wait()
			syncs := db.Stats().Syncs - before
			if tc.disable && syncs != int64(writes) {
				t.Fatalf("%d synced writes without group commit made %d fsyncs, want one each", writes, syncs)
			}
			if !tc.disable && syncs > int64(writes/4) {
				t.Fatalf("%d concurrent synced writes made %d fsyncs, want far fewer", writes, syncs)
			}
			t.Logf("%d synced writes, %d fsyncs", writes, syncs)
			// Every acknowledged write is durable.
			crashed := mem.CrashClone()
			db2 := openDB(t, testDir, testOptions(crashed, kvs.IndexHash))
			if n := db2.Stats().LiveKeys; n != int64(writes) {
				t.Fatalf("after a crash %d keys survive, want %d", n, writes)
			}
		})
	}
}

// TestWriteFailureIsSticky fails one write or fsync of the log and checks
// that the engine refuses every later write with kvs.ErrFailed (wrapping
// the cause), keeps serving reads, closes, and reopens with every write
// acknowledged before the failure.
func TestWriteFailureIsSticky(t *testing.T) {
	for _, tc := range []struct {
		name string
		op   vfs.Op
	}{
		{"fsync", vfs.OpSync},
		{"write", vfs.OpWrite},
	} {
		for _, group := range []bool{true, false} {
			t.Run(fmt.Sprintf("%s/group=%v", tc.name, group), func(t *testing.T) {
				mem := vfs.NewMem()
				inj := vfs.OnPath("*.data", vfs.ErrIO, tc.op)
				inj.SetEnabled(false)
				o := testOptions(vfs.Inject(mem, inj), kvs.IndexBTree)
				o.DisableGroupCommit = !group
				db := openDB(t, testDir, o)
				mustPut(t, db, "before", "ok", kvs.Sync)
				inj.SetEnabled(true)
				err := db.Put([]byte("failing"), []byte("x"), kvs.Sync)
				if !errors.Is(err, kvs.ErrFailed) || !errors.Is(err, vfs.ErrIO) {
					t.Fatalf("put during the failure = %v, want kvs.ErrFailed wrapping EIO", err)
				}
				inj.SetEnabled(false)
				for _, w := range []func() error{
					func() error { return db.Put([]byte("after"), []byte("x"), kvs.NoSync) },
					func() error { return db.Delete([]byte("before"), kvs.Sync) },
					func() error { return db.Write(&kvs.Batch{}, kvs.Sync) },
					db.Compact,
				} {
					if err := w(); !errors.Is(err, kvs.ErrFailed) || !errors.Is(err, vfs.ErrIO) {
						t.Fatalf("write after the failure = %v, want the sticky kvs.ErrFailed", err)
					}
				}
				if v, err := db.Get([]byte("before")); err != nil || string(v) != "ok" {
					t.Fatalf("get after the failure = %q, %v", v, err)
				}
				if err := db.Close(); !errors.Is(err, kvs.ErrFailed) {
					t.Fatalf("close = %v, want the failure reported", err)
				}
				db = openDB(t, testDir, testOptions(mem, kvs.IndexBTree))
				if v, err := db.Get([]byte("before")); err != nil || string(v) != "ok" {
					t.Fatalf("after reopening, get = %q, %v", v, err)
				}
				mustPut(t, db, "after", "reopen", kvs.Sync)
			})
		}
	}
}

// TestFailedFlushKeepsBufferedRecordsReadable fails the write that hands
// the append buffer to the file: the engine fails, but the unsynced puts
// it acknowledged before are still read back from memory, not reported as
// corruption of the half-written file.
func TestFailedFlushKeepsBufferedRecordsReadable(t *testing.T) {
	mem := vfs.NewMem()
	var armed atomic.Bool
	inj := vfs.InjectorFunc(func(op vfs.Op, p string) error {
		if op == vfs.OpWrite && strings.HasSuffix(p, segmentSuffix) && armed.CompareAndSwap(true, false) {
			return &vfs.InjectedError{Op: op, Path: p, Err: vfs.ErrIO, Partial: true}
		}
		return nil
	})
	db := openDB(t, testDir, testOptions(vfs.Inject(mem, inj), kvs.IndexHash))
	defer db.Close()
	for i := 0; i < 10; i++ {
		mustPut(t, db, keyN(i), valueN(i, 0, 100), kvs.NoSync)
	}
	armed.Store(true)
	if err := db.Put([]byte("last"), []byte("v"), kvs.Sync); !errors.Is(err, kvs.ErrFailed) {
		t.Fatalf("synced put over a failing write: %v, want kvs.ErrFailed", err)
	}
	for i := 0; i < 10; i++ {
		got, err := db.Get([]byte(keyN(i)))
		if err != nil || string(got) != valueN(i, 0, 100) {
			t.Fatalf("get %s after the failed flush: %.20q, %v", keyN(i), got, err)
		}
	}
}
