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
	"path"
	"slices"
	"strings"
	"sync"
	"sync/atomic"
	"syscall"
	"time"
)

// MemFS is an in-memory FS that remembers, for every file and directory,
// what would survive a power loss, so tests can crash an engine at any
// point (CrashClone) and reopen it on what the disk would hold.
//
// Paths are slash separated and cleaned with path.Clean; a relative path
// is taken relative to the root "/". Errors wrap the io/fs sentinels
// (fs.ErrNotExist, fs.ErrExist, fs.ErrClosed) or a syscall.Errno
// (ENOTDIR, EISDIR, ENOTEMPTY, EBADF, EINVAL) in an *fs.PathError, or an
// *os.LinkError for Rename.
//
// Crash model: a file's contents survive up to its last File.Sync; a
// directory's entries (Create, Rename, Remove, MkdirAll, Lock creating the
// file) survive as of its last sync through OpenDir(dir).Sync (SyncDir).
// A directory made by MkdirAll is an entry of its parent, so the parent
// must be synced too. The root always survives.
//
// A MemFS is safe for concurrent use; so is a File, except that Read,
// Write and Seek on one File share an offset and so interleave in no
// particular order when called from several goroutines.
type MemFS struct {
	// mu guards the tree: every directory's entries, synced entries and
	// change log, and the lock set. Lock order: mu, then a file's memNode.mu.
	mu    sync.Mutex
	root  *memNode
	locks map[string]*memLock
}

var _ FS = (*MemFS)(nil)

// memNode is a file or a directory (an inode). A node may be reachable
// from several directories' synced entries while a rename is not yet
// synced on both sides.
type memNode struct {
	isDir bool

	// File fields, guarded by mu. The synced contents are
	// data[:syncedLen] unless diverged, in which case a write or truncate
	// changed bytes below syncedLen since the last Sync and the synced
	// contents were copied to syncedCopy first. So an append-only file
	// costs no copies.
	mu         sync.RWMutex
	data       []byte
	syncedLen  int
	diverged   bool
	syncedCopy []byte
	modTime    time.Time // guarded by mu for files, by MemFS.mu for directories

	// Directory fields, guarded by MemFS.mu. Applying log, in order, to
	// synced yields entries.
	entries map[string]*memNode
	synced  map[string]*memNode
	log     []dirChange
}

// dirChange is one change to a directory's entries since its last sync.
type dirChange struct {
	name string   // entry set to node, or removed when node is nil
	node *memNode //
	also string   // for a rename within the directory: the old name, removed in the same step
}

func (c dirChange) apply(entries map[string]*memNode) {
	if c.node == nil {
		delete(entries, c.name)
	} else {
		entries[c.name] = c.node
	}
	if c.also != "" {
		delete(entries, c.also)
	}
}

func newDirNode() *memNode {
	return &memNode{
		isDir:   true,
		modTime: time.Now(),
		entries: map[string]*memNode{},
		synced:  map[string]*memNode{},
	}
}

func newFileNode() *memNode {
	return &memNode{modTime: time.Now()}
}

// NewMem returns an empty MemFS holding only the root directory "/".
func NewMem() *MemFS {
	return &MemFS{root: newDirNode(), locks: map[string]*memLock{}}
}

// clean makes name absolute and clean.
func clean(name string) string {
	return path.Clean("/" + name)
}

func pathErr(op, name string, err error) error {
	return &fs.PathError{Op: op, Path: name, Err: err}
}

// lookup resolves the clean absolute path p. It returns p's parent
// directory (nil for the root), p's last element and p's node, nil when p
// does not exist. err is fs.ErrNotExist or ENOTDIR when a parent is
// missing or is a file. m.mu must be held.
func (m *MemFS) lookup(p string) (parent *memNode, base string, n *memNode, err error) {
	if p == "/" {
		return nil, "/", m.root, nil
	}
	parts := strings.Split(p[1:], "/")
	d := m.root
	for _, part := range parts[:len(parts)-1] {
		next, ok := d.entries[part]
		if !ok {
			return nil, "", nil, fs.ErrNotExist
		}
		if !next.isDir {
			return nil, "", nil, syscall.ENOTDIR
		}
		d = next
	}
	base = parts[len(parts)-1]
	return d, base, d.entries[base], nil
}

