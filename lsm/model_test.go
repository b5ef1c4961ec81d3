package lsm

import (
	"errors"
	"flag"
	"fmt"
	"maps"
	"math/rand"
	"sort"
	"strconv"
	"testing"
	"time"

	"github.com/kvs-lab/kvs"
	"github.com/kvs-lab/kvs/internal/vfs"
)

var modelSeedFlag = flag.Int64("lsm.modelseed", 0, "seed of TestModelHeavyChurn (0: from the clock)")

// modelKeys is the size of the model test's key space: small, so that
// most writes overwrite or delete a key that some table already holds.
const modelKeys = 2000

// modelKey returns key i of the key space: "k0" to "k1999", keys of
// several lengths, some a prefix of others ("k1", "k10", "k100").
func modelKey(i int) string { return "k" + strconv.Itoa(i) }

// TestModelHeavyChurn runs a seeded random sequence of puts, deletes,
// batches, gets, bounded scans and iterator walks, snapshots, Compacts,
// clean reopens and crashes against the engine (on a MemFS, with tiny
// memtables and tables, so that flushes and compactions run all the time)
// and against a map. Every read must match the map; a snapshot must match
// the map as of when it was taken, however many flushes and compactions
// ran since; a clean reopen must keep every acknowledged write; a crash
// must keep every write before the last synced one and, of the writes
// after it, a prefix (whole batches only). Replay a failure with
// -lsm.modelseed.
func TestModelHeavyChurn(t *testing.T) {
	seed := *modelSeedFlag
	if seed == 0 {
		seed = time.Now().UnixNano()
	}
	t.Logf("seed %d (replay with -lsm.modelseed=%d)", seed, seed)
	ops := 50000
	if testing.Short() {
		ops = 10000
	}
	for i, policy := range []string{kvs.CompactionLeveled, kvs.CompactionTiered} {
		t.Run("policy="+policy, func(t *testing.T) {
			t.Parallel() // NB: a run is mostly one goroutine; two use both cores
			r := newModelRun(t, seed, int64(i), policy)
			r.run(ops)
		})
	}
}

// splitMix is a math/rand source that is cheap to seed (splitmix64),
// reseeded for each op.
type splitMix struct{ state uint64 }

func (s *splitMix) Seed(seed int64) { s.state = uint64(seed) }
func (s *splitMix) Int63() int64    { return int64(s.Uint64() >> 1) }
func (s *splitMix) Uint64() uint64 {
	s.state += 0x9e3779b97f4a7c15
	z := s.state
	z = (z ^ z>>30) * 0xbf58476d1ce4e5b9
	z = (z ^ z>>27) * 0x94d049bb133111eb
	return z ^ z>>31
}

// modelChange is one key's change by a write, with what it replaced, so
// that writes not yet durable can be undone.
type modelChange struct {
	key            string
	old, new       string
	hadOld, hasNew bool
}

// modelSnap is an open snapshot and the model as of when it was taken.
type modelSnap struct {
	s       kvs.Snapshot
	m       model
	op      int   // the op that took it
	flushes int64 // flushes and compactions run before it was taken
	compact int64
	checkAt int // the op at which it is checked and closed
}

// modelRun is the state of one randomized run.
type modelRun struct {
	t    *testing.T
	seed int64
	// top draws each op and a seed for rng, which draws everything the
	// op does: so the ops stay the same for a seed even when what an op
	// draws depends on the engine (what a crash kept).
	top    *rand.Rand
	rng    *rand.Rand
	src    *splitMix // rng's source
	op     int
	opName string

	fs *vfs.MemFS
	lo *Options
	db *DB
	m  model

	// keys is the key space, sorted.
	keys []string
	// pending holds the writes since the last durable point (a synced
	// write, an empty synced batch or a clean Close), one group per
	// batch, oldest first: a crash may lose a suffix of them.
	pending [][]modelChange
	snaps   []*modelSnap

	// Counters of the DBs closed so far; see flushes and compactions.
	closedFlushes, closedCompactions int64
	counts                           map[string]int
	lostInCrash, keptInCrash         int
	snapMaxFlushes, snapMaxCompact   int64
}

