package bench

import (
	"math/rand/v2"
	"path/filepath"
	"strings"
	"sync/atomic"
	"testing"
	"time"

	"github.com/kvs-lab/kvs"
)

// TestEveryWorkloadRunsOnEveryEngine runs each workload on each kvs
// engine with a small key space and checks that the result accounts for
// every operation asked for and for the keys left live.
func TestEveryWorkloadRunsOnEveryEngine(t *testing.T) {
	const keys, ops = 3000, 2000
	for _, db := range []string{"bitcask", "lsm"} {
		for _, w := range Workloads {
			t.Run(db+"/"+w.Name, func(t *testing.T) {
				t.Parallel()
				// NB: no settling: the parallel runs keep the process
				// writing (TestSettleWaitsForCompactions covers it).
				res, err := Run(RunConfig{DB: db, Workload: w, Keys: keys, Ops: ops, Concurrency: 2, Seed: 7, Settle: -1,
					Dir: filepath.Join(t.TempDir(), "db"), KVS: &kvs.Options{LSM: kvs.LSMOptions{MemtableBytes: 64 << 10}}})
				if err != nil {
					t.Fatal(err)
				}
				if res.Ops != ops || res.Elapsed <= 0 || res.OpsPerSec <= 0 || res.Reopen <= 0 {
					t.Fatalf("result %+v", res)
				}
				all := res.Latency["all"]
				var calls int64
				for name, l := range res.Latency {
					if name != "all" {
						calls += l.Count
					}
				}
				if all == nil || all.Count != calls || all.P50 <= 0 || all.P50 > all.P99 || all.P99 > all.Max {
					t.Fatalf("latency %+v, %d calls", all, calls)
				}
				// Every operation is one call, except readseq's, whose
				// calls are scans of 1000 keys.
				if want := int64(ops); w.Name == "readseq" {
					if want = (ops + 999) / 1000; calls < want || calls > want+1 {
						t.Fatalf("readseq made %d scans for %d keys", calls, ops)
					}
				} else if calls != want {
					t.Fatalf("%d calls, want %d", calls, want)
				}
				var live int64
				switch {
				case !w.Preload:
					live = ops
				case w.Name == "deleterandom":
					live = keys - ops
				default:
					inserts := int64(0)
					if l := res.Latency["insert"]; l != nil {
						inserts = l.Count
					}
					live = keys + inserts
				}
				if res.LiveKeys != live || res.LiveBytes != live*int64(res.KeySize+res.ValueSize) {
					t.Fatalf("live keys %d (%d bytes), want %d", res.LiveKeys, res.LiveBytes, live)
				}
				if res.BytesOnDisk <= 0 || res.SpaceAmp <= 0 {
					t.Fatalf("bytes on disk %d, space amp %.2f", res.BytesOnDisk, res.SpaceAmp)
				}
				if writes := slicesHas(w.Mix, OpUpdate) || slicesHas(w.Mix, OpInsert) || slicesHas(w.Mix, OpRMW) || slicesHas(w.Mix, OpDelete); writes {
					if res.UserBytesWritten <= 0 || res.EngineWriteAmp < 1 {
						t.Fatalf("a writing workload: %d user bytes, engine write amp %.2f", res.UserBytesWritten, res.EngineWriteAmp)
					}
				}
				if len(res.Samples) < 2 {
					t.Fatalf("%d samples", len(res.Samples))
				}
			})
		}
	}
}

// lyingDB returns values one byte short for the keys ending in 7.
type lyingDB struct{ DB }

func (d lyingDB) Get(key []byte) ([]byte, error) {
	v, err := d.DB.Get(key)
	if err == nil && key[len(key)-1] == '7' && len(v) > 0 {
		v = v[:len(v)-1]
	}
	return v, err
}

// forgetfulOpens counts the opens of test-forgetful.
var forgetfulOpens atomic.Int32

// forgetfulDB finds nothing after a reopen.
type forgetfulDB struct{ DB }

func (forgetfulDB) Get([]byte) ([]byte, error) { return nil, kvs.ErrNotFound }

