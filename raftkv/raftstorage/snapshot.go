package raftstorage

import (
	"bytes"
	"errors"
	"fmt"
	"io"

	"github.com/kvs-lab/kvs"
	"github.com/kvs-lab/kvs/raftkv/raftkvpb"
	"go.etcd.io/raft/v3"
	"go.etcd.io/raft/v3/raftpb"
	"google.golang.org/protobuf/proto"
)

// DefaultChunkBytes is the size of the data chunks WriteSnapshotData cuts
// when given no size: the key and value bytes of one SnapshotData.
const DefaultChunkBytes = 1 << 20

// ErrSnapshotGone is returned by AcquireSnapshot when the Storage no
// longer holds a snapshot at the requested index (a newer one replaced
// it, or log GC made it useless). The sender reports the snapshot as
// failed to raft, which asks again.
var ErrSnapshotGone = errors.New("raftstorage: snapshot no longer held")

// RegionSnapshot is a snapshot of one region pinned to one engine
// snapshot: the raft metadata, the region and the apply state were all
// read from that engine snapshot, and the data streamed by WriteChunks
// comes from it too, so the data is exactly the state machine as of the
// metadata's index.
//
// A RegionSnapshot is reference counted: the Storage holds one reference
// while it is its current snapshot, AcquireSnapshot adds one, Release
// drops one; the engine snapshot is closed when the last goes.
type RegionSnapshot struct {
	s      *Storage
	meta   *raftpb.SnapshotMetadata
	header *raftkvpb.SnapshotHeader // Region and ApplyState; no Message
	snap   kvs.Snapshot
	refs   int // guarded by s.mu
}

// Snapshot implements raft.Storage. It returns the Storage's current
// region snapshot, first generating one if there is none or log GC has
// passed it (its index is below the truncated index, so a follower given
// it could not continue from the log): an engine snapshot is taken and
// the apply state and region read from it; the metadata's index is that
// applied index, its term the term of that entry, its ConfState the one
// stored with the apply state. The returned Snapshot's Data is a
// marshalled raftkvpb.SnapshotHeader (region and apply state, no
// message), so the receiver learns the region from the raft message alone
// (SnapshotHeaderOf); the region's data travels separately, streamed from
// AcquireSnapshot(index). An uninitialized or destroyed peer returns
// raft.ErrSnapshotTemporarilyUnavailable. A snapshot whose ConfState is
// not the current one (a conf change applied since) is replaced too.
func (s *Storage) Snapshot() (*raftpb.Snapshot, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	// NB: a snapshot taken before the last conf change applied is
	// regenerated too: sent to a peer added by that change, it would not
	// list the peer, and raft would refuse it (and be sent it again).
	if s.snap == nil || s.snap.meta.GetIndex() < s.applyState.GetTruncatedIndex() ||
		!sameConfState(s.snap.meta.GetConfState(), s.applyState.GetConfState()) {
		rs, err := s.generateLocked()
		if err != nil {
			return nil, err
		}
		if s.snap != nil {
			s.releaseLocked(s.snap)
		}
		s.snap = rs
	}
	data, err := proto.Marshal(s.snap.header)
	if err != nil {
		return nil, fmt.Errorf("raftstorage: region %d: marshal snapshot header: %w", s.regionID, err)
	}
	return &raftpb.Snapshot{Metadata: proto.CloneOf(s.snap.meta), Data: data}, nil
}

// sameConfState reports whether a and b are the same membership; nil is
// the empty one.
func sameConfState(a, b *raftpb.ConfState) bool {
	if a == nil {
		a = &raftpb.ConfState{}
	}
	if b == nil {
		b = &raftpb.ConfState{}
	}
	return proto.Equal(a, b)
}

