package store

import (
	"fmt"

	"github.com/kvs-lab/kvs/raftkv/raftkvpb"
	"go.etcd.io/raft/v3/raftpb"
)

// Messages from other stores are input: the store checks them before raft
// sees them, because raft trusts its peers and panics (Panicf) on some
// malformed messages, such as a MsgApp whose entries do not follow its
// index. An invalid message is dropped, counted (InvalidMessages) and
// logged at Warn once per sending store.
//
// The checks cover the shape of a message, not its history: raft still
// panics on a message that is well formed but contradicts what this peer
// holds (a heartbeat committing past its log, an append rewriting a
// committed entry), which only a faulty or malicious peer sends. As a last
// line of defence the store recovers from a panic in RawNode.Step and
// stops its loop with an error (see step) instead of taking the process
// down.

// wireTypes are the raft messages one peer sends another; the others are
// local to a node (MsgHup, MsgBeat, MsgStorageAppend, ...) or forwarded
// requests the store never makes (MsgProp: DisableProposalForwarding;
// MsgReadIndex and MsgTransferLeader: only a leader starts them) and
// never come over the network.
// MsgSnap comes only through a snapshot stream (HandleSnapshot).
var wireTypes = map[raftpb.MessageType]bool{
	raftpb.MsgApp: true, raftpb.MsgAppResp: true,
	raftpb.MsgVote: true, raftpb.MsgVoteResp: true,
	raftpb.MsgPreVote: true, raftpb.MsgPreVoteResp: true,
	raftpb.MsgHeartbeat: true, raftpb.MsgHeartbeatResp: true,
	raftpb.MsgTimeoutNow: true, raftpb.MsgReadIndexResp: true,
}

// checkMessage checks the shape of a raft message from another store:
// a type peers send, a term, raft's from and to matching the wrapper's
// peers, and a region. snap is set for the MsgSnap of a snapshot stream.
func checkMessage(m *raftkvpb.RaftMessage, snap bool) error {
	msg := m.GetMessage()
	switch {
	case msg == nil:
		return fmt.Errorf("no raft message")
	case m.GetRegionId() == 0:
		return fmt.Errorf("%v without a region id", msg.GetType())
	case snap != (msg.GetType() == raftpb.MsgSnap):
		return fmt.Errorf("a %v out of place", msg.GetType())
	case !snap && !wireTypes[msg.GetType()]:
		return fmt.Errorf("a %v, which peers do not send", msg.GetType())
	case msg.GetTerm() == 0:
		// NB: raft takes a message of term 0 for a local one.
		return fmt.Errorf("%v of term 0", msg.GetType())
	case msg.GetTo() == 0 || msg.GetTo() != m.GetToPeer().GetId():
		return fmt.Errorf("%v to raft node %d wrapped for peer %d", msg.GetType(), msg.GetTo(), m.GetToPeer().GetId())
	case msg.GetFrom() == 0 || msg.GetFrom() != m.GetFromPeer().GetId() || m.GetFromPeer().GetStoreId() == 0:
		return fmt.Errorf("%v from raft node %d wrapped as peer %d of store %d", msg.GetType(), msg.GetFrom(),
			m.GetFromPeer().GetId(), m.GetFromPeer().GetStoreId())
	}
	switch msg.GetType() {
	case raftpb.MsgApp:
		// raft's log panics on entries that do not follow the message's
		// index, and relies on terms that never decrease (§5.3).
		next, term := msg.GetIndex()+1, msg.GetLogTerm()
		if term > msg.GetTerm() {
			return fmt.Errorf("MsgApp of term %d after an entry of term %d", msg.GetTerm(), term)
		}
		for _, e := range msg.GetEntries() {
			if e.GetIndex() != next || e.GetTerm() < term || e.GetTerm() > msg.GetTerm() {
				return fmt.Errorf("MsgApp of term %d at index %d: entry %d of term %d does not follow (want index %d, term %d to %d)",
					msg.GetTerm(), msg.GetIndex(), e.GetIndex(), e.GetTerm(), next, term, msg.GetTerm())
			}
			next, term = next+1, e.GetTerm()
		}
	case raftpb.MsgSnap:
		md := msg.GetSnapshot().GetMetadata()
		if md.GetIndex() == 0 || md.GetTerm() == 0 || md.GetTerm() > msg.GetTerm() || md.GetConfState() == nil {
			return fmt.Errorf("MsgSnap of term %d with snapshot index %d term %d", msg.GetTerm(), md.GetIndex(), md.GetTerm())
		}
	}
	return nil
}

// checkSender checks that m's sender may talk to p: a member of p's
// region (as p applied it, with the store the region names), or a peer
// sending what a leader or a candidate sends to a member that has not
// heard of it yet (a peer added after p's applied index). An
// uninitialized peer has no region and takes those messages from anyone.
func checkSender(p *peer, m *raftkvpb.RaftMessage) error {
	from := m.GetFromPeer()
	pe := regionPeer(p.region, from.GetId())
	switch {
	case pe != nil && pe.GetStoreId() != from.GetStoreId():
		return fmt.Errorf("%v from peer %d of store %d: region %d has that peer on store %d",
			m.GetMessage().GetType(), from.GetId(), from.GetStoreId(), p.regionID, pe.GetStoreId())
	case pe == nil && p.region != nil && !createsPeer(m.GetMessage().GetType()):
		return fmt.Errorf("%v from peer %d of store %d, not a member of region %d",
			m.GetMessage().GetType(), from.GetId(), from.GetStoreId(), p.regionID)
	}
	return nil
}

// checkSnapshotHeader checks what ApplySnapshotData and
// raftstorage.Update.ApplySnapshot will rely on when the snapshot's Ready
// comes, beyond the stream's shape: the header's region is the message's,
// and lists the receiving peer on this store.
func checkSnapshotHeader(storeID uint64, hdr *raftkvpb.SnapshotHeader) error {
	msg, region := hdr.GetMessage(), hdr.GetRegion()
	to := msg.GetToPeer()
	switch {
	case region.GetId() != msg.GetRegionId():
		return fmt.Errorf("header of region %d for a message of region %d", region.GetId(), msg.GetRegionId())
	case to.GetStoreId() != storeID:
		return fmt.Errorf("snapshot for store %d", to.GetStoreId())
	}
	if pe := regionPeer(region, to.GetId()); pe == nil || pe.GetStoreId() != storeID {
		return fmt.Errorf("region %d of the snapshot does not list peer %d on store %d", region.GetId(), to.GetId(), storeID)
	}
	return nil
}

// dropInvalid counts an invalid message and logs the first one of each
// sending store.
func (s *Store) dropInvalid(m *raftkvpb.RaftMessage, err error) {
	s.invalidMsgs.Add(1)
	from := m.GetFromPeer().GetStoreId()
	if s.invalidFrom == nil {
		s.invalidFrom = map[uint64]bool{}
	}
	if !s.invalidFrom[from] {
		s.invalidFrom[from] = true
		s.cfg.Logger.Warnf("dropped an invalid raft message from store %d (region %d): %v (further ones from that store are only counted)",
			from, m.GetRegionId(), err)
	}
}

// InvalidMessages returns how many raft messages from other stores the
// store dropped as malformed since it started (see the checks in
// validate.go). Snapshot streams that fail the checks are refused by
// HandleSnapshot instead.
func (s *Store) InvalidMessages() uint64 { return s.invalidMsgs.Load() }
