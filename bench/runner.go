package bench

import (
	"bytes"
	"errors"
	"fmt"
	"io/fs"
	"math/rand/v2"
	"os"
	"path/filepath"
	"runtime"
	"runtime/debug"
	"strconv"
	"sync"
	"sync/atomic"
	"syscall"
	"time"

	"github.com/HdrHistogram/hdrhistogram-go"
	"github.com/kvs-lab/kvs"
)

// RunConfig is one run: one DB, one workload.
type RunConfig struct {
	DB       string // a registered DB name (Registered)
	Workload Workload
	// Keys is the key space: the keys preloaded, or for fill workloads
	// the keys written. Ops is the number of timed operations (default
	// Keys; for readseq, keys read).
	Keys, Ops          int
	KeySize, ValueSize int // default 16 and 100
	Concurrency        int // goroutines issuing operations (default 1)
	Sync               bool
	Seed               uint64
	// Dir is the DB's directory; it must not exist or be empty, and is
	// left in place (the caller removes it).
	Dir string
	// KVS holds the kvs engines' options (nil: defaults).
	KVS *kvs.Options
	// Settle, when positive, is the longest the runner waits after the
	// timed phase of a writing workload for the process to stop writing
	// (next to no new bytes in /proc/self/io wchar for a second), before it takes
	// the write amplification. Default 2 minutes; negative: don't wait.
	Settle time.Duration
	// MaxTime, when positive, ends the timed phase after that long even
	// if fewer than Ops operations ran; Result.Ops then says how many did
	// (a hash keydir's scans, for one, can take longer than anyone waits).
	MaxTime time.Duration
	// SampleEvery is how often the runner samples disk usage and engine
	// counters during the timed phase (default 250ms).
	SampleEvery time.Duration
	// Progress, when set, is told the phase ("load", "run", "reopen")
	// and the operations done out of total, now and then.
	Progress func(phase string, done, total int)
}

func (c *RunConfig) setDefaults() error {
	if c.KeySize == 0 {
		c.KeySize = 16
	}
	if c.ValueSize == 0 {
		c.ValueSize = 100
	}
	if c.Concurrency == 0 {
		c.Concurrency = 1
	}
	if c.Ops == 0 {
		c.Ops = c.Keys
	}
	if c.Settle == 0 {
		c.Settle = 2 * time.Minute
	}
	if c.SampleEvery == 0 {
		c.SampleEvery = 250 * time.Millisecond
	}
	switch {
	case c.Keys <= 0:
		return fmt.Errorf("bench: key count %d must be positive", c.Keys)
	case c.Ops < 0:
		return fmt.Errorf("bench: op count %d is negative", c.Ops)
	case c.KeySize < MinKeySize || c.KeySize > kvs.MaxKeySize:
		return fmt.Errorf("bench: key size %d is not in [%d, %d]", c.KeySize, MinKeySize, kvs.MaxKeySize)
	case c.Keys+c.Ops >= maxKeyIndex(c.KeySize):
		return fmt.Errorf("bench: %d keys do not fit in %d-byte keys", c.Keys+c.Ops, c.KeySize)
	case c.ValueSize < 0:
		return fmt.Errorf("bench: value size %d is negative", c.ValueSize)
	case c.Concurrency < 1:
		return fmt.Errorf("bench: concurrency %d must be at least 1", c.Concurrency)
	case c.Dir == "":
		return errors.New("bench: no directory for the DB")
	case len(c.Workload.Mix) == 0:
		return fmt.Errorf("bench: workload %q has no operations", c.Workload.Name)
	case c.Workload.Preload && c.Workload.Dist == Permuted && c.Ops > c.Keys:
		return fmt.Errorf("bench: %s takes each of the %d keys once, so it cannot run %d operations", c.Workload.Name, c.Keys, c.Ops)
	}
	return nil
}

// Latency summarizes one operation kind's latencies, in nanoseconds.
type Latency struct {
	Count               int64
	Mean                float64
	P50, P95, P99, P999 int64
	Max                 int64
	CDF                 []CDFPoint `json:",omitempty"` // for charts
}

