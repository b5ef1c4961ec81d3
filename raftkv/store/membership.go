package store

import (
	"context"
	"fmt"

	"github.com/kvs-lab/kvs"
	"github.com/kvs-lab/kvs/raftkv/api"
	"github.com/kvs-lab/kvs/raftkv/raftkvpb"
	"github.com/kvs-lab/kvs/raftkv/raftstorage"
	"go.etcd.io/raft/v3"
	"go.etcd.io/raft/v3/raftpb"
	"google.golang.org/protobuf/proto"
)

// confChange is a membership change a caller waits on.
type confChange struct {
	regionID, storeID uint64
	add               bool
	// peer is the peer added (with its new id) or removed; the loop sets
	// it before proposing, the caller reads it after done.
	peer *raftkvpb.Peer
}

// transfer is a leadership transfer a caller waits on.
type transfer struct {
	regionID, storeID uint64
	target            uint64 // raft id of the peer on storeID
	ticks             int    // ticks since it started
	done              chan error
}

// AddPeer adds a voter on store storeID to region regionID through raft
// (a ConfChangeV2) and returns the new peer once the change applied on
// this store. It must be called on the region's leader (a
// *api.NotLeaderError otherwise). The new peer gets a raft node id never
// used in the region before (see raftkvpb.Region.NextPeerId); the store
// creates it, empty, when the leader's first message arrives, and the
// leader catches it up with a snapshot. Errors: api.ErrInvalid if
// storeID already holds a peer of the region; api.ErrConfChangeInProgress
// if another membership change has not applied yet; api.ErrTimeout when
// ctx ends first (the change may still apply).
func (s *Store) AddPeer(ctx context.Context, regionID, storeID uint64) (*raftkvpb.Peer, error) {
	c := &confChange{regionID: regionID, storeID: storeID, add: true}
	if err := s.changeMembership(ctx, c); err != nil {
		return nil, err
	}
	return proto.CloneOf(c.peer), nil
}

// RemovePeer removes store storeID's peer from region regionID through
// raft and returns once the change applied on this store. It must be
// called on the region's leader. The removed peer is destroyed on its
// store when it applies the change (or, if it never hears of it, when a
// newer peer of the region is added there). Removing the leader itself
// works: it steps down once the change applied, and the others elect a
// new leader. Errors are AddPeer's, and api.ErrInvalid if storeID holds
// no peer of the region, if it is the last peer, or if it is the leader's
// own store and one other peer would remain (that peer might never learn
// that the removal committed and could not elect itself: transfer the
// leadership first).
func (s *Store) RemovePeer(ctx context.Context, regionID, storeID uint64) error {
	return s.changeMembership(ctx, &confChange{regionID: regionID, storeID: storeID})
}

func (s *Store) changeMembership(ctx context.Context, c *confChange) error {
	return s.proposeAndWait(ctx, &proposal{conf: c, done: make(chan error, 1)})
}

// TransferLeader asks the leader of region regionID (this store, or a
// *api.NotLeaderError) to hand the leadership to the peer on store
// storeID (raft's MsgTimeoutNow: the target campaigns at once). It
// returns nil once this store hears from the target as leader, or an
// error wrapping api.ErrTimeout if that did not happen within an election
// timeout (raft then gives up the transfer and this store may still
// lead). While a transfer is under way the leader refuses proposals
// (api.ErrProposalDropped). api.ErrInvalid if storeID holds no peer of
// the region.
func (s *Store) TransferLeader(ctx context.Context, regionID, storeID uint64) error {
	t := &transfer{regionID: regionID, storeID: storeID, done: make(chan error, 1)}
	s.in.push(func(b *inboxBatch) { b.transfers = append(b.transfers, t) })
	select {
	case err := <-t.done:
		return err
	case <-ctx.Done():
		return fmt.Errorf("%w: %w", api.ErrTimeout, ctx.Err())
	case <-s.loopDone:
		return api.ErrStopped
	}
}

// leaderPeer returns the initialized peer of region regionID if it leads,
// or the error to answer.
func (s *Store) leaderPeer(regionID uint64) (*peer, error) {
	p := s.peers[regionID]
	if p == nil || p.region == nil {
		return nil, &api.NotLeaderError{RegionID: regionID}
	}
	if err := p.notLeader(); err != nil {
		return nil, err
	}
	return p, nil
}

