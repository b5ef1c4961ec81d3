package raftstorage

import (
	"errors"
	"fmt"

	"github.com/kvs-lab/kvs"
	"github.com/kvs-lab/kvs/raftkv/raftkvpb"
	"go.etcd.io/raft/v3"
	"go.etcd.io/raft/v3/raftpb"
	"google.golang.org/protobuf/proto"
)

// Update collects one round's changes to a peer's storage in two places at
// once: the engine writes go into a kvs.Batch the caller owns, and the new
// states into the Update itself. Nothing the Storage shows changes until
// Commit. The store loop uses it in this order for each Ready:
//
//	wb := new(kvs.Batch)
//	for each peer with a Ready rd:
//		u := peer.storage.NewUpdate(wb)
//		u.ApplySnapshot(...)             // if rd.Snapshot is not empty
//		u.Append(rd.Entries)
//		u.SetHardState(rd.HardState)
//	engine.Write(wb, kvs.Sync)           // one write, one fsync, all peers
//	for each u: u.Commit()               // only if the write succeeded
//	send rd.Messages, apply rd.CommittedEntries (another Update:
//	data writes, SetApplied, SetConfState), then RawNode.Advance
//
// Why two phases: raft reads the Storage (Term, Entries, LastIndex) to
// decide what to send and what is committed. If the Storage changed before
// the batch was durable, a failed write would leave raft believing in
// entries that are not on disk. With an Update a failed write needs no
// undo: drop the Update and the batch, and the Storage still describes
// exactly what the engine holds.
//
// An Update works on a copy of the states taken by NewUpdate, so two
// Updates of the same Storage must not be open at once if they change the
// same state (Commit then returns ErrConflict). The raft state (log and
// hard state), the apply state and the region state are separate: an
// Update that only applies entries does not conflict with one that only
// appends them. An Update is not safe for concurrent use.
type Update struct {
	s  *Storage
	wb *kvs.Batch

	raftState  *raftkvpb.RaftLocalState
	applyState *raftkvpb.RaftApplyState
	region     *raftkvpb.RegionLocalState
	base       [numParts]uint64
	dirty      [numParts]bool
	done       bool
	// truncated is set by CompactTo and ApplySnapshot: the Storage's
	// cached snapshot may be stale once the Update commits.
	truncated bool
	// What Commit does to the entry cache, in this order: empty it (a
	// snapshot or Destroy replaced the log), add the appended runs, trim
	// it to compactedTo (log GC).
	resetCache  bool
	appended    [][]*raftpb.Entry
	compactedTo uint64
}

// NewUpdate starts an Update that writes into wb. wb may be shared with
// the Updates of other peers of the same engine.
func (s *Storage) NewUpdate(wb *kvs.Batch) *Update {
	s.mu.Lock()
	defer s.mu.Unlock()
	u := &Update{
		s:          s,
		wb:         wb,
		raftState:  proto.CloneOf(s.raftState),
		applyState: proto.CloneOf(s.applyState),
		base:       s.version,
	}
	if s.region != nil {
		u.region = proto.CloneOf(s.region)
	}
	return u
}

func (u *Update) errorf(format string, args ...any) error {
	return fmt.Errorf("raftstorage: region %d: %s", u.s.regionID, fmt.Sprintf(format, args...))
}

// put marshals m into wb under key. The messages are generated protobuf
// types whose encoding cannot fail.
func (u *Update) put(key []byte, m proto.Message) {
	v, err := proto.Marshal(m)
	if err != nil {
		panic(fmt.Sprintf("raftstorage: marshal %T: %v", m, err))
	}
	u.wb.Put(key, v)
}

// NB: the state keys are written on every change, so an Update that, say,
// appends and then sets the hard state puts the raft state key twice into
// the batch. Both engines apply a batch in order (the later put wins), and
// writing at once keeps the batch complete without a separate "flush" step
// the caller could forget.

func (u *Update) setRaftState() {
	u.dirty[partRaft] = true
	u.put(RaftStateKey(u.s.regionID), u.raftState)
}

func (u *Update) setApplyState() {
	u.dirty[partApply] = true
	u.put(ApplyStateKey(u.s.regionID), u.applyState)
}

func (u *Update) setRegionState() {
	u.dirty[partRegion] = true
	u.put(RegionStateKey(u.s.regionID), u.region)
}

