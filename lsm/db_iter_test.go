package lsm

import (
	"bytes"
	"errors"
	"fmt"
	"math/rand/v2"
	"slices"
	"sort"
	"strings"
	"testing"

	"github.com/kvs-lab/kvs"
	"github.com/kvs-lab/kvs/internal/base"
	"github.com/kvs-lab/kvs/memtable"
)

// visible returns what a reader at snapshot seq sees in kvs: for each user
// key, the value of its newest version with a sequence number <= seq,
// unless that version is a deletion.
func visible(kvs []kv, seq uint64) map[string]string {
	newest := map[string]kv{}
	for _, e := range kvs {
		k := string(e.key.UserKey)
		if old, ok := newest[k]; e.key.Seq() <= seq && (!ok || e.key.Seq() > old.key.Seq()) {
			newest[k] = e
		}
	}
	out := map[string]string{}
	for k, e := range newest {
		if e.key.Kind() == base.KindSet {
			out[k] = string(e.value)
		}
	}
	return out
}

// modelDBIter is the reference for dbIter: the sorted visible keys in
// bounds, and a position in [-1, len(keys)]: -1 is before the start,
// len(keys) past the end.
type modelDBIter struct {
	keys []string
	vals map[string]string
	pos  int
	set  bool // positioned at least once
}

func newModelDBIter(vals map[string]string, lower, upper []byte) *modelDBIter {
	m := &modelDBIter{vals: vals}
	for k := range vals {
		if (lower == nil || k >= string(lower)) && (upper == nil || k < string(upper)) {
			m.keys = append(m.keys, k)
		}
	}
	slices.Sort(m.keys)
	return m
}

func (m *modelDBIter) valid() bool { return m.set && m.pos >= 0 && m.pos < len(m.keys) }

func (m *modelDBIter) moveTo(pos int) bool {
	m.pos, m.set = pos, true
	return m.valid()
}

func (m *modelDBIter) seekGE(k []byte) bool { return m.moveTo(sort.SearchStrings(m.keys, string(k))) }
func (m *modelDBIter) seekLT(k []byte) bool {
	return m.moveTo(sort.SearchStrings(m.keys, string(k)) - 1)
}

// next moves forward: from before the start to the first key, and not
// past the end.
func (m *modelDBIter) next() bool {
	if m.set && m.pos < len(m.keys) {
		m.pos++
	}
	return m.valid()
}

// prev moves backward: from past the end to the last key, and not before
// the start.
func (m *modelDBIter) prev() bool {
	if m.set && m.pos >= 0 {
		m.pos--
	}
	return m.valid()
}

// dbChecker drives a dbIter and a modelDBIter in step.
type dbChecker struct {
	t   testing.TB
	it  *dbIter
	m   *modelDBIter
	ops []string
}

// move makes one random move on both and returns their results.
func (c *dbChecker) move(rng *rand.Rand, nKeys int) (got, want bool) {
	switch op := rng.IntN(10); {
	case op == 0:
		c.ops = append(c.ops, "First")
		got, want = c.it.First(), c.m.moveTo(0)
	case op == 1:
		c.ops = append(c.ops, "Last")
		got, want = c.it.Last(), c.m.moveTo(len(c.m.keys)-1)
	case op == 2:
		k := seekKey(rng, nKeys)
		c.ops = append(c.ops, "SeekGE("+string(k)+")")
		got, want = c.it.SeekGE(k), c.m.seekGE(k)
	case op == 3:
		k := seekKey(rng, nKeys)
		c.ops = append(c.ops, "SeekLT("+string(k)+")")
		got, want = c.it.SeekLT(k), c.m.seekLT(k)
	case op < 7:
		c.ops = append(c.ops, "Next")
		got, want = c.it.Next(), c.m.next()
	default:
		c.ops = append(c.ops, "Prev")
		got, want = c.it.Prev(), c.m.prev()
	}
	return got, want
}

