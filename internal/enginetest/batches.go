package enginetest

import (
	"fmt"
	"math/rand"
	"strconv"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/kvs-lab/kvs"
)

// testBatches checks that a batch applies in order and atomically, for
// readers running beside the writer. Atomicity across crashes is checked
// by the crash recovery test.
func testBatches(t *testing.T, c Config) {
	t.Run("LastEntryForAKeyWins", func(t *testing.T) {
		e, _ := openMem(t, c)
		mustPut(t, e, "a", "old", kvs.NoSync)
		mustPut(t, e, "d", "old", kvs.NoSync)
		var b kvs.Batch
		b.Put([]byte("a"), []byte("1"))
		b.Delete([]byte("a"))
		b.Put([]byte("a"), []byte("2"))
		b.Put([]byte("b"), []byte("1"))
		b.Delete([]byte("b"))
		b.Delete([]byte("c"))
		b.Put([]byte("c"), []byte("3"))
		b.Put([]byte("d"), []byte("x"))
		b.Delete([]byte("d"))
		b.Put([]byte("e"), []byte("1"))
		b.Put([]byte("e"), []byte("2"))
		mustWrite(t, e, &b, kvs.NoSync)
		want := state{"a": "2", "c": "3", "e": "2"}
		checkState(t, e, want, []string{"b", "d"})

		b.Reset()
		b.Delete([]byte("a"))
		b.Put([]byte("a"), []byte("synced"))
		b.Delete([]byte("e"))
		mustWrite(t, e, &b, kvs.Sync)
		checkState(t, e, state{"a": "synced", "c": "3"}, []string{"b", "d", "e"})
	})
	t.Run("EmptyBatchIsANoOp", func(t *testing.T) {
		e, _ := openMem(t, c)
		mustPut(t, e, "a", "1", kvs.NoSync)
		var b kvs.Batch
		mustWrite(t, e, &b, kvs.NoSync)
		mustWrite(t, e, &b, kvs.Sync)
		checkState(t, e, state{"a": "1"}, nil)
	})
	t.Run("BatchIsReusableAfterReset", func(t *testing.T) {
		e, _ := openMem(t, c)
		var b kvs.Batch
		b.Put([]byte("a"), []byte("1"))
		mustWrite(t, e, &b, kvs.NoSync)
		b.Reset()
		b.Put([]byte("b"), []byte("2"))
		mustWrite(t, e, &b, kvs.NoSync)
		// Writing the same batch twice applies it twice (idempotent here).
		mustWrite(t, e, &b, kvs.NoSync)
		checkState(t, e, state{"a": "1", "b": "2"}, nil)
	})
	t.Run("LargeBatchApplies", func(t *testing.T) {
		e, _ := openMem(t, c)
		var b kvs.Batch
		want := state{}
		for i := 0; i < 3000; i++ {
			k := keyf("k%04d", i)
			v := pattern(i%200, i)
			b.Put([]byte(k), []byte(v))
			want[k] = v
		}
		mustWrite(t, e, &b, kvs.Sync)
		checkState(t, e, want, nil)
	})
	t.Run("ConcurrentReadersNeverSeeHalfABatch", func(t *testing.T) {
		testBatchAtomicVisibility(t, c)
	})
}

