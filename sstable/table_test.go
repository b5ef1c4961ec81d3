package sstable

import (
	"bytes"
	"fmt"
	"math/rand/v2"
	"slices"
	"sort"
	"testing"

	"github.com/kvs-lab/kvs/internal/base"
	"github.com/kvs-lab/kvs/internal/vfs"
)

// entry is one key-value pair of the model.
type entry struct {
	key   base.InternalKey
	value []byte
}

// randomEntries returns sorted entries over nUser user keys, each with one
// to five versions (a fifth of them deletions) at distinct sequence
// numbers.
func randomEntries(rng *rand.Rand, nUser int) []entry {
	users := map[string]bool{}
	for len(users) < nUser {
		users[fmt.Sprintf("key-%06d", rng.IntN(nUser*10))] = true
	}
	var es []entry
	seq := uint64(1)
	for u := range users {
		for v := 1 + rng.IntN(5); v > 0; v-- {
			seq += 1 + uint64(rng.IntN(3))
			kind := base.KindSet
			var value []byte
			if rng.IntN(5) == 0 {
				kind = base.KindDelete
			} else {
				value = fmt.Appendf(nil, "value-%s-%d-%s", u, seq, bytes.Repeat([]byte{'x'}, rng.IntN(40)))
			}
			es = append(es, entry{base.MakeInternalKey([]byte(u), seq, kind), value})
		}
	}
	slices.SortFunc(es, func(a, b entry) int { return base.InternalCompare(a.key, b.key) })
	return es
}

// writeTable writes es to a new table in fs and returns its name and size.
func writeTable(tb testing.TB, fs vfs.FS, name string, es []entry, o WriterOptions) (Properties, int64) {
	tb.Helper()
	f, err := fs.Create(name)
	if err != nil {
		tb.Fatal(err)
	}
	w := NewWriter(f, o)
	for _, e := range es {
		if err := w.Add(e.key, e.value); err != nil {
			tb.Fatal(err)
		}
	}
	p, err := w.Close()
	if err != nil {
		tb.Fatal(err)
	}
	st, err := fs.Stat(name)
	if err != nil {
		tb.Fatal(err)
	}
	return p, st.Size()
}

// openTable opens a table written by writeTable; t.Cleanup closes it.
func openTable(tb testing.TB, fs vfs.FS, name string, o ReaderOptions) *Reader {
	tb.Helper()
	f, err := fs.Open(name)
	if err != nil {
		tb.Fatal(err)
	}
	st, err := f.Stat()
	if err != nil {
		tb.Fatal(err)
	}
	r, err := Open(f, name, st.Size(), o)
	if err != nil {
		tb.Fatal(err)
	}
	tb.Cleanup(func() { r.Close() })
	return r
}

var tableOptions = map[string]WriterOptions{
	"default":          {},
	"tiny-blocks":      {BlockSize: 128, BlockRestartInterval: 1},
	"small-restart-4":  {BlockSize: 512, BlockRestartInterval: 4, Compression: NoCompression},
	"no-filter":        {FilterBitsPerKey: -1, BlockRestartInterval: 32},
	"huge-blocks":      {BlockSize: 1 << 20},
	"one-entry-blocks": {BlockSize: 1},
}

func sameEntry(it *Iterator, e entry) bool {
	return it.Valid() && base.InternalCompare(it.Key(), e.key) == 0 && bytes.Equal(it.Value(), e.value)
}

func TestTableRoundTrip(t *testing.T) {
	seed := uint64(42)
	for name, o := range tableOptions {
		t.Run(name, func(t *testing.T) {
			rng := rand.New(rand.NewPCG(seed, 1))
			es := randomEntries(rng, 2000)
			fs := vfs.NewMem()
			props, _ := writeTable(t, fs, "t.sst", es, o)
			r := openTable(t, fs, "t.sst", ReaderOptions{Cache: NewCache(64 << 10)})
			if got := r.Properties(); got.String() != props.String() {
				t.Fatalf("properties read back:\n%s\nwritten:\n%s", got, props)
			}
			if props.NumEntries != uint64(len(es)) || base.InternalCompare(props.Smallest, es[0].key) != 0 ||
				base.InternalCompare(props.Largest, es[len(es)-1].key) != 0 {
				t.Fatalf("properties %s do not describe the %d entries", props, len(es))
			}
			it, err := r.NewIter(nil, nil)
			if err != nil {
				t.Fatal(err)
			}
			n := 0
			for ok := it.First(); ok; ok = it.Next() {
				if !sameEntry(it, es[n]) {
					t.Fatalf("entry %d: %s, want %s", n, it.Key(), es[n].key)
				}
				n++
			}
			if n != len(es) {
				t.Fatalf("forward: %d entries, want %d (err %v)", n, len(es), it.Error())
			}
			for ok := it.Last(); ok; ok = it.Prev() {
				n--
				if !sameEntry(it, es[n]) {
					t.Fatalf("backward entry %d: %s, want %s", n, it.Key(), es[n].key)
				}
			}
			if n != 0 || it.Close() != nil {
				t.Fatalf("backward stopped at %d (err %v)", n, it.Error())
			}
		})
	}
}