// newModelRun starts a run whose random choices come from seed and
// stream; failures name seed, which replays every subtest.
func newModelRun(t *testing.T, seed, stream int64, policy string) *modelRun {
	r := &modelRun{t: t, seed: seed, top: rand.New(rand.NewSource(seed*2 + stream)), fs: vfs.NewMem(), m: model{}, counts: map[string]int{}}
	for i := 0; i < modelKeys; i++ {
		r.keys = append(r.keys, modelKey(i))
	}
	sort.Strings(r.keys)
	r.src = &splitMix{uint64(r.top.Int63())}
	r.rng = rand.New(r.src)
	lo := smallOptions()
	lo.MemtableBytes = (8 + r.rng.Intn(25)) << 10 // 8 to 32 KiB
	lo.Policy = policy
	r.lo = lo
	t.Logf("policy %s, %d KiB memtables, %d KiB tables", policy, lo.MemtableBytes>>10, lo.Compaction.TargetFileSize>>10)
	r.db = r.open(r.fs)
	t.Cleanup(func() { r.db.Close() }) // after a failure; ErrClosed otherwise
	return r
}

// fatalf fails the test, naming the seed and the op so that the failure
// can be replayed.
func (r *modelRun) fatalf(format string, args ...any) {
	r.t.Helper()
	r.t.Fatalf("seed %d (replay with -lsm.modelseed=%d), op %d (%s): %s", r.seed, r.seed, r.op, r.opName, fmt.Sprintf(format, args...))
}

func (r *modelRun) open(fs vfs.FS) *DB {
	r.t.Helper()
	lo := *r.lo
	db, err := OpenWith(testDir, &kvs.Options{FS: fs, Logger: kvs.DiscardLogger()}, &lo)
	if err != nil {
		r.fatalf("open: %v", err)
	}
	return db
}

// flushes and compactions return the counts over every DB of the run.
func (r *modelRun) flushes() int64 { return r.closedFlushes + r.db.stats.flushes.Load() }
func (r *modelRun) compactions() int64 {
	return r.closedCompactions + r.db.Stats().Compactions
}

func (r *modelRun) run(ops int) {
	t := r.t
	start := time.Now()
	for r.op = 0; r.op < ops; r.op++ {
		r.step()
		if r.t.Failed() {
			return
		}
	}
	r.opName = "end"
	r.checkSnapshots(true)
	r.checkAll(r.db, r.m, "end")
	r.checkInvariants()
	if err := r.db.Compact(); err != nil {
		r.fatalf("Compact: %v", err)
	}
	r.checkAll(r.db, r.m, "after the last Compact")
	r.checkInvariants()
	flushes, compactions := r.flushes(), r.compactions()
	st := r.db.Stats()
	if err := r.db.Close(); err != nil {
		r.fatalf("Close: %v", err)
	}
	t.Logf("%s: %d ops in %s: %d flushes, %d compactions (write amplification of the last DB %.2f); "+
		"a snapshot lived through up to %d flushes and %d compactions; crashes kept %d unsynced batches and lost %d; ops %v",
		r.lo.Policy, ops, time.Since(start).Round(time.Millisecond), flushes, compactions, st.WriteAmp(),
		r.snapMaxFlushes, r.snapMaxCompact, r.keptInCrash, r.lostInCrash, r.counts)
	// NB: over two dozen seeds a -short run made at least 125 flushes and
	// 106 compactions (fewest with 30 KiB memtables); these bounds, about
	// half of that, catch options or an engine change that stop the tree
	// from changing shape.
	if flushes < 60 || compactions < 50 {
		t.Errorf("seed %d: only %d flushes and %d compactions ran; the test no longer churns the tree", r.seed, flushes, compactions)
	}
}

