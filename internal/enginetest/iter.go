package enginetest

import (
	"bytes"
	"fmt"
	"math/rand"
	"slices"
	"sort"
	"strings"
	"testing"

	"github.com/kvs-lab/kvs"
)

// modelIter is the reference iterator: a sorted slice of the keys in
// bounds.
type modelIter struct {
	keys  []string
	vals  map[string]string
	pos   int
	valid bool
}

func newModelIter(s state, lower, upper []byte) *modelIter {
	m := &modelIter{vals: s}
	for _, k := range s.sortedKeys() {
		if lower != nil && k < string(lower) {
			continue
		}
		if upper != nil && k >= string(upper) {
			continue
		}
		m.keys = append(m.keys, k)
	}
	return m
}

func (m *modelIter) set(pos int) bool {
	m.pos = pos
	m.valid = pos >= 0 && pos < len(m.keys)
	return m.valid
}

func (m *modelIter) First() bool { return m.set(0) }
func (m *modelIter) Last() bool  { return m.set(len(m.keys) - 1) }
func (m *modelIter) SeekGE(k []byte) bool {
	return m.set(sort.SearchStrings(m.keys, string(k)))
}
func (m *modelIter) SeekLT(k []byte) bool {
	return m.set(sort.SearchStrings(m.keys, string(k)) - 1)
}
func (m *modelIter) Next() bool { return m.set(m.pos + 1) }
func (m *modelIter) Prev() bool { return m.set(m.pos - 1) }
func (m *modelIter) Key() string {
	return m.keys[m.pos]
}

// iterChecker drives an engine iterator and a model iterator in step and
// reports the first disagreement.
type iterChecker struct {
	t    testing.TB
	it   kvs.Iterator
	m    *modelIter
	desc string   // bounds, for messages
	ops  []string // moves so far, for messages
}

func (c *iterChecker) do(name string, arg []byte) {
	c.t.Helper()
	if arg != nil {
		name = fmt.Sprintf("%s(%s)", name, fmtKey(string(arg)))
	}
	c.ops = append(c.ops, name)
	var got, want bool
	switch {
	case strings.HasPrefix(name, "First"):
		got, want = c.it.First(), c.m.First()
	case strings.HasPrefix(name, "Last"):
		got, want = c.it.Last(), c.m.Last()
	case strings.HasPrefix(name, "SeekGE"):
		got, want = c.it.SeekGE(arg), c.m.SeekGE(arg)
	case strings.HasPrefix(name, "SeekLT"):
		got, want = c.it.SeekLT(arg), c.m.SeekLT(arg)
	case strings.HasPrefix(name, "Next"):
		got, want = c.it.Next(), c.m.Next()
	case strings.HasPrefix(name, "Prev"):
		got, want = c.it.Prev(), c.m.Prev()
	default:
		panic("enginetest: unknown iterator move " + name)
	}
	c.check(got, want)
}

func (c *iterChecker) check(got, want bool) {
	c.t.Helper()
	if got != c.it.Valid() {
		c.fail("move returned %v but Valid() = %v", got, c.it.Valid())
	}
	if got != want {
		if got {
			c.fail("iterator is at %s, want exhausted", fmtKey(string(c.it.Key())))
		}
		c.fail("iterator is exhausted (error %v), want key %s", c.it.Error(), fmtKey(c.m.Key()))
	}
	if !got {
		if err := c.it.Error(); err != nil {
			c.fail("iterator error: %v", err)
		}
		return
	}
	k := c.it.Key()
	v := c.it.Value()
	wk := c.m.Key()
	if string(k) != wk {
		c.fail("iterator is at %s, want %s", fmtKey(string(k)), fmtKey(wk))
	}
	if string(v) != c.m.vals[wk] {
		c.fail("value at %s = %s, want %s", fmtKey(wk), fmtVal(string(v)), fmtVal(c.m.vals[wk]))
	}
	// Value must not disturb Key: both stay valid until the next move.
	if string(c.it.Key()) != wk || !bytes.Equal(k, []byte(wk)) {
		c.fail("Key changed after Value was called")
	}
}

func (c *iterChecker) fail(format string, args ...any) {
	c.t.Helper()
	ops := c.ops
	if len(ops) > 12 {
		ops = append([]string{"..."}, ops[len(ops)-12:]...)
	}
	c.t.Fatalf("iterator %s after %s: %s", c.desc, strings.Join(ops, " "), fmt.Sprintf(format, args...))
}

func boundsDesc(o *kvs.IterOptions) string {
	if o == nil {
		return "[nil, nil)"
	}
	lo, hi := "nil", "nil"
	if o.LowerBound != nil {
		lo = fmtKey(string(o.LowerBound))
	}
	if o.UpperBound != nil {
		hi = fmtKey(string(o.UpperBound))
	}
	return "[" + lo + ", " + hi + ")"
}

