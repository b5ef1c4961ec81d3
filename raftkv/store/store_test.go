package store_test

import (
	"errors"
	"fmt"
	"math/rand/v2"
	"strings"
	"testing"
	"time"

	"github.com/kvs-lab/kvs"
	"github.com/kvs-lab/kvs/raftkv/api"
	"github.com/kvs-lab/kvs/raftkv/client"
	"github.com/kvs-lab/kvs/raftkv/raftkvpb"
	"github.com/kvs-lab/kvs/raftkv/store"
	"github.com/kvs-lab/kvs/raftkv/transport"
	"go.etcd.io/raft/v3/raftpb"
)

// TestBasicWritesAndReads elects a leader among three stores, writes,
// deletes, reads and scans through one client, checks every replica ends
// with the same data (Raft §5.3: the leader's log is copied to all), and
// checks the history for linearizability.
func TestBasicWritesAndReads(t *testing.T) {
	forEngines(t, func(t *testing.T, engine string) {
		c := newCluster(t, engine, clusterOpts{})
		if c.leader(5*time.Second) == 0 {
			t.Fatal("no leader elected")
		}
		cl := client.New(c, nil)
		rec := newRecorder()
		ctx, cancel := ctxTimeout(10 * time.Second)
		defer cancel()
		n := 50
		if long() {
			n = 500
		}
		for i := range n {
			key, val := fmt.Sprintf("key%03d", i), fmt.Sprintf("val%d", i)
			call := rec.now()
			if err := cl.Put(ctx, []byte(key), []byte(val)); err != nil {
				t.Fatalf("put %s: %v", key, err)
			}
			rec.add(0, kvInput{op: "put", key: key, value: val}, kvOutput{}, call, rec.now())
		}
		for i := 0; i < n; i += 3 {
			key := fmt.Sprintf("key%03d", i)
			call := rec.now()
			if err := cl.Delete(ctx, []byte(key)); err != nil {
				t.Fatalf("delete %s: %v", key, err)
			}
			rec.add(0, kvInput{op: "delete", key: key}, kvOutput{}, call, rec.now())
		}
		for i := range n {
			key := fmt.Sprintf("key%03d", i)
			call := rec.now()
			v, err := cl.Get(ctx, []byte(key))
			out := kvOutput{value: string(v), found: err == nil}
			if err != nil && !errors.Is(err, kvs.ErrNotFound) {
				t.Fatalf("get %s: %v", key, err)
			}
			if deleted := i%3 == 0; deleted == out.found {
				t.Errorf("get %s: found=%v, deleted=%v", key, out.found, deleted)
			}
			rec.add(0, kvInput{op: "get", key: key}, out, call, rec.now())
		}
		pairs, err := cl.Scan(ctx, []byte("key010"), []byte("key020"), 0)
		if err != nil {
			t.Fatal(err)
		}
		var got []string
		for _, kv := range pairs {
			got = append(got, string(kv.GetKey()))
		}
		want := []string{"key010", "key011", "key013", "key014", "key016", "key017", "key019"}
		if fmt.Sprint(got) != fmt.Sprint(want) {
			t.Errorf("scan [key010, key020) = %v, want %v", got, want)
		}
		if pairs, err := cl.Scan(ctx, nil, nil, 5); err != nil || len(pairs) != 5 || string(pairs[0].GetKey()) != "key001" {
			t.Errorf("scan of everything, limit 5: %d pairs, %v (first %q)", len(pairs), err, firstKey(pairs))
		}
		rec.check(t)
		c.waitConverged(5 * time.Second)
	})
}

func firstKey(pairs []*raftkvpb.KeyValue) string {
	if len(pairs) == 0 {
		return ""
	}
	return string(pairs[0].GetKey())
}