// Bootstrap makes an empty peer the first peer of region: the log starts
// after InitIndex/InitTerm (see InitIndex for why not at zero), the hard
// state has term InitTerm and commit InitIndex, the region's peers are the
// voters and the region is Normal. Every store of a new region's initial
// peers bootstraps it the same way. It fails if the Storage holds any
// state or region.Id is not the Storage's region.
func (u *Update) Bootstrap(region *raftkvpb.Region) error {
	if region.GetId() != u.s.regionID {
		return u.errorf("bootstrap with region %d", region.GetId())
	}
	if u.region != nil || u.raftState.GetHardState() != nil || u.raftState.GetLastIndex() != 0 {
		return u.errorf("bootstrap of a peer that already has raft state")
	}
	if len(region.GetPeers()) == 0 {
		return u.errorf("bootstrap of a region without peers")
	}
	cs := &raftpb.ConfState{}
	for _, p := range region.GetPeers() {
		cs.Voters = append(cs.Voters, p.GetId())
	}
	u.raftState = &raftkvpb.RaftLocalState{
		HardState: &raftpb.HardState{Term: proto.Uint64(InitTerm), Commit: proto.Uint64(InitIndex)},
		LastIndex: InitIndex,
		LastTerm:  InitTerm,
	}
	u.applyState = &raftkvpb.RaftApplyState{
		AppliedIndex:   InitIndex,
		TruncatedIndex: InitIndex,
		TruncatedTerm:  InitTerm,
		ConfState:      cs,
	}
	u.region = &raftkvpb.RegionLocalState{Region: proto.CloneOf(region), State: raftkvpb.PeerState_Normal}
	u.setRaftState()
	u.setApplyState()
	u.setRegionState()
	return nil
}

// Append adds entries (raft's Ready.Entries) to the log. Entries at or
// below the truncated index are skipped. If the entries overwrite part of
// the log (a new leader replacing a conflicting tail), every old entry
// past the new last entry is deleted, so the log on disk always ends where
// LastIndex says. entries must be consecutive and must not leave a gap
// after the current last index. After Commit the Storage's entry cache
// holds the entries themselves, so they must not be modified afterwards
// (raft never modifies an entry it has handed out in a Ready).
func (u *Update) Append(entries []*raftpb.Entry) error {
	if len(entries) == 0 {
		return nil
	}
	first := u.applyState.GetTruncatedIndex() + 1
	for i, e := range entries {
		if want := entries[0].GetIndex() + uint64(i); e.GetIndex() != want {
			return u.errorf("append: entry %d has index %d, want %d (entries must be consecutive)", i, e.GetIndex(), want)
		}
	}
	newLast := entries[len(entries)-1].GetIndex()
	if newLast < first {
		return nil // all compacted already
	}
	if entries[0].GetIndex() < first {
		entries = entries[first-entries[0].GetIndex():]
	}
	oldLast := u.raftState.GetLastIndex()
	if entries[0].GetIndex() > oldLast+1 {
		return u.errorf("append: entry %d would leave a gap after last index %d", entries[0].GetIndex(), oldLast)
	}
	if c := u.raftState.GetHardState().GetCommit(); c > newLast {
		// Raft never truncates committed entries; refusing keeps a
		// broken caller from writing a state Open would reject.
		return u.errorf("append: truncating the log to %d would drop committed entry %d", newLast, c)
	}
	// NB: all checks are done before the first write to wb, so an error
	// leaves the batch as it was.
	for _, e := range entries {
		u.put(EntryKey(u.s.regionID, e.GetIndex()), e)
	}
	for i := newLast + 1; i <= oldLast; i++ {
		u.wb.Delete(EntryKey(u.s.regionID, i))
	}
	u.raftState.LastIndex = newLast
	u.raftState.LastTerm = entries[len(entries)-1].GetTerm()
	u.appended = append(u.appended, entries)
	u.setRaftState()
	return nil
}

// SetHardState records raft's HardState (Ready.HardState). A nil or empty
// hs changes nothing. Its commit index must not pass the last index.
func (u *Update) SetHardState(hs *raftpb.HardState) error {
	if raft.IsEmptyHardState(hs) {
		return nil
	}
	if hs.GetCommit() > u.raftState.GetLastIndex() {
		return u.errorf("hard state commit %d is beyond last index %d", hs.GetCommit(), u.raftState.GetLastIndex())
	}
	u.raftState.HardState = proto.CloneOf(hs)
	u.setRaftState()
	return nil
}

// SetApplied records that the entries up to index have been applied. The
// caller puts the data writes of those entries into the same batch, so
// that the data and the applied index always agree on disk. index must be
// within [truncated index, commit index].
func (u *Update) SetApplied(index uint64) error {
	if index < u.applyState.GetTruncatedIndex() {
		return u.errorf("applied index %d is below truncated index %d", index, u.applyState.GetTruncatedIndex())
	}
	if c := u.raftState.GetHardState().GetCommit(); index > c {
		return u.errorf("applied index %d is beyond commit %d", index, c)
	}
	u.applyState.AppliedIndex = index
	u.setApplyState()
	return nil
}

