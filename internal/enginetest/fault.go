package enginetest

import (
	"errors"
	"fmt"
	"maps"
	"math/rand"
	"runtime/debug"
	"slices"
	"sort"
	"testing"
	"time"

	"github.com/kvs-lab/kvs"
	"github.com/kvs-lab/kvs/internal/vfs"
)

// callTimeout is how long one engine call may take in the I/O error test
// before it counts as hung. Generous: the race detector is slow.
const callTimeout = 30 * time.Second

// faultStep is one call of the I/O error workload.
type faultStep struct {
	kind string // "write", "get", "scan", "compact", "snapshot", "reopen"
	w    write
	key  string
}

// faultWorkload returns the fixed sequence of calls the I/O error test
// fails at each operation in turn: writes of every shape (some larger
// than a small segment), reads, scans, Compacts, a snapshot and a reopen.
func faultWorkload(seed int64) []faultStep {
	rng := rand.New(rand.NewSource(seed))
	var steps []faultStep
	id := 0
	key := func() string { return keyf("key-%02d", rng.Intn(16)) }
	writes := func(n int) {
		for i := 0; i < n; i++ {
			w := write{id: id, sync: i%3 == 2, acked: true}
			id++
			size := 100 + rng.Intn(600)
			if rng.Intn(12) == 0 {
				size = 3000 + rng.Intn(3000)
			}
			switch rng.Intn(6) {
			case 0:
				w.ops = []op{{del: true, key: key()}}
			case 1:
				for j := 0; j < 2+rng.Intn(4); j++ {
					if rng.Intn(3) == 0 {
						w.ops = append(w.ops, op{del: true, key: key()})
					} else {
						w.ops = append(w.ops, op{key: key(), value: fmt.Sprintf("w%d.%d|%s", w.id, j, pattern(size/3, w.id+j))})
					}
				}
			default:
				w.ops = []op{{key: key(), value: fmt.Sprintf("w%d|%s", w.id, pattern(size, w.id))}}
			}
			steps = append(steps, faultStep{kind: "write", w: w})
			if rng.Intn(4) == 0 {
				steps = append(steps, faultStep{kind: "get", key: key()})
			}
		}
	}
	writes(12)
	steps = append(steps, faultStep{kind: "scan"})
	steps = append(steps, faultStep{kind: "compact"})
	writes(10)
	steps = append(steps, faultStep{kind: "snapshot"})
	steps = append(steps, faultStep{kind: "reopen"})
	steps = append(steps, faultStep{kind: "scan"})
	writes(8)
	steps = append(steps, faultStep{kind: "scan"})
	steps = append(steps, faultStep{kind: "compact"})
	writes(4)
	steps = append(steps, faultStep{kind: "reopen"})
	steps = append(steps, faultStep{kind: "scan"})
	return steps
}

// faultPoint is one injected failure: operation index (from 1) and rule.
type faultPoint struct {
	index   int64
	mode    string // "once" or "from" (every operation from index on)
	err     error
	partial bool
}

func (p faultPoint) String() string {
	name := "EIO"
	if errors.Is(p.err, vfs.ErrNoSpace) {
		name = "ENOSPC"
	}
	if p.partial {
		name += "-partial"
	}
	return fmt.Sprintf("op=%d/%s-%s", p.index, name, p.mode)
}

func (p faultPoint) counter() *vfs.Counter {
	var c *vfs.Counter
	if p.mode == "once" {
		c = vfs.OnIndex(p.index, p.err)
	} else {
		c = vfs.After(p.index, p.err)
	}
	c.PartialWrite = p.partial
	return c
}