// TestFollowerAnswersNotLeader sends requests straight to a follower: it
// executes nothing and names the leader's store (the redirect rule of
// DESIGN.md), and bad keys are refused.
func TestFollowerAnswersNotLeader(t *testing.T) {
	c := newCluster(t, "lsm", clusterOpts{})
	leader := c.leader(5 * time.Second)
	if leader == 0 {
		t.Fatal("no leader elected")
	}
	// Wait until a follower knows the leader.
	var follower uint64
	deadline := time.Now().Add(5 * time.Second)
	for follower == 0 && time.Now().Before(deadline) {
		for _, id := range c.Stores() {
			if st := c.status(id); id != leader && st.LeaderID != 0 {
				follower = id
			}
		}
		time.Sleep(tickInterval)
	}
	svc, _ := c.Store(follower)
	ctx, cancel := ctxTimeout(5 * time.Second)
	defer cancel()
	req := &raftkvpb.Request{ClientId: 1, Seq: 1, Ops: []*raftkvpb.Op{{Key: []byte("a"), Value: []byte("1")}}}
	_, err := svc.Write(ctx, req)
	var nl *api.NotLeaderError
	if !errors.As(err, &nl) || nl.Leader != leader || !api.NotExecuted(err) {
		t.Fatalf("write to follower %d: %v, want NotLeader naming store %d", follower, err, leader)
	}
	if _, err := svc.Get(ctx, []byte("a")); !errors.Is(err, api.ErrNotLeader) {
		t.Fatalf("get on follower: %v, want NotLeader", err)
	}
	ls, _ := c.Store(leader)
	for _, key := range [][]byte{nil, {0, 's'}} {
		bad := &raftkvpb.Request{ClientId: 1, Seq: 1, Ops: []*raftkvpb.Op{{Key: key}}}
		if _, err := ls.Write(ctx, bad); !errors.Is(err, api.ErrInvalid) {
			t.Errorf("write of key %q: %v, want ErrInvalid", key, err)
		}
	}
}

// TestWriteLargerThanTheLogTakesIsRefused: every write is stored in the
// raft log as one engine value, so a write that would not fit under the
// engine's value limit is refused before it is proposed (were it
// proposed, the engine would refuse the entry and stop the store). One
// just under the limit applies, and the store serves on.
func TestWriteLargerThanTheLogTakesIsRefused(t *testing.T) {
	forEngines(t, func(t *testing.T, engine string) {
		const maxValue = 256 << 10
		c := newCluster(t, engine, clusterOpts{maxValueSize: maxValue})
		ctx, cancel := ctxTimeout(10 * time.Second)
		defer cancel()
		ls, _ := c.Store(c.leader(5 * time.Second))
		big := &raftkvpb.Request{ClientId: 1, Seq: 1, Ops: []*raftkvpb.Op{{Key: []byte("big"), Value: make([]byte, maxValue)}}}
		if _, err := ls.Write(ctx, big); !errors.Is(err, api.ErrInvalid) || !strings.Contains(err.Error(), "MaxRequestBytes") {
			t.Fatalf("write of a %d-byte value: %v, want ErrInvalid naming MaxRequestBytes", maxValue, err)
		}
		big.Ops[0].Value = make([]byte, maxValue-store.EntryOverheadBytes-64)
		var err error
		for try := 0; try < 20; try++ {
			if ls, _ = c.Store(c.leader(5 * time.Second)); ls == nil {
				continue
			}
			if _, err = ls.Write(ctx, big); err == nil || !api.NotExecuted(err) {
				break
			}
		}
		if err != nil {
			t.Fatalf("write of a %d-byte value: %v", len(big.Ops[0].Value), err)
		}
		if v, err := ls.Get(ctx, []byte("big")); err != nil || len(v) != len(big.Ops[0].Value) {
			t.Fatalf("get big: %d bytes, %v", len(v), err)
		}
		small := &raftkvpb.Request{ClientId: 1, Seq: 2, Ops: []*raftkvpb.Op{{Key: []byte("k"), Value: []byte("v")}}}
		if _, err := ls.Write(ctx, small); err != nil {
			t.Fatalf("write after the big one: %v", err)
		}
	})
}

