package sstable

import (
	"fmt"
	"math/rand/v2"
	"sync"
	"sync/atomic"
	"testing"

	"github.com/kvs-lab/kvs/internal/base"
	"github.com/kvs-lab/kvs/internal/vfs"
)

const (
	benchKeys      = 100_000
	benchValueSize = 100
)

// benchKey returns the 16-byte user key number i.
func benchKey(i int) []byte { return fmt.Appendf(nil, "%016d", i) }

// benchValues are distinct 100-byte values that compress to about half,
// as db_bench's do: 50 random bytes, repeated. benchValue(i) picks one.
var benchValues = func() [][]byte {
	rng := rand.New(rand.NewPCG(1, 1))
	vs := make([][]byte, 1024)
	for i := range vs {
		half := make([]byte, benchValueSize/2)
		for j := range half {
			half[j] = byte(rng.IntN(256))
		}
		vs[i] = append(half, half...)
	}
	return vs
}()

func benchValue(i int) []byte { return benchValues[i%len(benchValues)] }

// benchProbes returns n user keys, random among 0 .. 2*benchKeys-1, made
// before the timed loop.
func benchProbes(seed uint64, n int, odd bool) [][]byte {
	rng := rand.New(rand.NewPCG(seed, seed))
	ks := make([][]byte, n)
	for i := range ks {
		k := 2 * rng.IntN(benchKeys)
		if odd {
			k++
		}
		ks[i] = benchKey(k)
	}
	return ks
}

// warm reads every data block of r once, so a cache holds them all.
func warm(b *testing.B, r *Reader, reads *atomic.Int64) {
	it, err := r.NewIter(nil, nil)
	if err != nil {
		b.Fatal(err)
	}
	for ok := it.First(); ok; ok = it.Next() {
	}
	if err := it.Close(); err != nil {
		b.Fatal(err)
	}
	reads.Store(0)
}

// countingFile counts ReadAt calls: reads that reach the file.
type countingFile struct {
	vfs.File
	reads *atomic.Int64
}

func (f countingFile) ReadAt(p []byte, off int64) (int, error) {
	f.reads.Add(1)
	return f.File.ReadAt(p, off)
}

var benchTable struct {
	once sync.Once
	fs   vfs.FS
	size int64
}

// benchReader opens (writing it the first time) a table of benchKeys keys
// with even numbers 0, 2, 4, ...: odd keys are absent.
func benchReader(b *testing.B, cache *Cache) (*Reader, *atomic.Int64) {
	benchTable.once.Do(func() {
		fs := vfs.NewMem()
		f, err := fs.Create("bench.sst")
		if err != nil {
			b.Fatal(err)
		}
		w := NewWriter(f, WriterOptions{})
		for i := 0; i < benchKeys; i++ {
			if err := w.Add(base.MakeInternalKey(benchKey(2*i), uint64(i+1), base.KindSet), benchValue(i)); err != nil {
				b.Fatal(err)
			}
		}
		if _, err := w.Close(); err != nil {
			b.Fatal(err)
		}
		st, _ := fs.Stat("bench.sst")
		benchTable.fs, benchTable.size = fs, st.Size()
	})
	f, err := benchTable.fs.Open("bench.sst")
	if err != nil {
		b.Fatal(err)
	}
	reads := new(atomic.Int64)
	r, err := Open(countingFile{f, reads}, "bench.sst", benchTable.size, ReaderOptions{Cache: cache})
	if err != nil {
		b.Fatal(err)
	}
	b.Cleanup(func() { r.Close() })
	reads.Store(0)
	return r, reads
}

func BenchmarkWrite(b *testing.B) {
	for _, c := range []struct {
		name string
		comp Compression
	}{{"snappy", SnappyCompression}, {"none", NoCompression}} {
		b.Run("compression="+c.name+"/key=16/value=100", func(b *testing.B) {
			fs := vfs.NewMem()
			f, err := fs.Create("w.sst")
			if err != nil {
				b.Fatal(err)
			}
			w := NewWriter(f, WriterOptions{Compression: c.comp})
			b.ReportAllocs()
			b.SetBytes(16 + benchValueSize)
			n := 0
			for ; b.Loop(); n++ {
				if err := w.Add(base.MakeInternalKey(benchKey(n), 1, base.KindSet), benchValue(n)); err != nil {
					b.Fatal(err)
				}
			}
			p, err := w.Close()
			if err != nil {
				b.Fatal(err)
			}
			b.ReportMetric(float64(p.DataSize)/float64(p.NumDataBlocks), "data-block-bytes")
			b.ReportMetric(float64(p.RawKeySize+p.RawValueSize)/float64(p.DataSize), "compression-ratio")
		})
	}
}

