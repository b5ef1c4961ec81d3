package vfs

import (
	"errors"
	"fmt"
	"io"
	"os"
	"path"
	"path/filepath"
	"sync/atomic"
	"syscall"
)

// Op names a file system operation an Injector may fail.
type Op uint8

// The operations of FS and File, as Inject reports them to an Injector.
const (
	OpCreate        Op = iota + 1 // FS.Create
	OpOpen                        // FS.Open
	OpOpenReadWrite               // FS.OpenReadWrite
	OpOpenDir                     // FS.OpenDir
	OpRead                        // File.Read and File.ReadAt
	OpWrite                       // File.Write
	OpSync                        // File.Sync, also of a directory (SyncDir)
	OpTruncate                    // File.Truncate
	OpSeek                        // File.Seek
	OpClose                       // File.Close
	OpStat                        // FS.Stat and File.Stat
	OpRemove                      // FS.Remove
	OpRemoveAll                   // FS.RemoveAll
	OpRename                      // FS.Rename
	OpMkdirAll                    // FS.MkdirAll
	OpLock                        // FS.Lock
	OpList                        // FS.List
	numOps
)

var opNames = [numOps]string{
	OpCreate:        "create",
	OpOpen:          "open",
	OpOpenReadWrite: "openreadwrite",
	OpOpenDir:       "opendir",
	OpRead:          "read",
	OpWrite:         "write",
	OpSync:          "sync",
	OpTruncate:      "truncate",
	OpSeek:          "seek",
	OpClose:         "close",
	OpStat:          "stat",
	OpRemove:        "remove",
	OpRemoveAll:     "removeall",
	OpRename:        "rename",
	OpMkdirAll:      "mkdirall",
	OpLock:          "lock",
	OpList:          "list",
}

// String returns the operation's lower-case name, such as "write".
func (op Op) String() string {
	if op > 0 && op < numOps {
		return opNames[op]
	}
	return fmt.Sprintf("op(%d)", uint8(op))
}

// Errors worth injecting: what a full disk and a failing device return.
// They are the syscall.Errno values, so errors.Is(err, syscall.ENOSPC)
// holds too.
var (
	// ErrNoSpace is ENOSPC, "no space left on device".
	ErrNoSpace error = syscall.ENOSPC
	// ErrIO is EIO, "input/output error".
	ErrIO error = syscall.EIO
)

// ErrInjected matches every *InjectedError with errors.Is.
var ErrInjected = errors.New("vfs: injected error")

// InjectedError is the error an FS made by Inject returns for an operation
// its Injector failed. errors.Is matches both ErrInjected and Err.
type InjectedError struct {
	Op   Op     // the operation failed
	Path string // the path it acted on
	Err  error  // what the Injector returned, such as ErrNoSpace
	// Partial makes a failed OpWrite write the first half of its buffer
	// (and report that count) before returning the error, as a write
	// hitting ENOSPC does. An Injector sets it by returning an
	// *InjectedError; Counter sets it from Counter.PartialWrite.
	Partial bool
}

// Error returns "vfs: injected <op> error on <path>: <err>".
func (e *InjectedError) Error() string {
	return fmt.Sprintf("vfs: injected %s error on %s: %v", e.Op, e.Path, e.Err)
}

// Unwrap returns Err.
func (e *InjectedError) Unwrap() error { return e.Err }

// Is reports whether target is ErrInjected.
func (e *InjectedError) Is(target error) bool { return target == ErrInjected }

// Injector decides which operations fail. MaybeError is called before
// each operation with the path it acts on (a File's operations report the
// path the file was opened with; Rename reports newname) and returns nil
// to let the operation through. Inject wraps a non-nil result in an
// *InjectedError unless it is one. MaybeError must be safe for concurrent
// use.
type Injector interface {
	MaybeError(op Op, path string) error
}

// InjectorFunc adapts a function to Injector.
type InjectorFunc func(op Op, path string) error

// MaybeError calls f(op, path).
func (f InjectorFunc) MaybeError(op Op, path string) error { return f(op, path) }

// Inject returns an FS that asks inj before each operation of fsys and of
// the Files it opens, and fails the operation with inj's error instead of
// running it. Path methods and closing a Lock are never failed. A failed
// Close still closes the underlying file, as close(2) always releases the
// descriptor.
func Inject(fsys FS, inj Injector) FS {
	return &injectFS{fs: fsys, inj: inj}
}

