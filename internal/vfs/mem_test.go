package vfs

import (
	"bytes"
	"errors"
	"fmt"
	"io"
	"io/fs"
	"maps"
	"math/rand"
	"os"
	"slices"
	"strings"
	"sync"
	"syscall"
	"testing"
)

// newTestMem returns a MemFS whose invariants are checked when the test
// ends.
func newTestMem(t testing.TB) *MemFS {
	t.Helper()
	m := NewMem()
	t.Cleanup(func() {
		if err := m.check(); err != nil {
			t.Error(err)
		}
	})
	return m
}

func writeFile(t testing.TB, fsys FS, name, data string, sync bool) {
	t.Helper()
	f, err := fsys.Create(name)
	if err != nil {
		t.Fatal(err)
	}
	if _, err := f.Write([]byte(data)); err != nil {
		t.Fatal(err)
	}
	if sync {
		if err := f.Sync(); err != nil {
			t.Fatal(err)
		}
	}
	if err := f.Close(); err != nil {
		t.Fatal(err)
	}
}

func appendFile(t testing.TB, fsys FS, name, data string, sync bool) {
	t.Helper()
	f, err := fsys.OpenReadWrite(name)
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	if _, err := f.Seek(0, io.SeekEnd); err != nil {
		t.Fatal(err)
	}
	if _, err := f.Write([]byte(data)); err != nil {
		t.Fatal(err)
	}
	if sync {
		if err := f.Sync(); err != nil {
			t.Fatal(err)
		}
	}
}

