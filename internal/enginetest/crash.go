package enginetest

import (
	"fmt"
	"io"
	"maps"
	"math/rand"
	"strings"
	"sync"
	"testing"

	"github.com/kvs-lab/kvs"
	"github.com/kvs-lab/kvs/internal/vfs"
)

// roundsPerRun is how many crash rounds one seeded run chains on one
// directory: each round recovers from the previous round's crash.
const roundsPerRun = 10

// testCrashRecovery runs the randomized model-based crash test:
// CrashRounds rounds split into seeded runs of roundsPerRun rounds, each
// run its own parallel subtest named after its seed.
func testCrashRecovery(t *testing.T, c Config) {
	runs := (c.CrashRounds + roundsPerRun - 1) / roundsPerRun
	for _, seed := range seeds(t, runs) {
		t.Run(fmt.Sprintf("seed=%d", seed), func(t *testing.T) {
			t.Parallel()
			t.Logf("seed %d (replay with -enginetest.seed=%d)", seed, seed)
			r := newCrasher(t, c, seed)
			defer func() {
				if t.Failed() {
					t.Logf("replay: go test -run '%s' -enginetest.seed=%d\nlast operations of round %d:\n  %s",
						runPattern(t.Name()), seed, r.round, strings.Join(r.trace, "\n  "))
				}
			}()
			for r.round = 0; r.round < roundsPerRun; r.round++ {
				r.playRound()
			}
			t.Logf("%d rounds: %v", roundsPerRun, r.stats)
		})
	}
}

// crashInjector takes a crash clone of mem when the target-th file system
// operation after arming starts: a crash in the middle of an engine call.
type crashInjector struct {
	mem *vfs.MemFS
	mu  sync.Mutex
	// target is the operation to crash at; 0 when disarmed.
	target, count int
	random        *rand.Rand // nil: CrashClone, else CrashCloneRandom
	clone         *vfs.MemFS
	where         string   // the operation crashed at, for messages
	ops           []string // operations since arming, for messages
}

func (ci *crashInjector) MaybeError(op vfs.Op, path string) error {
	ci.mu.Lock()
	defer ci.mu.Unlock()
	if ci.target == 0 {
		return nil
	}
	ci.count++
	ci.ops = append(ci.ops, fmt.Sprintf("%s %s", op, path))
	if ci.count == ci.target {
		if ci.random != nil {
			ci.clone = ci.mem.CrashCloneRandom(ci.random)
		} else {
			ci.clone = ci.mem.CrashClone()
		}
		ops := ci.ops[:len(ci.ops)-1]
		if len(ops) > 40 {
			ops = append([]string{"..."}, ops[len(ops)-40:]...)
		}
		ci.where = fmt.Sprintf("before %s of %s (operation %d of the call; before it: %s)", op, path, ci.count, strings.Join(ops, ", "))
		ci.target = 0
	}
	return nil
}

func (ci *crashInjector) arm(target int, random *rand.Rand) {
	ci.mu.Lock()
	defer ci.mu.Unlock()
	ci.target, ci.count, ci.random, ci.clone, ci.ops = target, 0, random, nil, nil
}

// fired returns the clone, once taken, and disarms.
func (ci *crashInjector) fired() (*vfs.MemFS, string) {
	ci.mu.Lock()
	defer ci.mu.Unlock()
	ci.target = 0
	return ci.clone, ci.where
}

// crasher plays one seeded run of the crash test.
type crasher struct {
	t     testing.TB
	c     Config
	rng   *rand.Rand
	rng2  *rand.Rand // for CrashCloneRandom
	mem   *vfs.MemFS
	inj   *crashInjector
	e     kvs.Engine
	h     *history
	keys  []string
	snaps []heldSnapshot
	// abandoned holds what crashed engines left open; closed when the
	// test ends, long after their crash clones were taken.
	abandoned []io.Closer
	round     int
	trace     []string // operations of this round, for failure messages
	stats     map[string]int
}

type heldSnapshot struct {
	snap kvs.Snapshot
	want state
	at   string
}