// find resolves name to an existing node, reporting errors with op.
// m.mu must be held.
func (m *MemFS) find(op, name string) (*memNode, error) {
	_, _, n, err := m.lookup(clean(name))
	if err != nil {
		return nil, pathErr(op, name, err)
	}
	if n == nil {
		return nil, pathErr(op, name, fs.ErrNotExist)
	}
	return n, nil
}

// setEntry and the other directory mutators record the change in the
// directory's log so a crash clone can replay a prefix of it. m.mu must
// be held.
func (d *memNode) setEntry(name string, n *memNode) {
	d.entries[name] = n
	d.log = append(d.log, dirChange{name: name, node: n})
	d.modTime = time.Now()
}

func (d *memNode) removeEntry(name string) {
	delete(d.entries, name)
	d.log = append(d.log, dirChange{name: name})
	d.modTime = time.Now()
}

func (d *memNode) renameEntry(oldname, newname string) {
	n := d.entries[oldname]
	delete(d.entries, oldname)
	d.entries[newname] = n
	d.log = append(d.log, dirChange{name: newname, node: n, also: oldname})
	d.modTime = time.Now()
}

func (d *memNode) syncDir() {
	d.synced = maps.Clone(d.entries)
	d.log = nil
}

// Create implements FS.Create.
func (m *MemFS) Create(name string) (File, error) {
	m.mu.Lock()
	defer m.mu.Unlock()
	parent, base, n, err := m.lookup(clean(name))
	switch {
	case err != nil:
		return nil, pathErr("create", name, err)
	case parent == nil || (n != nil && n.isDir):
		return nil, pathErr("create", name, syscall.EISDIR)
	case n == nil:
		n = newFileNode()
		parent.setEntry(base, n)
	default:
		n.truncate(0)
	}
	return &memFile{fs: m, n: n, name: name, writable: true}, nil
}

// Open implements FS.Open. Opening a directory returns the same read-only
// handle OpenDir does.
func (m *MemFS) Open(name string) (File, error) {
	m.mu.Lock()
	defer m.mu.Unlock()
	n, err := m.find("open", name)
	if err != nil {
		return nil, err
	}
	return &memFile{fs: m, n: n, name: name}, nil
}

// OpenReadWrite implements FS.OpenReadWrite.
func (m *MemFS) OpenReadWrite(name string) (File, error) {
	m.mu.Lock()
	defer m.mu.Unlock()
	n, err := m.find("open", name)
	if err != nil {
		return nil, err
	}
	if n.isDir {
		return nil, pathErr("open", name, syscall.EISDIR)
	}
	return &memFile{fs: m, n: n, name: name, writable: true}, nil
}

// OpenDir implements FS.OpenDir. The returned File's Sync makes the
// directory's current entries durable; its Read, ReadAt, Write, Seek and
// Truncate fail with EISDIR.
func (m *MemFS) OpenDir(name string) (File, error) {
	m.mu.Lock()
	defer m.mu.Unlock()
	n, err := m.find("open", name)
	if err != nil {
		return nil, err
	}
	if !n.isDir {
		return nil, pathErr("open", name, syscall.ENOTDIR)
	}
	return &memFile{fs: m, n: n, name: name}, nil
}

// Remove implements FS.Remove: it removes a file or an empty directory.
func (m *MemFS) Remove(name string) error {
	m.mu.Lock()
	defer m.mu.Unlock()
	parent, base, n, err := m.lookup(clean(name))
	switch {
	case err != nil:
		return pathErr("remove", name, err)
	case n == nil:
		return pathErr("remove", name, fs.ErrNotExist)
	case parent == nil:
		return pathErr("remove", name, syscall.EBUSY)
	case n.isDir && len(n.entries) > 0:
		return pathErr("remove", name, syscall.ENOTEMPTY)
	}
	parent.removeEntry(base)
	return nil
}