// proposeConfChange proposes a one-change ConfChangeV2 on the leader.
// The region the checks read is the leader's applied one; raft accepts a
// conf change only once the leader applied every earlier one (the
// pending one included), so the next peer id it picks cannot be taken by
// a change still in the log.
func (s *Store) proposeConfChange(pr *proposal) {
	c := pr.conf
	p, err := s.leaderPeer(c.regionID)
	if err != nil {
		pr.done <- err
		return
	}
	change := &raftpb.ConfChangeSingle{}
	if c.add {
		if pe := peerOnStore(p.region, c.storeID); pe != nil {
			pr.done <- fmt.Errorf("%w: store %d already holds peer %d of region %d", api.ErrInvalid, c.storeID, pe.GetId(), c.regionID)
			return
		}
		c.peer = &raftkvpb.Peer{Id: nextPeerID(p.region), StoreId: c.storeID}
		change.Type = raftpb.ConfChangeAddNode.Enum()
	} else {
		c.peer = peerOnStore(p.region, c.storeID)
		switch {
		case c.peer == nil:
			pr.done <- fmt.Errorf("%w: store %d holds no peer of region %d", api.ErrInvalid, c.storeID, c.regionID)
			return
		case len(p.region.GetPeers()) == 1:
			pr.done <- fmt.Errorf("%w: peer %d is the last of region %d", api.ErrInvalid, c.peer.GetId(), c.regionID)
			return
		case c.peer.GetId() == p.id && len(p.region.GetPeers()) == 2:
			pr.done <- fmt.Errorf("%w: removing the leader of a two-peer region: transfer the leadership first", api.ErrInvalid)
			return
		}
		change.Type = raftpb.ConfChangeRemoveNode.Enum()
	}
	change.NodeId = proto.Uint64(c.peer.GetId())
	s.nextProposal++
	ctx, err := proto.Marshal(&raftkvpb.ConfChangeContext{Peer: c.peer, StoreId: s.id, BootId: s.bootID, ProposalId: s.nextProposal})
	if err != nil {
		pr.done <- fmt.Errorf("%w: %v", api.ErrInvalid, err)
		return
	}
	cc := &raftpb.ConfChangeV2{Changes: []*raftpb.ConfChangeSingle{change}, Context: ctx}
	if err := p.rn.ProposeConfChange(cc); err != nil {
		// A leader transfer is under way, or the peer was removed.
		pr.done <- fmt.Errorf("%w: %v", api.ErrProposalDropped, err)
		return
	}
	p.proposals[s.nextProposal] = pr
}

// settleConfProposals answers the membership changes raft refused. Raft
// does not return an error for them: it appends an empty normal entry
// instead (one conf change at a time). A conf change raft took was
// appended with the proposal's tag, which noteAppended found in the first
// Ready after the proposal; one still without an index after the round's
// Readies was refused.
func (p *peer) settleConfProposals() {
	for id, pr := range p.proposals {
		if pr.conf != nil && pr.index == 0 {
			pr.done <- fmt.Errorf("region %d: %w", p.regionID, api.ErrConfChangeInProgress)
			delete(p.proposals, id)
		}
	}
}

// startTransfer starts a leadership transfer on the leader.
func (s *Store) startTransfer(t *transfer) {
	p, err := s.leaderPeer(t.regionID)
	if err != nil {
		t.done <- err
		return
	}
	pe := peerOnStore(p.region, t.storeID)
	if pe == nil {
		t.done <- fmt.Errorf("%w: store %d holds no peer of region %d", api.ErrInvalid, t.storeID, t.regionID)
		return
	}
	if pe.GetId() == p.id {
		t.done <- nil
		return
	}
	if p.transfer != nil {
		p.transfer.done <- fmt.Errorf("%w: leadership transfer replaced by one to store %d", api.ErrTimeout, t.storeID)
	}
	t.target = pe.GetId()
	p.transfer = t
	p.rn.TransferLeader(t.target)
}

// checkTransfer answers the peer's leadership transfer once the target
// leads (as far as this peer heard), or once an election timeout passed
// without that, when raft has given up on it too.
func (s *Store) checkTransfer(p *peer) {
	t := p.transfer
	if t == nil {
		return
	}
	st := p.rn.BasicStatus()
	switch {
	case st.Lead == t.target && st.RaftState != raft.StateLeader:
		t.done <- nil
	case t.ticks > s.cfg.ElectionTick:
		t.done <- fmt.Errorf("%w: leadership transfer to store %d did not finish within an election timeout (leader now peer %d)", api.ErrTimeout, t.storeID, st.Lead)
	default:
		return
	}
	p.transfer = nil
}