func (c *dbChecker) check(got, want bool) {
	c.t.Helper()
	if err := c.it.Error(); err != nil {
		c.fail("error: %v", err)
	}
	if got != c.it.Valid() {
		c.fail("move returned %v, Valid() = %v", got, c.it.Valid())
	}
	if got != want {
		if got {
			c.fail("at %q, want exhausted", c.it.Key())
		}
		c.fail("exhausted, want %q", c.m.keys[c.m.pos])
	}
	if !got {
		if c.it.Key() != nil || c.it.Value() != nil {
			c.fail("exhausted but Key %q, Value %q", c.it.Key(), c.it.Value())
		}
		return
	}
	wk := c.m.keys[c.m.pos]
	if k, v := c.it.Key(), c.it.Value(); string(k) != wk || string(v) != c.m.vals[wk] {
		c.fail("at %q=%q, want %q=%q", k, v, wk, c.m.vals[wk])
	}
}

func (c *dbChecker) fail(format string, args ...any) {
	c.t.Helper()
	c.t.Fatalf("after %s: %s", strings.Join(lastOps(c.ops, 20), " "), fmt.Sprintf(format, args...))
}

// randomBounds returns nil or a seek key for each bound, lower <= upper.
func randomBounds(rng *rand.Rand, nKeys int) (lower, upper []byte) {
	if rng.IntN(2) == 0 {
		lower = seekKey(rng, nKeys)
	}
	if rng.IntN(2) == 0 {
		upper = seekKey(rng, nKeys)
	}
	if lower != nil && upper != nil && bytes.Compare(lower, upper) > 0 {
		lower, upper = upper, lower
	}
	return lower, upper
}

// newBoundedSources is newSources, with memtable children bounded too
// when bounded is set: dbIter must not care whether they are.
func newBoundedSources(t testing.TB, kind sourceKind, srcs [][]kv, bounded bool, lower, upper []byte) []base.InternalIterator {
	iters := newSources(t, kind, srcs)
	if !bounded {
		return iters
	}
	for i, it := range iters {
		if _, ok := it.(*memtable.Iterator); ok {
			m := memtable.New(1 << 20)
			for _, e := range srcs[i] {
				if err := m.Add(e.key, e.value); err != nil {
					t.Fatal(err)
				}
			}
			iters[i] = m.NewIter(lower, upper)
		}
	}
	return iters
}

func TestDBIterMatchesModelAtRandomSnapshots(t *testing.T) {
	rng := testRand(t)
	rounds := 300
	if testing.Short() {
		rounds = 60
	}
	for _, kind := range sourceKinds {
		t.Run("source="+string(kind), func(t *testing.T) {
			for range rounds {
				nKeys := 1 + rng.IntN(40)
				n := rng.IntN(400)
				all := genKVs(rng, n, nKeys)
				srcs := split(rng, all, 1+rng.IntN(6))
				seq := uint64(rng.IntN(n + 2))
				if rng.IntN(4) == 0 {
					seq = base.SeqMax
				}
				lower, upper := randomBounds(rng, nKeys)
				iters := newBoundedSources(t, kind, srcs, rng.IntN(2) == 0, lower, upper)
				var internal base.InternalIterator = newMergingIter(iters...)
				if len(iters) == 1 && rng.IntN(2) == 0 {
					internal = iters[0] // dbIter takes any internal iterator
				}
				c := &dbChecker{
					t:  t,
					it: newDBIter(internal, seq, kvs.IterOptions{LowerBound: lower, UpperBound: upper}),
					m:  newModelDBIter(visible(all, seq), lower, upper),
				}
				c.ops = append(c.ops, fmt.Sprintf("[seq %d, bounds %q %q]", seq, lower, upper))
				for range 300 {
					c.check(c.move(rng, nKeys))
				}
				if err := c.it.Close(); err != nil {
					t.Fatal(err)
				}
			}
		})
	}
}