// SetConfState records the membership that results from applying a conf
// change (what RawNode.ApplyConfChange returns). Write it in the batch
// that applies the conf change entry, with SetApplied.
func (u *Update) SetConfState(cs *raftpb.ConfState) {
	u.applyState.ConfState = proto.CloneOf(cs)
	u.setApplyState()
}

// SetRegion records new region metadata (after a conf change or, later, a
// split) with the given state.
func (u *Update) SetRegion(region *raftkvpb.Region, state raftkvpb.PeerState) error {
	if region.GetId() != u.s.regionID {
		return u.errorf("set region %d", region.GetId())
	}
	u.region = &raftkvpb.RegionLocalState{Region: proto.CloneOf(region), State: state}
	u.setRegionState()
	return nil
}

// CompactTo deletes the log entries up to and including index (log GC)
// and records index and its term as the truncated state, so FirstIndex
// becomes index+1. index must be at most the applied index. It returns
// raft.ErrCompacted if index is already truncated. The entries are found
// by iterating the engine's keys of the range, as the engines have no
// range deletion; a stray older key is deleted too.
func (u *Update) CompactTo(index uint64) error {
	truncated := u.applyState.GetTruncatedIndex()
	if index <= truncated {
		return raft.ErrCompacted
	}
	if applied := u.applyState.GetAppliedIndex(); index > applied {
		return u.errorf("compact to %d beyond applied index %d", index, applied)
	}
	s := u.s
	// NB: the log's keys are dense from truncated+1 to the last index
	// (Open refuses a hole), so the keys to delete are known without an
	// iterator; on bitcask's hash keydir an iterator would sort every key
	// of the engine, once per log GC. Only the entry at index is read, for
	// its term.
	v, err := s.engine.Get(EntryKey(s.regionID, index))
	switch {
	case errors.Is(err, kvs.ErrNotFound):
		return corruptf(s.regionID, EntryKey(s.regionID, index), "raft log entry %d is missing", index)
	case err != nil:
		return u.errorf("compact: %v", err)
	}
	e := &raftpb.Entry{}
	if err := proto.Unmarshal(v, e); err != nil {
		return corruptf(s.regionID, EntryKey(s.regionID, index), "cannot decode raft log entry %d: %v", index, err)
	}
	if e.GetIndex() != index {
		return corruptf(s.regionID, EntryKey(s.regionID, index), "raft log entry stored under index %d says %d", index, e.GetIndex())
	}
	term := e.GetTerm()
	for i := truncated + 1; i <= index; i++ {
		u.wb.Delete(EntryKey(s.regionID, i))
	}
	u.applyState.TruncatedIndex = index
	u.applyState.TruncatedTerm = term
	u.truncated = true
	u.compactedTo = index
	u.setApplyState()
	return nil
}

// ApplySnapshot records the bookkeeping of a raft snapshot (Ready.Snapshot)
// with metadata meta for region: the whole old log is deleted, the
// snapshot's index and term become the truncated state, the last index
// and the applied index; the hard state's commit rises to the snapshot
// index if below it; the snapshot's ConfState and region are stored. The
// region's data comes separately: put ApplySnapshotData's writes into the
// same batch. It returns raft.ErrSnapOutOfDate if the snapshot is not
// newer than what the peer has applied.
func (u *Update) ApplySnapshot(meta *raftpb.SnapshotMetadata, region *raftkvpb.Region) error {
	if region.GetId() != u.s.regionID {
		return u.errorf("snapshot of region %d", region.GetId())
	}
	index, term := meta.GetIndex(), meta.GetTerm()
	if index == 0 {
		return u.errorf("snapshot with index 0")
	}
	if index <= u.applyState.GetAppliedIndex() {
		return raft.ErrSnapOutOfDate
	}
	for i := u.applyState.GetTruncatedIndex() + 1; i <= u.raftState.GetLastIndex(); i++ {
		u.wb.Delete(EntryKey(u.s.regionID, i))
	}
	hs := proto.CloneOf(u.raftState.GetHardState())
	if hs == nil {
		hs = &raftpb.HardState{}
	}
	if hs.GetCommit() < index {
		hs.Commit = proto.Uint64(index)
	}
	if hs.GetTerm() < term {
		hs.Term = proto.Uint64(term)
	}
	u.raftState = &raftkvpb.RaftLocalState{HardState: hs, LastIndex: index, LastTerm: term}
	cs := proto.CloneOf(meta.GetConfState())
	if cs == nil {
		cs = &raftpb.ConfState{}
	}
	u.applyState = &raftkvpb.RaftApplyState{AppliedIndex: index, TruncatedIndex: index, TruncatedTerm: term, ConfState: cs}
	u.region = &raftkvpb.RegionLocalState{Region: proto.CloneOf(region), State: raftkvpb.PeerState_Normal}
	u.truncated = true
	u.resetCache, u.appended, u.compactedTo = true, nil, 0
	u.setRaftState()
	u.setApplyState()
	u.setRegionState()
	return nil
}

