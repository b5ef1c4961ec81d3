package store

import (
	"errors"
	"testing"

	"github.com/kvs-lab/kvs"
	_ "github.com/kvs-lab/kvs/lsm"
	"github.com/kvs-lab/kvs/raftkv/raftkvpb"
	"github.com/kvs-lab/kvs/raftkv/raftstorage"
	"github.com/kvs-lab/kvs/raftkv/transport"
	"go.etcd.io/raft/v3/raftpb"
	"google.golang.org/protobuf/proto"
)

func u64(v uint64) *uint64 { return &v }

// TestApplyEveryCommittedEntryKind feeds apply one of each entry kind a
// committed log can hold: a leader's empty entry, a conf change the
// application voided (node id 0, as raft's callers do) and the empty
// normal entry raft puts in place of a conf change it refused, an
// undecodable entry, a real removal, and a write. Each conf change entry
// goes through RawNode.ApplyConfChange (a skipped one would leave raft's
// membership behind the log's), the applied index covers them all, and
// the membership and region survive a reopen.
func TestApplyEveryCommittedEntryKind(t *testing.T) {
	eng, err := kvs.Open("lsm", t.TempDir(), &kvs.Options{Logger: kvs.DiscardLogger()})
	if err != nil {
		t.Fatal(err)
	}
	defer eng.Close()
	region := &raftkvpb.Region{Id: 1, Epoch: &raftkvpb.RegionEpoch{ConfVer: 1, Version: 1},
		Peers: []*raftkvpb.Peer{{Id: 101, StoreId: 1}, {Id: 102, StoreId: 2}, {Id: 103, StoreId: 3}}}
	if err := Bootstrap(eng, region); err != nil {
		t.Fatal(err)
	}
	cfg, err := (&Config{StoreID: 1, Engine: eng, Transport: transport.NewNetwork(1).Transport(1), Logger: kvs.DiscardLogger()}).withDefaults()
	if err != nil {
		t.Fatal(err)
	}
	s := &Store{cfg: cfg, id: 1, eng: eng, peers: map[uint64]*peer{}}
	p, err := s.openPeer(1)
	if err != nil {
		t.Fatal(err)
	}
	defer p.st.Close()

	marshal := func(m proto.Message) []byte {
		b, err := proto.Marshal(m)
		if err != nil {
			t.Fatal(err)
		}
		return b
	}
	voided := marshal(&raftpb.ConfChange{Type: raftpb.ConfChangeAddNode.Enum(), NodeId: u64(0)})
	remove := marshal(&raftpb.ConfChangeV2{Changes: []*raftpb.ConfChangeSingle{{Type: raftpb.ConfChangeRemoveNode.Enum(), NodeId: u64(103)}}})
	write := marshal(&raftkvpb.Request{ClientId: 9, Seq: 1, Ops: []*raftkvpb.Op{{Key: []byte("k"), Value: []byte("v")}}})
	first := uint64(raftstorage.InitIndex + 1)
	kinds := []struct {
		typ  raftpb.EntryType
		data []byte
	}{
		{raftpb.EntryNormal, nil},          // a new leader's empty entry
		{raftpb.EntryConfChange, voided},   // voided conf change
		{raftpb.EntryNormal, nil},          // what raft leaves of a refused conf change
		{raftpb.EntryNormal, []byte{0xff}}, // not a request: skipped by every replica alike
		{raftpb.EntryConfChangeV2, remove}, // a real change
		{raftpb.EntryNormal, write},        // a write after it
	}
	var ents []*raftpb.Entry
	for i, k := range kinds {
		ents = append(ents, &raftpb.Entry{Type: k.typ.Enum(), Term: u64(6), Index: u64(first + uint64(i)), Data: k.data})
	}
	last := ents[len(ents)-1].GetIndex()
	// Persist the entries as committed, as a Ready would have.
	wb := new(kvs.Batch)
	u := p.st.NewUpdate(wb)
	if err := u.Append(ents); err != nil {
		t.Fatal(err)
	}
	if err := u.SetHardState(&raftpb.HardState{Term: u64(6), Commit: u64(last)}); err != nil {
		t.Fatal(err)
	}
	if err := eng.Write(wb, kvs.Sync); err != nil {
		t.Fatal(err)
	}
	if err := u.Commit(); err != nil {
		t.Fatal(err)
	}

	if _, err := s.apply(p, ents); err != nil {
		t.Fatal(err)
	}
	if got := p.st.AppliedIndex(); got != last {
		t.Errorf("applied %d, want %d", got, last)
	}
	if v, err := eng.Get(raftstorage.DataKey([]byte("k"))); err != nil || string(v) != "v" {
		t.Errorf("k = %q, %v", v, err)
	}
	check := func(when string, st *raftstorage.Storage) {
		_, cs, _ := st.InitialState()
		if got := cs.GetVoters(); len(got) != 2 || got[0] != 101 || got[1] != 102 {
			t.Errorf("%s: voters %v, want [101 102]", when, got)
		}
		r := st.RegionState().GetRegion()
		if len(r.GetPeers()) != 2 || r.GetEpoch().GetConfVer() != 2 {
			t.Errorf("%s: region peers %v conf_ver %d; want 2 peers, conf_ver 2", when, r.GetPeers(), r.GetEpoch().GetConfVer())
		}
	}
	check("after apply", p.st)
	if st := p.rn.Status(); len(st.Config.Voters[0]) != 2 {
		t.Errorf("raft's voters %v, want 2", st.Config.Voters[0])
	}
	reopened, err := raftstorage.Open(eng, 1)
	if err != nil {
		t.Fatal(err)
	}
	defer reopened.Close()
	check("after reopen", reopened)
}