// CDFPoint is one point of a latency CDF: Fraction of the operations took
// at most Nanos.
type CDFPoint struct {
	Nanos    int64
	Fraction float64
}

// Sample is the state of the DB at one moment of the timed phase.
type Sample struct {
	Seconds     float64 // since the timed phase began
	Ops         int64   // operations done by then
	BytesOnDisk int64   // the directory's allocated size
	L0Files     int     // kvs lsm only
	// CompactionDebt is the bytes compaction owes (kvs lsm): L0's when
	// it is due, and what each deeper level holds beyond its target.
	CompactionDebt int64
	StallTime      time.Duration
}

// Result is what a run measured. Rates and amplifications cover the timed
// phase unless their comment says otherwise.
type Result struct {
	DB, Workload       string
	Sync               bool
	Keys, Ops          int
	KeySize, ValueSize int
	Concurrency        int

	Load    time.Duration // the untimed preload, if any
	Elapsed time.Duration // the timed phase
	// OpsPerSec is Ops / Elapsed; MBPerSec counts the key and value
	// bytes the operations moved (written or read).
	OpsPerSec, MBPerSec float64
	// Latency per operation kind ("read", "update", ...) and "all".
	Latency map[string]*Latency

	// UserBytesWritten is the key and value bytes of every Put (and key
	// bytes of every Delete) in the timed phase.
	UserBytesWritten int64
	// WriteAmp is bytes the process wrote to files (its write(2) and
	// pwrite(2) bytes, /proc/self/io wchar) per user byte: the same
	// measure for every engine. It counts from the start of the timed
	// phase until the engine has gone quiet after it (Settle), so that
	// compactions an engine put off are not left out. An engine that writes through mmap is
	// undercounted (EngineWriteAmp, when it has one, is then the figure
	// to trust).
	WriteAmp float64
	// EngineWriteAmp is the engine's own count (kvs.Stats) of bytes
	// written per user byte; 0 for engines without Stats.
	EngineWriteAmp float64
	// LiveBytes is the key and value bytes of the keys live at the end;
	// BytesOnDisk the directory's allocated size then; SpaceAmp their
	// ratio.
	LiveKeys, LiveBytes, BytesOnDisk int64
	SpaceAmp                         float64
	// ReadSyscallsPerGet is read(2)/pread(2) calls per Get (/proc/self/io
	// syscr); an engine reading through mmap makes none.
	ReadSyscallsPerGet float64
	// TablesPerGet is, for the kvs engines, files probed per Get
	// (kvs.Stats DiskReads + FilterSkips per Get).
	TablesPerGet float64
	// MemoryPerKey is the memory the open DB holds after the run, per
	// live key: the growth of the process's anonymous resident memory
	// (RssAnon: the Go heap and memory an engine allocates outside it,
	// not the page cache or file mappings) since before Open, measured
	// after a GC that returns freed memory to the system. HeapPerKey is
	// the Go heap's share alone. Both are 0 when they came out negative
	// (memory freed elsewhere during the run).
	MemoryPerKey, HeapPerKey float64
	// StallTime is the time writers spent in write slowdown or stop
	// (kvs engines).
	StallTime time.Duration
	// MaxL0Files and MaxCompactionDebt are the most L0 tables and
	// compaction debt seen in a sample (kvs lsm).
	MaxL0Files        int
	MaxCompactionDebt int64
	// Settle is how long the engine kept writing after the last
	// operation, until its writes stopped (RunConfig.Settle).
	Settle time.Duration
	// Reopen is the time Close and then Open took after the run.
	Reopen  time.Duration
	Samples []Sample
}

