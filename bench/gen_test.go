package bench

import (
	"bytes"
	"testing"
)

func TestGenKeysUniqueAndDeterministic(t *testing.T) {
	for _, size := range []int{8, 12, 16, 24} {
		g := Gen{Seed: 7, KeySize: size, ValueSize: 30}
		seen := map[string]bool{}
		for i := uint64(0); i < 20000; i++ {
			k := g.Key(nil, i)
			if len(k) != size {
				t.Fatalf("size %d: key %q has length %d", size, k, len(k))
			}
			if seen[string(k)] {
				t.Fatalf("size %d: key %q repeats at %d", size, k, i)
			}
			seen[string(k)] = true
			if !bytes.Equal(k, g.Key(nil, i)) {
				t.Fatal("key not deterministic")
			}
		}
	}
	g := Gen{Seed: 1, KeySize: 16, ValueSize: 100}
	if bytes.Equal(g.Key(nil, 5), (Gen{Seed: 2, KeySize: 16}).Key(nil, 5)) {
		t.Fatal("seed does not change keys")
	}
	v := g.Value(nil, 3, 0)
	if len(v) != 100 || !bytes.Equal(v, g.Value(nil, 3, 0)) || bytes.Equal(v, g.Value(nil, 3, 1)) || bytes.Equal(v, g.Value(nil, 4, 0)) {
		t.Fatalf("values not deterministic per (i, version): %q", v)
	}
}

func TestGenValidate(t *testing.T) {
	if err := (Gen{KeySize: 4}).Validate(); err == nil {
		t.Fatal("key size 4 accepted")
	}
	if err := (Gen{KeySize: 16, ValueSize: -1}).Validate(); err == nil {
		t.Fatal("negative value size accepted")
	}
}

// TestGenValuesDoNotRepeat guards against values that share long runs (an
// earlier generator drew every chunk after the first from a state of a few
// hundred values, which made them compress far better than real data).
func TestGenValuesDoNotRepeat(t *testing.T) {
	g := Gen{Seed: 1, KeySize: 16, ValueSize: 100}
	suffixes := map[string]bool{}
	const n = 20000
	for i := uint64(0); i < n; i++ {
		suffixes[string(g.Value(nil, i, 0)[12:])] = true
	}
	if len(suffixes) != n {
		t.Fatalf("%d values share their last 88 letters with another: only %d distinct suffixes", n-len(suffixes), len(suffixes))
	}
}