// TestRetriedWriteAppliesOnce replays writes with the same client id and
// seq: a replay of the client's last write succeeds without applying
// again, a replay of an earlier one (after a later write of the same
// client) applies nothing and fails as "outcome unknown", since its
// result is no longer kept; so the later value stays (exactly-once
// application of retried requests, Raft dissertation §6.3).
func TestRetriedWriteAppliesOnce(t *testing.T) {
	forEngines(t, func(t *testing.T, engine string) {
		c := newCluster(t, engine, clusterOpts{})
		leader := c.leader(5 * time.Second)
		svc, _ := c.Store(leader)
		ctx, cancel := ctxTimeout(5 * time.Second)
		defer cancel()
		put := func(seq uint64, v string) error {
			_, err := svc.Write(ctx, &raftkvpb.Request{ClientId: 42, Seq: seq, Ops: []*raftkvpb.Op{{Key: []byte("k"), Value: []byte(v)}}})
			return err
		}
		for _, step := range []struct {
			seq     uint64
			v       string
			unknown bool
		}{{1, "first", false}, {2, "second", false}, {1, "first", true}, {2, "second-again", false}} {
			err := put(step.seq, step.v)
			if step.unknown {
				if !errors.Is(err, api.ErrTimeout) || api.NotExecuted(err) {
					t.Fatalf("replay of seq %d after a later write: %v, want an outcome-unknown error (ErrTimeout)", step.seq, err)
				}
				continue
			}
			if err != nil {
				t.Fatalf("put seq %d: %v", step.seq, err)
			}
		}
		if v, err := svc.Get(ctx, []byte("k")); err != nil || string(v) != "second" {
			t.Fatalf("k = %q, %v; want second (replays must not apply)", v, err)
		}
		c.waitConverged(5 * time.Second)
		// The session survives a restart of every store.
		for _, id := range c.Stores() {
			c.crash(id)
		}
		for _, id := range c.Stores() {
			c.restart(id)
		}
		leader = c.leader(10 * time.Second)
		svc, _ = c.Store(leader)
		if err := put(2, "after-restart"); err != nil {
			t.Fatal(err)
		}
		if v, err := svc.Get(ctx, []byte("k")); err != nil || string(v) != "second" {
			t.Fatalf("after restart k = %q, %v; want second", v, err)
		}
	})
}

// runLinearizable runs a workload of clients while chaos (if not nil)
// disturbs the cluster, then heals it, waits for the replicas to agree
// and checks the history.
func runLinearizable(t *testing.T, c *cluster, w workload, d time.Duration, chaos func(stop <-chan struct{})) {
	t.Helper()
	if c.leader(5*time.Second) == 0 {
		t.Fatal("no leader elected")
	}
	rec := newRecorder()
	stop := make(chan struct{})
	chaosDone := make(chan struct{})
	go func() {
		defer close(chaosDone)
		if chaos != nil {
			chaos(stop)
		}
	}()
	timer := time.AfterFunc(d, func() { close(stop) })
	defer timer.Stop()
	ok, failed := w.run(t, c, rec, rand.Uint64(), stop)
	<-chaosDone
	c.net.Heal()
	for _, id := range c.Stores() {
		c.restart(id)
	}
	t.Logf("%d operations succeeded, %d failed; network: %+v", ok, failed, c.net.Stats())
	if ok == 0 {
		t.Errorf("no operation succeeded")
	}
	rec.check(t)
	c.waitConverged(10 * time.Second)
}

// chaosWorkload gives up on an operation after 100 ms, so that under
// partitions and crashes some writes end with an unknown outcome and the
// checker must consider both.
var chaosWorkload = workload{clients: 5, keys: 8, opTimeout: 100 * time.Millisecond, attemptTimeout: 40 * time.Millisecond}

// sleepOrStop waits d or until stop closes; false if stopped.
func sleepOrStop(d time.Duration, stop <-chan struct{}) bool {
	select {
	case <-time.After(d):
		return true
	case <-stop:
		return false
	}
}

