package enginetest

import (
	"errors"
	"flag"
	"fmt"
	"math/rand"
	"os"
	"strconv"
	"testing"
	"time"

	"github.com/kvs-lab/kvs"
	"github.com/kvs-lab/kvs/internal/vfs"
)

// seedFlag replays one seed in every randomized subtest. SeedEnv does the
// same for runs where passing a test flag is awkward (go test ./... with
// packages that do not import enginetest).
var seedFlag = flag.Int64("enginetest.seed", 0, "replay this seed in every randomized enginetest subtest (0: pick seeds at random)")

// SeedEnv is the environment variable that, like -enginetest.seed, replays
// one seed.
const SeedEnv = "KVS_ENGINETEST_SEED"

// Config says which engine the suite runs and how to configure it.
type Config struct {
	// Engine is the registered engine name, opened with kvs.Open.
	Engine string
	// Options returns fresh options for each Open. The suite overwrites FS
	// and Logger (kvs.DiscardLogger) and, in the tests of those options,
	// MaxValueSize, DisableGroupCommit and ErrorIfNotExist. Nil means
	// default options.
	Options func() *kvs.Options
	// CrashOptions returns the options for the crash, I/O-error and kill
	// tests. They should make the engine change its on-disk layout often
	// (small segments or memtables) so that crashes land in rotations,
	// merges and flushes. Nil means Options.
	CrashOptions func() *kvs.Options

	// CrashRounds is the number of randomized crash-recovery rounds (a
	// round is a sequence of operations ending in a crash, a recovery and
	// a check), rounded up to whole seeded runs of ten rounds. Default 200
	// with -short, 1000 without.
	CrashRounds int
	// FaultPoints caps how many injection points (operation index and
	// error rule) the I/O error test tries; beyond it a seeded sample is
	// taken. Default 400 with -short, 4000 without, a third of that under
	// the race detector.
	FaultPoints int
	// KillRounds is the number of SIGKILL rounds of RunKillTest. Default
	// 5 with -short, 12 without.
	KillRounds int
}

func (c Config) withDefaults() Config {
	if c.Options == nil {
		c.Options = func() *kvs.Options { return &kvs.Options{} }
	}
	if c.CrashOptions == nil {
		c.CrashOptions = c.Options
	}
	if c.CrashRounds <= 0 {
		c.CrashRounds = 1000
		if testing.Short() {
			c.CrashRounds = 200
		}
	}
	if c.FaultPoints <= 0 {
		c.FaultPoints = 4000
		if testing.Short() {
			c.FaultPoints = 400
		}
		if raceEnabled {
			c.FaultPoints /= 3
		}
	}
	if c.KillRounds <= 0 {
		c.KillRounds = 12
		if testing.Short() {
			c.KillRounds = 5
		}
	}
	return c
}

// options returns fresh options from f for an engine on fs.
func options(f func() *kvs.Options, fs vfs.FS) *kvs.Options {
	o := f()
	if o == nil {
		o = &kvs.Options{}
	} else {
		o = o.Clone()
	}
	o.FS = fs
	o.Logger = kvs.DiscardLogger()
	return o
}

// Run runs every subtest of the conformance suite against c.Engine. Call it
// from a test in the engine's package:
//
//	func TestEngineConformance(t *testing.T) {
//		enginetest.Run(t, enginetest.Config{Engine: "bitcask"})
//	}
//
// The subtests are independent; each opens its own engines on its own
// in-memory file system (or temporary directory).
func Run(t *testing.T, c Config) {
	c = c.withDefaults()
	if c.Engine == "" {
		t.Fatal("enginetest: Config.Engine is empty")
	}
	t.Run("PointOps", func(t *testing.T) { t.Parallel(); testPointOps(t, c) })
	t.Run("Limits", func(t *testing.T) { t.Parallel(); testLimits(t, c) })
	t.Run("Batches", func(t *testing.T) { t.Parallel(); testBatches(t, c) })
	t.Run("Iterators", func(t *testing.T) { t.Parallel(); testIterators(t, c) })
	t.Run("Snapshots", func(t *testing.T) { t.Parallel(); testSnapshots(t, c) })
	t.Run("Reopen", func(t *testing.T) { t.Parallel(); testReopen(t, c) })
	t.Run("CrashRecovery", func(t *testing.T) { t.Parallel(); testCrashRecovery(t, c) })
	t.Run("IOErrors", func(t *testing.T) { t.Parallel(); testIOErrors(t, c) })
	t.Run("Concurrency", func(t *testing.T) { t.Parallel(); testConcurrency(t, c) })
	t.Run("GroupCommit", func(t *testing.T) { t.Parallel(); testGroupCommit(t, c) })
	t.Run("OpenClose", func(t *testing.T) { t.Parallel(); testOpenClose(t, c) })
}

