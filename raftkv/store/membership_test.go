package store_test

import (
	"context"
	"errors"
	"math/rand/v2"
	"slices"
	"testing"
	"time"

	"github.com/kvs-lab/kvs/raftkv/api"
	"github.com/kvs-lab/kvs/raftkv/raftkvpb"
	"github.com/kvs-lab/kvs/raftkv/store"
	"github.com/kvs-lab/kvs/raftkv/transport"
)

// admin runs a membership call on the region's leader, following
// leadership changes and retrying what was not executed (a NotLeader, a
// change refused because another is in progress, a dropped proposal)
// until it succeeds, fails for good, or timeout passes.
func (c *cluster) admin(timeout time.Duration, f func(ctx context.Context, s *store.Store) error) error {
	deadline := time.Now().Add(timeout)
	for {
		var err error
		if s := c.storeByID(c.leader(time.Second)); s != nil {
			ctx, cancel := ctxTimeout(time.Second)
			err = f(ctx, s)
			cancel()
			if err == nil || errors.Is(err, api.ErrInvalid) {
				return err
			}
		}
		if time.Now().After(deadline) {
			return err
		}
		time.Sleep(tickInterval)
	}
}

// addPeer adds a peer on store id and returns it.
func (c *cluster) addPeer(id uint64) *raftkvpb.Peer {
	c.t.Helper()
	var pe *raftkvpb.Peer
	err := c.admin(10*time.Second, func(ctx context.Context, s *store.Store) error {
		var err error
		pe, err = s.AddPeer(ctx, regionID, id)
		return err
	})
	if err != nil {
		c.t.Fatalf("add a peer on store %d: %v", id, err)
	}
	return pe
}

// removePeer removes store id's peer.
func (c *cluster) removePeer(id uint64) {
	c.t.Helper()
	err := c.admin(10*time.Second, func(ctx context.Context, s *store.Store) error {
		return s.RemovePeer(ctx, regionID, id)
	})
	if err != nil {
		c.t.Fatalf("remove store %d: %v", id, err)
	}
}

// members returns the stores of the region as the leader knows it.
func (c *cluster) members() []uint64 {
	var ids []uint64
	for _, pe := range c.status(c.leader(5 * time.Second)).Region.GetPeers() {
		ids = append(ids, pe.GetStoreId())
	}
	slices.Sort(ids)
	return ids
}

// waitDestroyed waits until store id no longer hosts the region, then
// checks that its engine holds no region data: the removed peer was
// destroyed with its data.
func (c *cluster) waitDestroyed(id uint64, timeout time.Duration) {
	c.t.Helper()
	deadline := time.Now().Add(timeout)
	for c.status(id).RegionID != 0 {
		if time.Now().After(deadline) {
			c.t.Fatalf("store %d still hosts the region after %v: %+v", id, timeout, c.status(id))
		}
		time.Sleep(tickInterval)
	}
	if data := c.data(id); len(data) != 0 {
		c.t.Errorf("destroyed peer's store %d still holds %d keys", id, len(data))
	}
}

// membershipWorkload is chaosWorkload's shape with more patience: a
// membership change costs a snapshot and sometimes an election.
var membershipWorkload = workload{clients: 4, keys: 8, opTimeout: 500 * time.Millisecond, attemptTimeout: 100 * time.Millisecond}

// TestAddStoreCatchesUpBySnapshot adds a fourth store to the running
// three-store region while clients write: the store creates the peer
// from the leader's first message, the leader sends it a snapshot (its
// log starts above the bootstrap index, so no log can catch a new peer
// up: Raft §7), and afterwards it holds the same data as the others.
func TestAddStoreCatchesUpBySnapshot(t *testing.T) {
	forEngines(t, func(t *testing.T, engine string) {
		c := newCluster(t, engine, clusterOpts{})
		var added *raftkvpb.Peer
		var newID uint64
		runLinearizable(t, c, membershipWorkload, scale(time.Second), func(stop <-chan struct{}) {
			if !sleepOrStop(300*time.Millisecond, stop) {
				return
			}
			newID = c.addStore()
			added = c.addPeer(newID)
		})
		if added == nil {
			t.Fatal("the store was not added")
		}
		if added.GetStoreId() != newID || added.GetId() <= 103 {
			t.Errorf("added peer %v; want a fresh id (above 103) on store %d", added, newID)
		}
		if got := c.members(); !slices.Equal(got, []uint64{1, 2, 3, newID}) {
			t.Errorf("members %v", got)
		}
		st := c.status(newID)
		if st.PeerID != added.GetId() || st.Snapshots == 0 {
			t.Errorf("new store's status %+v; want peer %d, caught up by a snapshot", st, added.GetId())
		}
		if v := st.Region.GetEpoch().GetConfVer(); v != 2 {
			t.Errorf("conf_ver %d after one change, want 2", v)
		}
	})
}