// step runs one random op.
func (r *modelRun) step() {
	n := r.top.Intn(10000)
	r.src.Seed(r.top.Int63())
	r.opName = "check snapshots"
	r.checkSnapshots(false)
	switch {
	case n < 1000:
		r.opName = "delete"
		r.del()
	case n < 1800:
		r.opName = "batch"
		r.batch()
	case n < 4300:
		r.opName = "get"
		r.get()
	case n < 4650:
		r.opName = "scan"
		r.scan(r.db, r.m, "db")
	case n < 5150:
		r.opName = "walk"
		r.walk(r.db, r.m, "db")
	case n < 5250:
		r.opName = "snapshot"
		r.snapshot()
	case n < 5270:
		r.opName = "compact"
		if err := r.db.Compact(); err != nil {
			r.fatalf("Compact: %v", err)
		}
	case n < 5275:
		r.opName = "reopen"
		r.reopen()
	case n < 5280:
		r.opName = "crash"
		r.crash()
	case n < 5350:
		r.opName = "sync"
		// An empty synced batch: every earlier write is durable.
		if err := r.db.Write(&kvs.Batch{}, kvs.Sync); err != nil {
			r.fatalf("empty synced Write: %v", err)
		}
		r.pending = r.pending[:0]
	default:
		r.opName = "put"
		r.put()
	}
	r.counts[r.opName]++
}

// randKey returns a key of the key space, a tenth of the time one of the
// first 100 keys (by index), which are overwritten all the time.
func (r *modelRun) randKey() string {
	if r.rng.Intn(10) == 0 {
		return modelKey(r.rng.Intn(100))
	}
	return modelKey(r.rng.Intn(modelKeys))
}

// randValue returns a value of 0 to 200 bytes, now and then one of up to
// 20 KiB, as large as a memtable. Each starts with the op index when it
// has room, so that values differ.
func (r *modelRun) randValue() string {
	n := r.rng.Intn(201)
	if r.rng.Intn(100) == 0 {
		n = 1000 + r.rng.Intn(20<<10)
	}
	b := make([]byte, n)
	for i := range b {
		b[i] = byte('a' + r.rng.Intn(26))
	}
	copy(b, strconv.Itoa(r.op)+":")
	return string(b)
}

// randSync returns kvs.Sync for one write in 20.
func (r *modelRun) randSync() kvs.WriteOptions {
	if r.rng.Intn(20) == 0 {
		return kvs.Sync
	}
	return kvs.NoSync
}

// apply records a write group that the engine acknowledged.
func (r *modelRun) apply(changes []modelChange, o kvs.WriteOptions) {
	for i := range changes {
		c := &changes[i]
		c.old, c.hadOld = r.m[c.key]
		if c.hasNew {
			r.m[c.key] = c.new
		} else {
			delete(r.m, c.key)
		}
	}
	if o.Sync {
		r.pending = r.pending[:0]
	} else {
		r.pending = append(r.pending, changes)
	}
}

func (r *modelRun) put() {
	k, v, o := r.randKey(), r.randValue(), r.randSync()
	if err := r.db.Put([]byte(k), []byte(v), o); err != nil {
		r.fatalf("Put(%q, %d bytes, sync %v): %v", k, len(v), o.Sync, err)
	}
	r.apply([]modelChange{{key: k, new: v, hasNew: true}}, o)
}

func (r *modelRun) del() {
	k, o := r.randKey(), r.randSync()
	if err := r.db.Delete([]byte(k), o); err != nil {
		r.fatalf("Delete(%q, sync %v): %v", k, o.Sync, err)
	}
	r.apply([]modelChange{{key: k}}, o)
}

