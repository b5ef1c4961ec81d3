package raftstorage_test

import (
	"fmt"
	"io"
	"strings"
	"testing"

	"github.com/kvs-lab/kvs"
	"github.com/kvs-lab/kvs/raftkv/raftkvpb"
	"github.com/kvs-lab/kvs/raftkv/raftstorage"
	"go.etcd.io/raft/v3"
	"go.etcd.io/raft/v3/raftpb"
)

// cluster is three RawNodes over Storages on three engines, connected by
// an in-memory message queue delivered in order. It follows the Ready
// loop the store loop will use.
type cluster struct {
	t      *testing.T
	engine string
	nodes  map[uint64]*node
	queue  []*raftpb.Message
	// down nodes neither send nor receive.
	down map[uint64]bool
}

type node struct {
	id uint64
	h  *harness
	st *raftstorage.Storage
	rn *raft.RawNode
	// snapChunks is the snapshot stream that arrived with the last
	// MsgSnap, as the transport will hand it over.
	snapChunks []*raftkvpb.SnapshotChunk
}

const regionID = 1

func newCluster(t *testing.T, engine string) *cluster {
	c := &cluster{t: t, engine: engine, nodes: map[uint64]*node{}, down: map[uint64]bool{}}
	for id := uint64(1); id <= 3; id++ {
		n := &node{id: id, h: newHarness(t, engine)}
		n.st = n.h.storage(regionID)
		n.h.update(n.st, func(u *raftstorage.Update) error { return u.Bootstrap(testRegion(regionID)) })
		c.nodes[id] = n
		c.startRaft(n)
	}
	return c
}

// startRaft makes n's RawNode from its Storage, as a restarting store
// does: Config.Applied is the stored applied index.
func (c *cluster) startRaft(n *node) {
	c.t.Helper()
	rn, err := raft.NewRawNode(&raft.Config{
		ID:              n.id,
		ElectionTick:    10,
		HeartbeatTick:   1,
		Storage:         n.st,
		Applied:         n.st.AppliedIndex(),
		MaxSizePerMsg:   1 << 20,
		MaxInflightMsgs: 256,
		PreVote:         true,
		CheckQuorum:     true,
		Logger:          kvs.DiscardLogger(),
	})
	if err != nil {
		c.t.Fatalf("node %d: %v", n.id, err)
	}
	n.rn = rn
}

// handleReady runs one Ready of n in the store loop's order: persist the
// entries and hard state in one synced batch and commit the Update, then
// send the messages, then apply the committed entries (data writes and the
// applied index in one batch), then Advance.
func (c *cluster) handleReady(n *node) {
	t := c.t
	rd := n.rn.Ready()
	wb := new(kvs.Batch)
	u := n.st.NewUpdate(wb)
	if !raft.IsEmptySnap(rd.Snapshot) {
		// The region's data and the snapshot's bookkeeping go into the
		// same batch as the Ready's entries and hard state.
		chunks := n.snapChunks
		n.snapChunks = nil
		hdr, err := raftstorage.ApplySnapshotData(n.h.eng, wb, func() (*raftkvpb.SnapshotChunk, error) {
			if len(chunks) == 0 {
				return nil, io.EOF
			}
			c := chunks[0]
			chunks = chunks[1:]
			return c, nil
		})
		if err != nil {
			t.Fatalf("node %d: %v", n.id, err)
		}
		if hdr.GetApplyState().GetAppliedIndex() != rd.Snapshot.GetMetadata().GetIndex() {
			t.Fatalf("node %d: snapshot data at %d, metadata at %d", n.id, hdr.GetApplyState().GetAppliedIndex(), rd.Snapshot.GetMetadata().GetIndex())
		}
		if err := u.ApplySnapshot(rd.Snapshot.GetMetadata(), hdr.GetRegion()); err != nil {
			t.Fatal(err)
		}
	}
	if err := u.Append(rd.Entries); err != nil {
		t.Fatal(err)
	}
	if err := u.SetHardState(rd.HardState); err != nil {
		t.Fatal(err)
	}
	if !wb.Empty() {
		if err := n.h.eng.Write(wb, kvs.WriteOptions{Sync: rd.MustSync}); err != nil {
			t.Fatal(err)
		}
	}
	if err := u.Commit(); err != nil {
		t.Fatal(err)
	}
	c.queue = append(c.queue, rd.Messages...)
	if len(rd.CommittedEntries) > 0 {
		wb := new(kvs.Batch)
		u := n.st.NewUpdate(wb)
		for _, e := range rd.CommittedEntries {
			switch e.GetType() {
			case raftpb.EntryNormal:
				if k, v, ok := strings.Cut(string(e.GetData()), "="); ok {
					wb.Put(raftstorage.DataKey([]byte(k)), []byte(v))
				}
			case raftpb.EntryConfChange, raftpb.EntryConfChangeV2:
				t.Fatalf("node %d: unexpected conf change", n.id)
			}
		}
		if err := u.SetApplied(rd.CommittedEntries[len(rd.CommittedEntries)-1].GetIndex()); err != nil {
			t.Fatal(err)
		}
		if err := n.h.eng.Write(wb, kvs.NoSync); err != nil {
			t.Fatal(err)
		}
		if err := u.Commit(); err != nil {
			t.Fatal(err)
		}
	}
	n.rn.Advance(rd)
}

