package store_test

import (
	"bytes"
	"context"
	"flag"
	"fmt"
	"os"
	"sort"
	"sync"
	"testing"
	"time"

	"github.com/kvs-lab/kvs"
	_ "github.com/kvs-lab/kvs/bitcask"
	"github.com/kvs-lab/kvs/internal/vfs"
	_ "github.com/kvs-lab/kvs/lsm"
	"github.com/kvs-lab/kvs/raftkv/api"
	"github.com/kvs-lab/kvs/raftkv/raftkvpb"
	"github.com/kvs-lab/kvs/raftkv/raftstorage"
	"github.com/kvs-lab/kvs/raftkv/store"
	"github.com/kvs-lab/kvs/raftkv/transport"
	"go.etcd.io/raft/v3/raftpb"
)

var longFlag = flag.Bool("raftkv.long", false, "run the long versions of the cluster tests (also KVS_RAFT_LONG=1)")

var engineNames = []string{"bitcask", "lsm"}

// long reports whether the long versions run.
func long() bool { return *longFlag || os.Getenv("KVS_RAFT_LONG") == "1" }

// scale returns d, or ten times d for the long versions.
func scale(d time.Duration) time.Duration {
	if long() {
		return 10 * d
	}
	return d
}

const (
	clusterID    = 7
	regionID     = 1
	tickInterval = 10 * time.Millisecond
)

// clusterOpts tunes a test cluster.
type clusterOpts struct {
	stores      int
	gcThreshold uint64
	// powerLoss puts each engine on a vfs.MemFS instead of a directory:
	// crash then keeps only what was synced (MemFS.CrashClone), as a
	// power cut would, instead of closing the engine cleanly.
	powerLoss bool
	// maxValueSize, if set, is the engines' MaxValueSize, and the stores'
	// MaxRequestBytes leaves store.EntryOverheadBytes under it.
	maxValueSize int
}

// cluster is n stores on real engines in t.TempDir, one region over the
// whole key space, connected by a transport.Network. A goroutine ticks
// every running store every tickInterval: the stores have no clock of
// their own. It implements client.Cluster; clients reach every running
// store whatever the network's partitions (as in TinyKV's tests).
type cluster struct {
	t      testing.TB
	engine string
	opts   clusterOpts
	net    *transport.Network

	mu     sync.Mutex
	dirs   map[uint64]string
	fss    map[uint64]*vfs.MemFS // powerLoss only
	engs   map[uint64]kvs.Engine
	stores map[uint64]*store.Store // nil entry: the store is down
	frozen map[uint64]bool         // stores whose clock does not tick

	stopTick chan struct{}
	tickDone chan struct{}

	// cuts holds the power cuts armed on stores (powerLoss only), under
	// cutMu: the filter that lands them runs in the stores' goroutines.
	cutMu sync.Mutex
	cuts  map[uint64]*powerCut
}

// powerCut is a power cut armed on a store: it lands in the store's next
// send, so in the middle of a loop round, after the round's synced write
// (or in a snapshot sender's goroutine, whatever the loop is doing then).
// The message being sent leaves; from then on the store is a ghost:
// everything else it sends is dropped, and crash restarts it from what
// the disk held at the cut. A store that sent a promise (a vote, an
// append acknowledgement) before syncing it comes back without it.
type powerCut struct {
	src      *vfs.MemFS    // the store's disk
	disk     *vfs.MemFS    // src as the cut left it; nil until it landed
	done     chan struct{} // closed when it landed
	anyAfter time.Time     // lands only at a promise before, at any send after
}

