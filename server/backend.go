package server

import (
	"errors"
	"fmt"
	"hash/maphash"
	"slices"
	"strconv"
	"sync"

	"github.com/kvs-lab/kvs"
	"github.com/kvs-lab/kvs/internal/redisint"
)

// Backend is what the RESP layer stores through: a local engine now
// (NewEngineBackend), a raft-replicated store later. Every method is safe
// for concurrent use.
//
// The interface speaks in operations, never in callbacks: a conditional or
// read-modify-write command travels as an Update value, so a replicated
// backend can put it in its log and apply it inside its state machine, in
// log order, on every replica. The engine backend instead applies it under
// a per-key lock (see engineBackend).
type Backend interface {
	// Name names the backend for INFO and the status page: the engine
	// name ("bitcask", "lsm") for the engine backend.
	Name() string
	// SyncMode is the durability every write gets.
	SyncMode() SyncMode
	// Get returns the value of key, or an error matching kvs.ErrNotFound.
	// The slice is the caller's.
	Get(key []byte) ([]byte, error)
	// Set stores value under key, ordered against Updates of the same key.
	Set(key, value []byte) error
	// Update applies u to key atomically with respect to every other write
	// of key, and reports what it saw and did.
	Update(key []byte, u Update) (UpdateResult, error)
	// MGet returns the values of keys as of one moment: never half of an
	// MSet or a multi-key Delete. An absent key's entry is nil; a present
	// empty value is a non-nil empty slice. When the values found pass
	// maxBytes in total (maxBytes <= 0: no limit), MGet stops and returns
	// ErrReplyTooLarge. The slices are the caller's.
	MGet(keys [][]byte, maxBytes int64) ([][]byte, error)
	// MSet stores pairs (key, value, key, value, ...) in one atomic batch.
	MSet(pairs [][]byte) error
	// Delete removes keys atomically and returns how many of them existed
	// (a key named twice counts once, as in Redis).
	Delete(keys [][]byte) (int, error)
	// Scan examines up to count keys >= start in key order and returns
	// those match accepts (match may be nil), plus the key to resume
	// from, or nil when the key space is exhausted. It stops early, with
	// a key to resume from, once the keys it returns hold maxBytes or
	// more (maxBytes <= 0: no limit). The slices are the caller's.
	Scan(start []byte, count int, maxBytes int64, match func(key []byte) bool) (keys [][]byte, next []byte, err error)
	// KeyCount returns the number of live keys, exactly (it may scan).
	KeyCount() (int64, error)
	// Stats returns the engine's counters and layout.
	Stats() kvs.Stats
	// InfoSections returns backend-specific INFO sections (the engine
	// backend returns none; raft adds its own). Names are lower case.
	InfoSections() []InfoSection
	// Compact runs the engine's maintenance (KVS.COMPACT).
	Compact() error
	// Close syncs and closes the backend. The server calls it once, at the
	// end of Shutdown.
	Close() error
}

// InfoSection is one "# Name" block of INFO output.
type InfoSection struct {
	Name   string // lower case, e.g. "raft"
	Fields []InfoField
}

// InfoField is one "key:value" line of INFO output.
type InfoField struct {
	Key, Value string
}

// UpdateOp is the kind of read-modify-write an Update performs.
type UpdateOp uint8

// The update operations.
const (
	// OpSet replaces the value with Update.Value (SET with NX, XX or GET,
	// GETSET).
	OpSet UpdateOp = iota
	// OpIncr adds Update.Delta to the value read as a decimal int64
	// (absent reads as 0): INCR, INCRBY, DECR, DECRBY.
	OpIncr
	// OpAppend appends Update.Value to the value (absent reads as empty).
	OpAppend
)

// Cond is a precondition on the key's existence.
type Cond uint8

// The preconditions.
const (
	CondNone Cond = iota // unconditional
	CondNX               // only if the key is absent
	CondXX               // only if the key exists
)

// Update is a single-key read-modify-write.
type Update struct {
	Op       UpdateOp
	Value    []byte // OpSet: the new value; OpAppend: the suffix
	Delta    int64  // OpIncr
	Cond     Cond   // OpSet only
	MaxValue int    // OpAppend: the longest value the result may be
}

// UpdateResult is what an Update saw and did.
type UpdateResult struct {
	Old     []byte // the value before (nil when absent)
	Existed bool   // the key existed before
	Applied bool   // the write happened (false when Cond failed)
	Int     int64  // OpIncr: the new value
	Len     int    // OpAppend: the new length
}

// RawError is an error a backend returns when the client must see its
// text as the whole RESP error line, with its own code instead of "ERR":
// "MOVED 0 127.0.0.1:6381" or "TRYAGAIN ..." from a replicated backend
// that is not the leader.
type RawError string

func (e RawError) Error() string { return string(e) }

