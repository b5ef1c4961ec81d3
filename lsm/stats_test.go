package lsm

import (
	"bytes"
	"fmt"
	"math/rand"
	"testing"
	"time"

	"github.com/kvs-lab/kvs"
	"github.com/kvs-lab/kvs/internal/vfs"
)

// dirBytes sums the sizes of the files in dir, as du would.
func dirBytes(t testing.TB, fs vfs.FS, dir string) int64 {
	t.Helper()
	names, err := fs.List(dir)
	if err != nil {
		t.Fatal(err)
	}
	var n int64
	for _, name := range names {
		st, err := fs.Stat(fs.PathJoin(dir, name))
		if err != nil {
			t.Fatal(err)
		}
		n += st.Size()
	}
	return n
}

// fixedKey returns the 16-byte key of i.
func fixedKey(i int) []byte { return []byte(fmt.Sprintf("key-%012d", i)) }

func TestStatsAfterFullCompactCountLiveDataExactly(t *testing.T) {
	const n, valueSize = 3000, 100
	fs := vfs.NewMem()
	db := openTestDB(t, fs, nil)
	defer db.Close()
	rng := rand.New(rand.NewSource(1))
	value := func() []byte { return bytes.Repeat([]byte{byte('a' + rng.Intn(26))}, valueSize) }
	// Every key three times, then 500 keys beyond n written and deleted:
	// old versions and tombstones the full compaction must drop.
	for round := 0; round < 3; round++ {
		for _, i := range rng.Perm(n) {
			if err := db.Put(fixedKey(i), value(), kvs.NoSync); err != nil {
				t.Fatal(err)
			}
		}
	}
	for i := n; i < n+500; i++ {
		if err := db.Put(fixedKey(i), value(), kvs.NoSync); err != nil {
			t.Fatal(err)
		}
		if err := db.Delete(fixedKey(i), kvs.NoSync); err != nil {
			t.Fatal(err)
		}
	}
	before := db.Stats()
	if before.LiveKeys < n {
		t.Errorf("before compaction LiveKeys = %d, below the %d live keys (the estimate only overcounts)", before.LiveKeys, n)
	}
	if err := db.Compact(); err != nil {
		t.Fatal(err)
	}
	// NB: holding the jobs keeps background flushes and compactions from
	// changing the directory between Stats and dirBytes.
	release := db.holdJobs()
	st := db.Stats()
	onDisk := dirBytes(t, fs, testDir)
	release()
	if st.LiveKeys != n || st.LiveBytes != n*(16+valueSize) {
		t.Errorf("after Compact LiveKeys = %d, LiveBytes = %d; want %d and %d", st.LiveKeys, st.LiveBytes, n, n*(16+valueSize))
	}
	if st.BytesOnDisk != onDisk {
		t.Errorf("BytesOnDisk = %d, the directory holds %d", st.BytesOnDisk, onDisk)
	}
	// A compaction syncs at least its output table, the directory and
	// the MANIFEST record.
	if st.Syncs < before.Syncs+3 {
		t.Errorf("Syncs went from %d to %d over a Compact", before.Syncs, st.Syncs)
	}
	if st.IndexKind != "lsm" || st.IndexBytes <= 0 {
		t.Errorf("IndexKind %q, IndexBytes %d", st.IndexKind, st.IndexBytes)
	}
	t.Logf("after Compact: %d live keys, %d live bytes, %d bytes on disk (space amplification %.3f), index memory %d",
		st.LiveKeys, st.LiveBytes, st.BytesOnDisk, st.SpaceAmp(), st.IndexBytes)
}