func TestDBIterScansMatchModel(t *testing.T) {
	rng := testRand(t)
	for range 50 {
		nKeys := 1 + rng.IntN(100)
		n := rng.IntN(1000)
		all := genKVs(rng, n, nKeys)
		seq := uint64(rng.IntN(n + 2))
		lower, upper := randomBounds(rng, nKeys)
		it := newDBIter(newMergingIter(newSources(t, sourceMixed, split(rng, all, 4))...), seq, kvs.IterOptions{LowerBound: lower, UpperBound: upper})
		m := newModelDBIter(visible(all, seq), lower, upper)
		var fwd, bwd []string
		for ok := it.First(); ok; ok = it.Next() {
			fwd = append(fwd, string(it.Key())+"="+string(it.Value()))
		}
		for ok := it.Last(); ok; ok = it.Prev() {
			bwd = append(bwd, string(it.Key())+"="+string(it.Value()))
		}
		slices.Reverse(bwd)
		var want []string
		for _, k := range m.keys {
			want = append(want, k+"="+m.vals[k])
		}
		if !slices.Equal(fwd, want) || !slices.Equal(bwd, want) {
			t.Fatalf("seq %d, bounds %q %q:\nforward  %v\nbackward %v\nwant     %v", seq, lower, upper, fwd, bwd, want)
		}
		if err := it.Close(); err != nil {
			t.Fatal(err)
		}
	}
}

// TestDBIterHidesVersions walks one small history at each snapshot, both
// ways: the cases reverse iteration gets wrong if it shows the first
// visible version it meets instead of the newest.
func TestDBIterHidesVersions(t *testing.T) {
	set := func(k string, seq uint64, v string) kv {
		return kv{base.MakeInternalKey([]byte(k), seq, base.KindSet), []byte(v)}
	}
	del := func(k string, seq uint64) kv { return kv{key: base.MakeInternalKey([]byte(k), seq, base.KindDelete)} }
	// a: set 1, set 3, deleted 5, set 7.  b: set 2, deleted 4.  c: set 6.
	newer := []kv{set("a", 7, "a7"), del("a", 5), del("b", 4), set("c", 6, "c6")}
	older := []kv{set("a", 3, "a3"), set("a", 1, "a1"), set("b", 2, "b2")}
	want := []string{
		0: "",
		1: "a=a1",
		2: "a=a1 b=b2",
		3: "a=a3 b=b2",
		4: "a=a3",
		5: "",
		6: "c=c6",
		7: "a=a7 c=c6",
	}
	for seq, w := range want {
		t.Run(fmt.Sprintf("seq=%d", seq), func(t *testing.T) {
			it := newDBIter(newMergingIter(newSliceIter(newer), newSliceIter(older)), uint64(seq), kvs.IterOptions{})
			defer it.Close()
			var fwd, bwd []string
			for ok := it.First(); ok; ok = it.Next() {
				fwd = append(fwd, string(it.Key())+"="+string(it.Value()))
			}
			for ok := it.Last(); ok; ok = it.Prev() {
				bwd = append(bwd, string(it.Key())+"="+string(it.Value()))
			}
			slices.Reverse(bwd)
			if f, b := strings.Join(fwd, " "), strings.Join(bwd, " "); f != w || b != w {
				t.Fatalf("forward %q, backward %q, want %q", f, b, w)
			}
		})
	}
}

// TestDBIterKeyOutlivesChildMoves checks that Key and Value stay put
// while the iterator does not move, though the children reuse their
// buffers: a backward step moves the children past the key it shows.
func TestDBIterKeyOutlivesChildMoves(t *testing.T) {
	src := []kv{
		{base.MakeInternalKey([]byte("a"), 2, base.KindSet), []byte("a2")},
		{base.MakeInternalKey([]byte("b"), 4, base.KindSet), []byte("b4")},
		{base.MakeInternalKey([]byte("b"), 3, base.KindSet), []byte("b3")},
	}
	it := newDBIter(newSliceIter(src), base.SeqMax, kvs.IterOptions{})
	defer it.Close()
	if !it.Last() || string(it.Key()) != "b" || string(it.Value()) != "b4" {
		t.Fatalf("Last: %q=%q", it.Key(), it.Value())
	}
	if !it.Prev() || string(it.Key()) != "a" || string(it.Value()) != "a2" {
		t.Fatalf("Prev: %q=%q", it.Key(), it.Value())
	}
	if !it.Next() || string(it.Key()) != "b" || string(it.Value()) != "b4" {
		t.Fatalf("Next: %q=%q", it.Key(), it.Value())
	}
}

