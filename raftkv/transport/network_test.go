package transport_test

import (
	"context"
	"errors"
	"sync"
	"testing"
	"time"

	"github.com/kvs-lab/kvs/raftkv/raftkvpb"
	"github.com/kvs-lab/kvs/raftkv/transport"
	"go.etcd.io/raft/v3/raftpb"
)

// sink is a Handler that records what it gets.
type sink struct {
	mu    sync.Mutex
	msgs  []*raftkvpb.RaftMessage
	snaps int
	// snapRegions holds the region id of each snapshot stream, in the
	// order they arrived.
	snapRegions []uint64
}

func (s *sink) HandleRaft(b *raftkvpb.RaftMessageBatch) {
	s.mu.Lock()
	defer s.mu.Unlock()
	s.msgs = append(s.msgs, b.GetMsgs()...)
}

func (s *sink) HandleSnapshot(chunks []*raftkvpb.SnapshotChunk) error {
	s.mu.Lock()
	defer s.mu.Unlock()
	s.snaps++
	s.snapRegions = append(s.snapRegions, chunks[0].GetHeader().GetMessage().GetRegionId())
	return nil
}

func (s *sink) count() int {
	s.mu.Lock()
	defer s.mu.Unlock()
	return len(s.msgs)
}

func batch(n int) *raftkvpb.RaftMessageBatch { return batchFrom(0, n) }

// batchFrom returns n messages with indexes first, first+1, ...
func batchFrom(first, n int) *raftkvpb.RaftMessageBatch {
	b := &raftkvpb.RaftMessageBatch{}
	for i := range n {
		idx := uint64(first + i)
		b.Msgs = append(b.Msgs, &raftkvpb.RaftMessage{RegionId: 1, Message: &raftpb.Message{Type: raftpb.MsgApp.Enum(), Index: &idx}})
	}
	return b
}

func snapshot(send func(*raftkvpb.SnapshotChunk) error) error {
	return send(&raftkvpb.SnapshotChunk{Chunk: &raftkvpb.SnapshotChunk_Header{Header: &raftkvpb.SnapshotHeader{Message: &raftkvpb.RaftMessage{RegionId: 1}}}})
}

func newNet(t *testing.T) (*transport.Network, []*sink) {
	n := transport.NewNetwork(1)
	t.Cleanup(n.Close)
	sinks := []*sink{nil, {}, {}, {}}
	for id := uint64(1); id <= 3; id++ {
		n.Register(id, sinks[id])
	}
	return n, sinks
}

func TestNetworkDeliversInOrderAndClones(t *testing.T) {
	n, sinks := newNet(t)
	b := batch(5)
	if err := n.Transport(1).Send(2, b); err != nil {
		t.Fatal(err)
	}
	if got := sinks[2].count(); got != 5 {
		t.Fatalf("delivered %d, want 5", got)
	}
	for i, m := range sinks[2].msgs {
		if m.GetMessage().GetIndex() != uint64(i) {
			t.Errorf("message %d has index %d: out of order", i, m.GetMessage().GetIndex())
		}
		if m == b.Msgs[i] {
			t.Errorf("message %d shared with the sender", i)
		}
	}
}

func TestNetworkPartitionAndDisconnect(t *testing.T) {
	n, sinks := newNet(t)
	n.Partition([]uint64{1}, []uint64{2, 3})
	if err := n.Transport(1).Send(2, batch(1)); err != nil {
		t.Fatalf("a partition loses messages silently, got %v", err)
	}
	_ = n.Transport(2).Send(3, batch(1))
	if sinks[2].count() != 0 || sinks[3].count() != 1 {
		t.Fatalf("across the partition %d, inside it %d; want 0 and 1", sinks[2].count(), sinks[3].count())
	}
	if err := n.Transport(1).SendSnapshot(context.Background(), 2, snapshot); !errors.Is(err, transport.ErrUnreachable) {
		t.Fatalf("snapshot across the partition: %v", err)
	}
	n.Heal()
	n.Disconnect(3)
	_ = n.Transport(2).Send(3, batch(1))
	if sinks[3].count() != 1 {
		t.Fatal("message reached a disconnected store")
	}
	n.Reconnect(3)
	n.Unregister(3)
	if err := n.Transport(2).Send(3, batch(1)); !errors.Is(err, transport.ErrUnreachable) {
		t.Fatalf("send to an unregistered store: %v, want ErrUnreachable", err)
	}
	if err := n.Transport(2).SendSnapshot(context.Background(), 1, snapshot); err != nil || sinks[1].snaps != 1 {
		t.Fatalf("snapshot: %v (%d delivered)", err, sinks[1].snaps)
	}
}