// modelSeek returns the model's answer to SeekGE (ge) or SeekLT within
// bounds: an index into es or -1.
func modelSeek(es []entry, key, lower, upper []byte, ge bool) int {
	in := func(j int) bool {
		u := es[j].key.UserKey
		return (lower == nil || bytes.Compare(u, lower) >= 0) && (upper == nil || bytes.Compare(u, upper) < 0)
	}
	j := sort.Search(len(es), func(j int) bool { return bytes.Compare(es[j].key.UserKey, key) >= 0 })
	if ge {
		for ; j < len(es); j++ {
			if in(j) {
				return j
			}
			if upper != nil && bytes.Compare(es[j].key.UserKey, upper) >= 0 {
				break
			}
		}
		return -1
	}
	for j--; j >= 0; j-- {
		if in(j) {
			return j
		}
		if lower != nil && bytes.Compare(es[j].key.UserKey, lower) < 0 {
			break
		}
	}
	return -1
}

func TestTableSeeksWithBounds(t *testing.T) {
	seed := uint64(7)
	rng := rand.New(rand.NewPCG(seed, 2))
	es := randomEntries(rng, 3000)
	randKey := func() []byte {
		if rng.IntN(3) == 0 {
			return es[rng.IntN(len(es))].key.UserKey
		}
		return fmt.Appendf(nil, "key-%06d%s", rng.IntN(30000), []string{"", "\x00", "5"}[rng.IntN(3)])
	}
	for name, o := range tableOptions {
		t.Run(name, func(t *testing.T) {
			fs := vfs.NewMem()
			writeTable(t, fs, "t.sst", es, o)
			r := openTable(t, fs, "t.sst", ReaderOptions{})
			rounds := 300
			if testing.Short() {
				rounds = 100
			}
			for round := 0; round < rounds; round++ {
				var lower, upper []byte
				if rng.IntN(2) == 0 {
					lower = randKey()
				}
				if rng.IntN(2) == 0 {
					upper = randKey()
				}
				if lower != nil && upper != nil && bytes.Compare(lower, upper) > 0 {
					lower, upper = upper, lower
				}
				it, err := r.NewIter(lower, upper)
				if err != nil {
					t.Fatal(err)
				}
				for op := 0; op < 20; op++ {
					key := randKey()
					ge := rng.IntN(2) == 0
					var ok bool
					if ge {
						ok = it.SeekGE(key)
					} else {
						ok = it.SeekLT(key)
					}
					j := modelSeek(es, key, lower, upper, ge)
					if ok != (j >= 0) || ok && !sameEntry(it, es[j]) {
						t.Fatalf("seed %d round %d: bounds [%q, %q) Seek(ge=%v, %q) = %v %s, model %d", seed, round, lower, upper, ge, key, ok, it.Key(), j)
					}
					// Walk a few steps either way from there.
					for step := 0; ok && step < 10; step++ {
						if rng.IntN(2) == 0 {
							ok = it.Next()
							j++
							if j >= len(es) || upper != nil && bytes.Compare(es[j].key.UserKey, upper) >= 0 {
								j = -1
							}
						} else {
							ok = it.Prev()
							j--
							if j < 0 || lower != nil && bytes.Compare(es[j].key.UserKey, lower) < 0 {
								j = -1
							}
						}
						if ok != (j >= 0) || ok && !sameEntry(it, es[j]) {
							t.Fatalf("seed %d round %d: step %d after seek to %q: %v %s, model %d", seed, round, step, key, ok, it.Key(), j)
						}
					}
				}
				first, last := modelSeek(es, lower, lower, upper, true), modelSeek(es, upper, lower, upper, false)
				if lower == nil {
					first = modelSeek(es, nil, nil, upper, true)
				}
				if upper == nil {
					last = len(es) - 1
					if lower != nil && bytes.Compare(es[last].key.UserKey, lower) < 0 {
						last = -1
					}
				}
				if ok := it.First(); ok != (first >= 0) || ok && !sameEntry(it, es[first]) {
					t.Fatalf("First with bounds [%q, %q) = %v %s, model %d", lower, upper, ok, it.Key(), first)
				}
				if ok := it.Last(); ok != (last >= 0) || ok && !sameEntry(it, es[last]) {
					t.Fatalf("Last with bounds [%q, %q) = %v %s, model %d", lower, upper, ok, it.Key(), last)
				}
				if err := it.Close(); err != nil {
					t.Fatal(err)
				}
			}
		})
	}
}