// generateLocked takes an engine snapshot and reads the snapshot's states
// from it.
func (s *Storage) generateLocked() (*RegionSnapshot, error) {
	if s.region == nil || s.region.GetState() == raftkvpb.PeerState_Tombstone {
		return nil, raft.ErrSnapshotTemporarilyUnavailable
	}
	snap, err := s.engine.NewSnapshot()
	if err != nil {
		return nil, fmt.Errorf("raftstorage: region %d: engine snapshot: %w", s.regionID, err)
	}
	rs, err := s.readSnapshot(snap)
	if err != nil {
		_ = snap.Close()
		return nil, err
	}
	return rs, nil
}

func (s *Storage) readSnapshot(snap kvs.Snapshot) (*RegionSnapshot, error) {
	read := func(key []byte, m proto.Message) error {
		v, err := snap.Get(key)
		if err != nil {
			return fmt.Errorf("raftstorage: region %d: read key %x from engine snapshot: %w", s.regionID, key, err)
		}
		if err := proto.Unmarshal(v, m); err != nil {
			return corruptf(s.regionID, key, "cannot decode %s: %v", m.ProtoReflect().Descriptor().Name(), err)
		}
		return nil
	}
	as := &raftkvpb.RaftApplyState{}
	region := &raftkvpb.RegionLocalState{}
	if err := read(ApplyStateKey(s.regionID), as); err != nil {
		return nil, err
	}
	if err := read(RegionStateKey(s.regionID), region); err != nil {
		return nil, err
	}
	applied := as.GetAppliedIndex()
	term := as.GetTruncatedTerm()
	if applied != as.GetTruncatedIndex() {
		e, err := s.readEntry(snap, applied)
		if err != nil {
			return nil, err
		}
		term = e.GetTerm()
	}
	cs := as.GetConfState()
	if cs == nil {
		cs = &raftpb.ConfState{}
	}
	return &RegionSnapshot{
		s:      s,
		meta:   &raftpb.SnapshotMetadata{Index: proto.Uint64(applied), Term: proto.Uint64(term), ConfState: proto.CloneOf(cs)},
		header: &raftkvpb.SnapshotHeader{Region: region.GetRegion(), ApplyState: as},
		snap:   snap,
		refs:   1,
	}, nil
}

// dropStaleSnapshotLocked lets go of the current snapshot once log GC has
// passed it, so it does not pin engine files until the next Snapshot.
func (s *Storage) dropStaleSnapshotLocked() {
	if s.snap != nil && s.snap.meta.GetIndex() < s.applyState.GetTruncatedIndex() {
		s.releaseLocked(s.snap)
		s.snap = nil
	}
}

func (s *Storage) releaseLocked(rs *RegionSnapshot) {
	rs.refs--
	if rs.refs == 0 {
		// NB: a close error of a read-only view loses nothing.
		_ = rs.snap.Close()
	}
}

// AcquireSnapshot returns the region snapshot that Snapshot last returned
// if its index is index, with a reference the caller must Release. It
// returns ErrSnapshotGone if the Storage holds no snapshot at index.
func (s *Storage) AcquireSnapshot(index uint64) (*RegionSnapshot, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.snap == nil || s.snap.meta.GetIndex() != index {
		return nil, fmt.Errorf("region %d at index %d: %w", s.regionID, index, ErrSnapshotGone)
	}
	s.snap.refs++
	return s.snap, nil
}

// Close releases the Storage's current snapshot. Call it before closing
// the engine; snapshots acquired and not yet released stay open until
// released. The Storage must not be used after Close.
func (s *Storage) Close() error {
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.snap != nil {
		s.releaseLocked(s.snap)
		s.snap = nil
	}
	return nil
}

// Release drops the caller's reference. The RegionSnapshot must not be
// used after.
func (r *RegionSnapshot) Release() {
	r.s.mu.Lock()
	defer r.s.mu.Unlock()
	r.s.releaseLocked(r)
}

// Metadata returns a copy of the snapshot's raft metadata.
func (r *RegionSnapshot) Metadata() *raftpb.SnapshotMetadata { return proto.CloneOf(r.meta) }

