package wal

import (
	"bytes"
	"encoding/binary"
	"errors"
	"fmt"
	"math/rand"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/kvs-lab/kvs"
	"github.com/kvs-lab/kvs/internal/vfs"
)

// TestSyncedRecordsSurviveCrash writes records with syncs at random
// points, crashes with a random part of the unsynced appends reaching the
// disk, and checks that the log reads back as a prefix of what was
// written holding at least every record written before the last Sync,
// with no error.
func TestSyncedRecordsSurviveCrash(t *testing.T) {
	r := rand.New(rand.NewSource(testSeed(t)))
	rounds := 200
	if testing.Short() {
		rounds = 40
	}
	for round := 0; round < rounds; round++ {
		fsys := vfs.NewMem()
		w := createLog(t, fsys, "/000001.log", 1)
		var written [][]byte
		synced := 0
		for i, n := 0, r.Intn(40); i < n; i++ {
			rec := record(i, randomSize(r))
			if _, err := w.WriteRecord(rec); err != nil {
				t.Fatal(err)
			}
			written = append(written, rec)
			if r.Intn(4) == 0 {
				if err := w.Sync(); err != nil {
					t.Fatal(err)
				}
				synced = len(written)
			}
		}
		for _, crash := range []*vfs.MemFS{fsys.CrashClone(), fsys.CrashCloneRandom(r)} {
			res := readFile(t, crash, "/000001.log", 1)
			if res.err != nil {
				t.Fatalf("round %d: %v", round, res.err)
			}
			if len(res.records) < synced {
				t.Fatalf("round %d: read %d records, %d were synced", round, len(res.records), synced)
			}
			checkRecords(t, res.records, written[:len(res.records)])
		}
		// CrashClone keeps exactly the synced bytes, which end at a
		// record boundary: nothing is torn.
		if res := readFile(t, fsys.CrashClone(), "/000001.log", 1); len(res.records) != synced || res.tornOK {
			t.Fatalf("round %d: CrashClone read %d records (torn %v), want exactly the %d synced", round, len(res.records), res.tornOK, synced)
		}
		if err := w.Close(); err != nil {
			t.Fatal(err)
		}
	}
}

// TestCloseSyncs checks that Close makes every record durable, and that
// the Writer refuses work after it.
func TestCloseSyncs(t *testing.T) {
	fsys := vfs.NewMem()
	w := createLog(t, fsys, "/000002.log", 2)
	var written [][]byte
	for i := 0; i < 10; i++ {
		written = append(written, record(i, 5000))
		if _, err := w.WriteRecord(written[i]); err != nil {
			t.Fatal(err)
		}
	}
	if err := w.Close(); err != nil {
		t.Fatal(err)
	}
	res := readFile(t, fsys.CrashClone(), "/000002.log", 2)
	checkRecords(t, res.records, written)
	if _, err := w.WriteRecord([]byte("x")); !errors.Is(err, kvs.ErrClosed) {
		t.Errorf("WriteRecord after Close: %v, want kvs.ErrClosed", err)
	}
	if err := w.Close(); !errors.Is(err, kvs.ErrClosed) {
		t.Errorf("second Close: %v, want kvs.ErrClosed", err)
	}
	if err := w.Sync(); err != nil {
		t.Errorf("Sync of a closed log with everything durable: %v", err)
	}
	if err := w.WaitDurable(w.Size() + 1); !errors.Is(err, kvs.ErrClosed) {
		t.Errorf("WaitDurable past the end of a closed log: %v, want kvs.ErrClosed", err)
	}
}

// TestWriteErrorIsSticky fails one write and checks that every later call
// fails with it, and that the log reads back without error up to the
// failed record, which a partial write leaves as a torn tail.
func TestWriteErrorIsSticky(t *testing.T) {
	for _, partial := range []bool{false, true} {
		t.Run(fmt.Sprintf("partial=%v", partial), func(t *testing.T) {
			mem := vfs.NewMem()
			inj := vfs.OnIndex(3, vfs.ErrIO, vfs.OpWrite)
			inj.PartialWrite = partial
			fsys := vfs.Inject(mem, inj)
			w := createLog(t, fsys, "/000003.log", 3)
			for i := 0; i < 2; i++ {
				if _, err := w.SyncRecord(record(i, 3000)); err != nil {
					t.Fatal(err)
				}
			}
			if _, err := w.WriteRecord(record(2, 3000)); err != nil {
				t.Fatalf("third record, gathered in memory: %v", err)
			}
			err := w.Flush()
			if !errors.Is(err, vfs.ErrIO) {
				t.Fatalf("third write: %v, want EIO", err)
			}
			checkSticky(t, w, err)
			inj.SetEnabled(false)
			res := readFile(t, mem, "/000003.log", 3)
			if res.err != nil || len(res.records) != 2 {
				t.Fatalf("read %d records, err %v; want 2", len(res.records), res.err)
			}
			if res.tornOK != partial {
				t.Fatalf("torn tail %+v %v, want %v", res.torn, res.tornOK, partial)
			}
		})
	}
}