func TestGetAtSnapshots(t *testing.T) {
	rng := rand.New(rand.NewPCG(9, 3))
	es := randomEntries(rng, 2000)
	for name, o := range tableOptions {
		t.Run(name, func(t *testing.T) {
			fs := vfs.NewMem()
			writeTable(t, fs, "t.sst", es, o)
			cache := NewCache(1 << 20)
			r := openTable(t, fs, "t.sst", ReaderOptions{Cache: cache})
			maxSeq := es[0].key.Seq()
			for _, e := range es {
				maxSeq = max(maxSeq, e.key.Seq())
			}
			for round := 0; round < 3000; round++ {
				e := es[rng.IntN(len(es))]
				user := e.key.UserKey
				if rng.IntN(4) == 0 {
					user = fmt.Appendf(nil, "key-%06d!", rng.IntN(20000)) // absent
				}
				seq := uint64(rng.IntN(int(maxSeq) + 2))
				if rng.IntN(10) == 0 {
					seq = base.SeqMax
				}
				// The model: the newest version of user at or below seq.
				want := -1
				for j := sort.Search(len(es), func(j int) bool { return bytes.Compare(es[j].key.UserKey, user) >= 0 }); j < len(es) && bytes.Equal(es[j].key.UserKey, user); j++ {
					if es[j].key.Seq() <= seq {
						want = j
						break
					}
				}
				v, kind, found, err := r.Get(user, seq)
				if err != nil {
					t.Fatal(err)
				}
				if found != (want >= 0) || found && (kind != es[want].key.Kind() || !bytes.Equal(v, es[want].value)) {
					t.Fatalf("Get(%q, %d) = %q %v %v, model index %d", user, seq, v, kind, found, want)
				}
			}
			if m := cache.Metrics(); m.Hits == 0 || m.Misses == 0 || m.Size > m.Capacity {
				t.Fatalf("cache metrics %+v: want hits and misses within capacity", m)
			}
		})
	}
}

func TestWriterRejectsOutOfOrderKeys(t *testing.T) {
	fs := vfs.NewMem()
	f, _ := fs.Create("t.sst")
	w := NewWriter(f, WriterOptions{})
	if err := w.Add(base.MakeInternalKey([]byte("b"), 5, base.KindSet), nil); err != nil {
		t.Fatal(err)
	}
	for _, k := range []base.InternalKey{
		base.MakeInternalKey([]byte("a"), 9, base.KindSet), // smaller user key
		base.MakeInternalKey([]byte("b"), 5, base.KindSet), // duplicate
		base.MakeInternalKey([]byte("b"), 6, base.KindSet), // newer version after older
		base.MakeInternalKey([]byte("c"), 1, base.Kind(9)), // unknown kind
	} {
		if err := w.Add(k, nil); err == nil {
			t.Errorf("Add(%s) after \"b\"#5 succeeded", k)
		}
	}
	if err := w.Add(base.MakeInternalKey([]byte("b"), 4, base.KindDelete), nil); err != nil {
		t.Fatalf("an older version after a newer one: %v", err)
	}
	if _, err := w.Close(); err != nil {
		t.Fatal(err)
	}
	if _, err := w.Close(); err == nil {
		t.Fatal("second Close succeeded")
	}
}

func TestEmptyTable(t *testing.T) {
	fs := vfs.NewMem()
	props, _ := writeTable(t, fs, "t.sst", nil, WriterOptions{})
	if props.NumEntries != 0 || props.NumDataBlocks != 0 {
		t.Fatalf("empty table properties %s", props)
	}
	r := openTable(t, fs, "t.sst", ReaderOptions{})
	it, _ := r.NewIter(nil, nil)
	if it.First() || it.Last() || it.SeekGE([]byte("a")) || it.SeekLT([]byte("z")) || it.Close() != nil {
		t.Fatal("an empty table has entries")
	}
	if _, _, found, err := r.Get([]byte("a"), base.SeqMax); found || err != nil {
		t.Fatalf("Get in an empty table: %v %v", found, err)
	}
}

func TestIteratorAfterClose(t *testing.T) {
	fs := vfs.NewMem()
	writeTable(t, fs, "t.sst", randomEntries(rand.New(rand.NewPCG(1, 1)), 10), WriterOptions{})
	r := openTable(t, fs, "t.sst", ReaderOptions{})
	it, _ := r.NewIter(nil, nil)
	if !it.First() {
		t.Fatal("no first entry")
	}
	first, second := it.Close(), it.Close()
	if first != nil || second != nil {
		t.Fatalf("Close twice returned %v, %v", first, second)
	}
	if it.Next() || it.First() || it.Valid() {
		t.Fatal("iterator moves after Close")
	}
	if _, err := r.NewIter([]byte("b"), []byte("a")); err == nil {
		t.Fatal("NewIter accepted lower > upper")
	}
}