// checkIter walks a fresh iterator over r with bounds o through moves and
// checks each step against s.
func checkIter(t testing.TB, r kvs.Reader, s state, o *kvs.IterOptions, moves func(c *iterChecker)) {
	t.Helper()
	it, err := r.NewIter(o)
	if err != nil {
		t.Fatalf("new iterator %s: %v", boundsDesc(o), err)
	}
	var lo, hi []byte
	if o != nil {
		lo, hi = o.LowerBound, o.UpperBound
	}
	c := &iterChecker{t: t, it: it, m: newModelIter(s, lo, hi), desc: boundsDesc(o)}
	moves(c)
	if err := it.Close(); err != nil {
		t.Fatalf("close iterator %s: %v", boundsDesc(o), err)
	}
}

// fullWalks checks forward and backward walks and their direction changes.
func fullWalks(c *iterChecker) {
	c.t.Helper()
	c.ops = c.ops[:0]
	c.do("First", nil)
	for c.m.valid {
		c.do("Next", nil)
	}
	c.ops = c.ops[:0]
	c.do("Last", nil)
	for c.m.valid {
		c.do("Prev", nil)
	}
	// Zig-zag: Next then Prev, Prev then Next, at every position.
	c.ops = c.ops[:0]
	c.do("First", nil)
	for c.m.valid {
		c.do("Next", nil)
		if !c.m.valid {
			break
		}
		c.do("Prev", nil)
		c.do("Next", nil)
	}
	c.ops = c.ops[:0]
	c.do("Last", nil)
	for c.m.valid {
		c.do("Prev", nil)
		if !c.m.valid {
			break
		}
		c.do("Next", nil)
		c.do("Prev", nil)
	}
}

