package lsm

import (
	"encoding/binary"
	"math/rand"
	"testing"

	"github.com/kvs-lab/kvs"
)

// benchKey writes the 16-byte key of i into k.
func benchKey(k []byte, i uint64) []byte {
	binary.BigEndian.PutUint64(k[:8], i*0x9e3779b97f4a7c15) // scattered
	binary.BigEndian.PutUint64(k[8:], i)
	return k
}

func BenchmarkFillRandom(b *testing.B) {
	db, err := OpenWith(b.TempDir(), &kvs.Options{Logger: kvs.DiscardLogger()}, nil)
	if err != nil {
		b.Fatal(err)
	}
	defer db.Close()
	key, value := make([]byte, 16), make([]byte, 100)
	rng := rand.New(rand.NewSource(1))
	b.ReportAllocs()
	b.SetBytes(16 + 100)
	for b.Loop() {
		if err := db.Put(benchKey(key, rng.Uint64()%1_000_000), value, kvs.NoSync); err != nil {
			b.Fatal(err)
		}
	}
	b.ReportMetric(db.Stats().WriteAmp(), "write-amp")
}

func BenchmarkReadRandom(b *testing.B) {
	db, err := OpenWith(b.TempDir(), &kvs.Options{Logger: kvs.DiscardLogger()}, nil)
	if err != nil {
		b.Fatal(err)
	}
	defer db.Close()
	const n = 100_000
	key, value := make([]byte, 16), make([]byte, 100)
	for i := uint64(0); i < n; i++ {
		if err := db.Put(benchKey(key, i), value, kvs.NoSync); err != nil {
			b.Fatal(err)
		}
	}
	if err := db.Compact(); err != nil {
		b.Fatal(err)
	}
	rng := rand.New(rand.NewSource(2))
	before := db.Stats()
	b.ReportAllocs()
	for b.Loop() {
		if _, err := db.Get(benchKey(key, rng.Uint64()%n)); err != nil {
			b.Fatal(err)
		}
	}
	after := db.Stats()
	b.ReportMetric(float64(after.DiskReads-before.DiskReads)/float64(after.Gets-before.Gets), "tables/get")
}
