package enginetest

import (
	"encoding/binary"
	"errors"
	"fmt"
	"hash/crc32"
	"io"
	"io/fs"
	"maps"
	"slices"
	"sort"
	"sync"

	"github.com/kvs-lab/kvs"
	"github.com/kvs-lab/kvs/internal/vfs"
)

// refEngine is a deliberately simple engine that keeps the kvs contract,
// so the suite can be checked on something other than the engines it
// tests: one log file of checksummed batch records, the contents in a map,
// copy-on-write for snapshots and iterators. Its flaws, when switched on,
// are bugs the suite must catch.
//
// Log record: u32 length of repr | u32 crc32c of repr | batch repr.
type refEngine struct {
	name  string
	flaws refFlaws
	fs    vfs.FS
	dir   string
	opts  *kvs.Options

	mu     sync.Mutex
	data   map[string]string
	shared bool // data is referenced by a snapshot or iterator: copy before changing
	log    vfs.File
	lock   io.Closer
	closed bool
	failed error
	syncs  int64 // fsyncs of the log for synced writes
}

// refFlaws are bugs a mutant of refEngine has.
type refFlaws struct {
	ignoreSync  bool // never fsyncs
	splitBatch  bool // writes each batch entry as its own record
	liveViews   bool // snapshots and iterators see later writes
	swallowSync bool // ignores fsync errors
	aliasGet    bool // Get returns the engine's own bytes
	lostClose   bool // Close does not sync
	keepGoing   bool // after a failed append, goes on appending after the torn record
}

const (
	refLog     = "LOG"
	refLogTmp  = "LOG.tmp"
	refLock    = "LOCK"
	refRecHead = 8
)

var refCRC = crc32.MakeTable(crc32.Castagnoli)

// The reference engine and its mutants, registered for the self-tests.
var refEngines = map[string]refFlaws{
	"enginetest-ref":                {},
	"enginetest-mutant-ignoresync":  {ignoreSync: true},
	"enginetest-mutant-splitbatch":  {splitBatch: true},
	"enginetest-mutant-liveviews":   {liveViews: true},
	"enginetest-mutant-swallowsync": {swallowSync: true},
	"enginetest-mutant-aliasget":    {aliasGet: true},
	"enginetest-mutant-lostclose":   {lostClose: true, ignoreSync: true},
	"enginetest-mutant-keepgoing":   {keepGoing: true},
}

func init() {
	for name, flaws := range refEngines {
		name, flaws := name, flaws
		kvs.Register(name, func(dir string, o *kvs.Options) (kvs.Engine, error) {
			return openRef(name, flaws, dir, o)
		})
	}
}

