package raftstorage

import (
	"errors"
	"fmt"
	"sync"

	"github.com/kvs-lab/kvs"
	"github.com/kvs-lab/kvs/raftkv/raftkvpb"
	"go.etcd.io/raft/v3"
	"go.etcd.io/raft/v3/raftpb"
	"google.golang.org/protobuf/proto"
)

// InitIndex and InitTerm are the index and term at which a bootstrapped
// region's log starts (Update.Bootstrap): its first real entry has index
// InitIndex+1. Starting above zero means a peer created empty on another
// store (index 0) can never be caught up from the log alone, because the
// entries up to InitIndex exist nowhere: the leader sends it a snapshot,
// which carries the region's data and metadata. That is how a peer of a
// region born from a split, or added by a conf change, gets its data.
const (
	InitIndex = 5
	InitTerm  = 5
)

// ErrConflict is returned by Update.Commit when another Update changed the
// same state of the peer after this one began.
var ErrConflict = errors.New("raftstorage: update conflicts with one committed after it began")

// CorruptionError reports a stored state or log entry of a region that
// cannot be right: an undecodable value, a hole in the log, a commit index
// beyond the last entry. It matches kvs.ErrCorruption with errors.Is.
type CorruptionError struct {
	RegionID uint64
	Key      []byte // the engine key of the bad value
	Reason   string
}

func (e *CorruptionError) Error() string {
	return fmt.Sprintf("raftstorage: region %d: corrupt raft state at key %x: %s", e.RegionID, e.Key, e.Reason)
}

// Is makes errors.Is(err, kvs.ErrCorruption) true.
func (e *CorruptionError) Is(target error) bool { return target == kvs.ErrCorruption }

func corruptf(regionID uint64, key []byte, format string, args ...any) error {
	return &CorruptionError{RegionID: regionID, Key: key, Reason: fmt.Sprintf(format, args...)}
}

// state parts an Update may change; each has its own version so that
// Updates touching different parts do not conflict.
const (
	partRaft = iota
	partApply
	partRegion
	numParts
)

// Storage is one region peer's raft log and states in a store's engine. It
// implements raft.Storage. The engine is shared with the other peers of the
// store; Storage only touches its own region's local keys (and, through
// the snapshot functions, its region's data keys).
//
// Storage keeps a copy of the committed states in memory. Writes go
// through an Update (see NewUpdate), whose changes reach the in-memory
// copy only when Commit is called after the engine write succeeded.
//
// All methods are safe for concurrent use. Returned messages are copies
// the caller owns.
type Storage struct {
	engine   kvs.Engine
	regionID uint64

	mu sync.Mutex
	// The committed states. They are never modified in place: Commit
	// swaps in new ones, so a pointer read under mu stays valid.
	raftState  *raftkvpb.RaftLocalState
	applyState *raftkvpb.RaftApplyState
	region     *raftkvpb.RegionLocalState // nil: the peer has no region yet
	version    [numParts]uint64
	// snap is the region snapshot Snapshot last generated; see snapshot.go.
	snap *RegionSnapshot
	// cache holds the newest log entries; see entrycache.go.
	cache entryCache
}

var _ raft.Storage = (*Storage)(nil)

// Open loads regionID's states from engine and checks them: the states
// must decode and agree with each other, and the log must hold every entry
// from FirstIndex to LastIndex. A region with no stored state gives an
// empty Storage: the peer has no region yet (it was created by a message
// from a leader, and will get its region from a snapshot) unless the
// caller bootstraps it with Update.Bootstrap. Errors name the region and
// the key; damage is a *CorruptionError.
func Open(engine kvs.Engine, regionID uint64) (*Storage, error) {
	s := &Storage{engine: engine, regionID: regionID,
		cache: entryCache{maxEntries: defaultCacheEntries, maxBytes: defaultCacheBytes}}
	raftState := &raftkvpb.RaftLocalState{}
	applyState := &raftkvpb.RaftApplyState{}
	region := &raftkvpb.RegionLocalState{}
	hasRaft, err := s.load(RaftStateKey(regionID), raftState)
	if err != nil {
		return nil, err
	}
	hasApply, err := s.load(ApplyStateKey(regionID), applyState)
	if err != nil {
		return nil, err
	}
	hasRegion, err := s.load(RegionStateKey(regionID), region)
	if err != nil {
		return nil, err
	}
	if !hasRegion {
		region = nil
	}
	if err := s.check(raftState, hasRaft, applyState, hasApply, region); err != nil {
		return nil, err
	}
	s.raftState, s.applyState, s.region = raftState, applyState, region
	if err := s.checkLog(); err != nil {
		return nil, err
	}
	return s, nil
}