// testIterators checks ordered iteration, bounds, seeks and the
// point-in-time view of iterators.
func testIterators(t *testing.T, c Config) {
	contents := state{}
	for i := 0; i < 50; i++ {
		contents[keyf("k%02d", i*2)] = pattern(i%40, i) // k00, k02, ..., k98
	}
	load := func(t testing.TB) kvs.Engine {
		e, _ := openMem(t, c)
		for _, k := range contents.sortedKeys() {
			mustPut(t, e, k, contents[k], kvs.NoSync)
		}
		// Overwrites and deletes leave stale versions behind that
		// iterators must skip.
		mustPut(t, e, "k10", "stale", kvs.NoSync)
		mustPut(t, e, "k10", contents["k10"], kvs.NoSync)
		mustPut(t, e, "k11", "deleted", kvs.NoSync)
		mustDelete(t, e, "k11", kvs.NoSync)
		return e
	}
	t.Run("FullScanInOrderBothWays", func(t *testing.T) {
		e := load(t)
		checkIter(t, e, contents, nil, fullWalks)
		checkIter(t, e, contents, &kvs.IterOptions{}, fullWalks)
	})
	t.Run("BoundsAreLowerInclusiveUpperExclusive", func(t *testing.T) {
		e := load(t)
		for _, b := range [][2]string{
			{"k10", "k20"}, {"k11", "k21"}, {"k10", "k11"}, {"k09", "k10"}, {"", "k05"}, {"k95", ""},
			{"a", "z"}, {"k98", "k99"}, {"k00", "k00\x00"}, {"k", "k0"}, {"k50", ""}, {"", "k50"},
		} {
			o := &kvs.IterOptions{}
			if b[0] != "" {
				o.LowerBound = []byte(b[0])
			}
			if b[1] != "" {
				o.UpperBound = []byte(b[1])
			}
			checkIter(t, e, contents, o, fullWalks)
		}
	})
	t.Run("EmptyRanges", func(t *testing.T) {
		e := load(t)
		for _, b := range [][2]string{
			{"k11", "k12"}, {"k20", "k20"}, {"k30", "k20"}, {"a", "b"}, {"z", ""}, {"", "a"}, {"k99", "l"},
		} {
			o := &kvs.IterOptions{}
			if b[0] != "" {
				o.LowerBound = []byte(b[0])
			}
			if b[1] != "" {
				o.UpperBound = []byte(b[1])
			}
			checkIter(t, e, contents, o, func(c *iterChecker) {
				fullWalks(c)
				c.do("SeekGE", []byte("k"))
				c.do("SeekLT", []byte("l"))
				c.do("SeekGE", []byte(b[0]))
				c.do("SeekLT", []byte(b[1]))
			})
		}
		e2, _ := openMem(t, c)
		checkIter(t, e2, state{}, nil, func(c *iterChecker) {
			fullWalks(c)
			c.do("SeekGE", []byte("a"))
			c.do("SeekLT", []byte("a"))
		})
	})
	t.Run("SeeksInsideBeforeAfterAndAtBounds", func(t *testing.T) {
		e := load(t)
		targets := []string{"a", "k", "k00", "k01", "k10", "k11", "k15", "k19", "k20", "k21", "k30", "k97", "k98", "k99", "l", "\x00", "\xff"}
		for _, o := range []*kvs.IterOptions{
			nil,
			{LowerBound: []byte("k10"), UpperBound: []byte("k20")},
			{LowerBound: []byte("k11"), UpperBound: []byte("k21")},
			{LowerBound: []byte("k15")},
			{UpperBound: []byte("k15")},
		} {
			checkIter(t, e, contents, o, func(c *iterChecker) {
				for _, k := range targets {
					c.ops = c.ops[:0]
					c.do("SeekGE", []byte(k))
					if c.m.valid {
						c.do("Next", nil)
					}
					if c.m.valid {
						c.do("Prev", nil)
					}
					if c.m.valid {
						c.do("Prev", nil)
					}
					c.ops = c.ops[:0]
					c.do("SeekLT", []byte(k))
					if c.m.valid {
						c.do("Prev", nil)
					}
					if c.m.valid {
						c.do("Next", nil)
					}
					if c.m.valid {
						c.do("Next", nil)
					}
				}
			})
		}
	})
	t.Run("IteratorDoesNotSeeLaterWrites", func(t *testing.T) {
		e := load(t)
		it, err := e.NewIter(nil)
		if err != nil {
			t.Fatal(err)
		}
		bounded, err := e.NewIter(&kvs.IterOptions{LowerBound: []byte("k20"), UpperBound: []byte("k40")})
		if err != nil {
			t.Fatal(err)
		}
		later := contents.clone()
		mustPut(t, e, "k01", "new key", kvs.NoSync)
		mustPut(t, e, "k02", "overwritten", kvs.Sync)
		mustDelete(t, e, "k04", kvs.NoSync)
		mustPut(t, e, "k25", "new key", kvs.NoSync)
		mustDelete(t, e, "k30", kvs.NoSync)
		var b kvs.Batch
		b.Put([]byte("k31"), []byte("batch"))
		b.Delete([]byte("k32"))
		b.Put([]byte("zz"), []byte("batch"))
		mustWrite(t, e, &b, kvs.NoSync)
		later["k01"] = "new key"
		later["k02"] = "overwritten"
		delete(later, "k04")
		later["k25"] = "new key"
		delete(later, "k30")
		later["k31"] = "batch"
		delete(later, "k32")
		later["zz"] = "batch"
		if err := e.Compact(); err != nil {
			t.Fatalf("compact: %v", err)
		}
		c1 := &iterChecker{t: t, it: it, m: newModelIter(contents, nil, nil), desc: "[nil, nil) made before the writes"}
		fullWalks(c1)
		c2 := &iterChecker{t: t, it: bounded, m: newModelIter(contents, []byte("k20"), []byte("k40")), desc: "[k20, k40) made before the writes"}
		fullWalks(c2)
		for _, it := range []kvs.Iterator{it, bounded} {
			if err := it.Close(); err != nil {
				t.Fatal(err)
			}
		}
		checkIter(t, e, later, nil, fullWalks)
	})
	t.Run("CloseTwiceAndUseAfterClose", func(t *testing.T) {
		e := load(t)
		it, err := e.NewIter(nil)
		if err != nil {
			t.Fatal(err)
		}
		if !it.First() {
			t.Fatalf("First on a non-empty engine = false (error %v)", it.Error())
		}
		if err := it.Close(); err != nil {
			t.Fatalf("close: %v", err)
		}
		if err := it.Close(); err != nil && !isClosed(err) {
			t.Fatalf("second close: %v, want nil or kvs.ErrClosed", err)
		}
		for name, move := range map[string]func() bool{
			"First": it.First, "Last": it.Last, "Next": it.Next, "Prev": it.Prev,
			"SeekGE": func() bool { return it.SeekGE([]byte("k")) },
			"SeekLT": func() bool { return it.SeekLT([]byte("l")) },
		} {
			if noPanic(t, "iterator "+name+" after Close", move) {
				t.Errorf("iterator %s after Close returned true", name)
			}
		}
		if it.Valid() {
			t.Errorf("closed iterator is Valid")
		}
	})
	t.Run("RepositioningAfterExhaustion", func(t *testing.T) {
		e := load(t)
		checkIter(t, e, contents, &kvs.IterOptions{LowerBound: []byte("k90")}, func(c *iterChecker) {
			c.do("First", nil)
			for c.m.valid {
				c.do("Next", nil)
			}
			c.do("First", nil)
			c.do("Last", nil)
			for c.m.valid {
				c.do("Prev", nil)
			}
			c.do("Last", nil)
			c.do("SeekGE", []byte("k95"))
			c.do("SeekLT", []byte("k90"))
			c.do("SeekGE", []byte("k99"))
			c.do("SeekLT", []byte("k95"))
		})
	})
	t.Run("RandomOpsMatchSortedModel", func(t *testing.T) {
		seeded(t, func(t testing.TB, seed int64, rng *rand.Rand) {
			testIterRandom(t, c, rng)
		})
	})
}

