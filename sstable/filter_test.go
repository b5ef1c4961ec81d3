package sstable

import (
	"fmt"
	"testing"
)

// falsePositiveRate builds a filter over n keys at bitsPerKey and returns
// the fraction of probes of absent keys it lets through. It fails the test
// on a false negative.
func falsePositiveRate(tb testing.TB, bitsPerKey, n, probes int) float64 {
	hashes := make([]uint64, n)
	for i := range hashes {
		hashes[i] = filterHash(fmt.Appendf(nil, "present-%08d", i))
	}
	f, reason := decodeFilter(buildFilter(hashes, bitsPerKey))
	if reason != "" {
		tb.Fatal(reason)
	}
	for i := 0; i < n; i++ {
		if !f.mayContain(fmt.Appendf(nil, "present-%08d", i)) {
			tb.Fatalf("false negative for key %d at %d bits per key", i, bitsPerKey)
		}
	}
	fp := 0
	for i := 0; i < probes; i++ {
		if f.mayContain(fmt.Appendf(nil, "absent-%08d", i)) {
			fp++
		}
	}
	return float64(fp) / float64(probes)
}

// TestBloomFalsePositiveRate checks the measured rate against the bound a
// bloom filter of m bits, n keys and k probes promises, (1-e^(-kn/m))^k:
// about 0.8% at 10 bits per key. The keys are fixed, so the check is
// deterministic.
func TestBloomFalsePositiveRate(t *testing.T) {
	for _, c := range []struct {
		bitsPerKey int
		max        float64
	}{{4, 0.20}, {8, 0.035}, {10, 0.02}, {16, 0.002}} {
		rate := falsePositiveRate(t, c.bitsPerKey, 10000, 100000)
		t.Logf("bits-per-key=%d false-positive rate %.4f", c.bitsPerKey, rate)
		if rate > c.max {
			t.Errorf("bits-per-key=%d: false-positive rate %.4f, want <= %.4f", c.bitsPerKey, rate, c.max)
		}
	}
}

func TestBloomSmallAndEmptyFilters(t *testing.T) {
	f, reason := decodeFilter(buildFilter(nil, 10))
	if reason != "" || f.nBits != 64 {
		t.Fatalf("empty filter: %v %q", f, reason)
	}
	if rate := falsePositiveRate(t, 10, 1, 1000); rate > 0.05 {
		t.Fatalf("one-key filter passes %.3f of absent keys", rate)
	}
	for _, b := range [][]byte{nil, {5}, {0, 0}, {0, 31}} {
		if _, reason := decodeFilter(b); reason == "" {
			t.Errorf("decodeFilter(%v) accepted a malformed filter", b)
		}
	}
}