// load reads key into m, reporting whether it was there.
func (s *Storage) load(key []byte, m proto.Message) (bool, error) {
	v, err := s.engine.Get(key)
	if errors.Is(err, kvs.ErrNotFound) {
		return false, nil
	}
	if err != nil {
		return false, fmt.Errorf("raftstorage: region %d: read key %x: %w", s.regionID, key, err)
	}
	if err := proto.Unmarshal(v, m); err != nil {
		return false, corruptf(s.regionID, key, "cannot decode %s: %v", m.ProtoReflect().Descriptor().Name(), err)
	}
	return true, nil
}

// check verifies that the stored states agree with each other.
func (s *Storage) check(rs *raftkvpb.RaftLocalState, hasRaft bool, as *raftkvpb.RaftApplyState, hasApply bool, region *raftkvpb.RegionLocalState) error {
	id := s.regionID
	rsKey, asKey := RaftStateKey(id), ApplyStateKey(id)
	if region != nil {
		if got := region.GetRegion().GetId(); got != id {
			return corruptf(id, RegionStateKey(id), "region state is of region %d", got)
		}
		if region.GetState() == raftkvpb.PeerState_Tombstone && !hasApply {
			// A destroyed peer keeps only its tombstone. A newer peer of
			// the region, created on this store by a message and not yet
			// given a snapshot, may have voted since: a hard state, but
			// no log.
			if hasRaft && (rs.GetLastIndex() != 0 || rs.GetHardState().GetCommit() != 0) {
				return corruptf(id, rsKey, "raft log (last index %d, commit %d) beside a tombstone", rs.GetLastIndex(), rs.GetHardState().GetCommit())
			}
			return nil
		}
		if !hasRaft {
			return corruptf(id, rsKey, "region state present but raft state missing")
		}
		if !hasApply {
			return corruptf(id, asKey, "region state present but apply state missing")
		}
	} else {
		// A peer without a region may have voted (a persisted hard
		// state), but it has no log and has applied nothing.
		if hasApply {
			return corruptf(id, asKey, "apply state present but region state missing")
		}
		if rs.GetLastIndex() != 0 || rs.GetHardState().GetCommit() != 0 {
			return corruptf(id, rsKey, "raft log (last index %d, commit %d) without a region state", rs.GetLastIndex(), rs.GetHardState().GetCommit())
		}
	}
	last, commit := rs.GetLastIndex(), rs.GetHardState().GetCommit()
	applied, truncated := as.GetAppliedIndex(), as.GetTruncatedIndex()
	switch {
	case commit > last:
		return corruptf(id, rsKey, "hard state commit %d is beyond last index %d", commit, last)
	case truncated > last:
		return corruptf(id, asKey, "truncated index %d is beyond last index %d", truncated, last)
	case applied > commit:
		return corruptf(id, asKey, "applied index %d is beyond commit %d", applied, commit)
	case truncated > applied:
		return corruptf(id, asKey, "truncated index %d is beyond applied index %d", truncated, applied)
	case last == truncated && rs.GetLastTerm() != as.GetTruncatedTerm():
		return corruptf(id, rsKey, "empty log ends at term %d but the truncated entry has term %d", rs.GetLastTerm(), as.GetTruncatedTerm())
	}
	return nil
}

// checkLog reads the whole log and checks it runs without a hole from
// FirstIndex to LastIndex, each entry under the key of its own index, and
// that the last entry has the recorded last term.
func (s *Storage) checkLog() error {
	first, last := s.applyState.GetTruncatedIndex()+1, s.raftState.GetLastIndex()
	if last < first {
		return nil
	}
	want := first
	var lastTerm uint64
	err := s.scanEntries(s.engine, first, last+1, func(key []byte, e *raftpb.Entry) bool {
		lastTerm = e.GetTerm()
		want++
		return true
	})
	if err != nil {
		return err
	}
	if want != last+1 {
		return corruptf(s.regionID, EntryKey(s.regionID, want), "raft log entry %d is missing (log should run from %d to %d)", want, first, last)
	}
	if lastTerm != s.raftState.GetLastTerm() {
		return corruptf(s.regionID, EntryKey(s.regionID, last), "last entry has term %d, raft state says %d", lastTerm, s.raftState.GetLastTerm())
	}
	return nil
}

