package enginetest

import (
	"fmt"
	"maps"
	"math/rand"
	"runtime"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/kvs-lab/kvs"
	"github.com/kvs-lab/kvs/internal/vfs"
)

// goTB lets a helper that calls Fatalf run on a goroutine other than the
// test's: Fatalf reports with Errorf (safe from any goroutine) and ends
// only the calling goroutine.
type goTB struct {
	testing.TB
	stop *atomic.Bool
}

func (g goTB) Fatalf(format string, args ...any) {
	g.TB.Helper()
	g.TB.Errorf(format, args...)
	g.stop.Store(true)
	runtime.Goexit()
}

func (g goTB) Fatal(args ...any) {
	g.TB.Helper()
	g.TB.Error(args...)
	g.stop.Store(true)
	runtime.Goexit()
}

func (g goTB) FailNow() {
	g.TB.Fail()
	g.stop.Store(true)
	runtime.Goexit()
}

// testConcurrency runs goroutines that each own a key range and mix every
// kind of call, plus a compactor and whole-range scanners, and checks that
// each goroutine always reads its own writes and that the final contents
// are the union of the goroutines' models.
func testConcurrency(t *testing.T, c Config) {
	t.Run("DisjointRangesStayConsistent", func(t *testing.T) {
		seeded(t, func(t testing.TB, seed int64, rng *rand.Rand) {
			testDisjointWorkers(t, c, seed)
		})
	})
}

func testDisjointWorkers(t testing.TB, c Config, seed int64) {
	e, fs := openMem(t, c)
	const workers = 8
	opsPer := 600
	if testing.Short() {
		opsPer = 250
	}
	var stop atomic.Bool
	g := goTB{TB: t, stop: &stop}
	models := make([]state, workers)
	var wg sync.WaitGroup
	for w := 0; w < workers; w++ {
		models[w] = state{}
		wg.Add(1)
		go func(w int) {
			defer wg.Done()
			rng := rand.New(rand.NewSource(seed + int64(w)*1000003))
			m := models[w]
			prefix := fmt.Sprintf("w%02d-", w)
			lo, hi := []byte(prefix), []byte(fmt.Sprintf("w%02d.", w))
			key := func() string { return fmt.Sprintf("%sk%02d", prefix, rng.Intn(30)) }
			for i := 0; i < opsPer && !stop.Load(); i++ {
				o := kvs.WriteOptions{Sync: rng.Intn(20) == 0}
				switch x := rng.Intn(100); {
				case x < 35:
					k, v := key(), fmt.Sprintf("%d-%s", i, pattern(rng.Intn(200), i+w))
					mustPut(g, e, k, v, o)
					m[k] = v
				case x < 50:
					k := key()
					mustDelete(g, e, k, o)
					delete(m, k)
				case x < 60:
					var b kvs.Batch
					for j := rng.Intn(6); j >= 0; j-- {
						k := key()
						if rng.Intn(3) == 0 {
							b.Delete([]byte(k))
							delete(m, k)
						} else {
							v := fmt.Sprintf("b%d.%d", i, j)
							b.Put([]byte(k), []byte(v))
							m[k] = v
						}
					}
					mustWrite(g, e, &b, o)
				case x < 80:
					k := key()
					v, ok := m[k]
					checkGet(g, e, k, v, ok)
				case x < 90:
					checkIter(g, e, m, &kvs.IterOptions{LowerBound: lo, UpperBound: hi}, func(c *iterChecker) {
						if rng.Intn(2) == 0 {
							fullWalks(c)
						} else {
							randomMoves(c, rng, 15)
						}
					})
				default:
					snap, err := e.NewSnapshot()
					if err != nil {
						g.Fatalf("worker %d: new snapshot: %v", w, err)
					}
					want := m.clone()
					// Writes after the snapshot must not show in it.
					k := key()
					mustPut(g, e, k, "after-snapshot", kvs.NoSync)
					m[k] = "after-snapshot"
					checkIter(g, snap, want, &kvs.IterOptions{LowerBound: lo, UpperBound: hi}, fullWalks)
					if err := snap.Close(); err != nil {
						g.Fatalf("worker %d: snapshot close: %v", w, err)
					}
				}
			}
		}(w)
	}
	var bg sync.WaitGroup
	done := make(chan struct{})
	var compactions, overlapping, scans atomic.Int64
	bg.Add(3)
	go func() { // compactor
		defer bg.Done()
		for {
			select {
			case <-done:
				return
			case <-time.After(5 * time.Millisecond):
			}
			if err := e.Compact(); err != nil {
				g.Fatalf("compact: %v", err)
			}
			compactions.Add(1)
		}
	}()
	go func() { // a second compactor, overlapping the first
		defer bg.Done()
		for {
			select {
			case <-done:
				return
			case <-time.After(7 * time.Millisecond):
			}
			// NB: the contract does not say whether a Compact that
			// overlaps another may refuse; it must not break anything
			// (the workers and the final check would notice).
			if err := e.Compact(); err == nil {
				overlapping.Add(1)
			}
			e.Stats()
		}
	}()
	go func() { // whole-range scanner: order and bounds only
		defer bg.Done()
		for {
			select {
			case <-done:
				return
			default:
			}
			if _, err := scanAll(e); err != nil {
				g.Fatalf("concurrent scan: %v", err)
			}
			scans.Add(1)
			time.Sleep(time.Millisecond)
		}
	}()
	wg.Wait()
	close(done)
	bg.Wait()
	if t.Failed() {
		t.FailNow()
	}
	t.Logf("%d+%d compactions and %d scans ran beside the workers", compactions.Load(), overlapping.Load(), scans.Load())
	want := state{}
	for _, m := range models {
		maps.Copy(want, m)
	}
	checkState(t, e, want, nil)
	mustClose(t, e)
	e = openEngine(t, c, c.Options, fs, engineDir)
	defer e.Close()
	checkState(t, e, want, nil)
}