type injectFS struct {
	fs  FS
	inj Injector
}

// ask returns the *InjectedError for op on name, or nil.
func ask(inj Injector, op Op, name string) *InjectedError {
	err := inj.MaybeError(op, name)
	if err == nil {
		return nil
	}
	var ie *InjectedError
	if !errors.As(err, &ie) {
		return &InjectedError{Op: op, Path: name, Err: err}
	}
	c := *ie // the injector may share its value
	if c.Op == 0 {
		c.Op = op
	}
	if c.Path == "" {
		c.Path = name
	}
	return &c
}

func (i *injectFS) open(op Op, name string, open func(string) (File, error)) (File, error) {
	if err := ask(i.inj, op, name); err != nil {
		return nil, err
	}
	f, err := open(name)
	if err != nil {
		return nil, err
	}
	return &injectFile{File: f, name: name, inj: i.inj}, nil
}

func (i *injectFS) Create(name string) (File, error) { return i.open(OpCreate, name, i.fs.Create) }

func (i *injectFS) Open(name string) (File, error) { return i.open(OpOpen, name, i.fs.Open) }

func (i *injectFS) OpenReadWrite(name string) (File, error) {
	return i.open(OpOpenReadWrite, name, i.fs.OpenReadWrite)
}

func (i *injectFS) OpenDir(name string) (File, error) { return i.open(OpOpenDir, name, i.fs.OpenDir) }

func (i *injectFS) Remove(name string) error {
	if err := ask(i.inj, OpRemove, name); err != nil {
		return err
	}
	return i.fs.Remove(name)
}

func (i *injectFS) RemoveAll(name string) error {
	if err := ask(i.inj, OpRemoveAll, name); err != nil {
		return err
	}
	return i.fs.RemoveAll(name)
}

func (i *injectFS) Rename(oldname, newname string) error {
	if err := ask(i.inj, OpRename, newname); err != nil {
		return err
	}
	return i.fs.Rename(oldname, newname)
}

func (i *injectFS) MkdirAll(dir string, perm os.FileMode) error {
	if err := ask(i.inj, OpMkdirAll, dir); err != nil {
		return err
	}
	return i.fs.MkdirAll(dir, perm)
}

func (i *injectFS) Lock(name string) (io.Closer, error) {
	if err := ask(i.inj, OpLock, name); err != nil {
		return nil, err
	}
	return i.fs.Lock(name)
}

func (i *injectFS) List(dir string) ([]string, error) {
	if err := ask(i.inj, OpList, dir); err != nil {
		return nil, err
	}
	return i.fs.List(dir)
}

func (i *injectFS) Stat(name string) (os.FileInfo, error) {
	if err := ask(i.inj, OpStat, name); err != nil {
		return nil, err
	}
	return i.fs.Stat(name)
}

func (i *injectFS) PathJoin(elem ...string) string { return i.fs.PathJoin(elem...) }

func (i *injectFS) PathBase(p string) string { return i.fs.PathBase(p) }

func (i *injectFS) PathDir(p string) string { return i.fs.PathDir(p) }

// injectFile is a File opened through an injectFS.
type injectFile struct {
	File
	name string
	inj  Injector
}

func (f *injectFile) Read(p []byte) (int, error) {
	if err := ask(f.inj, OpRead, f.name); err != nil {
		return 0, err
	}
	return f.File.Read(p)
}

func (f *injectFile) ReadAt(p []byte, off int64) (int, error) {
	if err := ask(f.inj, OpRead, f.name); err != nil {
		return 0, err
	}
	return f.File.ReadAt(p, off)
}

func (f *injectFile) Write(p []byte) (int, error) {
	err := ask(f.inj, OpWrite, f.name)
	if err == nil {
		return f.File.Write(p)
	}
	if !err.Partial || len(p) < 2 {
		return 0, err
	}
	n, werr := f.File.Write(p[:len(p)/2])
	if werr != nil {
		return n, werr
	}
	return n, err
}

func (f *injectFile) Close() error {
	if err := ask(f.inj, OpClose, f.name); err != nil {
		f.File.Close()
		return err
	}
	return f.File.Close()
}

func (f *injectFile) Stat() (os.FileInfo, error) {
	if err := ask(f.inj, OpStat, f.name); err != nil {
		return nil, err
	}
	return f.File.Stat()
}