// TestConcurrentClients runs five clients over a reliable network (Raft
// §8: linearizable semantics for concurrent clients).
func TestConcurrentClients(t *testing.T) {
	forEngines(t, func(t *testing.T, engine string) {
		c := newCluster(t, engine, clusterOpts{})
		runLinearizable(t, c, workload{clients: 5, keys: 8}, scale(2*time.Second), nil)
	})
}

// TestUnreliableNetwork loses 10% of the messages, duplicates 5% and
// delays 20% by up to 20 ms so that later ones overtake them: raft must
// tolerate loss, duplication and reordering (Raft §5.3: AppendEntries
// consistency check; §5.1: stale terms ignored).
func TestUnreliableNetwork(t *testing.T) {
	forEngines(t, func(t *testing.T, engine string) {
		c := newCluster(t, engine, clusterOpts{})
		c.net.SetUnreliable(transport.Unreliable{DropRate: 0.1, DuplicateRate: 0.05, DelayRate: 0.2, MaxDelay: 20 * time.Millisecond})
		runLinearizable(t, c, chaosWorkload, scale(2*time.Second), nil)
	})
}

// TestPartitionLeaderInMinority repeatedly cuts the leader off with at
// most one other store: the majority elects a new leader (Raft §5.2),
// the old one cannot commit (§5.4.2) and, with CheckQuorum, steps down;
// reads through ReadIndex never return what the old leader alone holds
// (§6.4). Then the partition heals and the old leader catches up.
func TestPartitionLeaderInMinority(t *testing.T) {
	forEngines(t, func(t *testing.T, engine string) {
		c := newCluster(t, engine, clusterOpts{stores: 5})
		rng := rand.New(rand.NewPCG(rand.Uint64(), 1))
		runLinearizable(t, c, chaosWorkload, scale(3*time.Second), func(stop <-chan struct{}) {
			for {
				leader := c.leader(time.Second)
				minority := []uint64{leader}
				var majority []uint64
				for _, id := range c.Stores() {
					if id == leader {
						continue
					}
					if len(minority) < 2 && rng.IntN(2) == 0 {
						minority = append(minority, id)
					} else {
						majority = append(majority, id)
					}
				}
				c.net.Partition(minority, majority)
				// Half the time the old leader's clock also stops, so
				// CheckQuorum does not depose it while the majority
				// elects another: a lease read would now be stale, a
				// ReadIndex read cannot be confirmed (§6.4).
				freeze := rng.IntN(2) == 0
				c.freeze(leader, freeze)
				if !sleepOrStop(time.Duration(300+rng.IntN(300))*time.Millisecond, stop) {
					c.freeze(leader, false)
					return
				}
				c.freeze(leader, false)
				c.net.Heal()
				if !sleepOrStop(time.Duration(100+rng.IntN(200))*time.Millisecond, stop) {
					return
				}
			}
		})
	})
}

// TestCrashRestart stops random stores (one at a time, so a majority
// stays up) and restarts them from their engines on disk: the hard state
// and log persisted before any message was sent (Raft §5, Figure 2
// "persistent state"), the applied index and data together, so a
// restarted store neither forgets a vote nor applies an entry twice.
//
// The disk variant closes the engine and reopens it from its directory;
// the powerLoss variant cuts the power instead: the engine comes back
// with only what was synced, so the raft log and hard state must have
// been synced before any message promised them (etcd raft's Ready
// contract), while the unsynced applied state may be lost and is rebuilt
// from the log (Config.Applied).
func TestCrashRestart(t *testing.T) {
	for _, mode := range []string{"disk", "powerLoss"} {
		t.Run("crash="+mode, func(t *testing.T) { testCrashRestart(t, mode == "powerLoss") })
	}
}

func testCrashRestart(t *testing.T, powerLoss bool) {
	forEngines(t, func(t *testing.T, engine string) {
		c := newCluster(t, engine, clusterOpts{powerLoss: powerLoss})
		rng := rand.New(rand.NewPCG(rand.Uint64(), 2))
		runLinearizable(t, c, chaosWorkload, scale(3*time.Second), func(stop <-chan struct{}) {
			for {
				id := c.Stores()[rng.IntN(3)]
				if rng.IntN(2) == 0 {
					// Often the leader: its successor must hold every
					// committed entry (§5.4.1 election restriction).
					if l := c.leader(0); l != 0 {
						id = l
					}
				}
				c.crash(id)
				if !sleepOrStop(time.Duration(100+rng.IntN(300))*time.Millisecond, stop) {
					return
				}
				c.restart(id)
				if !sleepOrStop(time.Duration(200+rng.IntN(300))*time.Millisecond, stop) {
					return
				}
			}
		})
	})
}

