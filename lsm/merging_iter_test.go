package lsm

import (
	"bytes"
	"errors"
	"flag"
	"fmt"
	"math/rand/v2"
	"slices"
	"sort"
	"strings"
	"testing"
	"time"

	"github.com/kvs-lab/kvs/internal/base"
	"github.com/kvs-lab/kvs/memtable"
)

var seedFlag = flag.Uint64("seed", 0, "seed for the randomized iterator tests (0: from the clock)")

// testRand returns a seeded random source and logs the seed, so a failure
// can be replayed with -seed.
func testRand(t testing.TB) *rand.Rand {
	t.Helper()
	seed := *seedFlag
	if seed == 0 {
		seed = uint64(time.Now().UnixNano())
	}
	t.Logf("seed %d (replay with -seed %d)", seed, seed)
	return rand.New(rand.NewPCG(seed, seed))
}

// kv is one internal key and its value, as the models hold them.
type kv struct {
	key   base.InternalKey
	value []byte
}

func (e kv) String() string { return fmt.Sprintf("%s=%q", e.key, e.value) }

func compareKVs(a, b kv) int { return base.InternalCompare(a.key, b.key) }

// errInjected is the error a failing sliceIter reports.
var errInjected = errors.New("injected iterator failure")

// sliceIter is a base.InternalIterator over a sorted slice. Its Key and
// Value are copies into buffers it overwrites on every move, so a caller
// that keeps them past a move sees them change, as it would with an
// sstable iterator's block buffers. With failAfter > 0 the move numbered
// failAfter fails with errInjected.
type sliceIter struct {
	kvs       []kv
	pos       int // valid when 0 <= pos < len(kvs) and err == nil
	keyBuf    []byte
	valBuf    []byte
	moves     int
	failAfter int
	err       error
	closeErr  error
	closed    int
}

func newSliceIter(kvs []kv) *sliceIter { return &sliceIter{kvs: kvs, pos: -1} }

// set moves to pos, or fails, and returns Valid().
func (s *sliceIter) set(pos int) bool {
	if s.err != nil {
		return false
	}
	s.moves++
	if s.failAfter > 0 && s.moves >= s.failAfter {
		s.err = errInjected
		s.pos = -1
		return false
	}
	s.pos = pos
	// Clobber the old buffers before refilling them.
	for i := range s.keyBuf {
		s.keyBuf[i] = '#'
	}
	for i := range s.valBuf {
		s.valBuf[i] = '#'
	}
	if !s.Valid() {
		return false
	}
	s.keyBuf = append(s.keyBuf[:0], s.kvs[pos].key.UserKey...)
	s.valBuf = append(s.valBuf[:0], s.kvs[pos].value...)
	return true
}

func (s *sliceIter) SeekGE(key []byte) bool {
	return s.set(sort.Search(len(s.kvs), func(i int) bool { return bytes.Compare(s.kvs[i].key.UserKey, key) >= 0 }))
}

func (s *sliceIter) SeekLT(key []byte) bool {
	return s.set(sort.Search(len(s.kvs), func(i int) bool { return bytes.Compare(s.kvs[i].key.UserKey, key) >= 0 }) - 1)
}

func (s *sliceIter) First() bool { return s.set(0) }
func (s *sliceIter) Last() bool  { return s.set(len(s.kvs) - 1) }

func (s *sliceIter) Next() bool {
	if !s.Valid() {
		return false
	}
	return s.set(s.pos + 1)
}

func (s *sliceIter) Prev() bool {
	if !s.Valid() {
		return false
	}
	return s.set(s.pos - 1)
}

func (s *sliceIter) Valid() bool { return s.err == nil && s.pos >= 0 && s.pos < len(s.kvs) }

func (s *sliceIter) Key() base.InternalKey {
	if !s.Valid() {
		return base.InternalKey{}
	}
	return base.InternalKey{UserKey: s.keyBuf, Trailer: s.kvs[s.pos].key.Trailer}
}

func (s *sliceIter) Value() []byte {
	if !s.Valid() {
		return nil
	}
	return s.valBuf
}

func (s *sliceIter) Error() error { return s.err }

func (s *sliceIter) Close() error {
	s.closed++
	if s.err != nil {
		return s.err
	}
	return s.closeErr
}

// genKVs returns n entries over nKeys user keys: distinct sequence numbers
// from 1, about a quarter deletions, values naming their key and seq.
func genKVs(rng *rand.Rand, n, nKeys int) []kv {
	seqs := rng.Perm(n)
	out := make([]kv, n)
	for i := range out {
		uk := userKey(rng.IntN(nKeys))
		seq := uint64(seqs[i] + 1)
		kind := base.KindSet
		var value []byte
		if rng.IntN(4) == 0 {
			kind = base.KindDelete
		} else {
			value = fmt.Appendf(nil, "%s@%d", uk, seq)
		}
		out[i] = kv{key: base.MakeInternalKey(uk, seq, kind), value: value}
	}
	return out
}