// Run opens cfg.DB in cfg.Dir, preloads it when the workload asks,
// reopens it with cfg.Sync, runs the timed operations from
// cfg.Concurrency goroutines and returns what it measured. A read that
// returns a wrong answer (a missing key, a value of the wrong size) fails
// the run: a fast wrong engine is not a result.
func Run(cfg RunConfig) (*Result, error) {
	if err := cfg.setDefaults(); err != nil {
		return nil, err
	}
	w := cfg.Workload
	res := &Result{DB: cfg.DB, Workload: w.Name, Sync: cfg.Sync, Keys: cfg.Keys, Ops: cfg.Ops,
		KeySize: cfg.KeySize, ValueSize: cfg.ValueSize, Concurrency: cfg.Concurrency}
	progress := func(phase string, done, total int) {
		if cfg.Progress != nil {
			cfg.Progress(phase, done, total)
		}
	}
	r := &runner{cfg: cfg, values: newValuePool(cfg.Seed, cfg.ValueSize)}
	r.live.Store(0)
	if w.Preload {
		db, err := Open(cfg.DB, cfg.Dir, OpenOptions{KVS: cfg.KVS})
		if err != nil {
			return nil, err
		}
		start := time.Now()
		if err := r.preload(db, progress); err != nil {
			db.Close()
			return nil, fmt.Errorf("bench: %s: load: %w", cfg.DB, err)
		}
		if err := db.Close(); err != nil {
			return nil, fmt.Errorf("bench: %s: load: %w", cfg.DB, err)
		}
		res.Load = time.Since(start)
		r.live.Store(int64(cfg.Keys))
	}
	r.prepare()

	heapBefore, rssBefore := memInUse()
	db, err := Open(cfg.DB, cfg.Dir, OpenOptions{Sync: cfg.Sync, KVS: cfg.KVS})
	if err != nil {
		return nil, err
	}
	defer func() {
		if db != nil {
			db.Close()
		}
	}()
	st, _ := db.(Statser)
	var before kvs.Stats
	if st != nil {
		before = st.Stats()
	}
	ioBefore := readProcIO()

	stopSampling := r.sample(db, st, res)
	start := time.Now()
	if err := r.run(db, progress); err != nil {
		stopSampling()
		return nil, fmt.Errorf("bench: %s: %s: %w", cfg.DB, w.Name, err)
	}
	res.Elapsed = time.Since(start)
	stopSampling()
	if done := int(r.done.Load()); done < cfg.Ops {
		res.Ops = done // MaxTime ran out
	}

	ioAfter := readProcIO()
	if cfg.Settle > 0 && r.userBytes.Load() > 0 && ioAfter.ok {
		// Let the engine finish the flushes and compactions the run
		// started: they are part of what the writes cost.
		start := time.Now()
		ioAfter = settle(ioAfter, cfg.Settle)
		res.Settle = time.Since(start)
	}
	res.LiveKeys = r.live.Load()
	res.LiveBytes = res.LiveKeys * int64(cfg.KeySize+cfg.ValueSize)
	res.UserBytesWritten = r.userBytes.Load()
	res.OpsPerSec = float64(res.Ops) / res.Elapsed.Seconds()
	res.MBPerSec = float64(r.movedBytes.Load()) / res.Elapsed.Seconds() / 1e6
	res.Latency = r.latencies()
	if res.UserBytesWritten > 0 && ioAfter.ok {
		res.WriteAmp = float64(ioAfter.wchar-ioBefore.wchar) / float64(res.UserBytesWritten)
	}
	if gets := r.gets.Load(); gets > 0 && ioAfter.ok {
		res.ReadSyscallsPerGet = float64(ioAfter.syscr-ioBefore.syscr) / float64(gets)
	}
	if st != nil {
		after := st.Stats()
		if user := after.UserBytesWritten - before.UserBytesWritten; user > 0 {
			res.EngineWriteAmp = float64(after.DiskBytesWritten-before.DiskBytesWritten) / float64(user)
		}
		if gets := after.Gets - before.Gets; gets > 0 {
			res.TablesPerGet = float64(after.DiskReads+after.FilterSkips-before.DiskReads-before.FilterSkips) / float64(gets)
		}
		res.StallTime = after.StallTime - before.StallTime
	}
	if res.LiveKeys > 0 {
		heap, rss := memInUse()
		res.HeapPerKey = max(0, float64(heap-heapBefore)/float64(res.LiveKeys))
		res.MemoryPerKey = res.HeapPerKey
		if rss > 0 && rssBefore > 0 {
			res.MemoryPerKey = max(0, float64(rss-rssBefore)/float64(res.LiveKeys))
		}
	}
	res.BytesOnDisk = dirBytes(cfg.Dir)
	if res.LiveBytes > 0 {
		res.SpaceAmp = float64(res.BytesOnDisk) / float64(res.LiveBytes)
	}

	// Start-up time: close, then open again and check a sample of keys.
	progress("reopen", 0, 1)
	start = time.Now()
	err = db.Close()
	db = nil
	if err != nil {
		return nil, fmt.Errorf("bench: %s: close: %w", cfg.DB, err)
	}
	db, err = Open(cfg.DB, cfg.Dir, OpenOptions{KVS: cfg.KVS})
	if err != nil {
		return nil, fmt.Errorf("bench: %s: reopen: %w", cfg.DB, err)
	}
	res.Reopen = time.Since(start)
	if err := r.checkAfterReopen(db); err != nil {
		return nil, fmt.Errorf("bench: %s: after reopen: %w", cfg.DB, err)
	}
	progress("reopen", 1, 1)
	err = db.Close()
	db = nil
	return res, err
}

