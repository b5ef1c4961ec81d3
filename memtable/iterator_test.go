package memtable

import (
	"bytes"
	"fmt"
	"math/rand/v2"
	"testing"

	"github.com/kvs-lab/kvs/internal/base"
)

func TestIteratorOnEmptyMemtable(t *testing.T) {
	it := New(0).NewIter(nil, nil)
	for name, move := range map[string]func() bool{
		"First": it.First, "Last": it.Last, "Next": it.Next, "Prev": it.Prev,
		"SeekGE": func() bool { return it.SeekGE([]byte("a")) },
		"SeekLT": func() bool { return it.SeekLT([]byte("a")) },
	} {
		if move() || it.Valid() {
			t.Errorf("%s on an empty memtable is valid", name)
		}
	}
	if k := it.Key(); k.UserKey != nil || k.Trailer != 0 || it.Value() != nil || it.Error() != nil {
		t.Errorf("unpositioned iterator: Key %v, Value %q, Error %v", k, it.Value(), it.Error())
	}
	first, second := it.Close(), it.Close()
	if first != nil || second != nil {
		t.Errorf("Close twice returned %v, %v", first, second)
	}
}

func TestIteratorBounds(t *testing.T) {
	m := New(1 << 16)
	for i, k := range []string{"a", "b", "b", "c", "d"} {
		add(t, m, set(k, uint64(i+1), k))
	}
	str := func(it *Iterator) string {
		if !it.Valid() {
			return "."
		}
		return it.Key().String()
	}
	for _, tc := range []struct {
		lower, upper string // "-" for nil
		want         string // First, Next..., then Last, Prev...
	}{
		{"-", "-", `"a"#1,SET "b"#3,SET "b"#2,SET "c"#4,SET "d"#5,SET . | "d"#5,SET "c"#4,SET "b"#2,SET "b"#3,SET "a"#1,SET .`},
		{"b", "d", `"b"#3,SET "b"#2,SET "c"#4,SET . | "c"#4,SET "b"#2,SET "b"#3,SET .`},
		{"bb", "c", `. | .`},
		{"ab", "cc", `"b"#3,SET "b"#2,SET "c"#4,SET . | "c"#4,SET "b"#2,SET "b"#3,SET .`},
		{"-", "b", `"a"#1,SET . | "a"#1,SET .`},
		{"d", "-", `"d"#5,SET . | "d"#5,SET .`},
		{"c", "b", `. | .`},
		{"", "", `. | .`},
	} {
		t.Run(tc.lower+","+tc.upper, func(t *testing.T) {
			bound := func(s string) []byte {
				if s == "-" {
					return nil
				}
				return []byte(s)
			}
			it := m.NewIter(bound(tc.lower), bound(tc.upper))
			got := ""
			for it.First(); it.Valid(); it.Next() {
				got += str(it) + " "
			}
			got += ". |"
			for it.Last(); it.Valid(); it.Prev() {
				got += " " + str(it)
			}
			got += " ."
			if got != tc.want {
				t.Errorf("\n got %s\nwant %s", got, tc.want)
			}
		})
	}
	// Seeks outside the bounds land on the bounds.
	it := m.NewIter([]byte("b"), []byte("d"))
	if it.SeekGE([]byte("a")); str(it) != `"b"#3,SET` {
		t.Errorf("SeekGE below the lower bound: %s", str(it))
	}
	if it.SeekLT([]byte("z")); str(it) != `"c"#4,SET` {
		t.Errorf("SeekLT above the upper bound: %s", str(it))
	}
	if it.SeekGE([]byte("d")); it.Valid() {
		t.Errorf("SeekGE at the upper bound: %s", str(it))
	}
	if it.SeekLT([]byte("b")); it.Valid() {
		t.Errorf("SeekLT at the lower bound: %s", str(it))
	}
}

// TestIteratorAgainstSortedModel runs random moves with random bounds over
// a memtable and over a sorted slice and compares every position.
func TestIteratorAgainstSortedModel(t *testing.T) {
	rng := testRand(t)
	rounds, n := 200, 500
	if testing.Short() {
		rounds = 50
	}
	for round := 0; round < rounds; round++ {
		m := New(1 << 20)
		model := map[string]entry{}
		for i, count := 0, rng.IntN(n); i < count; i++ {
			e := randomEntry(rng, 64)
			if m.Add(e.key, e.value) == nil {
				model[string(e.key.Append(nil))] = e
			}
		}
		sorted := sortedModel(model)
		lower, upper := randomBound(rng), randomBound(rng)
		var view []entry // the model within [lower, upper)
		for _, e := range sorted {
			if (lower == nil || bytes.Compare(e.key.UserKey, lower) >= 0) && (upper == nil || bytes.Compare(e.key.UserKey, upper) < 0) {
				view = append(view, e)
			}
		}
		it := m.NewIter(lower, upper)
		pos := -1 // the model iterator's index in view, -1 when not at an entry
		var trace []string
		for op := 0; op < 100; op++ {
			var desc string
			switch rng.IntN(6) {
			case 0:
				desc = "First"
				it.First()
				pos = min(0, len(view)-1)
			case 1:
				desc = "Last"
				it.Last()
				pos = len(view) - 1
			case 2:
				desc = "Next"
				it.Next()
				if pos >= 0 {
					pos++
				}
				if pos == len(view) {
					pos = -1
				}
			case 3:
				desc = "Prev"
				it.Prev()
				if pos >= 0 {
					pos--
				}
			case 4:
				k := randomBound(rng)
				desc = fmt.Sprintf("SeekGE(%q)", k)
				it.SeekGE(k)
				pos = -1
				for i, e := range view {
					if bytes.Compare(e.key.UserKey, k) >= 0 {
						pos = i
						break
					}
				}
			case 5:
				k := randomBound(rng)
				desc = fmt.Sprintf("SeekLT(%q)", k)
				it.SeekLT(k)
				pos = -1
				for i, e := range view {
					if bytes.Compare(e.key.UserKey, k) < 0 {
						pos = i
					}
				}
			}
			trace = append(trace, desc)
			if it.Valid() != (pos >= 0) {
				t.Fatalf("round %d, bounds [%q, %q), after %v: Valid %v, model at %d of %d",
					round, lower, upper, trace, it.Valid(), pos, len(view))
			}
			if pos >= 0 {
				want := view[pos]
				if base.InternalCompare(it.Key(), want.key) != 0 || !bytes.Equal(it.Value(), want.value) {
					t.Fatalf("round %d, bounds [%q, %q), after %v: at %s=%q, want %s",
						round, lower, upper, trace, it.Key(), it.Value(), want)
				}
			}
		}
	}
}

// randomBound returns nil (no bound) or a short key over randomEntry's
// alphabet.
func randomBound(rng *rand.Rand) []byte {
	if rng.IntN(4) == 0 {
		return nil
	}
	return randomEntry(rng, 1).key.UserKey
}