func readFile(t testing.TB, fsys FS, name string) string {
	t.Helper()
	f, err := fsys.Open(name)
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

func syncDir(t testing.TB, fsys FS, dir string) {
	t.Helper()
	if err := SyncDir(fsys, dir); err != nil {
		t.Fatal(err)
	}
}

func mkdirSynced(t testing.TB, fsys FS, dir string) {
	t.Helper()
	if err := fsys.MkdirAll(dir, 0o755); err != nil {
		t.Fatal(err)
	}
	syncDir(t, fsys, fsys.PathDir(dir))
}

// contents maps every path under dir to its file's contents, or to "/"
// for a directory.
func contents(t testing.TB, fsys FS, dir string) map[string]string {
	t.Helper()
	out := map[string]string{}
	names, err := fsys.List(dir)
	if err != nil {
		t.Fatal(err)
	}
	for _, name := range names {
		p := fsys.PathJoin(dir, name)
		info, err := fsys.Stat(p)
		if err != nil {
			t.Fatal(err)
		}
		if info.IsDir() {
			out[p] = "/"
			maps.Copy(out, contents(t, fsys, p))
			continue
		}
		out[p] = readFile(t, fsys, p)
	}
	return out
}

func TestMemFileOperations(t *testing.T) {
	tests := []struct {
		name string
		run  func(t *testing.T, m *MemFS)
	}{
		{"write then seek and read back", func(t *testing.T, m *MemFS) {
			f, err := m.Create("f")
			if err != nil {
				t.Fatal(err)
			}
			defer f.Close()
			if n, err := f.Write([]byte("hello world")); n != 11 || err != nil {
				t.Fatalf("Write = %d, %v", n, err)
			}
			if off, err := f.Seek(6, io.SeekStart); off != 6 || err != nil {
				t.Fatalf("Seek = %d, %v", off, err)
			}
			b := make([]byte, 3)
			if n, err := f.Read(b); n != 3 || err != nil || string(b) != "wor" {
				t.Fatalf("Read = %d, %v, %q", n, err, b)
			}
			if off, err := f.Seek(-2, io.SeekEnd); off != 9 || err != nil {
				t.Fatalf("Seek end = %d, %v", off, err)
			}
			rest, err := io.ReadAll(f)
			if err != nil || string(rest) != "ld" {
				t.Fatalf("ReadAll = %q, %v", rest, err)
			}
			if n, err := f.Read(b); n != 0 || err != io.EOF {
				t.Fatalf("Read at EOF = %d, %v; want 0, io.EOF", n, err)
			}
		}},
		{"readat does not move the offset and returns EOF when short", func(t *testing.T, m *MemFS) {
			writeFile(t, m, "f", "0123456789", false)
			f, err := m.Open("f")
			if err != nil {
				t.Fatal(err)
			}
			defer f.Close()
			b := make([]byte, 4)
			if n, err := f.ReadAt(b, 3); n != 4 || err != nil || string(b) != "3456" {
				t.Fatalf("ReadAt(3) = %d, %v, %q", n, err, b)
			}
			if n, err := f.ReadAt(b, 8); n != 2 || err != io.EOF || string(b[:n]) != "89" {
				t.Fatalf("ReadAt(8) = %d, %v; want 2, io.EOF", n, err)
			}
			if n, err := f.ReadAt(b, 10); n != 0 || err != io.EOF {
				t.Fatalf("ReadAt(10) = %d, %v; want 0, io.EOF", n, err)
			}
			if n, err := f.ReadAt(b, 6); n != 4 || err != nil {
				t.Fatalf("ReadAt ending at EOF = %d, %v; want 4, nil", n, err)
			}
			if _, err := f.ReadAt(b, -1); err == nil {
				t.Fatal("ReadAt(-1) succeeded")
			}
			if n, err := f.Read(b); n != 4 || err != nil || string(b) != "0123" {
				t.Fatalf("Read after ReadAt = %d, %v, %q; want the start", n, err, b)
			}
		}},
		{"write past the end fills the gap with zeros", func(t *testing.T, m *MemFS) {
			f, err := m.Create("f")
			if err != nil {
				t.Fatal(err)
			}
			defer f.Close()
			if _, err := f.Seek(3, io.SeekStart); err != nil {
				t.Fatal(err)
			}
			if _, err := f.Write([]byte("x")); err != nil {
				t.Fatal(err)
			}
			if got := readFile(t, m, "f"); got != "\x00\x00\x00x" {
				t.Fatalf("contents = %q", got)
			}
		}},
		{"truncate shrinks and grows with zeros and keeps the offset", func(t *testing.T, m *MemFS) {
			f, err := m.Create("f")
			if err != nil {
				t.Fatal(err)
			}
			defer f.Close()
			if _, err := f.Write([]byte("abcdef")); err != nil {
				t.Fatal(err)
			}
			if err := f.Truncate(2); err != nil {
				t.Fatal(err)
			}
			if err := f.Truncate(4); err != nil {
				t.Fatal(err)
			}
			if got := readFile(t, m, "f"); got != "ab\x00\x00" {
				t.Fatalf("after truncates = %q; want stale bytes zeroed", got)
			}
			if off, _ := f.Seek(0, io.SeekCurrent); off != 6 {
				t.Fatalf("offset = %d; want 6", off)
			}
			if err := f.Truncate(-1); err == nil {
				t.Fatal("Truncate(-1) succeeded")
			}
		}},
		{"create truncates an existing file", func(t *testing.T, m *MemFS) {
			writeFile(t, m, "f", "old contents", true)
			writeFile(t, m, "f", "new", false)
			if got := readFile(t, m, "f"); got != "new" {
				t.Fatalf("contents = %q", got)
			}
		}},
		{"open is read-only", func(t *testing.T, m *MemFS) {
			writeFile(t, m, "f", "abc", false)
			f, err := m.Open("f")
			if err != nil {
				t.Fatal(err)
			}
			defer f.Close()
			if _, err := f.Write([]byte("x")); err == nil {
				t.Fatal("Write on a read-only file succeeded")
			}
			if err := f.Truncate(0); err == nil {
				t.Fatal("Truncate on a read-only file succeeded")
			}
			if got := readFile(t, m, "f"); got != "abc" {
				t.Fatalf("contents = %q", got)
			}
		}},
		{"openreadwrite requires the file and starts at zero", func(t *testing.T, m *MemFS) {
			if _, err := m.OpenReadWrite("f"); !errors.Is(err, fs.ErrNotExist) {
				t.Fatalf("OpenReadWrite missing = %v; want fs.ErrNotExist", err)
			}
			writeFile(t, m, "f", "abc", false)
			f, err := m.OpenReadWrite("f")
			if err != nil {
				t.Fatal(err)
			}
			defer f.Close()
			if _, err := f.Write([]byte("X")); err != nil {
				t.Fatal(err)
			}
			if got := readFile(t, m, "f"); got != "Xbc" {
				t.Fatalf("contents = %q", got)
			}
		}},
		{"stat describes files and directories", func(t *testing.T, m *MemFS) {
			if err := m.MkdirAll("d", 0o755); err != nil {
				t.Fatal(err)
			}
			writeFile(t, m, "d/f", "abcd", false)
			info, err := m.Stat("d/f")
			if err != nil {
				t.Fatal(err)
			}
			if info.Name() != "f" || info.Size() != 4 || info.IsDir() || info.Mode().IsDir() || info.ModTime().IsZero() {
				t.Fatalf("Stat(d/f) = %q %d %v %v", info.Name(), info.Size(), info.Mode(), info.ModTime())
			}
			info, err = m.Stat("/d")
			if err != nil {
				t.Fatal(err)
			}
			if info.Name() != "d" || !info.IsDir() || !info.Mode().IsDir() {
				t.Fatalf("Stat(d) = %q %v", info.Name(), info.Mode())
			}
			f, err := m.Open("d/f")
			if err != nil {
				t.Fatal(err)
			}
			defer f.Close()
			if info, err := f.Stat(); err != nil || info.Size() != 4 || info.Name() != "f" {
				t.Fatalf("File.Stat = %v, %v", info, err)
			}
		}},
		{"closed handle fails and close twice is an error", func(t *testing.T, m *MemFS) {
			f, err := m.Create("f")
			if err != nil {
				t.Fatal(err)
			}
			if err := f.Close(); err != nil {
				t.Fatal(err)
			}
			if err := f.Close(); !errors.Is(err, fs.ErrClosed) {
				t.Fatalf("second Close = %v; want fs.ErrClosed", err)
			}
			b := make([]byte, 1)
			for name, err := range map[string]error{
				"Write":    second(f.Write(b)),
				"Read":     second(f.Read(b)),
				"ReadAt":   second(f.ReadAt(b, 0)),
				"Seek":     second(f.Seek(0, io.SeekStart)),
				"Stat":     second(f.Stat()),
				"Sync":     f.Sync(),
				"Truncate": f.Truncate(0),
			} {
				if !errors.Is(err, fs.ErrClosed) {
					t.Errorf("%s after Close = %v; want fs.ErrClosed", name, err)
				}
			}
		}},
		{"directory handle syncs but does not read or write", func(t *testing.T, m *MemFS) {
			if err := m.MkdirAll("d", 0o755); err != nil {
				t.Fatal(err)
			}
			d, err := m.OpenDir("d")
			if err != nil {
				t.Fatal(err)
			}
			defer d.Close()
			b := make([]byte, 1)
			if _, err := d.Read(b); err == nil {
				t.Error("Read on a directory succeeded")
			}
			if _, err := d.Write(b); err == nil {
				t.Error("Write on a directory succeeded")
			}
			if err := d.Sync(); err != nil {
				t.Errorf("Sync on a directory = %v", err)
			}
			if info, err := d.Stat(); err != nil || !info.IsDir() {
				t.Errorf("Stat on a directory = %v, %v", info, err)
			}
			writeFile(t, m, "f", "", false)
			if _, err := m.OpenDir("f"); !errors.Is(err, syscall.ENOTDIR) {
				t.Errorf("OpenDir of a file = %v; want ENOTDIR", err)
			}
			if _, err := m.OpenDir("missing"); !errors.Is(err, fs.ErrNotExist) {
				t.Errorf("OpenDir of a missing dir = %v; want fs.ErrNotExist", err)
			}
		}},
		{"relative and unclean paths resolve from the root", func(t *testing.T, m *MemFS) {
			if err := m.MkdirAll("a/b", 0o755); err != nil {
				t.Fatal(err)
			}
			writeFile(t, m, "a/./b/../b/f", "x", false)
			if got := readFile(t, m, "/a/b/f"); got != "x" {
				t.Fatalf("contents = %q", got)
			}
			if m.PathJoin("a", "b", "f") != "a/b/f" || m.PathBase("/a/b/f") != "f" || m.PathDir("/a/b/f") != "/a/b" {
				t.Fatal("path helpers disagree with package path")
			}
		}},
		{"missing parent and file parent are errors", func(t *testing.T, m *MemFS) {
			if _, err := m.Create("nodir/f"); !errors.Is(err, fs.ErrNotExist) {
				t.Errorf("Create in a missing dir = %v; want fs.ErrNotExist", err)
			}
			writeFile(t, m, "f", "", false)
			if _, err := m.Create("f/g"); !errors.Is(err, syscall.ENOTDIR) {
				t.Errorf("Create under a file = %v; want ENOTDIR", err)
			}
			if err := m.MkdirAll("f/g", 0o755); !errors.Is(err, syscall.ENOTDIR) {
				t.Errorf("MkdirAll under a file = %v; want ENOTDIR", err)
			}
			if _, err := m.Create("/"); err == nil {
				t.Error("Create of the root succeeded")
			}
			var pe *fs.PathError
			_, err := m.Open("missing")
			if !errors.As(err, &pe) || pe.Op != "open" || pe.Path != "missing" || !errors.Is(err, fs.ErrNotExist) {
				t.Errorf("Open missing = %#v; want *fs.PathError{open, missing, ErrNotExist}", err)
			}
		}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) { tt.run(t, newTestMem(t)) })
	}
}