// userKey returns the i-th user key: they sort as their numbers do.
func userKey(i int) []byte { return fmt.Appendf(nil, "k%04d", i) }

// seekKey returns a random seek target among nKeys user keys: a key, a
// key between two keys, or one below or above all of them.
func seekKey(rng *rand.Rand, nKeys int) []byte {
	k := userKey(rng.IntN(nKeys+2) - 1)
	if rng.IntN(3) == 0 {
		k = append(k, 'x')
	}
	return k
}

// split deals kvs out to k sorted sources.
func split(rng *rand.Rand, kvs []kv, k int) [][]kv {
	srcs := make([][]kv, k)
	for _, e := range kvs {
		i := rng.IntN(k)
		srcs[i] = append(srcs[i], e)
	}
	for _, s := range srcs {
		slices.SortFunc(s, compareKVs)
	}
	return srcs
}

// sourceKind says what a test builds its merged children from.
type sourceKind string

const (
	sourceSlice    sourceKind = "slice"
	sourceMemtable sourceKind = "memtable"
	sourceMixed    sourceKind = "mixed"
)

var sourceKinds = []sourceKind{sourceSlice, sourceMemtable, sourceMixed}

// newSources returns an iterator over each of srcs, of the given kind,
// unbounded.
func newSources(t testing.TB, kind sourceKind, srcs [][]kv) []base.InternalIterator {
	t.Helper()
	iters := make([]base.InternalIterator, len(srcs))
	for i, s := range srcs {
		if kind == sourceSlice || (kind == sourceMixed && i%2 == 0) {
			iters[i] = newSliceIter(s)
			continue
		}
		size := memtable.EmptySize
		for _, e := range s {
			size += memtable.MaxNodeSize(len(e.key.UserKey), len(e.value))
		}
		m := memtable.New(size)
		for _, e := range s {
			if err := m.Add(e.key, e.value); err != nil {
				t.Fatalf("memtable add %s: %v", e, err)
			}
		}
		iters[i] = m.NewIter(nil, nil)
	}
	return iters
}

// modelMerge is the reference for mergingIter: the sorted union.
type modelMerge struct {
	kvs []kv
	pos int
}

func (m *modelMerge) valid() bool { return m.pos >= 0 && m.pos < len(m.kvs) }

func (m *modelMerge) seekGE(key []byte) bool {
	m.pos = sort.Search(len(m.kvs), func(i int) bool { return bytes.Compare(m.kvs[i].key.UserKey, key) >= 0 })
	return m.valid()
}

func (m *modelMerge) seekLT(key []byte) bool {
	m.seekGE(key)
	m.pos--
	return m.valid()
}

// step moves by d; like the real iterators, it stays put when not at an
// entry.
func (m *modelMerge) step(d int) bool {
	if m.valid() {
		m.pos += d
	}
	return m.valid()
}

// mergeChecker drives a mergingIter and a modelMerge in step.
type mergeChecker struct {
	t   testing.TB
	it  *mergingIter
	m   *modelMerge
	ops []string
}

// move makes one random move on both and returns their results.
func (c *mergeChecker) move(rng *rand.Rand, nKeys int) (got, want bool) {
	switch op := rng.IntN(10); {
	case op == 0:
		c.ops = append(c.ops, "First")
		got, want = c.it.First(), c.m.seekGE(nil)
	case op == 1:
		c.ops = append(c.ops, "Last")
		got = c.it.Last()
		c.m.pos = len(c.m.kvs) - 1
		want = c.m.valid()
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
		got, want = c.it.Next(), c.m.step(1)
	default:
		c.ops = append(c.ops, "Prev")
		got, want = c.it.Prev(), c.m.step(-1)
	}
	return got, want
}

// do makes one random move on both and checks they agree.
func (c *mergeChecker) do(rng *rand.Rand, nKeys int) {
	c.t.Helper()
	c.check(c.move(rng, nKeys))
}

func (c *mergeChecker) check(got, want bool) {
	c.t.Helper()
	if err := c.it.Error(); err != nil {
		c.fail("error: %v", err)
	}
	if got != c.it.Valid() {
		c.fail("move returned %v, Valid() = %v", got, c.it.Valid())
	}
	if got != want {
		if got {
			c.fail("at %s, want exhausted", c.it.Key())
		}
		c.fail("exhausted, want %s", c.m.kvs[c.m.pos])
	}
	if got {
		e := c.m.kvs[c.m.pos]
		if k := c.it.Key(); base.InternalCompare(k, e.key) != 0 || !bytes.Equal(c.it.Value(), e.value) {
			c.fail("at %s=%q, want %s", k, c.it.Value(), e)
		}
	}
}