func openRef(name string, flaws refFlaws, dir string, o *kvs.Options) (_ kvs.Engine, err error) {
	fsys := o.FS
	e := &refEngine{name: name, flaws: flaws, fs: fsys, dir: dir, opts: o, data: map[string]string{}}
	if _, err := fsys.Stat(dir); err != nil {
		if !errors.Is(err, fs.ErrNotExist) || o.ErrorIfNotExist {
			return nil, fmt.Errorf("ref: %s: %w", dir, err)
		}
		if err := fsys.MkdirAll(dir, 0o755); err != nil {
			return nil, fmt.Errorf("ref: mkdir: %w", err)
		}
	}
	// Sync the parent even when dir exists: an earlier Open may have
	// made it and failed before syncing.
	if err := vfs.SyncDir(fsys, fsys.PathDir(dir)); err != nil {
		return nil, fmt.Errorf("ref: %w", err)
	}
	names, err := fsys.List(dir)
	if err != nil {
		return nil, fmt.Errorf("ref: list: %w", err)
	}
	for _, n := range names {
		switch n {
		case kvs.EngineFile, kvs.EngineFile + ".tmp", refLog, refLogTmp, refLock:
		default:
			return nil, fmt.Errorf("%w: %s holds %s", kvs.ErrNotKVSDir, dir, n)
		}
	}
	lock, err := fsys.Lock(fsys.PathJoin(dir, refLock))
	if err != nil {
		if errors.Is(err, vfs.ErrLocked) {
			return nil, fmt.Errorf("%w: %v", kvs.ErrLocked, err)
		}
		return nil, fmt.Errorf("ref: lock: %w", err)
	}
	e.lock = lock
	defer func() {
		if err != nil {
			if e.log != nil {
				e.log.Close()
			}
			lock.Close()
		}
	}()
	if !slices.Contains(names, kvs.EngineFile) {
		if err := kvs.WriteEngineFile(fsys, dir, name); err != nil {
			return nil, err
		}
	}
	if slices.Contains(names, refLogTmp) {
		if err := fsys.Remove(fsys.PathJoin(dir, refLogTmp)); err != nil {
			return nil, fmt.Errorf("ref: remove %s: %w", refLogTmp, err)
		}
	}
	path := fsys.PathJoin(dir, refLog)
	if !slices.Contains(names, refLog) {
		f, err := fsys.Create(path)
		if err != nil {
			return nil, fmt.Errorf("ref: create log: %w", err)
		}
		e.log = f
		if err := f.Sync(); err != nil {
			return nil, fmt.Errorf("ref: sync log: %w", err)
		}
		if err := vfs.SyncDir(fsys, dir); err != nil {
			return nil, fmt.Errorf("ref: %w", err)
		}
		return e, nil
	}
	f, err := fsys.OpenReadWrite(path)
	if err != nil {
		return nil, fmt.Errorf("ref: open log: %w", err)
	}
	e.log = f
	buf, err := io.ReadAll(f)
	if err != nil {
		return nil, fmt.Errorf("ref: read log: %w", err)
	}
	good := 0
	for off := 0; ; {
		if len(buf)-off < refRecHead {
			break
		}
		n := int(binary.LittleEndian.Uint32(buf[off:]))
		sum := binary.LittleEndian.Uint32(buf[off+4:])
		if n > len(buf)-off-refRecHead {
			break
		}
		repr := buf[off+refRecHead : off+refRecHead+n]
		if crc32.Checksum(repr, refCRC) != sum {
			break
		}
		b, err := kvs.DecodeBatch(repr)
		if err != nil {
			return nil, kvs.Corruptf(path, int64(off), "%v", err)
		}
		applyBatch(e.data, b)
		off += refRecHead + n
		good = off
	}
	if good < len(buf) {
		// A torn tail: cut it so that new records follow good ones.
		if err := f.Truncate(int64(good)); err != nil {
			return nil, fmt.Errorf("ref: truncate log: %w", err)
		}
	}
	// What was read may not be durable yet (an engine that failed, or a
	// rename whose directory was not synced): make it so before building
	// on it.
	if err := f.Sync(); err != nil {
		return nil, fmt.Errorf("ref: sync log: %w", err)
	}
	if err := vfs.SyncDir(fsys, dir); err != nil {
		return nil, fmt.Errorf("ref: %w", err)
	}
	if _, err := f.Seek(int64(good), io.SeekStart); err != nil {
		return nil, fmt.Errorf("ref: seek log: %w", err)
	}
	return e, nil
}

func applyBatch(m map[string]string, b *kvs.Batch) {
	r := b.Reader()
	for {
		kind, k, v, ok := r.Next()
		if !ok {
			return
		}
		if kind == kvs.KindDelete {
			delete(m, string(k))
		} else {
			m[string(k)] = string(v)
		}
	}
}

func (e *refEngine) check() error {
	if e.closed {
		return kvs.ErrClosed
	}
	return nil
}

func (e *refEngine) Get(key []byte) ([]byte, error) {
	e.mu.Lock()
	defer e.mu.Unlock()
	if err := e.check(); err != nil {
		return nil, err
	}
	return viewGet(e.data, key, e.flaws.aliasGet)
}

var aliased = struct {
	sync.Mutex
	m map[string][]byte
}{m: map[string][]byte{}}

func viewGet(m map[string]string, key []byte, alias bool) ([]byte, error) {
	if err := kvs.CheckKey(key); err != nil {
		return nil, err
	}
	v, ok := m[string(key)]
	if !ok {
		return nil, kvs.ErrNotFound
	}
	if alias {
		// A shared buffer per key: the caller's changes leak back.
		aliased.Lock()
		defer aliased.Unlock()
		b, ok := aliased.m[string(key)+"\x00"+v]
		if !ok {
			b = []byte(v)
			aliased.m[string(key)+"\x00"+v] = b
		}
		return b, nil
	}
	return []byte(v), nil
}