// second returns the error of a two-result call.
func second[T any](_ T, err error) error { return err }

func TestMemDirectoryOperations(t *testing.T) {
	tests := []struct {
		name string
		run  func(t *testing.T, m *MemFS)
	}{
		{"list returns sorted names", func(t *testing.T, m *MemFS) {
			for _, name := range []string{"c", "a", "b10", "b2"} {
				writeFile(t, m, name, "", false)
			}
			if err := m.MkdirAll("dir", 0o755); err != nil {
				t.Fatal(err)
			}
			got, err := m.List("/")
			if err != nil {
				t.Fatal(err)
			}
			if want := []string{"a", "b10", "b2", "c", "dir"}; !slices.Equal(got, want) {
				t.Fatalf("List = %q; want %q", got, want)
			}
			if got, err := m.List("dir"); err != nil || len(got) != 0 {
				t.Fatalf("List(empty dir) = %q, %v", got, err)
			}
		}},
		{"list of a missing directory is ErrNotExist", func(t *testing.T, m *MemFS) {
			if _, err := m.List("nope"); !errors.Is(err, fs.ErrNotExist) {
				t.Fatalf("List = %v; want fs.ErrNotExist", err)
			}
		}},
		{"remove of a non-empty directory fails", func(t *testing.T, m *MemFS) {
			if err := m.MkdirAll("d", 0o755); err != nil {
				t.Fatal(err)
			}
			writeFile(t, m, "d/f", "", false)
			if err := m.Remove("d"); !errors.Is(err, syscall.ENOTEMPTY) {
				t.Fatalf("Remove(non-empty) = %v; want ENOTEMPTY", err)
			}
			if err := m.Remove("d/f"); err != nil {
				t.Fatal(err)
			}
			if err := m.Remove("d"); err != nil {
				t.Fatalf("Remove(empty) = %v", err)
			}
			if err := m.Remove("d"); !errors.Is(err, fs.ErrNotExist) {
				t.Fatalf("Remove(missing) = %v; want fs.ErrNotExist", err)
			}
		}},
		{"removeall removes a tree and ignores missing names", func(t *testing.T, m *MemFS) {
			if err := m.MkdirAll("a/b/c", 0o755); err != nil {
				t.Fatal(err)
			}
			writeFile(t, m, "a/b/f", "", false)
			writeFile(t, m, "keep", "", false)
			if err := m.RemoveAll("a"); err != nil {
				t.Fatal(err)
			}
			if err := m.RemoveAll("a"); err != nil {
				t.Fatalf("RemoveAll(missing) = %v", err)
			}
			if err := m.RemoveAll("no/such/parent"); err != nil {
				t.Fatalf("RemoveAll(missing parent) = %v", err)
			}
			if got, want := contents(t, m, "/"), map[string]string{"/keep": ""}; !maps.Equal(got, want) {
				t.Fatalf("tree = %v; want %v", got, want)
			}
		}},
		{"mkdirall is idempotent", func(t *testing.T, m *MemFS) {
			for range 2 {
				if err := m.MkdirAll("/x/y/z", 0o755); err != nil {
					t.Fatal(err)
				}
			}
			if err := m.MkdirAll("/", 0o755); err != nil {
				t.Fatal(err)
			}
			want := map[string]string{"/x": "/", "/x/y": "/", "/x/y/z": "/"}
			if got := contents(t, m, "/"); !maps.Equal(got, want) {
				t.Fatalf("tree = %v; want %v", got, want)
			}
		}},
		{"rename moves a file across directories", func(t *testing.T, m *MemFS) {
			if err := m.MkdirAll("db/merge", 0o755); err != nil {
				t.Fatal(err)
			}
			writeFile(t, m, "db/merge/000007.data", "merged", false)
			if err := m.Rename("db/merge/000007.data", "db/000007.data"); err != nil {
				t.Fatal(err)
			}
			want := map[string]string{"/db": "/", "/db/merge": "/", "/db/000007.data": "merged"}
			if got := contents(t, m, "/"); !maps.Equal(got, want) {
				t.Fatalf("tree = %v; want %v", got, want)
			}
		}},
		{"rename replaces an existing file", func(t *testing.T, m *MemFS) {
			writeFile(t, m, "CURRENT.tmp", "new", false)
			writeFile(t, m, "CURRENT", "old", false)
			if err := m.Rename("CURRENT.tmp", "CURRENT"); err != nil {
				t.Fatal(err)
			}
			if got, want := contents(t, m, "/"), map[string]string{"/CURRENT": "new"}; !maps.Equal(got, want) {
				t.Fatalf("tree = %v; want %v", got, want)
			}
		}},
		{"rename of an open file keeps the handle working", func(t *testing.T, m *MemFS) {
			f, err := m.Create("a")
			if err != nil {
				t.Fatal(err)
			}
			defer f.Close()
			if err := m.Rename("a", "b"); err != nil {
				t.Fatal(err)
			}
			if _, err := f.Write([]byte("x")); err != nil {
				t.Fatal(err)
			}
			if got := readFile(t, m, "b"); got != "x" {
				t.Fatalf("contents = %q", got)
			}
		}},
		{"rename moves a directory", func(t *testing.T, m *MemFS) {
			if err := m.MkdirAll("a/b", 0o755); err != nil {
				t.Fatal(err)
			}
			writeFile(t, m, "a/b/f", "x", false)
			if err := m.Rename("a/b", "c"); err != nil {
				t.Fatal(err)
			}
			want := map[string]string{"/a": "/", "/c": "/", "/c/f": "x"}
			if got := contents(t, m, "/"); !maps.Equal(got, want) {
				t.Fatalf("tree = %v; want %v", got, want)
			}
		}},
		{"rename errors", func(t *testing.T, m *MemFS) {
			if err := m.MkdirAll("a/b", 0o755); err != nil {
				t.Fatal(err)
			}
			writeFile(t, m, "f", "", false)
			writeFile(t, m, "a/b/g", "", false)
			var le *os.LinkError
			if err := m.Rename("missing", "x"); !errors.Is(err, fs.ErrNotExist) || !errors.As(err, &le) {
				t.Errorf("Rename(missing) = %v; want *os.LinkError with fs.ErrNotExist", err)
			}
			if err := m.Rename("f", "nodir/f"); !errors.Is(err, fs.ErrNotExist) {
				t.Errorf("Rename into a missing dir = %v; want fs.ErrNotExist", err)
			}
			if err := m.Rename("a", "a/b/a"); err == nil {
				t.Error("Rename of a directory into itself succeeded")
			}
			if err := m.Rename("f", "a"); err == nil {
				t.Error("Rename of a file over a directory succeeded")
			}
			if err := m.Rename("f", "f"); err != nil {
				t.Errorf("Rename onto itself = %v", err)
			}
		}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) { tt.run(t, newTestMem(t)) })
	}
}

