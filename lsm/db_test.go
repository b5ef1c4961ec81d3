package lsm

import (
	"bytes"
	"errors"
	"fmt"
	"maps"
	"math/rand"
	"slices"
	"strings"
	"sync/atomic"
	"testing"
	"time"

	"github.com/kvs-lab/kvs"
	"github.com/kvs-lab/kvs/compaction"
	"github.com/kvs-lab/kvs/internal/vfs"
)

const testDir = "/db"

// openTestDB opens an engine on fs with lo (smallOptions when nil).
func openTestDB(t testing.TB, fs vfs.FS, lo *Options) *DB {
	t.Helper()
	if lo == nil {
		lo = smallOptions()
	}
	db, err := OpenWith(testDir, &kvs.Options{FS: fs, Logger: kvs.DiscardLogger()}, lo)
	if err != nil {
		t.Fatalf("open: %v", err)
	}
	return db
}

// holdJobs waits for the flush and the compaction in progress, if any, and
// keeps new ones from starting until the returned function is called: the
// table set stays as it is.
func (db *DB) holdJobs() (release func()) {
	db.flushMu.Lock()
	db.jobMu.Lock()
	return func() {
		db.jobMu.Unlock()
		db.flushMu.Unlock()
	}
}

// model is what the engine should hold.
type model map[string]string

// checkModel compares every Get and a full scan, both ways, with m.
func checkModel(t testing.TB, r kvs.Reader, m model) {
	t.Helper()
	for k, v := range m {
		got, err := r.Get([]byte(k))
		if err != nil || string(got) != v {
			t.Fatalf("Get(%q) = %.20q, %v; want %.20q", k, got, err, v)
		}
	}
	keys := make([]string, 0, len(m))
	for k := range m {
		keys = append(keys, k)
	}
	slices.Sort(keys)
	it, err := r.NewIter(nil)
	if err != nil {
		t.Fatal(err)
	}
	defer it.Close()
	i := 0
	for ok := it.First(); ok; ok = it.Next() {
		if i >= len(keys) || string(it.Key()) != keys[i] || string(it.Value()) != m[keys[i]] {
			t.Fatalf("forward scan position %d: %q; want %q", i, it.Key(), keys[min(i, len(keys)-1)])
		}
		i++
	}
	if i != len(keys) {
		t.Fatalf("forward scan saw %d keys, want %d (err %v)", i, len(keys), it.Error())
	}
	for ok := it.Last(); ok; ok = it.Prev() {
		i--
		if i < 0 || string(it.Key()) != keys[i] || string(it.Value()) != m[keys[i]] {
			t.Fatalf("backward scan position %d: %q", i, it.Key())
		}
	}
	if i != 0 || it.Error() != nil {
		t.Fatalf("backward scan stopped at %d: %v", i, it.Error())
	}
}

// churn runs n random puts and deletes over a small key space against db
// and m.
func churn(t testing.TB, db *DB, m model, rng *rand.Rand, n int) {
	t.Helper()
	for i := 0; i < n; i++ {
		k := fmt.Sprintf("key%04d", rng.Intn(500))
		if rng.Intn(5) == 0 {
			if err := db.Delete([]byte(k), kvs.NoSync); err != nil {
				t.Fatal(err)
			}
			delete(m, k)
			continue
		}
		v := fmt.Sprintf("v%d-%s", i, strings.Repeat("x", rng.Intn(200)))
		if err := db.Put([]byte(k), []byte(v), kvs.NoSync); err != nil {
			t.Fatal(err)
		}
		m[k] = v
	}
}

func TestFlushesAndCompactionsKeepEveryKey(t *testing.T) {
	fs := vfs.NewMem()
	db := openTestDB(t, fs, nil)
	m := model{}
	rng := rand.New(rand.NewSource(1))
	churn(t, db, m, rng, 20000)
	checkModel(t, db, m)
	s := db.Stats()
	if s.Compactions == 0 {
		t.Errorf("no compaction ran: %+v", s)
	}
	tables := 0
	for _, l := range s.Levels {
		tables += l.Files
	}
	if tables == 0 {
		t.Errorf("no table was flushed: %+v", s.Levels)
	}
	if err := db.Close(); err != nil {
		t.Fatal(err)
	}
	db = openTestDB(t, fs, nil)
	defer db.Close()
	checkModel(t, db, m)
}