// runner holds a run's shared state.
type runner struct {
	cfg    RunConfig
	values *valuePool

	perm     []int32      // Permuted: the order keys are taken in
	cursor   atomic.Int64 // Sequential and Permuted: the next position
	inserted atomic.Int64 // keys inserted past cfg.Keys, counted when their Put starts
	// Latest reads only keys whose insert has returned: insMu guards
	// insDone (the inserts past visible that have returned) and visible
	// (the keys, preloaded and inserted, that all have).
	insMu   sync.Mutex
	insDone map[int]bool
	visible atomic.Int64
	zipf    *zipfian

	live       atomic.Int64 // keys live now
	userBytes  atomic.Int64
	movedBytes atomic.Int64
	gets       atomic.Int64
	done       atomic.Int64

	mu    sync.Mutex
	hists [numOpKinds]*hdrhistogram.Histogram // merged from the workers
	// deleted marks keys deleterandom removed, for the check after reopen.
	deleted []bool
}

// maxKeyIndex is the number of distinct keys of keySize bytes.
func maxKeyIndex(keySize int) int {
	digits := min(keySize, 16)
	n := 1
	for range digits {
		n *= 10
	}
	return n
}

// key appends key i: its decimal index, zero-padded to 16 digits (fewer
// for shorter keys), then 'k's up to the key size. Keys sort in index
// order, so fillseq writes in key order and a scan's neighbours are the
// next indexes.
func (r *runner) key(dst []byte, i int) []byte {
	digits := min(r.cfg.KeySize, 16)
	s := strconv.Itoa(i)
	for n := len(s); n < digits; n++ {
		dst = append(dst, '0')
	}
	dst = append(dst, s...)
	for len(dst) < r.cfg.KeySize {
		dst = append(dst, 'k')
	}
	return dst
}

// missingKey appends a key that sorts among the loaded keys (after key i)
// but is never written: key i with its last digit replaced by ':', which
// sorts after every digit. An engine cannot rule it out by key range.
func (r *runner) missingKey(dst []byte, i int) []byte {
	dst = r.key(dst, i)
	dst[min(r.cfg.KeySize, 16)-1] = ':'
	return dst
}

// preload writes keys [0, Keys) in a random order, without sync.
func (r *runner) preload(db DB, progress func(string, int, int)) error {
	n := r.cfg.Keys
	order := permutation(n, r.cfg.Seed^0x10ad)
	key := make([]byte, 0, r.cfg.KeySize)
	for j, i := range order {
		key = r.key(key[:0], int(i))
		if err := db.Put(key, r.values.get(uint64(j))); err != nil {
			return err
		}
		if j%8192 == 0 {
			progress("load", j, n)
		}
	}
	progress("load", n, n)
	return nil
}

// permutation returns [0, n) shuffled by seed.
func permutation(n int, seed uint64) []int32 {
	p := make([]int32, n)
	for i := range p {
		p[i] = int32(i)
	}
	rng := rand.New(rand.NewPCG(seed, 0x9e3779b97f4a7c15))
	rng.Shuffle(n, func(i, j int) { p[i], p[j] = p[j], p[i] })
	return p
}

