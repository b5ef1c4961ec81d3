package store

import (
	"bytes"
	"errors"
	"fmt"

	"github.com/kvs-lab/kvs"
	"github.com/kvs-lab/kvs/raftkv/api"
	"github.com/kvs-lab/kvs/raftkv/raftkvpb"
	"github.com/kvs-lab/kvs/raftkv/raftstorage"
	"github.com/sirupsen/logrus"
	"go.etcd.io/raft/v3"
	"go.etcd.io/raft/v3/raftpb"
	"google.golang.org/protobuf/proto"
)

const raftpbMsgSnap = raftpb.MsgSnap

// raft logs through the store's logrus entry.
var _ raft.Logger = (*logrus.Entry)(nil)

// peer is the store's replica of one region: its raft node, its storage,
// and the client requests waiting on it. It belongs to the loop goroutine.
type peer struct {
	regionID uint64
	id       uint64 // raft node id
	// region is the region as of the applied index; nil while the peer
	// is uninitialized. It is replaced, never modified in place (Status
	// shares it).
	region *raftkvpb.Region
	st     *raftstorage.Storage
	rn     *raft.RawNode
	// stores maps the raft ids of the peers this one heard from to their
	// stores: an uninitialized peer has no region to look them up in.
	stores map[uint64]uint64
	// transfer is the leadership transfer under way, if any.
	transfer *transfer
	// destroyed is set once the peer was removed and destroyed; the
	// rest of the round must leave it alone.
	destroyed bool

	proposals map[uint64]*proposal // by proposal id
	reads     []*readReq           // in ReadIndex order

	// snapStreams holds the checked snapshot streams stepped into raft
	// this round, by the (index, term) of their snapshot: raft restores
	// at most one of them (the first that is newer than its log), and
	// the Ready that carries it names it by its metadata. The round
	// clears them once its Readies are handled.
	snapStreams map[snapKey][]*raftkvpb.SnapshotChunk

	snapshotsApplied uint64
}

// snapKey names a snapshot by its raft metadata.
type snapKey struct{ index, term uint64 }

// openPeer opens region id's storage and raft node; nil if the peer was
// removed (tombstone) or is not one of this store's.
func (s *Store) openPeer(regionID uint64) (*peer, error) {
	st, err := raftstorage.Open(s.eng, regionID)
	if err != nil {
		return nil, err
	}
	rs := st.RegionState()
	if rs == nil || rs.GetState() == raftkvpb.PeerState_Tombstone {
		if rs != nil && s.tombstones != nil {
			s.tombstones[regionID] = nextPeerID(rs.GetRegion())
		}
		_ = st.Close()
		return nil, nil
	}
	pe := peerOnStore(rs.GetRegion(), s.id)
	if pe == nil {
		// The peer applied its own removal (the region no longer lists
		// it) and the store stopped before destroying it: finish that.
		// (The region's next peer id is above the removed peer's.)
		return nil, s.destroyPeer(&peer{regionID: regionID, region: rs.GetRegion(), st: st})
	}
	p, err := s.newPeer(st, regionID, pe.GetId())
	if err != nil {
		return nil, err
	}
	p.region = rs.GetRegion()
	return p, nil
}

// newPeer starts the raft node of peer id of region regionID over st.
func (s *Store) newPeer(st *raftstorage.Storage, regionID, id uint64) (*peer, error) {
	rn, err := raft.NewRawNode(&raft.Config{
		ID:            id,
		ElectionTick:  s.cfg.ElectionTick,
		HeartbeatTick: s.cfg.HeartbeatTick,
		Storage:       st,
		// Trap: without Applied, a restarted node would hand back
		// entries the engine already holds the effect of.
		Applied:         st.AppliedIndex(),
		MaxSizePerMsg:   s.cfg.MaxSizePerMsg,
		MaxInflightMsgs: s.cfg.MaxInflightMsgs,
		PreVote:         true,
		CheckQuorum:     true,
		// A follower refuses proposals instead of forwarding them: a
		// forwarded proposal can vanish without a word, a refused one
		// becomes a NotLeader the client acts on.
		DisableProposalForwarding: true,
		// Trap: without it, a leader that applied its own removal stays
		// leader of a group it is no longer part of. (The store destroys
		// such a peer right away, but raft should not rely on that.)
		StepDownOnRemoval: true,
		Logger:            s.cfg.Logger.WithField("region", regionID),
	})
	if err != nil {
		_ = st.Close()
		return nil, fmt.Errorf("store %d: region %d: %w", s.id, regionID, err)
	}
	return &peer{regionID: regionID, id: id, st: st, rn: rn, proposals: map[uint64]*proposal{}, stores: map[uint64]uint64{}}, nil
}

