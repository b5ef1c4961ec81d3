package raftstorage_test

import (
	"errors"
	"testing"

	"github.com/kvs-lab/kvs"
	"github.com/kvs-lab/kvs/raftkv/raftkvpb"
	"github.com/kvs-lab/kvs/raftkv/raftstorage"
	"go.etcd.io/raft/v3/raftpb"
	"google.golang.org/protobuf/proto"
)

// TestDestroyLeavesTombstone destroys a peer with a log, states and data:
// only a Tombstone region state stays (another region's log is
// untouched), across a reopen; a newer peer created over the tombstone
// may then vote (a hard state, no log) and still open.
func TestDestroyLeavesTombstone(t *testing.T) {
	forEach(t, func(t *testing.T, h *harness) {
		s := h.withLog(1, index(5).terms(5, 6, 7), 7)
		other := h.withLog(2, index(5).terms(5, 6), 6)
		if err := h.eng.Put(raftstorage.DataKey([]byte("k")), []byte("v"), kvs.Sync); err != nil {
			t.Fatal(err)
		}
		tomb := proto.CloneOf(testRegion(1))
		tomb.NextPeerId = 9
		h.update(s, func(u *raftstorage.Update) error { return u.Destroy(tomb, true) })
		h.checkBoth(t, func(t *testing.T, ss []*raftstorage.Storage) {
			s, other := ss[0], ss[1]
			if s.Initialized() || s.RegionState().GetState() != raftkvpb.PeerState_Tombstone || s.RegionState().GetRegion().GetNextPeerId() != 9 {
				t.Errorf("region state %v, initialized %v; want a tombstone with next peer id 9", s.RegionState(), s.Initialized())
			}
			if got := logKeys(t, h.eng, 1); len(got) != 0 {
				t.Errorf("log keys %v left", got)
			}
			if hs, _, _ := s.InitialState(); hs != nil {
				t.Errorf("hard state %v left", hs)
			}
			if _, err := h.eng.Get(raftstorage.DataKey([]byte("k"))); !errors.Is(err, kvs.ErrNotFound) {
				t.Errorf("data left: %v", err)
			}
			if _, err := h.eng.Get(raftstorage.ApplyStateKey(1)); !errors.Is(err, kvs.ErrNotFound) {
				t.Errorf("apply state left: %v", err)
			}
			if got := logKeys(t, h.eng, 2); len(got) != 1 || other.AppliedIndex() != 6 {
				t.Errorf("other region: log %v applied %d", got, other.AppliedIndex())
			}
			if _, err := s.Snapshot(); err == nil {
				t.Error("snapshot of a destroyed peer")
			}
		}, s, other)
		s = h.storage(1)
		h.update(s, func(u *raftstorage.Update) error {
			return u.SetHardState(&raftpb.HardState{Term: u64(9), Vote: u64(10)})
		})
		s = h.reopen(s)[0]
		if hs, _, _ := s.InitialState(); hs.GetVote() != 10 || s.RegionState().GetState() != raftkvpb.PeerState_Tombstone {
			t.Errorf("after a vote over the tombstone: hard state %v, region %v", hs, s.RegionState())
		}
	})
}

// TestSnapshotFollowsConfChange: a snapshot generated before a conf
// change is not handed out after it (a peer the change added would not
// be in its ConfState, and raft would refuse it).
func TestSnapshotFollowsConfChange(t *testing.T) {
	forEach(t, func(t *testing.T, h *harness) {
		s := h.withLog(1, index(5).terms(5, 6, 7), 7)
		before, err := s.Snapshot()
		if err != nil {
			t.Fatal(err)
		}
		cs := &raftpb.ConfState{Voters: []uint64{1, 2, 3, 4}}
		h.update(s, func(u *raftstorage.Update) error {
			u.SetConfState(cs)
			return nil
		})
		after, err := s.Snapshot()
		if err != nil {
			t.Fatal(err)
		}
		if !proto.Equal(before.GetMetadata().GetConfState(), testConfState) || !proto.Equal(after.GetMetadata().GetConfState(), cs) {
			t.Errorf("conf states %v then %v, want %v then %v", before.GetMetadata().GetConfState(), after.GetMetadata().GetConfState(), testConfState, cs)
		}
	})
}