// settle handles Readies and delivers messages until nothing moves.
func (c *cluster) settle() {
	for range 1000 {
		busy := false
		for id := uint64(1); id <= 3; id++ {
			if n := c.nodes[id]; n.rn.HasReady() {
				busy = true
				c.handleReady(n)
			}
		}
		msgs := c.queue
		c.queue = nil
		for _, m := range msgs {
			busy = true
			if c.down[m.GetFrom()] || c.down[m.GetTo()] {
				continue
			}
			if m.GetType() == raftpb.MsgSnap {
				c.sendSnapshot(m)
			}
			if err := c.nodes[m.GetTo()].rn.Step(m); err != nil && err != raft.ErrStepPeerNotFound {
				c.t.Fatalf("step %v to %d: %v", m.GetType(), m.GetTo(), err)
			}
		}
		if !busy {
			return
		}
	}
	c.t.Fatal("cluster did not settle")
}

// sendSnapshot streams the region snapshot of MsgSnap m from the sender's
// Storage to the receiver, as the transport will.
func (c *cluster) sendSnapshot(m *raftpb.Message) {
	from, to := c.nodes[m.GetFrom()], c.nodes[m.GetTo()]
	rs, err := from.st.AcquireSnapshot(m.GetSnapshot().GetMetadata().GetIndex())
	if err != nil {
		c.t.Fatalf("node %d: %v", from.id, err)
	}
	defer rs.Release()
	to.snapChunks = nil
	msg := &raftkvpb.RaftMessage{RegionId: regionID, Message: m}
	if err := rs.WriteChunks(msg, 256, func(ch *raftkvpb.SnapshotChunk) error {
		to.snapChunks = append(to.snapChunks, ch)
		return nil
	}); err != nil {
		c.t.Fatal(err)
	}
	from.rn.ReportSnapshot(to.id, raft.SnapshotFinish)
}

func (c *cluster) tick() {
	for id := uint64(1); id <= 3; id++ {
		c.nodes[id].rn.Tick()
	}
	c.settle()
}

// waitLeader ticks until one node leads and the others follow it.
func (c *cluster) waitLeader() *node {
	for range 200 {
		c.tick()
		var leader *node
		agree := true
		for _, n := range c.nodes {
			st := n.rn.BasicStatus()
			if st.RaftState == raft.StateLeader {
				leader = n
			}
			if st.Lead == raft.None {
				agree = false
			}
		}
		if leader != nil && agree {
			return leader
		}
	}
	c.t.Fatal("no leader elected")
	return nil
}

func (c *cluster) compact(keep uint64) {
	for _, n := range c.nodes {
		if c.down[n.id] {
			continue
		}
		applied := n.st.AppliedIndex()
		first, _ := n.st.FirstIndex()
		if applied > keep && applied-keep >= first {
			n.h.update(n.st, func(u *raftstorage.Update) error { return u.CompactTo(applied - keep) })
		}
	}
}

func (c *cluster) restart() {
	for _, n := range c.nodes {
		n.st = n.h.reopen(n.st)[0]
		c.startRaft(n)
	}
	c.queue = nil
}

func (c *cluster) propose(leader *node, from, to int) {
	for i := from; i < to; i++ {
		if err := leader.rn.Propose(fmt.Appendf(nil, "k%03d=v%03d", i, i)); err != nil {
			c.t.Fatalf("propose %d: %v", i, err)
		}
	}
	c.settle()
}