func (e *refEngine) view() map[string]string {
	if e.flaws.liveViews {
		return e.data
	}
	e.shared = true
	return e.data
}

func (e *refEngine) NewIter(o *kvs.IterOptions) (kvs.Iterator, error) {
	e.mu.Lock()
	defer e.mu.Unlock()
	if err := e.check(); err != nil {
		return nil, err
	}
	return newRefIter(e.view(), o, &e.mu), nil
}

func (e *refEngine) Put(key, value []byte, o kvs.WriteOptions) error {
	var b kvs.Batch
	b.Put(key, value)
	return e.Write(&b, o)
}

func (e *refEngine) Delete(key []byte, o kvs.WriteOptions) error {
	var b kvs.Batch
	b.Delete(key)
	return e.Write(&b, o)
}

func record(repr []byte) []byte {
	rec := make([]byte, refRecHead, refRecHead+len(repr))
	binary.LittleEndian.PutUint32(rec, uint32(len(repr)))
	binary.LittleEndian.PutUint32(rec[4:], crc32.Checksum(repr, refCRC))
	return append(rec, repr...)
}

func (e *refEngine) Write(b *kvs.Batch, o kvs.WriteOptions) error {
	if err := b.Validate(e.opts.MaxValueSize); err != nil {
		return err
	}
	e.mu.Lock()
	defer e.mu.Unlock()
	if err := e.check(); err != nil {
		return err
	}
	if e.failed != nil {
		return fmt.Errorf("%w: %v", kvs.ErrFailed, e.failed)
	}
	if b.Empty() {
		return nil
	}
	var recs []byte
	if e.flaws.splitBatch {
		r := b.Reader()
		for {
			kind, k, v, ok := r.Next()
			if !ok {
				break
			}
			var one kvs.Batch
			if kind == kvs.KindDelete {
				one.Delete(k)
			} else {
				one.Put(k, v)
			}
			recs = append(recs, record(one.Repr())...)
		}
	} else {
		recs = record(b.Repr())
	}
	if _, err := e.log.Write(recs); err != nil {
		if !e.flaws.keepGoing {
			e.failed = err
		}
		return fmt.Errorf("ref: append: %w", err)
	}
	if o.Sync && !e.flaws.ignoreSync {
		if err := e.log.Sync(); err != nil && !e.flaws.swallowSync {
			e.failed = err
			return fmt.Errorf("ref: sync: %w", err)
		}
		e.syncs++
	}
	if e.shared {
		e.data = maps.Clone(e.data)
		e.shared = false
	}
	applyBatch(e.data, b)
	return nil
}

type refSnapshot struct {
	e      *refEngine
	data   map[string]string
	closed bool
}

func (e *refEngine) NewSnapshot() (kvs.Snapshot, error) {
	e.mu.Lock()
	defer e.mu.Unlock()
	if err := e.check(); err != nil {
		return nil, err
	}
	return &refSnapshot{e: e, data: e.view()}, nil
}

func (s *refSnapshot) Get(key []byte) ([]byte, error) {
	s.e.mu.Lock()
	defer s.e.mu.Unlock()
	if s.closed {
		return nil, kvs.ErrClosed
	}
	return viewGet(s.data, key, s.e.flaws.aliasGet)
}

func (s *refSnapshot) NewIter(o *kvs.IterOptions) (kvs.Iterator, error) {
	s.e.mu.Lock()
	defer s.e.mu.Unlock()
	if s.closed {
		return nil, kvs.ErrClosed
	}
	return newRefIter(s.data, o, &s.e.mu), nil
}

func (s *refSnapshot) Close() error {
	s.e.mu.Lock()
	defer s.e.mu.Unlock()
	s.closed = true
	return nil
}

