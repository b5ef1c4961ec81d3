package grpctransport_test

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"net"
	"sync"
	"testing"
	"time"

	"github.com/kvs-lab/kvs"
	_ "github.com/kvs-lab/kvs/bitcask"
	_ "github.com/kvs-lab/kvs/lsm"
	"github.com/kvs-lab/kvs/raftkv/api"
	"github.com/kvs-lab/kvs/raftkv/client"
	"github.com/kvs-lab/kvs/raftkv/raftkvpb"
	"github.com/kvs-lab/kvs/raftkv/raftstorage"
	"github.com/kvs-lab/kvs/raftkv/store"
	"github.com/kvs-lab/kvs/raftkv/transport/grpctransport"
)

const (
	regionID     = 1
	tickInterval = 10 * time.Millisecond
)

// grpcStore is one raftkv store of a gRPC cluster: engine, store,
// transport and server.
type grpcStore struct {
	dir  string
	eng  kvs.Engine
	st   *store.Store
	node *node
}

// grpcCluster is three stores on real engines in t.TempDir, talking over
// grpctransport on loopback, ticked every tickInterval by a goroutine.
// It implements client.Cluster; clients call the stores in process.
type grpcCluster struct {
	t      testing.TB
	engine string
	peers  grpctransport.StaticResolver

	mu     sync.Mutex
	stores map[uint64]*grpcStore
	up     map[uint64]bool

	stopTick, tickDone chan struct{}
	stopOnce           sync.Once
}

func newGRPCCluster(t testing.TB, engine string) *grpcCluster {
	t.Helper()
	peers, lis := listen(t, 1, 2, 3)
	c := &grpcCluster{
		t: t, engine: engine, peers: peers,
		stores: map[uint64]*grpcStore{}, up: map[uint64]bool{},
		stopTick: make(chan struct{}), tickDone: make(chan struct{}),
	}
	region := &raftkvpb.Region{Id: regionID, Epoch: &raftkvpb.RegionEpoch{ConfVer: 1, Version: 1}}
	for id := uint64(1); id <= 3; id++ {
		region.Peers = append(region.Peers, &raftkvpb.Peer{Id: 100 + id, StoreId: id})
	}
	for id := uint64(1); id <= 3; id++ {
		s := &grpcStore{dir: t.TempDir()}
		c.stores[id] = s
		c.openEngine(id)
		if err := store.Bootstrap(s.eng, region); err != nil {
			t.Fatalf("bootstrap store %d: %v", id, err)
		}
		c.start(id, lis[id])
	}
	go c.tick()
	t.Cleanup(c.shutdown)
	return c
}

func (c *grpcCluster) openEngine(id uint64) {
	c.t.Helper()
	eng, err := kvs.Open(c.engine, c.stores[id].dir, &kvs.Options{Logger: kvs.DiscardLogger()})
	if err != nil {
		c.t.Fatalf("store %d: open %s: %v", id, c.engine, err)
	}
	c.stores[id].eng = eng
}

// start starts store id on its engine, with a new transport and a server
// on l.
func (c *grpcCluster) start(id uint64, l net.Listener) {
	c.t.Helper()
	s := c.stores[id]
	cfg := testConfig(id, c.peers)
	tr, err := grpctransport.New(cfg)
	if err != nil {
		c.t.Fatal(err)
	}
	st, err := store.New(store.Config{
		StoreID: id, ClusterID: testCluster, Engine: s.eng, Transport: tr,
		ElectionTick: 10, HeartbeatTick: 2,
		RaftLogGCThreshold: 20, SnapshotChunkBytes: 4 << 10,
		Logger: kvs.DiscardLogger(),
	})
	if err != nil {
		c.t.Fatalf("start store %d: %v", id, err)
	}
	srv, err := grpctransport.NewServer(cfg, st)
	if err != nil {
		c.t.Fatal(err)
	}
	s.node = &node{t: c.t, cfg: cfg, addr: c.peers[id], tr: tr, srv: srv}
	s.node.serve(l)
	c.mu.Lock()
	s.st = st
	c.up[id] = true
	c.mu.Unlock()
}

