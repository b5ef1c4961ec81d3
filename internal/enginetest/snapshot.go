package enginetest

import (
	"errors"
	"fmt"
	"maps"
	"math/rand"
	"strconv"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/kvs-lab/kvs"
)

// testSnapshots checks that snapshots are consistent point-in-time views.
func testSnapshots(t *testing.T, c Config) {
	t.Run("SnapshotIgnoresLaterWrites", func(t *testing.T) {
		e, _ := openMem(t, c)
		before := state{}
		for i := 0; i < 20; i++ {
			k := keyf("k%02d", i)
			before[k] = "v1-" + k
			mustPut(t, e, k, before[k], kvs.NoSync)
		}
		snap, err := e.NewSnapshot()
		if err != nil {
			t.Fatalf("new snapshot: %v", err)
		}
		defer snap.Close()
		after := before.clone()
		for i := 0; i < 20; i += 2 {
			k := keyf("k%02d", i)
			after[k] = "v2-" + k
			mustPut(t, e, k, after[k], kvs.NoSync)
		}
		for i := 1; i < 20; i += 4 {
			k := keyf("k%02d", i)
			delete(after, k)
			mustDelete(t, e, k, kvs.Sync)
		}
		var b kvs.Batch
		b.Put([]byte("new"), []byte("n"))
		b.Delete([]byte("k03"))
		after["new"] = "n"
		delete(after, "k03")
		mustWrite(t, e, &b, kvs.NoSync)

		checkState(t, snap, before, []string{"new"})
		checkIter(t, snap, before, nil, fullWalks)
		checkIter(t, snap, before, &kvs.IterOptions{LowerBound: []byte("k05"), UpperBound: []byte("k15")}, fullWalks)
		checkState(t, e, after, []string{"k01", "k03"})

		snap2, err := e.NewSnapshot()
		if err != nil {
			t.Fatal(err)
		}
		defer snap2.Close()
		mustPut(t, e, "k00", "v3", kvs.NoSync)
		checkState(t, snap2, after, nil)
		checkState(t, snap, before, nil)
	})
	t.Run("SnapshotSurvivesCompact", func(t *testing.T) {
		e, _ := openMem(t, c)
		before := state{}
		for round := 0; round < 3; round++ {
			for i := 0; i < 200; i++ {
				k := keyf("k%03d", i)
				before[k] = fmt.Sprintf("r%d-%s", round, pattern(100, i))
				mustPut(t, e, k, before[k], kvs.NoSync)
			}
		}
		snap, err := e.NewSnapshot()
		if err != nil {
			t.Fatal(err)
		}
		defer snap.Close()
		it, err := snap.NewIter(nil)
		if err != nil {
			t.Fatal(err)
		}
		// Make every value the snapshot sees garbage, then compact twice.
		after := state{}
		for i := 0; i < 200; i++ {
			k := keyf("k%03d", i)
			if i%2 == 0 {
				mustDelete(t, e, k, kvs.NoSync)
			} else {
				after[k] = "new"
				mustPut(t, e, k, "new", kvs.NoSync)
			}
		}
		for i := 0; i < 2; i++ {
			if err := e.Compact(); err != nil {
				t.Fatalf("compact: %v", err)
			}
		}
		checkState(t, snap, before, nil)
		c1 := &iterChecker{t: t, it: it, m: newModelIter(before, nil, nil), desc: "snapshot iterator made before Compact"}
		fullWalks(c1)
		if err := it.Close(); err != nil {
			t.Fatal(err)
		}
		checkState(t, e, after, nil)
		if err := snap.Close(); err != nil {
			t.Fatalf("snapshot close: %v", err)
		}
		if err := e.Compact(); err != nil {
			t.Fatalf("compact after the snapshot closed: %v", err)
		}
		checkState(t, e, after, nil)
	})
	t.Run("ClosedSnapshotReturnsErrClosed", func(t *testing.T) {
		e, _ := openMem(t, c)
		mustPut(t, e, "k", "v", kvs.NoSync)
		snap, err := e.NewSnapshot()
		if err != nil {
			t.Fatal(err)
		}
		if err := snap.Close(); err != nil {
			t.Fatalf("close: %v", err)
		}
		noPanic(t, "Get on a closed snapshot", func() bool {
			if _, err := snap.Get([]byte("k")); !isClosed(err) {
				t.Errorf("Get on a closed snapshot: %v, want kvs.ErrClosed", err)
			}
			return false
		})
		noPanic(t, "NewIter on a closed snapshot", func() bool {
			it, err := snap.NewIter(nil)
			if !isClosed(err) {
				t.Errorf("NewIter on a closed snapshot: %v, want kvs.ErrClosed", err)
			}
			if it != nil && err == nil {
				it.Close()
			}
			return false
		})
		noPanic(t, "second Close of a snapshot", func() bool {
			if err := snap.Close(); err != nil && !isClosed(err) {
				t.Errorf("second Close of a snapshot: %v, want nil or kvs.ErrClosed", err)
			}
			return false
		})
		checkGet(t, e, "k", "v", true)
	})
	t.Run("SnapshotsStayConsistentUnderConcurrentWrites", func(t *testing.T) {
		seeded(t, func(t testing.TB, seed int64, rng *rand.Rand) {
			testSnapshotConcurrent(t, c, seed)
		})
	})
}

