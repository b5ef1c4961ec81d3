package bitcask

import (
	"fmt"
	"io"
	"math/rand/v2"
	"runtime"
	"sync/atomic"
	"testing"

	"github.com/kvs-lab/kvs"
	"github.com/kvs-lab/kvs/internal/vfs"
)

// Benchmarks. Each names its parameters key=value so that benchstat can
// pivot on them, e.g. benchstat -col /index new.txt. Setup stays under a
// few seconds, so that
//
//	go test -run '^$' -bench . -benchtime=1x ./bitcask
//
// is a quick smoke run. Keys are 16 bytes and values 100 bytes throughout.

const benchValueLen = 100

func benchOptions(index string) *kvs.Options {
	return &kvs.Options{Logger: kvs.DiscardLogger(), Bitcask: kvs.BitcaskOptions{Index: index}}
}

// benchKeys is how many keys the loading benchmarks use.
func benchKeys(full int) int {
	if testing.Short() {
		return full / 4
	}
	return full
}

// load puts keys 0..n-1 with 100-byte values into db.
func load(tb testing.TB, db *DB, n int) {
	tb.Helper()
	value := make([]byte, benchValueLen)
	for i := 0; i < n; i++ {
		copy(value, keyN(i))
		if err := db.Put([]byte(keyN(i)), value, kvs.NoSync); err != nil {
			tb.Fatal(err)
		}
	}
}

// copyDir copies the files of src into dst (not recursing), skipping those
// skip says to.
func copyDir(tb testing.TB, src, dst string, skip func(name string) bool) {
	tb.Helper()
	fs := vfs.Default
	names, err := fs.List(src)
	if err != nil {
		tb.Fatal(err)
	}
	for _, name := range names {
		if skip(name) || name == lockFile {
			continue
		}
		in, err := fs.Open(fs.PathJoin(src, name))
		if err != nil {
			tb.Fatal(err)
		}
		out, err := fs.Create(fs.PathJoin(dst, name))
		if err != nil {
			tb.Fatal(err)
		}
		if _, err := io.Copy(out, in); err != nil {
			tb.Fatal(err)
		}
		in.Close()
		out.Close()
	}
}

// BenchmarkOpen measures recovery of a merged directory: with hint files
// Open reads about 19 bytes per key and sizes the keydir once from the
// trailers' entry counts; without them it scans every record (126 bytes
// per key), checks its checksum, and grows the keydir as it goes.
func BenchmarkOpen(b *testing.B) {
	keys := benchKeys(200000)
	withHints := b.TempDir()
	db, err := Open(withHints, benchOptions(kvs.IndexHash))
	if err != nil {
		b.Fatal(err)
	}
	load(b, db, keys)
	if err := db.Compact(); err != nil {
		b.Fatal(err)
	}
	if err := db.Close(); err != nil {
		b.Fatal(err)
	}
	noHints := b.TempDir()
	copyDir(b, withHints, noHints, func(name string) bool {
		_, kind := ParseFileName(name)
		return kind == FileHint
	})
	for _, tc := range []struct {
		hint bool
		dir  string
	}{{true, withHints}, {false, noHints}} {
		b.Run(fmt.Sprintf("hint=%v/keys=%d", tc.hint, keys), func(b *testing.B) {
			for b.Loop() {
				db, err := Open(tc.dir, benchOptions(kvs.IndexHash))
				if err != nil {
					b.Fatal(err)
				}
				if got := db.Stats().LiveKeys; got != int64(keys) {
					b.Fatalf("opened %d keys, want %d", got, keys)
				}
				db.Close()
			}
			b.ReportMetric(float64(keys)*float64(b.N)/b.Elapsed().Seconds(), "keys/s")
		})
	}
}