func TestMemLock(t *testing.T) {
	t.Run("second lock fails until the first is released", func(t *testing.T) {
		m := newTestMem(t)
		l, err := m.Lock("LOCK")
		if err != nil {
			t.Fatal(err)
		}
		if _, err := m.Lock("/LOCK"); !errors.Is(err, ErrLocked) {
			t.Fatalf("second Lock = %v; want ErrLocked", err)
		}
		if err := l.Close(); err != nil {
			t.Fatal(err)
		}
		if err := l.Close(); !errors.Is(err, fs.ErrClosed) {
			t.Fatalf("second Close = %v; want fs.ErrClosed", err)
		}
		l2, err := m.Lock("LOCK")
		if err != nil {
			t.Fatalf("Lock after release = %v", err)
		}
		// Closing the stale lock again must not release the new holder's.
		l.Close()
		if _, err := m.Lock("LOCK"); !errors.Is(err, ErrLocked) {
			t.Fatalf("Lock after stale Close = %v; want ErrLocked", err)
		}
		l2.Close()
	})
	t.Run("lock creates the file", func(t *testing.T) {
		m := newTestMem(t)
		l, err := m.Lock("LOCK")
		if err != nil {
			t.Fatal(err)
		}
		defer l.Close()
		if _, err := m.Stat("LOCK"); err != nil {
			t.Fatalf("Stat after Lock = %v", err)
		}
	})
	t.Run("different paths do not conflict", func(t *testing.T) {
		m := newTestMem(t)
		mkdirSynced(t, m, "a")
		mkdirSynced(t, m, "b")
		la, err := m.Lock("a/LOCK")
		if err != nil {
			t.Fatal(err)
		}
		defer la.Close()
		lb, err := m.Lock("b/LOCK")
		if err != nil {
			t.Fatal(err)
		}
		defer lb.Close()
	})
	t.Run("a crash clone holds no locks", func(t *testing.T) {
		m := newTestMem(t)
		l, err := m.Lock("LOCK")
		if err != nil {
			t.Fatal(err)
		}
		defer l.Close()
		syncDir(t, m, "/")
		c := m.CrashClone()
		lc, err := c.Lock("LOCK")
		if err != nil {
			t.Fatalf("Lock on the clone = %v", err)
		}
		lc.Close()
		if _, err := m.Lock("LOCK"); !errors.Is(err, ErrLocked) {
			t.Fatalf("Lock on the original = %v; want ErrLocked", err)
		}
	})
}