// TestChurnStaysBounded is the "no unbounded growth": random
// overwrites of a fixed key space for a few seconds (longer without
// -short) through small memtables. L0 never holds more than L0StopTrigger
// tables, the memtables never more than (1 + MaxImmutableMemtables)
// arenas, and after a full Compact the directory is at most 1.3 times the
// live keys and values.
//
// NB: compression is off. LiveBytes counts uncompressed key and value
// bytes, so with snappy (and these repetitive values) the ratio would
// measure the compressor, not the tree's overhead: internal key trailers,
// block framing, index, bloom filter, MANIFEST and WAL.
func TestChurnStaysBounded(t *testing.T) {
	const keys, valueSize = 20000, 100
	runFor := 10 * time.Second
	if testing.Short() {
		runFor = 2 * time.Second
	}
	fs := vfs.NewMem()
	opts := &kvs.Options{FS: fs, Logger: kvs.DiscardLogger(), LSM: kvs.LSMOptions{
		MemtableBytes:       64 << 10,
		L0CompactionTrigger: 2,
		L0SlowdownTrigger:   4,
		L0StopTrigger:       6,
		BaseLevelBytes:      256 << 10,
		TargetFileSize:      64 << 10,
		Compression:         kvs.CompressionNone,
	}}
	e, err := kvs.Open(engineName, testDir, opts)
	if err != nil {
		t.Fatal(err)
	}
	db := e.(*DB)
	defer db.Close()
	maxMemBytes := (1 + db.lo.MaxImmutableMemtables) * db.lo.MemtableBytes

	rng := rand.New(rand.NewSource(3))
	value := make([]byte, valueSize)
	var writes, maxL0, maxMem int
	for start := time.Now(); time.Since(start) < runFor; writes++ {
		rng.Read(value)
		if err := db.Put(fixedKey(rng.Intn(keys)), value, kvs.NoSync); err != nil {
			t.Fatal(err)
		}
		if writes%200 != 0 {
			continue
		}
		db.mu.Lock()
		l0, mem := len(db.rs.levels[0]), 0
		for _, m := range db.rs.mems() {
			mem += m.Capacity()
		}
		db.mu.Unlock()
		maxL0, maxMem = max(maxL0, l0), max(maxMem, mem)
		if l0 > db.lo.L0StopTrigger {
			t.Fatalf("after %d writes L0 holds %d tables, over L0StopTrigger %d", writes, l0, db.lo.L0StopTrigger)
		}
		if mem > maxMemBytes {
			t.Fatalf("after %d writes the memtables take %d bytes, over %d", writes, mem, maxMemBytes)
		}
	}
	if err := db.Compact(); err != nil {
		t.Fatal(err)
	}
	release := db.holdJobs() // see TestStatsAfterFullCompactCountLiveDataExactly
	st := db.Stats()
	onDisk := dirBytes(t, fs, testDir)
	release()
	t.Logf("%d writes of %d keys (%d B values) in %s: at most %d L0 tables and %d B of memtables; "+
		"after Compact %d live keys, %d live bytes, %d bytes on disk: space amplification %.3f; write amplification %.2f, stalled %s",
		writes, keys, valueSize, runFor, maxL0, maxMem, st.LiveKeys, st.LiveBytes, st.BytesOnDisk, st.SpaceAmp(), st.WriteAmp(), st.StallTime)
	if names, err := fs.List(testDir); err == nil {
		for _, name := range names {
			// The tables are the live data; log what else is there.
			if _, kind := parseFileName(name); kind == fileTable {
				continue
			}
			if st, err := fs.Stat(fs.PathJoin(testDir, name)); err == nil {
				t.Logf("%s: %d bytes", name, st.Size())
			}
		}
	}
	if st.BytesOnDisk != onDisk {
		t.Errorf("BytesOnDisk = %d, the directory holds %d", st.BytesOnDisk, onDisk)
	}
	if amp := st.SpaceAmp(); amp > 1.3 || amp < 1 {
		t.Errorf("after Compact: %d bytes on disk for %d live bytes, space amplification %.3f, want at most 1.3",
			st.BytesOnDisk, st.LiveBytes, amp)
	}

	// The churn rewrote the MANIFEST many times; the last one must
	// recover the same tree.
	if err := db.Close(); err != nil {
		t.Fatal(err)
	}
	e, err = kvs.Open(engineName, testDir, opts)
	if err != nil {
		t.Fatal(err)
	}
	defer e.Close()
	if got := e.Stats(); got.LiveKeys != st.LiveKeys || got.LiveBytes != st.LiveBytes {
		t.Fatalf("after reopening: %d live keys and %d live bytes, before %d and %d", got.LiveKeys, got.LiveBytes, st.LiveKeys, st.LiveBytes)
	}
}