// Commit makes the Update's states the Storage's, after the batch holding
// its writes was written to the engine successfully. Call it before raft
// reads the Storage again (before RawNode.Advance). If the write failed,
// do not call Commit: drop the Update. Commit fails with ErrConflict,
// changing nothing, if another Update committed a change to the same state
// after this one began; a second Commit of the same Update fails too.
func (u *Update) Commit() error {
	s := u.s
	s.mu.Lock()
	defer s.mu.Unlock()
	if u.done {
		return u.errorf("update committed twice")
	}
	for p := range numParts {
		if u.dirty[p] && s.version[p] != u.base[p] {
			return fmt.Errorf("region %d: %w", s.regionID, ErrConflict)
		}
	}
	u.done = true
	if u.dirty[partRaft] {
		s.raftState = u.raftState
		s.version[partRaft]++
	}
	if u.dirty[partApply] {
		s.applyState = u.applyState
		s.version[partApply]++
	}
	if u.dirty[partRegion] {
		s.region = u.region
		s.version[partRegion]++
	}
	if u.truncated {
		s.dropStaleSnapshotLocked()
	}
	if u.resetCache {
		s.cache.clear()
	}
	for _, ents := range u.appended {
		s.cache.append(ents)
	}
	if u.compactedTo != 0 {
		s.cache.compactTo(u.compactedTo)
	}
	return nil
}

// Destroy removes the peer from the store: every log entry, the raft
// state and the apply state are deleted, and, if deleteData, every key of
// the data range of the peer's region; the region state becomes a
// Tombstone holding tombstone, the region as the peer last knew it (its
// NextPeerId tells which peer ids of the region are dead on this store).
// An uninitialized peer has no data: pass deleteData false. The keys are
// found by iterating the engine, so put nothing else for this region's
// keys into wb. After Commit the Storage is that of a destroyed peer;
// Open shows only the tombstone.
func (u *Update) Destroy(tombstone *raftkvpb.Region, deleteData bool) error {
	s := u.s
	if tombstone.GetId() != s.regionID {
		return u.errorf("destroy with region %d", tombstone.GetId())
	}
	var keys [][]byte
	collect := func(lower, upper []byte) error {
		it, err := s.engine.NewIter(&kvs.IterOptions{LowerBound: lower, UpperBound: upper})
		if err != nil {
			return u.errorf("destroy: %v", err)
		}
		for ok := it.First(); ok; ok = it.Next() {
			keys = append(keys, clone(it.Key()))
		}
		if err := it.Close(); err != nil {
			return u.errorf("destroy: %v", err)
		}
		return nil
	}
	// The whole raft prefix of the region: log entries, raft and apply
	// state.
	prefix := regionRaftPrefix(s.regionID)
	if err := collect(prefix, append(clone(prefix), 0xff)); err != nil {
		return err
	}
	if deleteData && u.region != nil {
		lower, upper := DataRange(u.region.GetRegion().GetStartKey(), u.region.GetRegion().GetEndKey())
		if err := collect(lower, upper); err != nil {
			return err
		}
	}
	// NB: all reads are done before the first write to wb, so an error
	// leaves the batch as it was.
	for _, k := range keys {
		u.wb.Delete(k)
	}
	u.wb.Delete(RaftStateKey(s.regionID))
	u.wb.Delete(ApplyStateKey(s.regionID))
	u.raftState = &raftkvpb.RaftLocalState{}
	u.applyState = &raftkvpb.RaftApplyState{}
	u.region = &raftkvpb.RegionLocalState{Region: proto.CloneOf(tombstone), State: raftkvpb.PeerState_Tombstone}
	u.dirty[partRaft], u.dirty[partApply] = true, true
	u.truncated = true
	u.resetCache, u.appended, u.compactedTo = true, nil, 0
	u.setRegionState()
	return nil
}