// RemoveAll implements FS.RemoveAll. It removes the entries of every
// directory under name one by one, deepest first, as rm -r does, so a
// random crash clone may keep some of them. RemoveAll("/") empties the
// root.
func (m *MemFS) RemoveAll(name string) error {
	m.mu.Lock()
	defer m.mu.Unlock()
	parent, base, n, err := m.lookup(clean(name))
	if err != nil {
		if errors.Is(err, syscall.ENOTDIR) {
			return pathErr("removeall", name, err)
		}
		return nil // a missing parent: nothing to remove
	}
	if n == nil {
		return nil
	}
	if n.isDir {
		unlinkTree(n)
	}
	if parent != nil {
		parent.removeEntry(base)
	}
	return nil
}

// unlinkTree removes every entry under directory d. The current entries
// form a tree (Rename refuses to make a cycle), so this ends.
func unlinkTree(d *memNode) {
	for _, name := range slices.Sorted(maps.Keys(d.entries)) {
		if child := d.entries[name]; child.isDir {
			unlinkTree(child)
		}
		d.removeEntry(name)
	}
}

// Rename implements FS.Rename. It moves files and directories, also across
// directories; an existing file (or empty directory, when moving a
// directory) at newname is replaced. A rename within one directory is one
// change to it; across directories it is two changes, each durable only
// when its directory is synced.
func (m *MemFS) Rename(oldname, newname string) error {
	m.mu.Lock()
	defer m.mu.Unlock()
	linkErr := func(err error) error {
		return &os.LinkError{Op: "rename", Old: oldname, New: newname, Err: err}
	}
	oldp, newp := clean(oldname), clean(newname)
	oldParent, oldBase, n, err := m.lookup(oldp)
	if err != nil {
		return linkErr(err)
	}
	if n == nil {
		return linkErr(fs.ErrNotExist)
	}
	if oldp == newp {
		return nil
	}
	newParent, newBase, target, err := m.lookup(newp)
	switch {
	case err != nil:
		return linkErr(err)
	case oldParent == nil || newParent == nil:
		return linkErr(syscall.EBUSY) // the root
	case n.isDir && strings.HasPrefix(newp, oldp+"/"):
		return linkErr(syscall.EINVAL) // into itself
	case target != nil && target.isDir && !n.isDir:
		return linkErr(syscall.EISDIR)
	case target != nil && !target.isDir && n.isDir:
		return linkErr(syscall.ENOTDIR)
	case target != nil && target.isDir && len(target.entries) > 0:
		return linkErr(syscall.ENOTEMPTY)
	}
	if oldParent == newParent {
		oldParent.renameEntry(oldBase, newBase)
		return nil
	}
	// NB: add before remove, so no order of syncs loses the node while
	// both directories are synced.
	newParent.setEntry(newBase, n)
	oldParent.removeEntry(oldBase)
	return nil
}

// MkdirAll implements FS.MkdirAll. perm is ignored. Each directory it
// creates is an entry of its parent, durable once the parent is synced.
func (m *MemFS) MkdirAll(dir string, perm os.FileMode) error {
	m.mu.Lock()
	defer m.mu.Unlock()
	p := clean(dir)
	if p == "/" {
		return nil
	}
	d := m.root
	for _, part := range strings.Split(p[1:], "/") {
		next, ok := d.entries[part]
		if !ok {
			next = newDirNode()
			d.setEntry(part, next)
		} else if !next.isDir {
			return pathErr("mkdir", dir, syscall.ENOTDIR)
		}
		d = next
	}
	return nil
}

// memLock is a lock taken by MemFS.Lock.
type memLock struct {
	fs       *MemFS
	path     string
	name     string
	released bool // guarded by fs.mu
}