// prepare builds what the workload's distribution needs before the timed
// phase (and before the heap is measured).
func (r *runner) prepare() {
	w := r.cfg.Workload
	switch w.Dist {
	case Permuted:
		// A fill writes Ops keys; a preloaded workload walks the Keys
		// loaded (deleterandom: Ops is at most Keys).
		n := r.cfg.Keys
		if !w.Preload {
			n = r.cfg.Ops
		}
		r.perm = permutation(n, r.cfg.Seed^0x5eed)
	case Zipfian, Latest:
		r.zipf = newZipfian(r.cfg.Keys, zipfTheta)
	}
	r.insDone = map[int]bool{}
	r.visible.Store(int64(r.cfg.Keys))
	if slicesHas(w.Mix, OpDelete) {
		r.deleted = make([]bool, r.cfg.Keys)
	}
	for k := range r.hists {
		r.hists[k] = newHist()
	}
}

func slicesHas(mix []Share, op OpKind) bool {
	for _, s := range mix {
		if s.Op == op {
			return true
		}
	}
	return false
}

func newHist() *hdrhistogram.Histogram {
	// 1 ns to 100 s at 3 significant digits.
	return hdrhistogram.New(1, 100e9, 3)
}

// run issues cfg.Ops operations from cfg.Concurrency workers.
func (r *runner) run(db DB, progress func(string, int, int)) error {
	var wg sync.WaitGroup
	errs := make([]error, r.cfg.Concurrency)
	var stop atomic.Bool
	if r.cfg.MaxTime > 0 {
		t := time.AfterFunc(r.cfg.MaxTime, func() { stop.Store(true) })
		defer t.Stop()
	}
	for wk := 0; wk < r.cfg.Concurrency; wk++ {
		n := r.cfg.Ops / r.cfg.Concurrency
		if wk < r.cfg.Ops%r.cfg.Concurrency {
			n++
		}
		wg.Add(1)
		go func() {
			defer wg.Done()
			errs[wk] = r.worker(db, wk, n, &stop, progress)
			if errs[wk] != nil {
				stop.Store(true)
			}
		}()
	}
	wg.Wait()
	progress("run", r.cfg.Ops, r.cfg.Ops)
	return errors.Join(errs...)
}

