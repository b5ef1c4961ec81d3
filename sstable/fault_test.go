package sstable

import (
	"errors"
	"math/rand/v2"
	"sync/atomic"
	"testing"

	"github.com/kvs-lab/kvs"
	"github.com/kvs-lab/kvs/internal/base"
	"github.com/kvs-lab/kvs/internal/vfs"
)

// failNth returns an FS that fails the nth operation of kind op (counting
// from 1) with EIO.
func failNth(fs vfs.FS, op vfs.Op, n int64) vfs.FS {
	var count atomic.Int64
	return vfs.Inject(fs, vfs.InjectorFunc(func(o vfs.Op, path string) error {
		if o == op && count.Add(1) == n {
			return vfs.ErrIO
		}
		return nil
	}))
}

// TestWriterReportsIOErrors fails each write and the sync in turn: the
// writer must return the error (not panic, not report success).
func TestWriterReportsIOErrors(t *testing.T) {
	es := randomEntries(rand.New(rand.NewPCG(23, 24)), 200)
	for _, op := range []vfs.Op{vfs.OpWrite, vfs.OpSync} {
		for n := int64(1); ; n++ {
			fs := failNth(vfs.NewMem(), op, n)
			f, err := fs.Create("t.sst")
			if err != nil {
				t.Fatal(err)
			}
			w := NewWriter(f, WriterOptions{BlockSize: 512})
			for _, e := range es {
				if err = w.Add(e.key, e.value); err != nil {
					break
				}
			}
			_, cerr := w.Close()
			if err == nil {
				err = cerr
			}
			if err == nil {
				if n == 1 {
					t.Fatalf("%s never failed", op)
				}
				break // n is past the last op: every earlier one was tried
			}
			if !errors.Is(err, vfs.ErrInjected) || errors.Is(err, kvs.ErrCorruption) {
				t.Fatalf("failing %s #%d: err = %v, want the injected error", op, n, err)
			}
		}
	}
}

// TestReaderReportsIOErrorsAsIOErrors fails each read in turn: Open, Get
// and iteration return the I/O error, never a corruption error.
func TestReaderReportsIOErrorsAsIOErrors(t *testing.T) {
	es := randomEntries(rand.New(rand.NewPCG(25, 26)), 200)
	mem := vfs.NewMem()
	writeTable(t, mem, "t.sst", es, WriterOptions{BlockSize: 512})
	st, _ := mem.Stat("t.sst")
	for n := int64(1); n < 200; n++ {
		fs := failNth(mem, vfs.OpRead, n)
		f, err := fs.Open("t.sst")
		if err != nil {
			t.Fatal(err)
		}
		r, err := Open(f, "t.sst", st.Size(), ReaderOptions{})
		if err == nil {
			it, _ := r.NewIter(nil, nil)
			for ok := it.First(); ok; ok = it.Next() {
			}
			err = it.Close()
			if err == nil {
				_, _, _, err = r.Get(es[len(es)/2].key.UserKey, base.SeqMax)
			}
			r.Close()
		}
		if err != nil && (!errors.Is(err, vfs.ErrInjected) || errors.Is(err, kvs.ErrCorruption)) {
			t.Fatalf("failing read #%d: err = %v, want the injected I/O error", n, err)
		}
	}
}

// TestGetSkipsTablesTheFilterExcludes counts file reads: Gets of absent
// keys must almost never read a data block.
func TestGetSkipsTablesTheFilterExcludes(t *testing.T) {
	es := randomEntries(rand.New(rand.NewPCG(27, 28)), 1000)
	mem := vfs.NewMem()
	writeTable(t, mem, "t.sst", es, WriterOptions{})
	var reads atomic.Int64
	fs := vfs.Inject(mem, vfs.InjectorFunc(func(op vfs.Op, path string) error {
		if op == vfs.OpRead {
			reads.Add(1)
		}
		return nil
	}))
	r := openTable(t, fs, "t.sst", ReaderOptions{})
	reads.Store(0)
	const probes = 10000
	for i := 0; i < probes; i++ {
		if _, _, found, err := r.Get([]byte{'k', 'e', 'y', '!', byte(i), byte(i >> 8)}, base.SeqMax); found || err != nil {
			t.Fatalf("absent key found: %v %v", found, err)
		}
	}
	if n := reads.Load(); n > probes*2/100 {
		t.Fatalf("%d block reads for %d absent keys: the filter is not consulted", n, probes)
	}
}