// batch writes 1 to 30 puts and deletes, some of the same key: the last
// one wins.
func (r *modelRun) batch() {
	var b kvs.Batch
	var changes []modelChange
	for n := 1 + r.rng.Intn(30); len(changes) < n; {
		k := r.randKey()
		if len(changes) > 0 && r.rng.Intn(5) == 0 {
			k = changes[r.rng.Intn(len(changes))].key
		}
		if r.rng.Intn(3) == 0 {
			b.Delete([]byte(k))
			changes = append(changes, modelChange{key: k})
			continue
		}
		v := r.randValue()
		b.Put([]byte(k), []byte(v))
		changes = append(changes, modelChange{key: k, new: v, hasNew: true})
	}
	o := r.randSync()
	if err := r.db.Write(&b, o); err != nil {
		r.fatalf("Write(batch of %d, sync %v): %v", len(changes), o.Sync, err)
	}
	r.apply(changes, o)
}

func (r *modelRun) get() {
	k := r.randKey()
	r.checkGet(r.db, r.m, k, "db")
}

// checkGet compares rd.Get(k) with m.
func (r *modelRun) checkGet(rd kvs.Reader, m model, k, what string) {
	r.t.Helper()
	got, err := rd.Get([]byte(k))
	want, ok := m[k]
	switch {
	case !ok && !errors.Is(err, kvs.ErrNotFound):
		r.fatalf("%s: Get(%q) = %.40q, %v; want kvs.ErrNotFound", what, k, got, err)
	case ok && (err != nil || string(got) != want):
		r.fatalf("%s: Get(%q) = %.40q (%d bytes), %v; want %.40q (%d bytes)", what, k, got, len(got), err, want, len(want))
	}
}

// randBound returns a random iterator bound: nil, a key, or a string
// that falls between keys (or before or after all of them).
func (r *modelRun) randBound() []byte {
	switch n := r.rng.Intn(20); {
	case n < 4:
		return nil
	case n == 4:
		return []byte{} // lower: everything; upper: nothing
	case n < 12:
		return []byte(r.randKey())
	default:
		b := []byte{"jkl"[r.rng.Intn(3)]}
		for i := r.rng.Intn(5); i > 0; i-- {
			b = append(b, byte('0'+r.rng.Intn(10)))
		}
		return b
	}
}

// expected returns the entries of m in [lower, upper), sorted.
func (r *modelRun) expected(m model, lower, upper []byte) []string {
	lo, hi := 0, len(r.keys)
	if lower != nil {
		lo = sort.SearchStrings(r.keys, string(lower))
	}
	if upper != nil {
		hi = sort.SearchStrings(r.keys, string(upper))
	}
	var keys []string
	for i := lo; i < hi; i++ {
		if _, ok := m[r.keys[i]]; ok {
			keys = append(keys, r.keys[i])
		}
	}
	return keys
}

func boundString(b []byte) string {
	if b == nil {
		return "nil"
	}
	return strconv.Quote(string(b))
}

// newIter opens an iterator over [lower, upper) on rd and returns the
// keys of m it must yield.
func (r *modelRun) newIter(rd kvs.Reader, m model, what string) (kvs.Iterator, []string, string) {
	r.t.Helper()
	lower, upper := r.randBound(), r.randBound()
	if r.rng.Intn(2) == 0 {
		// A narrow range: up to 100 keys of the key space.
		i := r.rng.Intn(len(r.keys))
		lower, upper = []byte(r.keys[i]), nil
		if j := i + r.rng.Intn(100); j < len(r.keys) {
			upper = []byte(r.keys[j])
		}
	}
	desc := fmt.Sprintf("%s: iterator [%s, %s)", what, boundString(lower), boundString(upper))
	it, err := rd.NewIter(&kvs.IterOptions{LowerBound: lower, UpperBound: upper})
	if err != nil {
		r.fatalf("%s: NewIter: %v", desc, err)
	}
	return it, r.expected(m, lower, upper), desc
}