// contains reports whether key is in the peer's region; never for an
// uninitialized peer, which holds no data yet.
func (p *peer) contains(key []byte) bool {
	return p.region != nil && bytes.Compare(key, p.region.GetStartKey()) >= 0 &&
		(len(p.region.GetEndKey()) == 0 || bytes.Compare(key, p.region.GetEndKey()) < 0)
}

// storeOf returns the store id of raft node id: from the region, else
// from the messages the peer got; 0 if unknown.
func (p *peer) storeOf(id uint64) uint64 {
	for _, pe := range p.region.GetPeers() {
		if pe.GetId() == id {
			return pe.GetStoreId()
		}
	}
	return p.stores[id]
}

// notLeader returns a *api.NotLeaderError with the leader hint if the
// peer does not lead, nil if it does.
func (p *peer) notLeader() error {
	st := p.rn.BasicStatus()
	if st.RaftState == raft.StateLeader {
		return nil
	}
	return &api.NotLeaderError{RegionID: p.regionID, Leader: p.storeOf(st.Lead)}
}

// pending is one peer's Ready on its way through handleReadies.
type pending struct {
	p  *peer
	rd raft.Ready
	u  *raftstorage.Update
}

// handleReadies handles the Ready of every peer that has one, in the
// order etcd raft's Ready contract and Raft §5 require:
//
//  1. persist: the snapshot, entries and hard state of ALL peers go into
//     one batch, written with one engine Write, synced unless every Ready
//     only moved a commit index (raft's Ready.MustSync); then the Updates
//     commit, so raft's view of its Storage changes only once it is
//     durable;
//  2. send the messages (a vote or an append acknowledgement promises
//     something about the disk, so it leaves only after the write);
//  3. apply the committed entries, each peer's data writes, client
//     sessions and applied index in one batch;
//  4. Advance, then report unreachable stores, serve reads whose index has
//     applied, and truncate logs past the GC threshold.
func (s *Store) handleReadies() (bool, error) {
	var ps []*pending
	wb := new(kvs.Batch)
	// mustSync: some peer's Ready promises something about the disk (new
	// entries, a vote or a term: raft's Ready.MustSync) or installs a
	// snapshot. A Ready that only moves the commit index need not wait
	// for an fsync: a lost commit index is learned again from the leader,
	// and the next synced write makes this one durable too.
	mustSync := false
	for _, p := range s.peers {
		if !p.rn.HasReady() {
			continue
		}
		rd := p.rn.Ready()
		mustSync = mustSync || rd.MustSync || !raft.IsEmptySnap(rd.Snapshot)
		u := p.st.NewUpdate(wb)
		if !raft.IsEmptySnap(rd.Snapshot) {
			if err := s.persistSnapshot(p, u, wb, rd.Snapshot); err != nil {
				return false, err
			}
		}
		if err := u.Append(rd.Entries); err != nil {
			return false, err
		}
		if err := u.SetHardState(rd.HardState); err != nil {
			return false, err
		}
		ps = append(ps, &pending{p: p, rd: rd, u: u})
	}
	if len(ps) == 0 {
		return false, nil
	}
	if !wb.Empty() {
		if err := s.eng.Write(wb, kvs.WriteOptions{Sync: mustSync}); err != nil {
			return false, fmt.Errorf("%w: persist raft state: %w", errEngine, err)
		}
	}
	for _, x := range ps {
		if err := x.u.Commit(); err != nil {
			return false, err
		}
		if !raft.IsEmptySnap(x.rd.Snapshot) {
			x.p.afterSnapshot(x.rd.Snapshot)
		}
		x.p.noteAppended(x.rd.Entries, s.tag())
	}
	var unreachable []report
	s.send(ps, &unreachable)
	for _, x := range ps {
		removed, err := s.apply(x.p, x.rd.CommittedEntries)
		if err != nil {
			return false, err
		}
		if removed {
			// The peer applied its own removal. Its messages of this
			// Ready went out above (the commit of the removal among
			// them), so the remaining peers can go on without it.
			if err := s.destroyPeer(x.p); err != nil {
				return false, err
			}
			continue
		}
		x.p.noteReadStates(x.rd.ReadStates)
		if x.rd.SoftState != nil && x.rd.SoftState.RaftState != raft.StateLeader {
			x.p.failUnconfirmedReads()
		}
	}
	for _, x := range ps {
		if !x.p.destroyed {
			x.p.rn.Advance(x.rd)
		}
	}
	for _, r := range unreachable {
		if p := s.peers[r.regionID]; p != nil {
			p.rn.ReportUnreachable(r.to)
		}
	}
	for _, x := range ps {
		if x.p.destroyed {
			continue
		}
		s.serveReads(x.p)
		if err := s.maybeGC(x.p); err != nil {
			return false, err
		}
	}
	return true, nil
}