// peerFor returns the peer a raft message (or a snapshot's MsgSnap) is
// for, creating it if needed, or nil to drop the message. The message
// must name this store in to_peer (the caller checked the cluster id).
//
//   - To the peer the store hosts: that peer.
//   - To an older peer id of the region: dropped (a message to a dead
//     peer).
//   - To a newer peer id: the region removed the store's peer while the
//     store did not hear of it, and added the store again (peer ids only
//     grow, and a store holds at most one peer of a region): the stale
//     peer is destroyed and a new one created.
//   - To a region the store does not host: a leader added the store. The
//     peer is created uninitialized (no log, no data, no region) and the
//     leader catches it up by snapshot; never for a peer id at or below
//     one this store destroyed (the region's tombstone).
func (s *Store) peerFor(m *raftkvpb.RaftMessage) (*peer, error) {
	to := m.GetToPeer()
	if to.GetStoreId() != s.id || to.GetId() == 0 {
		return nil, nil
	}
	regionID := m.GetRegionId()
	p := s.peers[regionID]
	if p != nil {
		switch {
		case to.GetId() == p.id:
			p.notePeer(m.GetFromPeer())
			return p, nil
		case to.GetId() < p.id || !createsPeer(m.GetMessage().GetType()):
			return nil, nil
		}
		s.cfg.Logger.Infof("region %d: peer %d is stale, a message names peer %d of this store: destroying it", regionID, p.id, to.GetId())
		if err := s.destroyPeer(p); err != nil {
			return nil, err
		}
	}
	if !createsPeer(m.GetMessage().GetType()) || to.GetId() < s.tombstones[regionID] {
		return nil, nil
	}
	st, err := raftstorage.Open(s.eng, regionID)
	if err != nil {
		s.cfg.Logger.Warnf("region %d: cannot create peer %d: %v", regionID, to.GetId(), err)
		return nil, nil
	}
	if rs := st.RegionState(); rs != nil && (rs.GetState() != raftkvpb.PeerState_Tombstone || to.GetId() < nextPeerID(rs.GetRegion())) {
		// A live region the store does not run, or a dead peer id.
		_ = st.Close()
		return nil, nil
	}
	p, err = s.newPeer(st, regionID, to.GetId())
	if err != nil {
		s.cfg.Logger.Warnf("region %d: cannot create peer %d: %v", regionID, to.GetId(), err)
		return nil, nil
	}
	s.cfg.Logger.Infof("region %d: created peer %d, uninitialized, for a message from peer %d", regionID, p.id, m.GetFromPeer().GetId())
	s.peers[regionID] = p
	p.notePeer(m.GetFromPeer())
	return p, nil
}

// createsPeer reports whether a message of type t may create a peer: the
// ones a leader or a candidate sends to a new member, not responses.
func createsPeer(t raftpb.MessageType) bool {
	switch t {
	case raftpb.MsgApp, raftpb.MsgHeartbeat, raftpb.MsgSnap, raftpb.MsgVote, raftpb.MsgPreVote, raftpb.MsgTimeoutNow:
		return true
	}
	return false
}

// answerRemovedPeer tells a peer the region removed that it is dead, and
// reports whether m came from one. A peer removed while it was cut off
// (down, partitioned) never applies its removal, and no member sends to
// it any more: it would sit on its store for good, campaigning in vain.
// Its messages give it away: it is not in p's region, and its region
// epoch is older than p's. As peer ids are never reused, a peer that was
// in the region at its epoch and is not at p's later one was removed in
// between, for good. A peer without an epoch (uninitialized: created by
// a leader's message, never given a snapshot) sends nothing unprompted
// and is left alone.
func (s *Store) answerRemovedPeer(p *peer, m *raftkvpb.RaftMessage) bool {
	from := m.GetFromPeer()
	theirs, ours := m.GetRegionEpoch().GetConfVer(), p.region.GetEpoch().GetConfVer()
	if p.region == nil || regionPeer(p.region, from.GetId()) != nil || theirs == 0 || theirs >= ours {
		return false
	}
	b := &raftkvpb.RaftMessageBatch{Msgs: []*raftkvpb.RaftMessage{{
		RegionId:    p.regionID,
		FromPeer:    &raftkvpb.Peer{Id: p.id, StoreId: s.id},
		ToPeer:      from,
		RegionEpoch: p.region.GetEpoch(),
		ClusterId:   s.cfg.ClusterID,
		IsTombstone: true,
	}}}
	if err := s.cfg.Transport.Send(from.GetStoreId(), b); err != nil {
		s.cfg.Logger.Debugf("region %d: tell removed peer %d: %v", p.regionID, from.GetId(), err)
	}
	return true
}