func TestWrongAnswersFailTheRun(t *testing.T) {
	registerForTest("test-lying", func(dir string, o OpenOptions) (DB, error) {
		db, err := Open("bitcask", dir, o)
		return lyingDB{db}, err
	})
	forgetfulOpens.Store(0)
	registerForTest("test-forgetful", func(dir string, o OpenOptions) (DB, error) {
		db, err := Open("bitcask", dir, o)
		if forgetfulOpens.Add(1) > 2 { // load, run, then the reopen
			return forgetfulDB{db}, err
		}
		return db, err
	})
	readrandom, _ := FindWorkload("readrandom")
	for db, want := range map[string]string{"test-lying": "byte value", "test-forgetful": "after reopen"} {
		_, err := Run(RunConfig{DB: db, Workload: readrandom, Keys: 1000, Dir: filepath.Join(t.TempDir(), "db")})
		if err == nil || !strings.Contains(err.Error(), want) {
			t.Errorf("%s: Run = %v, want an error about %q", db, err, want)
		}
	}
	missing, _ := FindWorkload("readmissing")
	registerForTest("test-inventive", func(dir string, o OpenOptions) (DB, error) {
		db, err := Open("bitcask", dir, o)
		return inventiveDB{db}, err
	})
	if _, err := Run(RunConfig{DB: "test-inventive", Workload: missing, Keys: 100, Dir: filepath.Join(t.TempDir(), "db")}); err == nil {
		t.Error("a DB that finds missing keys passed readmissing")
	}
}

// inventiveDB finds every key.
type inventiveDB struct{ DB }

func (inventiveDB) Get([]byte) ([]byte, error) { return make([]byte, 100), nil }

func TestRunRejectsBadConfig(t *testing.T) {
	w, _ := FindWorkload("readrandom")
	del, _ := FindWorkload("deleterandom")
	dir := filepath.Join(t.TempDir(), "db")
	for name, c := range map[string]RunConfig{
		"no keys":      {DB: "bitcask", Workload: w, Dir: dir},
		"short keys":   {DB: "bitcask", Workload: w, Keys: 10, KeySize: 4, Dir: dir},
		"no dir":       {DB: "bitcask", Workload: w, Keys: 10},
		"unknown db":   {DB: "rocks", Workload: w, Keys: 10, Dir: dir},
		"over-delete":  {DB: "bitcask", Workload: del, Keys: 10, Ops: 11, Dir: dir},
		"bad parallel": {DB: "bitcask", Workload: w, Keys: 10, Concurrency: -1, Dir: dir},
	} {
		if _, err := Run(c); err == nil {
			t.Errorf("%s: Run accepted %+v", name, c)
		}
	}
	if _, err := ParseWorkloads("ycsb-a,ycsb-z"); err == nil || !strings.Contains(err.Error(), "ycsb-z") {
		t.Errorf("ParseWorkloads of an unknown name: %v", err)
	}
	if ws, err := ParseWorkloads("all"); err != nil || len(ws) != len(Workloads) {
		t.Errorf("ParseWorkloads(all) = %d workloads, %v", len(ws), err)
	}
}

// TestZipfianSkew draws from a million keys and checks the shape YCSB's
// generator promises: rank 0 the most frequent, frequencies falling as
// 1/rank^0.99 (rank 1 about half as frequent as rank 0, rank 9 a tenth),
// and scatter spreading the hot keys over the key space.
func TestZipfianSkew(t *testing.T) {
	const n, draws = 1_000_000, 2_000_000
	z := newZipfian(n, zipfTheta)
	rng := rand.New(rand.NewPCG(1, 2))
	counts := make([]int, n)
	for range draws {
		counts[z.next(rng)]++
	}
	ratio := func(r int) float64 { return float64(counts[r]) / float64(counts[0]) }
	if r := ratio(1); r < 0.45 || r > 0.56 {
		t.Errorf("rank 1 / rank 0 = %.3f, want about 0.50", r)
	}
	if r := ratio(9); r < 0.08 || r > 0.12 {
		t.Errorf("rank 9 / rank 0 = %.3f, want about 0.10", r)
	}
	top := 0
	for r := 0; r < n/1000; r++ {
		top += counts[r]
	}
	t.Logf("the hottest 0.1%% of %d keys take %.1f%% of the draws", n, 100*float64(top)/draws)
	if frac := float64(top) / draws; frac < 0.3 || frac > 0.7 {
		t.Errorf("the hottest 0.1%% take %.2f of the draws", frac)
	}
	if a, b := scatter(0, n), scatter(1, n); a == b || a < 0 || a >= n || b < 0 || b >= n {
		t.Errorf("scatter(0), scatter(1) = %d, %d", a, b)
	}
}

func TestValuePoolDoesNotCompress(t *testing.T) {
	p := newValuePool(1, 100)
	v := p.get(12345)
	if len(v) != 100 || cap(v) != 100 {
		t.Fatalf("value of len %d cap %d", len(v), cap(v))
	}
	seen := map[byte]bool{}
	for _, b := range p.buf[:4096] {
		seen[b] = true
	}
	if len(seen) < 250 {
		t.Fatalf("the value pool uses %d distinct byte values, want random bytes", len(seen))
	}
}