// persistSnapshot adds to wb the region data of the snapshot raft
// accepted and its bookkeeping, so both land in the Ready's one write.
func (s *Store) persistSnapshot(p *peer, u *raftstorage.Update, wb *kvs.Batch, snap *raftpb.Snapshot) error {
	key := snapKey{snap.GetMetadata().GetIndex(), snap.GetMetadata().GetTerm()}
	chunks := p.snapStreams[key]
	if chunks == nil {
		// Raft only restores a snapshot it was given by onSnapshot, which
		// kept the stream; anything else is a bug.
		return fmt.Errorf("store: region %d: raft applies a snapshot at index %d term %d without its data", p.regionID, key.index, key.term)
	}
	// NB: HandleSnapshot and onSnapshot checked everything that can make
	// these fail short of an engine error: the stream's shape, keys and
	// counts, its region id, and an index above the applied one (raft
	// restores only a snapshot above its commit index).
	hdr, err := raftstorage.ApplySnapshotData(s.eng, wb, chunkReader(chunks))
	if err != nil {
		return err
	}
	delete(p.snapStreams, key)
	return u.ApplySnapshot(snap.GetMetadata(), hdr.GetRegion())
}

// afterSnapshot takes the region from the applied snapshot and settles
// proposals the snapshot jumped over: their entries may or may not be in
// it, so their outcome is unknown.
func (p *peer) afterSnapshot(snap *raftpb.Snapshot) {
	p.region = p.st.RegionState().GetRegion()
	p.snapshotsApplied++
	idx := snap.GetMetadata().GetIndex()
	for id, pr := range p.proposals {
		if pr.index != 0 && pr.index <= idx {
			pr.done <- fmt.Errorf("%w: entry %d was covered by a snapshot before this store applied it", api.ErrTimeout, pr.index)
			delete(p.proposals, id)
		}
	}
}