func TestMemCrashClone(t *testing.T) {
	tests := []struct {
		name  string
		setup func(t *testing.T, m *MemFS)
		want  map[string]string // every path in the clone: contents, or "/" for a directory
	}{
		{
			name:  "empty file system keeps the root",
			setup: func(t *testing.T, m *MemFS) {},
			want:  map[string]string{},
		},
		{
			name: "keeps synced data and drops unsynced data",
			setup: func(t *testing.T, m *MemFS) {
				writeFile(t, m, "f", "synced", true)
				syncDir(t, m, "/")
				appendFile(t, m, "f", " unsynced", false)
			},
			want: map[string]string{"/f": "synced"},
		},
		{
			name: "drops a file whose data was never synced",
			setup: func(t *testing.T, m *MemFS) {
				writeFile(t, m, "f", "data", false)
				syncDir(t, m, "/")
			},
			want: map[string]string{"/f": ""},
		},
		{
			name: "drops a created file whose directory was not synced",
			setup: func(t *testing.T, m *MemFS) {
				writeFile(t, m, "f", "data", true)
			},
			want: map[string]string{},
		},
		{
			name: "resurrects a removed file whose removal was not synced",
			setup: func(t *testing.T, m *MemFS) {
				writeFile(t, m, "f", "data", true)
				syncDir(t, m, "/")
				if err := m.Remove("f"); err != nil {
					t.Fatal(err)
				}
			},
			want: map[string]string{"/f": "data"},
		},
		{
			name: "forgets a removed file once the removal is synced",
			setup: func(t *testing.T, m *MemFS) {
				writeFile(t, m, "f", "data", true)
				syncDir(t, m, "/")
				if err := m.Remove("f"); err != nil {
					t.Fatal(err)
				}
				syncDir(t, m, "/")
			},
			want: map[string]string{},
		},
		{
			name: "keeps a synced rename across directories",
			setup: func(t *testing.T, m *MemFS) {
				mkdirSynced(t, m, "db/merge")
				syncDir(t, m, "/")
				writeFile(t, m, "db/merge/1.data", "merged", true)
				syncDir(t, m, "db/merge")
				if err := m.Rename("db/merge/1.data", "db/1.data"); err != nil {
					t.Fatal(err)
				}
				syncDir(t, m, "db")
				syncDir(t, m, "db/merge")
			},
			want: map[string]string{"/db": "/", "/db/merge": "/", "/db/1.data": "merged"},
		},
		{
			name: "a rename synced only in the target appears in both directories",
			setup: func(t *testing.T, m *MemFS) {
				mkdirSynced(t, m, "db/merge")
				syncDir(t, m, "/")
				writeFile(t, m, "db/merge/1.data", "merged", true)
				syncDir(t, m, "db/merge")
				if err := m.Rename("db/merge/1.data", "db/1.data"); err != nil {
					t.Fatal(err)
				}
				syncDir(t, m, "db")
			},
			want: map[string]string{"/db": "/", "/db/merge": "/", "/db/1.data": "merged", "/db/merge/1.data": "merged"},
		},
		{
			name: "a rename synced only in the source loses the file",
			setup: func(t *testing.T, m *MemFS) {
				mkdirSynced(t, m, "db/merge")
				syncDir(t, m, "/")
				writeFile(t, m, "db/merge/1.data", "merged", true)
				syncDir(t, m, "db/merge")
				if err := m.Rename("db/merge/1.data", "db/1.data"); err != nil {
					t.Fatal(err)
				}
				syncDir(t, m, "db/merge")
			},
			want: map[string]string{"/db": "/", "/db/merge": "/"},
		},
		{
			name: "an unsynced rename within a directory reverts to the old name",
			setup: func(t *testing.T, m *MemFS) {
				writeFile(t, m, "CURRENT", "v1", true)
				writeFile(t, m, "CURRENT.tmp", "v2", true)
				syncDir(t, m, "/")
				if err := m.Rename("CURRENT.tmp", "CURRENT"); err != nil {
					t.Fatal(err)
				}
			},
			want: map[string]string{"/CURRENT": "v1", "/CURRENT.tmp": "v2"},
		},
		{
			name: "a directory made by mkdirall is lost unless its parent is synced",
			setup: func(t *testing.T, m *MemFS) {
				if err := m.MkdirAll("a/b", 0o755); err != nil {
					t.Fatal(err)
				}
				syncDir(t, m, "a")
				syncDir(t, m, "a/b")
			},
			want: map[string]string{},
		},
		{
			name: "truncate after sync comes back as synced",
			setup: func(t *testing.T, m *MemFS) {
				writeFile(t, m, "f", "0123456789", true)
				syncDir(t, m, "/")
				f, err := m.OpenReadWrite("f")
				if err != nil {
					t.Fatal(err)
				}
				defer f.Close()
				if err := f.Truncate(3); err != nil {
					t.Fatal(err)
				}
				if _, err := f.Write([]byte("XXXXXXXXXXXX")); err != nil {
					t.Fatal(err)
				}
			},
			want: map[string]string{"/f": "0123456789"},
		},
		{
			name: "an overwrite inside synced data comes back as synced",
			setup: func(t *testing.T, m *MemFS) {
				writeFile(t, m, "f", "0123456789", true)
				syncDir(t, m, "/")
				f, err := m.OpenReadWrite("f")
				if err != nil {
					t.Fatal(err)
				}
				defer f.Close()
				if _, err := f.Write([]byte("XY")); err != nil {
					t.Fatal(err)
				}
			},
			want: map[string]string{"/f": "0123456789"},
		},
		{
			name: "create over a synced file comes back as synced",
			setup: func(t *testing.T, m *MemFS) {
				writeFile(t, m, "f", "synced", true)
				syncDir(t, m, "/")
				writeFile(t, m, "f", "new", false)
			},
			want: map[string]string{"/f": "synced"},
		},
		{
			name: "a resync after an overwrite keeps the new contents",
			setup: func(t *testing.T, m *MemFS) {
				writeFile(t, m, "f", "synced", true)
				syncDir(t, m, "/")
				writeFile(t, m, "f", "new", true)
			},
			want: map[string]string{"/f": "new"},
		},
		{
			name: "an unsynced removeall comes back",
			setup: func(t *testing.T, m *MemFS) {
				mkdirSynced(t, m, "db")
				writeFile(t, m, "db/f", "x", true)
				syncDir(t, m, "db")
				if err := m.RemoveAll("db"); err != nil {
					t.Fatal(err)
				}
			},
			want: map[string]string{"/db": "/", "/db/f": "x"},
		},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			m := newTestMem(t)
			tt.setup(t, m)
			c := m.CrashClone()
			if err := c.check(); err != nil {
				t.Fatal(err)
			}
			if got := contents(t, c, "/"); !maps.Equal(got, tt.want) {
				t.Fatalf("after crash:\n got  %v\n want %v\noriginal:\n%s", got, tt.want, m)
			}
			// A clone is fully synced: crashing it again changes nothing.
			if got := contents(t, c.CrashClone(), "/"); !maps.Equal(got, tt.want) {
				t.Fatalf("after a second crash: got %v; want %v", got, tt.want)
			}
		})
	}
}

