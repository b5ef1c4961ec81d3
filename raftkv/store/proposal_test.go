package store_test

import (
	"errors"
	"sync/atomic"
	"testing"
	"time"

	"github.com/kvs-lab/kvs"
	"github.com/kvs-lab/kvs/raftkv/raftkvpb"
	"go.etcd.io/raft/v3/raftpb"
)

// TestWriteAcknowledgedOnlyWhenItsEntryCommits: a leader L appends write
// X (its first proposal) that never commits, restarts, and leads again;
// its first proposal after the restart, write Y, is appended two entries
// after X and kept from the followers. When L's new term commits X (and
// the new leader's empty entry) but not Y, Y must not be acknowledged:
// proposal ids start again after a restart, so X carries the tag Y had
// before the tag included a per-boot id and the store checked the index
// and term of the entry (Raft §5.4.2, §8: a client is answered once its
// own entry is committed and applied).
func TestWriteAcknowledgedOnlyWhenItsEntryCommits(t *testing.T) {
	c := newCluster(t, "lsm", clusterOpts{})
	L := c.leader(5 * time.Second)
	if L == 0 {
		t.Fatal("no leader")
	}
	c.waitConverged(5 * time.Second)

	var dropAppRespToL, dropVotesOfOthers atomic.Bool
	var dropAppFrom atomic.Uint64 // drop L's entries at or past this index (0: off)
	c.net.AddFilter(func(from, to uint64, m *raftkvpb.RaftMessage) bool {
		msg := m.GetMessage()
		switch msg.GetType() {
		case raftpb.MsgAppResp:
			return !(dropAppRespToL.Load() && to == L)
		case raftpb.MsgPreVote, raftpb.MsgVote:
			return !(dropVotesOfOthers.Load() && from != L)
		case raftpb.MsgApp:
			if i := dropAppFrom.Load(); i != 0 && from == L {
				// Strip the entries at or past i: the followers get a
				// valid prefix.
				var kept []*raftpb.Entry
				for _, e := range msg.GetEntries() {
					if e.GetIndex() < i {
						kept = append(kept, e)
					}
				}
				msg.Entries = kept
			}
		}
		return true
	})

	// 1. X: the first proposal of L's first life, replicated but never
	// committed.
	dropAppRespToL.Store(true)
	svc, _ := c.Store(L)
	ctx, cancel := ctxTimeout(300 * time.Millisecond)
	_, err := svc.Write(ctx, &raftkvpb.Request{ClientId: 1, Seq: 1, Ops: []*raftkvpb.Op{{Key: []byte("x"), Value: []byte("X")}}})
	cancel()
	if err == nil {
		t.Fatal("X was acknowledged without a single follower's acknowledgement")
	}
	i := c.status(L).LastLog

	// 2. L restarts and is the only one that can win the election.
	dropVotesOfOthers.Store(true)
	c.crash(L)
	c.restart(L)
	deadline := time.Now().Add(10 * time.Second)
	for !c.status(L).Leader {
		if time.Now().After(deadline) {
			t.Fatalf("L did not lead again: %+v", c.status(L))
		}
		time.Sleep(tickInterval)
	}

	// 3. Y: the first proposal of L's second life, appended at i+2 (after
	// the new term's empty entry) and kept from the followers.
	dropAppFrom.Store(i + 2)
	svc, _ = c.Store(L)
	yDone := make(chan error, 1)
	go func() {
		ctx, cancel := ctxTimeout(time.Second)
		defer cancel()
		_, err := svc.Write(ctx, &raftkvpb.Request{ClientId: 2, Seq: 1, Ops: []*raftkvpb.Op{{Key: []byte("y"), Value: []byte("Y")}}})
		yDone <- err
	}()
	for c.status(L).LastLog < i+2 {
		time.Sleep(time.Millisecond)
	}
	// 4. Let the followers acknowledge what they have (up to i+1): X
	// commits, Y does not.
	dropAppRespToL.Store(false)
	yErr := <-yDone
	st := c.status(L)
	if yErr == nil {
		ctx, cancel := ctxTimeout(time.Second)
		defer cancel()
		v, err := svc.Get(ctx, []byte("y"))
		if errors.Is(err, kvs.ErrNotFound) || st.Commit < i+2 {
			t.Fatalf("Y acknowledged, but its entry %d is not committed (commit %d) and a read of y gives %q, %v", i+2, st.Commit, v, err)
		}
	}
	if st.Commit < i+1 {
		t.Fatalf("X's term did not commit: commit %d, want at least %d", st.Commit, i+1)
	}
}