func TestKeysSortByIndex(t *testing.T) {
	r := &runner{cfg: RunConfig{KeySize: 20}}
	a, b := r.key(nil, 99), r.key(nil, 100)
	m := r.missingKey(nil, 99)
	if len(a) != 20 || string(a) >= string(b) || string(m) <= string(a) || string(m) == string(b) {
		t.Fatalf("key(99) %q, key(100) %q, missing %q", a, b, m)
	}
}

// TestMaxTimeEndsTheRun asks for far more operations than fit in 300ms.
func TestMaxTimeEndsTheRun(t *testing.T) {
	w, _ := FindWorkload("readrandom")
	res, err := Run(RunConfig{DB: "lsm", Workload: w, Keys: 2000, Ops: 1 << 30, MaxTime: 300 * time.Millisecond,
		Concurrency: 2, Dir: filepath.Join(t.TempDir(), "db")})
	if err != nil {
		t.Fatal(err)
	}
	if res.Ops <= 0 || res.Ops >= 1<<30 || res.Latency["all"].Count != int64(res.Ops) || res.Elapsed > 5*time.Second {
		t.Fatalf("ops %d, latency count %d, elapsed %s", res.Ops, res.Latency["all"].Count, res.Elapsed)
	}
}

// slowInsertDB makes every Put of a key past the loaded ones slow, so
// that with several workers a read of "the newest key" races its insert.
type slowInsertDB struct{ DB }

func (d slowInsertDB) Put(key, value []byte) error {
	if key[0] != '0' || string(key) >= "0000000000001000" {
		time.Sleep(200 * time.Microsecond)
	}
	return d.DB.Put(key, value)
}

// TestLatestReadsOnlyFinishedInserts runs ycsb-d with 4 workers against
// slow inserts: a read must never pick a key whose insert has not
// returned (it would count as a wrong answer).
func TestLatestReadsOnlyFinishedInserts(t *testing.T) {
	registerForTest("test-slowinsert", func(dir string, o OpenOptions) (DB, error) {
		db, err := Open("bitcask", dir, o)
		return slowInsertDB{db}, err
	})
	w, _ := FindWorkload("ycsb-d")
	if _, err := Run(RunConfig{DB: "test-slowinsert", Workload: w, Keys: 1000, Ops: 4000, Concurrency: 4,
		Dir: filepath.Join(t.TempDir(), "db")}); err != nil {
		t.Fatal(err)
	}
}

// registerForTest registers a test DB once, so that -count runs the
// tests again without registering a name twice.
func registerForTest(name string, open OpenFunc) {
	registryMu.Lock()
	_, dup := registry[name]
	registryMu.Unlock()
	if !dup {
		Register(name, open)
	}
}

func TestCompactionDebt(t *testing.T) {
	levels := []kvs.LevelStats{{Level: 0, Bytes: 40, Score: 1.25}, {Level: 1, Bytes: 300, Score: 1.5}, {Level: 2, Bytes: 900, Score: 0.9}}
	if got := compactionDebt(levels); got != 40+100 {
		t.Fatalf("debt %d, want 140 (all of L0, L1's 100 bytes over its 200 target)", got)
	}
	if got := compactionDebt(levels[2:]); got != 0 {
		t.Fatalf("debt %d with every score below 1", got)
	}
}

// TestSettleWaitsForCompactions fills an lsm with small memtables, so
// that flushes and compactions run on after the last put: with Settle the
// write amplification counts them, and the engine's own count agrees.
func TestSettleWaitsForCompactions(t *testing.T) {
	w, _ := FindWorkload("fillrandom")
	kv := &kvs.Options{LSM: kvs.LSMOptions{MemtableBytes: 256 << 10}}
	res, err := Run(RunConfig{DB: "lsm", Workload: w, Keys: 100_000, KVS: kv, Settle: time.Minute, Dir: filepath.Join(t.TempDir(), "db")})
	if err != nil {
		t.Fatal(err)
	}
	t.Logf("write amp %.2f (engine %.2f), settled in %s", res.WriteAmp, res.EngineWriteAmp, res.Settle)
	if res.Settle <= 0 || res.WriteAmp < 2 || res.EngineWriteAmp < 2 {
		t.Fatalf("settle %s, write amp %.2f, engine %.2f", res.Settle, res.WriteAmp, res.EngineWriteAmp)
	}
	if d := res.WriteAmp - res.EngineWriteAmp; d > 0.2*res.EngineWriteAmp || d < -0.2*res.EngineWriteAmp {
		t.Fatalf("write amp from wchar %.2f and from the engine %.2f disagree", res.WriteAmp, res.EngineWriteAmp)
	}
}