// powerCutFilter lands the power cuts armed on the sending store (see
// powerCut). It runs inside Network.Send, in the sending goroutine.
func (c *cluster) powerCutFilter(from, _ uint64, m *raftkvpb.RaftMessage) bool {
	c.cutMu.Lock()
	defer c.cutMu.Unlock()
	pc := c.cuts[from]
	if pc == nil {
		return true
	}
	if pc.disk == nil {
		// Prefer a message that promises something about the disk (an
		// append acknowledgement, a vote: Raft §5.2, §5.3), where a
		// store that sends before it syncs gets caught; after a while,
		// any message.
		switch m.GetMessage().GetType() {
		case raftpb.MsgAppResp, raftpb.MsgVoteResp:
			if m.GetMessage().GetReject() && time.Now().Before(pc.anyAfter) {
				return true
			}
		default:
			if time.Now().Before(pc.anyAfter) {
				return true
			}
		}
		// The disk as it is now is what comes back; the message that
		// was leaving still goes out (it was on the wire when the power
		// went), nothing after it does.
		pc.disk = pc.src.CrashClone()
		close(pc.done)
		return true
	}
	return false
}

func newCluster(t testing.TB, engine string, opts clusterOpts) *cluster {
	t.Helper()
	if opts.stores == 0 {
		opts.stores = 3
	}
	c := &cluster{
		t: t, engine: engine, opts: opts,
		net:  transport.NewNetwork(uint64(time.Now().UnixNano())),
		dirs: map[uint64]string{}, fss: map[uint64]*vfs.MemFS{}, engs: map[uint64]kvs.Engine{}, stores: map[uint64]*store.Store{}, frozen: map[uint64]bool{},
		stopTick: make(chan struct{}), tickDone: make(chan struct{}),
	}
	region := &raftkvpb.Region{Id: regionID, Epoch: &raftkvpb.RegionEpoch{ConfVer: 1, Version: 1}}
	for id := uint64(1); id <= uint64(opts.stores); id++ {
		// Peer ids differ from store ids so that a mix-up shows.
		region.Peers = append(region.Peers, &raftkvpb.Peer{Id: 100 + id, StoreId: id})
	}
	for id := uint64(1); id <= uint64(opts.stores); id++ {
		if opts.powerLoss {
			c.dirs[id] = "/store"
			c.fss[id] = vfs.NewMem()
		} else {
			c.dirs[id] = t.TempDir()
		}
		eng := c.openEngine(id)
		if err := store.Bootstrap(eng, region); err != nil {
			t.Fatalf("bootstrap store %d: %v", id, err)
		}
		c.engs[id] = eng
		c.startStore(id)
	}
	if opts.powerLoss {
		c.cuts = map[uint64]*powerCut{}
		c.net.AddFilter(c.powerCutFilter)
	}
	go c.tick()
	t.Cleanup(c.shutdown)
	return c
}

func (c *cluster) openEngine(id uint64) kvs.Engine {
	c.t.Helper()
	o := &kvs.Options{Logger: kvs.DiscardLogger(), MaxValueSize: c.opts.maxValueSize}
	if fs := c.fss[id]; fs != nil {
		o.FS = fs
	}
	eng, err := kvs.Open(c.engine, c.dirs[id], o)
	if err != nil {
		c.t.Fatalf("store %d: open %s: %v", id, c.engine, err)
	}
	return eng
}

// addStore starts a new, empty store (no region bootstrapped) and returns
// its id. It joins a region only through a conf change.
func (c *cluster) addStore() uint64 {
	c.t.Helper()
	c.mu.Lock()
	id := uint64(len(c.dirs) + 1)
	c.mu.Unlock()
	if c.opts.powerLoss {
		c.fss[id] = vfs.NewMem()
		c.setDir(id, "/store")
	} else {
		c.setDir(id, c.t.TempDir())
	}
	c.engs[id] = c.openEngine(id)
	c.startStore(id)
	return id
}

func (c *cluster) setDir(id uint64, dir string) {
	c.mu.Lock()
	defer c.mu.Unlock()
	c.dirs[id] = dir
}

// storeByID returns running store id, nil if it is down.
func (c *cluster) storeByID(id uint64) *store.Store {
	c.mu.Lock()
	defer c.mu.Unlock()
	return c.stores[id]
}