func newCrasher(t testing.TB, c Config, seed int64) *crasher {
	rng := rand.New(rand.NewSource(seed))
	r := &crasher{t: t, c: c, rng: rng, rng2: rand.New(rand.NewSource(seed ^ 0x5e3779b97f4a7c15)), h: newHistory(nil), stats: map[string]int{}}
	for i := 0; i < 24; i++ {
		r.keys = append(r.keys, keyf("key-%02d", i))
	}
	r.keys = append(r.keys, "\x00bin", "\xffbin\x00", "k")
	t.Cleanup(func() {
		for i := len(r.abandoned) - 1; i >= 0; i-- {
			r.abandoned[i].Close()
		}
		r.closeSnaps()
		if r.e != nil {
			r.e.Close()
		}
	})
	r.setFS(newMem())
	r.e = r.open("initial open")
	return r
}

func (r *crasher) setFS(m *vfs.MemFS) {
	r.mem = m
	r.inj = &crashInjector{mem: m}
}

func (r *crasher) log(format string, args ...any) {
	r.trace = append(r.trace, fmt.Sprintf(format, args...))
	if f := strings.Fields(format); len(f) > 0 && f[0] != "crash" {
		name := map[string]string{"%v": "writes", "new": "snapshots", "check": "snapshot checks",
			"close": "reopens", "get": "gets", "iterate": "iterators", "compact": "compacts"}[f[0]]
		if name != "" {
			r.stats[name]++
		}
	}
}

func (r *crasher) open(what string) kvs.Engine {
	r.t.Helper()
	e, err := kvs.Open(r.c.Engine, engineDir, options(r.c.CrashOptions, vfs.Inject(r.mem, r.inj)))
	if err != nil {
		r.t.Fatalf("round %d: %s: open: %v\nthe crash image:\n%s", r.round, what, err, r.mem)
	}
	return e
}

func (r *crasher) randKey() string {
	if r.rng.Intn(10) == 0 {
		return r.keys[len(r.keys)-1-r.rng.Intn(3)]
	}
	return r.keys[r.rng.Intn(len(r.keys)-3)]
}

func (r *crasher) randValue(id, i int) string {
	prefix := fmt.Sprintf("w%d.%d|", id, i)
	var n int
	switch x := r.rng.Intn(20); {
	case x == 0:
		n = 0
		prefix = ""
	case x < 2:
		n = 1000 + r.rng.Intn(5000) // can exceed a small segment
	default:
		n = r.rng.Intn(300)
	}
	return prefix + pattern(n, id*31+i)
}

// randWrite returns a random put, delete or batch.
func (r *crasher) randWrite() write {
	w := write{id: r.h.nextID, sync: r.rng.Intn(4) == 0, acked: true}
	switch x := r.rng.Intn(10); {
	case x < 5:
		w.ops = []op{{key: r.randKey(), value: r.randValue(w.id, 0)}}
	case x < 7:
		w.ops = []op{{del: true, key: r.randKey()}}
	default:
		n := 1 + r.rng.Intn(8)
		for i := 0; i < n; i++ {
			if r.rng.Intn(3) == 0 {
				w.ops = append(w.ops, op{del: true, key: r.randKey()})
			} else {
				w.ops = append(w.ops, op{key: r.randKey(), value: r.randValue(w.id, i)})
			}
		}
	}
	return w
}

// apply issues w to e. Batches of one entry go through Put or Delete half
// the time.
func (r *crasher) apply(e kvs.Engine, w write) error {
	o := kvs.WriteOptions{Sync: w.sync}
	if len(w.ops) == 1 && r.rng.Intn(2) == 0 {
		if w.ops[0].del {
			return e.Delete([]byte(w.ops[0].key), o)
		}
		return e.Put([]byte(w.ops[0].key), []byte(w.ops[0].value), o)
	}
	return e.Write(w.batch(), o)
}

func (r *crasher) doWrite() {
	r.t.Helper()
	w := r.randWrite()
	r.log("%v", w)
	if err := r.apply(r.e, w); err != nil {
		r.t.Fatalf("round %d: %v: %v", r.round, w, err)
	}
	r.h.add(w)
}

