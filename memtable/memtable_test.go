package memtable

import (
	"bytes"
	"errors"
	"flag"
	"fmt"
	"math"
	"math/rand/v2"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/kvs-lab/kvs/internal/base"
)

var seedFlag = flag.Uint64("seed", 0, "seed for the randomized memtable tests (0: from the clock)")

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

// entry is one internal key and value, as the model holds them.
type entry struct {
	key   base.InternalKey
	value []byte
}

func (e entry) String() string { return fmt.Sprintf("%s=%q", e.key, e.value) }

func compareEntries(a, b entry) int { return base.InternalCompare(a.key, b.key) }

// add adds e to m and fails the test on an error.
func add(t testing.TB, m *Memtable, e entry) {
	t.Helper()
	if err := m.Add(e.key, e.value); err != nil {
		t.Fatalf("Add(%s): %v", e, err)
	}
}

// scan returns what a full forward iteration over m sees, and checks that
// a full backward iteration sees the same in reverse.
func scan(t testing.TB, m *Memtable, lower, upper []byte) []entry {
	t.Helper()
	var fwd, bwd []entry
	it := m.NewIter(lower, upper)
	for ok := it.First(); ok; ok = it.Next() {
		fwd = append(fwd, entry{it.Key().Clone(), bytes.Clone(it.Value())})
	}
	for ok := it.Last(); ok; ok = it.Prev() {
		bwd = append(bwd, entry{it.Key().Clone(), bytes.Clone(it.Value())})
	}
	if err := it.Close(); err != nil {
		t.Fatalf("Close: %v", err)
	}
	slices.Reverse(bwd)
	if !equalEntries(fwd, bwd) {
		t.Fatalf("forward iteration\n%v\ndiffers from backward iteration reversed\n%v", fwd, bwd)
	}
	return fwd
}

func equalEntries(a, b []entry) bool {
	return slices.EqualFunc(a, b, func(x, y entry) bool {
		return base.InternalCompare(x.key, y.key) == 0 && bytes.Equal(x.value, y.value)
	})
}

func set(k string, seq uint64, v string) entry {
	return entry{base.MakeInternalKey([]byte(k), seq, base.KindSet), []byte(v)}
}

func del(k string, seq uint64) entry {
	return entry{base.MakeInternalKey([]byte(k), seq, base.KindDelete), nil}
}

func TestAddOrdersByUserKeyThenNewestFirst(t *testing.T) {
	for _, tc := range []struct {
		name string
		adds []entry
		want string
	}{
		{"empty", nil, ""},
		{"one", []entry{set("a", 1, "x")}, `"a"#1,SET="x"`},
		{"user keys ascending", []entry{set("b", 1, "b"), set("c", 2, "c"), set("a", 3, "a")},
			`"a"#3,SET="a" "b"#1,SET="b" "c"#2,SET="c"`},
		{"versions newest first", []entry{set("k", 1, "v1"), set("k", 3, "v3"), del("k", 2), set("k", 9, "v9")},
			`"k"#9,SET="v9" "k"#3,SET="v3" "k"#2,DEL="" "k"#1,SET="v1"`},
		{"set sorts before delete at one seq", []entry{del("k", 5), set("k", 5, "v")},
			`"k"#5,SET="v" "k"#5,DEL=""`},
		{"prefix sorts first", []entry{set("ab", 1, "2"), set("a", 1, "1"), set("", 1, "0"), set("a\x00", 1, "3")},
			`""#1,SET="0" "a"#1,SET="1" "a\x00"#1,SET="3" "ab"#1,SET="2"`},
		{"many versions of many keys", func() []entry {
			var es []entry
			for seq := uint64(1); seq <= 12; seq++ {
				es = append(es, set(string(rune('d'-seq%4)), seq, fmt.Sprint(seq)))
			}
			return es
		}(), `"a"#11,SET="11" "a"#7,SET="7" "a"#3,SET="3" ` +
			`"b"#10,SET="10" "b"#6,SET="6" "b"#2,SET="2" ` +
			`"c"#9,SET="9" "c"#5,SET="5" "c"#1,SET="1" ` +
			`"d"#12,SET="12" "d"#8,SET="8" "d"#4,SET="4"`},
	} {
		t.Run(tc.name, func(t *testing.T) {
			m := New(1 << 16)
			for _, e := range tc.adds {
				add(t, m, e)
			}
			var got []string
			for _, e := range scan(t, m, nil, nil) {
				got = append(got, e.String())
			}
			if s := strings.Join(got, " "); s != tc.want {
				t.Errorf("iteration:\n got %s\nwant %s", s, tc.want)
			}
			if m.Len() != len(tc.adds) || m.Empty() != (len(tc.adds) == 0) {
				t.Errorf("Len %d, Empty %v after %d adds", m.Len(), m.Empty(), len(tc.adds))
			}
		})
	}
}