// noteAppended records the index and term of the entries carrying this
// store's proposals, as the leader appends them.
func (p *peer) noteAppended(ents []*raftpb.Entry, tag proposalTag) {
	if len(p.proposals) == 0 {
		return
	}
	for _, e := range ents {
		var store, boot, id uint64
		switch {
		case e.GetType() == raftpb.EntryNormal && len(e.GetData()) > 0:
			req := &raftkvpb.Request{}
			if proto.Unmarshal(e.GetData(), req) != nil {
				continue
			}
			store, boot, id = req.GetStoreId(), req.GetBootId(), req.GetProposalId()
		case e.GetType() == raftpb.EntryConfChangeV2:
			ctx := confChangeContext(e)
			store, boot, id = ctx.GetStoreId(), ctx.GetBootId(), ctx.GetProposalId()
		default:
			// NB: a conf change raft refused is appended as an empty
			// normal entry; round() answers its proposal once the Ready
			// that carried the append is handled (settleConfProposals).
			continue
		}
		if store != tag.store || boot != tag.boot {
			continue
		}
		if pr := p.proposals[id]; pr != nil && pr.index == 0 {
			pr.index, pr.term = e.GetIndex(), e.GetTerm()
		}
	}
}

// send hands every peer's messages to the transport, one batch per
// destination store; MsgSnap goes through a snapshot stream instead.
func (s *Store) send(ps []*pending, unreachable *[]report) {
	batches := map[uint64]*raftkvpb.RaftMessageBatch{}
	var order []uint64
	for _, x := range ps {
		p := x.p
		for _, m := range x.rd.Messages {
			to := p.storeOf(m.GetTo())
			if to == 0 {
				continue
			}
			rm := &raftkvpb.RaftMessage{
				RegionId:    p.regionID,
				FromPeer:    &raftkvpb.Peer{Id: p.id, StoreId: s.id},
				ToPeer:      &raftkvpb.Peer{Id: m.GetTo(), StoreId: to},
				RegionEpoch: p.region.GetEpoch(),
				ClusterId:   s.cfg.ClusterID,
				Message:     m,
			}
			if m.GetType() == raftpb.MsgSnap {
				s.sendSnapshot(p, rm)
				continue
			}
			b := batches[to]
			if b == nil {
				b = &raftkvpb.RaftMessageBatch{}
				batches[to] = b
				order = append(order, to)
			}
			b.Msgs = append(b.Msgs, rm)
		}
	}
	for _, to := range order {
		b := batches[to]
		if err := s.cfg.Transport.Send(to, b); err != nil {
			for _, rm := range b.GetMsgs() {
				*unreachable = append(*unreachable, report{regionID: rm.GetRegionId(), to: rm.GetToPeer().GetId()})
			}
		}
	}
}

// sendSnapshot streams the region snapshot raft asked for (Storage.Snapshot
// made it) to the follower in its own goroutine, and reports the outcome
// to raft through the inbox: until then raft sends the follower nothing
// but heartbeats.
func (s *Store) sendSnapshot(p *peer, rm *raftkvpb.RaftMessage) {
	idx := rm.GetMessage().GetSnapshot().GetMetadata().GetIndex()
	regionID, to := p.regionID, rm.GetToPeer().GetId()
	rs, err := p.st.AcquireSnapshot(idx)
	if err != nil {
		s.cfg.Logger.Debugf("region %d: snapshot for peer %d: %v", regionID, to, err)
		s.in.push(func(b *inboxBatch) {
			b.reports = append(b.reports, report{regionID: regionID, to: to, snapshot: true, status: raft.SnapshotFailure})
		})
		return
	}
	s.snapWG.Add(1)
	go func() {
		defer s.snapWG.Done()
		defer rs.Release()
		err := s.cfg.Transport.SendSnapshot(s.snapCtx, rm.GetToPeer().GetStoreId(), func(send func(*raftkvpb.SnapshotChunk) error) error {
			return rs.WriteChunks(rm, s.cfg.SnapshotChunkBytes, send)
		})
		status := raft.SnapshotFinish
		if err != nil {
			status = raft.SnapshotFailure
			s.cfg.Logger.Debugf("region %d: snapshot to peer %d failed: %v", regionID, to, err)
		}
		s.in.push(func(b *inboxBatch) {
			b.reports = append(b.reports, report{regionID: regionID, to: to, snapshot: true, status: status})
		})
	}()
}

