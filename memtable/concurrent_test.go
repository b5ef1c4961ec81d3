package memtable

import (
	"bytes"
	"errors"
	"fmt"
	"math/rand/v2"
	"runtime"
	"slices"
	"strings"
	"sync"
	"sync/atomic"
	"testing"

	"github.com/kvs-lab/kvs/internal/base"
)

// valueFor is the value the concurrent tests store under (userKey, seq):
// derived from both and of varying length, so a reader can tell a whole
// entry from a torn or misplaced one.
func valueFor(userKey []byte, seq uint64) []byte {
	return []byte(strings.Repeat(fmt.Sprintf("%s@%d;", userKey, seq), int(seq%5)))
}

// concurrentEntries returns versions entries for each of keys user keys,
// with distinct seqs, in random order.
func concurrentEntries(rng *rand.Rand, keys, versions int) []entry {
	es := make([]entry, 0, keys*versions)
	for seq, p := range rng.Perm(keys * versions) {
		uk := []byte(fmt.Sprintf("key%06d", p%keys))
		es = append(es, entry{base.MakeInternalKey(uk, uint64(seq+1), base.KindSet), valueFor(uk, uint64(seq+1))})
	}
	return es
}

// TestConcurrentReadersSeeWholeSortedEntries runs readers that iterate both
// ways and Get while writers add. Every reader pass must be sorted, made of
// whole entries, and must hold every entry the reader's previous pass held:
// an entry once visible stays visible.
func TestConcurrentReadersSeeWholeSortedEntries(t *testing.T) {
	keys, versions := 2000, 8
	if testing.Short() {
		keys = 500
	}
	for _, writers := range []int{1, 4} {
		t.Run(fmt.Sprintf("writers=%d", writers), func(t *testing.T) {
			rng := testRand(t)
			es := concurrentEntries(rng, keys, versions)
			m := New(len(es) * MaxNodeSize(9, 40))
			var done, failed atomic.Bool
			var overlapping atomic.Int64 // reader passes that began before the adds ended
			fail := func(format string, args ...any) {
				if failed.CompareAndSwap(false, true) {
					t.Errorf(format, args...)
				}
			}

			var readers sync.WaitGroup
			for r := 0; r < 4; r++ {
				readers.Add(1)
				go func(seed uint64) {
					defer readers.Done()
					rng := rand.New(rand.NewPCG(seed, seed))
					var prev [][]byte // encoded keys of the previous full pass, ascending
					for pass := 0; !failed.Load(); pass++ {
						last := done.Load() // the writers finished before this pass began
						cur, err := readerPass(m, pass%2 == 1)
						if err != nil {
							fail("reader pass %d: %v", pass, err)
							return
						}
						if missing := firstMissing(prev, cur); missing != nil {
							fail("reader pass %d lost %s, seen by the pass before", pass, missing)
							return
						}
						// Every entry seen must be what Get returns at its seq.
						for i := 0; i < 20 && len(cur) > 0; i++ {
							k, _ := base.DecodeInternalKey(cur[rng.IntN(len(cur))])
							v, kind, found := m.Get(k.UserKey, k.Seq())
							if !found || kind != base.KindSet || !bytes.Equal(v, valueFor(k.UserKey, k.Seq())) {
								fail("Get(%q, %d) after seeing %s = %q, %v, %v", k.UserKey, k.Seq(), k, v, kind, found)
								return
							}
						}
						prev = cur
						if !last {
							overlapping.Add(1)
						}
						if last {
							if len(cur) != len(es) {
								fail("pass after the writers finished saw %d entries, want %d", len(cur), len(es))
							}
							return
						}
					}
				}(rng.Uint64())
			}

			var adders sync.WaitGroup
			for w := 0; w < writers; w++ {
				adders.Add(1)
				go func() {
					defer adders.Done()
					for i := w; i < len(es); i += writers {
						if err := m.Add(es[i].key, es[i].value); err != nil {
							fail("Add(%s): %v", es[i], err)
							return
						}
						if i%8 == 0 {
							runtime.Gosched() // let readers run between adds
						}
					}
				}()
			}
			adders.Wait()
			done.Store(true)
			readers.Wait()
			if failed.Load() {
				return
			}
			t.Logf("%d reader passes overlapped the adds", overlapping.Load())
			slices.SortFunc(es, compareEntries)
			if got := scan(t, m, nil, nil); !equalEntries(got, es) {
				t.Fatalf("final iteration differs from the model")
			}
			if m.Len() != len(es) {
				t.Fatalf("Len %d, want %d", m.Len(), len(es))
			}
		})
	}
}