func (f *injectFile) Sync() error {
	if err := ask(f.inj, OpSync, f.name); err != nil {
		return err
	}
	return f.File.Sync()
}

func (f *injectFile) Truncate(size int64) error {
	if err := ask(f.inj, OpTruncate, f.name); err != nil {
		return err
	}
	return f.File.Truncate(size)
}

func (f *injectFile) Seek(offset int64, whence int) (int64, error) {
	if err := ask(f.inj, OpSeek, f.name); err != nil {
		return 0, err
	}
	return f.File.Seek(offset, whence)
}

// Counter is a ready-made Injector: it counts the operations that match
// its filter and fails the ones its rule picks (see OnIndex, After, OnPath
// and Count). It is safe for concurrent use.
type Counter struct {
	// PartialWrite makes each failed OpWrite write half its buffer first
	// (see InjectedError.Partial). Set it before the Counter is in use.
	PartialWrite bool

	ops      uint64 // bit i set: Op(i) matches; 0: every op matches
	glob     string // OnPath's pattern; "" matches every path
	err      error
	rule     rule
	n        int64
	calls    atomic.Int64
	injected atomic.Int64
	disabled atomic.Bool
}

type rule uint8

const (
	ruleNever  rule = iota
	ruleIndex       // fail call n only
	ruleAfter       // fail calls n, n+1, ...
	ruleAlways      // fail every matching call
)

func newCounter(r rule, n int64, err error, ops []Op) *Counter {
	c := &Counter{rule: r, n: n, err: err}
	for _, op := range ops {
		c.ops |= 1 << op
	}
	return c
}

// OnIndex returns a Counter that fails the n-th (counting from 1)
// operation among ops, or among all operations when ops is empty, with
// err, once.
func OnIndex(n int64, err error, ops ...Op) *Counter {
	return newCounter(ruleIndex, n, err, ops)
}

// After returns a Counter that fails the n-th (counting from 1) operation
// among ops, or among all when ops is empty, and every one after it with
// err: a disk that stays full, a device that stays dead.
func After(n int64, err error, ops ...Op) *Counter {
	return newCounter(ruleAfter, n, err, ops)
}

// OnPath returns a Counter that fails, with err, every operation among
// ops (all when empty) on a path whose base name or whole path matches
// glob (path.Match syntax, such as "*.log" or "/db/CURRENT").
func OnPath(glob string, err error, ops ...Op) *Counter {
	c := newCounter(ruleAlways, 0, err, ops)
	c.glob = glob
	return c
}

// Count returns a Counter that fails nothing and counts the operations
// among ops (all when empty). A test runs a workload once through it to
// learn how many operations to fail in turn with OnIndex.
func Count(ops ...Op) *Counter {
	return newCounter(ruleNever, 0, nil, ops)
}

// MaybeError implements Injector. A disabled Counter neither counts nor
// fails.
func (c *Counter) MaybeError(op Op, name string) error {
	if c.disabled.Load() || !c.matches(op, name) {
		return nil
	}
	k := c.calls.Add(1)
	switch {
	case c.rule == ruleIndex && k == c.n,
		c.rule == ruleAfter && k >= c.n,
		c.rule == ruleAlways:
		c.injected.Add(1)
		return &InjectedError{Op: op, Path: name, Err: c.err, Partial: c.PartialWrite && op == OpWrite}
	}
	return nil
}

func (c *Counter) matches(op Op, name string) bool {
	if c.ops != 0 && c.ops&(1<<op) == 0 {
		return false
	}
	if c.glob == "" {
		return true
	}
	slashed := filepath.ToSlash(name)
	if ok, _ := path.Match(c.glob, path.Base(slashed)); ok {
		return true
	}
	ok, _ := path.Match(c.glob, slashed)
	return ok
}

// Calls returns how many matching operations the Counter has seen while
// enabled, failed or not.
func (c *Counter) Calls() int64 { return c.calls.Load() }

// Injected returns how many errors the Counter has returned.
func (c *Counter) Injected() int64 { return c.injected.Load() }

// SetEnabled turns the Counter on or off; a Counter starts enabled. A
// test turns it off before reopening an engine after the failure.
func (c *Counter) SetEnabled(on bool) { c.disabled.Store(!on) }