// scanEntries calls fn for each entry in [lo, hi) read from r in index
// order, stopping early when fn returns false. It checks that entries come
// without a hole starting at lo and that each entry's index matches its
// key; it does not report a missing tail (the caller counts).
func (s *Storage) scanEntries(r kvs.Reader, lo, hi uint64, fn func(key []byte, e *raftpb.Entry) bool) error {
	it, err := r.NewIter(&kvs.IterOptions{LowerBound: EntryKey(s.regionID, lo), UpperBound: EntryKey(s.regionID, hi)})
	if err != nil {
		return fmt.Errorf("raftstorage: region %d: read raft log: %w", s.regionID, err)
	}
	want := lo
	for ok := it.First(); ok; ok = it.Next() {
		key := it.Key()
		idx, err := entryIndex(s.regionID, key)
		if err != nil {
			_ = it.Close()
			return corruptf(s.regionID, clone(key), "%v", err)
		}
		if idx != want {
			_ = it.Close()
			return corruptf(s.regionID, EntryKey(s.regionID, want), "raft log entry %d is missing (next present is %d)", want, idx)
		}
		e := &raftpb.Entry{}
		if err := proto.Unmarshal(it.Value(), e); err != nil {
			_ = it.Close()
			return corruptf(s.regionID, clone(key), "cannot decode raft log entry %d: %v", idx, err)
		}
		if e.GetIndex() != idx {
			_ = it.Close()
			return corruptf(s.regionID, clone(key), "raft log entry under index %d says index %d", idx, e.GetIndex())
		}
		want++
		if !fn(key, e) {
			break
		}
	}
	if err := it.Close(); err != nil {
		return fmt.Errorf("raftstorage: region %d: read raft log: %w", s.regionID, err)
	}
	return nil
}

func clone(b []byte) []byte { return append([]byte(nil), b...) }

// RegionID returns the id of the region whose peer this Storage serves.
func (s *Storage) RegionID() uint64 { return s.regionID }

// Engine returns the engine the Storage reads and that its Updates are
// written to.
func (s *Storage) Engine() kvs.Engine { return s.engine }

// Initialized reports whether the peer has a live region: it was
// bootstrapped or has applied a snapshot, and was not destroyed since. An
// uninitialized peer has an empty log.
func (s *Storage) Initialized() bool {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.region != nil && s.region.GetState() != raftkvpb.PeerState_Tombstone
}

// RegionState returns a copy of the peer's region state, or nil if the
// peer has no region yet. A destroyed peer's state is a Tombstone.
func (s *Storage) RegionState() *raftkvpb.RegionLocalState {
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.region == nil {
		return nil
	}
	return proto.CloneOf(s.region)
}

// RaftState returns a copy of the committed RaftLocalState.
func (s *Storage) RaftState() *raftkvpb.RaftLocalState {
	s.mu.Lock()
	defer s.mu.Unlock()
	return proto.CloneOf(s.raftState)
}

// ApplyState returns a copy of the committed RaftApplyState. Its
// AppliedIndex is what a restarted RawNode takes as raft.Config.Applied.
func (s *Storage) ApplyState() *raftkvpb.RaftApplyState {
	s.mu.Lock()
	defer s.mu.Unlock()
	return proto.CloneOf(s.applyState)
}

// AppliedIndex returns the committed applied index.
func (s *Storage) AppliedIndex() uint64 {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.applyState.GetAppliedIndex()
}

// InitialState implements raft.Storage: the persisted HardState (nil if
// none was ever written) and the ConfState as of the applied index (empty
// if none).
func (s *Storage) InitialState() (*raftpb.HardState, *raftpb.ConfState, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	var hs *raftpb.HardState
	if s.raftState.GetHardState() != nil {
		hs = proto.CloneOf(s.raftState.GetHardState())
	}
	cs := &raftpb.ConfState{}
	if s.applyState.GetConfState() != nil {
		cs = proto.CloneOf(s.applyState.GetConfState())
	}
	return hs, cs, nil
}

// FirstIndex implements raft.Storage: the truncated index plus one.
func (s *Storage) FirstIndex() (uint64, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.applyState.GetTruncatedIndex() + 1, nil
}