// replaySeed returns the seed given with -enginetest.seed or SeedEnv, if
// any.
func replaySeed(t testing.TB) (int64, bool) {
	t.Helper()
	if *seedFlag != 0 {
		return *seedFlag, true
	}
	if s := os.Getenv(SeedEnv); s != "" {
		n, err := strconv.ParseInt(s, 10, 64)
		if err != nil {
			t.Fatalf("enginetest: %s=%q is not an integer", SeedEnv, s)
		}
		return n, true
	}
	return 0, false
}

// seeds returns the seeds a randomized test runs: n fresh ones, or the one
// being replayed.
func seeds(t testing.TB, n int) []int64 {
	t.Helper()
	if s, ok := replaySeed(t); ok {
		return []int64{s}
	}
	base := time.Now().UnixNano()
	out := make([]int64, n)
	for i := range out {
		// Keep seeds positive and distinct; 0 means "no replay".
		out[i] = (base+int64(i)*7919)&(1<<62-1) | 1
	}
	return out
}

// seeded runs f with a rand seeded by a fresh seed (or the replayed one),
// logging the seed so that a failure can be replayed.
func seeded(t testing.TB, f func(t testing.TB, seed int64, rng *rand.Rand)) {
	t.Helper()
	seed := seeds(t, 1)[0]
	t.Logf("seed %d (replay with -enginetest.seed=%d)", seed, seed)
	ok := false
	defer func() {
		if !ok || t.Failed() {
			t.Logf("failed with seed %d: replay with go test -run '%s' -enginetest.seed=%d", seed, runPattern(t.Name()), seed)
		}
	}()
	f(t, seed, rand.New(rand.NewSource(seed)))
	ok = true
}

// engineDir is where the suite puts an engine on an in-memory FS.
const engineDir = "/db"

// newMem returns an empty in-memory file system.
func newMem() *vfs.MemFS { return vfs.NewMem() }

// openEngine opens c.Engine on fs in dir with options from f. It fails t on
// error.
func openEngine(t testing.TB, c Config, f func() *kvs.Options, fs vfs.FS, dir string) kvs.Engine {
	t.Helper()
	e, err := kvs.Open(c.Engine, dir, options(f, fs))
	if err != nil {
		t.Fatalf("open %s in %s: %v", c.Engine, dir, err)
	}
	return e
}

// mustClose closes e, failing t on error.
func mustClose(t testing.TB, e kvs.Engine) {
	t.Helper()
	if err := e.Close(); err != nil {
		t.Fatalf("close: %v", err)
	}
}

// openMem opens c.Engine (with c.Options) on a fresh MemFS and closes it
// when the test ends.
func openMem(t testing.TB, c Config) (kvs.Engine, *vfs.MemFS) {
	t.Helper()
	fs := newMem()
	e := openEngine(t, c, c.Options, fs, engineDir)
	t.Cleanup(func() { e.Close() })
	return e, fs
}

func mustPut(t testing.TB, e kvs.Engine, key, value string, o kvs.WriteOptions) {
	t.Helper()
	if err := e.Put([]byte(key), []byte(value), o); err != nil {
		t.Fatalf("put %s: %v", fmtKey(key), err)
	}
}

func mustDelete(t testing.TB, e kvs.Engine, key string, o kvs.WriteOptions) {
	t.Helper()
	if err := e.Delete([]byte(key), o); err != nil {
		t.Fatalf("delete %s: %v", fmtKey(key), err)
	}
}

func mustWrite(t testing.TB, e kvs.Engine, b *kvs.Batch, o kvs.WriteOptions) {
	t.Helper()
	if err := e.Write(b, o); err != nil {
		t.Fatalf("write batch of %d: %v", b.Count(), err)
	}
}

// checkGet checks that r holds value under key (or nothing, when ok is
// false).
func checkGet(t testing.TB, r kvs.Reader, key, value string, ok bool) {
	t.Helper()
	got, err := r.Get([]byte(key))
	switch {
	case !ok && errors.Is(err, kvs.ErrNotFound):
	case !ok && err == nil:
		t.Errorf("get %s = %s, want not found", fmtKey(key), fmtVal(string(got)))
	case !ok:
		t.Errorf("get %s: error %v, want one matching kvs.ErrNotFound", fmtKey(key), err)
	case err != nil:
		t.Errorf("get %s: %v, want %s", fmtKey(key), err, fmtVal(value))
	case string(got) != value:
		t.Errorf("get %s = %s, want %s", fmtKey(key), fmtVal(string(got)), fmtVal(value))
	}
}

// fmtKey prints a key readably: quoted, binary bytes escaped, long keys
// shortened.
func fmtKey(k string) string {
	if len(k) > 40 {
		return fmt.Sprintf("%q...(%d bytes)", k[:32], len(k))
	}
	return fmt.Sprintf("%q", k)
}

// fmtVal prints a value shortened to its first bytes and length.
func fmtVal(v string) string {
	if len(v) > 24 {
		return fmt.Sprintf("%q...(%d bytes)", v[:24], len(v))
	}
	return fmt.Sprintf("%q", v)
}
