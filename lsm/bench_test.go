package lsm

// The benchmarks follow db_bench's shapes: 16-byte keys drawn from a space
// of benchKeys, 100-byte incompressible values, no sync. Run them one
// operation per key of the space (docs/04 section 7 shows figures):
//
//	go test -run '^$' -bench . -benchtime 1000000x -count 6 ./lsm | tee lsm.txt
//	benchstat lsm.txt
//
// Besides ns/op each reports what an LSM tree trades for its speed:
//
//   - write-amp: bytes written to files (WAL, flushes, compactions,
//     MANIFEST) per byte of user keys and values written;
//   - space-amp: bytes on disk per byte of live keys and values, as the
//     tree stands when the run ends, and (space-amp-compacted) after a full
//     Compact;
//   - tables/get: tables whose key range holds the key (the tables a Get
//     would read without bloom filters), and reads/get: those whose filter
//     did not rule the key out, so that a data block was searched;
//   - stall-%: the share of the run writers spent in write slowdown or stop.

import (
	"encoding/binary"
	"fmt"
	"math/rand"
	"testing"
	"time"

	"github.com/kvs-lab/kvs"
)

const (
	benchKeys      = 1_000_000
	benchValueSize = 100
	benchEntrySize = 16 + benchValueSize
)

// benchKey writes the 16-byte key of i into k: 8 bytes that scatter i over
// the key space, then i itself.
func benchKey(k []byte, i uint64) []byte {
	binary.BigEndian.PutUint64(k[:8], i*0x9e3779b97f4a7c15)
	binary.BigEndian.PutUint64(k[8:], i)
	return k
}

// benchValues hands out 100-byte windows of 1 MiB of random bytes, which
// snappy cannot shrink, so no figure is flattered by compression.
type benchValues struct {
	buf []byte
	rng *rand.Rand
}

func newBenchValues(seed int64) *benchValues {
	v := &benchValues{buf: make([]byte, 1<<20), rng: rand.New(rand.NewSource(seed))}
	v.rng.Read(v.buf)
	return v
}

func (v *benchValues) next() []byte {
	off := v.rng.Intn(len(v.buf) - benchValueSize)
	return v.buf[off : off+benchValueSize]
}

// openBenchDB opens an engine in a temporary directory on the real file
// system, with lo's options (defaults when nil).
func openBenchDB(b *testing.B, lo *Options) *DB {
	b.Helper()
	db, err := OpenWith(b.TempDir(), &kvs.Options{Logger: kvs.DiscardLogger()}, lo)
	if err != nil {
		b.Fatal(err)
	}
	return db
}

// fillBench writes every key of [0, n) once, in a scattered order, and
// waits for the background work that the load started to finish.
func fillBench(b *testing.B, db *DB, n int) {
	b.Helper()
	key, vals := make([]byte, 16), newBenchValues(1)
	for _, i := range rand.New(rand.NewSource(1)).Perm(n) {
		if err := db.Put(benchKey(key, uint64(i)), vals.next(), kvs.NoSync); err != nil {
			b.Fatal(err)
		}
	}
	waitIdle(b, db)
}

// waitIdle waits until the background goroutine has no flush or
// compaction left to do.
func waitIdle(b *testing.B, db *DB) {
	b.Helper()
	for deadline := time.Now().Add(5 * time.Minute); ; {
		db.mu.Lock()
		busy := db.needsWorkLocked()
		err := db.failErr
		db.mu.Unlock()
		if err != nil {
			b.Fatal(err)
		}
		if !busy {
			return
		}
		if time.Now().After(deadline) {
			b.Fatal("background work did not finish in 5 minutes")
		}
		time.Sleep(10 * time.Millisecond)
	}
}

// writeMetrics reports the amplification of the writes made between
// before and after; live is the bytes of live keys and values.
func writeMetrics(b *testing.B, db *DB, before, after kvs.Stats, live int64, elapsed time.Duration) {
	if user := after.UserBytesWritten - before.UserBytesWritten; user > 0 {
		b.ReportMetric(float64(after.DiskBytesWritten-before.DiskBytesWritten)/float64(user), "write-amp")
	}
	if live > 0 {
		b.ReportMetric(float64(after.BytesOnDisk)/float64(live), "space-amp")
	}
	if elapsed > 0 {
		b.ReportMetric(100*float64(after.StallTime-before.StallTime)/float64(elapsed), "stall-%")
	}
}

// BenchmarkFillRandom is db_bench's fillrandom: b.N puts of keys drawn at
// random from a million, into an empty engine. space-amp counts the
// distinct keys written as live.
func BenchmarkFillRandom(b *testing.B) {
	db := openBenchDB(b, nil)
	defer db.Close()
	key, vals := make([]byte, 16), newBenchValues(2)
	rng := rand.New(rand.NewSource(2))
	written := make([]bool, benchKeys)
	distinct := int64(0)
	before := db.Stats()
	start := time.Now()
	b.SetBytes(benchEntrySize)
	b.ReportAllocs()
	for b.Loop() {
		i := rng.Intn(benchKeys)
		if err := db.Put(benchKey(key, uint64(i)), vals.next(), kvs.NoSync); err != nil {
			b.Fatal(err)
		}
		if !written[i] {
			written[i] = true
			distinct++
		}
	}
	elapsed := time.Since(start)
	waitIdle(b, db)
	writeMetrics(b, db, before, db.Stats(), distinct*benchEntrySize, elapsed)
}