// Header returns a new stream header for the snapshot carrying msg (the
// MsgSnap being sent, wrapped for the transport).
func (r *RegionSnapshot) Header(msg *raftkvpb.RaftMessage) *raftkvpb.SnapshotHeader {
	h := proto.CloneOf(r.header)
	h.Message = msg
	return h
}

// WriteChunks streams the snapshot to fn: the header carrying msg, the
// region's data in chunks of about chunkBytes (DefaultChunkBytes if <= 0),
// then the footer. It stops at the first error fn returns.
func (r *RegionSnapshot) WriteChunks(msg *raftkvpb.RaftMessage, chunkBytes int, fn func(*raftkvpb.SnapshotChunk) error) error {
	if err := fn(&raftkvpb.SnapshotChunk{Chunk: &raftkvpb.SnapshotChunk_Header{Header: r.Header(msg)}}); err != nil {
		return err
	}
	return WriteSnapshotData(r.snap, r.header.GetRegion(), chunkBytes, fn)
}

// SnapshotHeaderOf decodes the header that Storage.Snapshot puts in a raft
// snapshot's Data: the region and apply state (without message).
func SnapshotHeaderOf(snap *raftpb.Snapshot) (*raftkvpb.SnapshotHeader, error) {
	h := &raftkvpb.SnapshotHeader{}
	if err := proto.Unmarshal(snap.GetData(), h); err != nil {
		return nil, fmt.Errorf("raftstorage: snapshot at index %d: cannot decode its header: %w", snap.GetMetadata().GetIndex(), err)
	}
	if h.GetRegion() == nil || h.GetApplyState() == nil {
		return nil, fmt.Errorf("raftstorage: snapshot at index %d: header without region or apply state", snap.GetMetadata().GetIndex())
	}
	return h, nil
}

// WriteSnapshotData streams region's data as read from r (an engine
// snapshot, so that it matches the apply state read from the same
// snapshot) to fn: SnapshotData chunks of user keys and values in key
// order, each about chunkBytes (DefaultChunkBytes if <= 0), then a
// SnapshotFooter counting the pairs and their bytes. The chunks are new
// and fn may keep them. It stops at the first error of r or fn.
func WriteSnapshotData(r kvs.Reader, region *raftkvpb.Region, chunkBytes int, fn func(*raftkvpb.SnapshotChunk) error) error {
	if chunkBytes <= 0 {
		chunkBytes = DefaultChunkBytes
	}
	lower, upper := DataRange(region.GetStartKey(), region.GetEndKey())
	it, err := r.NewIter(&kvs.IterOptions{LowerBound: lower, UpperBound: upper})
	if err != nil {
		return fmt.Errorf("raftstorage: region %d: snapshot data: %w", region.GetId(), err)
	}
	defer it.Close()
	var (
		data        = &raftkvpb.SnapshotData{}
		size        int
		pairs, used uint64
	)
	flush := func() error {
		if len(data.Pairs) == 0 {
			return nil
		}
		err := fn(&raftkvpb.SnapshotChunk{Chunk: &raftkvpb.SnapshotChunk_Data{Data: data}})
		data, size = &raftkvpb.SnapshotData{}, 0
		return err
	}
	for ok := it.First(); ok; ok = it.Next() {
		k, _ := UserKey(it.Key())
		kv := &raftkvpb.KeyValue{Key: clone(k), Value: clone(it.Value())}
		data.Pairs = append(data.Pairs, kv)
		n := len(kv.Key) + len(kv.Value)
		size += n
		pairs++
		used += uint64(n)
		if size >= chunkBytes {
			if err := flush(); err != nil {
				return err
			}
		}
	}
	if err := it.Close(); err != nil {
		return fmt.Errorf("raftstorage: region %d: snapshot data: %w", region.GetId(), err)
	}
	if err := flush(); err != nil {
		return err
	}
	return fn(&raftkvpb.SnapshotChunk{Chunk: &raftkvpb.SnapshotChunk_Footer{Footer: &raftkvpb.SnapshotFooter{Pairs: pairs, Bytes: used}}})
}

