package store

import (
	"context"
	"errors"
	"fmt"
	"strings"
	"testing"

	"github.com/kvs-lab/kvs"
	"github.com/kvs-lab/kvs/raftkv/raftkvpb"
	"github.com/kvs-lab/kvs/raftkv/raftstorage"
	"github.com/kvs-lab/kvs/raftkv/transport"
	"go.etcd.io/raft/v3/raftpb"
	"google.golang.org/protobuf/proto"
)

// These tests drive one store's loop by hand: loopStore builds a Store
// of region testRegion without starting its goroutine, so a test pushes
// work and calls round() itself.

const testClusterID = 7

var testRegion = &raftkvpb.Region{Id: 1, Epoch: &raftkvpb.RegionEpoch{ConfVer: 1, Version: 1},
	Peers: []*raftkvpb.Peer{{Id: 101, StoreId: 1}, {Id: 102, StoreId: 2}, {Id: 103, StoreId: 3}}}

// loopStore returns store 1 of testRegion on a fresh engine, and its peer.
func loopStore(t testing.TB) (*Store, *peer) {
	t.Helper()
	return loopStoreOf(t, testRegion)
}

// loopStoreOf is loopStore for store 1 of region.
func loopStoreOf(t testing.TB, region *raftkvpb.Region) (*Store, *peer) {
	t.Helper()
	eng, err := kvs.Open("lsm", t.TempDir(), &kvs.Options{Logger: kvs.DiscardLogger()})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { eng.Close() })
	if err := Bootstrap(eng, region); err != nil {
		t.Fatal(err)
	}
	cfg, err := (&Config{StoreID: 1, ClusterID: testClusterID, Engine: eng, Transport: transport.NewNetwork(1).Transport(1),
		Logger: kvs.DiscardLogger()}).withDefaults()
	if err != nil {
		t.Fatal(err)
	}
	s := &Store{cfg: cfg, id: 1, eng: eng, peers: map[uint64]*peer{}, tombstones: map[uint64]uint64{},
		status: map[uint64]RegionStatus{}, stopc: make(chan struct{}), loopDone: make(chan struct{}), bootID: newBootID()}
	s.in.notify = make(chan struct{}, 1)
	s.snapCtx, s.snapCancel = context.WithCancel(context.Background())
	p, err := s.openPeer(1)
	if err != nil {
		t.Fatal(err)
	}
	s.peers[1] = p
	t.Cleanup(func() { p.st.Close() })
	return s, p
}

// snapStream is a snapshot stream from peer 102 to peer 101 of a region
// with no data, at index and term; header is the region in its header.
func snapStream(header *raftkvpb.Region, index, term uint64) []*raftkvpb.SnapshotChunk {
	msg := &raftkvpb.RaftMessage{
		RegionId: 1, ClusterId: testClusterID, RegionEpoch: header.GetEpoch(),
		FromPeer: &raftkvpb.Peer{Id: 102, StoreId: 2}, ToPeer: &raftkvpb.Peer{Id: 101, StoreId: 1},
		Message: &raftpb.Message{Type: raftpb.MsgSnap.Enum(), To: u64(101), From: u64(102), Term: u64(term),
			Snapshot: &raftpb.Snapshot{Metadata: &raftpb.SnapshotMetadata{Index: u64(index), Term: u64(term),
				ConfState: &raftpb.ConfState{Voters: []uint64{101, 102, 103}}}}},
	}
	return []*raftkvpb.SnapshotChunk{
		{Chunk: &raftkvpb.SnapshotChunk_Header{Header: &raftkvpb.SnapshotHeader{
			Message: msg, Region: header, ApplyState: &raftkvpb.RaftApplyState{AppliedIndex: index}}}},
		{Chunk: &raftkvpb.SnapshotChunk_Footer{Footer: &raftkvpb.SnapshotFooter{}}},
	}
}