func TestGetReturnsNewestVersionAtSnapshot(t *testing.T) {
	m := New(1 << 16)
	for _, e := range []entry{
		set("a", 1, "a1"), set("a", 5, "a5"), del("a", 9), set("a", 12, "a12"),
		del("ab", 7), set("b", 3, "b3"), set("", 2, "empty key"),
	} {
		add(t, m, e)
	}
	const absent = "(absent)"
	for _, tc := range []struct {
		key  string
		seq  uint64
		want string // value, "DEL" or absent
	}{
		{"a", 0, absent},
		{"a", 1, "a1"},
		{"a", 4, "a1"},
		{"a", 5, "a5"},
		{"a", 8, "a5"},
		{"a", 9, "DEL"},
		{"a", 11, "DEL"},
		{"a", 12, "a12"},
		{"a", base.SeqMax, "a12"},
		{"a", math.MaxUint64, "a12"},
		{"ab", 6, absent},
		{"ab", 7, "DEL"},
		{"b", 2, absent},
		{"b", 3, "b3"},
		{"", 1, absent},
		{"", 2, "empty key"},
		{"aa", 100, absent},
		{"a\x00", 100, absent},
		{"c", 100, absent},
	} {
		t.Run(fmt.Sprintf("%q@%d", tc.key, tc.seq), func(t *testing.T) {
			v, kind, found := m.Get([]byte(tc.key), tc.seq)
			got := absent
			switch {
			case found && kind == base.KindDelete:
				got = "DEL"
			case found:
				got = string(v)
			}
			if got != tc.want {
				t.Errorf("Get(%q, %d) = %q (kind %v, found %v), want %q", tc.key, tc.seq, got, kind, found, tc.want)
			}
		})
	}
}

func TestAddRejectsDuplicateAndUnknownKind(t *testing.T) {
	m := New(1 << 12)
	add(t, m, set("k", 5, "first"))
	size, n := m.Size(), m.Len()
	if err := m.Add(base.MakeInternalKey([]byte("k"), 5, base.KindSet), []byte("second")); !errors.Is(err, ErrKeyExists) {
		t.Errorf("Add of a present internal key: %v, want ErrKeyExists", err)
	}
	err := m.Add(base.MakeInternalKey([]byte("j"), 6, base.Kind(7)), nil)
	if err == nil || errors.Is(err, ErrKeyExists) || errors.Is(err, ErrArenaFull) {
		t.Errorf("Add of kind 7: %v, want an unknown kind error", err)
	}
	if m.Size() != size || m.Len() != n {
		t.Errorf("rejected adds changed Size %d -> %d, Len %d -> %d", size, m.Size(), n, m.Len())
	}
	if v, _, _ := m.Get([]byte("k"), 5); string(v) != "first" {
		t.Errorf("Get after duplicate add = %q, want the first value", v)
	}
	// Same user key and seq with another kind is another internal key.
	add(t, m, del("k", 5))
	if got := len(scan(t, m, nil, nil)); got != 2 {
		t.Errorf("%d entries, want 2", got)
	}
}

func TestSizeCountsExactlyTheNodes(t *testing.T) {
	m := New(1 << 12)
	if m.Size() != EmptySize || m.Capacity() != 1<<12 || !m.Empty() || m.Len() != 0 {
		t.Fatalf("new memtable: Size %d, Capacity %d, Empty %v, Len %d", m.Size(), m.Capacity(), m.Empty(), m.Len())
	}
	rng := testRand(t)
	var added []entry
	for i := 0; ; i++ {
		e := set(fmt.Sprintf("key%013d", rng.IntN(1e9)), uint64(i+1), strings.Repeat("v", rng.IntN(120)))
		before := m.Size()
		err := m.Add(e.key, e.value)
		if errors.Is(err, ErrArenaFull) {
			if m.Size() != before || m.Len() != len(added) {
				t.Fatalf("failed Add changed Size %d -> %d or Len to %d", before, m.Size(), m.Len())
			}
			break
		}
		if err != nil {
			t.Fatalf("Add(%s): %v", e, err)
		}
		added = append(added, e)
		// The node is align4(4h + 16 + key + value) bytes for a height h.
		grew := m.Size() - before
		h := (grew - int(align4(uint64(headerSize+len(e.key.UserKey)+len(e.value))))) / linkSize
		if h < 1 || h > maxHeight || grew != int(nodeSize(uint32(h), len(e.key.UserKey), len(e.value))) {
			t.Fatalf("Add(%s) grew Size by %d, which is no node size", e, grew)
		}
		if m.Size() > m.Capacity() {
			t.Fatalf("Size %d exceeds Capacity %d", m.Size(), m.Capacity())
		}
	}
	if len(added) < 10 {
		t.Fatalf("only %d entries of about 140 bytes fit in 4 KiB", len(added))
	}
	slices.SortFunc(added, compareEntries)
	if got := scan(t, m, nil, nil); !equalEntries(got, added) {
		t.Fatalf("after the arena filled, iteration\n%v\nwant\n%v", got, added)
	}
}