// readerPass iterates all of m, forward or backward, checks that the
// entries come in strictly increasing (decreasing) order and are whole, and
// returns their encoded keys in ascending order.
func readerPass(m *Memtable, backward bool) ([][]byte, error) {
	it := m.NewIter(nil, nil)
	defer it.Close()
	var keys [][]byte
	var prev base.InternalKey
	ok, step := it.First, it.Next
	if backward {
		ok, step = it.Last, it.Prev
	}
	for ok := ok(); ok; ok = step() {
		k := it.Key()
		if len(keys) > 0 {
			c := base.InternalCompare(prev, k)
			if (!backward && c >= 0) || (backward && c <= 0) {
				return nil, fmt.Errorf("%s after %s (backward %v)", k, prev, backward)
			}
		}
		if k.Kind() != base.KindSet || !bytes.Equal(it.Value(), valueFor(k.UserKey, k.Seq())) {
			return nil, fmt.Errorf("torn entry %s=%q", k, it.Value())
		}
		prev = k
		keys = append(keys, k.Append(nil))
	}
	if backward {
		slices.Reverse(keys)
	}
	return keys, nil
}

// firstMissing returns the first key of prev that cur lacks; both ascend.
func firstMissing(prev, cur [][]byte) []byte {
	j := 0
	for _, k := range prev {
		for j < len(cur) && base.CompareEncoded(cur[j], k) < 0 {
			j++
		}
		if j == len(cur) || !bytes.Equal(cur[j], k) {
			return k
		}
	}
	return nil
}

// TestConcurrentAddsOfOneKeyAdmitOne races adders on the same internal
// keys: exactly one Add of each succeeds, the others get ErrKeyExists. Half
// the rounds add in one order, so that adders collide on the same splice
// and the loser of a linking CAS finds the winner's node.
func TestConcurrentAddsOfOneKeyAdmitOne(t *testing.T) {
	rng := testRand(t)
	for round := 0; round < 20; round++ {
		es := concurrentEntries(rng, 100, 3)
		m := New(len(es) * MaxNodeSize(9, 40))
		sameOrder := round%2 == 0
		var wins atomic.Int64
		var wg sync.WaitGroup
		for w := 0; w < 4; w++ {
			order := rng.Perm(len(es))
			if sameOrder {
				order = slices.Sorted(slices.Values(order))
			}
			wg.Add(1)
			go func() {
				defer wg.Done()
				for _, i := range order {
					err := m.Add(es[i].key, es[i].value)
					switch {
					case err == nil:
						wins.Add(1)
					case !errors.Is(err, ErrKeyExists):
						t.Errorf("Add(%s): %v", es[i], err)
						return
					}
				}
			}()
		}
		wg.Wait()
		if int(wins.Load()) != len(es) || m.Len() != len(es) {
			t.Fatalf("round %d: %d Adds succeeded, Len %d, for %d distinct keys", round, wins.Load(), m.Len(), len(es))
		}
		slices.SortFunc(es, compareEntries)
		if got := scan(t, m, nil, nil); !equalEntries(got, es) {
			t.Fatalf("round %d: iteration differs from the model", round)
		}
	}
}