func TestMemCrashCloneIsIndependent(t *testing.T) {
	m := newTestMem(t)
	mkdirSynced(t, m, "db")
	writeFile(t, m, "db/f", "base", true)
	syncDir(t, m, "db")
	orig, err := m.OpenReadWrite("db/f")
	if err != nil {
		t.Fatal(err)
	}
	defer orig.Close()

	c := m.CrashClone()
	appendFile(t, m, "db/f", "+orig", true)
	writeFile(t, m, "db/only-orig", "", false)
	appendFile(t, c, "db/f", "+clone", true)
	writeFile(t, c, "db/only-clone", "", false)
	if _, err := orig.Write([]byte("B")); err != nil {
		t.Fatal(err)
	}

	want := map[string]string{"/db": "/", "/db/f": "Base+orig", "/db/only-orig": ""}
	if got := contents(t, m, "/"); !maps.Equal(got, want) {
		t.Errorf("original = %v; want %v", got, want)
	}
	want = map[string]string{"/db": "/", "/db/f": "base+clone", "/db/only-clone": ""}
	if got := contents(t, c, "/"); !maps.Equal(got, want) {
		t.Errorf("clone = %v; want %v", got, want)
	}
}

func TestMemCrashCloneRandomKeepsAPrefixOfUnsyncedAppends(t *testing.T) {
	const synced, current = "synced|", "synced|appended after the last sync"
	var sawNone, sawAll, sawSome bool
	for seed := range int64(500) {
		m := newTestMem(t)
		writeFile(t, m, "f", synced, true)
		syncDir(t, m, "/")
		appendFile(t, m, "f", current[len(synced):], false)

		got := readFile(t, m.CrashCloneRandom(rand.New(rand.NewSource(seed))), "f")
		if !strings.HasPrefix(current, got) || len(got) < len(synced) {
			t.Fatalf("seed %d: got %q; want a prefix of %q at least %q long", seed, got, current, synced)
		}
		switch len(got) {
		case len(synced):
			sawNone = true
		case len(current):
			sawAll = true
		default:
			sawSome = true
		}
	}
	if !sawNone || !sawAll || !sawSome {
		t.Fatalf("over 500 seeds: none kept %v, all kept %v, some kept %v; want each", sawNone, sawAll, sawSome)
	}
}