func TestCompactLeavesOneLevelWithoutGarbage(t *testing.T) {
	fs := vfs.NewMem()
	lo := smallOptions()
	lo.DisableAutomaticCompactions = true
	db := openTestDB(t, fs, lo)
	m := model{}
	churn(t, db, m, rand.New(rand.NewSource(2)), 5000)
	if err := db.Compact(); err != nil {
		t.Fatal(err)
	}
	checkModel(t, db, m)
	s := db.Stats()
	nonEmpty := 0
	for _, l := range s.Levels {
		if l.Files > 0 {
			nonEmpty++
		}
	}
	if nonEmpty != 1 {
		t.Errorf("after Compact %d levels hold tables, want 1: %+v", nonEmpty, s.Levels)
	}
	// Every file left is live: one WAL, one MANIFEST, the version's tables.
	names, err := fs.List(testDir)
	if err != nil {
		t.Fatal(err)
	}
	var logs, manifests, tables int
	for _, name := range names {
		switch num, kind := parseFileName(name); kind {
		case fileLog:
			logs++
		case fileManifest:
			manifests++
		case fileTable:
			tables++
			db.mu.Lock()
			live := db.tables[num] != nil
			db.mu.Unlock()
			if !live {
				t.Errorf("obsolete table %s is still on disk", name)
			}
		}
	}
	if logs != 1 || manifests != 1 || tables == 0 {
		t.Errorf("directory holds %d WALs, %d MANIFESTs, %d tables: %v", logs, manifests, tables, names)
	}
	if err := db.Close(); err != nil {
		t.Fatal(err)
	}
}

func TestSnapshotSeesItsVersionAcrossCompaction(t *testing.T) {
	fs := vfs.NewMem()
	db := openTestDB(t, fs, nil)
	defer db.Close()
	old := model{}
	churn(t, db, old, rand.New(rand.NewSource(3)), 3000)
	snap, err := db.NewSnapshot()
	if err != nil {
		t.Fatal(err)
	}
	cur := model{}
	for k, v := range old {
		cur[k] = v
	}
	churn(t, db, cur, rand.New(rand.NewSource(4)), 3000)
	if err := db.Compact(); err != nil {
		t.Fatal(err)
	}
	checkModel(t, snap, old)
	checkModel(t, db, cur)
	if err := snap.Close(); err != nil {
		t.Fatal(err)
	}
	// With the snapshot gone, its tables are deleted.
	names, _ := fs.List(testDir)
	for _, name := range names {
		if num, kind := parseFileName(name); kind == fileTable {
			db.mu.Lock()
			live := db.tables[num] != nil
			db.mu.Unlock()
			if !live {
				t.Errorf("table %s outlived the snapshot that pinned it", name)
			}
		}
	}
}

// TestSyncedWritesSurviveCrashAtAnyPoint takes a crash image after every
// synced write of a churning workload (flushes and compactions running
// in the background) and checks that the recovered engine holds exactly
// the model as of that write: every write before it was acknowledged,
// and a synced write makes every earlier write durable.
func TestSyncedWritesSurviveCrashAtAnyPoint(t *testing.T) {
	fs := vfs.NewMem()
	db := openTestDB(t, fs, nil)
	defer db.Close()
	m := model{}
	rng := rand.New(rand.NewSource(5))
	for round := 0; round < 30; round++ {
		churn(t, db, m, rng, 100+rng.Intn(300))
		if err := db.Put([]byte("sync"), []byte(fmt.Sprint(round)), kvs.Sync); err != nil {
			t.Fatal(err)
		}
		m["sync"] = fmt.Sprint(round)
		crashed := fs.CrashClone()
		db2 := openTestDB(t, crashed, nil)
		checkModel(t, db2, m)
		if err := db2.Close(); err != nil {
			t.Fatal(err)
		}
	}
}