// worker issues n operations.
func (r *runner) worker(db DB, wk, n int, stop *atomic.Bool, progress func(string, int, int)) error {
	w := r.cfg.Workload
	rng := rand.New(rand.NewPCG(r.cfg.Seed+uint64(wk), uint64(wk)*0x632be59bd9b4e019+1))
	var hists [numOpKinds]*hdrhistogram.Histogram
	for k := range hists {
		hists[k] = newHist()
	}
	defer func() {
		r.mu.Lock()
		for k, h := range hists {
			r.hists[k].Merge(h)
		}
		r.mu.Unlock()
	}()
	total := 0
	for _, s := range w.Mix {
		total += s.Weight
	}
	key := make([]byte, 0, r.cfg.KeySize)
	kv := int64(r.cfg.KeySize + r.cfg.ValueSize)
	for j := 0; j < n; {
		if stop.Load() {
			return nil
		}
		step := 1
		op := w.Mix[0].Op
		if len(w.Mix) > 1 {
			x := rng.IntN(total)
			for _, s := range w.Mix {
				if x < s.Weight {
					op = s.Op
					break
				}
				x -= s.Weight
			}
		}
		var err error
		start := time.Now()
		switch op {
		case OpRead:
			i := r.pick(rng)
			key = r.key(key[:0], i)
			var v []byte
			v, err = db.Get(key)
			r.gets.Add(1)
			if err == nil && len(v) != r.cfg.ValueSize {
				err = fmt.Errorf("get %q: %d-byte value, want %d", key, len(v), r.cfg.ValueSize)
			}
			if err != nil {
				err = fmt.Errorf("get %q: %w", key, err)
			}
			r.movedBytes.Add(kv)
		case OpReadMissing:
			key = r.missingKey(key[:0], rng.IntN(r.cfg.Keys))
			_, err = db.Get(key)
			r.gets.Add(1)
			if errors.Is(err, kvs.ErrNotFound) {
				err = nil
			} else {
				err = fmt.Errorf("get of the missing key %q: %v, want not found", key, err)
			}
		case OpUpdate:
			i := r.pick(rng)
			key = r.key(key[:0], i)
			err = db.Put(key, r.values.get(rng.Uint64()))
			r.userBytes.Add(kv)
			r.movedBytes.Add(kv)
		case OpInsert:
			var i int
			if w.Preload {
				i = r.cfg.Keys + int(r.inserted.Add(1)) - 1
			} else {
				i = r.next()
			}
			key = r.key(key[:0], i)
			err = db.Put(key, r.values.get(rng.Uint64()))
			r.userBytes.Add(kv)
			r.movedBytes.Add(kv)
			r.live.Add(1)
			if err == nil && w.Preload {
				r.insertDone(i)
			}
		case OpScan:
			step, err = r.scan(db, rng, key, n-j)
		case OpRMW:
			i := r.pick(rng)
			key = r.key(key[:0], i)
			var v []byte
			if v, err = db.Get(key); err == nil {
				r.gets.Add(1)
				// The new value is the old one with its first byte
				// changed: what a counter or a field update does.
				if len(v) > 0 {
					v[0]++
				}
				err = db.Put(key, v)
				r.userBytes.Add(kv)
				r.movedBytes.Add(2 * kv)
			}
			if err != nil {
				err = fmt.Errorf("read-modify-write %q: %w", key, err)
			}
		case OpDelete:
			i := r.next()
			key = r.key(key[:0], i)
			err = db.Delete(key)
			r.deleted[i] = true
			r.userBytes.Add(int64(r.cfg.KeySize))
			r.live.Add(-1)
		}
		hists[op].RecordValue(max(1, time.Since(start).Nanoseconds()))
		if err != nil {
			return err
		}
		j += step
		if d := r.done.Add(int64(step)); d/8192 != (d-int64(step))/8192 {
			progress("run", int(d), r.cfg.Ops)
		}
	}
	return nil
}

// pick returns the index of a loaded (or inserted) key by the workload's
// distribution.
func (r *runner) pick(rng *rand.Rand) int {
	switch r.cfg.Workload.Dist {
	case Zipfian:
		return scatter(r.zipf.next(rng), r.cfg.Keys)
	case Latest:
		// The newest key whose insert has returned is rank 0.
		newest := int(r.visible.Load()) - 1
		return max(0, newest-r.zipf.next(rng))
	case Sequential, Permuted:
		return r.next()
	}
	return rng.IntN(r.cfg.Keys)
}

// insertDone records that the Put of inserted key i returned, and moves
// visible past every key below which all inserts have returned: with
// several workers, inserts finish out of order.
func (r *runner) insertDone(i int) {
	r.insMu.Lock()
	defer r.insMu.Unlock()
	r.insDone[i] = true
	v := int(r.visible.Load())
	for r.insDone[v] {
		delete(r.insDone, v)
		v++
	}
	r.visible.Store(int64(v))
}

// next returns the next key of a Sequential or Permuted walk, wrapping
// around when the walk is longer than the key space.
func (r *runner) next() int {
	c := int(r.cursor.Add(1) - 1)
	if r.perm != nil {
		return int(r.perm[c%len(r.perm)])
	}
	return c
}

// scan runs one scan and returns the operations it counts for: readseq
// reads the next ScanMax keys (at most left) and counts each key as an
// operation; the others scan a range from a key picked by the
// distribution and count as one. Keys must come in order, and a scan
// that starts at a loaded key must find it.
func (r *runner) scan(db DB, rng *rand.Rand, key []byte, left int) (int, error) {
	w := r.cfg.Workload
	var start, length, ops int
	if w.Dist == Sequential {
		length = min(w.ScanMax, left)
		ops = length
		start = int(r.cursor.Add(int64(length))-int64(length)) % r.cfg.Keys
	} else {
		start = r.pick(rng)
		length = w.ScanMax
		if !w.ScanFixed {
			length = 1 + rng.IntN(w.ScanMax)
		}
		ops = 1
	}
	key = r.key(key[:0], start)
	var prev []byte
	var bad error
	n := 0
	err := db.Scan(key, length, func(k, v []byte) bool {
		if prev != nil && bytes.Compare(prev, k) >= 0 {
			bad = fmt.Errorf("scan from %q: key %q after %q", key, k, prev)
			return false
		}
		prev = append(prev[:0], k...)
		r.movedBytes.Add(int64(len(k) + len(v)))
		n++
		return true
	})
	if err == nil {
		err = bad
	}
	if err == nil && n == 0 {
		err = fmt.Errorf("scan from the loaded key %q found nothing", key)
	}
	return ops, err
}