func TestMemCrashCloneRandomPicksSyncedOrCurrentAfterOverwrite(t *testing.T) {
	seen := map[string]bool{}
	for seed := range int64(100) {
		m := newTestMem(t)
		writeFile(t, m, "f", "synced", true)
		syncDir(t, m, "/")
		writeFile(t, m, "f", "new", false)
		got := readFile(t, m.CrashCloneRandom(rand.New(rand.NewSource(seed))), "f")
		if got != "synced" && got != "new" {
			t.Fatalf("seed %d: got %q; want %q or %q", seed, got, "synced", "new")
		}
		seen[got] = true
	}
	if len(seen) != 2 {
		t.Fatalf("saw only %v over 100 seeds", seen)
	}
}

func TestMemCrashCloneRandomAppliesAPrefixOfDirectoryChanges(t *testing.T) {
	setup := func(m *MemFS) {
		writeFile(t, m, "a", "A", true)
		syncDir(t, m, "/")
		writeFile(t, m, "b", "B", true)       // 1: create b
		writeFile(t, m, "c", "C", true)       // 2: create c
		if err := m.Remove("a"); err != nil { // 3: remove a
			t.Fatal(err)
		}
		if err := m.Rename("b", "d"); err != nil { // 4: rename b to d, one change
			t.Fatal(err)
		}
	}
	states := []string{"a", "a b", "a b c", "b c", "c d"}
	seen := map[string]bool{}
	for seed := range int64(300) {
		m := newTestMem(t)
		setup(m)
		names, err := m.CrashCloneRandom(rand.New(rand.NewSource(seed))).List("/")
		if err != nil {
			t.Fatal(err)
		}
		got := strings.Join(names, " ")
		if !slices.Contains(states, got) {
			t.Fatalf("seed %d: entries %q are not a prefix of the changes; want one of %q", seed, got, states)
		}
		seen[got] = true
	}
	if len(seen) != len(states) {
		t.Fatalf("over 300 seeds saw %v; want all of %q", seen, states)
	}
}