// crash stops store id (server, store, transport) and closes its engine.
func (c *grpcCluster) crash(id uint64) {
	c.t.Helper()
	c.mu.Lock()
	if !c.up[id] {
		c.mu.Unlock()
		return
	}
	c.up[id] = false
	s := c.stores[id]
	c.mu.Unlock()
	s.node.stopServer()
	s.st.Stop()
	if err := s.st.Err(); err != nil {
		c.t.Errorf("store %d failed: %v", id, err)
	}
	_ = s.node.tr.Close()
	if err := s.eng.Close(); err != nil {
		c.t.Errorf("store %d: close engine: %v", id, err)
	}
}

// restart reopens store id's engine and starts it on its old address.
func (c *grpcCluster) restart(id uint64) {
	c.t.Helper()
	c.openEngine(id)
	var l net.Listener
	var err error
	for range 100 {
		if l, err = net.Listen("tcp", c.peers[id]); err == nil {
			break
		}
		time.Sleep(20 * time.Millisecond)
	}
	if err != nil {
		c.t.Fatalf("store %d: listen on %s again: %v", id, c.peers[id], err)
	}
	c.start(id, l)
}

func (c *grpcCluster) tick() {
	defer close(c.tickDone)
	tk := time.NewTicker(tickInterval)
	defer tk.Stop()
	for {
		select {
		case <-c.stopTick:
			return
		case <-tk.C:
		}
		c.mu.Lock()
		for id, s := range c.stores {
			if c.up[id] {
				s.st.Tick()
			}
		}
		c.mu.Unlock()
	}
}

// shutdown stops every store; it may be called more than once.
func (c *grpcCluster) shutdown() {
	c.stopOnce.Do(func() {
		close(c.stopTick)
		<-c.tickDone
		for id := range c.stores {
			c.crash(id)
		}
	})
}

// Stores implements client.Cluster.
func (c *grpcCluster) Stores() []uint64 { return []uint64{1, 2, 3} }

// Store implements client.Cluster.
func (c *grpcCluster) Store(id uint64) (api.Service, error) {
	c.mu.Lock()
	defer c.mu.Unlock()
	if !c.up[id] {
		return nil, fmt.Errorf("store %d is down: %w", id, api.ErrUnreachable)
	}
	return c.stores[id].st, nil
}

func (c *grpcCluster) status(id uint64) store.RegionStatus {
	c.mu.Lock()
	defer c.mu.Unlock()
	if c.up[id] {
		for _, st := range c.stores[id].st.Status() {
			if st.RegionID == regionID {
				return st
			}
		}
	}
	return store.RegionStatus{}
}

// leader waits up to timeout for a leader and returns its store id.
func (c *grpcCluster) leader(timeout time.Duration) uint64 {
	deadline := time.Now().Add(timeout)
	for {
		var best, term uint64
		for _, id := range c.Stores() {
			if st := c.status(id); st.Leader && st.Term > term {
				best, term = id, st.Term
			}
		}
		if best != 0 || time.Now().After(deadline) {
			return best
		}
		time.Sleep(tickInterval)
	}
}

// waitConverged waits until the running stores applied the same index
// and checks that their data is identical.
func (c *grpcCluster) waitConverged(timeout time.Duration) {
	c.t.Helper()
	deadline := time.Now().Add(timeout)
	for {
		var applied []uint64
		for _, id := range c.Stores() {
			applied = append(applied, c.status(id).Applied)
		}
		if applied[0] != 0 && applied[0] == applied[1] && applied[1] == applied[2] && c.leader(0) != 0 {
			break
		}
		if time.Now().After(deadline) {
			c.t.Fatalf("replicas did not converge in %v: applied %v", timeout, applied)
		}
		time.Sleep(tickInterval)
	}
	ref := c.data(1)
	for _, id := range []uint64{2, 3} {
		got := c.data(id)
		if fmt.Sprint(got) != fmt.Sprint(ref) {
			c.t.Errorf("store %d's data differs from store 1's:\n%v\n%v", id, got, ref)
		}
	}
}