// TestManifestRewriteSurvivesCrash churns until the MANIFEST has been
// rewritten (logEdit), crashes, and checks that the new MANIFEST recovers
// every write, and that the old one is gone.
func TestManifestRewriteSurvivesCrash(t *testing.T) {
	fs := vfs.NewMem()
	db := openTestDB(t, fs, nil)
	defer db.Close()
	m := model{}
	rng := rand.New(rand.NewSource(9))
	db.manifestMu.Lock()
	first := db.manifest.num
	db.manifestMu.Unlock()
	for rotated, i := false, 0; !rotated; i++ {
		if i == 100 {
			t.Fatal("the MANIFEST was not rewritten after 200000 writes")
		}
		churn(t, db, m, rng, 2000)
		db.manifestMu.Lock()
		rotated = db.manifest.num != first
		db.manifestMu.Unlock()
	}
	// A synced write makes every earlier write durable: older WALs were
	// synced whole when they were rotated away.
	if err := db.Put([]byte("last"), []byte("write"), kvs.Sync); err != nil {
		t.Fatal(err)
	}
	m["last"] = "write"
	crashed := fs.CrashClone()
	if _, err := fs.Stat(fs.PathJoin(testDir, manifestName(first))); err == nil {
		t.Errorf("%s survived its rewrite", manifestName(first))
	}
	db2, err := OpenWith(testDir, &kvs.Options{FS: crashed, Logger: kvs.DiscardLogger()}, smallOptions())
	if err != nil {
		t.Fatal(err)
	}
	defer db2.Close()
	checkModel(t, db2, m)
}

// TestTieredMergesRunsInL0AndKeepsData runs the size-tiered policy under
// churn: its merges keep L0 to a few runs, write nothing below L0, and
// lose nothing, across a reopen too.
func TestTieredMergesRunsInL0AndKeepsData(t *testing.T) {
	fs := vfs.NewMem()
	opts := &kvs.Options{FS: fs, Logger: kvs.DiscardLogger(), LSM: smallLSMOptions()}
	opts.LSM.Compaction = kvs.CompactionTiered
	opts.LSM.L0CompactionTrigger = 4 // merges of 4 similar runs; past 3 runs, of the newest 4
	e, err := kvs.Open(engineName, testDir, opts)
	if err != nil {
		t.Fatal(err)
	}
	db := e.(*DB)
	m := model{}
	churn(t, db, m, rand.New(rand.NewSource(11)), 20000)
	checkModel(t, db, m)
	st := db.Stats()
	if st.Compactions == 0 {
		t.Fatal("no tiered merge ran")
	}
	if st.Levels[0].Files > db.lo.L0StopTrigger {
		t.Errorf("L0 holds %d runs, over L0StopTrigger %d", st.Levels[0].Files, db.lo.L0StopTrigger)
	}
	for _, l := range st.Levels[1:] {
		if l.Files != 0 {
			t.Errorf("tiered compaction wrote to L%d: %+v", l.Level, l)
		}
	}
	db.mu.Lock()
	v := db.rs.version()
	db.mu.Unlock()
	if err := v.Check(); err != nil {
		t.Fatal(err)
	}
	t.Logf("tiered: %d merges, L0 %d runs, %d bytes on disk, write amplification %.2f",
		st.Compactions, st.Levels[0].Files, st.BytesOnDisk, st.WriteAmp())
	if err := db.Close(); err != nil {
		t.Fatal(err)
	}
	e, err = kvs.Open(engineName, testDir, opts)
	if err != nil {
		t.Fatal(err)
	}
	defer e.Close()
	checkModel(t, e, m)
	if err := e.Compact(); err != nil {
		t.Fatal(err)
	}
	checkModel(t, e, m)
}