// Lock implements FS.Lock. Locks are held per clean path within this
// MemFS; a crash clone starts with none, as a crashed process holds none.
// The returned io.Closer's Close releases the lock; a second Close fails
// with fs.ErrClosed.
func (m *MemFS) Lock(name string) (io.Closer, error) {
	m.mu.Lock()
	defer m.mu.Unlock()
	p := clean(name)
	parent, base, n, err := m.lookup(p)
	switch {
	case err != nil:
		return nil, pathErr("open", name, err)
	case parent == nil || (n != nil && n.isDir):
		return nil, pathErr("open", name, syscall.EISDIR)
	case m.locks[p] != nil:
		return nil, fmt.Errorf("%w: %s", ErrLocked, name)
	case n == nil:
		parent.setEntry(base, newFileNode())
	}
	l := &memLock{fs: m, path: p, name: name}
	m.locks[p] = l
	return l, nil
}

// Close releases the lock.
func (l *memLock) Close() error {
	l.fs.mu.Lock()
	defer l.fs.mu.Unlock()
	if l.released {
		return pathErr("close", l.name, fs.ErrClosed)
	}
	l.released = true
	if l.fs.locks[l.path] == l {
		delete(l.fs.locks, l.path)
	}
	return nil
}

// List implements FS.List.
func (m *MemFS) List(dir string) ([]string, error) {
	m.mu.Lock()
	defer m.mu.Unlock()
	n, err := m.find("open", dir)
	if err != nil {
		return nil, err
	}
	if !n.isDir {
		return nil, pathErr("readdirent", dir, syscall.ENOTDIR)
	}
	return slices.Sorted(maps.Keys(n.entries)), nil
}

// Stat implements FS.Stat.
func (m *MemFS) Stat(name string) (os.FileInfo, error) {
	m.mu.Lock()
	defer m.mu.Unlock()
	n, err := m.find("stat", name)
	if err != nil {
		return nil, err
	}
	return n.info(path.Base(clean(name))), nil
}

// PathJoin implements FS.PathJoin with path.Join.
func (m *MemFS) PathJoin(elem ...string) string { return path.Join(elem...) }

// PathBase implements FS.PathBase with path.Base.
func (m *MemFS) PathBase(p string) string { return path.Base(p) }

// PathDir implements FS.PathDir with path.Dir.
func (m *MemFS) PathDir(p string) string { return path.Dir(p) }

// info describes n. For a directory m.mu must be held.
func (n *memNode) info(name string) os.FileInfo {
	if n.isDir {
		return &memFileInfo{name: name, isDir: true, modTime: n.modTime}
	}
	n.mu.RLock()
	defer n.mu.RUnlock()
	return &memFileInfo{name: name, size: int64(len(n.data)), modTime: n.modTime}
}

// syncedData returns the file's contents as of its last Sync. The slice
// aliases the node's memory: copy it before releasing n.mu.
func (n *memNode) syncedData() []byte {
	if n.diverged {
		return n.syncedCopy
	}
	return n.data[:n.syncedLen]
}

// preserveSynced copies the synced contents aside before a change to
// bytes below syncedLen. n.mu must be held for writing.
func (n *memNode) preserveSynced() {
	if !n.diverged {
		n.syncedCopy = bytes.Clone(n.data[:n.syncedLen])
		n.diverged = true
	}
}

// resize sets len(n.data) to size, zeroing any bytes it adds. n.mu must
// be held for writing.
func (n *memNode) resize(size int64) {
	if size < int64(n.syncedLen) {
		n.preserveSynced()
	}
	old := int64(len(n.data))
	if size <= old {
		n.data = n.data[:size]
		return
	}
	if size > int64(cap(n.data)) {
		grown := make([]byte, old, max(size, 2*int64(cap(n.data))))
		copy(grown, n.data)
		n.data = grown
	}
	n.data = n.data[:size]
	// NB: the bytes past the old length may hold data from before a
	// truncate.
	clear(n.data[old:])
}

