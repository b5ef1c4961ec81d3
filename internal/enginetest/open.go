package enginetest

import (
	"errors"
	"io"
	"testing"

	"github.com/kvs-lab/kvs"
	"github.com/kvs-lab/kvs/internal/vfs"
)

// testOpenClose checks directory locking, the calls made on a closed
// engine and the directories Open refuses.
func testOpenClose(t *testing.T, c Config) {
	for _, fsName := range []string{"mem", "os"} {
		newFS := func(t testing.TB) (vfs.FS, string) {
			if fsName == "os" {
				return vfs.Default, t.TempDir()
			}
			return newMem(), engineDir
		}
		t.Run("SecondOpenOfSameDirIsLocked/fs="+fsName, func(t *testing.T) {
			fs, dir := newFS(t)
			e := openEngine(t, c, c.Options, fs, dir)
			mustPut(t, e, "k", "v", kvs.Sync)
			e2, err := kvs.Open(c.Engine, dir, options(c.Options, fs))
			if !errors.Is(err, kvs.ErrLocked) {
				if err == nil {
					e2.Close()
				}
				t.Fatalf("second open of a directory in use: %v, want kvs.ErrLocked", err)
			}
			// The failed open must not disturb the open engine.
			mustPut(t, e, "k2", "v2", kvs.NoSync)
			checkState(t, e, state{"k": "v", "k2": "v2"}, nil)
			mustClose(t, e)
			e2 = openEngine(t, c, c.Options, fs, dir)
			checkState(t, e2, state{"k": "v", "k2": "v2"}, nil)
			mustClose(t, e2)
		})
	}
	t.Run("CallsAfterCloseReturnErrClosed", func(t *testing.T) {
		fs := newMem()
		e := openEngine(t, c, c.Options, fs, engineDir)
		mustPut(t, e, "k", "v", kvs.NoSync)
		mustClose(t, e)
		calls := []struct {
			name string
			call func() error
		}{
			{"Get", func() error { _, err := e.Get([]byte("k")); return err }},
			{"Put", func() error { return e.Put([]byte("k"), []byte("w"), kvs.NoSync) }},
			{"Put with Sync", func() error { return e.Put([]byte("k"), []byte("w"), kvs.Sync) }},
			{"Delete", func() error { return e.Delete([]byte("k"), kvs.NoSync) }},
			{"Write", func() error {
				var b kvs.Batch
				b.Put([]byte("k"), []byte("w"))
				return e.Write(&b, kvs.Sync)
			}},
			{"NewIter", func() error {
				it, err := e.NewIter(nil)
				if err == nil {
					it.Close()
				}
				return err
			}},
			{"NewSnapshot", func() error {
				s, err := e.NewSnapshot()
				if err == nil {
					s.Close()
				}
				return err
			}},
			{"Compact", e.Compact},
			{"Close", e.Close},
		}
		for _, call := range calls {
			noPanic(t, call.name+" after Close", func() bool {
				if err := call.call(); !errors.Is(err, kvs.ErrClosed) {
					t.Errorf("%s after Close: %v, want kvs.ErrClosed", call.name, err)
				}
				return false
			})
		}
		noPanic(t, "Stats after Close", func() bool { e.Stats(); return false })
		e = openEngine(t, c, c.Options, fs, engineDir)
		defer e.Close()
		checkState(t, e, state{"k": "v"}, nil)
	})
	t.Run("ReopenAfterCloseInSameProcess", func(t *testing.T) {
		fs := newMem()
		for i := 0; i < 5; i++ {
			e := openEngine(t, c, c.Options, fs, engineDir)
			mustPut(t, e, keyf("k%d", i), "v", kvs.NoSync)
			mustClose(t, e)
		}
		e := openEngine(t, c, c.Options, fs, engineDir)
		defer e.Close()
		checkState(t, e, state{"k0": "v", "k1": "v", "k2": "v", "k3": "v", "k4": "v"}, nil)
	})
	t.Run("ErrorIfNotExistRefusesMissingDir", func(t *testing.T) {
		fs := newMem()
		o := options(c.Options, fs)
		o.ErrorIfNotExist = true
		if e, err := kvs.Open(c.Engine, "/missing", o); err == nil {
			e.Close()
			t.Fatalf("open of a missing directory with ErrorIfNotExist succeeded")
		}
		if _, err := fs.Stat("/missing"); err == nil {
			t.Errorf("open with ErrorIfNotExist created the directory")
		}
		e := openEngine(t, c, c.Options, fs, engineDir)
		mustClose(t, e)
		o = options(c.Options, fs)
		o.ErrorIfNotExist = true
		e, err := kvs.Open(c.Engine, engineDir, o)
		if err != nil {
			t.Fatalf("open of an existing engine directory with ErrorIfNotExist: %v", err)
		}
		mustClose(t, e)
	})
	t.Run("OpenRefusesForeignDirectory", func(t *testing.T) {
		fs := newMem()
		if err := fs.MkdirAll("/foreign", 0o755); err != nil {
			t.Fatal(err)
		}
		writeFile(t, fs, "/foreign/notes.txt", "not kvs data")
		if e, err := kvs.Open(c.Engine, "/foreign", options(c.Options, fs)); !errors.Is(err, kvs.ErrNotKVSDir) {
			if err == nil {
				e.Close()
			}
			t.Errorf("open of a directory holding a file kvs did not write: %v, want kvs.ErrNotKVSDir", err)
		}
		if got := readFile(t, fs, "/foreign/notes.txt"); got != "not kvs data" {
			t.Errorf("open changed a foreign file: now %q", got)
		}

		if err := fs.MkdirAll("/other", 0o755); err != nil {
			t.Fatal(err)
		}
		writeFile(t, fs, "/other/"+kvs.EngineFile, "some-other-engine\n")
		if e, err := kvs.Open(c.Engine, "/other", options(c.Options, fs)); !errors.Is(err, kvs.ErrNotKVSDir) {
			if err == nil {
				e.Close()
			}
			t.Errorf("open of another engine's directory: %v, want kvs.ErrNotKVSDir", err)
		}
	})
}

func writeFile(t testing.TB, fs vfs.FS, name, data string) {
	t.Helper()
	f, err := fs.Create(name)
	if err != nil {
		t.Fatal(err)
	}
	if _, err := io.WriteString(f, data); err != nil {
		t.Fatal(err)
	}
	if err := f.Close(); err != nil {
		t.Fatal(err)
	}
}

func readFile(t testing.TB, fs vfs.FS, name string) string {
	t.Helper()
	f, err := fs.Open(name)
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	b, err := io.ReadAll(f)
	if err != nil {
		t.Fatal(err)
	}
	return string(b)
}