// step makes one random operation and checks it against the model.
func (r *crasher) step() {
	r.t.Helper()
	t := r.t
	switch x := r.rng.Intn(100); {
	case x < 60:
		r.doWrite()
	case x < 72:
		k := r.randKey()
		r.log("get %s", fmtKey(k))
		v, ok := r.h.live[k]
		checkGet(t, r.e, k, v, ok)
	case x < 78:
		o := randCrashBounds(r)
		r.log("iterate %s", boundsDesc(o))
		checkIter(t, r.e, r.h.live, o, func(c *iterChecker) {
			if r.rng.Intn(2) == 0 {
				fullWalks(c)
			} else {
				randomMoves(c, r.rng, 20)
			}
		})
	case x < 84:
		switch {
		case len(r.snaps) < 3 && r.rng.Intn(2) == 0:
			r.log("new snapshot")
			s, err := r.e.NewSnapshot()
			if err != nil {
				t.Fatalf("round %d: new snapshot: %v", r.round, err)
			}
			r.snaps = append(r.snaps, heldSnapshot{s, r.h.live.clone(), fmt.Sprintf("round %d, step %d", r.round, len(r.trace))})
		case len(r.snaps) > 0:
			i := r.rng.Intn(len(r.snaps))
			h := r.snaps[i]
			r.log("check snapshot taken at %s", h.at)
			got := readAll(t, h.snap, r.keys)
			if !maps.Equal(got, h.want) {
				t.Fatalf("round %d: snapshot taken at %s changed:\n%s", r.round, h.at, diffStates(h.want, got))
			}
			if r.rng.Intn(2) == 0 {
				if err := h.snap.Close(); err != nil {
					t.Fatalf("snapshot close: %v", err)
				}
				r.snaps = append(r.snaps[:i], r.snaps[i+1:]...)
			}
		}
	case x < 88:
		r.log("compact")
		if err := r.e.Compact(); err != nil {
			t.Fatalf("round %d: compact: %v", r.round, err)
		}
	case x < 90:
		r.log("close and reopen")
		r.closeSnaps()
		if err := r.e.Close(); err != nil {
			t.Fatalf("round %d: close: %v", r.round, err)
		}
		// Close syncs: everything acknowledged is durable now.
		r.h.durable(r.h.live)
		r.e = r.open("reopen after Close")
		checkState(t, r.e, r.h.live, r.keys)
	default:
		r.doWrite()
	}
}

func randCrashBounds(r *crasher) *kvs.IterOptions {
	if r.rng.Intn(3) == 0 {
		return nil
	}
	a, b := r.randKey(), r.randKey()
	if a > b {
		a, b = b, a
	}
	o := &kvs.IterOptions{LowerBound: []byte(a), UpperBound: []byte(b)}
	switch r.rng.Intn(4) {
	case 0:
		o.LowerBound = nil
	case 1:
		o.UpperBound = nil
	}
	return o
}

func (r *crasher) closeSnaps() {
	for _, s := range r.snaps {
		s.snap.Close()
	}
	r.snaps = nil
}

// playRound makes random operations, crashes, recovers and checks.
func (r *crasher) playRound() {
	r.t.Helper()
	r.trace = r.trace[:0]
	n := 5 + r.rng.Intn(45)
	for i := 0; i < n; i++ {
		r.step()
	}
	if r.rng.Intn(2) == 0 {
		// End on an unsynced batch, so the crash often tears one.
		w := r.randWrite()
		w.sync = false
		for len(w.ops) < 3 {
			w.ops = append(w.ops, op{key: r.randKey(), value: r.randValue(w.id, len(w.ops))})
		}
		r.log("%v", w)
		if err := r.apply(r.e, w); err != nil {
			r.t.Fatalf("round %d: %v: %v", r.round, w, err)
		}
		r.h.add(w)
	}
	r.crash()
}