func (e *refEngine) Compact() error {
	e.mu.Lock()
	defer e.mu.Unlock()
	if err := e.check(); err != nil {
		return err
	}
	if e.failed != nil {
		return fmt.Errorf("%w: %v", kvs.ErrFailed, e.failed)
	}
	var b kvs.Batch
	for _, k := range slices.Sorted(maps.Keys(e.data)) {
		b.Put([]byte(k), []byte(e.data[k]))
	}
	tmp := e.fs.PathJoin(e.dir, refLogTmp)
	f, err := e.fs.Create(tmp)
	if err != nil {
		return fmt.Errorf("ref: compact: %w", err)
	}
	fail := func(err error) error {
		f.Close()
		e.fs.Remove(tmp)
		return fmt.Errorf("ref: compact: %w", err)
	}
	if !b.Empty() {
		if _, err := f.Write(record(b.Repr())); err != nil {
			return fail(err)
		}
	}
	if err := f.Sync(); err != nil {
		return fail(err)
	}
	if err := e.fs.Rename(tmp, e.fs.PathJoin(e.dir, refLog)); err != nil {
		return fail(err)
	}
	old := e.log
	e.log = f
	old.Close()
	if err := vfs.SyncDir(e.fs, e.dir); err != nil {
		// The rename may or may not be durable; both logs hold the data.
		e.failed = err
		return fmt.Errorf("ref: compact: %w", err)
	}
	return nil
}

func (e *refEngine) Stats() kvs.Stats {
	e.mu.Lock()
	defer e.mu.Unlock()
	return kvs.Stats{Engine: e.name, LiveKeys: int64(len(e.data)), Syncs: e.syncs}
}

func (e *refEngine) Close() error {
	e.mu.Lock()
	defer e.mu.Unlock()
	if e.closed {
		return kvs.ErrClosed
	}
	e.closed = true
	var err error
	if e.failed == nil && !e.flaws.lostClose {
		err = e.log.Sync()
	}
	if cerr := e.log.Close(); err == nil {
		err = cerr
	}
	if lerr := e.lock.Close(); err == nil {
		err = lerr
	}
	if err != nil {
		return fmt.Errorf("ref: close: %w", err)
	}
	return nil
}

// refIter iterates over a sorted copy of a map's keys in bounds.
type refIter struct {
	mu     *sync.Mutex
	m      map[string]string
	keys   []string
	pos    int
	closed bool
	k, v   []byte
}

func newRefIter(m map[string]string, o *kvs.IterOptions, mu *sync.Mutex) *refIter {
	it := &refIter{m: m, mu: mu, pos: -1}
	for k := range m {
		if o != nil && o.LowerBound != nil && k < string(o.LowerBound) {
			continue
		}
		if o != nil && o.UpperBound != nil && k >= string(o.UpperBound) {
			continue
		}
		it.keys = append(it.keys, k)
	}
	sort.Strings(it.keys)
	return it
}

func (it *refIter) set(pos int) bool {
	if it.closed || pos < 0 || pos >= len(it.keys) {
		it.pos = -1
		return false
	}
	it.pos = pos
	k := it.keys[pos]
	it.mu.Lock()
	v, ok := it.m[k]
	it.mu.Unlock()
	if !ok {
		v = "" // a live view (a mutant) may have lost it
	}
	it.k, it.v = []byte(k), []byte(v)
	return true
}

func (it *refIter) First() bool { return it.set(0) }
func (it *refIter) Last() bool  { return it.set(len(it.keys) - 1) }
func (it *refIter) SeekGE(k []byte) bool {
	return it.set(sort.SearchStrings(it.keys, string(k)))
}
func (it *refIter) SeekLT(k []byte) bool {
	return it.set(sort.SearchStrings(it.keys, string(k)) - 1)
}
func (it *refIter) Next() bool {
	if it.pos < 0 {
		return false
	}
	return it.set(it.pos + 1)
}
func (it *refIter) Prev() bool {
	if it.pos < 0 {
		return false
	}
	return it.set(it.pos - 1)
}
func (it *refIter) Valid() bool   { return it.pos >= 0 }
func (it *refIter) Key() []byte   { return it.k }
func (it *refIter) Value() []byte { return it.v }
func (it *refIter) Error() error  { return nil }
func (it *refIter) Close() error {
	it.closed = true
	it.pos = -1
	return nil
}