// BenchmarkOverwrite loads every key of a million once (untimed) and then
// overwrites b.N keys drawn at random: the steady state of an update-heavy
// store, where compaction rewrites data over and over. write-amp counts
// the overwrite phase only; space-amp is taken when the background work
// the run started has finished, and space-amp-compacted after a full
// Compact.
func BenchmarkOverwrite(b *testing.B) {
	db := openBenchDB(b, nil)
	defer db.Close()
	fillBench(b, db, benchKeys)
	key, vals := make([]byte, 16), newBenchValues(3)
	rng := rand.New(rand.NewSource(3))
	before := db.Stats()
	start := time.Now()
	b.SetBytes(benchEntrySize)
	b.ReportAllocs()
	for b.Loop() {
		if err := db.Put(benchKey(key, uint64(rng.Intn(benchKeys))), vals.next(), kvs.NoSync); err != nil {
			b.Fatal(err)
		}
	}
	elapsed := time.Since(start)
	waitIdle(b, db)
	writeMetrics(b, db, before, db.Stats(), benchKeys*benchEntrySize, elapsed)
	if err := db.Compact(); err != nil {
		b.Fatal(err)
	}
	b.ReportMetric(float64(db.Stats().BytesOnDisk)/float64(benchKeys*benchEntrySize), "space-amp-compacted")
}

// readMetrics reports the tables probed and read per Get, and the block
// cache misses per Get (each one a read from the file).
func readMetrics(b *testing.B, db *DB, before, after kvs.Stats, missesBefore int64) {
	gets := float64(after.Gets - before.Gets)
	if gets == 0 {
		return
	}
	reads := float64(after.DiskReads - before.DiskReads)
	skips := float64(after.FilterSkips - before.FilterSkips)
	b.ReportMetric((reads+skips)/gets, "tables/get")
	b.ReportMetric(reads/gets, "reads/get")
	b.ReportMetric(float64(db.cache.Metrics().Misses-missesBefore)/gets, "block-misses/get")
}

// BenchmarkReadRandom is db_bench's readrandom: Gets of keys drawn at
// random from a million, all present. shape=loaded reads the tree the
// load left (L0 and several levels); shape=compacted reads it after a
// full Compact (one level).
func BenchmarkReadRandom(b *testing.B) {
	for _, compacted := range []bool{false, true} {
		name := "shape=loaded"
		if compacted {
			name = "shape=compacted"
		}
		b.Run(name, func(b *testing.B) {
			db := openBenchDB(b, nil)
			defer db.Close()
			fillBench(b, db, benchKeys)
			if compacted {
				if err := db.Compact(); err != nil {
					b.Fatal(err)
				}
			}
			key := make([]byte, 16)
			rng := rand.New(rand.NewSource(4))
			before, misses := db.Stats(), db.cache.Metrics().Misses
			b.ReportAllocs()
			for b.Loop() {
				if _, err := db.Get(benchKey(key, uint64(rng.Intn(benchKeys)))); err != nil {
					b.Fatal(err)
				}
			}
			readMetrics(b, db, before, db.Stats(), misses)
		})
	}
}

// BenchmarkReadMissing looks up keys that were never written, over the
// tree a load of a million keys left, with bloom filters of several
// sizes (bits=0: none). fp-rate is reads/get over tables/get: the share
// of table probes a filter let through, all of them false positives;
// sstable's BenchmarkBloomFalsePositive measures one filter alone.
func BenchmarkReadMissing(b *testing.B) {
	for _, bits := range []int{0, 4, 10, 16} {
		b.Run(fmt.Sprintf("bits=%d", bits), func(b *testing.B) {
			lo := &Options{}
			lo.Table.FilterBitsPerKey = bits
			if bits == 0 {
				lo.Table.FilterBitsPerKey = -1
			}
			db := openBenchDB(b, lo)
			defer db.Close()
			fillBench(b, db, benchKeys)
			key := make([]byte, 16)
			rng := rand.New(rand.NewSource(5))
			before, misses := db.Stats(), db.cache.Metrics().Misses
			b.ReportAllocs()
			for b.Loop() {
				// NB: the first 8 bytes of a missing key fall in the key
				// space, so every level's range check passes.
				if _, err := db.Get(benchKey(key, uint64(benchKeys+rng.Intn(benchKeys)))); err != kvs.ErrNotFound {
					b.Fatalf("Get of a missing key: %v", err)
				}
			}
			after := db.Stats()
			readMetrics(b, db, before, after, misses)
			if probed := after.DiskReads + after.FilterSkips - before.DiskReads - before.FilterSkips; bits > 0 && probed > 0 {
				b.ReportMetric(float64(after.DiskReads-before.DiskReads)/float64(probed), "fp-rate")
			}
		})
	}
}