// data reads store id's data range straight from its engine.
func (c *grpcCluster) data(id uint64) map[string]string {
	c.t.Helper()
	lower, upper := raftstorage.DataRange(nil, nil)
	it, err := c.stores[id].eng.NewIter(&kvs.IterOptions{LowerBound: lower, UpperBound: upper})
	if err != nil {
		c.t.Fatal(err)
	}
	out := map[string]string{}
	for ok := it.First(); ok; ok = it.Next() {
		out[string(bytes.Clone(it.Key()))] = string(it.Value())
	}
	if err := it.Close(); err != nil {
		c.t.Fatal(err)
	}
	return out
}

// TestClusterOverGRPC runs three raftkv stores over the gRPC transport:
// writes each followed by a read checked against a model; a follower's
// server stopped (it hears nothing while the others go on and truncate
// their logs) and restarted, after which it catches up by a snapshot
// streamed over Raft.Snapshot; then a crash and restart of a whole
// store; finally every key read back.
func TestClusterOverGRPC(t *testing.T) {
	for _, engine := range []string{"bitcask", "lsm"} {
		t.Run("engine="+engine, func(t *testing.T) {
			c := newGRPCCluster(t, engine)
			leader := c.leader(5 * time.Second)
			if leader == 0 {
				t.Fatal("no leader elected")
			}
			cl := client.New(c, nil)
			ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
			defer cancel()
			model := map[string]string{}
			writes := 0
			// step writes n keys, reading each back at once.
			step := func(n int) {
				t.Helper()
				for range n {
					key, val := fmt.Sprintf("k%02d", writes%30), fmt.Sprintf("v%d", writes)
					writes++
					if err := cl.Put(ctx, []byte(key), []byte(val)); err != nil {
						t.Fatalf("put %s: %v", key, err)
					}
					model[key] = val
					got, err := cl.Get(ctx, []byte(key))
					if err != nil || string(got) != val {
						t.Fatalf("get %s = %q, %v; want %q", key, got, err, val)
					}
				}
			}
			step(60)

			// Cut a follower's network: its server stops, so the
			// others' streams to it break.
			var lagging uint64
			for _, id := range c.Stores() {
				if id != leader {
					lagging = id
					break
				}
			}
			laggingNode := c.stores[lagging].node
			laggingNode.stopServer()
			step(60)
			leader = c.leader(5 * time.Second)
			if st := c.status(leader); st.FirstLog <= c.status(lagging).Applied+1 {
				t.Fatalf("leader's log starts at %d; the follower (applied %d) could still catch up from it", st.FirstLog, c.status(lagging).Applied)
			}
			if st := c.stores[leader].node.tr.Stats(); st.StreamFailures == 0 {
				t.Errorf("leader's transport saw no stream failure while store %d was cut off: %+v", lagging, st)
			}
			laggingNode.restartServer()
			c.waitConverged(15 * time.Second)
			if st := c.status(lagging); st.Snapshots == 0 {
				t.Errorf("follower caught up without a snapshot: %+v", st)
			}
			// NB: the server counts a snapshot once its store's handler
			// has taken it, so the store may have applied it, and the
			// cluster converged, a moment before the count moves.
			st := laggingNode.srv.Stats()
			for deadline := time.Now().Add(5 * time.Second); st.Snapshots == 0 && time.Now().Before(deadline); st = laggingNode.srv.Stats() {
				time.Sleep(10 * time.Millisecond)
			}
			if st.Snapshots == 0 || st.StreamsRefused != 0 {
				t.Errorf("follower's server stats %+v: want a snapshot received, nothing refused", st)
			}
			step(40)

			// A crash and restart of a whole store: engine reopened from
			// disk, new transport and server on the same address.
			c.crash(lagging)
			step(20)
			c.restart(lagging)
			step(20)
			c.waitConverged(15 * time.Second)

			for key, val := range model {
				got, err := cl.Get(ctx, []byte(key))
				if err != nil || string(got) != val {
					t.Errorf("final get %s = %q, %v; want %q", key, got, err, val)
				}
			}
			if _, err := cl.Get(ctx, []byte("absent")); !errors.Is(err, kvs.ErrNotFound) {
				t.Errorf("get of an absent key: %v, want kvs.ErrNotFound", err)
			}
			c.shutdown()
			checkNoGoroutines(t)
		})
	}
}