// testIOErrors runs the workload once to count its file system operations,
// then once per chosen operation with ENOSPC or EIO injected there, and
// checks that the engine reports the failure, that what it acknowledged
// with Sync survives, and that it reopens cleanly.
func testIOErrors(t *testing.T, c Config) {
	seed := seeds(t, 1)[0]
	t.Logf("seed %d (replay with -enginetest.seed=%d)", seed, seed)
	defer func() {
		if t.Failed() {
			t.Logf("replay: go test -run '%s' -enginetest.seed=%d", runPattern(t.Name()), seed)
		}
	}()
	steps := faultWorkload(seed)
	count := vfs.Count()
	fr := runFaults(t, c, steps, newMem(), count)
	if fr.stopped != "" {
		t.Fatalf("workload without injected errors failed at %s: %v", fr.stopped, fr.err)
	}
	n := count.Calls()
	t.Logf("the workload makes %d file system operations", n)

	var points []faultPoint
	for i := int64(1); i <= n; i++ {
		points = append(points,
			faultPoint{index: i, mode: "once", err: vfs.ErrNoSpace, partial: true},
			faultPoint{index: i, mode: "once", err: vfs.ErrIO},
			faultPoint{index: i, mode: "from", err: vfs.ErrIO},
			faultPoint{index: i, mode: "from", err: vfs.ErrNoSpace, partial: true},
		)
	}
	if len(points) > c.FaultPoints {
		rng := rand.New(rand.NewSource(seed))
		rng.Shuffle(len(points), func(i, j int) { points[i], points[j] = points[j], points[i] })
		points = points[:c.FaultPoints]
		sort.Slice(points, func(i, j int) bool { return points[i].index < points[j].index })
	}
	for _, p := range points {
		t.Run(p.String(), func(t *testing.T) { checkFaultPoint(t, c, steps, p) })
	}
}

// faultRun is a run of the workload, stopped by a fault or finished.
type faultRun struct {
	c       Config
	steps   []faultStep
	fs      vfs.FS // the MemFS behind the injector
	counter *vfs.Counter
	e       kvs.Engine // the engine, if open
	h       *history
	next    int    // the step to run next
	stopped string // the call during which the fault struck (or that failed)
	err     error  // what that call returned
	// baseline is counter.Injected() when the run (re)started.
	baseline int64
}

// runFaults opens the engine on mem through counter and runs steps until
// a call fails or the counter injects an error during it.
func runFaults(t testing.TB, c Config, steps []faultStep, mem *vfs.MemFS, counter *vfs.Counter) *faultRun {
	t.Helper()
	r := &faultRun{c: c, steps: steps, fs: vfs.Inject(mem, counter), counter: counter, h: newHistory(nil)}
	if r.open(t, "initial Open") {
		return r
	}
	r.run(t)
	return r
}

// call runs f and reports whether the workload must stop.
func (r *faultRun) call(t testing.TB, what string, f func() error) bool {
	t.Helper()
	// NB: the workload stops at the first call during or before which an
	// error was injected; an engine's background work may meet it between
	// calls.
	err := within(t, what, f)
	fired := r.counter.Injected() > r.baseline
	if err != nil && !fired {
		t.Errorf("%s failed with no error injected: %v", what, err)
	}
	if err != nil && fired && !errors.Is(err, vfs.ErrInjected) && !errors.Is(err, kvs.ErrFailed) {
		t.Errorf("%s: error %q does not wrap the injected error (nor kvs.ErrFailed)", what, err)
	}
	if err != nil || fired {
		r.stopped, r.err = what, err
		return true
	}
	return false
}

func (r *faultRun) open(t testing.TB, what string) bool {
	t.Helper()
	return r.call(t, what, func() error {
		e, err := kvs.Open(r.c.Engine, engineDir, options(r.c.CrashOptions, r.fs))
		if err == nil {
			r.e = e
		}
		return err
	})
}