// randIterKey returns a key from a small alphabet so that random bounds and
// seek targets land on, between and around stored keys.
func randIterKey(rng *rand.Rand) string {
	const alphabet = "\x00abc\xff"
	n := 1 + rng.Intn(3)
	b := make([]byte, n)
	for i := range b {
		b[i] = alphabet[rng.Intn(len(alphabet))]
	}
	return string(b)
}

// testIterRandom compares random iterators against a sorted model while
// random writes continue; some iterators are held across writes and must
// keep showing the contents of their creation.
func testIterRandom(t testing.TB, c Config, rng *rand.Rand) {
	e, _ := openMem(t, c)
	model := state{}
	type held struct {
		c *iterChecker
	}
	var open []held
	steps := 400
	if testing.Short() {
		steps = 250
	}
	for step := 0; step < steps; step++ {
		switch r := rng.Intn(20); {
		case r < 8: // put
			k, v := randIterKey(rng), fmt.Sprintf("v%d-%s", step, pattern(rng.Intn(30), step))
			mustPut(t, e, k, v, kvs.NoSync)
			model[k] = v
		case r < 11: // delete
			k := randIterKey(rng)
			mustDelete(t, e, k, kvs.NoSync)
			delete(model, k)
		case r < 12: // batch
			var b kvs.Batch
			for i := rng.Intn(6); i >= 0; i-- {
				k := randIterKey(rng)
				if rng.Intn(3) == 0 {
					b.Delete([]byte(k))
					delete(model, k)
				} else {
					v := fmt.Sprintf("b%d-%d", step, i)
					b.Put([]byte(k), []byte(v))
					model[k] = v
				}
			}
			mustWrite(t, e, &b, kvs.NoSync)
		case r < 13:
			if err := e.Compact(); err != nil {
				t.Fatalf("compact: %v", err)
			}
		case r < 17: // a fresh iterator with random bounds and moves
			o := randBounds(rng)
			checkIter(t, e, model, o, func(c *iterChecker) { randomMoves(c, rng, 30) })
		case r < 18 && len(open) < 4: // open an iterator to hold
			o := randBounds(rng)
			it, err := e.NewIter(o)
			if err != nil {
				t.Fatal(err)
			}
			var lo, hi []byte
			if o != nil {
				lo, hi = o.LowerBound, o.UpperBound
			}
			open = append(open, held{&iterChecker{t: t, it: it, m: newModelIter(model.clone(), lo, hi), desc: boundsDesc(o) + fmt.Sprintf(" made at step %d", step)}})
		case r < 20 && len(open) > 0: // use (and maybe close) a held iterator
			i := rng.Intn(len(open))
			randomMoves(open[i].c, rng, 10)
			if rng.Intn(2) == 0 {
				if err := open[i].c.it.Close(); err != nil {
					t.Fatal(err)
				}
				open = slices.Delete(open, i, i+1)
			}
		}
	}
	for _, h := range open {
		fullWalks(h.c)
		if err := h.c.it.Close(); err != nil {
			t.Fatal(err)
		}
	}
	checkState(t, e, model, nil)
}

func randBounds(rng *rand.Rand) *kvs.IterOptions {
	switch rng.Intn(6) {
	case 0:
		return nil
	case 1:
		return &kvs.IterOptions{LowerBound: []byte(randIterKey(rng))}
	case 2:
		return &kvs.IterOptions{UpperBound: []byte(randIterKey(rng))}
	default:
		a, b := randIterKey(rng), randIterKey(rng)
		if a > b && rng.Intn(4) > 0 {
			a, b = b, a
		}
		return &kvs.IterOptions{LowerBound: []byte(a), UpperBound: []byte(b)}
	}
}

// randomMoves makes n random moves, calling Next and Prev only from a
// valid position (the contract leaves them undefined elsewhere).
func randomMoves(c *iterChecker, rng *rand.Rand, n int) {
	c.t.Helper()
	c.ops = c.ops[:0]
	for i := 0; i < n; i++ {
		switch r := rng.Intn(10); {
		case r < 3 && c.m.valid:
			c.do("Next", nil)
		case r < 6 && c.m.valid:
			c.do("Prev", nil)
		case r < 7:
			c.do("First", nil)
		case r < 8:
			c.do("Last", nil)
		case r < 9:
			c.do("SeekGE", []byte(randIterKey(rng)))
		default:
			c.do("SeekLT", []byte(randIterKey(rng)))
		}
	}
}