// TestRemoveFollower removes a follower while clients write: the region
// goes on with two peers, the removed store destroys its peer (log,
// states and data gone, a tombstone left) and answers clients with a
// redirect, which the client follows.
func TestRemoveFollower(t *testing.T) {
	forEngines(t, func(t *testing.T, engine string) {
		c := newCluster(t, engine, clusterOpts{})
		var removed uint64
		runLinearizable(t, c, membershipWorkload, scale(time.Second), func(stop <-chan struct{}) {
			if !sleepOrStop(300*time.Millisecond, stop) {
				return
			}
			leader := c.leader(time.Second)
			removed = c.Stores()[0]
			if removed == leader {
				removed = c.Stores()[1]
			}
			c.removePeer(removed)
		})
		if removed == 0 {
			t.Fatal("nothing removed")
		}
		c.waitDestroyed(removed, 5*time.Second)
		if got := c.members(); slices.Contains(got, removed) || len(got) != 2 {
			t.Errorf("members %v after removing store %d", got, removed)
		}
		// The removed store redirects, and survives a restart as a
		// tombstone.
		c.crash(removed)
		c.restart(removed)
		svc, _ := c.Store(removed)
		ctx, cancel := ctxTimeout(time.Second)
		defer cancel()
		if _, err := svc.Get(ctx, []byte("k1")); !errors.Is(err, api.ErrNotLeader) {
			t.Errorf("get on the removed store: %v, want a NotLeader redirect", err)
		}
		c.waitDestroyed(removed, time.Second)
	})
}

// TestRemoveLeader removes the leader's own store while clients write:
// the leader applies the change, steps down (raft's StepDownOnRemoval)
// and destroys its peer; the two others, which got the commit with the
// leader's last messages or from the log, elect a new leader and serve.
func TestRemoveLeader(t *testing.T) {
	forEngines(t, func(t *testing.T, engine string) {
		c := newCluster(t, engine, clusterOpts{})
		var old uint64
		runLinearizable(t, c, membershipWorkload, scale(time.Second), func(stop <-chan struct{}) {
			if !sleepOrStop(300*time.Millisecond, stop) {
				return
			}
			old = c.leader(time.Second)
			// Call the store that leads now, so the removal is of the
			// caller itself (admin would follow a new leader).
			ctx, cancel := ctxTimeout(5 * time.Second)
			defer cancel()
			if err := c.storeByID(old).RemovePeer(ctx, regionID, old); err != nil {
				t.Errorf("leader %d removing itself: %v", old, err)
			}
		})
		c.waitDestroyed(old, 5*time.Second)
		if l := c.leader(5 * time.Second); l == 0 || l == old {
			t.Errorf("leader %d after removing leader %d", l, old)
		}
		if got := c.members(); slices.Contains(got, old) || len(got) != 2 {
			t.Errorf("members %v after removing store %d", got, old)
		}
	})
}

// TestTransferLeader hands the leadership to chosen stores in turn
// while clients write (raft's MsgTimeoutNow, Raft dissertation §3.10):
// a call that succeeds returns once the target leads (one that times out,
// after an election timeout, leaves the old leader in place).
func TestTransferLeader(t *testing.T) {
	forEngines(t, func(t *testing.T, engine string) {
		c := newCluster(t, engine, clusterOpts{})
		transfers := 0
		runLinearizable(t, c, membershipWorkload, scale(time.Second), func(stop <-chan struct{}) {
			for i := 0; ; i++ {
				if !sleepOrStop(200*time.Millisecond, stop) {
					return
				}
				leader := c.leader(time.Second)
				target := c.Stores()[i%3]
				if target == leader {
					target = c.Stores()[(i+1)%3]
				}
				ctx, cancel := ctxTimeout(2 * time.Second)
				err := c.storeByID(leader).TransferLeader(ctx, regionID, target)
				cancel()
				if errors.Is(err, api.ErrTimeout) {
					// Raft gives a transfer one election timeout; a slow
					// round (-race, fsync) can miss it. Not an error.
					t.Logf("transfer from %d to %d: %v", leader, target, err)
					continue
				}
				if err != nil {
					t.Errorf("transfer from %d to %d: %v", leader, target, err)
					return
				}
				if l := c.leader(time.Second); l != target {
					t.Errorf("transfer to %d returned, but store %d leads", target, l)
				}
				transfers++
			}
		})
		if transfers == 0 {
			t.Error("no transfer done")
		}
	})
}