// checkAt compares the iterator's position with keys[i] (i out of range:
// exhausted).
func (r *modelRun) checkAt(it kvs.Iterator, valid bool, m model, keys []string, i int, desc string, moves func() string) {
	r.t.Helper()
	move := "?"
	if valid != (i >= 0 && i < len(keys)) || valid && (string(it.Key()) != keys[i] || string(it.Value()) != m[keys[i]]) || it.Error() != nil {
		move = moves() // NB: only on failure: formatting costs more than the move
	}
	if i < 0 || i >= len(keys) {
		if valid || it.Valid() {
			r.fatalf("%s: after %s at %q, want the end (%d keys in range)", desc, move, it.Key(), len(keys))
		}
		if err := it.Error(); err != nil {
			r.fatalf("%s: after %s: %v", desc, move, err)
		}
		return
	}
	if !valid {
		r.fatalf("%s: after %s the iterator is done (err %v); want %q at position %d of %d", desc, move, it.Error(), keys[i], i, len(keys))
	}
	if k, v := string(it.Key()), string(it.Value()); k != keys[i] || v != m[keys[i]] {
		r.fatalf("%s: after %s at %q = %.40q; want %q = %.40q (position %d of %d)", desc, move, k, v, keys[i], m[keys[i]], i, len(keys))
	}
}

// scan runs a bounded scan forward, then backward, over rd.
func (r *modelRun) scan(rd kvs.Reader, m model, what string) {
	r.t.Helper()
	it, keys, desc := r.newIter(rd, m, what)
	defer it.Close()
	i := 0
	for ok := it.First(); ; ok = it.Next() {
		r.checkAt(it, ok, m, keys, i, desc, func() string { return fmt.Sprintf("First and %d Next", i) })
		if !ok {
			break
		}
		i++
	}
	i = len(keys) - 1
	for ok := it.Last(); ; ok = it.Prev() {
		r.checkAt(it, ok, m, keys, i, desc, func() string { return fmt.Sprintf("Last and %d Prev", len(keys)-1-i) })
		if !ok {
			break
		}
		i--
	}
	if err := it.Close(); err != nil {
		r.fatalf("%s: Close: %v", desc, err)
	}
}

// walk makes random moves (seeks and steps both ways) with one iterator.
func (r *modelRun) walk(rd kvs.Reader, m model, what string) {
	r.t.Helper()
	it, keys, desc := r.newIter(rd, m, what)
	defer it.Close()
	i, valid := -1, false
	var moves []string
	for n := 1 + r.rng.Intn(40); n > 0; n-- {
		var ok bool
		var move string
		switch c := r.rng.Intn(10); {
		case !valid || c == 0:
			switch r.rng.Intn(4) {
			case 0:
				move, ok, i = "First", it.First(), 0
			case 1:
				move, ok, i = "Last", it.Last(), len(keys)-1
			case 2:
				k := r.randBound()
				move, ok = fmt.Sprintf("SeekGE(%s)", boundString(k)), it.SeekGE(k)
				i = sort.SearchStrings(keys, string(k))
			default:
				k := r.randBound()
				move, ok = fmt.Sprintf("SeekLT(%s)", boundString(k)), it.SeekLT(k)
				i = sort.SearchStrings(keys, string(k)) - 1
			}
		case c < 6:
			move, ok = "Next", it.Next()
			i++
		default:
			move, ok = "Prev", it.Prev()
			i--
		}
		moves = append(moves, move)
		if len(moves) > 8 {
			moves = moves[len(moves)-8:]
		}
		r.checkAt(it, ok, m, keys, i, desc, func() string { return fmt.Sprint(moves) })
		valid = i >= 0 && i < len(keys)
	}
	if err := it.Close(); err != nil {
		r.fatalf("%s: Close: %v", desc, err)
	}
}

// checkAll compares every key of the key space and a full scan both ways.
func (r *modelRun) checkAll(rd kvs.Reader, m model, what string) {
	r.t.Helper()
	for _, k := range r.keys {
		r.checkGet(rd, m, k, what)
	}
	r.scanAll(rd, m, what)
}