// TestProposalAnsweredOnlyByItsOwnEntry: proposal ids start again after
// a restart, so an entry the store proposed in a previous life, committed
// in a later term, can carry the tag of a proposal waiting now at a later
// index (here even with the same boot id, as if the random boot ids
// collided). Applying it must not answer that proposal: only its own
// entry, at the index and term it was appended at, does (a write
// acknowledged before its entry commits breaks linearizability).
func TestProposalAnsweredOnlyByItsOwnEntry(t *testing.T) {
	s, p := loopStore(t)
	first := uint64(raftstorage.InitIndex + 1)
	old := &raftkvpb.Request{ClientId: 9, Seq: 1, StoreId: 1, BootId: s.bootID, ProposalId: 1,
		Ops: []*raftkvpb.Op{{Key: []byte("a"), Value: []byte("old life")}}}
	data, err := proto.Marshal(old)
	if err != nil {
		t.Fatal(err)
	}
	ents := []*raftpb.Entry{
		{Type: raftpb.EntryNormal.Enum(), Term: u64(6), Index: u64(first), Data: data},
		{Type: raftpb.EntryNormal.Enum(), Term: u64(7), Index: u64(first + 1)}, // the new leader's empty entry
	}
	wb := new(kvs.Batch)
	u := p.st.NewUpdate(wb)
	if err := u.Append(ents); err != nil {
		t.Fatal(err)
	}
	if err := u.SetHardState(&raftpb.HardState{Term: u64(7), Commit: u64(first + 1)}); err != nil {
		t.Fatal(err)
	}
	if err := s.eng.Write(wb, kvs.Sync); err != nil {
		t.Fatal(err)
	}
	if err := u.Commit(); err != nil {
		t.Fatal(err)
	}
	// This life's first proposal: id 1, appended at first+2 in term 7,
	// not committed.
	pr := &proposal{req: &raftkvpb.Request{ClientId: 10, Seq: 1, StoreId: 1, BootId: s.bootID, ProposalId: 1,
		Ops: []*raftkvpb.Op{{Key: []byte("b"), Value: []byte("new")}}},
		done: make(chan error, 1), index: first + 2, term: 7}
	p.proposals[1] = pr
	if _, err := s.apply(p, ents); err != nil {
		t.Fatal(err)
	}
	select {
	case err := <-pr.done:
		t.Fatalf("proposal at index %d answered (%v) by the entry at index %d", pr.index, err, first)
	default:
	}
	if p.proposals[1] != pr {
		t.Fatal("the proposal no longer waits")
	}
}

// TestSnapshotStreamsOfOneRoundKeptApart: two valid snapshot streams for
// the same peer reach the loop in one round, the newer one first. Raft
// restores the first and refuses the second; the Ready must apply the
// first one's data (the stream matching its metadata), not the last one
// that arrived, and the round must not fail.
func TestSnapshotStreamsOfOneRoundKeptApart(t *testing.T) {
	s, p := loopStore(t)
	if err := s.HandleSnapshot(snapStream(testRegion, 100, 6)); err != nil {
		t.Fatal(err)
	}
	if err := s.HandleSnapshot(snapStream(testRegion, 50, 6)); err != nil {
		t.Fatal(err)
	}
	if err := s.round(); err != nil {
		t.Fatalf("round: %v", err)
	}
	if got := p.st.AppliedIndex(); got != 100 {
		t.Fatalf("applied index %d after the snapshots, want 100", got)
	}
	if p.snapStreams != nil {
		t.Fatalf("%d snapshot streams kept after the round", len(p.snapStreams))
	}
}

// TestSnapshotStreamRefusedBeforeRaft: a snapshot stream that would make
// the Ready applying it fail (and stop the loop for good) is refused by
// HandleSnapshot, before raft steps its MsgSnap.
func TestSnapshotStreamRefusedBeforeRaft(t *testing.T) {
	otherRegion := proto.CloneOf(testRegion)
	otherRegion.Id = 2
	notListed := proto.CloneOf(testRegion)
	notListed.Peers = notListed.Peers[1:]
	movedPeer := proto.CloneOf(testRegion)
	movedPeer.Peers[0].StoreId = 4
	for name, chunks := range map[string][]*raftkvpb.SnapshotChunk{
		"header of another region":       snapStream(otherRegion, 100, 6),
		"region without the receiver":    snapStream(notListed, 100, 6),
		"region with the receiver moved": snapStream(movedPeer, 100, 6),
		"snapshot of term 0":             snapStream(testRegion, 100, 0),
		"snapshot index 0":               snapStream(testRegion, 0, 6),
	} {
		t.Run(name, func(t *testing.T) {
			s, p := loopStore(t)
			if err := s.HandleSnapshot(chunks); err == nil {
				t.Error("HandleSnapshot accepted the stream")
			}
			if err := s.round(); err != nil {
				t.Fatalf("round: %v", err)
			}
			if got := p.st.AppliedIndex(); got != raftstorage.InitIndex {
				t.Fatalf("applied index %d, want %d", got, raftstorage.InitIndex)
			}
		})
	}
}