func TestMemCrashCloneRandomIsDeterministic(t *testing.T) {
	m := newTestMem(t)
	mkdirSynced(t, m, "db")
	for i := range 20 {
		name := fmt.Sprintf("db/%02d", i)
		writeFile(t, m, name, strings.Repeat("x", i), i%3 == 0)
		appendFile(t, m, name, strings.Repeat("y", 2*i), i%2 == 0)
		if i%5 == 0 {
			syncDir(t, m, "db")
		}
	}
	for seed := range int64(20) {
		a := contents(t, m.CrashCloneRandom(rand.New(rand.NewSource(seed))), "/")
		b := contents(t, m.CrashCloneRandom(rand.New(rand.NewSource(seed))), "/")
		if !maps.Equal(a, b) {
			t.Fatalf("seed %d: two clones differ:\n%v\n%v", seed, a, b)
		}
	}
}

func TestMemConcurrentReadAtWhileAppending(t *testing.T) {
	m := newTestMem(t)
	w, err := m.Create("seg")
	if err != nil {
		t.Fatal(err)
	}
	defer w.Close()
	r, err := m.Open("seg")
	if err != nil {
		t.Fatal(err)
	}
	defer r.Close()

	const chunks, chunkBytes = 2000, 16
	var wg sync.WaitGroup
	done := make(chan struct{})
	errs := make(chan error, 8)
	wg.Go(func() {
		defer close(done)
		for i := range chunks {
			if _, err := w.Write(bytes.Repeat([]byte{byte(i)}, chunkBytes)); err != nil {
				errs <- err
				return
			}
			if i%100 == 0 {
				if err := w.Sync(); err != nil {
					errs <- err
					return
				}
			}
		}
	})
	for g := range 4 {
		wg.Go(func() {
			buf := make([]byte, chunkBytes)
			for {
				select {
				case <-done:
					return
				default:
				}
				info, err := r.Stat()
				if err != nil {
					errs <- err
					return
				}
				n := info.Size() / chunkBytes
				if n == 0 {
					continue
				}
				i := (n - 1) * int64(g+1) / 4
				if _, err := r.ReadAt(buf, i*chunkBytes); err != nil {
					errs <- fmt.Errorf("ReadAt chunk %d of %d: %w", i, n, err)
					return
				}
				if want := bytes.Repeat([]byte{byte(i)}, chunkBytes); !bytes.Equal(buf, want) {
					errs <- fmt.Errorf("chunk %d = %x; want %x", i, buf, want)
					return
				}
				if g == 0 {
					m.CrashClone()
					if _, err := m.List("/"); err != nil {
						errs <- err
						return
					}
				}
			}
		})
	}
	wg.Wait()
	close(errs)
	for err := range errs {
		t.Error(err)
	}
	if info, err := m.Stat("seg"); err != nil || info.Size() != chunks*chunkBytes {
		t.Fatalf("final Stat = %v, %v", info, err)
	}
}

func TestMemStringShowsSyncState(t *testing.T) {
	m := newTestMem(t)
	mkdirSynced(t, m, "db")
	writeFile(t, m, "db/old", "x", true)
	syncDir(t, m, "db")
	writeFile(t, m, "db/seg", "0123456789", true)
	appendFile(t, m, "db/seg", "abc", false)
	if err := m.Remove("db/old"); err != nil {
		t.Fatal(err)
	}
	got := m.String()
	for _, want := range []string{
		"/\n  db/\n",
		"    old (removed, removal not synced)\n",
		"    seg 13 bytes, 10 synced, entry not synced\n",
	} {
		if !strings.Contains(got, want) {
			t.Errorf("String() = \n%s\nwant it to contain %q", got, want)
		}
	}
}