func (n *memNode) truncate(size int64) {
	n.mu.Lock()
	defer n.mu.Unlock()
	n.resize(size)
	n.modTime = time.Now()
}

func (n *memNode) writeAt(p []byte, off int64) {
	n.mu.Lock()
	defer n.mu.Unlock()
	if off < int64(n.syncedLen) {
		n.preserveSynced()
	}
	if end := off + int64(len(p)); end > int64(len(n.data)) {
		n.resize(end)
	}
	copy(n.data[off:], p)
	n.modTime = time.Now()
}

func (n *memNode) readAt(p []byte, off int64) (int, error) {
	n.mu.RLock()
	defer n.mu.RUnlock()
	if off >= int64(len(n.data)) {
		return 0, io.EOF
	}
	k := copy(p, n.data[off:])
	if k < len(p) {
		return k, io.EOF
	}
	return k, nil
}

func (n *memNode) syncFile() {
	n.mu.Lock()
	defer n.mu.Unlock()
	n.syncedLen = len(n.data)
	n.diverged = false
	n.syncedCopy = nil
}

// memFile is an open MemFS file or directory.
type memFile struct {
	fs       *MemFS
	n        *memNode
	name     string // as given to the FS, for errors and Stat
	writable bool
	closed   atomic.Bool

	mu  sync.Mutex // guards off
	off int64
}

// check returns the error for op on this handle if it is closed or a
// directory.
func (f *memFile) check(op string) error {
	if f.closed.Load() {
		return pathErr(op, f.name, fs.ErrClosed)
	}
	if f.n.isDir {
		return pathErr(op, f.name, syscall.EISDIR)
	}
	return nil
}

func (f *memFile) Read(p []byte) (int, error) {
	if err := f.check("read"); err != nil {
		return 0, err
	}
	if len(p) == 0 {
		return 0, nil
	}
	f.mu.Lock()
	defer f.mu.Unlock()
	n, err := f.n.readAt(p, f.off)
	f.off += int64(n)
	if n > 0 {
		// Like os.File: report io.EOF on the next call, with n == 0.
		err = nil
	}
	return n, err
}

func (f *memFile) ReadAt(p []byte, off int64) (int, error) {
	if err := f.check("read"); err != nil {
		return 0, err
	}
	if off < 0 {
		return 0, pathErr("read", f.name, syscall.EINVAL)
	}
	return f.n.readAt(p, off)
}

func (f *memFile) Write(p []byte) (int, error) {
	if err := f.check("write"); err != nil {
		return 0, err
	}
	if !f.writable {
		return 0, pathErr("write", f.name, syscall.EBADF)
	}
	f.mu.Lock()
	defer f.mu.Unlock()
	f.n.writeAt(p, f.off)
	f.off += int64(len(p))
	return len(p), nil
}

func (f *memFile) Seek(offset int64, whence int) (int64, error) {
	if err := f.check("seek"); err != nil {
		return 0, err
	}
	f.mu.Lock()
	defer f.mu.Unlock()
	switch whence {
	case io.SeekStart:
	case io.SeekCurrent:
		offset += f.off
	case io.SeekEnd:
		f.n.mu.RLock()
		offset += int64(len(f.n.data))
		f.n.mu.RUnlock()
	default:
		return 0, pathErr("seek", f.name, syscall.EINVAL)
	}
	if offset < 0 {
		return 0, pathErr("seek", f.name, syscall.EINVAL)
	}
	f.off = offset
	return offset, nil
}

func (f *memFile) Truncate(size int64) error {
	if err := f.check("truncate"); err != nil {
		return err
	}
	if !f.writable {
		return pathErr("truncate", f.name, syscall.EBADF)
	}
	if size < 0 {
		return pathErr("truncate", f.name, syscall.EINVAL)
	}
	f.n.truncate(size)
	return nil
}