func TestRecoverRefusesTornTailInOlderWAL(t *testing.T) {
	fs := vfs.NewMem()
	lo := smallOptions()
	db := openTestDB(t, fs, lo)
	if err := db.Put([]byte("a"), []byte("1"), kvs.Sync); err != nil {
		t.Fatal(err)
	}
	db.mu.Lock()
	num := db.rs.mem.logNum
	db.mu.Unlock()
	// Crash with the WAL holding the write, then add an empty newer WAL
	// by hand and cut the older one mid-record.
	crashed := fs.CrashClone()
	db.Close()
	path := crashed.PathJoin(testDir, logName(num))
	f, err := crashed.OpenReadWrite(path)
	if err != nil {
		t.Fatal(err)
	}
	st, _ := f.Stat()
	if err := f.Truncate(st.Size() - 2); err != nil {
		t.Fatal(err)
	}
	f.Close()
	nf, err := crashed.Create(crashed.PathJoin(testDir, logName(num+100)))
	if err != nil {
		t.Fatal(err)
	}
	nf.Close()
	_, err = OpenWith(testDir, &kvs.Options{FS: crashed, Logger: kvs.DiscardLogger()}, lo)
	if !errors.Is(err, kvs.ErrCorruption) {
		t.Fatalf("open with a torn older WAL: %v, want corruption", err)
	}
}

func TestRecoverCutsTornTailOfNewestWAL(t *testing.T) {
	fs := vfs.NewMem()
	db := openTestDB(t, fs, nil)
	if err := db.Put([]byte("a"), []byte("1"), kvs.Sync); err != nil {
		t.Fatal(err)
	}
	if err := db.Put([]byte("b"), []byte("2"), kvs.Sync); err != nil {
		t.Fatal(err)
	}
	db.mu.Lock()
	num := db.rs.mem.logNum
	db.mu.Unlock()
	crashed := fs.CrashClone()
	db.Close()
	path := crashed.PathJoin(testDir, logName(num))
	f, err := crashed.OpenReadWrite(path)
	if err != nil {
		t.Fatal(err)
	}
	st, _ := f.Stat()
	if err := f.Truncate(st.Size() - 2); err != nil {
		t.Fatal(err)
	}
	f.Close()
	db = openTestDB(t, crashed, nil)
	defer db.Close()
	checkModel(t, db, model{"a": "1"})
}

func TestBatchLargerThanMemtable(t *testing.T) {
	fs := vfs.NewMem()
	db := openTestDB(t, fs, nil)
	var b kvs.Batch
	m := model{}
	for i := 0; i < 100; i++ {
		k, v := fmt.Sprintf("k%03d", i), strings.Repeat("v", 1000)
		b.Put([]byte(k), []byte(v))
		m[k] = v
	}
	if err := db.Write(&b, kvs.Sync); err != nil {
		t.Fatal(err)
	}
	checkModel(t, db, m)
	db.Close()
	db = openTestDB(t, fs, nil)
	defer db.Close()
	checkModel(t, db, m)
}

func TestL0StaysBoundedUnderSustainedWrites(t *testing.T) {
	fs := vfs.NewMem()
	lo := smallOptions()
	lo.L0SlowdownTrigger, lo.L0StopTrigger = 4, 6
	db := openTestDB(t, fs, lo)
	defer db.Close()
	rng := rand.New(rand.NewSource(6))
	for i := 0; i < 20000; i++ {
		k := fmt.Sprintf("%08d", rng.Intn(1_000_000))
		if err := db.Put([]byte(k), bytes.Repeat([]byte{'v'}, 100), kvs.NoSync); err != nil {
			t.Fatal(err)
		}
		if i%500 == 0 {
			if n := db.Stats().Levels[0].Files; n > lo.L0StopTrigger {
				t.Fatalf("after %d writes L0 holds %d files, over the stop trigger %d", i, n, lo.L0StopTrigger)
			}
		}
	}
}

func TestVersionInvariantsHoldAfterChurn(t *testing.T) {
	fs := vfs.NewMem()
	db := openTestDB(t, fs, nil)
	defer db.Close()
	churn(t, db, model{}, rand.New(rand.NewSource(7)), 10000)
	defer db.holdJobs()()
	db.mu.Lock()
	v := db.rs.version()
	db.mu.Unlock()
	if err := v.Check(); err != nil {
		t.Fatal(err)
	}
}

func TestOpenRejectsImpossibleOptions(t *testing.T) {
	for name, lo := range map[string]*Options{
		"negative memtable":             {MemtableBytes: -1},
		"slowdown above stop":           {L0SlowdownTrigger: 10, L0StopTrigger: 5},
		"stop below compaction trigger": {L0SlowdownTrigger: 2, L0StopTrigger: 3},
	} {
		t.Run(name, func(t *testing.T) {
			if _, err := OpenWith(testDir, &kvs.Options{FS: vfs.NewMem(), Logger: kvs.DiscardLogger()}, lo); err == nil {
				t.Fatal("open succeeded")
			}
		})
	}
}