// apply applies committed entries: client writes (at most once per client
// seq, see apply.go), conf changes, and empty entries, then records the
// applied index, all in one batch. Waiting proposals are answered, with
// their requests' Responses, after the write. If an
// entry removes the peer itself, apply stops after it and reports
// removed: the caller destroys the peer.
func (s *Store) apply(p *peer, ents []*raftpb.Entry) (removed bool, err error) {
	if len(ents) == 0 {
		return false, nil
	}
	wb := new(kvs.Batch)
	u := p.st.NewUpdate(wb)
	ab := newApplyBatch(s.eng, wb, p.regionID)
	type answer struct {
		pr   *proposal
		resp *raftkvpb.Response
		err  error
	}
	var answers []answer
	regionChanged := false
	var last uint64
	for _, e := range ents {
		if removed {
			// Entries after the peer's own removal: the peer is about to
			// be destroyed, with its data; the other peers apply them.
			break
		}
		last = e.GetIndex()
		// A proposal waiting at this index whose entry is not this one
		// was overwritten by another leader (§5.3): it can never apply.
		for id, pr := range p.proposals {
			if pr.index == e.GetIndex() && pr.term != e.GetTerm() {
				answers = append(answers, answer{pr, nil, fmt.Errorf("%w: entry %d of term %d replaced by one of term %d", api.ErrProposalDropped, pr.index, pr.term, e.GetTerm())})
				delete(p.proposals, id)
			}
		}
		switch e.GetType() {
		case raftpb.EntryNormal:
			if len(e.GetData()) == 0 {
				// A new leader's empty entry, or a refused conf change.
				continue
			}
			req := &raftkvpb.Request{}
			if err := proto.Unmarshal(e.GetData(), req); err != nil {
				// Every replica skips the same entry the same way.
				s.cfg.Logger.Errorf("region %d: entry %d is not a request, skipped: %v", p.regionID, e.GetIndex(), err)
				continue
			}
			resp, err := ab.applyRequest(req)
			if err != nil && !errors.Is(err, errSessionMovedOn) {
				return false, err
			}
			if pr := p.proposalOf(e, s.tag(), req.GetStoreId(), req.GetBootId(), req.GetProposalId()); pr != nil {
				answers = append(answers, answer{pr, resp, err})
				delete(p.proposals, req.GetProposalId())
			}
		case raftpb.EntryConfChange, raftpb.EntryConfChangeV2:
			// Trap: every committed conf change entry must be applied,
			// even an empty one (leaving a joint config), or raft's view
			// of the membership stalls.
			cs, changed, err := s.applyConfChange(p, e)
			if err != nil {
				return false, err
			}
			u.SetConfState(cs)
			regionChanged = regionChanged || changed
			removed = changed && regionPeer(p.region, p.id) == nil
			ctx := confChangeContext(e)
			if pr := p.proposalOf(e, s.tag(), ctx.GetStoreId(), ctx.GetBootId(), ctx.GetProposalId()); pr != nil && pr.conf != nil {
				answers = append(answers, answer{pr, nil, nil})
				delete(p.proposals, ctx.GetProposalId())
			}
		}
	}
	if regionChanged {
		if err := u.SetRegion(p.region, raftkvpb.PeerState_Normal); err != nil {
			return false, err
		}
	}
	if err := u.SetApplied(last); err != nil {
		return false, err
	}
	// NB: no sync: the entries are durable in the log, and after a crash
	// raft hands back whatever the engine lost (from Config.Applied on).
	// Both engines keep writes in order, so a later synced write makes
	// this one durable too.
	if err := s.eng.Write(wb, kvs.NoSync); err != nil {
		return false, fmt.Errorf("%w: apply: %w", errEngine, err)
	}
	if err := u.Commit(); err != nil {
		return false, err
	}
	for _, a := range answers {
		// NB: resp is set before the send on done, which the caller
		// receives before reading it: the channel orders the two.
		a.pr.resp = a.resp
		a.pr.done <- a.err
	}
	return removed, nil
}