// crash takes a crash image of the disk, between two calls or in the middle
// of one, abandons the engine and recovers from the image.
func (r *crasher) crash() {
	r.t.Helper()
	t := r.t
	var random *rand.Rand
	if r.rng.Intn(2) == 0 {
		random = r.rng2
	}
	var clone *vfs.MemFS
	var where string
	if r.rng.Intn(3) == 0 {
		// Between calls.
		if random != nil {
			clone, where = r.mem.CrashCloneRandom(random), "between calls"
		} else {
			clone, where = r.mem.CrashClone(), "between calls"
		}
	} else {
		clone, where = r.crashDuringCall(random)
	}
	if random != nil {
		where += " with a random part of the unsynced page cache flushed"
	}
	r.log("crash %s", where)
	kind := strings.Fields(where)
	if len(kind) > 2 {
		kind = kind[:2]
	}
	if strings.HasPrefix(kind[1], "write#") {
		kind[1] = "write"
	}
	r.stats["crash "+strings.Join(kind, " ")+map[bool]string{true: " (torn)", false: ""}[random != nil]]++
	// Abandon the engine: it keeps running on the old file system, which
	// the recovery never sees.
	if r.e != nil {
		r.abandoned = append(r.abandoned, r.e)
	}
	for _, s := range r.snaps {
		r.abandoned = append(r.abandoned, s.snap)
	}
	r.snaps = nil
	r.e = nil
	r.setFS(clone)

	// Sometimes crash again in the middle of recovery: recovery must
	// survive its own crash.
	if r.rng.Intn(4) == 0 {
		target := 1 + r.rng.Intn(40)
		var random2 *rand.Rand
		if r.rng.Intn(2) == 0 {
			random2 = r.rng2
		}
		r.inj.arm(target, random2)
		e := r.open("recovery interrupted by a crash")
		if clone2, where2 := r.inj.fired(); clone2 != nil {
			r.log("crash during recovery %s", where2)
			r.stats["crash during recovery"]++
			r.abandoned = append(r.abandoned, e)
			r.setFS(clone2)
		} else if err := e.Close(); err != nil {
			t.Fatalf("round %d: close after recovery: %v", r.round, err)
		}
	}
	r.e = r.open(fmt.Sprintf("recovery after a crash %s", where))
	got := checkRecovered(t, r.e, r.h, r.keys, fmt.Sprintf("round %d, crash %s", r.round, where))
	r.h.durable(got)
}

// crashDuringCall arms the injector to crash at a random file system
// operation and makes calls that change the disk until one reaches it.
func (r *crasher) crashDuringCall(random *rand.Rand) (*vfs.MemFS, string) {
	r.t.Helper()
	t := r.t
	target := 1 + r.rng.Intn(30)
	for tries := 0; tries < 20; tries++ {
		r.inj.arm(target, random)
		var what string
		switch x := r.rng.Intn(10); {
		case x < 6:
			w := r.randWrite()
			what = fmt.Sprintf("during %v", w)
			err := r.apply(r.e, w)
			if clone, where := r.inj.fired(); clone != nil {
				// The write was in flight when the crash came.
				w.acked = false
				r.h.add(w)
				if err != nil {
					t.Fatalf("round %d: %v: %v", r.round, w, err)
				}
				return clone, what + " " + where
			}
			if err != nil {
				t.Fatalf("round %d: %v: %v", r.round, w, err)
			}
			r.log("%v", w)
			r.h.add(w)
		case x < 8:
			what = "during Compact"
			err := r.e.Compact()
			if err != nil {
				t.Fatalf("round %d: compact: %v", r.round, err)
			}
			if clone, where := r.inj.fired(); clone != nil {
				return clone, what + " " + where
			}
			r.log("compact")
		default:
			r.closeSnaps()
			err := r.e.Close()
			if clone, where := r.inj.fired(); clone != nil {
				r.e = nil
				if err != nil {
					t.Fatalf("round %d: close: %v", r.round, err)
				}
				return clone, "during Close " + where
			}
			if err != nil {
				t.Fatalf("round %d: close: %v", r.round, err)
			}
			r.h.durable(r.h.live)
			r.log("close")
			r.inj.arm(target, random)
			r.e = r.open("reopen")
			if clone, where := r.inj.fired(); clone != nil {
				return clone, "during Open after a clean Close " + where
			}
			r.log("reopen")
			checkState(t, r.e, r.h.live, r.keys)
		}
		target = 1 + r.rng.Intn(10)
	}
	return r.mem.CrashClone(), "between calls (no call reached the chosen operation)"
}