// Update errors, each mapped to Redis's reply text by the RESP layer.
var (
	ErrNotInteger = errors.New("ERR value is not an integer or out of range")
	ErrOverflow   = errors.New("ERR increment or decrement would overflow")
	// ErrTooLarge is returned when an APPEND would make a value longer
	// than Update.MaxValue.
	ErrTooLarge = errors.New("ERR string exceeds maximum allowed size")
	// ErrReplyTooLarge is returned by MGet when the values pass its
	// maxBytes.
	ErrReplyTooLarge = errors.New("ERR reply too large")
)

// Apply computes what u does to a key whose current value is old (existed
// false: absent). It returns the value to store, unless res.Applied is
// false or err is set (ErrNotInteger, ErrOverflow, ErrTooLarge), in which
// case nothing is written. It is pure: every backend (the engine backend
// here, a replicated state machine later) should use it, so that all agree
// byte for byte. old is not modified.
func (u Update) Apply(old []byte, existed bool) (val []byte, res UpdateResult, err error) {
	res = UpdateResult{Old: old, Existed: existed}
	switch u.Op {
	case OpSet:
		if (u.Cond == CondNX && existed) || (u.Cond == CondXX && !existed) {
			return nil, res, nil
		}
		val = u.Value
	case OpIncr:
		var n int64
		if existed {
			n, err = parseInt64(old)
			if err != nil {
				return nil, res, ErrNotInteger
			}
		}
		if redisint.AddOverflows(n, u.Delta) {
			return nil, res, ErrOverflow
		}
		res.Int = n + u.Delta
		val = strconv.AppendInt(nil, res.Int, 10)
	case OpAppend:
		if len(old)+len(u.Value) > u.MaxValue {
			return nil, res, ErrTooLarge
		}
		val = append(old[:len(old):len(old)], u.Value...)
		res.Len = len(val)
	default:
		return nil, res, fmt.Errorf("server: unknown update op %d", u.Op)
	}
	res.Applied = true
	return val, res, nil
}

// parseInt64 parses a Redis integer (redisint.Parse), failing with
// ErrNotInteger.
func parseInt64(b []byte) (int64, error) {
	n, ok := redisint.Parse(b)
	if !ok {
		return 0, ErrNotInteger
	}
	return n, nil
}

// lockStripes is the number of per-key mutexes of the engine backend.
const lockStripes = 1024

// engineBackend stores through a local kvs.Engine.
//
// Atomicity: the engine makes each Put and Write atomic but has no
// read-modify-write, so INCR, APPEND and SET NX/XX/GET read and write
// under a striped per-key mutex. Every other write of a key (SET, MSET,
// DEL) takes the same stripe: otherwise a SET landing between an INCR's
// read and its write would be lost, overwritten by the INCR's stale
// result. Single-key reads (GET, STRLEN) and SCAN take no lock: the
// engine's reads are safe beside writes and see each write whole. A
// multi-key read (MGET, EXISTS) read-locks its keys' stripes (see MGet).
// A replicated backend needs no such locks: its leader orders these
// operations in its log, and it serves a multi-key read at one applied
// index.
type engineBackend struct {
	name  string
	e     kvs.Engine
	mode  SyncMode
	wo    kvs.WriteOptions
	seed  maphash.Seed
	locks [lockStripes]sync.RWMutex
}

// NewEngineBackend returns a Backend over e. name ("bitcask" or "lsm") is
// shown by INFO. Writes use kvs.WriteOptions{Sync: mode != SyncNone}; for
// SyncAlways the caller opens e with kvs.Options.DisableGroupCommit. Close
// closes e.
func NewEngineBackend(name string, e kvs.Engine, mode SyncMode) Backend {
	return &engineBackend{name: name, e: e, mode: mode, wo: kvs.WriteOptions{Sync: mode != SyncNone}, seed: maphash.MakeSeed()}
}

func (b *engineBackend) Name() string       { return b.name }
func (b *engineBackend) SyncMode() SyncMode { return b.mode }

func (b *engineBackend) stripe(key []byte) int {
	return int(maphash.Bytes(b.seed, key) % lockStripes)
}

func (b *engineBackend) Get(key []byte) ([]byte, error) { return b.e.Get(key) }

func (b *engineBackend) Set(key, value []byte) error {
	mu := &b.locks[b.stripe(key)]
	mu.Lock()
	defer mu.Unlock()
	return b.e.Put(key, value, b.wo)
}

func (b *engineBackend) Update(key []byte, u Update) (UpdateResult, error) {
	mu := &b.locks[b.stripe(key)]
	mu.Lock()
	defer mu.Unlock()
	old, err := b.e.Get(key)
	existed := err == nil
	if err != nil && !errors.Is(err, kvs.ErrNotFound) {
		return UpdateResult{}, err
	}
	val, res, err := u.Apply(old, existed)
	if err != nil || !res.Applied {
		return res, err
	}
	if err := b.e.Put(key, val, b.wo); err != nil {
		return UpdateResult{}, err
	}
	return res, nil
}