func TestStatsCountWritesFlushesAndCompactions(t *testing.T) {
	db := openTestDB(t, vfs.NewMem(), nil)
	defer db.Close()
	churn(t, db, model{}, rand.New(rand.NewSource(8)), 5000)
	if err := db.Compact(); err != nil {
		t.Fatal(err)
	}
	s := db.Stats()
	if s.Engine != engineName || len(s.Levels) != 7 {
		t.Fatalf("Stats: engine %q, %d levels", s.Engine, len(s.Levels))
	}
	if s.UserBytesWritten == 0 || s.DiskBytesWritten <= s.UserBytesWritten || s.Compactions == 0 || s.CompactionBytesWritten == 0 {
		t.Errorf("Stats: user %d, disk %d, compactions %d, compaction bytes written %d",
			s.UserBytesWritten, s.DiskBytesWritten, s.Compactions, s.CompactionBytesWritten)
	}
	var onDisk int64
	for _, l := range s.Levels {
		onDisk += l.Bytes
	}
	if onDisk == 0 || s.BytesOnDisk < onDisk {
		t.Errorf("Stats: levels hold %d bytes, BytesOnDisk %d", onDisk, s.BytesOnDisk)
	}
}

// TestCompactionKeepsWhatEachSnapshotSees holds three snapshots across
// churn and full compactions, then closes them: each must read its own
// state throughout, and once they are gone a full compaction keeps one
// version per live key and no deletion.
func TestCompactionKeepsWhatEachSnapshotSees(t *testing.T) {
	db := openTestDB(t, vfs.NewMem(), nil)
	defer db.Close()
	rng := rand.New(rand.NewSource(9))
	m := model{}
	var snaps []kvs.Snapshot
	var states []model
	for i := 0; i < 3; i++ {
		churn(t, db, m, rng, 2000)
		s, err := db.NewSnapshot()
		if err != nil {
			t.Fatal(err)
		}
		snaps = append(snaps, s)
		states = append(states, maps.Clone(m))
		if err := db.Compact(); err != nil {
			t.Fatal(err)
		}
	}
	churn(t, db, m, rng, 2000)
	if err := db.Compact(); err != nil {
		t.Fatal(err)
	}
	for i, s := range snaps {
		checkModel(t, s, states[i])
	}
	checkModel(t, db, m)
	for _, s := range snaps {
		if err := s.Close(); err != nil {
			t.Fatal(err)
		}
	}
	if err := db.Put([]byte("last"), []byte("x"), kvs.NoSync); err != nil {
		t.Fatal(err)
	}
	m["last"] = "x"
	if err := db.Compact(); err != nil {
		t.Fatal(err)
	}
	checkModel(t, db, m)
	db.mu.Lock()
	defer db.mu.Unlock()
	var entries, deletions uint64
	for _, tables := range db.rs.levels {
		for _, tb := range tables {
			p := tb.r.Properties()
			entries += p.NumEntries
			deletions += p.NumDeletions
		}
	}
	if entries != uint64(len(m)) || deletions != 0 {
		t.Errorf("after the last Compact the tables hold %d entries and %d deletions, want %d and 0", entries, deletions, len(m))
	}
}

// tableEntries returns the entries and deletions the current tables hold.
func tableEntries(db *DB) (entries, deletions uint64) {
	db.mu.Lock()
	defer db.mu.Unlock()
	for _, tables := range db.rs.levels {
		for _, tb := range tables {
			p := tb.r.Properties()
			entries += p.NumEntries
			deletions += p.NumDeletions
		}
	}
	return entries, deletions
}

func TestCompactDropsOverwritesFlushedTogether(t *testing.T) {
	db := openTestDB(t, vfs.NewMem(), nil)
	defer db.Close()
	for i := 0; i < 50; i++ {
		if err := db.Put([]byte("k"), []byte(fmt.Sprint(i)), kvs.NoSync); err != nil {
			t.Fatal(err)
		}
		if err := db.Delete([]byte("gone"), kvs.NoSync); err != nil {
			t.Fatal(err)
		}
	}
	if err := db.Compact(); err != nil {
		t.Fatal(err)
	}
	checkModel(t, db, model{"k": "49"})
	if e, d := tableEntries(db); e != 1 || d != 0 {
		t.Errorf("after Compact the tables hold %d entries and %d deletions, want 1 and 0", e, d)
	}
}

