package enginetest

import (
	"fmt"
	"math/rand"
	"testing"

	"github.com/kvs-lab/kvs"
	"github.com/kvs-lab/kvs/internal/vfs"
)

// testReopen checks that what was written is there after Close and Open.
func testReopen(t *testing.T, c Config) {
	for _, fsName := range []string{"mem", "os"} {
		newFS := func(t testing.TB) (vfs.FS, string) {
			if fsName == "os" {
				return vfs.Default, t.TempDir()
			}
			return newMem(), engineDir
		}
		t.Run("WritesSurviveCloseAndReopen/fs="+fsName, func(t *testing.T) {
			fs, dir := newFS(t)
			e := openEngine(t, c, c.Options, fs, dir)
			want := state{}
			for i := 0; i < 300; i++ {
				k := keyf("k%03d", i%120)
				v := fmt.Sprintf("%d-%s", i, pattern(i%150, i))
				mustPut(t, e, k, v, kvs.WriteOptions{Sync: i%10 == 0})
				want[k] = v
			}
			for i := 0; i < 120; i += 7 {
				k := keyf("k%03d", i)
				mustDelete(t, e, k, kvs.WriteOptions{Sync: i%2 == 0})
				delete(want, k)
			}
			var b kvs.Batch
			b.Put([]byte("batch-a"), []byte("1"))
			b.Delete([]byte("k001"))
			b.Put([]byte("batch-b"), nil)
			mustWrite(t, e, &b, kvs.NoSync)
			want["batch-a"], want["batch-b"] = "1", ""
			delete(want, "k001")
			checkState(t, e, want, nil)
			mustClose(t, e)

			e = openEngine(t, c, c.Options, fs, dir)
			checkState(t, e, want, []string{"k000", "k001", "k007"})
			if s := e.Stats(); s.Engine != c.Engine {
				t.Errorf("Stats().Engine = %q, want %q", s.Engine, c.Engine)
			}
			mustClose(t, e)

			// The directory says which engine made it.
			if name, err := kvs.DetectEngine(fs, dir); err != nil || name != c.Engine {
				t.Errorf("DetectEngine = %q, %v; want %q", name, err, c.Engine)
			}
			e, err := kvs.Open("", dir, options(c.Options, fs))
			if err != nil {
				t.Fatalf("open with no engine name: %v", err)
			}
			checkState(t, e, want, nil)
			mustClose(t, e)
		})
		t.Run("CompactThenReopen/fs="+fsName, func(t *testing.T) {
			fs, dir := newFS(t)
			e := openEngine(t, c, c.Options, fs, dir)
			want := state{}
			for round := 0; round < 4; round++ {
				for i := 0; i < 150; i++ {
					k := keyf("k%03d", i)
					if (i+round)%5 == 0 {
						mustDelete(t, e, k, kvs.NoSync)
						delete(want, k)
						continue
					}
					v := fmt.Sprintf("r%d-%s", round, pattern(200, i+round))
					mustPut(t, e, k, v, kvs.NoSync)
					want[k] = v
				}
				if err := e.Compact(); err != nil {
					t.Fatalf("compact: %v", err)
				}
				checkState(t, e, want, nil)
			}
			mustPut(t, e, "after-compact", "x", kvs.NoSync)
			want["after-compact"] = "x"
			mustClose(t, e)
			e = openEngine(t, c, c.Options, fs, dir)
			checkState(t, e, want, nil)
			if err := e.Compact(); err != nil {
				t.Fatalf("compact after reopen: %v", err)
			}
			mustClose(t, e)
			e = openEngine(t, c, c.Options, fs, dir)
			checkState(t, e, want, nil)
			mustClose(t, e)
		})
	}
	t.Run("CloseMakesEverythingDurable", func(t *testing.T) {
		fs := newMem()
		e := openEngine(t, c, c.Options, fs, engineDir)
		want := state{}
		for i := 0; i < 100; i++ {
			k := keyf("k%02d", i%40)
			v := pattern(i, i)
			mustPut(t, e, k, v, kvs.NoSync)
			want[k] = v
		}
		mustDelete(t, e, "k05", kvs.NoSync)
		delete(want, "k05")
		mustClose(t, e)
		// Close syncs: a crash right after it loses nothing.
		e = openEngine(t, c, c.Options, fs.CrashClone(), engineDir)
		defer e.Close()
		checkState(t, e, want, []string{"k05"})
	})
	t.Run("ReopenManyTimes", func(t *testing.T) {
		seeded(t, func(t testing.TB, seed int64, rng *rand.Rand) {
			fs := newMem()
			want := state{}
			for cycle := 0; cycle < 25; cycle++ {
				e := openEngine(t, c, c.Options, fs, engineDir)
				checkState(t, e, want, nil)
				for i := rng.Intn(30); i > 0; i-- {
					k := keyf("k%02d", rng.Intn(50))
					if rng.Intn(4) == 0 {
						mustDelete(t, e, k, kvs.NoSync)
						delete(want, k)
					} else {
						v := fmt.Sprintf("c%d-%s", cycle, pattern(rng.Intn(500), i))
						mustPut(t, e, k, v, kvs.WriteOptions{Sync: rng.Intn(3) == 0})
						want[k] = v
					}
				}
				if rng.Intn(5) == 0 {
					if err := e.Compact(); err != nil {
						t.Fatalf("cycle %d: compact: %v", cycle, err)
					}
				}
				mustClose(t, e)
			}
			e := openEngine(t, c, c.Options, fs, engineDir)
			defer e.Close()
			checkState(t, e, want, nil)
		})
	})
}