// checkAfterReopen reads a sample of the keys written after the reopen:
// those live must be there, those deleted must not.
func (r *runner) checkAfterReopen(db DB) error {
	rng := rand.New(rand.NewPCG(r.cfg.Seed, 0xc4ec))
	written := r.cfg.Keys + int(r.inserted.Load())
	if !r.cfg.Workload.Preload {
		written = int(min(r.cursor.Load(), int64(r.cfg.Ops)))
	}
	key := make([]byte, 0, r.cfg.KeySize)
	for range min(written, 1000) {
		i := rng.IntN(written)
		if r.perm != nil && !r.cfg.Workload.Preload {
			i = int(r.perm[i]) // the fill wrote perm's first entries
		}
		key = r.key(key[:0], i)
		_, err := db.Get(key)
		switch {
		case r.deleted != nil && i < len(r.deleted) && r.deleted[i]:
			if !errors.Is(err, kvs.ErrNotFound) {
				return fmt.Errorf("get of deleted key %q: %v", key, err)
			}
		case err != nil:
			return fmt.Errorf("get %q: %w", key, err)
		}
	}
	return nil
}

// latencies summarizes the histograms.
func (r *runner) latencies() map[string]*Latency {
	out := map[string]*Latency{}
	all := newHist()
	for k, h := range r.hists {
		if h.TotalCount() == 0 {
			continue
		}
		all.Merge(h)
		out[OpKind(k).String()] = summarize(h)
	}
	out["all"] = summarize(all)
	return out
}

func summarize(h *hdrhistogram.Histogram) *Latency {
	l := &Latency{Count: h.TotalCount(), Mean: h.Mean(), P50: h.ValueAtQuantile(50), P95: h.ValueAtQuantile(95),
		P99: h.ValueAtQuantile(99), P999: h.ValueAtQuantile(99.9), Max: h.Max()}
	for _, q := range []float64{1, 5, 10, 20, 30, 40, 50, 60, 70, 80, 90, 95, 98, 99, 99.5, 99.9, 99.99, 100} {
		l.CDF = append(l.CDF, CDFPoint{Nanos: h.ValueAtQuantile(q), Fraction: q / 100})
	}
	return l
}

// sample records disk usage and engine counters every SampleEvery until
// the returned function is called.
func (r *runner) sample(db DB, st Statser, res *Result) (stop func()) {
	done := make(chan struct{})
	finished := make(chan struct{})
	start := time.Now()
	take := func() {
		s := Sample{Seconds: time.Since(start).Seconds(), Ops: r.done.Load(), BytesOnDisk: dirBytes(r.cfg.Dir)}
		if st != nil {
			k := st.Stats()
			if len(k.Levels) > 0 {
				s.L0Files = k.Levels[0].Files
			}
			s.CompactionDebt = compactionDebt(k.Levels)
			s.StallTime = k.StallTime
		}
		res.MaxL0Files = max(res.MaxL0Files, s.L0Files)
		res.MaxCompactionDebt = max(res.MaxCompactionDebt, s.CompactionDebt)
		res.Samples = append(res.Samples, s)
	}
	go func() {
		defer close(finished)
		t := time.NewTicker(r.cfg.SampleEvery)
		defer t.Stop()
		take()
		for {
			select {
			case <-done:
				take()
				return
			case <-t.C:
				take()
			}
		}
	}()
	return func() {
		close(done)
		<-finished
	}
}

