package vfs

import (
	"errors"
	"io"
	"io/fs"
	"maps"
	"strings"
	"syscall"
	"testing"
)

// failOnly returns an injector failing every op equal to op with ENOSPC.
func failOnly(op Op) Injector {
	return InjectorFunc(func(o Op, path string) error {
		if o == op {
			return syscall.ENOSPC
		}
		return nil
	})
}

func TestInjectAsksBeforeEveryOperation(t *testing.T) {
	// Each case runs one operation on an injecting FS over a MemFS that
	// holds dir/f ("abc") and an empty directory dir/sub.
	tests := []struct {
		op   Op
		path string
		run  func(fsys FS) error
	}{
		{OpCreate, "dir/new", func(fsys FS) error { return second(fsys.Create("dir/new")) }},
		{OpOpen, "dir/f", func(fsys FS) error { return second(fsys.Open("dir/f")) }},
		{OpOpenReadWrite, "dir/f", func(fsys FS) error { return second(fsys.OpenReadWrite("dir/f")) }},
		{OpOpenDir, "dir", func(fsys FS) error { return second(fsys.OpenDir("dir")) }},
		{OpRemove, "dir/f", func(fsys FS) error { return fsys.Remove("dir/f") }},
		{OpRemoveAll, "dir", func(fsys FS) error { return fsys.RemoveAll("dir") }},
		{OpRename, "dir/g", func(fsys FS) error { return fsys.Rename("dir/f", "dir/g") }},
		{OpMkdirAll, "x/y", func(fsys FS) error { return fsys.MkdirAll("x/y", 0o755) }},
		{OpLock, "dir/LOCK", func(fsys FS) error { return second(fsys.Lock("dir/LOCK")) }},
		{OpList, "dir", func(fsys FS) error { return second(fsys.List("dir")) }},
		{OpStat, "dir/f", func(fsys FS) error { return second(fsys.Stat("dir/f")) }},
		{OpRead, "dir/f", withFile(func(f File) error { return second(f.Read(make([]byte, 1))) })},
		{OpRead, "dir/f", withFile(func(f File) error { return second(f.ReadAt(make([]byte, 1), 0)) })},
		{OpWrite, "dir/f", withFile(func(f File) error { return second(f.Write([]byte("x"))) })},
		{OpSync, "dir/f", withFile(func(f File) error { return f.Sync() })},
		{OpTruncate, "dir/f", withFile(func(f File) error { return f.Truncate(0) })},
		{OpSeek, "dir/f", withFile(func(f File) error { return second(f.Seek(1, io.SeekStart)) })},
		{OpStat, "dir/f", withFile(func(f File) error { return second(f.Stat()) })},
		{OpClose, "dir/f", withFile(func(f File) error { return f.Close() })},
		{OpSync, "dir", func(fsys FS) error { return SyncDir(fsys, "dir") }},
	}
	setup := func(t *testing.T) *MemFS {
		m := newTestMem(t)
		mkdirSynced(t, m, "dir/sub")
		writeFile(t, m, "dir/f", "abc", true)
		syncDir(t, m, "dir")
		return m
	}
	for _, tt := range tests {
		t.Run(tt.op.String()+" fails with the injected error", func(t *testing.T) {
			m := setup(t)
			before := contents(t, m, "/")
			err := tt.run(Inject(m, failOnly(tt.op)))
			var ie *InjectedError
			if !errors.As(err, &ie) {
				t.Fatalf("err = %v; want an *InjectedError", err)
			}
			if ie.Op != tt.op || ie.Path != tt.path {
				t.Errorf("InjectedError{Op: %v, Path: %q}; want {%v, %q}", ie.Op, ie.Path, tt.op, tt.path)
			}
			if !errors.Is(err, ErrInjected) || !errors.Is(err, syscall.ENOSPC) || !errors.Is(err, ErrNoSpace) {
				t.Errorf("err = %v; want it to match ErrInjected and ENOSPC", err)
			}
			if after := contents(t, m, "/"); !maps.Equal(before, after) {
				t.Errorf("failed %v changed the tree: %v -> %v", tt.op, before, after)
			}
		})
		t.Run(tt.op.String()+" passes when the injector allows it", func(t *testing.T) {
			if err := tt.run(Inject(setup(t), failOnly(0))); err != nil {
				t.Fatal(err)
			}
		})
	}
}