// TestDBIterFailingChild fails one child after a random number of moves:
// until then the iterator matches the model and shows nothing the failure
// could have cut short; from then on it is invalid, Error and Close report
// the failure, and Close may be called again.
func TestDBIterFailingChild(t *testing.T) {
	rng := testRand(t)
	for round := range 300 {
		nKeys := 1 + rng.IntN(30)
		n := 1 + rng.IntN(300)
		all := genKVs(rng, n, nKeys)
		seq := uint64(rng.IntN(n + 2))
		iters := newSources(t, sourceMixed, split(rng, all, 1+rng.IntN(4)))
		iters[0].(*sliceIter).failAfter = 1 + rng.IntN(150)
		merged := newMergingIter(iters...)
		c := &dbChecker{t: t, it: newDBIter(merged, seq, kvs.IterOptions{}), m: newModelDBIter(visible(all, seq), nil, nil)}
		failed := false
		for range 200 {
			if !failed {
				got, want := c.move(rng, nKeys)
				if failed = c.it.Error() != nil; !failed {
					if merged.Error() != nil {
						c.fail("the merged iterator failed (%v) but dbIter did not notice", merged.Error())
					}
					c.check(got, want)
					continue
				}
				if got || c.it.Valid() {
					c.fail("the failing move returned %v, Valid %v", got, c.it.Valid())
				}
			}
			for _, ok := range []bool{c.it.First(), c.it.Last(), c.it.Next(), c.it.Prev(), c.it.SeekGE(userKey(0)), c.it.SeekLT(userKey(nKeys))} {
				if ok || c.it.Valid() || c.it.Key() != nil {
					t.Fatalf("round %d: a move after the failure succeeded", round)
				}
			}
			if !errors.Is(c.it.Error(), errInjected) {
				t.Fatalf("round %d: error %v, want the injected one", round, c.it.Error())
			}
		}
		err := c.it.Close()
		if failed != errors.Is(err, errInjected) {
			t.Fatalf("round %d: failed %v, Close returned %v", round, failed, err)
		}
		if err2 := c.it.Close(); err2 != err {
			t.Fatalf("round %d: second Close returned %v, first %v", round, err2, err)
		}
	}
}

func TestDBIterCloseTwiceAndMovesAfterClose(t *testing.T) {
	src := newSliceIter([]kv{{base.MakeInternalKey([]byte("a"), 1, base.KindSet), []byte("x")}})
	it := newDBIter(src, base.SeqMax, kvs.IterOptions{})
	if !it.First() {
		t.Fatal("First on one key is not valid")
	}
	if err := it.Close(); err != nil {
		t.Fatal(err)
	}
	if err := it.Close(); err != nil {
		t.Fatalf("second Close: %v", err)
	}
	if src.closed != 1 {
		t.Fatalf("child closed %d times, want once", src.closed)
	}
	for _, ok := range []bool{it.First(), it.Last(), it.Next(), it.Prev(), it.SeekGE([]byte("a")), it.SeekLT([]byte("b"))} {
		if ok || it.Valid() || it.Key() != nil {
			t.Fatal("a move after Close succeeded")
		}
	}
}

// BenchmarkDBIter measures one step of a full scan through dbIter over a
// mergingIter of 4 memtables holding 100k entries: versions per user key,
// all visible, the newest shown. An op is one user key.
func BenchmarkDBIter(b *testing.B) {
	const total = 100_000
	for _, versions := range []int{1, 4} {
		for _, dir := range []string{"forward", "backward"} {
			b.Run(fmt.Sprintf("versions=%d/dir=%s", versions, dir), func(b *testing.B) {
				mts := make([]*memtable.Memtable, 4)
				for i := range mts {
					mts[i] = memtable.New(64 << 20)
				}
				for i := range total {
					uk := fmt.Appendf(nil, "k%07d", i/versions)
					k := base.MakeInternalKey(uk, uint64(i+1), base.KindSet)
					if err := mts[i%len(mts)].Add(k, make([]byte, 16)); err != nil {
						b.Fatal(err)
					}
				}
				iters := make([]base.InternalIterator, len(mts))
				for i, m := range mts {
					iters[i] = m.NewIter(nil, nil)
				}
				benchScan(b, newDBIter(newMergingIter(iters...), base.SeqMax, kvs.IterOptions{}), dir)
			})
		}
	}
}