// run runs the steps from r.next on.
func (r *faultRun) run(t testing.TB) {
	t.Helper()
	steps, call := r.steps, func(what string, f func() error) bool { return r.call(t, what, f) }
	open := func(what string) bool { return r.open(t, what) }
	r.baseline = r.counter.Injected()
	r.stopped, r.err = "", nil
	for ; r.next < len(steps); r.next++ {
		i, s := r.next, steps[r.next]
		what := fmt.Sprintf("step %d (%s)", i, s.kind)
		switch s.kind {
		case "write":
			w := s.w
			what = fmt.Sprintf("step %d (%v)", i, w)
			var werr error
			stop := call(what, func() error {
				werr = r.e.Write(w.batch(), kvs.WriteOptions{Sync: w.sync})
				return werr
			})
			w.acked = werr == nil
			r.h.add(w)
			if stop {
				r.next++
				return
			}
		case "get":
			var v []byte
			var gerr error
			stop := call(what, func() error {
				v, gerr = r.e.Get([]byte(s.key))
				if isNotFound(gerr) {
					return nil
				}
				return gerr
			})
			if gerr == nil || isNotFound(gerr) {
				want, ok := r.h.live[s.key]
				switch {
				case ok != (gerr == nil):
					t.Errorf("%s: get %s: %v, found=%v, want found=%v", what, fmtKey(s.key), gerr, gerr == nil, ok)
				case ok && string(v) != want:
					t.Errorf("%s: get %s = %s, want %s", what, fmtKey(s.key), fmtVal(string(v)), fmtVal(want))
				}
			}
			if stop {
				r.next++
				return
			}
		case "scan":
			var got state
			stop := call(what, func() error {
				var err error
				got, err = scanAll(r.e)
				return err
			})
			if got != nil && !maps.Equal(got, r.h.live) {
				t.Errorf("%s: a scan that reported no error returned wrong contents:\n%s", what, diffStates(r.h.live, got))
			}
			if stop {
				r.next++
				return
			}
		case "compact":
			if call(what, r.e.Compact) {
				r.next++
				return
			}
		case "snapshot":
			var got state
			stop := call(what, func() error {
				snap, err := r.e.NewSnapshot()
				if err != nil {
					return err
				}
				// A write after the snapshot, which it must not show.
				err = r.e.Put([]byte("snapshot-probe"), []byte("x"), kvs.NoSync)
				r.h.add(write{ops: []op{{key: "snapshot-probe", value: "x"}}, acked: err == nil})
				if err != nil {
					snap.Close()
					return err
				}
				got, err = scanAll(snap)
				if err2 := snap.Close(); err == nil {
					err = err2
				}
				return err
			})
			if got != nil {
				want := r.h.live.clone()
				delete(want, "snapshot-probe")
				if !maps.Equal(got, want) {
					t.Errorf("%s: snapshot contents wrong:\n%s", what, diffStates(want, got))
				}
			}
			if stop {
				r.next++
				return
			}
		case "reopen":
			e := r.e
			r.e = nil
			if call(what+": Close", e.Close) {
				r.next++
				return
			}
			// Close syncs: what the engine held is durable.
			if r.h.liveExact {
				r.h.durable(r.h.live)
			}
			if open(what + ": Open") {
				r.next++
				return
			}
		}
	}
}

// checkFaultPoint runs the workload with p injected and checks the
// aftermath: crash images taken at the failure and after a follow-up
// synced write, and the directory after Close, must all reopen to an
// outcome the prefix rule allows, and the reopened engine must work.
func checkFaultPoint(t testing.TB, c Config, steps []faultStep, p faultPoint) {
	mem := newMem()
	counter := p.counter()
	r := runFaults(t, c, steps, mem, counter)
	if r.stopped == "" {
		// The operation was never reached (the count varies when an
		// engine works in the background); nothing was injected.
		if r.e != nil {
			within(t, "final Close", r.e.Close)
		}
		return
	}
	t.Logf("fault struck during %s (returned %v)", r.stopped, r.err)
	type image struct {
		fs   *vfs.MemFS
		h    *history
		what string
	}
	images := []image{{mem.CrashClone(), r.h.copy(), "crash right after the failure"}}
	if r.e != nil {
		// One more synced write: if acknowledged, it must be durable,
		// whatever the failure left in the files.
		w := write{ops: []op{{key: "followup", value: "after the failure"}}, sync: true}
		err := within(t, "follow-up synced Put", func() error {
			return r.e.Put([]byte("followup"), []byte("after the failure"), kvs.Sync)
		})
		w.acked = err == nil
		r.h.add(w)
		images = append(images, image{mem.CrashClone(), r.h.copy(), fmt.Sprintf("crash after a follow-up synced Put (which returned %v)", err)})
		if err == nil && p.mode == "once" {
			// The engine took the write, so it claims to have got over
			// the error: it must now run the rest of the workload right.
			if continueAfterFault(t, r) {
				images = append(images, image{mem.CrashClone(), r.h.copy(), "crash after the rest of the workload"})
			}
		}
	}
	counter.SetEnabled(false)
	if r.e != nil {
		// A successful Close syncs what the engine held, when we know
		// what that was.
		if err := within(t, "Close after the failure", r.e.Close); err == nil && r.h.liveExact {
			r.h.durable(r.h.live)
		}
	}
	images = append(images, image{mem, r.h, "reopen after Close, no crash"})
	for _, im := range images {
		checkImage(t, c, im.fs, im.h, fmt.Sprintf("%s (fault during %s)", im.what, r.stopped))
	}
}