// withFile runs fn on dir/f opened read-write through fsys.
func withFile(fn func(f File) error) func(fsys FS) error {
	return func(fsys FS) error {
		f, err := fsys.OpenReadWrite("dir/f")
		if err != nil {
			return err
		}
		defer f.Close()
		return fn(f)
	}
}

func TestInjectedErrorMessageAndMatching(t *testing.T) {
	err := error(&InjectedError{Op: OpWrite, Path: "/db/000001.log", Err: ErrIO})
	if got, want := err.Error(), "vfs: injected write error on /db/000001.log: input/output error"; got != want {
		t.Errorf("Error() = %q; want %q", got, want)
	}
	if !errors.Is(err, ErrInjected) || !errors.Is(err, syscall.EIO) || errors.Is(err, syscall.ENOSPC) {
		t.Errorf("errors.Is disagrees for %v", err)
	}
	if got := Op(0).String(); got != "op(0)" {
		t.Errorf("Op(0).String() = %q", got)
	}
	for op := OpCreate; op < numOps; op++ {
		if s := op.String(); s == "" || strings.HasPrefix(s, "op(") {
			t.Errorf("Op %d has no name", op)
		}
	}
}

func TestInjectWrapsOnlyOnce(t *testing.T) {
	m := newTestMem(t)
	inj := InjectorFunc(func(op Op, path string) error {
		return &InjectedError{Err: ErrIO} // Op and Path left for Inject to fill in
	})
	_, err := Inject(m, inj).Create("f")
	var ie *InjectedError
	if !errors.As(err, &ie) || ie.Op != OpCreate || ie.Path != "f" || ie.Err != ErrIO {
		t.Fatalf("err = %#v; want InjectedError{OpCreate, f, EIO}", err)
	}
	if errors.As(ie.Err, new(*InjectedError)) {
		t.Fatal("InjectedError wraps another InjectedError")
	}
}

// workload does what an engine does to install a file durably.
func workload(fsys FS) error {
	if err := fsys.MkdirAll("db", 0o755); err != nil {
		return err
	}
	f, err := fsys.Create("db/CURRENT.tmp")
	if err != nil {
		return err
	}
	if _, err := f.Write([]byte("MANIFEST-000001\n")); err != nil {
		f.Close()
		return err
	}
	if err := f.Sync(); err != nil {
		f.Close()
		return err
	}
	if err := f.Close(); err != nil {
		return err
	}
	if err := fsys.Rename("db/CURRENT.tmp", "db/CURRENT"); err != nil {
		return err
	}
	return SyncDir(fsys, "db")
}