func TestNetworkFilter(t *testing.T) {
	n, sinks := newNet(t)
	n.AddFilter(func(from, to uint64, m *raftkvpb.RaftMessage) bool { return m.GetMessage().GetIndex()%2 == 0 })
	_ = n.Transport(1).Send(2, batch(10))
	if got := sinks[2].count(); got != 5 {
		t.Fatalf("filter let %d of 10 through, want 5", got)
	}
}

// TestNetworkUnreliable checks that drops, duplicates and delays happen
// at about the rates asked for, and that delayed messages arrive late,
// after later ones (reordering).
func TestNetworkUnreliable(t *testing.T) {
	n, sinks := newNet(t)
	n.SetUnreliable(transport.Unreliable{DropRate: 0.2, DuplicateRate: 0.1, DelayRate: 0.3, MaxDelay: 5 * time.Millisecond})
	const total = 2000
	for i := range total / 10 {
		_ = n.Transport(1).Send(2, batchFrom(i*10, 10))
	}
	n.WaitDelayed()
	st := n.Stats()
	if st.Dropped < total/10 || st.Dropped > total*3/10 {
		t.Errorf("dropped %d of %d, want about 20%%", st.Dropped, total)
	}
	if st.Duplicated == 0 || st.Delayed == 0 {
		t.Errorf("no duplicates (%d) or no delays (%d)", st.Duplicated, st.Delayed)
	}
	reordered := false
	msgs := sinks[2].msgs
	for i := 1; i < len(msgs); i++ {
		if msgs[i].GetMessage().GetIndex() < msgs[i-1].GetMessage().GetIndex() {
			reordered = true
		}
	}
	if !reordered {
		t.Error("no message was overtaken")
	}
	if uint64(len(msgs)) != st.Delivered {
		t.Errorf("handler got %d, stats say %d delivered", len(msgs), st.Delivered)
	}
}

// TestNetworkDelaysAndDuplicatesSnapshots: an unreliable network holds
// snapshot streams back, so that they overtake each other, and delivers
// some twice, as it does raft messages: a receiver must cope with a stale
// stream arriving after a newer one, and with the same stream twice.
func TestNetworkDelaysAndDuplicatesSnapshots(t *testing.T) {
	n, sinks := newNet(t)
	n.SetUnreliable(transport.Unreliable{DelayRate: 1, DuplicateRate: 1, MaxDelay: 30 * time.Millisecond})
	const streams = 20
	var wg sync.WaitGroup
	for i := range streams {
		region := uint64(i + 1)
		wg.Add(1)
		go func() {
			defer wg.Done()
			err := n.Transport(1).SendSnapshot(context.Background(), 2, func(send func(*raftkvpb.SnapshotChunk) error) error {
				return send(&raftkvpb.SnapshotChunk{Chunk: &raftkvpb.SnapshotChunk_Header{Header: &raftkvpb.SnapshotHeader{
					Message: &raftkvpb.RaftMessage{RegionId: region}}}})
			})
			if err != nil {
				t.Errorf("snapshot of region %d: %v", region, err)
			}
		}()
		time.Sleep(time.Millisecond)
	}
	wg.Wait()
	n.WaitDelayed()
	s := sinks[2]
	s.mu.Lock()
	got := append([]uint64(nil), s.snapRegions...)
	s.mu.Unlock()
	seen := map[uint64]int{}
	ordered := true
	for i, r := range got {
		seen[r]++
		if i > 0 && r < got[i-1] {
			ordered = false
		}
	}
	if len(got) != 2*streams || len(seen) != streams {
		t.Fatalf("%d streams delivered for %d regions, want each of %d twice: %v", len(got), len(seen), streams, got)
	}
	if ordered {
		t.Errorf("streams arrived in the order they were sent: %v", got)
	}
	if st := n.Stats(); st.Delayed < streams || st.Duplicated < streams {
		t.Errorf("stats %+v: want %d delayed and duplicated", st, streams)
	}
}
