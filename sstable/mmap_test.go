package sstable

import (
	"bytes"
	"errors"
	"math/rand/v2"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/kvs-lab/kvs"
	"github.com/kvs-lab/kvs/internal/base"
	"github.com/kvs-lab/kvs/internal/vfs"
)

// TestMmapReaderMatchesPread opens the same table file twice, once read
// through a memory map and once with pread, and checks that a full scan
// and a Get of every version give the same answers (and the model's).
func TestMmapReaderMatchesPread(t *testing.T) {
	for name, wo := range tableOptions {
		t.Run(name, func(t *testing.T) {
			rng := rand.New(rand.NewPCG(3, 4))
			es := randomEntries(rng, 300)
			path := filepath.Join(t.TempDir(), "000001.sst")
			writeTable(t, vfs.Default, path, es, wo)
			mapped := openTable(t, vfs.Default, path, ReaderOptions{Mmap: true})
			plain := openTable(t, vfs.Default, path, ReaderOptions{})
			if !mapped.Mapped() || plain.Mapped() {
				t.Fatalf("Mapped: %v and %v, want true and false", mapped.Mapped(), plain.Mapped())
			}
			for _, r := range []*Reader{mapped, plain} {
				it, err := r.NewIter(nil, nil)
				if err != nil {
					t.Fatal(err)
				}
				i := 0
				for it.First(); it.Valid(); it.Next() {
					if i >= len(es) || !sameEntry(it, es[i]) {
						t.Fatalf("mapped=%v: entry %d differs from the model", r.Mapped(), i)
					}
					i++
				}
				if err := it.Close(); err != nil || i != len(es) {
					t.Fatalf("mapped=%v: scanned %d of %d entries, %v", r.Mapped(), i, len(es), err)
				}
				for _, e := range es {
					v, kind, found, err := r.Search(e.key.UserKey, e.key.Seq())
					if err != nil || !found || kind != e.key.Kind() || (kind == base.KindSet && !bytes.Equal(v, e.value)) {
						t.Fatalf("mapped=%v: search %s = %q %v %v %v", r.Mapped(), e.key, v, kind, found, err)
					}
				}
			}
		})
	}
}

// TestMmapFallsBackToPread: a MemFS file cannot be mapped, and a file
// shorter than the size the caller gives is not mapped either, so its
// truncation is reported as corruption by pread rather than faulting.
func TestMmapFallsBackToPread(t *testing.T) {
	es := randomEntries(rand.New(rand.NewPCG(5, 6)), 50)
	mem := vfs.NewMem()
	writeTable(t, mem, "t.sst", es, WriterOptions{})
	if r := openTable(t, mem, "t.sst", ReaderOptions{Mmap: true}); r.Mapped() {
		t.Fatal("a MemFS table was mapped")
	}
	path := filepath.Join(t.TempDir(), "t.sst")
	_, size := writeTable(t, vfs.Default, path, es, WriterOptions{})
	f, err := vfs.Default.Open(path)
	if err != nil {
		t.Fatal(err)
	}
	_, err = Open(f, path, size+100, ReaderOptions{Mmap: true})
	if !errorsIsCorruption(err) {
		t.Fatalf("open with a size past the end of the file: %v, want corruption", err)
	}
}

// TestMmapReadOfACutFileIsAnError cuts a mapped table short after Open:
// reading a block past the cut faults (SIGBUS), and the Reader must turn
// that into an error naming the file instead of dying.
func TestMmapReadOfACutFileIsAnError(t *testing.T) {
	es := randomEntries(rand.New(rand.NewPCG(7, 8)), 2000)
	path := filepath.Join(t.TempDir(), "000009.sst")
	_, size := writeTable(t, vfs.Default, path, es, WriterOptions{Compression: NoCompression})
	if size < 64<<10 {
		t.Fatalf("table of %d bytes is too small for the test", size)
	}
	r := openTable(t, vfs.Default, path, ReaderOptions{Mmap: true})
	if err := os.Truncate(path, 4096); err != nil {
		t.Fatal(err)
	}
	last := es[len(es)-1].key
	_, _, _, err := r.Search(last.UserKey, last.Seq())
	if err == nil || !strings.Contains(err.Error(), "000009.sst") {
		t.Fatalf("search past the cut = %v, want an error naming the file", err)
	}
	t.Logf("error: %v", err)
}

func errorsIsCorruption(err error) bool { return errors.Is(err, kvs.ErrCorruption) }