// TestSnapshotCatchUp cuts a follower off while the others write past
// the log GC threshold and truncate their logs, then reconnects it: the
// leader no longer has the entries it needs, so it sends a snapshot
// (Raft §7), streamed in chunks and applied atomically; afterwards the
// follower goes on from the log and holds the same data.
func TestSnapshotCatchUp(t *testing.T) {
	forEngines(t, func(t *testing.T, engine string) {
		c := newCluster(t, engine, clusterOpts{gcThreshold: 20})
		leader := c.leader(5 * time.Second)
		if leader == 0 {
			t.Fatal("no leader elected")
		}
		var lagging uint64
		for _, id := range c.Stores() {
			if id != leader {
				lagging = id
				break
			}
		}
		c.net.Disconnect(lagging)
		rec := newRecorder()
		cl := client.New(c, nil)
		ctx, cancel := ctxTimeout(20 * time.Second)
		defer cancel()
		n := 200
		if long() {
			n = 2000
		}
		for i := range n {
			key, val := fmt.Sprintf("k%d", i%30), fmt.Sprintf("v%d", i)
			call := rec.now()
			err := cl.Put(ctx, []byte(key), []byte(val))
			rec.add(0, kvInput{op: "put", key: key, value: val}, kvOutput{unknown: err != nil}, call, rec.now())
			if err != nil {
				t.Fatalf("put: %v", err)
			}
		}
		if st := c.status(leader); st.FirstLog <= c.status(lagging).Applied+1 {
			t.Fatalf("leader's log starts at %d; the follower (applied %d) could still catch up from it", st.FirstLog, c.status(lagging).Applied)
		}
		c.net.Reconnect(lagging)
		c.waitConverged(10 * time.Second)
		if st := c.status(lagging); st.Snapshots == 0 {
			t.Errorf("follower caught up without a snapshot: %+v", st)
		}
		// It keeps up from the log afterwards, and survives a restart.
		for i := range 20 {
			key, val := fmt.Sprintf("k%d", i), fmt.Sprintf("after%d", i)
			call := rec.now()
			if err := cl.Put(ctx, []byte(key), []byte(val)); err != nil {
				t.Fatal(err)
			}
			rec.add(0, kvInput{op: "put", key: key, value: val}, kvOutput{}, call, rec.now())
		}
		c.crash(lagging)
		c.restart(lagging)
		c.waitConverged(10 * time.Second)
		// Read every key back through the leader.
		for i := range 30 {
			key := fmt.Sprintf("k%d", i)
			call := rec.now()
			v, err := cl.Get(ctx, []byte(key))
			if err != nil {
				t.Fatalf("get %s: %v", key, err)
			}
			rec.add(0, kvInput{op: "get", key: key}, kvOutput{value: string(v), found: true}, call, rec.now())
		}
		rec.check(t)
	})
}