// scanAll scans all of rd forward, then backward.
func (r *modelRun) scanAll(rd kvs.Reader, m model, what string) {
	r.t.Helper()
	it, err := rd.NewIter(nil)
	if err != nil {
		r.fatalf("%s: NewIter: %v", what, err)
	}
	defer it.Close()
	keys := r.expected(m, nil, nil)
	desc := what + ": full scan"
	i := 0
	for ok := it.First(); ; ok = it.Next() {
		r.checkAt(it, ok, m, keys, i, desc, func() string { return fmt.Sprintf("First and %d Next", i) })
		if !ok {
			break
		}
		i++
	}
	i = len(keys) - 1
	for ok := it.Last(); ; ok = it.Prev() {
		r.checkAt(it, ok, m, keys, i, desc, func() string { return fmt.Sprintf("Last and %d Prev", len(keys)-1-i) })
		if !ok {
			break
		}
		i--
	}
	if err := it.Close(); err != nil {
		r.fatalf("%s: Close: %v", desc, err)
	}
}

// snapshot takes a snapshot, to be checked after 200 to 3000 more ops (or
// at the next reopen or crash).
func (r *modelRun) snapshot() {
	if len(r.snaps) >= 4 {
		return
	}
	s, err := r.db.NewSnapshot()
	if err != nil {
		r.fatalf("NewSnapshot: %v", err)
	}
	r.snaps = append(r.snaps, &modelSnap{
		s: s, m: maps.Clone(r.m), op: r.op,
		flushes: r.flushes(), compact: r.compactions(),
		checkAt: r.op + 200 + r.rng.Intn(2800),
	})
}

// checkSnapshots checks and closes the snapshots due (all if all): Get of
// every key written since and of a sample of the others, full and bounded
// scans and walks.
func (r *modelRun) checkSnapshots(all bool) {
	r.t.Helper()
	kept := r.snaps[:0]
	for _, s := range r.snaps {
		if !all && r.op < s.checkAt {
			kept = append(kept, s)
			continue
		}
		f, c := r.flushes()-s.flushes, r.compactions()-s.compact
		what := fmt.Sprintf("snapshot of op %d (%d flushes and %d compactions ago)", s.op, f, c)
		// Get every key written since, and a tenth of the others.
		for i, k := range r.keys {
			v, ok := r.m[k]
			sv, sok := s.m[k]
			if ok != sok || v != sv || (i+r.op)%10 == 0 {
				r.checkGet(s.s, s.m, k, what)
			}
		}
		r.scanAll(s.s, s.m, what)
		r.scan(s.s, s.m, what)
		r.walk(s.s, s.m, what)
		r.walk(s.s, s.m, what)
		if err := s.s.Close(); err != nil {
			r.fatalf("%s: Close: %v", what, err)
		}
		r.snapMaxFlushes, r.snapMaxCompact = max(r.snapMaxFlushes, f), max(r.snapMaxCompact, c)
	}
	r.snaps = kept
}

// closeDB closes the DB, adding its counters to the run's.
func (r *modelRun) closeDB() {
	r.t.Helper()
	f, c := r.db.stats.flushes.Load(), r.db.Stats().Compactions
	if err := r.db.Close(); err != nil {
		r.fatalf("Close: %v", err)
	}
	r.closedFlushes += f
	r.closedCompactions += c
}

// reopen closes the DB cleanly and opens it again: every acknowledged
// write must be there.
func (r *modelRun) reopen() {
	r.checkSnapshots(true)
	r.checkInvariants()
	r.closeDB()
	r.pending = r.pending[:0]
	r.db = r.open(r.fs)
	r.checkAll(r.db, r.m, "after reopen")
	r.checkInvariants()
}

