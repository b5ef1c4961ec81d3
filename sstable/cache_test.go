package sstable

import (
	"math/rand/v2"
	"sync"
	"testing"

	"github.com/kvs-lab/kvs/internal/vfs"
)

func TestCacheEvictsLeastRecentlyUsed(t *testing.T) {
	block := make([]byte, 1000-cacheEntryOverhead) // costs 1000 bytes
	c := NewCache(3000)
	c.set(1, 0, block)
	c.set(1, 100, block)
	c.set(2, 0, block)
	if c.get(1, 0) == nil { // 1/0 becomes the most recent
		t.Fatal("miss on a cached block")
	}
	c.set(2, 100, block) // evicts 1/100, the least recently used
	if c.get(1, 100) != nil {
		t.Fatal("the least recently used block survived")
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