// testBatchAtomicVisibility runs writers that move amounts between
// accounts with batches (keeping the total fixed, sometimes deleting an
// emptied account) and readers that check the total through snapshots and
// iterators: a reader that sees half a batch sees a wrong total.
func testBatchAtomicVisibility(t testing.TB, c Config) {
	seeded(t, func(t testing.TB, seed int64, rng *rand.Rand) {
		e, _ := openMem(t, c)
		const accounts = 16
		const total = accounts * 100
		acct := func(i int) string { return keyf("acct-%02d", i) }
		var init kvs.Batch
		for i := 0; i < accounts; i++ {
			init.Put([]byte(acct(i)), []byte("100"))
		}
		mustWrite(t, e, &init, kvs.Sync)

		sum := func(s state) (int, error) {
			n := 0
			for k, v := range s {
				x, err := strconv.Atoi(v)
				if err != nil {
					return 0, fmt.Errorf("key %s holds %q, not a number", fmtKey(k), v)
				}
				n += x
			}
			return n, nil
		}
		deadline := time.Now().Add(400 * time.Millisecond)
		if testing.Short() {
			deadline = time.Now().Add(200 * time.Millisecond)
		}
		var stop atomic.Bool
		var wg sync.WaitGroup
		var mu sync.Mutex // serializes writers: each computes a transfer from a snapshot
		errc := make(chan error, 16)
		fail := func(err error) {
			select {
			case errc <- err:
			default:
			}
			stop.Store(true)
		}
		var writes, reads atomic.Int64
		for w := 0; w < 2; w++ {
			wrng := rand.New(rand.NewSource(seed + int64(w) + 1))
			wg.Add(1)
			go func() {
				defer wg.Done()
				for !stop.Load() && time.Now().Before(deadline) {
					mu.Lock()
					from, to := wrng.Intn(accounts), wrng.Intn(accounts)
					if from == to {
						mu.Unlock()
						continue
					}
					get := func(k string) int {
						v, err := e.Get([]byte(k))
						if isNotFound(err) {
							return 0
						}
						if err != nil {
							fail(fmt.Errorf("get %s: %w", k, err))
							return 0
						}
						n, _ := strconv.Atoi(string(v))
						return n
					}
					fv, tv := get(acct(from)), get(acct(to))
					amount := fv
					if fv > 0 && wrng.Intn(3) > 0 {
						amount = wrng.Intn(fv + 1)
					}
					var b kvs.Batch
					// Write both sides through intermediate states a
					// reader must never see.
					b.Put([]byte(acct(to)), []byte("-999999"))
					b.Delete([]byte(acct(from)))
					b.Put([]byte(acct(to)), []byte(strconv.Itoa(tv+amount)))
					if fv-amount > 0 || wrng.Intn(2) == 0 {
						b.Put([]byte(acct(from)), []byte(strconv.Itoa(fv-amount)))
					}
					err := e.Write(&b, kvs.WriteOptions{Sync: wrng.Intn(8) == 0})
					mu.Unlock()
					if err != nil {
						fail(fmt.Errorf("write transfer: %w", err))
						return
					}
					writes.Add(1)
				}
			}()
		}
		for r := 0; r < 3; r++ {
			r := r
			wg.Add(1)
			go func() {
				defer wg.Done()
				for !stop.Load() && time.Now().Before(deadline) {
					var s state
					var how string
					switch r {
					case 0: // a plain iterator
						how = "iterator"
						var err error
						if s, err = scanAll(e); err != nil {
							fail(err)
							return
						}
					case 1: // Gets on a snapshot
						how = "snapshot Get"
						snap, err := e.NewSnapshot()
						if err != nil {
							fail(fmt.Errorf("new snapshot: %w", err))
							return
						}
						s = state{}
						for i := 0; i < accounts; i++ {
							v, err := snap.Get([]byte(acct(i)))
							if isNotFound(err) {
								continue
							}
							if err != nil {
								snap.Close()
								fail(fmt.Errorf("snapshot get: %w", err))
								return
							}
							s[acct(i)] = string(v)
						}
						if err := snap.Close(); err != nil {
							fail(fmt.Errorf("snapshot close: %w", err))
							return
						}
					case 2: // an iterator on a snapshot, walked backwards
						how = "snapshot reverse iterator"
						snap, err := e.NewSnapshot()
						if err != nil {
							fail(fmt.Errorf("new snapshot: %w", err))
							return
						}
						it, err := snap.NewIter(&kvs.IterOptions{LowerBound: []byte("acct-"), UpperBound: []byte("acct.")})
						if err != nil {
							snap.Close()
							fail(fmt.Errorf("snapshot iterator: %w", err))
							return
						}
						s = state{}
						for ok := it.Last(); ok; ok = it.Prev() {
							s[string(it.Key())] = string(it.Value())
						}
						err = it.Close()
						if err2 := snap.Close(); err == nil {
							err = err2
						}
						if err != nil {
							fail(fmt.Errorf("snapshot iterator: %w", err))
							return
						}
					}
					n, err := sum(s)
					if err == nil && n != total {
						err = fmt.Errorf("accounts sum to %d, want %d: the reader saw part of a batch", n, total)
					}
					if err != nil {
						fail(fmt.Errorf("%s: %w (contents %v)", how, err, s))
						return
					}
					reads.Add(1)
				}
			}()
		}
		wg.Wait()
		close(errc)
		for err := range errc {
			t.Fatal(err)
		}
		t.Logf("%d transfers, %d consistent reads", writes.Load(), reads.Load())
		s := readAll(t, e, nil)
		if n, err := sum(s); err != nil || n != total {
			t.Fatalf("final accounts sum to %d (%v), want %d", n, err, total)
		}
	})
}