// TestStoreRemovedWhileDownDestroysItsPeer removes a store while it is
// down: it never applies its removal, and nobody sends to it any more.
// Restarted, its peer campaigns with its old membership; a member, whose
// region is newer and no longer lists the peer, tells it so, and the
// store destroys the peer.
func TestStoreRemovedWhileDownDestroysItsPeer(t *testing.T) {
	forEngines(t, func(t *testing.T, engine string) {
		c := newCluster(t, engine, clusterOpts{})
		leader := c.leader(5 * time.Second)
		down := c.Stores()[0]
		if down == leader {
			down = c.Stores()[1]
		}
		c.waitConverged(5 * time.Second)
		c.crash(down)
		c.removePeer(down)
		c.restart(down)
		c.waitDestroyed(down, 5*time.Second)
		if got := c.members(); slices.Contains(got, down) || len(got) != 2 {
			t.Errorf("members %v after removing store %d", got, down)
		}
	})
}

// TestRemoveThenReAddStore removes a store and adds the same store back:
// the new peer gets a new id (raft node ids are never reused: the old
// id's votes and log would otherwise meet the new peer's), the store
// creates it over its tombstone, and it catches up from scratch by
// snapshot. Messages to the old id stay dead.
func TestRemoveThenReAddStore(t *testing.T) {
	forEngines(t, func(t *testing.T, engine string) {
		c := newCluster(t, engine, clusterOpts{})
		var again *raftkvpb.Peer
		var target uint64
		runLinearizable(t, c, membershipWorkload, scale(time.Second), func(stop <-chan struct{}) {
			if !sleepOrStop(200*time.Millisecond, stop) {
				return
			}
			leader := c.leader(time.Second)
			target = c.Stores()[2]
			if target == leader {
				target = c.Stores()[1]
			}
			c.removePeer(target)
			c.waitDestroyed(target, 5*time.Second)
			again = c.addPeer(target)
		})
		if again == nil {
			t.Fatal("not re-added")
		}
		if old := 100 + target; again.GetId() == old || again.GetId() <= 103 {
			t.Errorf("re-added store %d as peer %d; want a new id (old %d)", target, again.GetId(), old)
		}
		if st := c.status(target); st.PeerID != again.GetId() || st.Snapshots == 0 {
			t.Errorf("re-added store's status %+v; want peer %d caught up by snapshot", st, again.GetId())
		}
		if v := c.status(target).Region.GetEpoch().GetConfVer(); v != 3 {
			t.Errorf("conf_ver %d after two changes, want 3", v)
		}
	})
}