func (c *cluster) startStore(id uint64) {
	c.t.Helper()
	maxReq := 0
	if c.opts.maxValueSize > 0 {
		maxReq = c.opts.maxValueSize - store.EntryOverheadBytes
	}
	s, err := store.New(store.Config{
		StoreID:            id,
		ClusterID:          clusterID,
		Engine:             c.engs[id],
		Transport:          c.net.Transport(id),
		ElectionTick:       10,
		HeartbeatTick:      2,
		RaftLogGCThreshold: c.opts.gcThreshold,
		SnapshotChunkBytes: 4 << 10,
		MaxRequestBytes:    maxReq,
		Logger:             kvs.DiscardLogger(),
	})
	if err != nil {
		c.t.Fatalf("start store %d: %v", id, err)
	}
	c.mu.Lock()
	c.stores[id] = s
	c.mu.Unlock()
	c.net.Register(id, s)
}

// crash stops store id and closes its engine; its directory stays. With
// powerLoss, the power goes in the middle of a round of the store's loop
// (a powerCut: at the store's next send, if it sends within a moment,
// else between rounds) and the files lose everything not synced by then.
func (c *cluster) crash(id uint64) {
	c.t.Helper()
	if !c.up(id) {
		return
	}
	var pc *powerCut
	if fs := c.fss[id]; fs != nil {
		pc = &powerCut{src: fs, done: make(chan struct{}), anyAfter: time.Now().Add(50 * time.Millisecond)}
		c.cutMu.Lock()
		c.cuts[id] = pc
		c.cutMu.Unlock()
		select {
		case <-pc.done:
		case <-time.After(150 * time.Millisecond):
		}
	}
	c.mu.Lock()
	s := c.stores[id]
	c.stores[id] = nil
	c.mu.Unlock()
	c.net.Unregister(id)
	s.Stop()
	if err := s.Err(); err != nil {
		c.t.Errorf("store %d failed: %v", id, err)
	}
	if pc != nil {
		// The store's goroutines are done: nothing sends any more.
		c.cutMu.Lock()
		delete(c.cuts, id)
		c.cutMu.Unlock()
		if pc.disk == nil {
			pc.disk = pc.src.CrashClone()
		}
		c.fss[id] = pc.disk
	}
	if err := c.engs[id].Close(); err != nil {
		c.t.Fatalf("store %d: close engine: %v", id, err)
	}
	c.engs[id] = nil
}

// restart reopens store id's engine from disk and starts the store on
// it: the raft state, log and data come from what the engine recovered.
func (c *cluster) restart(id uint64) {
	c.t.Helper()
	if c.engs[id] != nil {
		return
	}
	c.engs[id] = c.openEngine(id)
	c.startStore(id)
}

// freeze stops or restarts store id's clock: a frozen store still
// handles messages and requests but never times out, like a process in a
// long pause whose clock lags.
func (c *cluster) freeze(id uint64, frozen bool) {
	c.mu.Lock()
	defer c.mu.Unlock()
	c.frozen[id] = frozen
}

func (c *cluster) up(id uint64) bool {
	c.mu.Lock()
	defer c.mu.Unlock()
	return c.stores[id] != nil
}

func (c *cluster) tick() {
	defer close(c.tickDone)
	t := time.NewTicker(tickInterval)
	defer t.Stop()
	for {
		select {
		case <-c.stopTick:
			return
		case <-t.C:
		}
		c.mu.Lock()
		for id, s := range c.stores {
			if s != nil && !c.frozen[id] {
				s.Tick()
			}
		}
		c.mu.Unlock()
	}
}

func (c *cluster) shutdown() {
	close(c.stopTick)
	<-c.tickDone
	for id := range c.dirs {
		c.crash(id)
	}
	c.net.Close()
}

// Stores implements client.Cluster: every store the test started, in
// the region or not (a client finds the leader among them; stores added
// later show up at the client's next try).
func (c *cluster) Stores() []uint64 {
	c.mu.Lock()
	defer c.mu.Unlock()
	ids := make([]uint64, 0, len(c.dirs))
	for id := range c.dirs {
		ids = append(ids, id)
	}
	sort.Slice(ids, func(i, j int) bool { return ids[i] < ids[j] })
	return ids
}