// onTombstone destroys the peer a member of its region declared removed
// (see answerRemovedPeer), if the member's epoch is newer than the
// peer's.
func (s *Store) onTombstone(m *raftkvpb.RaftMessage) error {
	p := s.peers[m.GetRegionId()]
	to := m.GetToPeer()
	if p == nil || p.region == nil || to.GetStoreId() != s.id || to.GetId() != p.id ||
		m.GetRegionEpoch().GetConfVer() <= p.region.GetEpoch().GetConfVer() {
		return nil
	}
	s.cfg.Logger.Infof("region %d: peer %d was removed (peer %d of conf_ver %d says so): destroying it",
		p.regionID, p.id, m.GetFromPeer().GetId(), m.GetRegionEpoch().GetConfVer())
	return s.destroyPeer(p)
}

// notePeer remembers the store of a peer the peer heard from.
func (p *peer) notePeer(from *raftkvpb.Peer) {
	if from.GetId() != 0 && from.GetStoreId() != 0 {
		p.stores[from.GetId()] = from.GetStoreId()
	}
}

// destroyPeer removes a peer from the store in one synced batch: its log,
// raft and apply states, and its region's data go; a Tombstone region
// state stays, whose next peer id is above the peer's, so that messages
// to the dead peer id never create it again (ids are never reused).
// Requests waiting on the peer fail with api.ErrPeerRemoved.
func (s *Store) destroyPeer(p *peer) error {
	tomb := proto.CloneOf(p.region)
	if tomb == nil {
		tomb = &raftkvpb.Region{Id: p.regionID}
	}
	tomb.NextPeerId = max(nextPeerID(tomb), p.id+1)
	wb := new(kvs.Batch)
	u := p.st.NewUpdate(wb)
	if err := u.Destroy(tomb, p.region != nil); err != nil {
		return err
	}
	if err := s.eng.Write(wb, kvs.Sync); err != nil {
		return fmt.Errorf("%w: destroy peer %d of region %d: %w", errEngine, p.id, p.regionID, err)
	}
	if err := u.Commit(); err != nil {
		return err
	}
	_ = p.st.Close()
	p.destroyed = true
	if s.peers[p.regionID] == p {
		delete(s.peers, p.regionID)
	}
	if s.tombstones != nil {
		s.tombstones[p.regionID] = tomb.GetNextPeerId()
	}
	p.failAll(fmt.Errorf("region %d: %w", p.regionID, api.ErrPeerRemoved))
	s.statusMu.Lock()
	delete(s.status, p.regionID)
	s.statusMu.Unlock()
	s.cfg.Logger.Infof("region %d: peer %d destroyed", p.regionID, p.id)
	return nil
}

// failAll answers every request waiting on the peer with err (reads with
// a NotLeaderError if err is api.ErrPeerRemoved: a read has no effect).
func (p *peer) failAll(err error) {
	for id, pr := range p.proposals {
		pr.done <- err
		delete(p.proposals, id)
	}
	readErr := err
	if p.destroyed {
		readErr = &api.NotLeaderError{RegionID: p.regionID}
	}
	for _, r := range p.reads {
		r.done <- &readResult{err: readErr}
	}
	p.reads = nil
	if p.transfer != nil {
		p.transfer.done <- err
		p.transfer = nil
	}
}

// nextPeerID returns the smallest raft node id region may give a new
// peer: its NextPeerId, but at least one above every id it lists (a
// region bootstrapped without NextPeerId).
func nextPeerID(region *raftkvpb.Region) uint64 {
	next := max(region.GetNextPeerId(), 1)
	for _, pe := range region.GetPeers() {
		next = max(next, pe.GetId()+1)
	}
	return next
}

// peerOnStore returns region's peer on store storeID, nil if none.
func peerOnStore(region *raftkvpb.Region, storeID uint64) *raftkvpb.Peer {
	for _, pe := range region.GetPeers() {
		if pe.GetStoreId() == storeID {
			return pe
		}
	}
	return nil
}

// regionPeer returns region's peer with raft id id, nil if none.
func regionPeer(region *raftkvpb.Region, id uint64) *raftkvpb.Peer {
	for _, pe := range region.GetPeers() {
		if pe.GetId() == id {
			return pe
		}
	}
	return nil
}

// confChangeContext decodes the context of a conf change entry; empty if
// it has none or it does not decode (every replica alike).
func confChangeContext(e *raftpb.Entry) *raftkvpb.ConfChangeContext {
	ctx := &raftkvpb.ConfChangeContext{}
	if e.GetType() != raftpb.EntryConfChangeV2 {
		return ctx
	}
	cc := &raftpb.ConfChangeV2{}
	if proto.Unmarshal(e.GetData(), cc) != nil || proto.Unmarshal(cc.GetContext(), ctx) != nil {
		return &raftkvpb.ConfChangeContext{}
	}
	return ctx
}