// TestManyRestartsWithLogGCAndPartitions combines everything: an
// unreliable network, partitions, crashes and restarts of random stores,
// and a log GC threshold low enough that restarted or cut-off stores
// catch up by snapshot.
func TestManyRestartsWithLogGCAndPartitions(t *testing.T) {
	forEngines(t, func(t *testing.T, engine string) {
		c := newCluster(t, engine, clusterOpts{stores: 5, gcThreshold: 30})
		c.net.SetUnreliable(transport.Unreliable{DropRate: 0.05, DelayRate: 0.1, MaxDelay: 10 * time.Millisecond})
		rng := rand.New(rand.NewPCG(rand.Uint64(), 3))
		runLinearizable(t, c, chaosWorkload, scale(4*time.Second), func(stop <-chan struct{}) {
			for {
				ids := c.Stores()
				rng.Shuffle(len(ids), func(i, j int) { ids[i], ids[j] = ids[j], ids[i] })
				switch rng.IntN(3) {
				case 0:
					c.net.Partition(ids[:2], ids[2:])
				case 1:
					c.crash(ids[0])
				default:
					c.crash(ids[0])
					c.net.Partition(ids[1:2], ids[2:])
				}
				if !sleepOrStop(time.Duration(200+rng.IntN(400))*time.Millisecond, stop) {
					return
				}
				c.net.Partition(c.Stores())
				c.restart(ids[0])
				if !sleepOrStop(time.Duration(200+rng.IntN(200))*time.Millisecond, stop) {
					return
				}
			}
		})
		var snaps uint64
		for _, id := range c.Stores() {
			snaps += c.status(id).Snapshots
		}
		t.Logf("snapshots applied: %d", snaps)
	})
}

// TestDeposedLeaderServesNoStaleRead isolates the leader and stops its
// clock (so CheckQuorum cannot depose it: a long pause, a lagging
// clock), lets the majority elect a new leader and overwrite a key, then
// reads the key straight from the old leader. It still believes it
// leads, so a read from its local state (a lease read without a trusted
// clock) would return the old value; a ReadIndex read needs a heartbeat
// round with a majority first (Raft §6.4), which it cannot get: the read
// must fail, never answer "old". The history including that attempt is
// checked too.
func TestDeposedLeaderServesNoStaleRead(t *testing.T) {
	forEngines(t, func(t *testing.T, engine string) {
		c := newCluster(t, engine, clusterOpts{})
		old := c.leader(5 * time.Second)
		cl := client.New(c, nil)
		ctx, cancel := ctxTimeout(10 * time.Second)
		defer cancel()
		rec := newRecorder()
		call := rec.now()
		if err := cl.Put(ctx, []byte("x"), []byte("old")); err != nil {
			t.Fatal(err)
		}
		rec.add(0, kvInput{op: "put", key: "x", value: "old"}, kvOutput{}, call, rec.now())
		c.waitConverged(5 * time.Second)

		c.freeze(old, true)
		var rest []uint64
		for _, id := range c.Stores() {
			if id != old {
				rest = append(rest, id)
			}
		}
		c.net.Partition([]uint64{old}, rest)
		// A client that reaches only the majority writes until it finds
		// the new leader.
		call = rec.now()
		if err := client.New(subset{c, rest}, nil).Put(ctx, []byte("x"), []byte("new")); err != nil {
			t.Fatalf("the majority did not accept the write: %v", err)
		}
		rec.add(1, kvInput{op: "put", key: "x", value: "new"}, kvOutput{}, call, rec.now())
		if st := c.status(old); !st.Leader {
			t.Fatalf("old leader %d stepped down although its clock is frozen: %+v", old, st)
		}
		svc, _ := c.Store(old)
		rctx, rcancel := ctxTimeout(300 * time.Millisecond)
		call = rec.now()
		v, err := svc.Get(rctx, []byte("x"))
		rcancel()
		if err == nil {
			rec.add(2, kvInput{op: "get", key: "x"}, kvOutput{value: string(v), found: true}, call, rec.now())
			t.Errorf("deposed leader answered a read: %q", v)
		}
		rec.check(t)
		c.freeze(old, false)
		c.net.Heal()
		c.waitConverged(5 * time.Second)
	})
}