// BenchmarkPut measures Put with 100-byte values: without sync, and with
// Sync from 8 goroutines at once (group commit; see syncs/op).
func BenchmarkPut(b *testing.B) {
	for _, index := range indexes {
		b.Run("index="+index+"/sync=none", func(b *testing.B) {
			db := openDB(b, b.TempDir(), benchOptions(index))
			value := make([]byte, benchValueLen)
			b.SetBytes(16 + benchValueLen)
			b.ReportAllocs()
			for i := 0; b.Loop(); i++ {
				if err := db.Put([]byte(keyN(i)), value, kvs.NoSync); err != nil {
					b.Fatal(err)
				}
			}
			b.ReportMetric(db.Stats().WriteAmp(), "write-amp")
		})
		b.Run("index="+index+"/sync=group", func(b *testing.B) {
			db := openDB(b, b.TempDir(), benchOptions(index))
			before := db.Stats().Syncs
			var n atomic.Int64
			b.SetBytes(16 + benchValueLen)
			b.SetParallelism(8) // 8 x GOMAXPROCS writers
			b.RunParallel(func(pb *testing.PB) {
				value := make([]byte, benchValueLen)
				for pb.Next() {
					if err := db.Put([]byte(keyN(int(n.Add(1)))), value, kvs.Sync); err != nil {
						b.Error(err)
						return
					}
				}
			})
			b.ReportMetric(float64(db.Stats().Syncs-before)/float64(b.N), "syncs/op")
		})
	}
}

// BenchmarkGet measures random Gets of present keys, with each keydir and
// each read mode: records copied out of a memory map of the segment, or
// read with one pread(2) each (the data is in the page cache either way).
func BenchmarkGet(b *testing.B) {
	keys := benchKeys(100000)
	for _, index := range indexes {
		for _, mode := range []string{kvs.ReadModeMmap, kvs.ReadModePread} {
			b.Run("index="+index+"/read="+mode, func(b *testing.B) {
				o := benchOptions(index)
				o.ReadMode = mode
				db := openDB(b, b.TempDir(), o)
				load(b, db, keys)
				rng := rand.New(rand.NewPCG(1, 1))
				b.SetBytes(16 + benchValueLen)
				b.ReportAllocs()
				for b.Loop() {
					if _, err := db.Get([]byte(keyN(rng.IntN(keys)))); err != nil {
						b.Fatal(err)
					}
				}
				b.ReportMetric(db.Stats().ReadAmp(), "reads/get")
			})
		}
	}
}

// BenchmarkIndexMemory measures the heap the keydir takes per key (heap
// in use after a GC, before and after loading the keys through Put) next
// to the engine's own estimate, Stats.MemoryPerKey, for keys loaded in
// random and in ascending order. The files live on the real file system,
// so file data is not in the heap.
func BenchmarkIndexMemory(b *testing.B) {
	keys := benchKeys(200000)
	for _, index := range indexes {
		for _, random := range []bool{true, false} {
			order := "ascending"
			if random {
				order = "random"
			}
			b.Run(fmt.Sprintf("index=%s/order=%s/keys=%d", index, order, keys), func(b *testing.B) {
				var measured, estimated float64
				for b.Loop() {
					db := openDB(b, b.TempDir(), benchOptions(index))
					value := make([]byte, benchValueLen)
					perm := make([]int, keys)
					for i := range perm {
						perm[i] = i
					}
					if random {
						perm = rand.New(rand.NewPCG(2, 2)).Perm(keys)
					}
					before := heapInUse()
					for _, i := range perm {
						if err := db.Put([]byte(keyN(i)), value, kvs.NoSync); err != nil {
							b.Fatal(err)
						}
					}
					after := heapInUse()
					measured = (float64(after) - float64(before)) / float64(keys)
					estimated = db.Stats().MemoryPerKey()
					runtime.KeepAlive(perm) // NB: a dead perm would be freed in between, skewing the delta
					db.Close()
				}
				b.ReportMetric(measured, "heap-B/key")
				b.ReportMetric(estimated, "est-B/key")
			})
		}
	}
}

// heapInUse returns the bytes of live heap objects after a full GC.
func heapInUse() uint64 {
	runtime.GC()
	runtime.GC()
	var m runtime.MemStats
	runtime.ReadMemStats(&m)
	return m.HeapAlloc
}
