package sstable

import (
	"bytes"
	"errors"
	"fmt"
	"math/rand/v2"
	"slices"
	"sort"
	"testing"

	"github.com/kvs-lab/kvs"
)

// randomBlockKeys returns n distinct sorted keys sharing long prefixes.
func randomBlockKeys(rng *rand.Rand, n int) [][]byte {
	seen := map[string]bool{}
	var keys [][]byte
	for len(keys) < n {
		k := fmt.Sprintf("user/%03d/item/%0*d", rng.IntN(20), 1+rng.IntN(6), rng.IntN(100000))
		if !seen[k] {
			seen[k] = true
			keys = append(keys, []byte(k))
		}
	}
	slices.SortFunc(keys, bytes.Compare)
	return keys
}

func buildBlock(keys [][]byte, interval int) []byte {
	w := blockWriter{restartInterval: interval}
	for i, k := range keys {
		w.add(k, []byte(fmt.Sprintf("v%d", i)))
	}
	return bytes.Clone(w.finish())
}

func TestBlockRoundTrip(t *testing.T) {
	rng := rand.New(rand.NewPCG(1, 2))
	for _, interval := range []int{1, 2, 3, 16, 1000} {
		for _, n := range []int{0, 1, 2, 17, 300} {
			t.Run(fmt.Sprintf("interval=%d/n=%d", interval, n), func(t *testing.T) {
				keys := randomBlockKeys(rng, n)
				b := buildBlock(keys, interval)
				var it blockIter
				it.init(b, "test", 0, false)
				// Forward.
				i := 0
				for ok := it.First(); ok; ok = it.Next() {
					if !bytes.Equal(it.key, keys[i]) || string(it.val) != fmt.Sprintf("v%d", i) {
						t.Fatalf("entry %d: %q=%q, want %q", i, it.key, it.val, keys[i])
					}
					i++
				}
				if it.err != nil || i != n {
					t.Fatalf("forward: %d entries, err %v; want %d", i, it.err, n)
				}
				// Backward.
				i = n - 1
				for ok := it.Last(); ok; ok = it.Prev() {
					if !bytes.Equal(it.key, keys[i]) {
						t.Fatalf("backward entry %d: %q, want %q", i, it.key, keys[i])
					}
					i--
				}
				if it.err != nil || i != -1 {
					t.Fatalf("backward stopped at %d, err %v", i, it.err)
				}
				// Seeks, at keys, between keys and outside the range.
				targets := [][]byte{[]byte(""), []byte("zzz")}
				for _, k := range keys {
					targets = append(targets, k, append(bytes.Clone(k), 0), k[:len(k)-1])
				}
				for _, target := range targets {
					ge := sort.Search(n, func(j int) bool { return bytes.Compare(keys[j], target) >= 0 })
					if ok := it.SeekGE(target); ok != (ge < n) || ok && !bytes.Equal(it.key, keys[ge]) {
						t.Fatalf("SeekGE(%q) = %v %q, want index %d", target, ok, it.key, ge)
					}
					lt := ge - 1
					if ok := it.SeekLT(target); ok != (lt >= 0) || ok && !bytes.Equal(it.key, keys[lt]) {
						t.Fatalf("SeekLT(%q) = %v %q, want index %d", target, ok, it.key, lt)
					}
					if lt >= 0 && lt+1 < n {
						if !it.Next() || !bytes.Equal(it.key, keys[lt+1]) {
							t.Fatalf("Next after SeekLT(%q) = %q, want %q", target, it.key, keys[lt+1])
						}
					}
				}
			})
		}
	}
}

func TestBlockPrefixCompressionSavesSpace(t *testing.T) {
	keys := randomBlockKeys(rand.New(rand.NewPCG(3, 4)), 500)
	full, compressed := len(buildBlock(keys, 1)), len(buildBlock(keys, 16))
	if compressed >= full*9/10 {
		t.Fatalf("restart interval 16 gives %d bytes, interval 1 gives %d: prefix compression saves too little", compressed, full)
	}
}

func TestBlockCorruptionIsAnError(t *testing.T) {
	keys := randomBlockKeys(rand.New(rand.NewPCG(5, 6)), 50)
	b := buildBlock(keys, 4)
	cases := map[string][]byte{
		"empty":          {},
		"restart count":  append(bytes.Clone(b[:len(b)-4]), 0xff, 0xff, 0xff, 0x0f),
		"restart offset": func() []byte { c := bytes.Clone(b); c[len(c)-8] = 0xff; c[len(c)-7] = 0xff; return c }(),
		"entry length":   func() []byte { c := buildBlock(keys[:2], 4); c[1] = 0x7f; return c }(),
		"no restarts":    append(bytes.Clone(b[:10]), 0, 0, 0, 0),
		"truncated entry": func() []byte {
			w := blockWriter{restartInterval: 1}
			w.add([]byte("key"), []byte("value"))
			f := w.finish()
			return append(f[:5:5], f[len(f)-8:]...)
		}(),
	}
	for name, c := range cases {
		t.Run(name, func(t *testing.T) {
			var it blockIter
			it.init(c, "f", 7, false)
			for ok := it.First(); ok; ok = it.Next() {
			}
			for ok := it.Last(); ok && it.err == nil; ok = it.Prev() {
			}
			var ce *kvs.CorruptionError
			if !errors.As(it.err, &ce) || ce.Offset != 7 || ce.File != "f" {
				t.Fatalf("err = %v, want a CorruptionError at offset 7", it.err)
			}
		})
	}
}

// FuzzBlock decodes arbitrary bytes as a block: every move either works or
// stops with an error, never a panic.
func FuzzBlock(f *testing.F) {
	f.Add(buildBlock(randomBlockKeys(rand.New(rand.NewPCG(7, 8)), 20), 3), []byte("user/005"), true)
	f.Add([]byte{0, 3, 1, 'a', 'b', 'c', 'v', 0, 0, 0, 0, 1, 0, 0, 0}, []byte("abc"), false)
	f.Add([]byte{}, []byte{}, false)
	f.Fuzz(func(t *testing.T, b, target []byte, internal bool) {
		var it blockIter
		it.init(b, "fuzz", 0, internal)
		n := 0
		for ok := it.First(); ok && n < 10000; ok = it.Next() {
			n++
		}
		for ok := it.Last(); ok && n < 20000; ok = it.Prev() {
			n++
		}
		if internal && len(target) < 8 {
			target = append(target, make([]byte, 8)...)
		}
		it.SeekGE(target)
		it.SeekLT(target)
		it.Prev()
		it.Next()
	})
}