// Store implements client.Cluster.
func (c *cluster) Store(id uint64) (api.Service, error) {
	c.mu.Lock()
	defer c.mu.Unlock()
	if s := c.stores[id]; s != nil {
		return s, nil
	}
	return nil, fmt.Errorf("store %d is down: %w", id, api.ErrUnreachable)
}

// subset is a view of the cluster that only reaches some stores.
type subset struct {
	c   *cluster
	ids []uint64
}

func (s subset) Stores() []uint64                     { return s.ids }
func (s subset) Store(id uint64) (api.Service, error) { return s.c.Store(id) }

// leader returns the store that leads the region with the highest term,
// waiting (in ticks) up to timeout for one; 0 if none.
func (c *cluster) leader(timeout time.Duration) uint64 {
	deadline := time.Now().Add(timeout)
	for {
		var best, term uint64
		c.mu.Lock()
		for id, s := range c.stores {
			if s == nil {
				continue
			}
			for _, st := range s.Status() {
				if st.Leader && st.Term > term {
					best, term = id, st.Term
				}
			}
		}
		c.mu.Unlock()
		if best != 0 || time.Now().After(deadline) {
			return best
		}
		time.Sleep(tickInterval)
	}
}

func (c *cluster) status(id uint64) store.RegionStatus {
	c.mu.Lock()
	s := c.stores[id]
	c.mu.Unlock()
	if s == nil {
		return store.RegionStatus{}
	}
	for _, st := range s.Status() {
		if st.RegionID == regionID {
			return st
		}
	}
	return store.RegionStatus{}
}

// waitConverged waits until every running store that holds a peer of
// the region (as the leader's region lists them) has applied the same
// index, then checks that their region data (user keys and client
// sessions) is identical: the replicas are copies of one state machine.
// Stores outside the region are left out.
func (c *cluster) waitConverged(timeout time.Duration) {
	c.t.Helper()
	deadline := time.Now().Add(timeout)
	var members []uint64
	for {
		var applied []uint64
		members = nil
		if l := c.leader(0); l != 0 {
			for _, pe := range c.status(l).Region.GetPeers() {
				if id := pe.GetStoreId(); c.up(id) {
					members = append(members, id)
					applied = append(applied, c.status(id).Applied)
				}
			}
		}
		same := len(applied) > 0
		for _, a := range applied {
			same = same && a == applied[0]
		}
		if same {
			break
		}
		if time.Now().After(deadline) {
			c.t.Fatalf("replicas did not converge in %v: stores %v applied %v", timeout, members, applied)
		}
		time.Sleep(tickInterval)
	}
	var ref map[string]string
	var refID uint64
	for _, id := range members {
		got := c.data(id)
		if ref == nil {
			ref, refID = got, id
			continue
		}
		if len(got) != len(ref) {
			c.t.Errorf("store %d has %d keys, store %d has %d", id, len(got), refID, len(ref))
		}
		for k, v := range ref {
			if got[k] != v {
				c.t.Errorf("key %q: store %d has %q, store %d has %q", k, refID, v, id, got[k])
			}
		}
	}
}

// data reads store id's whole data range straight from its engine.
func (c *cluster) data(id uint64) map[string]string {
	c.t.Helper()
	lower, upper := raftstorage.DataRange(nil, nil)
	it, err := c.engs[id].NewIter(&kvs.IterOptions{LowerBound: lower, UpperBound: upper})
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

// forEngines runs f once per engine.
func forEngines(t *testing.T, f func(t *testing.T, engine string)) {
	for _, e := range engineNames {
		t.Run("engine="+e, func(t *testing.T) { f(t, e) })
	}
}

func ctxTimeout(d time.Duration) (context.Context, context.CancelFunc) {
	return context.WithTimeout(context.Background(), d)
}