func (f *memFile) Sync() error {
	if f.closed.Load() {
		return pathErr("sync", f.name, fs.ErrClosed)
	}
	if f.n.isDir {
		f.fs.mu.Lock()
		f.n.syncDir()
		f.fs.mu.Unlock()
		return nil
	}
	f.n.syncFile()
	return nil
}

func (f *memFile) Stat() (os.FileInfo, error) {
	if f.closed.Load() {
		return nil, pathErr("stat", f.name, fs.ErrClosed)
	}
	if f.n.isDir {
		f.fs.mu.Lock()
		defer f.fs.mu.Unlock()
	}
	return f.n.info(path.Base(clean(f.name))), nil
}

func (f *memFile) Close() error {
	if !f.closed.CompareAndSwap(false, true) {
		return pathErr("close", f.name, fs.ErrClosed)
	}
	return nil
}

// memFileInfo implements os.FileInfo for MemFS.
type memFileInfo struct {
	name    string
	size    int64
	isDir   bool
	modTime time.Time
}

func (i *memFileInfo) Name() string       { return i.name }
func (i *memFileInfo) Size() int64        { return i.size }
func (i *memFileInfo) ModTime() time.Time { return i.modTime }
func (i *memFileInfo) IsDir() bool        { return i.isDir }
func (i *memFileInfo) Sys() any           { return nil }

func (i *memFileInfo) Mode() os.FileMode {
	if i.isDir {
		return fs.ModeDir | 0o755
	}
	return 0o644
}

// CrashClone returns a new, independent MemFS holding what the disk would
// hold after a power loss now: the entries of each directory as of its
// last sync, reached from the root, and each file's contents as of its
// last Sync. So a file synced but whose directory entry was not is gone,
// a removal not synced is undone, and a file renamed across directories
// is wherever each directory's synced entries put it (possibly in both).
//
// The clone shares no memory with m, holds no locks and has no open
// files; every file and directory in it counts as synced.
func (m *MemFS) CrashClone() *MemFS {
	return m.crashClone(nil)
}

// CrashCloneRandom is CrashClone for a page cache that was partly flushed
// when the power went, to produce the torn tails real crashes leave. Each
// file keeps its synced contents plus a random prefix (possibly none,
// possibly all) of the bytes appended since; a file changed below its
// synced length since its last Sync comes back either as synced or as it
// is now. Each directory keeps its synced entries plus a random prefix, in
// order, of the changes made to it since. A rename within one directory
// is one change. Given the same r state and the same m, the result is the
// same.
func (m *MemFS) CrashCloneRandom(r *rand.Rand) *MemFS {
	return m.crashClone(r)
}

func (m *MemFS) crashClone(r *rand.Rand) *MemFS {
	m.mu.Lock()
	defer m.mu.Unlock()
	c := &cloner{r: r, done: map[*memNode]*memNode{}, onPath: map[*memNode]bool{}}
	return &MemFS{root: c.clone(m.root), locks: map[string]*memLock{}}
}

// cloner copies the durable state of a tree of nodes.
type cloner struct {
	r      *rand.Rand // nil: keep exactly the synced state
	done   map[*memNode]*memNode
	onPath map[*memNode]bool // directories being cloned, to cut cycles
}

// prefix returns how many of n pending items survive: with r, none or all
// a quarter of the time each, else uniform in [0, n].
func (c *cloner) prefix(n int) int {
	if c.r == nil || n == 0 {
		return 0
	}
	switch c.r.Intn(4) {
	case 0:
		return 0
	case 1:
		return n
	}
	return c.r.Intn(n + 1)
}