func BenchmarkSeekGE(b *testing.B) {
	for _, cached := range []bool{false, true} {
		b.Run(fmt.Sprintf("cache=%v", cached), func(b *testing.B) {
			var cache *Cache
			if cached {
				cache = NewCache(64 << 20)
			}
			r, reads := benchReader(b, cache)
			if cached {
				warm(b, r, reads)
			}
			it, err := r.NewIter(nil, nil)
			if err != nil {
				b.Fatal(err)
			}
			probes := benchProbes(2, 4096, false)
			b.ReportAllocs()
			for i := 0; b.Loop(); i++ {
				if !it.SeekGE(probes[i%len(probes)]) {
					b.Fatal("SeekGE found nothing")
				}
			}
			b.ReportMetric(float64(reads.Load())/float64(b.N), "reads/op")
		})
	}
}

func BenchmarkGet(b *testing.B) {
	for _, cached := range []bool{false, true} {
		for _, present := range []bool{true, false} {
			b.Run(fmt.Sprintf("cache=%v/present=%v", cached, present), func(b *testing.B) {
				var cache *Cache
				if cached {
					cache = NewCache(64 << 20)
				}
				r, reads := benchReader(b, cache)
				if cached {
					warm(b, r, reads)
				}
				probes := benchProbes(3, 4096, !present)
				b.ReportAllocs()
				for i := 0; b.Loop(); i++ {
					k := probes[i%len(probes)]
					_, _, found, err := r.Get(k, base.SeqMax)
					if err != nil || found != present {
						b.Fatalf("Get(%s) = %v, %v", k, found, err)
					}
				}
				b.ReportMetric(float64(reads.Load())/float64(b.N), "reads/op")
			})
		}
	}
}

func BenchmarkIterate(b *testing.B) {
	for _, dir := range []string{"forward", "reverse"} {
		b.Run("dir="+dir, func(b *testing.B) {
			r, _ := benchReader(b, nil)
			it, err := r.NewIter(nil, nil)
			if err != nil {
				b.Fatal(err)
			}
			step, start := it.Next, it.First
			if dir == "reverse" {
				// NB: each Prev decodes forward from the restart point
				// before the entry, so reverse steps cost more.
				step, start = it.Prev, it.Last
			}
			b.ReportAllocs()
			b.SetBytes(16 + base.TrailerLen + benchValueSize)
			for b.Loop() {
				if !step() && !start() {
					b.Fatal(it.Error())
				}
			}
		})
	}
}

// BenchmarkBloomFalsePositive reports the fraction of absent keys the
// filter lets through, per bits per key; the time is that of a probe.
func BenchmarkBloomFalsePositive(b *testing.B) {
	for _, bits := range []int{4, 8, 10, 16} {
		b.Run(fmt.Sprintf("bits-per-key=%d", bits), func(b *testing.B) {
			const n = 10_000
			hashes := make([]uint64, n)
			for i := range hashes {
				hashes[i] = filterHash(benchKey(2 * i))
			}
			f, _ := decodeFilter(buildFilter(hashes, bits))
			probes := make([][]byte, 4096)
			for i := range probes {
				probes[i] = benchKey(2*n + 2*i + 1)
			}
			fp := 0
			i := 0
			for ; b.Loop(); i++ {
				if f.mayContain(probes[i%len(probes)]) {
					fp++
				}
			}
			// The rate over all probes, independent of b.N.
			all := 0
			for _, p := range probes {
				if f.mayContain(p) {
					all++
				}
			}
			b.ReportMetric(float64(all)/float64(len(probes)), "fp-rate")
		})
	}
}
