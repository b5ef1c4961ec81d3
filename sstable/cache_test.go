package sstable

import (
	"fmt"
	"math/rand/v2"
	"sync"
	"sync/atomic"
	"testing"

	"github.com/kvs-lab/kvs/internal/vfs"
)

// TestCacheEvictsByClock: a block hit since the hand last passed gets a
// second chance; the first one that was not is evicted.
func TestCacheEvictsByClock(t *testing.T) {
	block := make([]byte, 1000-cacheEntryOverhead) // costs 1000 bytes
	c := NewCache(3000)
	c.set(1, 0, block)
	c.set(1, 100, block)
	c.set(2, 0, block)
	if c.get(1, 0) == nil { // 1/0 is referenced
		t.Fatal("miss on a cached block")
	}
	c.set(2, 100, block) // the hand spares 1/0 and evicts 1/100
	if c.get(1, 100) != nil {
		t.Fatal("the unreferenced block survived")
	}
	for _, k := range []cacheKey{{1, 0}, {2, 0}, {2, 100}} {
		if c.get(k.id, k.offset) == nil {
			t.Fatalf("block %v evicted", k)
		}
	}
	m := c.Metrics()
	if m.Hits != 4 || m.Misses != 1 || m.Size != 3000 || m.Count != 3 {
		t.Fatalf("metrics %+v", m)
	}
	c.EvictTable(2)
	if m := c.Metrics(); m.Count != 1 || m.Size != 1000 {
		t.Fatalf("after EvictTable(2): %+v", m)
	}
	c.set(3, 0, make([]byte, 5000)) // larger than the cache: not kept
	if m := c.Metrics(); m.Count != 1 {
		t.Fatalf("an oversized block was cached: %+v", m)
	}
}

// TestCacheSharedByConcurrentReaders runs Gets on two tables sharing one
// small cache from several goroutines (run it with -race).
func TestCacheSharedByConcurrentReaders(t *testing.T) {
	fs := vfs.NewMem()
	cache := NewCache(16 << 10)
	rng := rand.New(rand.NewPCG(19, 20))
	tables := map[string][]entry{"a.sst": randomEntries(rng, 500), "b.sst": randomEntries(rng, 500)}
	readers := map[string]*Reader{}
	for name, es := range tables {
		writeTable(t, fs, name, es, WriterOptions{BlockSize: 512})
		readers[name] = openTable(t, fs, name, ReaderOptions{Cache: cache})
	}
	var wg sync.WaitGroup
	for g := 0; g < 4; g++ {
		wg.Add(1)
		go func(g int) {
			defer wg.Done()
			rng := rand.New(rand.NewPCG(uint64(g), 0))
			for i := 0; i < 2000; i++ {
				name := []string{"a.sst", "b.sst"}[rng.IntN(2)]
				es := tables[name]
				e := es[rng.IntN(len(es))]
				v, kind, found, err := readers[name].Get(e.key.UserKey, e.key.Seq())
				if err != nil || !found || kind != e.key.Kind() || string(v) != string(e.value) {
					t.Errorf("Get(%s) in %s = %q %v %v %v", e.key, name, v, kind, found, err)
					return
				}
			}
		}(g)
	}
	wg.Wait()
	if m := cache.Metrics(); m.Size > m.Capacity || m.Hits == 0 {
		t.Fatalf("cache metrics %+v", m)
	}
}

// TestCacheShardsStayWithinBudget fills a sharded cache with many more
// blocks than it holds, hitting some of them, and checks the bound, the
// shard count and that hit blocks are found more often than not.
func TestCacheShardsStayWithinBudget(t *testing.T) {
	if n := NewCache(16 << 10).Metrics().Shards; n != 1 {
		t.Fatalf("a 16 KiB cache has %d shards, want 1", n)
	}
	if n := NewCache(8 << 20).Metrics().Shards; n != 8 {
		t.Fatalf("an 8 MiB cache has %d shards, want 8", n)
	}
	c := NewCache(32 << 20)
	if n := c.Metrics().Shards; n != maxCacheShards {
		t.Fatalf("a 32 MiB cache has %d shards, want %d", n, maxCacheShards)
	}
	block := make([]byte, 4096)
	hot := 0
	for i := range uint64(40000) {
		c.set(i%7+1, i*4096, block)
		// Keep the first 100 blocks hot: hit each after every insert
		// of a hundred others.
		if i >= 100 && i%100 == 0 {
			for j := range uint64(100) {
				if c.get(j%7+1, j*4096) != nil {
					hot++
				}
			}
		}
		if m := c.Metrics(); m.Size > m.Capacity {
			t.Fatalf("after %d sets the cache holds %d bytes, over its %d", i+1, m.Size, m.Capacity)
		}
	}
	m := c.Metrics()
	t.Logf("%+v; hot hits %d of %d", m, hot, 399*100)
	if hot < 399*100*9/10 {
		t.Fatalf("hot blocks were hit %d times of %d: the clock is not giving them second chances", hot, 399*100)
	}
	for i := range uint64(7) {
		c.EvictTable(i + 1)
	}
	if m := c.Metrics(); m.Count != 0 || m.Size != 0 {
		t.Fatalf("after evicting every table: %+v", m)
	}
}

// BenchmarkCache measures get (and set on a miss) from all cores at once,
// over twice as many 4 KiB blocks as the cache holds, drawn uniformly:
// about half the lookups miss and insert, evicting another block.
func BenchmarkCache(b *testing.B) {
	for _, mib := range []int64{8, 64} {
		b.Run(fmt.Sprintf("cache=%dMiB", mib), func(b *testing.B) {
			c := NewCache(mib << 20)
			blocks := 2 * int(mib<<20) / 4096
			block := make([]byte, 4096-cacheEntryOverhead)
			var seed atomic.Uint64
			b.RunParallel(func(pb *testing.PB) {
				rng := rand.New(rand.NewPCG(seed.Add(1), 7))
				for pb.Next() {
					off := uint64(rng.IntN(blocks)) * 4096
					if c.get(1, off) == nil {
						c.set(1, off, block)
					}
				}
			})
			m := c.Metrics()
			b.ReportMetric(float64(m.Hits)/float64(m.Hits+m.Misses), "hit-ratio")
		})
	}
}