// proposalOf returns the waiting proposal that committed entry e
// carries, given the tag found in e: one of this store's life (store id
// and boot id) with that proposal id, appended at e's index and term.
// Linearizability rests on the index and term: the tag alone is not
// unique (an entry can reach the log, wait uncommitted through a
// restart, and commit in a later term) and a proposal must be answered
// only by its own entry.
func (p *peer) proposalOf(e *raftpb.Entry, tag proposalTag, store, boot, id uint64) *proposal {
	if store != tag.store || boot != tag.boot {
		return nil
	}
	pr := p.proposals[id]
	if pr == nil || pr.index != e.GetIndex() || pr.term != e.GetTerm() {
		return nil
	}
	return pr
}

// applyConfChange applies a conf change entry to raft and the region's
// peer list. The change's Context (a raftkvpb.ConfChangeContext) names
// the peer a change adds, so every replica learns the new peer's store.
// Every change that touches the region raises its conf_ver and keeps its
// next_peer_id above every id ever used. It reports whether the region
// changed.
func (s *Store) applyConfChange(p *peer, e *raftpb.Entry) (*raftpb.ConfState, bool, error) {
	var cc raftpb.ConfChangeI
	if e.GetType() == raftpb.EntryConfChange {
		c := &raftpb.ConfChange{}
		if err := proto.Unmarshal(e.GetData(), c); err != nil {
			return nil, false, fmt.Errorf("store: region %d: entry %d: bad conf change: %w", p.regionID, e.GetIndex(), err)
		}
		cc = c
	} else {
		c := &raftpb.ConfChangeV2{}
		if err := proto.Unmarshal(e.GetData(), c); err != nil {
			return nil, false, fmt.Errorf("store: region %d: entry %d: bad conf change: %w", p.regionID, e.GetIndex(), err)
		}
		cc = c
	}
	cs := p.rn.ApplyConfChange(cc)
	v2 := cc.AsV2()
	if len(v2.GetChanges()) == 0 {
		return cs, false, nil
	}
	region := proto.CloneOf(p.region)
	next := nextPeerID(region)
	added := confChangeContext(e).GetPeer()
	changed := false
	for _, ch := range v2.GetChanges() {
		id := ch.GetNodeId()
		if id == 0 {
			// A change the application voided; raft skips it too.
			continue
		}
		next = max(next, id+1)
		switch ch.GetType() {
		case raftpb.ConfChangeAddNode, raftpb.ConfChangeAddLearnerNode:
			if regionPeer(region, id) == nil && added.GetId() == id {
				region.Peers = append(region.Peers, proto.CloneOf(added))
				changed = true
			}
		case raftpb.ConfChangeRemoveNode:
			kept := make([]*raftkvpb.Peer, 0, len(region.GetPeers()))
			for _, pe := range region.GetPeers() {
				if pe.GetId() != id {
					kept = append(kept, pe)
				}
			}
			changed = changed || len(kept) != len(region.GetPeers())
			region.Peers = kept
		}
	}
	if !changed {
		return cs, false, nil
	}
	if region.Epoch == nil {
		region.Epoch = &raftkvpb.RegionEpoch{}
	}
	region.Epoch.ConfVer++
	region.NextPeerId = next
	p.region = region
	return cs, true, nil
}

// noteReadStates gives each waiting read the index raft confirmed for it.
func (p *peer) noteReadStates(states []raft.ReadState) {
	for _, rs := range states {
		for _, r := range p.reads {
			if bytes.Equal(r.rctx, rs.RequestCtx) {
				r.index, r.confirmed = rs.Index, true
				break
			}
		}
	}
}

// failUnconfirmedReads answers the reads raft will no longer confirm
// because the peer stopped leading. A read has no effect, so the client
// just tries again. Confirmed reads stay: their index was valid when
// confirmed, after the read arrived.
func (p *peer) failUnconfirmedReads() {
	kept := p.reads[:0]
	for _, r := range p.reads {
		if r.confirmed {
			kept = append(kept, r)
			continue
		}
		r.done <- &readResult{err: p.notLeader()}
	}
	p.reads = kept
}