// continueAfterFault runs the rest of the workload on an engine that got
// over an injected error, first learning from a scan whether the failed
// write applied. It reports whether the engine is still open.
func continueAfterFault(t testing.TB, r *faultRun) bool {
	t.Helper()
	what := fmt.Sprintf("after the fault during %s and an acknowledged synced Put", r.stopped)
	var got state
	if err := within(t, what+": scan", func() (err error) { got, err = scanAll(r.e); return err }); err != nil {
		t.Errorf("%s: scan: %v", what, err)
		return true
	}
	if !r.h.matchLive(got) {
		t.Errorf("%s: the engine shows contents that no outcome of the writes so far explains:\n%s", what, r.h.explain(got))
		return true
	}
	stopped := r.stopped
	r.run(t)
	if r.stopped != "" {
		t.Errorf("%s: the rest of the workload failed at %s: %v", what, r.stopped, r.err)
	}
	r.stopped = stopped
	return r.e != nil
}

// checkImage opens the engine on fs with no fault injected, checks its
// contents against h, then checks that it still works: a synced write
// survives another crash.
func checkImage(t testing.TB, c Config, fs *vfs.MemFS, h *history, what string) {
	t.Helper()
	probe := []string{"followup", "snapshot-probe", "after-recovery"}
	for i := 0; i < 16; i++ {
		probe = append(probe, keyf("key-%02d", i))
	}
	var e kvs.Engine
	err := within(t, what+": Open", func() error {
		var err error
		e, err = kvs.Open(c.Engine, engineDir, options(c.CrashOptions, fs))
		return err
	})
	if err != nil {
		t.Errorf("%s: open with no fault injected: %v", what, err)
		return
	}
	got := checkRecovered(t, e, h, probe, what)
	got["after-recovery"] = "ok"
	if err := e.Put([]byte("after-recovery"), []byte("ok"), kvs.Sync); err != nil {
		t.Errorf("%s: synced put after recovery: %v", what, err)
		e.Close()
		return
	}
	// The synced write makes everything acknowledged before it durable.
	h = h.copy()
	h.add(write{ops: []op{{key: "after-recovery", value: "ok"}}, sync: true, acked: true})
	crashed := fs.CrashClone()
	e.Close()
	e2, err := kvs.Open(c.Engine, engineDir, options(c.CrashOptions, crashed))
	if err != nil {
		t.Errorf("%s: open after recovering, writing and crashing again: %v", what, err)
		return
	}
	defer e2.Close()
	if got2 := readAll(t, e2, probe); !maps.Equal(got2, got) {
		if _, ok := h.match(got2); !ok {
			t.Errorf("%s: after recovering (to %d keys), a synced write and another crash, the contents break the prefix rule:\n%s", what, len(got), h.explain(got2))
		}
	}
}

// copy returns an independent copy of h.
func (h *history) copy() *history {
	c := *h
	c.base = h.base.clone()
	c.live = h.live.clone()
	c.log = slices.Clone(h.log)
	return &c
}

// within runs f on another goroutine and fails t if it panics or takes
// longer than callTimeout (a hang).
func within(t testing.TB, what string, f func() error) error {
	t.Helper()
	type result struct {
		err   error
		panic any
		stack []byte
	}
	done := make(chan result, 1)
	go func() {
		defer func() {
			if p := recover(); p != nil {
				done <- result{panic: p, stack: debug.Stack()}
			}
		}()
		done <- result{err: f()}
	}()
	select {
	case r := <-done:
		if r.panic != nil {
			t.Fatalf("%s panicked: %v\n%s", what, r.panic, r.stack)
		}
		return r.err
	case <-time.After(callTimeout):
		t.Fatalf("%s hung: no return after %v", what, callTimeout)
		return nil
	}
}