// LastIndex implements raft.Storage: the index of the last entry written,
// or the truncated index if the log is empty.
func (s *Storage) LastIndex() (uint64, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.raftState.GetLastIndex(), nil
}

// Term implements raft.Storage. It returns raft.ErrCompacted for an index
// below the truncated index and raft.ErrUnavailable for one past the last
// index; the truncated index itself answers with the truncated term.
func (s *Storage) Term(i uint64) (uint64, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	truncated := s.applyState.GetTruncatedIndex()
	switch {
	case i == truncated:
		return s.applyState.GetTruncatedTerm(), nil
	case i < truncated:
		return 0, raft.ErrCompacted
	case i > s.raftState.GetLastIndex():
		return 0, raft.ErrUnavailable
	case i == s.raftState.GetLastIndex():
		return s.raftState.GetLastTerm(), nil
	}
	if e, _, ok := s.cache.get(i); ok {
		s.cache.hits++
		return e.GetTerm(), nil
	}
	s.cache.misses++
	e, err := s.readEntry(s.engine, i)
	if err != nil {
		return 0, err
	}
	return e.GetTerm(), nil
}

// readEntry reads one entry that must exist.
func (s *Storage) readEntry(r kvs.Reader, i uint64) (*raftpb.Entry, error) {
	key := EntryKey(s.regionID, i)
	v, err := r.Get(key)
	if errors.Is(err, kvs.ErrNotFound) {
		return nil, corruptf(s.regionID, key, "raft log entry %d is missing", i)
	}
	if err != nil {
		return nil, fmt.Errorf("raftstorage: region %d: read raft log entry %d: %w", s.regionID, i, err)
	}
	e := &raftpb.Entry{}
	if err := proto.Unmarshal(v, e); err != nil {
		return nil, corruptf(s.regionID, key, "cannot decode raft log entry %d: %v", i, err)
	}
	if e.GetIndex() != i {
		return nil, corruptf(s.regionID, key, "raft log entry under index %d says index %d", i, e.GetIndex())
	}
	return e, nil
}

// Entries implements raft.Storage: the entries [lo, hi), cut so that
// their total proto.Size stays within maxSize, but always at least one
// entry. It returns raft.ErrCompacted if lo is at or below the truncated
// index and raft.ErrUnavailable if hi is past LastIndex+1. The returned
// slice is new, but the newest entries come from the entry cache and are
// shared with it: the caller must not modify them (raft does not).
func (s *Storage) Entries(lo, hi, maxSize uint64) ([]*raftpb.Entry, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	if lo <= s.applyState.GetTruncatedIndex() {
		return nil, raft.ErrCompacted
	}
	if hi > s.raftState.GetLastIndex()+1 || lo > hi {
		return nil, raft.ErrUnavailable
	}
	if lo == hi {
		return nil, nil
	}
	ents := make([]*raftpb.Entry, 0, min(hi-lo, 64))
	var size uint64
	add := func(e *raftpb.Entry, n int) bool {
		size += uint64(n)
		if len(ents) > 0 && size > maxSize {
			return false
		}
		ents = append(ents, e)
		return true
	}
	// The entries below the cache's first come from the engine, one Get
	// each (an iterator would cost a sort of every key on bitcask's hash
	// keydir); the rest from the cache, which runs to the last index.
	next := lo
	cacheFirst := s.cache.firstIndex()
	for ; next < hi && (cacheFirst == 0 || next < cacheFirst); next++ {
		s.cache.misses++
		e, err := s.readEntry(s.engine, next)
		if err != nil {
			return nil, err
		}
		if !add(e, proto.Size(e)) {
			return ents, nil
		}
	}
	for ; next < hi; next++ {
		e, n, ok := s.cache.get(next)
		if !ok {
			// NB: a broken invariant, not bad data: the cache ends at the
			// last index, and hi is at most last+1.
			panic(fmt.Sprintf("raftstorage: region %d: entry %d is neither before the cache nor in it (cache %d..%d)",
				s.regionID, next, s.cache.firstIndex(), s.cache.lastIndex()))
		}
		s.cache.hits++
		if !add(e, n) {
			break
		}
	}
	return ents, nil
}

// CacheStats returns how many entries Entries and Term served from the
// entry cache (hits) and read from the engine (misses), and the entries
// and encoded bytes the cache holds now.
func (s *Storage) CacheStats() (hits, misses uint64, entries, bytes int) {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.cache.hits, s.cache.misses, len(s.cache.ents), s.cache.bytes
}