func (c *mergeChecker) fail(format string, args ...any) {
	c.t.Helper()
	c.t.Fatalf("after %s: %s", strings.Join(lastOps(c.ops, 20), " "), fmt.Sprintf(format, args...))
}

// lastOps returns the last n of ops, for failure messages.
func lastOps(ops []string, n int) []string {
	if len(ops) > n {
		return append([]string{"..."}, ops[len(ops)-n:]...)
	}
	return ops
}

func TestMergingIterScansTheSortedUnion(t *testing.T) {
	rng := testRand(t)
	for _, kind := range sourceKinds {
		for _, k := range []int{0, 1, 2, 5, 16} {
			t.Run(fmt.Sprintf("source=%s/children=%d", kind, k), func(t *testing.T) {
				all := genKVs(rng, 500, 60)
				if k == 0 {
					all = nil
				}
				srcs := split(rng, all, max(k, 1))[:k]
				slices.SortFunc(all, compareKVs)
				it := newMergingIter(newSources(t, kind, srcs)...)
				defer it.Close()
				var got []kv
				for ok := it.First(); ok; ok = it.Next() {
					got = append(got, kv{it.Key().Clone(), bytes.Clone(it.Value())})
				}
				checkScan(t, "forward", got, all)
				got = got[:0]
				for ok := it.Last(); ok; ok = it.Prev() {
					got = append(got, kv{it.Key().Clone(), bytes.Clone(it.Value())})
				}
				slices.Reverse(got)
				checkScan(t, "backward", got, all)
				if err := it.Close(); err != nil {
					t.Fatal(err)
				}
			})
		}
	}
}

func checkScan(t *testing.T, dir string, got, want []kv) {
	t.Helper()
	if len(got) != len(want) {
		t.Fatalf("%s scan: %d entries, want %d", dir, len(got), len(want))
	}
	for i := range got {
		if compareKVs(got[i], want[i]) != 0 || !bytes.Equal(got[i].value, want[i].value) {
			t.Fatalf("%s scan: entry %d is %s, want %s", dir, i, got[i], want[i])
		}
	}
}

func TestMergingIterMatchesModelUnderRandomMoves(t *testing.T) {
	rng := testRand(t)
	rounds := 100
	if testing.Short() {
		rounds = 20
	}
	for _, kind := range sourceKinds {
		t.Run("source="+string(kind), func(t *testing.T) {
			for range rounds {
				nKeys := 1 + rng.IntN(40)
				all := genKVs(rng, rng.IntN(300), nKeys)
				srcs := split(rng, all, 1+rng.IntN(8))
				slices.SortFunc(all, compareKVs)
				c := &mergeChecker{t: t, it: newMergingIter(newSources(t, kind, srcs)...), m: &modelMerge{kvs: all, pos: -1}}
				for range 300 {
					c.do(rng, nKeys)
				}
				if err := c.it.Close(); err != nil {
					t.Fatal(err)
				}
			}
		})
	}
}

// TestMergingIterOrdersTiesByChild checks the documented tie order: equal
// internal keys come lower child index first going forward, in exact
// reverse going backward, also across direction changes.
func TestMergingIterOrdersTiesByChild(t *testing.T) {
	k := func(s string, seq uint64) base.InternalKey { return base.MakeInternalKey([]byte(s), seq, base.KindSet) }
	srcs := [][]kv{
		{{k("a", 5), []byte("a0")}, {k("b", 5), []byte("b0")}},
		{{k("a", 5), []byte("a1")}, {k("b", 5), []byte("b1")}},
		{{k("a", 5), []byte("a2")}, {k("b", 4), []byte("b2")}},
	}
	it := newMergingIter(newSources(t, sourceSlice, srcs)...)
	defer it.Close()
	var got []string
	for ok := it.First(); ok; ok = it.Next() {
		got = append(got, string(it.Value()))
	}
	if s := strings.Join(got, " "); s != "a0 a1 a2 b0 b1 b2" {
		t.Fatalf("forward: %s", s)
	}
	got = got[:0]
	for ok := it.Last(); ok; ok = it.Prev() {
		got = append(got, string(it.Value()))
	}
	if s := strings.Join(got, " "); s != "b2 b1 b0 a2 a1 a0" {
		t.Fatalf("backward: %s", s)
	}
	// Zig-zag through the ties: each turn must land next to where it was.
	got = got[:0]
	it.First()
	it.Next() // a1
	for _, move := range []func() bool{it.Next, it.Prev, it.Prev, it.Next, it.Next, it.Next, it.Prev, it.Next} {
		move()
		got = append(got, string(it.Value()))
	}
	if s := strings.Join(got, " "); s != "a2 a1 a0 a1 a2 b0 a2 b0" {
		t.Fatalf("zig-zag: %s", s)
	}
}