// generation returns the contents written by generation n of
// testSnapshotConcurrent: every generation rewrites all keys, deleting a
// different third of them.
func generation(n, keys int) state {
	s := state{"gen": strconv.Itoa(n)}
	for i := 0; i < keys; i++ {
		if (n+i)%3 == 0 && n > 0 {
			continue
		}
		s[keyf("k%02d", i)] = fmt.Sprintf("%d-%d", n, i)
	}
	return s
}

// testSnapshotConcurrent runs a writer that moves the engine from one
// generation to the next with batches (and a Compact now and then) while
// readers take snapshots, check that each shows exactly one generation, and
// check again, later, that it still does.
func testSnapshotConcurrent(t testing.TB, c Config, seed int64) {
	e, _ := openMem(t, c)
	const keys = 24
	var b kvs.Batch
	for k, v := range generation(0, keys) {
		b.Put([]byte(k), []byte(v))
	}
	mustWrite(t, e, &b, kvs.Sync)

	d := 300 * time.Millisecond
	if testing.Short() {
		d = 150 * time.Millisecond
	}
	deadline := time.Now().Add(d)
	var stop atomic.Bool
	errc := make(chan error, 8)
	fail := func(err error) {
		select {
		case errc <- err:
		default:
		}
		stop.Store(true)
	}
	var wg sync.WaitGroup
	var gens atomic.Int64
	wg.Add(1)
	go func() { // the writer
		defer wg.Done()
		rng := rand.New(rand.NewSource(seed))
		prev := generation(0, keys)
		for n := 1; !stop.Load() && time.Now().Before(deadline); n++ {
			next := generation(n, keys)
			var b kvs.Batch
			for k := range prev {
				if _, ok := next[k]; !ok {
					b.Delete([]byte(k))
				}
			}
			for k, v := range next {
				b.Put([]byte(k), []byte(v))
			}
			if err := e.Write(&b, kvs.WriteOptions{Sync: rng.Intn(10) == 0}); err != nil {
				fail(fmt.Errorf("write generation %d: %w", n, err))
				return
			}
			gens.Store(int64(n))
			prev = next
			if rng.Intn(50) == 0 {
				if err := e.Compact(); err != nil {
					fail(fmt.Errorf("compact: %w", err))
					return
				}
			}
		}
	}()
	readSnap := func(snap kvs.Snapshot, useIter bool) (state, error) {
		if useIter {
			return scanAll(snap)
		}
		s := state{}
		names := []string{"gen"}
		for i := 0; i < keys; i++ {
			names = append(names, keyf("k%02d", i))
		}
		for _, k := range names {
			v, err := snap.Get([]byte(k))
			if isNotFound(err) {
				continue
			}
			if err != nil {
				return nil, err
			}
			s[k] = string(v)
		}
		return s, nil
	}
	var checks atomic.Int64
	for r := 0; r < 2; r++ {
		r := r
		wg.Add(1)
		go func() {
			defer wg.Done()
			type heldSnap struct {
				snap kvs.Snapshot
				want state
			}
			var held []heldSnap
			defer func() {
				for _, h := range held {
					h.snap.Close()
				}
			}()
			for i := 0; !stop.Load() && time.Now().Before(deadline); i++ {
				snap, err := e.NewSnapshot()
				if err != nil {
					fail(fmt.Errorf("new snapshot: %w", err))
					return
				}
				s, err := readSnap(snap, (i+r)%2 == 0)
				if err != nil {
					snap.Close()
					fail(fmt.Errorf("read snapshot: %w", err))
					return
				}
				n, _ := strconv.Atoi(s["gen"])
				if want := generation(n, keys); !maps.Equal(s, want) {
					snap.Close()
					fail(fmt.Errorf("snapshot holds no single generation; against generation %d:\n%s", n, diffStates(want, s)))
					return
				}
				held = append(held, heldSnap{snap, s})
				// Re-read an older snapshot: writes since must not show.
				h := held[0]
				again, err := readSnap(h.snap, i%2 == 1)
				if err != nil {
					fail(fmt.Errorf("re-read snapshot: %w", err))
					return
				}
				if !maps.Equal(again, h.want) {
					fail(fmt.Errorf("snapshot changed while writes went on:\n%s", diffStates(h.want, again)))
					return
				}
				if len(held) > 3 {
					if err := held[0].snap.Close(); err != nil {
						fail(fmt.Errorf("snapshot close: %w", err))
						return
					}
					held = held[1:]
				}
				checks.Add(1)
			}
		}()
	}
	wg.Wait()
	close(errc)
	for err := range errc {
		t.Fatal(err)
	}
	t.Logf("%d generations written, %d snapshot checks", gens.Load(), checks.Load())
	checkState(t, e, generation(int(gens.Load()), keys), nil)
}

// isClosed reports whether err says the engine, snapshot or iterator is
// closed.
func isClosed(err error) bool { return errors.Is(err, kvs.ErrClosed) }

// noPanic calls f, failing t (and returning false) if it panics.
func noPanic(t testing.TB, what string, f func() bool) (ret bool) {
	t.Helper()
	defer func() {
		if r := recover(); r != nil {
			t.Errorf("%s panicked: %v", what, r)
			ret = false
		}
	}()
	return f()
}