// TestCloseDeletesObsoleteTablesReadersHold holds an iterator and a
// snapshot over tables that a Compact then replaces, and closes the engine
// with both still open: the replaced tables must be gone when Close
// returns (the readers' handles keep working until then), and closing the
// readers afterwards must delete nothing of a new Open's.
func TestCloseDeletesObsoleteTablesReadersHold(t *testing.T) {
	fs := vfs.NewMem()
	lo := smallOptions()
	lo.DisableAutomaticCompactions = true
	db := openTestDB(t, fs, lo)
	m := model{}
	churn(t, db, m, rand.New(rand.NewSource(3)), 3000)
	tablesOnDisk := func() []string {
		t.Helper()
		names, err := fs.List(testDir)
		if err != nil {
			t.Fatal(err)
		}
		var tables []string
		for _, name := range names {
			if _, kind := parseFileName(name); kind == fileTable {
				tables = append(tables, name)
			}
		}
		return tables
	}
	before := tablesOnDisk()
	if len(before) < 2 {
		t.Fatalf("churn left %d tables, want several", len(before))
	}
	snap, err := db.NewSnapshot()
	if err != nil {
		t.Fatal(err)
	}
	it, err := db.NewIter(nil)
	if err != nil {
		t.Fatal(err)
	}
	if err := db.Compact(); err != nil {
		t.Fatal(err)
	}
	// The held tables are still readable through the snapshot.
	checkModel(t, snap, m)
	if err := db.Close(); err != nil {
		t.Fatal(err)
	}
	after := tablesOnDisk()
	for _, name := range after {
		if slices.Contains(before, name) {
			t.Errorf("table %s, replaced by Compact, outlived Close", name)
		}
	}
	// A new Open must find no garbage, and the readers of the old engine,
	// closed now, must not delete the new engine's files.
	db = openTestDB(t, fs, lo)
	defer db.Close()
	if err := it.Close(); err != nil && !errors.Is(err, kvs.ErrClosed) {
		t.Fatal(err)
	}
	if err := snap.Close(); err != nil && !errors.Is(err, kvs.ErrClosed) {
		t.Fatal(err)
	}
	if got := tablesOnDisk(); !slices.Equal(got, after) {
		t.Errorf("tables after reopen and closing old readers: %v, want %v", got, after)
	}
	checkModel(t, db, m)
}

// TestCompactionPolicyIsRecorded opens a directory with the tiered policy
// and reopens it naming none, then leveled, then none again: an open that
// names no policy keeps the directory's, and the MANIFEST records it.
func TestCompactionPolicyIsRecorded(t *testing.T) {
	fs := vfs.NewMem()
	m := model{}
	rng := rand.New(rand.NewSource(4))
	for i, c := range []struct{ ask, want string }{
		{kvs.CompactionTiered, kvs.CompactionTiered},
		{"", kvs.CompactionTiered},
		{kvs.CompactionLeveled, kvs.CompactionLeveled},
		{"", kvs.CompactionLeveled},
	} {
		lo := smallOptions()
		lo.Policy = c.ask
		db := openTestDB(t, fs, lo)
		if got := db.Stats().Compaction; got != c.want {
			t.Fatalf("open %d asking %q: policy %q, want %q", i, c.ask, got, c.want)
		}
		checkModel(t, db, m)
		churn(t, db, m, rng, 1000)
		if err := db.Close(); err != nil {
			t.Fatal(err)
		}
		cur, err := readCurrent(fs, testDir)
		if err != nil {
			t.Fatal(err)
		}
		var recorded string
		if _, _, err := ReadManifest(fs, fs.PathJoin(testDir, manifestName(cur)), cur, func(_ int64, e *VersionEdit, _ *compaction.Version) {
			if e.Compaction != "" {
				recorded = e.Compaction
			}
		}); err != nil {
			t.Fatal(err)
		}
		if recorded != c.want {
			t.Fatalf("open %d: the MANIFEST records %q, want %q", i, recorded, c.want)
		}
	}
}