// TestMergingIterFailingChild fails one child after a random number of
// moves: until then the merge matches the model; from then on it is
// invalid, whatever the move, and Error and Close report the failure.
func TestMergingIterFailingChild(t *testing.T) {
	rng := testRand(t)
	for round := range 200 {
		nKeys := 1 + rng.IntN(30)
		all := genKVs(rng, 1+rng.IntN(200), nKeys)
		srcs := split(rng, all, 1+rng.IntN(5))
		slices.SortFunc(all, compareKVs)
		iters := newSources(t, sourceMixed, srcs)
		bad := iters[0].(*sliceIter)
		bad.failAfter = 1 + rng.IntN(100)
		c := &mergeChecker{t: t, it: newMergingIter(iters...), m: &modelMerge{kvs: all, pos: -1}}
		failed := false
		for range 200 {
			if !failed {
				got, want := c.move(rng, nKeys)
				if failed = c.it.Error() != nil; !failed {
					c.check(got, want)
					continue
				}
			}
			// Every move fails from the failing one on.
			for _, ok := range []bool{c.it.First(), c.it.Last(), c.it.Next(), c.it.Prev(), c.it.SeekGE(userKey(0)), c.it.SeekLT(userKey(nKeys))} {
				if ok || c.it.Valid() {
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
		for i, child := range iters {
			if s, ok := child.(*sliceIter); ok && s.closed != 1 {
				t.Fatalf("round %d: child %d closed %d times", round, i, s.closed)
			}
		}
	}
}

func TestMergingIterCloseReturnsFirstChildError(t *testing.T) {
	a, b, c := newSliceIter(nil), newSliceIter(nil), newSliceIter(nil)
	errB, errC := errors.New("b"), errors.New("c")
	b.closeErr, c.closeErr = errB, errC
	it := newMergingIter(a, b, c)
	if it.First() {
		t.Fatal("First over empty children is valid")
	}
	if err := it.Close(); err != errB {
		t.Fatalf("Close: %v, want %v", err, errB)
	}
	if err := it.Close(); err != errB {
		t.Fatalf("second Close: %v, want %v", err, errB)
	}
	if a.closed != 1 || b.closed != 1 || c.closed != 1 {
		t.Fatalf("children closed %d, %d, %d times, want once each", a.closed, b.closed, c.closed)
	}
}

// benchSources returns n iterators of the given kind sharing total
// entries: user keys k0000000.. dealt round-robin, so every step changes
// child.
func benchSources(b *testing.B, kind sourceKind, n, total int) []base.InternalIterator {
	srcs := make([][]kv, n)
	for i := range total {
		k := base.MakeInternalKey(fmt.Appendf(nil, "k%07d", i), uint64(i+1), base.KindSet)
		srcs[i%n] = append(srcs[i%n], kv{k, make([]byte, 16)})
	}
	return newSources(b, kind, srcs)
}

// BenchmarkMergingIter measures one step of a full scan over 100k entries
// spread over several sources; an op is one entry. Slice sources show the
// heap's own cost; memtable sources add the skiplist's, whose Prev is a
// search from the head (see memtable.Iterator).
func BenchmarkMergingIter(b *testing.B) {
	const total = 100_000
	for _, kind := range []sourceKind{sourceSlice, sourceMemtable} {
		for _, n := range []int{1, 4, 16} {
			for _, dir := range []string{"forward", "backward"} {
				b.Run(fmt.Sprintf("source=%s/sources=%d/dir=%s", kind, n, dir), func(b *testing.B) {
					benchScan(b, newMergingIter(benchSources(b, kind, n, total)...), dir)
				})
			}
		}
	}
}

// scanner is what benchScan needs: both base.InternalIterator and
// kvs.Iterator have it.
type scanner interface {
	First() bool
	Last() bool
	Next() bool
	Prev() bool
	Close() error
}

// benchScan times one step of endless full scans of it in direction dir.
func benchScan(b *testing.B, it scanner, dir string) {
	defer it.Close()
	start, step := it.First, it.Next
	if dir == "backward" {
		start, step = it.Last, it.Prev
	}
	b.ReportAllocs()
	start()
	for b.Loop() {
		if !step() {
			start()
		}
	}
}