func (c *cluster) checkData(n int) {
	c.t.Helper()
	for _, nd := range c.nodes {
		got := dataOf(c.t, nd.h.eng)
		if len(got) != n {
			c.t.Errorf("node %d has %d keys, want %d", nd.id, len(got), n)
		}
		for i := range n {
			if k := fmt.Sprintf("k%03d", i); got[k] != fmt.Sprintf("v%03d", i) {
				c.t.Errorf("node %d: %s = %q", nd.id, k, got[k])
			}
		}
	}
}

// TestRawNodesReplicateAndRecover drives three etcd raft RawNodes (PreVote
// and CheckQuorum on) over this Storage through an election and 100
// proposals with log GC, closes everything, reopens the engines and the
// Storages, restarts the RawNodes with Config.Applied and checks that they
// elect a leader again, that every write is there, and that the log goes
// on from where it was.
func TestRawNodesReplicateAndRecover(t *testing.T) {
	for _, engine := range engineNames {
		t.Run("engine="+engine, func(t *testing.T) {
			c := newCluster(t, engine)
			leader := c.waitLeader()
			for batch := range 10 {
				c.propose(leader, batch*10, batch*10+10)
				if batch%3 == 2 {
					c.compact(5)
				}
			}
			c.checkData(100)
			lastBefore, _ := leader.st.LastIndex()
			for _, n := range c.nodes {
				if n.st.AppliedIndex() != lastBefore {
					t.Fatalf("node %d applied %d, leader's last index %d", n.id, n.st.AppliedIndex(), lastBefore)
				}
				if first, _ := n.st.FirstIndex(); first <= raftstorage.InitIndex+1 {
					t.Errorf("node %d: log GC did not run (first index %d)", n.id, first)
				}
			}

			termBefore := leader.rn.BasicStatus().GetTerm()
			c.restart()
			for _, n := range c.nodes {
				if hs, _, _ := n.st.InitialState(); hs.GetTerm() != termBefore || hs.GetCommit() != lastBefore {
					t.Errorf("node %d restarts with hard state %v, want term %d commit %d", n.id, hs, termBefore, lastBefore)
				}
			}
			for _, n := range c.nodes {
				if n.st.AppliedIndex() != lastBefore {
					t.Errorf("node %d applied %d after restart, want %d", n.id, n.st.AppliedIndex(), lastBefore)
				}
			}
			leader = c.waitLeader()
			if term := leader.rn.BasicStatus().GetTerm(); term <= termBefore {
				t.Errorf("leader after restart has term %d, want above %d", term, termBefore)
			}
			c.propose(leader, 100, 110)
			c.checkData(110)
			for _, n := range c.nodes {
				if last, _ := n.st.LastIndex(); last <= lastBefore+10 {
					t.Errorf("node %d last index %d, want past %d", n.id, last, lastBefore+10)
				}
			}
		})
	}
}

// TestRawNodeCatchesUpBySnapshot cuts a follower off, writes and
// compacts the log past it on the others, then reconnects it: raft asks
// the leader's Storage for a snapshot, the test transport streams its
// data, and the follower applies it and goes on from the log. The
// follower's state survives a restart.
func TestRawNodeCatchesUpBySnapshot(t *testing.T) {
	for _, engine := range engineNames {
		t.Run("engine="+engine, func(t *testing.T) {
			c := newCluster(t, engine)
			leader := c.waitLeader()
			c.propose(leader, 0, 10)
			var lagging *node
			for _, n := range c.nodes {
				if n != leader {
					lagging = n
					break
				}
			}
			c.down[lagging.id] = true
			c.propose(leader, 10, 40)
			c.compact(0)
			if first, _ := leader.st.FirstIndex(); first <= lagging.st.AppliedIndex()+1 {
				t.Fatalf("leader's log (first %d) still has what the follower (applied %d) needs", first, lagging.st.AppliedIndex())
			}
			c.down[lagging.id] = false
			for range 50 {
				c.tick()
			}
			c.propose(leader, 40, 50)
			c.checkData(50)
			if first, _ := lagging.st.FirstIndex(); first <= raftstorage.InitIndex+1 {
				t.Errorf("follower first index %d: it did not get a snapshot", first)
			}
			c.restart()
			leader = c.waitLeader()
			c.propose(leader, 50, 60)
			c.checkData(60)
		})
	}
}