// TestSnapshotOfOlderEpochDropped: a snapshot whose region epoch is older
// than the peer's is dropped in the loop, before raft restores it.
func TestSnapshotOfOlderEpochDropped(t *testing.T) {
	s, p := loopStore(t)
	newer := proto.CloneOf(testRegion)
	newer.Epoch.ConfVer = 3
	p.region = newer
	if err := s.HandleSnapshot(snapStream(testRegion, 100, 6)); err != nil {
		t.Fatal(err)
	}
	if err := s.round(); err != nil {
		t.Fatalf("round: %v", err)
	}
	if got := p.st.AppliedIndex(); got != raftstorage.InitIndex {
		t.Fatalf("applied index %d: a snapshot of an older epoch was applied", got)
	}
}

// raftMsg wraps msg from peer 102 on store 2 to peer 101 on store 1.
func raftMsg(msg *raftpb.Message) *raftkvpb.RaftMessage {
	return &raftkvpb.RaftMessage{
		RegionId: 1, ClusterId: testClusterID, RegionEpoch: testRegion.GetEpoch(),
		FromPeer: &raftkvpb.Peer{Id: 102, StoreId: 2}, ToPeer: &raftkvpb.Peer{Id: 101, StoreId: 1},
		Message: msg,
	}
}

// TestMalformedMessagesDropped: raft messages that raft would panic on,
// or that lie about who sends them, are dropped and counted before raft
// steps them; the loop goes on.
func TestMalformedMessagesDropped(t *testing.T) {
	app := func(index, logTerm, term uint64, ents ...*raftpb.Entry) *raftpb.Message {
		return &raftpb.Message{Type: raftpb.MsgApp.Enum(), To: u64(101), From: u64(102), Term: u64(term),
			Index: u64(index), LogTerm: u64(logTerm), Commit: u64(raftstorage.InitIndex), Entries: ents}
	}
	ent := func(index, term uint64) *raftpb.Entry { return &raftpb.Entry{Index: u64(index), Term: u64(term)} }
	init := uint64(raftstorage.InitIndex)
	term := uint64(raftstorage.InitTerm)
	withPeers := func(m *raftkvpb.RaftMessage, from, to *raftkvpb.Peer) *raftkvpb.RaftMessage {
		m.FromPeer, m.ToPeer = from, to
		return m
	}
	for name, m := range map[string]*raftkvpb.RaftMessage{
		"MsgApp with a gap":              raftMsg(app(init, term, 5, ent(init+5, 5))),
		"MsgApp entries out of order":    raftMsg(app(init, term, 5, ent(init+1, 5), ent(init+3, 5), ent(init+2, 5))),
		"MsgApp term going down":         raftMsg(app(init, term, 5, ent(init+1, 5), ent(init+2, 4))),
		"MsgApp entry above its term":    raftMsg(app(init, term, 5, ent(init+1, 6))),
		"MsgApp log term above its term": raftMsg(app(init, 6, 5)),
		"term 0":                         raftMsg(app(init, term, 0)),
		"local type":                     raftMsg(&raftpb.Message{Type: raftpb.MsgHup.Enum(), To: u64(101), From: u64(102), Term: u64(5)}),
		"proposal":                       raftMsg(&raftpb.Message{Type: raftpb.MsgProp.Enum(), To: u64(101), From: u64(102), Term: u64(5), Entries: []*raftpb.Entry{{}}}),
		"raft to another peer":           withPeers(raftMsg(app(init, term, 5)), &raftkvpb.Peer{Id: 102, StoreId: 2}, &raftkvpb.Peer{Id: 101, StoreId: 1}),
		"raft from another peer":         withPeers(raftMsg(app(init, term, 5)), &raftkvpb.Peer{Id: 103, StoreId: 3}, &raftkvpb.Peer{Id: 101, StoreId: 1}),
		"response from a non-member": withPeers(raftMsg(&raftpb.Message{Type: raftpb.MsgAppResp.Enum(), To: u64(101), From: u64(109), Term: u64(5)}),
			&raftkvpb.Peer{Id: 109, StoreId: 9}, &raftkvpb.Peer{Id: 101, StoreId: 1}),
		"member on the wrong store": withPeers(raftMsg(app(init, term, 5)), &raftkvpb.Peer{Id: 102, StoreId: 3}, &raftkvpb.Peer{Id: 101, StoreId: 1}),
	} {
		t.Run(name, func(t *testing.T) {
			if name == "raft to another peer" {
				m.Message.To = u64(103)
			}
			s, p := loopStore(t)
			s.HandleRaft(&raftkvpb.RaftMessageBatch{Msgs: []*raftkvpb.RaftMessage{m}})
			func() {
				defer func() {
					if r := recover(); r != nil {
						t.Fatalf("the loop panicked: %v", r)
					}
				}()
				if err := s.round(); err != nil {
					t.Fatalf("round: %v", err)
				}
			}()
			if s.InvalidMessages() != 1 {
				t.Errorf("%d invalid messages counted, want 1", s.InvalidMessages())
			}
			if st := p.rn.BasicStatus(); st.GetTerm() != term {
				t.Errorf("raft moved to term %d: it stepped the message", st.GetTerm())
			}
		})
	}
}