// TestFailedCompactionLeavesNoOutputBehind fails the creation of a
// compaction's third output table: the two finished before it must be
// closed and deleted, not left for the next Open.
func TestFailedCompactionLeavesNoOutputBehind(t *testing.T) {
	mem := vfs.NewMem()
	var armed atomic.Bool
	var creates atomic.Int64
	fs := vfs.Inject(mem, vfs.InjectorFunc(func(op vfs.Op, path string) error {
		if armed.Load() && op == vfs.OpCreate && strings.HasSuffix(path, tableSuffix) && creates.Add(1) == 3 {
			return &vfs.InjectedError{Op: op, Path: path, Err: vfs.ErrIO}
		}
		return nil
	}))
	lo := smallOptions()
	lo.DisableAutomaticCompactions = true
	lo.Compaction.TargetFileSize = 2 << 10
	db := openTestDB(t, fs, lo)
	defer db.Close()
	for i := 0; i < 3000; i++ {
		if err := db.Put(fmt.Appendf(nil, "key%05d", i), bytes.Repeat([]byte("v"), 50), kvs.NoSync); err != nil {
			t.Fatal(err)
		}
	}
	// Flush everything first, so that the creates counted are outputs.
	db.holdJobs()()
	for {
		db.mu.Lock()
		n := len(db.rs.imm)
		db.mu.Unlock()
		if n == 0 {
			break
		}
		time.Sleep(time.Millisecond)
	}
	db.commitMu.Lock()
	db.mu.Lock()
	err := db.rotateLocked(0)
	db.mu.Unlock()
	db.commitMu.Unlock()
	if err != nil {
		t.Fatal(err)
	}
	db.flushMu.Lock()
	_, err = db.flushOldest()
	db.flushMu.Unlock()
	if err != nil {
		t.Fatal(err)
	}
	armed.Store(true)
	if err := db.Compact(); !errors.Is(err, vfs.ErrIO) {
		t.Fatalf("Compact = %v, want the injected EIO", err)
	}
	db.mu.Lock()
	live := maps.Clone(db.tables)
	db.mu.Unlock()
	names, err := mem.List(testDir)
	if err != nil {
		t.Fatal(err)
	}
	for _, name := range names {
		if num, kind := parseFileName(name); kind == fileTable && live[num] == nil {
			t.Errorf("the failed compaction left %s behind", name)
		}
	}
}

// TestMissingManifestIsCorruptionOfCurrent deletes the MANIFEST that
// CURRENT names: Open must say so, not take the directory for a new one.
func TestMissingManifestIsCorruptionOfCurrent(t *testing.T) {
	fs := vfs.NewMem()
	db := openTestDB(t, fs, nil)
	if err := db.Put([]byte("k"), []byte("v"), kvs.Sync); err != nil {
		t.Fatal(err)
	}
	if err := db.Close(); err != nil {
		t.Fatal(err)
	}
	num, err := readCurrent(fs, testDir)
	if err != nil {
		t.Fatal(err)
	}
	if err := fs.Remove(fs.PathJoin(testDir, manifestName(num))); err != nil {
		t.Fatal(err)
	}
	_, err = OpenWith(testDir, &kvs.Options{FS: fs, Logger: kvs.DiscardLogger()}, smallOptions())
	if !errors.Is(err, kvs.ErrCorruption) || !strings.Contains(err.Error(), "CURRENT names "+manifestName(num)) {
		t.Fatalf("Open without the MANIFEST: %v", err)
	}
}

// TestCompactFinishesUnderConcurrentWrites runs Compact while a writer
// keeps filling memtables, so that the flush goroutine adds L0 tables
// while Compact flushes and merges: Compact must return, and every write
// must be readable afterwards.
func TestCompactFinishesUnderConcurrentWrites(t *testing.T) {
	fs := vfs.NewMem()
	db := openTestDB(t, fs, nil)
	defer db.Close()
	m := model{}
	churn(t, db, m, rand.New(rand.NewSource(5)), 3000)
	stop := make(chan struct{})
	written := make(chan model)
	go func() {
		wm := model{}
		for i := 0; ; i++ {
			select {
			case <-stop:
				written <- wm
				return
			default:
			}
			k, v := fmt.Sprintf("w%06d", i), fmt.Sprintf("value-%d-%s", i, strings.Repeat("x", 100))
			if err := db.Put([]byte(k), []byte(v), kvs.NoSync); err != nil {
				t.Error(err)
				written <- wm
				return
			}
			wm[k] = v
		}
	}()
	done := make(chan error)
	go func() { done <- db.Compact() }()
	select {
	case err := <-done:
		if err != nil {
			t.Fatal(err)
		}
	case <-time.After(2 * time.Minute):
		t.Fatal("Compact did not return in 2 minutes under a concurrent writer")
	}
	close(stop)
	maps.Copy(m, <-written)
	checkModel(t, db, m)
}