func TestEntryTooLargeForAnyMemtable(t *testing.T) {
	const capacity = 1 << 10
	key := []byte("key")
	// largest is the longest value that fits an empty memtable at any height.
	largest := capacity - EmptySize - MaxNodeSize(len(key), 0)
	for MaxNodeSize(len(key), largest+1) <= capacity-EmptySize {
		largest++
	}
	for i := 0; i < 50; i++ { // heights are random: try many
		m := New(capacity)
		if err := m.Add(base.MakeInternalKey(key, 1, base.KindSet), make([]byte, largest)); err != nil {
			t.Fatalf("largest entry (value %d bytes) in an empty memtable: %v", largest, err)
		}
	}
	m := New(capacity)
	err := m.Add(base.MakeInternalKey(key, 1, base.KindSet), make([]byte, largest+1))
	if !errors.Is(err, ErrEntryTooLarge) {
		t.Fatalf("value of %d bytes: %v, want ErrEntryTooLarge", largest+1, err)
	}
	if m.Size() != EmptySize || !m.Empty() {
		t.Fatalf("rejected entry changed the memtable: Size %d", m.Size())
	}
}

func TestNewClampsCapacity(t *testing.T) {
	for _, tc := range []struct{ arenaBytes, want int }{
		{-1, EmptySize}, {0, EmptySize}, {EmptySize - 1, EmptySize}, {1001, 1000}, {1 << 20, 1 << 20},
	} {
		m := New(tc.arenaBytes)
		if m.Capacity() != tc.want || m.Size() != EmptySize {
			t.Errorf("New(%d): Capacity %d, Size %d; want %d, %d", tc.arenaBytes, m.Capacity(), m.Size(), tc.want, EmptySize)
		}
	}
	m := New(0)
	if err := m.Add(base.MakeInternalKey(nil, 1, base.KindDelete), nil); !errors.Is(err, ErrEntryTooLarge) {
		t.Errorf("Add to a memtable with no room: %v, want ErrEntryTooLarge", err)
	}
}

// TestRandomAddsIterateAsSortedModel is the property test: after random
// adds, full iterations and Gets agree with a sorted model.
func TestRandomAddsIterateAsSortedModel(t *testing.T) {
	rng := testRand(t)
	for _, n := range []int{0, 1, 2, 100, 3000} {
		t.Run(fmt.Sprintf("adds=%d", n), func(t *testing.T) {
			m := New(n*200 + EmptySize)
			model := map[string]entry{}
			for i := 0; i < n; i++ {
				e := randomEntry(rng, 64)
				id := string(e.key.Append(nil))
				err := m.Add(e.key, e.value)
				if _, dup := model[id]; dup {
					if !errors.Is(err, ErrKeyExists) {
						t.Fatalf("Add of duplicate %s: %v, want ErrKeyExists", e, err)
					}
					continue
				}
				if err != nil {
					t.Fatalf("Add(%s): %v", e, err)
				}
				model[id] = e
			}
			want := sortedModel(model)
			if got := scan(t, m, nil, nil); !equalEntries(got, want) {
				t.Fatalf("iteration\n%v\nwant\n%v", got, want)
			}
			if m.Len() != len(want) {
				t.Fatalf("Len %d, want %d", m.Len(), len(want))
			}
			for i := 0; i < 200 && len(want) > 0; i++ {
				e := want[rng.IntN(len(want))]
				seq := e.key.Seq() + uint64(rng.IntN(3)) - 1
				checkGet(t, m, want, e.key.UserKey, seq)
			}
		})
	}
}

// randomEntry returns an entry over a small key space (user keys of 0 to 3
// bytes from a 4-letter alphabet, seqs below 64), so that user keys have
// many versions and duplicates happen.
func randomEntry(rng *rand.Rand, maxSeq int) entry {
	k := make([]byte, rng.IntN(4))
	for i := range k {
		k[i] = "abc\x00"[rng.IntN(4)]
	}
	kind := base.KindSet
	if rng.IntN(4) == 0 {
		kind = base.KindDelete
	}
	return entry{base.MakeInternalKey(k, uint64(rng.IntN(maxSeq)), kind), []byte(fmt.Sprint(rng.Uint32()))[:rng.IntN(8)]}
}

func sortedModel(model map[string]entry) []entry {
	var es []entry
	for _, e := range model {
		es = append(es, e)
	}
	slices.SortFunc(es, compareEntries)
	return es
}

// checkGet compares m.Get(userKey, seq) with the newest version in the
// sorted model with a seq <= seq.
func checkGet(t testing.TB, m *Memtable, sorted []entry, userKey []byte, seq uint64) {
	t.Helper()
	var want *entry
	for i := range sorted {
		if bytes.Equal(sorted[i].key.UserKey, userKey) && sorted[i].key.Seq() <= seq {
			want = &sorted[i]
			break
		}
	}
	v, kind, found := m.Get(userKey, seq)
	switch {
	case want == nil && found:
		t.Fatalf("Get(%q, %d) found %q (%v), want nothing", userKey, seq, v, kind)
	case want == nil:
	case !found || kind != want.key.Kind() || !bytes.Equal(v, want.value):
		t.Fatalf("Get(%q, %d) = %q, %v, %v; want %s", userKey, seq, v, kind, found, *want)
	}
}