// TestRaftPanicStopsTheLoop: a message well formed but contradicting the
// peer's log (a heartbeat committing past its last index) makes raft
// panic; the store turns that into an error that stops its loop instead
// of crashing the process.
func TestRaftPanicStopsTheLoop(t *testing.T) {
	s, _ := loopStore(t)
	s.HandleRaft(&raftkvpb.RaftMessageBatch{Msgs: []*raftkvpb.RaftMessage{raftMsg(&raftpb.Message{
		Type: raftpb.MsgHeartbeat.Enum(), To: u64(101), From: u64(102), Term: u64(5), Commit: u64(raftstorage.InitIndex + 50)})}})
	err := s.round()
	if err == nil {
		t.Skip("raft no longer panics on a heartbeat past the log")
	}
	if !errors.Is(err, errRaftPanic) {
		t.Fatalf("round: %v, want an error wrapping errRaftPanic", err)
	}
}

// TestEngineOfAnotherStoreRefused: the first start of a store on an
// engine records its identity (cluster id, store id); New refuses the
// engine to another store or cluster (which would vote and acknowledge
// with this store's log: two leaders in one term), and a zero cluster id.
func TestEngineOfAnotherStoreRefused(t *testing.T) {
	eng, err := kvs.Open("lsm", t.TempDir(), &kvs.Options{Logger: kvs.DiscardLogger()})
	if err != nil {
		t.Fatal(err)
	}
	defer eng.Close()
	if err := Bootstrap(eng, testRegion); err != nil {
		t.Fatal(err)
	}
	net := transport.NewNetwork(1)
	defer net.Close()
	start := func(storeID, clusterID uint64) error {
		s, err := New(Config{StoreID: storeID, ClusterID: clusterID, Engine: eng, Transport: net.Transport(storeID), Logger: kvs.DiscardLogger()})
		if err == nil {
			s.Stop()
		}
		return err
	}
	if err := start(1, 0); err == nil {
		t.Fatal("New took cluster id 0")
	}
	if err := start(1, testClusterID); err != nil {
		t.Fatalf("first start: %v", err)
	}
	if err := start(1, testClusterID); err != nil {
		t.Fatalf("restart: %v", err)
	}
	for _, c := range []struct{ store, cluster uint64 }{{2, testClusterID}, {1, testClusterID + 1}} {
		err := start(c.store, c.cluster)
		if err == nil {
			t.Fatalf("store %d of cluster %d started on store 1's engine", c.store, c.cluster)
		}
		for _, want := range []string{"store 1 of cluster 7", fmt.Sprintf("store %d of cluster %d", c.store, c.cluster)} {
			if !strings.Contains(err.Error(), want) {
				t.Errorf("error %q does not name %q", err, want)
			}
		}
	}
	// The refused starts changed nothing: store 1 still runs on it.
	if err := start(1, testClusterID); err != nil {
		t.Fatalf("restart after the refusals: %v", err)
	}
}

// TestBusyRoundWakesItself: a round that stops handling Readies while a
// peer still has one (to give the inbox a turn) must make the loop run
// again, not wait for a tick or a message that may never come.
func TestBusyRoundWakesItself(t *testing.T) {
	defer func(n int) { maxReadyPasses = n }(maxReadyPasses)
	maxReadyPasses = 1
	// A one-peer region: its campaign takes several Readies (the vote
	// and the leader's empty entry, then their commit, then ...).
	s, p := loopStoreOf(t, &raftkvpb.Region{Id: 1, Epoch: &raftkvpb.RegionEpoch{ConfVer: 1, Version: 1},
		Peers: []*raftkvpb.Peer{{Id: 101, StoreId: 1}}})
	if err := p.rn.Campaign(); err != nil {
		t.Fatal(err)
	}
	select {
	case <-s.in.notify:
	default:
	}
	if err := s.round(); err != nil {
		t.Fatal(err)
	}
	if !p.rn.HasReady() {
		t.Fatal("the round left no Ready: the test no longer covers a busy round")
	}
	select {
	case <-s.in.notify:
	default:
		t.Fatal("the round stopped with a Ready pending and did not wake the loop")
	}
}