// lockKeys locks the stripes of keys in ascending order (so two multi-key
// writes cannot deadlock) and returns the unlock function.
func (b *engineBackend) lockKeys(keys [][]byte, step int) func() {
	idx := b.stripes(keys, step)
	for _, i := range idx {
		b.locks[i].Lock()
	}
	return func() {
		for _, i := range idx {
			b.locks[i].Unlock()
		}
	}
}

// rlockKeys is lockKeys for readers: it read-locks the stripes of keys in
// ascending order, so readers share them and exclude only writers.
func (b *engineBackend) rlockKeys(keys [][]byte) func() {
	idx := b.stripes(keys, 1)
	for _, i := range idx {
		b.locks[i].RLock()
	}
	return func() {
		for _, i := range idx {
			b.locks[i].RUnlock()
		}
	}
}

// stripes returns the sorted, distinct stripes of keys[0], keys[step], ...
func (b *engineBackend) stripes(keys [][]byte, step int) []int {
	idx := make([]int, 0, (len(keys)+step-1)/step)
	for i := 0; i < len(keys); i += step {
		idx = append(idx, b.stripe(keys[i]))
	}
	slices.Sort(idx)
	return slices.Compact(idx)
}

// MGet reads every key under its stripe's read lock, taken in ascending
// order like MSet's write locks. Every multi-key write (MSet, Delete)
// holds the write locks of all its keys until the engine has applied it,
// so no write can be half visible while the read holds them.
//
// NB: an engine snapshot (e.NewSnapshot) would also give one consistent
// view, but it is not cheap for every engine: bitcask's hash keydir copies
// the whole map per snapshot, O(keys in the store), while the stripes cost
// O(keys in the command) and only briefly hold up writers of those keys.
// A single key needs no lock: the engine makes each write atomic.
func (b *engineBackend) MGet(keys [][]byte, maxBytes int64) ([][]byte, error) {
	if len(keys) > 1 {
		unlock := b.rlockKeys(keys)
		defer unlock()
	}
	vals := make([][]byte, len(keys))
	var total int64
	for i, k := range keys {
		v, err := b.e.Get(k)
		switch {
		case errors.Is(err, kvs.ErrNotFound):
			continue
		case err != nil:
			return nil, err
		}
		if v == nil {
			v = []byte{}
		}
		total += int64(len(v))
		if maxBytes > 0 && total > maxBytes {
			return nil, ErrReplyTooLarge
		}
		vals[i] = v
	}
	return vals, nil
}

func (b *engineBackend) MSet(pairs [][]byte) error {
	var batch kvs.Batch
	for i := 0; i+1 < len(pairs); i += 2 {
		batch.Put(pairs[i], pairs[i+1])
	}
	unlock := b.lockKeys(pairs, 2)
	defer unlock()
	return b.e.Write(&batch, b.wo)
}

func (b *engineBackend) Delete(keys [][]byte) (int, error) {
	unlock := b.lockKeys(keys, 1)
	defer unlock()
	var batch kvs.Batch
	seen := make(map[string]bool, len(keys))
	n := 0
	for _, k := range keys {
		if seen[string(k)] {
			continue
		}
		seen[string(k)] = true
		_, err := b.e.Get(k)
		if errors.Is(err, kvs.ErrNotFound) {
			continue
		}
		if err != nil {
			return 0, err
		}
		batch.Delete(k)
		n++
	}
	if n == 0 {
		return 0, nil
	}
	return n, b.e.Write(&batch, b.wo)
}

func (b *engineBackend) Scan(start []byte, count int, maxBytes int64, match func([]byte) bool) ([][]byte, []byte, error) {
	it, err := b.e.NewIter(&kvs.IterOptions{LowerBound: start})
	if err != nil {
		return nil, nil, err
	}
	var keys [][]byte
	var next []byte
	var size int64
	n := 0
	for ok := it.First(); ok; ok = it.Next() {
		if n == count || (maxBytes > 0 && size >= maxBytes) {
			next = slices.Clone(it.Key())
			break
		}
		n++
		if match == nil || match(it.Key()) {
			keys = append(keys, slices.Clone(it.Key()))
			size += int64(len(it.Key()))
		}
	}
	if err := it.Close(); err != nil {
		return nil, nil, err
	}
	return keys, next, nil
}

func (b *engineBackend) KeyCount() (int64, error) {
	it, err := b.e.NewIter(nil)
	if err != nil {
		return 0, err
	}
	var n int64
	for ok := it.First(); ok; ok = it.Next() {
		n++
	}
	return n, it.Close()
}

func (b *engineBackend) Stats() kvs.Stats            { return b.e.Stats() }
func (b *engineBackend) InfoSections() []InfoSection { return nil }
func (b *engineBackend) Compact() error              { return b.e.Compact() }
func (b *engineBackend) Close() error                { return b.e.Close() }