// clone returns the durable copy of n. A node reachable along several
// paths is copied once, so it stays one node (a hard link) in the clone.
func (c *cloner) clone(n *memNode) *memNode {
	if cn, ok := c.done[n]; ok {
		return cn
	}
	if !n.isDir {
		cn := c.cloneFile(n)
		c.done[n] = cn
		return cn
	}
	entries := maps.Clone(n.synced)
	for _, change := range n.log[:c.prefix(len(n.log))] {
		change.apply(entries)
	}
	cn := newDirNode()
	cn.modTime = n.modTime
	c.done[n] = cn
	c.onPath[n] = true
	// Visit in name order so that a seeded r gives the same clone.
	for _, name := range slices.Sorted(maps.Keys(entries)) {
		child := entries[name]
		if c.onPath[child] {
			// NB: only half-synced renames of directories into their own
			// subtrees make a cycle; a disk would need fsck. Cut it.
			continue
		}
		cn.entries[name] = c.clone(child)
	}
	delete(c.onPath, n)
	cn.synced = maps.Clone(cn.entries)
	return cn
}

func (c *cloner) cloneFile(n *memNode) *memNode {
	n.mu.RLock()
	defer n.mu.RUnlock()
	var data []byte
	switch {
	case c.r == nil:
		data = n.syncedData()
	case !n.diverged:
		data = n.data[:n.syncedLen+c.prefix(len(n.data)-n.syncedLen)]
	case c.r.Intn(2) == 0:
		data = n.syncedData()
	default:
		data = n.data
	}
	data = bytes.Clone(data)
	return &memNode{data: data, syncedLen: len(data), modTime: n.modTime}
}

// String lists the tree for debugging: one line per file or directory,
// indented by depth, with each file's size and synced size, and marks for
// entries whose creation or removal is not yet synced in their directory.
func (m *MemFS) String() string {
	m.mu.Lock()
	defer m.mu.Unlock()
	var b strings.Builder
	b.WriteString("/\n")
	writeTree(&b, m.root, 1)
	return b.String()
}

func writeTree(b *strings.Builder, d *memNode, depth int) {
	indent := strings.Repeat("  ", depth)
	names := slices.Sorted(maps.Keys(d.entries))
	for name := range d.synced {
		if _, ok := d.entries[name]; !ok {
			names = append(names, name)
		}
	}
	slices.Sort(names)
	for _, name := range names {
		n, ok := d.entries[name]
		if !ok {
			fmt.Fprintf(b, "%s%s (removed, removal not synced)\n", indent, name)
			continue
		}
		note := ""
		if d.synced[name] != n {
			note = ", entry not synced"
		}
		if n.isDir {
			if note != "" {
				note = " (entry not synced)"
			}
			fmt.Fprintf(b, "%s%s/%s\n", indent, name, note)
			writeTree(b, n, depth+1)
			continue
		}
		n.mu.RLock()
		size, synced := len(n.data), len(n.syncedData())
		diverged := n.diverged
		n.mu.RUnlock()
		if diverged {
			note = ", changed below synced size" + note
		}
		fmt.Fprintf(b, "%s%s %d bytes, %d synced%s\n", indent, name, size, synced, note)
	}
}

// check verifies MemFS invariants, for tests: replaying each directory's
// log over its synced entries gives its entries, and a file not changed
// below its synced length still holds that many bytes.
func (m *MemFS) check() error {
	m.mu.Lock()
	defer m.mu.Unlock()
	return checkTree("/", m.root)
}

func checkTree(p string, d *memNode) error {
	replayed := maps.Clone(d.synced)
	for _, c := range d.log {
		c.apply(replayed)
	}
	if !maps.Equal(replayed, d.entries) {
		return fmt.Errorf("vfs: %s: synced entries plus log differ from entries", p)
	}
	for name, n := range d.entries {
		child := path.Join(p, name)
		if n.isDir {
			if err := checkTree(child, n); err != nil {
				return err
			}
			continue
		}
		n.mu.RLock()
		bad := !n.diverged && n.syncedLen > len(n.data)
		n.mu.RUnlock()
		if bad {
			return fmt.Errorf("vfs: %s: synced length beyond data", child)
		}
	}
	return nil
}