func TestCounters(t *testing.T) {
	t.Run("count never fails and counts matching ops", func(t *testing.T) {
		all, writes := Count(), Count(OpWrite, OpSync)
		for _, c := range []*Counter{all, writes} {
			if err := workload(Inject(newTestMem(t), c)); err != nil {
				t.Fatal(err)
			}
		}
		// mkdirall create write sync close rename opendir sync close
		if all.Calls() != 9 || writes.Calls() != 3 || all.Injected() != 0 {
			t.Fatalf("Count() saw %d, Count(write, sync) saw %d; want 9 and 3", all.Calls(), writes.Calls())
		}
	})
	t.Run("onindex fails each op index in turn exactly once", func(t *testing.T) {
		count := Count()
		if err := workload(Inject(newTestMem(t), count)); err != nil {
			t.Fatal(err)
		}
		for i := int64(1); i <= count.Calls(); i++ {
			c := OnIndex(i, ErrIO)
			err := workload(Inject(newTestMem(t), c))
			if !errors.Is(err, ErrInjected) || c.Injected() != 1 {
				t.Fatalf("OnIndex(%d): err = %v, injected %d; want one injected error", i, err, c.Injected())
			}
		}
	})
	t.Run("onindex counts only the listed ops", func(t *testing.T) {
		c := OnIndex(2, ErrIO, OpSync)
		err := workload(Inject(newTestMem(t), c))
		var ie *InjectedError
		if !errors.As(err, &ie) || ie.Op != OpSync || ie.Path != "db" {
			t.Fatalf("err = %v; want the second sync, of db, to fail", err)
		}
	})
	t.Run("after keeps failing from the nth op on", func(t *testing.T) {
		c := After(2, ErrNoSpace, OpWrite)
		f, err := Inject(newTestMem(t), c).Create("f")
		if err != nil {
			t.Fatal(err)
		}
		defer f.Close()
		for i, wantErr := range []bool{false, true, true, true} {
			_, err := f.Write([]byte("x"))
			if (err != nil) != wantErr || (err != nil && !errors.Is(err, syscall.ENOSPC)) {
				t.Fatalf("write %d: err = %v; want error %v", i+1, err, wantErr)
			}
		}
		if c.Calls() != 4 || c.Injected() != 3 {
			t.Fatalf("calls %d, injected %d; want 4, 3", c.Calls(), c.Injected())
		}
	})
	t.Run("onpath matches the base name or the whole path", func(t *testing.T) {
		for _, tt := range []struct {
			glob string
			fail bool
		}{
			{"CURRENT", true},
			{"CURRENT*", true},
			{"db/CURRENT", true},
			{"*.log", false},
			{"MANIFEST", false},
		} {
			c := OnPath(tt.glob, ErrIO, OpRename)
			err := workload(Inject(newTestMem(t), c))
			if (err != nil) != tt.fail {
				t.Errorf("OnPath(%q): err = %v; want failure %v", tt.glob, err, tt.fail)
			}
		}
	})
	t.Run("a disabled counter neither counts nor fails", func(t *testing.T) {
		c := After(1, ErrIO)
		fsys := Inject(newTestMem(t), c)
		if err := workload(fsys); err == nil {
			t.Fatal("workload succeeded with every op failing")
		}
		c.SetEnabled(false)
		calls := c.Calls()
		if err := workload(fsys); err != nil {
			t.Fatalf("workload with the counter disabled = %v", err)
		}
		if c.Calls() != calls {
			t.Fatalf("disabled counter counted %d ops", c.Calls()-calls)
		}
		c.SetEnabled(true)
		if err := workload(fsys); err == nil {
			t.Fatal("workload succeeded after re-enabling")
		}
	})
}

func TestInjectWriteFailure(t *testing.T) {
	tests := []struct {
		name    string
		partial bool
		want    string
	}{
		{"failed write writes nothing by default", false, "head"},
		{"partial write writes half the buffer first", true, "head0123"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			m := newTestMem(t)
			c := OnIndex(2, ErrNoSpace, OpWrite)
			c.PartialWrite = tt.partial
			f, err := Inject(m, c).Create("f")
			if err != nil {
				t.Fatal(err)
			}
			defer f.Close()
			if _, err := f.Write([]byte("head")); err != nil {
				t.Fatal(err)
			}
			n, err := f.Write([]byte("01234567"))
			if !errors.Is(err, syscall.ENOSPC) || n != len(tt.want)-len("head") {
				t.Fatalf("Write = %d, %v; want %d, ENOSPC", n, err, len(tt.want)-len("head"))
			}
			if got := readFile(t, m, "f"); got != tt.want {
				t.Fatalf("contents = %q; want %q", got, tt.want)
			}
		})
	}
}

func TestInjectFailedCloseStillCloses(t *testing.T) {
	m := newTestMem(t)
	inj := InjectorFunc(func(op Op, path string) error {
		if op == OpClose {
			return ErrIO
		}
		return nil
	})
	f, err := Inject(m, inj).Create("f")
	if err != nil {
		t.Fatal(err)
	}
	under := f.(*injectFile).File
	if err := f.Close(); !errors.Is(err, ErrInjected) {
		t.Fatalf("Close = %v; want injected", err)
	}
	if err := under.Close(); !errors.Is(err, fs.ErrClosed) {
		t.Fatalf("underlying Close after failed Close = %v; want fs.ErrClosed", err)
	}
}