// serveReads answers the confirmed reads whose index has applied.
func (s *Store) serveReads(p *peer) {
	if len(p.reads) == 0 {
		return
	}
	applied := p.st.AppliedIndex()
	kept := p.reads[:0]
	for _, r := range p.reads {
		if !r.confirmed || r.index > applied {
			kept = append(kept, r)
			continue
		}
		r.done <- s.execRead(p, r)
	}
	p.reads = kept
}

// execRead reads the engine for r. The loop is the only writer of region
// data, so the engine holds exactly the state as of the applied index.
func (s *Store) execRead(p *peer, r *readReq) *readResult {
	if r.keys != nil {
		values := make([][]byte, len(r.keys))
		for i, k := range r.keys {
			v, err := s.eng.Get(raftstorage.DataKey(k))
			switch {
			case errors.Is(err, kvs.ErrNotFound):
				continue
			case err != nil:
				return &readResult{err: err}
			}
			if v == nil {
				v = []byte{}
			}
			values[i] = v
		}
		return &readResult{values: values}
	}
	if !r.scan {
		v, err := s.eng.Get(raftstorage.DataKey(r.key))
		return &readResult{value: v, err: err}
	}
	start, end := r.start, r.end
	// Clip to the region and skip the reserved keys.
	if bytes.Compare(start, p.region.GetStartKey()) < 0 {
		start = p.region.GetStartKey()
	}
	if len(start) == 0 || start[0] == api.ReservedPrefix {
		start = []byte{api.ReservedPrefix + 1}
	}
	if re := p.region.GetEndKey(); len(re) > 0 && (len(end) == 0 || bytes.Compare(end, re) > 0) {
		end = re
	}
	if len(end) > 0 && bytes.Compare(start, end) >= 0 {
		return &readResult{}
	}
	lower, upper := raftstorage.DataRange(start, end)
	it, err := s.eng.NewIter(&kvs.IterOptions{LowerBound: lower, UpperBound: upper})
	if err != nil {
		return &readResult{err: err}
	}
	var pairs []*raftkvpb.KeyValue
	for ok := it.First(); ok && (r.limit <= 0 || len(pairs) < r.limit); ok = it.Next() {
		k, _ := raftstorage.UserKey(it.Key())
		pairs = append(pairs, &raftkvpb.KeyValue{Key: bytes.Clone(k), Value: bytes.Clone(it.Value())})
	}
	if err := it.Close(); err != nil {
		return &readResult{err: err}
	}
	return &readResult{pairs: pairs}
}

// maybeGC truncates the peer's log once more than RaftLogGCThreshold
// applied entries sit in it. Each peer truncates its own log locally (as
// etcd's server does), rather than proposing a compaction command through
// the log (as TinyKV does): raft only needs each log to hold what its
// owner may still send or has not applied, and a local cut costs no
// round. A leader keeps the entries a follower close behind still needs
// (its match index, if within the threshold) so that a brief lag does not
// cost a snapshot; a follower further behind, or down, gets one.
func (s *Store) maybeGC(p *peer) error {
	as := p.st.ApplyState()
	applied, truncated := as.GetAppliedIndex(), as.GetTruncatedIndex()
	threshold := s.cfg.RaftLogGCThreshold
	if applied-truncated <= threshold {
		return nil
	}
	to := applied
	if st := p.rn.Status(); st.RaftState == raft.StateLeader {
		for id, pr := range st.Progress {
			if id != p.id && pr.Match < to && applied-pr.Match <= threshold {
				to = pr.Match
			}
		}
	}
	if to <= truncated {
		return nil
	}
	wb := new(kvs.Batch)
	u := p.st.NewUpdate(wb)
	if err := u.CompactTo(to); err != nil {
		return err
	}
	if err := s.eng.Write(wb, kvs.NoSync); err != nil {
		return fmt.Errorf("%w: log gc: %w", errEngine, err)
	}
	return u.Commit()
}