// testGroupCommit runs many goroutines writing at once, most with Sync,
// and crashes: every synced acknowledgement must survive, and each
// goroutine's keys must hold a prefix of its writes.
func testGroupCommit(t *testing.T, c Config) {
	for _, disable := range []bool{false, true} {
		t.Run(fmt.Sprintf("DisableGroupCommit=%v", disable), func(t *testing.T) {
			seeded(t, func(t testing.TB, seed int64, rng *rand.Rand) {
				fs := newMem()
				opts := func() *kvs.Options {
					o := c.Options()
					if o == nil {
						o = &kvs.Options{}
					}
					o = o.Clone()
					o.DisableGroupCommit = disable
					return o
				}
				// NB: a slow fsync lets writers queue behind it, so that
				// group commit has fsyncs to share.
				slow := vfs.Inject(fs, vfs.InjectorFunc(func(op vfs.Op, _ string) error {
					if op == vfs.OpSync {
						time.Sleep(100 * time.Microsecond)
					}
					return nil
				}))
				e := openEngine(t, c, opts, slow, engineDir)
				abandoned := e
				t.Cleanup(func() { abandoned.Close() })
				const writers = 16
				per := 40
				if testing.Short() {
					per = 20
				}
				hs := make([]*history, writers)
				var stop atomic.Bool
				var synced atomic.Int64
				g := goTB{TB: t, stop: &stop}
				var wg sync.WaitGroup
				for w := 0; w < writers; w++ {
					hs[w] = newHistory(nil)
					wg.Add(1)
					go func(w int) {
						defer wg.Done()
						rng := rand.New(rand.NewSource(seed + int64(w)))
						// Odd writers sync every write; even ones one in four.
						for i := 0; i < per && !stop.Load(); i++ {
							wr := write{acked: true, sync: w%2 == 1 || i%4 == 3}
							k := fmt.Sprintf("g%02d-%02d", w, rng.Intn(8))
							switch rng.Intn(4) {
							case 0:
								wr.ops = []op{{del: true, key: k}}
							case 1:
								wr.ops = []op{{key: k, value: fmt.Sprintf("%d", i)}, {key: fmt.Sprintf("g%02d-b", w), value: fmt.Sprintf("%d", i)}}
							default:
								wr.ops = []op{{key: k, value: fmt.Sprintf("%d-%s", i, pattern(rng.Intn(100), i))}}
							}
							mustWrite(g, e, wr.batch(), kvs.WriteOptions{Sync: wr.sync})
							if wr.sync {
								synced.Add(1)
							}
							hs[w].add(wr)
						}
					}(w)
				}
				wg.Wait()
				if t.Failed() {
					t.FailNow()
				}
				// Without group commit every synced write runs its own
				// fsync; with it, writers queued behind a slow fsync share
				// the next one.
				n := e.Stats().Syncs
				t.Logf("%d synced writes, %d fsyncs", synced.Load(), n)
				if disable && n < synced.Load() {
					t.Fatalf("DisableGroupCommit: %d fsyncs for %d synced writes", n, synced.Load())
				}
				// Crash with the engine open: no Close, no final sync.
				crashed := fs.CrashClone()
				e = openEngine(t, c, opts, crashed, engineDir)
				defer e.Close()
				got := readAll(t, e, nil)
				for w := 0; w < writers; w++ {
					mine := state{}
					p := fmt.Sprintf("g%02d-", w)
					for k, v := range got {
						if len(k) >= len(p) && k[:len(p)] == p {
							mine[k] = v
						}
					}
					if _, ok := hs[w].match(mine); !ok {
						t.Errorf("writer %d: recovered keys are not a prefix of its writes keeping every synced one:\n%s", w, hs[w].explain(mine))
					}
				}
			})
		})
	}
}