// crash takes a crash image and reopens the DB on it. A third of the time
// the last write is synced: the image holds exactly the model. Otherwise
// the image is CrashClone's (only synced bytes) or CrashCloneRandom's
// (synced bytes and a random part of the rest, torn tails included): it
// must hold every write up to the last synced one and then a prefix of
// the later batches.
func (r *modelRun) crash() {
	r.checkSnapshots(true)
	var crashed *vfs.MemFS
	switch r.rng.Intn(3) {
	case 0:
		k, v := r.randKey(), r.randValue()
		if err := r.db.Put([]byte(k), []byte(v), kvs.Sync); err != nil {
			r.fatalf("synced Put(%q) before the crash: %v", k, err)
		}
		r.apply([]modelChange{{key: k, new: v, hasNew: true}}, kvs.Sync)
		crashed = r.fs.CrashClone()
	case 1:
		crashed = r.fs.CrashClone()
	default:
		crashed = r.fs.CrashCloneRandom(r.rng)
	}
	r.closeDB()
	r.fs = crashed
	r.db = r.open(r.fs)
	r.matchPrefix()
	r.checkAll(r.db, r.m, "after crash")
	r.checkInvariants()
}

// matchPrefix reads the recovered DB and finds the number of pending
// batches it holds: the model is set to the state after them. It fails
// when no prefix of the pending batches gives what the DB holds.
func (r *modelRun) matchPrefix() {
	r.t.Helper()
	got := model{}
	it, err := r.db.NewIter(nil)
	if err != nil {
		r.fatalf("after crash: NewIter: %v", err)
	}
	for ok := it.First(); ok; ok = it.Next() {
		got[string(it.Key())] = string(it.Value())
	}
	if err := it.Close(); err != nil {
		r.fatalf("after crash: scan: %v", err)
	}
	// Undo the pending batches: the model as of the last durable point.
	for i := len(r.pending) - 1; i >= 0; i-- {
		g := r.pending[i]
		for j := len(g) - 1; j >= 0; j-- {
			if c := g[j]; c.hadOld {
				r.m[c.key] = c.old
			} else {
				delete(r.m, c.key)
			}
		}
	}
	differs := func(k string) bool {
		a, aok := r.m[k]
		b, bok := got[k]
		return aok != bok || a != b
	}
	diff := 0
	for _, k := range r.keys {
		if differs(k) {
			diff++
		}
	}
	for k := range got {
		if i := sort.SearchStrings(r.keys, k); i == len(r.keys) || r.keys[i] != k {
			r.fatalf("after crash: the DB holds %q, a key never written", k)
		}
	}
	// Redo them one batch at a time until the model matches the DB.
	kept := -1
	if diff == 0 {
		kept = 0
	}
	for i := 0; kept < 0 && i < len(r.pending); i++ {
		for _, c := range r.pending[i] {
			before := differs(c.key)
			if c.hasNew {
				r.m[c.key] = c.new
			} else {
				delete(r.m, c.key)
			}
			if after := differs(c.key); after != before {
				if after {
					diff++
				} else {
					diff--
				}
			}
		}
		if diff == 0 {
			kept = i + 1
		}
	}
	if kept < 0 {
		for _, k := range r.keys {
			if differs(k) {
				a, aok := r.m[k]
				b, bok := got[k]
				r.fatalf("after crash: the DB matches no prefix of the %d unsynced batches; e.g. key %q: DB %.40q (present %v), model after all of them %.40q (present %v)",
					len(r.pending), k, b, bok, a, aok)
			}
		}
	}
	// The model now holds the state after kept batches; the rest were
	// lost with the crash.
	r.keptInCrash += kept
	r.lostInCrash += len(r.pending) - kept
	r.pending = r.pending[:0]
}

// checkInvariants checks the current version's invariants (ordered,
// non-overlapping levels below L0). The read state is installed whole, so
// its version is one the MANIFEST recorded.
func (r *modelRun) checkInvariants() {
	r.t.Helper()
	db := r.db
	db.mu.Lock()
	v := db.rs.version()
	db.mu.Unlock()
	if err := v.Check(); err != nil {
		r.fatalf("version invariants: %v", err)
	}
}