// TestStoreRejectsForeignTraffic gives a store raft messages and
// snapshot streams it must not take: another cluster's, a stream without
// a header, a cut stream, a stream whose data and message disagree. The
// store refuses or drops each, keeps serving, and its data is unchanged.
func TestStoreRejectsForeignTraffic(t *testing.T) {
	c := newCluster(t, "lsm", clusterOpts{})
	leader := c.leader(5 * time.Second)
	cl := client.New(c, nil)
	ctx, cancel := ctxTimeout(5 * time.Second)
	defer cancel()
	if err := cl.Put(ctx, []byte("a"), []byte("1")); err != nil {
		t.Fatal(err)
	}
	c.waitConverged(5 * time.Second)
	var follower uint64
	for _, id := range c.Stores() {
		if id != leader {
			follower = id
		}
	}
	svc, _ := c.Store(follower)
	s := svc.(transport.Handler)
	snapMsg := func(cluster, index uint64) *raftkvpb.RaftMessage {
		return &raftkvpb.RaftMessage{
			RegionId: regionID, ClusterId: cluster,
			FromPeer: &raftkvpb.Peer{Id: 100 + leader, StoreId: leader}, ToPeer: &raftkvpb.Peer{Id: 100 + follower, StoreId: follower},
			Message: &raftpb.Message{Type: raftpb.MsgSnap.Enum(), To: u64(100 + follower), From: u64(100 + leader), Term: u64(1000),
				Snapshot: &raftpb.Snapshot{Metadata: &raftpb.SnapshotMetadata{Index: u64(index), Term: u64(1000)}}},
		}
	}
	header := func(m *raftkvpb.RaftMessage, applied uint64) *raftkvpb.SnapshotChunk {
		return &raftkvpb.SnapshotChunk{Chunk: &raftkvpb.SnapshotChunk_Header{Header: &raftkvpb.SnapshotHeader{
			Message: m, Region: &raftkvpb.Region{Id: regionID}, ApplyState: &raftkvpb.RaftApplyState{AppliedIndex: applied},
		}}}
	}
	data := &raftkvpb.SnapshotChunk{Chunk: &raftkvpb.SnapshotChunk_Data{Data: &raftkvpb.SnapshotData{Pairs: []*raftkvpb.KeyValue{{Key: []byte("a"), Value: []byte("evil")}}}}}
	footer := &raftkvpb.SnapshotChunk{Chunk: &raftkvpb.SnapshotChunk_Footer{Footer: &raftkvpb.SnapshotFooter{Pairs: 1, Bytes: 5}}}
	for name, chunks := range map[string][]*raftkvpb.SnapshotChunk{
		"empty":             nil,
		"no header":         {data, footer},
		"other cluster":     {header(snapMsg(clusterID+1, 1000), 1000), data, footer},
		"cut":               {header(snapMsg(clusterID, 1000), 1000), data},
		"index disagrees":   {header(snapMsg(clusterID, 1000), 999), data, footer},
		"not a MsgSnap":     {header(&raftkvpb.RaftMessage{ClusterId: clusterID, Message: &raftpb.Message{Type: raftpb.MsgApp.Enum()}}, 0), footer},
		"footer miscounted": {header(snapMsg(clusterID, 1000), 1000), data, {Chunk: &raftkvpb.SnapshotChunk_Footer{Footer: &raftkvpb.SnapshotFooter{Pairs: 2}}}},
	} {
		if err := s.HandleSnapshot(chunks); err == nil {
			t.Errorf("%s: snapshot stream accepted", name)
		}
	}
	// A raft message of another cluster claiming a huge term is dropped:
	// the follower's term does not move.
	term := c.status(follower).Term
	m := snapMsg(clusterID+1, 0)
	m.Message = &raftpb.Message{Type: raftpb.MsgHeartbeat.Enum(), To: u64(100 + follower), From: u64(100 + leader), Term: u64(term + 100)}
	s.HandleRaft(&raftkvpb.RaftMessageBatch{Msgs: []*raftkvpb.RaftMessage{m}})
	if err := cl.Put(ctx, []byte("b"), []byte("2")); err != nil {
		t.Fatal(err)
	}
	c.waitConverged(5 * time.Second)
	if got := c.status(follower).Term; got >= term+100 {
		t.Errorf("follower took the term %d of another cluster's message", got)
	}
	if v, err := cl.Get(ctx, []byte("a")); err != nil || string(v) != "1" {
		t.Errorf("a = %q, %v after the bad snapshots; want 1", v, err)
	}
}

func u64(v uint64) *uint64 { return &v }