// TestSyncErrorIsSticky fails an fsync and checks that every later call
// fails with it: after a failed fsync the log cannot promise anything.
func TestSyncErrorIsSticky(t *testing.T) {
	w := injectedLog(t, vfs.NewMem(), vfs.OnIndex(2, vfs.ErrIO, vfs.OpSync), "/000004.log", 4)
	if _, err := w.SyncRecord([]byte("one")); err != nil {
		t.Fatal(err)
	}
	_, err := w.SyncRecord([]byte("two"))
	if !errors.Is(err, vfs.ErrIO) {
		t.Fatalf("second SyncRecord: %v, want EIO", err)
	}
	checkSticky(t, w, err)
	if w.Stats().Syncs != 1 {
		t.Errorf("Stats().Syncs = %d, want 1", w.Stats().Syncs)
	}
}

// injectedLog creates name in mem durably and returns a Writer whose
// file's operations inj may fail.
func injectedLog(t testing.TB, mem *vfs.MemFS, inj vfs.Injector, name string, logNum uint64) *Writer {
	t.Helper()
	if err := createLog(t, mem, name, logNum).Close(); err != nil {
		t.Fatal(err)
	}
	f, err := vfs.Inject(mem, inj).OpenReadWrite(name)
	if err != nil {
		t.Fatal(err)
	}
	return NewWriter(f, logNum)
}

// checkSticky checks that every call on w now returns err.
func checkSticky(t testing.TB, w *Writer, err error) {
	t.Helper()
	if _, got := w.WriteRecord([]byte("later")); got != err {
		t.Errorf("WriteRecord: %v, want %v", got, err)
	}
	if _, got := w.SyncRecord([]byte("later")); got != err {
		t.Errorf("SyncRecord: %v, want %v", got, err)
	}
	if got := w.Sync(); got != err {
		t.Errorf("Sync: %v, want %v", got, err)
	}
	if got := w.WaitDurable(0); got != err {
		t.Errorf("WaitDurable(0): %v, want %v", got, err)
	}
	if got := w.Close(); got != err {
		t.Errorf("Close: %v, want %v", got, err)
	}
}

// TestEveryFailedOpLeavesReadableLog fails each write and sync of a
// workload in turn (and every one after it, a disk that stays broken),
// then checks the file: no panic, no corruption error, and every record
// acknowledged by a successful Sync is there.
func TestEveryFailedOpLeavesReadableLog(t *testing.T) {
	workload := func(w *Writer) (acked int, written [][]byte) {
		for i := 0; i < 12; i++ {
			rec := record(i, []int{10, 20000, 0, 40000}[i%4])
			if _, err := w.WriteRecord(rec); err != nil {
				return acked, written
			}
			written = append(written, rec)
			if i%3 == 2 {
				if err := w.Sync(); err != nil {
					return acked, written
				}
				acked = len(written)
			}
		}
		w.Close()
		return acked, written
	}
	count := vfs.Count(vfs.OpWrite, vfs.OpSync)
	workload(injectedLog(t, vfs.NewMem(), count, "/000005.log", 5))
	n := count.Calls()
	for k := int64(1); k <= n; k++ {
		for _, partial := range []bool{false, true} {
			mem := vfs.NewMem()
			inj := vfs.After(k, vfs.ErrNoSpace, vfs.OpWrite, vfs.OpSync)
			inj.PartialWrite = partial
			acked, written := workload(injectedLog(t, mem, inj, "/000005.log", 5))
			for name, fsys := range map[string]*vfs.MemFS{"now": mem, "after crash": mem.CrashClone()} {
				res := readFile(t, fsys, "/000005.log", 5)
				if res.err != nil {
					t.Fatalf("op %d (partial %v), %s: %v", k, partial, name, res.err)
				}
				if len(res.records) < acked {
					t.Fatalf("op %d (partial %v), %s: read %d records, %d were acknowledged", k, partial, name, len(res.records), acked)
				}
				checkRecords(t, res.records, written[:len(res.records)])
			}
		}
	}
}