// TestRemovedPeerDestroyedAtOpen applies the removal of the store's own
// peer and stops before destroying it (a crash between the apply and the
// destroy): the next New finds a region that no longer lists the store,
// finishes the destroy (a tombstone, no data) and starts without the
// peer.
func TestRemovedPeerDestroyedAtOpen(t *testing.T) {
	eng, err := kvs.Open("lsm", t.TempDir(), &kvs.Options{Logger: kvs.DiscardLogger()})
	if err != nil {
		t.Fatal(err)
	}
	defer eng.Close()
	region := &raftkvpb.Region{Id: 1, Epoch: &raftkvpb.RegionEpoch{ConfVer: 1, Version: 1},
		Peers: []*raftkvpb.Peer{{Id: 101, StoreId: 1}, {Id: 102, StoreId: 2}, {Id: 103, StoreId: 3}}}
	if err := Bootstrap(eng, region); err != nil {
		t.Fatal(err)
	}
	if err := eng.Put(raftstorage.DataKey([]byte("k")), []byte("v"), kvs.Sync); err != nil {
		t.Fatal(err)
	}
	cfg := Config{StoreID: 1, ClusterID: 7, Engine: eng, Transport: transport.NewNetwork(1).Transport(1), Logger: kvs.DiscardLogger()}
	c, err := cfg.withDefaults()
	if err != nil {
		t.Fatal(err)
	}
	s := &Store{cfg: c, id: 1, eng: eng, peers: map[uint64]*peer{}, tombstones: map[uint64]uint64{}}
	p, err := s.openPeer(1)
	if err != nil {
		t.Fatal(err)
	}
	remove, err := proto.Marshal(&raftpb.ConfChangeV2{Changes: []*raftpb.ConfChangeSingle{{Type: raftpb.ConfChangeRemoveNode.Enum(), NodeId: u64(101)}}})
	if err != nil {
		t.Fatal(err)
	}
	ents := []*raftpb.Entry{{Type: raftpb.EntryConfChangeV2.Enum(), Term: u64(6), Index: u64(raftstorage.InitIndex + 1), Data: remove}}
	wb := new(kvs.Batch)
	u := p.st.NewUpdate(wb)
	if err := u.Append(ents); err != nil {
		t.Fatal(err)
	}
	if err := u.SetHardState(&raftpb.HardState{Term: u64(6), Commit: u64(raftstorage.InitIndex + 1)}); err != nil {
		t.Fatal(err)
	}
	if err := eng.Write(wb, kvs.Sync); err != nil {
		t.Fatal(err)
	}
	if err := u.Commit(); err != nil {
		t.Fatal(err)
	}
	if removed, err := s.apply(p, ents); err != nil || !removed {
		t.Fatalf("apply of the own removal: removed %v, %v", removed, err)
	}
	_ = p.st.Close()

	st, err := New(cfg)
	if err != nil {
		t.Fatal(err)
	}
	defer st.Stop()
	if got := st.Status(); len(got) != 0 {
		t.Errorf("store runs %v, want no peer", got)
	}
	rs, err := raftstorage.Open(eng, 1)
	if err != nil {
		t.Fatal(err)
	}
	defer rs.Close()
	if r := rs.RegionState(); r.GetState() != raftkvpb.PeerState_Tombstone || r.GetRegion().GetNextPeerId() != 104 {
		t.Errorf("region state %v; want a tombstone with next peer id 104", r)
	}
	if _, err := eng.Get(raftstorage.DataKey([]byte("k"))); !errors.Is(err, kvs.ErrNotFound) {
		t.Errorf("data left after the destroy: %v", err)
	}
}
