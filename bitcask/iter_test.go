package bitcask

import (
	"fmt"
	"maps"
	"math/rand/v2"
	"slices"
	"sync"
	"testing"

	"github.com/kvs-lab/kvs"
	"github.com/kvs-lab/kvs/internal/vfs"
)

// sortedIn returns the keys of m in [lower, upper), sorted ("" is open).
func sortedIn(m map[string]string, lower, upper string) []string {
	var out []string
	for _, k := range slices.Sorted(maps.Keys(m)) {
		if (lower == "" || k >= lower) && (upper == "" || k < upper) {
			out = append(out, k)
		}
	}
	return out
}

// walk collects the keys an iterator visits from a start move onwards
// with step, checking each value against model.
func walk(t *testing.T, it kvs.Iterator, model map[string]string, start func() bool, step func() bool) []string {
	t.Helper()
	var keys []string
	for ok := start(); ok; ok = step() {
		k := string(it.Key())
		if v := string(it.Value()); v != model[k] {
			t.Fatalf("value at %q = %.20q, want %.20q", k, v, model[k])
		}
		keys = append(keys, k)
	}
	if err := it.Error(); err != nil {
		t.Fatalf("iterator: %v", err)
	}
	return keys
}

func TestIteratorOrderBoundsAndReverse(t *testing.T) {
	for _, index := range indexes {
		t.Run("index="+index, func(t *testing.T) {
			db := openDB(t, testDir, testOptions(vfs.NewMem(), index))
			rng := rand.New(rand.NewPCG(1, 2))
			model := map[string]string{}
			// More keys than an iterator window, written out of order,
			// with overwrites and deletes among them.
			for _, i := range rng.Perm(300) {
				k := fmt.Sprintf("k%03d", i)
				mustPut(t, db, k, "first "+k, kvs.NoSync)
				model[k] = "first " + k
			}
			for i := 0; i < 300; i += 7 {
				k := fmt.Sprintf("k%03d", i)
				mustPut(t, db, k, "second "+k, kvs.NoSync)
				model[k] = "second " + k
			}
			for i := 3; i < 300; i += 5 {
				k := fmt.Sprintf("k%03d", i)
				mustDelete(t, db, k, kvs.NoSync)
				delete(model, k)
			}
			for _, b := range [][2]string{{"", ""}, {"k050", "k250"}, {"k0505", ""}, {"", "k1"}, {"k100", "k101"}, {"z", ""}, {"k2", "k1"}} {
				t.Run(fmt.Sprintf("[%s,%s)", b[0], b[1]), func(t *testing.T) {
					var o kvs.IterOptions
					if b[0] != "" {
						o.LowerBound = []byte(b[0])
					}
					if b[1] != "" {
						o.UpperBound = []byte(b[1])
					}
					it, err := db.NewIter(&o)
					if err != nil {
						t.Fatal(err)
					}
					defer it.Close()
					want := sortedIn(model, b[0], b[1])
					if b[0] > b[1] && b[1] != "" {
						want = nil
					}
					if got := walk(t, it, model, it.First, it.Next); !slices.Equal(got, want) {
						t.Fatalf("forward: %d keys %v, want %d", len(got), got, len(want))
					}
					got := walk(t, it, model, it.Last, it.Prev)
					slices.Reverse(got)
					if !slices.Equal(got, want) {
						t.Fatalf("reverse: %d keys, want %d", len(got), len(want))
					}
					// Zig-zag across window edges: every position, Next
					// then Prev must come back.
					for i, ok := 0, it.First(); ok; i, ok = i+1, it.Next() {
						if it.Next() {
							if !it.Prev() || string(it.Key()) != want[i] {
								t.Fatalf("Next, Prev at %d: at %q, want %q", i, it.Key(), want[i])
							}
						} else if !it.Last() {
							t.Fatal("Last")
						}
					}
					for i := 0; i < 50; i++ {
						target := fmt.Sprintf("k%03d", rng.IntN(320))
						if rng.IntN(2) == 0 {
							target += "5"
						}
						wantGE, wantLT := "", ""
						for _, k := range want {
							if k >= target && wantGE == "" {
								wantGE = k
							}
							if k < target {
								wantLT = k
							}
						}
						if ok := it.SeekGE([]byte(target)); ok != (wantGE != "") || ok && string(it.Key()) != wantGE {
							t.Fatalf("SeekGE(%s) = %v at %q, want %q", target, ok, it.Key(), wantGE)
						}
						if ok := it.SeekLT([]byte(target)); ok != (wantLT != "") || ok && string(it.Key()) != wantLT {
							t.Fatalf("SeekLT(%s) = %v at %q, want %q", target, ok, it.Key(), wantLT)
						}
					}
				})
			}
		})
	}
}

// TestSnapshotIsolationWhileWritesGoOn reads a snapshot (and an iterator
// made before the writes) over and over while other goroutines overwrite,
// delete, add and merge: they must keep showing the contents of their
// creation.
func TestSnapshotIsolationWhileWritesGoOn(t *testing.T) {
	for _, index := range indexes {
		t.Run("index="+index, func(t *testing.T) {
			o := testOptions(vfs.NewMem(), index)
			o.Bitcask.MaxSegmentBytes = 8 << 10
			db := openDB(t, testDir, o)
			frozen := map[string]string{}
			for i := 0; i < 200; i++ {
				mustPut(t, db, keyN(i), valueN(i, 0, 50), kvs.NoSync)
				frozen[keyN(i)] = valueN(i, 0, 50)
			}
			snap, err := db.NewSnapshot()
			if err != nil {
				t.Fatal(err)
			}
			defer snap.Close()
			it, err := db.NewIter(nil)
			if err != nil {
				t.Fatal(err)
			}
			defer it.Close()

			rounds := 30
			if testing.Short() {
				rounds = 10
			}
			var wg sync.WaitGroup
			stop := make(chan struct{})
			for w := 0; w < 2; w++ {
				wg.Add(1)
				go func() {
					defer wg.Done()
					for r := 1; ; r++ {
						select {
						case <-stop:
							return
						default:
						}
						for i := w; i < 200; i += 2 {
							var err error
							switch (i + r) % 3 {
							case 0:
								err = db.Delete([]byte(keyN(i)), kvs.NoSync)
							default:
								err = db.Put([]byte(keyN(i)), []byte(valueN(i, r, 40+r%30)), kvs.NoSync)
							}
							if err != nil {
								t.Error(err)
								return
							}
						}
						db.Put([]byte(fmt.Sprintf("new-%d-%d", w, r)), []byte("x"), kvs.NoSync)
						if r%3 == 0 {
							if err := db.Compact(); err != nil {
								t.Error(err)
								return
							}
						}
					}
				}()
			}
			for r := 0; r < rounds; r++ {
				checkContents(t, snap, frozen, "new-0-1")
				sit, err := snap.NewIter(&kvs.IterOptions{LowerBound: []byte(keyN(50)), UpperBound: []byte(keyN(60))})
				if err != nil {
					t.Fatal(err)
				}
				if got := walk(t, sit, frozen, sit.Last, sit.Prev); len(got) != 10 {
					t.Fatalf("bounded snapshot iterator saw %d keys", len(got))
				}
				sit.Close()
			}
			if got := walk(t, it, frozen, it.First, it.Next); len(got) != len(frozen) {
				t.Fatalf("iterator made before the writes saw %d keys, want %d", len(got), len(frozen))
			}
			close(stop)
			wg.Wait()
		})
	}
}