// TestGroupCommitSharesFsyncs runs many goroutines that each append
// records and wait for them to be durable, on a disk whose fsync is slow,
// and checks that they shared fsyncs (far fewer fsyncs than records) and
// that every acknowledged record survives a crash.
func TestGroupCommitSharesFsyncs(t *testing.T) {
	const (
		writers = 32
		each    = 25
	)
	mem := vfs.NewMem()
	var fsyncs atomic.Int64
	slow := vfs.InjectorFunc(func(op vfs.Op, path string) error {
		if op == vfs.OpSync && path == "/000006.log" {
			fsyncs.Add(1)
			time.Sleep(time.Millisecond) // a slow disk lets writers queue up
		}
		return nil
	})
	w := createLog(t, vfs.Inject(mem, slow), "/000006.log", 6)
	var wg sync.WaitGroup
	for g := 0; g < writers; g++ {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for i := 0; i < each; i++ {
				if _, err := w.SyncRecord(groupRecord(g, i)); err != nil {
					t.Error(err)
					return
				}
			}
		}()
	}
	wg.Wait()
	st := w.Stats()
	t.Logf("%d records, %d fsyncs", st.Records, st.Syncs)
	if st.Records != writers*each || st.Syncs != fsyncs.Load() {
		t.Fatalf("stats %+v, %d fsyncs seen by the file system", st, fsyncs.Load())
	}
	if st.Syncs > writers*each/4 {
		t.Errorf("%d fsyncs for %d synced records: group commit is not sharing them", st.Syncs, writers*each)
	}
	// Every record was acknowledged, so all of them survive a crash.
	res := readFile(t, mem.CrashClone(), "/000006.log", 6)
	if res.err != nil || res.tornOK {
		t.Fatalf("err %v, torn tail %+v", res.err, res.torn)
	}
	seen := checkGroupRecords(t, res.records)
	if len(seen) != writers*each {
		t.Fatalf("read %d records, want %d", len(seen), writers*each)
	}
}

// TestSyncUnsharedFsyncsForEachCaller has 8 writers append and call
// SyncUnshared: every call runs an fsync of its own, and every record is
// durable.
func TestSyncUnsharedFsyncsForEachCaller(t *testing.T) {
	const writers, each = 8, 10
	mem := vfs.NewMem()
	w := createLog(t, mem, "/000007.log", 7)
	var wg sync.WaitGroup
	for g := 0; g < writers; g++ {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for i := 0; i < each; i++ {
				end, err := w.WriteRecord(groupRecord(g, i))
				if err != nil {
					t.Error(err)
					return
				}
				if err := w.SyncUnshared(end); err != nil {
					t.Error(err)
					return
				}
			}
		}()
	}
	wg.Wait()
	if st := w.Stats(); st.Syncs != writers*each {
		t.Fatalf("%d fsyncs for %d SyncUnshared calls", st.Syncs, writers*each)
	}
	res := readFile(t, mem.CrashClone(), "/000007.log", 7)
	if seen := checkGroupRecords(t, res.records); len(seen) != writers*each || res.err != nil {
		t.Fatalf("read %d records (err %v), want %d", len(seen), res.err, writers*each)
	}
	if err := w.Close(); err != nil {
		t.Fatal(err)
	}
	// Close synced every record, so a writer late to sync is covered; an
	// offset past the end is not.
	if err := w.SyncUnshared(w.Size()); err != nil {
		t.Fatalf("SyncUnshared of a record Close made durable: %v", err)
	}
	if err := w.SyncUnshared(w.Size() + 1); !errors.Is(err, kvs.ErrClosed) {
		t.Fatalf("SyncUnshared past the end after Close: %v, want kvs.ErrClosed", err)
	}
}