// compactionDebt is the bytes the levels hold beyond what their scores
// allow: all of L0 once its score reaches 1 (a compaction of L0 takes it
// all), and for deeper levels the bytes over the target (a score is bytes
// over target, so the target is bytes/score).
func compactionDebt(levels []kvs.LevelStats) int64 {
	var debt int64
	for i, l := range levels {
		switch {
		case l.Score < 1:
		case i == 0:
			debt += l.Bytes
		default:
			debt += l.Bytes - int64(float64(l.Bytes)/l.Score)
		}
	}
	return debt
}

// valuePool hands out values: windows of a buffer of random bytes, which
// no engine's compression can shrink, so none is flattered by it.
type valuePool struct {
	buf  []byte
	size int
}

func newValuePool(seed uint64, size int) *valuePool {
	p := &valuePool{buf: make([]byte, 1<<20+size), size: size}
	rng := rand.New(rand.NewPCG(seed, 0xfa1))
	for i := 0; i+8 <= len(p.buf); i += 8 {
		x := rng.Uint64()
		for b := 0; b < 8; b++ {
			p.buf[i+b] = byte(x >> (8 * b))
		}
	}
	return p
}

// get returns a value picked by x. It must not be modified.
func (p *valuePool) get(x uint64) []byte {
	off := int(x % uint64(len(p.buf)-p.size+1))
	return p.buf[off : off+p.size : off+p.size]
}

// dirBytes returns the disk space the files under dir take (allocated
// blocks, so sparse and preallocated files count for what they use).
func dirBytes(dir string) int64 {
	var n int64
	filepath.WalkDir(dir, func(path string, d fs.DirEntry, err error) error {
		if err != nil || d.IsDir() {
			return nil
		}
		info, err := d.Info()
		if err != nil {
			return nil
		}
		if st, ok := info.Sys().(*syscall.Stat_t); ok {
			n += st.Blocks * 512
		} else {
			n += info.Size()
		}
		return nil
	})
	return n
}

// memInUse returns the Go heap in use and the process's anonymous
// resident memory (0 where /proc/self/status has none), after a
// collection that returns freed memory to the system.
func memInUse() (heap, rssAnon int64) {
	debug.FreeOSMemory()
	var m runtime.MemStats
	runtime.ReadMemStats(&m)
	b, err := os.ReadFile("/proc/self/status")
	if err != nil {
		return int64(m.HeapAlloc), 0
	}
	for _, line := range bytes.Split(b, []byte("\n")) {
		if v, ok := bytes.CutPrefix(line, []byte("RssAnon:")); ok {
			kb, _ := strconv.ParseInt(string(bytes.TrimSuffix(bytes.TrimSpace(v), []byte(" kB"))), 10, 64)
			rssAnon = kb << 10
		}
	}
	return int64(m.HeapAlloc), rssAnon
}

// settle polls /proc/self/io until the process has written next to
// nothing (under 16 KiB per quarter second: a test's log lines, not a
// flush or a compaction) for a second, or max has passed, and returns the
// last reading.
func settle(last procIO, max time.Duration) procIO {
	deadline := time.Now().Add(max)
	quiet := 0
	for quiet < 4 && time.Now().Before(deadline) {
		time.Sleep(250 * time.Millisecond)
		now := readProcIO()
		if now.wchar-last.wchar < 16<<10 {
			quiet++
		} else {
			quiet = 0
		}
		last = now
	}
	return last
}

// procIO is the process's I/O counters from /proc/self/io.
type procIO struct {
	ok                         bool
	rchar, wchar, syscr, syscw int64
}

func readProcIO() procIO {
	b, err := os.ReadFile("/proc/self/io")
	if err != nil {
		return procIO{}
	}
	p := procIO{ok: true}
	for _, line := range bytes.Split(b, []byte("\n")) {
		name, val, ok := bytes.Cut(line, []byte(": "))
		if !ok {
			continue
		}
		n, _ := strconv.ParseInt(string(val), 10, 64)
		switch string(name) {
		case "rchar":
			p.rchar = n
		case "wchar":
			p.wchar = n
		case "syscr":
			p.syscr = n
		case "syscw":
			p.syscw = n
		}
	}
	return p
}