// ApplySnapshotData reads a snapshot stream from next (a header, data
// chunks, a footer; next returns io.EOF only if the stream ends early)
// and adds to wb the writes that make the header region's data range hold
// exactly the streamed pairs: each pair is put, and every key of the
// range present in r (the engine) but not in the stream is deleted. It
// returns the header. The stream must be complete (a footer whose counts
// match) and its keys in increasing order inside the region, or nothing
// is added to wb and an error returns. Commit wb in the same engine write
// as Update.ApplySnapshot with the header's region and the MsgSnap's
// metadata.
//
// NB: the whole region goes into one batch, so it must fit in
// kvs.MaxBatchSize; fine for regions that split well below that.
func ApplySnapshotData(r kvs.Reader, wb *kvs.Batch, next func() (*raftkvpb.SnapshotChunk, error)) (*raftkvpb.SnapshotHeader, error) {
	c, err := next()
	if err != nil {
		return nil, fmt.Errorf("raftstorage: snapshot stream: read header: %w", err)
	}
	header := c.GetHeader()
	if header == nil || header.GetRegion() == nil {
		return nil, errors.New("raftstorage: snapshot stream does not start with a header")
	}
	region := header.GetRegion()
	fail := func(format string, args ...any) (*raftkvpb.SnapshotHeader, error) {
		return nil, fmt.Errorf("raftstorage: region %d: snapshot stream: %s", region.GetId(), fmt.Sprintf(format, args...))
	}
	var (
		pairs  []*raftkvpb.KeyValue
		used   uint64
		footer *raftkvpb.SnapshotFooter
		prev   []byte
		start  = region.GetStartKey()
		end    = region.GetEndKey()
	)
	for footer == nil {
		c, err := next()
		if err == io.EOF {
			return fail("ended after %d pairs without a footer", len(pairs))
		}
		if err != nil {
			return fail("%v", err)
		}
		switch {
		case c.GetData() != nil:
			for _, kv := range c.GetData().GetPairs() {
				k := kv.GetKey()
				if len(k) == 0 || bytes.Compare(k, start) < 0 || (len(end) > 0 && bytes.Compare(k, end) >= 0) {
					return fail("key %q outside the region [%q, %q)", k, start, end)
				}
				if prev != nil && bytes.Compare(k, prev) <= 0 {
					return fail("key %q after %q: keys must increase", k, prev)
				}
				prev = k
				pairs = append(pairs, kv)
				used += uint64(len(k) + len(kv.GetValue()))
			}
		case c.GetFooter() != nil:
			footer = c.GetFooter()
		default:
			return fail("unexpected chunk after the header")
		}
	}
	if footer.GetPairs() != uint64(len(pairs)) || footer.GetBytes() != used {
		return fail("footer counts %d pairs of %d bytes, stream had %d of %d", footer.GetPairs(), footer.GetBytes(), len(pairs), used)
	}
	// Merge the old keys of the range with the new pairs, both in key
	// order: old keys absent from the snapshot are deleted.
	lower, upper := DataRange(start, end)
	it, err := r.NewIter(&kvs.IterOptions{LowerBound: lower, UpperBound: upper})
	if err != nil {
		return fail("read old data: %v", err)
	}
	var dels [][]byte
	i := 0
	for ok := it.First(); ok; ok = it.Next() {
		old, _ := UserKey(it.Key())
		for i < len(pairs) && bytes.Compare(pairs[i].GetKey(), old) < 0 {
			i++
		}
		if i < len(pairs) && bytes.Equal(pairs[i].GetKey(), old) {
			continue
		}
		dels = append(dels, clone(it.Key()))
	}
	if err := it.Close(); err != nil {
		return fail("read old data: %v", err)
	}
	for _, k := range dels {
		wb.Delete(k)
	}
	for _, kv := range pairs {
		wb.Put(DataKey(kv.GetKey()), kv.GetValue())
	}
	return header, nil
}
