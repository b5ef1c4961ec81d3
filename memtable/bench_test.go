package memtable

import (
	"encoding/binary"
	"fmt"
	"testing"

	"github.com/kvs-lab/kvs/internal/base"
)

const (
	benchKeyLen   = 16
	benchValueLen = 100
	benchArena    = 64 << 20 // a typical memtable budget
	benchEntries  = 100_000  // entries in the memtable Get and Iterate read
)

// benchKey writes the i-th benchmark user key into k (16 bytes): a
// scrambled copy of i, then i itself, so keys are distinct and, taken in
// order of i, arrive in random key order. With random false the keys
// ascend with i.
func benchKey(k []byte, i uint64, random bool) []byte {
	k = k[:benchKeyLen]
	hi := i
	if random {
		// A splitmix64 finalizer: a bijection that scatters i.
		hi = (i ^ i>>30) * 0xbf58476d1ce4e5b9
		hi = (hi ^ hi>>27) * 0x94d049bb133111eb
		hi ^= hi >> 31
	}
	binary.BigEndian.PutUint64(k, hi)
	binary.BigEndian.PutUint64(k[8:], i)
	return k
}

// fillBench returns a memtable holding n benchmark entries added in random
// key order, seqs 1..n.
func fillBench(b *testing.B, n int) *Memtable {
	b.Helper()
	m := New(n * MaxNodeSize(benchKeyLen, benchValueLen))
	k, v := make([]byte, benchKeyLen), make([]byte, benchValueLen)
	for i := 0; i < n; i++ {
		if err := m.Add(base.MakeInternalKey(benchKey(k, uint64(i), true), uint64(i+1), base.KindSet), v); err != nil {
			b.Fatal(err)
		}
	}
	return m
}

func BenchmarkAdd(b *testing.B) {
	for _, random := range []bool{true, false} {
		order := map[bool]string{true: "random", false: "sequential"}[random]
		b.Run(fmt.Sprintf("key=%d/value=%d/order=%s", benchKeyLen, benchValueLen, order), func(b *testing.B) {
			k, v := make([]byte, benchKeyLen), make([]byte, benchValueLen)
			m := New(benchArena)
			var arenaBytes, entries int // over the memtables filled before m
			b.ReportAllocs()
			b.SetBytes(benchKeyLen + benchValueLen)
			for i := 0; b.Loop(); i++ {
				key := base.MakeInternalKey(benchKey(k, uint64(i), random), uint64(i+1), base.KindSet)
				err := m.Add(key, v)
				if err != nil {
					// Rotate, as the engine does, outside the timer.
					b.StopTimer()
					arenaBytes, entries = arenaBytes+m.Size()-EmptySize, entries+m.Len()
					m = New(benchArena)
					err = m.Add(key, v)
					b.StartTimer()
				}
				if err != nil {
					b.Fatal(err)
				}
			}
			arenaBytes, entries = arenaBytes+m.Size()-EmptySize, entries+m.Len()
			b.ReportMetric(float64(arenaBytes)/float64(entries), "arena-B/entry")
		})
	}
}

// BenchmarkGet looks up keys the memtable holds (present) and keys it
// does not (absent) as the lsm engine does, MayContain then
// GetPastFilter: an absent key is what most Gets of a read-mostly LSM ask
// the memtable for, and the filter answers most of them without a search.
// filter-pass is the share of lookups the filter let through to the
// skiplist.
func BenchmarkGet(b *testing.B) {
	for _, present := range []bool{true, false} {
		name := map[bool]string{true: "present", false: "absent"}[present]
		b.Run(fmt.Sprintf("entries=%d/key=%d/value=%d/keys=%s", benchEntries, benchKeyLen, benchValueLen, name), func(b *testing.B) {
			m := fillBench(b, benchEntries)
			k := make([]byte, benchKeyLen)
			passed := 0
			b.ReportAllocs()
			for i := 0; b.Loop(); i++ {
				// Visit the entries in a scattered order: 7919 is prime, so
				// i*7919 mod n runs through every index. Absent keys are
				// the indexes past the ones added.
				j := uint64(i) * 7919 % benchEntries
				if !present {
					j += benchEntries
				}
				found := false
				if m.MayContain(benchKey(k, j, true)) {
					passed++
					_, _, found = m.GetPastFilter(k, base.SeqMax)
				}
				if found != present {
					b.Fatalf("key %d: found %v, want %v", j, found, present)
				}
			}
			b.ReportMetric(float64(passed)/float64(b.N), "filter-pass")
			b.ReportMetric(float64(m.Size()-EmptySize)/float64(m.Len()), "arena-B/entry")
		})
	}
}

// BenchmarkIterate measures one step (Next or Prev) of a full scan; a
// scan that runs off the end starts again.
func BenchmarkIterate(b *testing.B) {
	for _, dir := range []string{"forward", "backward"} {
		b.Run(fmt.Sprintf("entries=%d/key=%d/value=%d/dir=%s", benchEntries, benchKeyLen, benchValueLen, dir), func(b *testing.B) {
			m := fillBench(b, benchEntries)
			it := m.NewIter(nil, nil)
			start, step := it.First, it.Next
			if dir == "backward" {
				start, step = it.Last, it.Prev
			}
			b.ReportAllocs()
			for b.Loop() {
				if !step() && !start() {
					b.Fatal("empty memtable")
				}
			}
			b.ReportMetric(float64(m.Size()-EmptySize)/float64(m.Len()), "arena-B/entry")
		})
	}
}