// TestGroupCommitCrashWhileWriting crashes the machine (CrashCloneRandom)
// at random moments while writers append and sync, and checks that every
// record acknowledged before the crash is in the log read from the clone,
// and that nothing else is invented.
func TestGroupCommitCrashWhileWriting(t *testing.T) {
	const writers = 8
	each := 300
	if testing.Short() {
		each = 100
	}
	r := rand.New(rand.NewSource(testSeed(t)))
	mem := vfs.NewMem()
	// A slow fsync stretches the run so that the crashes land all along it.
	slow := vfs.InjectorFunc(func(op vfs.Op, path string) error {
		if op == vfs.OpSync {
			time.Sleep(200 * time.Microsecond)
		}
		return nil
	})
	w := injectedLog(t, mem, slow, "/000008.log", 8)
	var (
		mu    sync.Mutex
		acked = map[[2]int]bool{}
		wg    sync.WaitGroup
	)
	for g := 0; g < writers; g++ {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for i := 0; i < each; i++ {
				var err error
				if i%5 == 4 {
					_, err = w.WriteRecord(groupRecord(g, i)) // not waited for
				} else if _, err = w.SyncRecord(groupRecord(g, i)); err == nil {
					mu.Lock()
					acked[[2]int{g, i}] = true
					mu.Unlock()
				}
				if err != nil {
					t.Error(err)
					return
				}
			}
		}()
	}
	done := make(chan struct{})
	go func() {
		wg.Wait()
		close(done)
	}()
	c := 0
	for finished := false; !finished; c++ {
		select {
		case <-done:
			finished = true // one last crash with every writer done
		case <-time.After(time.Duration(r.Intn(200)) * time.Microsecond):
		}
		mu.Lock()
		before := make([][2]int, 0, len(acked))
		for k := range acked {
			before = append(before, k)
		}
		mu.Unlock()
		// Acknowledged before the clone, so durable in it.
		crash := mem.CrashClone()
		if c%2 == 1 {
			crash = mem.CrashCloneRandom(r)
		}
		res := readFile(t, crash, "/000008.log", 8)
		if res.err != nil {
			t.Fatal(res.err)
		}
		seen := checkGroupRecords(t, res.records)
		for _, k := range before {
			if !seen[k] {
				t.Fatalf("crash %d: record %v was acknowledged but is missing", c, k)
			}
		}
	}
	t.Logf("%d crashes, %d records, %d fsyncs", c, w.Stats().Records, w.Stats().Syncs)
	if err := w.Close(); err != nil {
		t.Fatal(err)
	}
}

// groupRecord is record i of writer g: its ids and a payload derived from
// them, so a reader can check it was written whole.
func groupRecord(g, i int) []byte {
	b := binary.LittleEndian.AppendUint32(nil, uint32(g))
	b = binary.LittleEndian.AppendUint32(b, uint32(i))
	return append(b, bytes.Repeat([]byte{byte(g + i)}, 50+(g*7+i*13)%400)...)
}

// checkGroupRecords checks that each record is one groupRecord wrote,
// seen once, and returns the set of ids.
func checkGroupRecords(t *testing.T, records [][]byte) map[[2]int]bool {
	t.Helper()
	seen := map[[2]int]bool{}
	for _, rec := range records {
		if len(rec) < 8 {
			t.Fatalf("record of %d bytes was never written", len(rec))
		}
		k := [2]int{int(binary.LittleEndian.Uint32(rec)), int(binary.LittleEndian.Uint32(rec[4:]))}
		if !bytes.Equal(rec, groupRecord(k[0], k[1])) || seen[k] {
			t.Fatalf("record %v was never written, or read twice", k)
		}
		seen[k] = true
	}
	return seen
}

// TestCloseRacingWithWriters closes a Writer while goroutines append:
// each append either fails with kvs.ErrClosed or is durable once Close
// returns.
func TestCloseRacingWithWriters(t *testing.T) {
	const writers = 8
	mem := vfs.NewMem()
	w := createLog(t, mem, "/000010.log", 10)
	var (
		mu      sync.Mutex
		written = map[[2]int]bool{}
		wg      sync.WaitGroup
	)
	for g := 0; g < writers; g++ {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for i := 0; ; i++ {
				_, err := w.WriteRecord(groupRecord(g, i))
				if errors.Is(err, kvs.ErrClosed) {
					return
				}
				if err != nil {
					t.Error(err)
					return
				}
				mu.Lock()
				written[[2]int{g, i}] = true
				mu.Unlock()
			}
		}()
	}
	time.Sleep(2 * time.Millisecond)
	if err := w.Close(); err != nil {
		t.Fatal(err)
	}
	wg.Wait()
	res := readFile(t, mem.CrashClone(), "/000010.log", 10)
	if res.err != nil || res.tornOK {
		t.Fatalf("err %v, torn tail %+v", res.err, res.torn)
	}
	seen := checkGroupRecords(t, res.records)
	if len(seen) != len(written) {
		t.Fatalf("read %d records, %d appends succeeded", len(seen), len(written))
	}
	for k := range written {
		if !seen[k] {
			t.Fatalf("record %v was appended before Close but is missing", k)
		}
	}
}