// TestConfChangeRefusals: a conf change sent to a follower is answered
// NotLeader (not executed); nonsense changes are invalid; and a second
// change while one has not applied is refused by raft (which appends an
// empty entry in its place), surfacing as ErrConfChangeInProgress.
func TestConfChangeRefusals(t *testing.T) {
	forEngines(t, func(t *testing.T, engine string) {
		c := newCluster(t, engine, clusterOpts{})
		leader := c.leader(5 * time.Second)
		c.waitConverged(5 * time.Second)
		var follower uint64
		var rest []uint64
		for _, id := range c.Stores() {
			if id != leader {
				follower = id
				rest = append(rest, id)
			}
		}
		ctx, cancel := ctxTimeout(5 * time.Second)
		defer cancel()
		f := c.storeByID(follower)
		if _, err := f.AddPeer(ctx, regionID, 9); !errors.Is(err, api.ErrNotLeader) || !api.NotExecuted(err) {
			t.Errorf("AddPeer on a follower: %v, want NotLeader", err)
		}
		if err := f.RemovePeer(ctx, regionID, leader); !errors.Is(err, api.ErrNotLeader) {
			t.Errorf("RemovePeer on a follower: %v, want NotLeader", err)
		}
		if err := f.TransferLeader(ctx, regionID, follower); !errors.Is(err, api.ErrNotLeader) {
			t.Errorf("TransferLeader on a follower: %v, want NotLeader", err)
		}
		l := c.storeByID(leader)
		if _, err := l.AddPeer(ctx, regionID, follower); !errors.Is(err, api.ErrInvalid) {
			t.Errorf("adding a store already in the region: %v, want ErrInvalid", err)
		}
		if err := l.RemovePeer(ctx, regionID, 9); !errors.Is(err, api.ErrInvalid) {
			t.Errorf("removing a store not in the region: %v, want ErrInvalid", err)
		}
		// Cut the leader off with its clock stopped (so CheckQuorum
		// keeps it leading): its first change cannot commit, so a
		// second one is refused.
		c.freeze(leader, true)
		c.net.Partition([]uint64{leader}, rest)
		short, cancelShort := ctxTimeout(100 * time.Millisecond)
		if _, err := l.AddPeer(short, regionID, 9); !errors.Is(err, api.ErrTimeout) {
			t.Errorf("AddPeer without a quorum: %v, want a timeout", err)
		}
		cancelShort()
		if err := l.RemovePeer(ctx, regionID, follower); !errors.Is(err, api.ErrConfChangeInProgress) || !api.NotExecuted(err) {
			t.Errorf("second conf change: %v, want ErrConfChangeInProgress", err)
		}
		c.freeze(leader, false)
		c.net.Heal()
		c.waitConverged(5 * time.Second)
		// The uncommitted change was overwritten by the new leader.
		if got := c.members(); len(got) != 3 {
			t.Errorf("members %v, want the three first stores", got)
		}
	})
}

// TestMembershipChaos changes the membership at random (adds, removals,
// the leader's included, leader transfers) while stores crash and
// restart and the network drops, duplicates and delays messages. The
// long mode runs it for 30 s per engine; the short one briefly.
func TestMembershipChaos(t *testing.T) {
	forEngines(t, func(t *testing.T, engine string) {
		c := newCluster(t, engine, clusterOpts{gcThreshold: 30})
		for range 2 {
			c.addStore()
		}
		c.net.SetUnreliable(transport.Unreliable{DropRate: 0.05, DuplicateRate: 0.02, DelayRate: 0.1, MaxDelay: 10 * time.Millisecond})
		rng := rand.New(rand.NewPCG(rand.Uint64(), 4))
		changes := 0
		runLinearizable(t, c, membershipWorkload, scale(2500*time.Millisecond), func(stop <-chan struct{}) {
			for {
				if !sleepOrStop(time.Duration(100+rng.IntN(200))*time.Millisecond, stop) {
					return
				}
				members := c.members()
				var others []uint64
				for _, id := range c.Stores() {
					if !slices.Contains(members, id) {
						others = append(others, id)
					}
				}
				var err error
				switch op := rng.IntN(4); {
				case op == 0 && len(others) > 0:
					id := others[rng.IntN(len(others))]
					err = c.admin(2*time.Second, func(ctx context.Context, s *store.Store) error {
						_, err := s.AddPeer(ctx, regionID, id)
						return err
					})
				case op == 1 && len(members) > 3:
					id := members[rng.IntN(len(members))]
					err = c.admin(2*time.Second, func(ctx context.Context, s *store.Store) error {
						return s.RemovePeer(ctx, regionID, id)
					})
				case op == 2 && len(members) > 0:
					id := members[rng.IntN(len(members))]
					err = c.admin(2*time.Second, func(ctx context.Context, s *store.Store) error {
						return s.TransferLeader(ctx, regionID, id)
					})
				default:
					// Crash a member (a majority stays up) and restart it.
					id := members[rng.IntN(len(members))]
					c.crash(id)
					if !sleepOrStop(time.Duration(100+rng.IntN(200))*time.Millisecond, stop) {
						c.restart(id)
						return
					}
					c.restart(id)
					continue
				}
				if err == nil {
					changes++
				} else {
					t.Logf("membership change: %v", err)
				}
			}
		})
		t.Logf("membership changes: %d, final members %v", changes, c.members())
	})
}
