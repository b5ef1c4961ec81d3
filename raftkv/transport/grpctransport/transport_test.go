package grpctransport_test

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"net"
	"runtime"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/kvs-lab/kvs"
	"github.com/kvs-lab/kvs/raftkv/raftkvpb"
	"github.com/kvs-lab/kvs/raftkv/transport"
	"github.com/kvs-lab/kvs/raftkv/transport/grpctransport"
	"go.etcd.io/raft/v3/raftpb"
	"google.golang.org/grpc"
	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/status"
	"google.golang.org/protobuf/proto"
)

const testCluster = 7

// recorder is a transport.Handler that keeps what it receives.
type recorder struct {
	mu      sync.Mutex
	msgs    []*raftkvpb.RaftMessage
	batches int
	snaps   [][]*raftkvpb.SnapshotChunk
	snapErr error // HandleSnapshot's answer
}

func (r *recorder) HandleRaft(b *raftkvpb.RaftMessageBatch) {
	r.mu.Lock()
	defer r.mu.Unlock()
	r.batches++
	r.msgs = append(r.msgs, b.GetMsgs()...)
}

func (r *recorder) HandleSnapshot(chunks []*raftkvpb.SnapshotChunk) error {
	r.mu.Lock()
	defer r.mu.Unlock()
	r.snaps = append(r.snaps, chunks)
	return r.snapErr
}

func (r *recorder) counts() (msgs, batches, snaps int) {
	r.mu.Lock()
	defer r.mu.Unlock()
	return len(r.msgs), r.batches, len(r.snaps)
}

// waitFor polls cond until it holds or timeout passes.
func waitFor(t testing.TB, timeout time.Duration, what string, cond func() bool) {
	t.Helper()
	deadline := time.Now().Add(timeout)
	for !cond() {
		if time.Now().After(deadline) {
			t.Fatalf("timed out after %v waiting for %s", timeout, what)
		}
		time.Sleep(5 * time.Millisecond)
	}
}

// node is one store's transport and server on a loopback listener.
type node struct {
	t    testing.TB
	cfg  grpctransport.Config
	addr string
	tr   *grpctransport.Transport
	srv  *grpctransport.Server
	g    *grpc.Server
	done chan struct{}
}

// listen reserves a loopback address for each id, for a peer list.
func listen(t testing.TB, ids ...uint64) (grpctransport.StaticResolver, map[uint64]net.Listener) {
	t.Helper()
	peers := grpctransport.StaticResolver{}
	lis := map[uint64]net.Listener{}
	for _, id := range ids {
		l, err := net.Listen("tcp", "127.0.0.1:0")
		if err != nil {
			t.Fatal(err)
		}
		peers[id], lis[id] = l.Addr().String(), l
	}
	return peers, lis
}

func testConfig(id uint64, peers grpctransport.Resolver) grpctransport.Config {
	return grpctransport.Config{
		StoreID: id, ClusterID: testCluster, Resolver: peers,
		BackoffBase: 20 * time.Millisecond, BackoffMax: 200 * time.Millisecond,
		HandshakeTimeout: 2 * time.Second,
		Logger:           kvs.DiscardLogger(),
	}
}

// newNode starts cfg's server on l, delivering to h, and its transport.
func newNode(t testing.TB, cfg grpctransport.Config, l net.Listener, h transport.Handler) *node {
	t.Helper()
	tr, err := grpctransport.New(cfg)
	if err != nil {
		t.Fatal(err)
	}
	srv, err := grpctransport.NewServer(cfg, h)
	if err != nil {
		t.Fatal(err)
	}
	n := &node{t: t, cfg: cfg, addr: l.Addr().String(), tr: tr, srv: srv}
	n.serve(l)
	t.Cleanup(func() {
		n.stopServer()
		_ = tr.Close()
	})
	return n
}

func (n *node) serve(l net.Listener) {
	n.g = grpc.NewServer(n.srv.ServerOptions()...)
	n.srv.Register(n.g)
	n.done = make(chan struct{})
	go func(g *grpc.Server, done chan struct{}) {
		defer close(done)
		_ = g.Serve(l)
	}(n.g, n.done)
}

// stopServer stops the node's gRPC server, cutting its open streams, as
// a crash of its process (or its network) would.
func (n *node) stopServer() {
	if n.g == nil {
		return
	}
	n.g.Stop()
	<-n.done
	n.g = nil
}

// restartServer serves again on the node's old address.
func (n *node) restartServer() {
	n.t.Helper()
	var l net.Listener
	var err error
	for range 100 { // the port may take a moment to become free
		if l, err = net.Listen("tcp", n.addr); err == nil {
			break
		}
		time.Sleep(20 * time.Millisecond)
	}
	if err != nil {
		n.t.Fatalf("listen again on %s: %v", n.addr, err)
	}
	n.serve(l)
}

func batch(from, to uint64, index uint64) *raftkvpb.RaftMessageBatch {
	return &raftkvpb.RaftMessageBatch{Msgs: []*raftkvpb.RaftMessage{{
		RegionId:  1,
		FromPeer:  &raftkvpb.Peer{Id: 100 + from, StoreId: from},
		ToPeer:    &raftkvpb.Peer{Id: 100 + to, StoreId: to},
		ClusterId: testCluster,
		Message:   &raftpb.Message{Type: raftpb.MsgHeartbeat.Enum(), From: proto.Uint64(100 + from), To: proto.Uint64(100 + to), Commit: proto.Uint64(index)},
	}}}
}

// snapshotWriter returns a write function sending a header, n data chunks
// of size bytes each and a footer.
func snapshotWriter(n, size int) func(send func(*raftkvpb.SnapshotChunk) error) error {
	return func(send func(*raftkvpb.SnapshotChunk) error) error {
		hdr := &raftkvpb.SnapshotChunk{Chunk: &raftkvpb.SnapshotChunk_Header{Header: &raftkvpb.SnapshotHeader{
			Message: &raftkvpb.RaftMessage{RegionId: 1, ClusterId: testCluster, Message: &raftpb.Message{Type: raftpb.MsgSnap.Enum()}},
		}}}
		if err := send(hdr); err != nil {
			return err
		}
		for i := range n {
			kv := &raftkvpb.KeyValue{Key: fmt.Appendf(nil, "k%04d", i), Value: bytes.Repeat([]byte{'v'}, size)}
			c := &raftkvpb.SnapshotChunk{Chunk: &raftkvpb.SnapshotChunk_Data{Data: &raftkvpb.SnapshotData{Pairs: []*raftkvpb.KeyValue{kv}}}}
			if err := send(c); err != nil {
				return err
			}
		}
		return send(&raftkvpb.SnapshotChunk{Chunk: &raftkvpb.SnapshotChunk_Footer{Footer: &raftkvpb.SnapshotFooter{Pairs: uint64(n)}}})
	}
}

func TestParsePeers(t *testing.T) {
	for _, tc := range []struct {
		in, want, err string
	}{
		{in: "1=a:1,2=b:2,3=c:3", want: "1=a:1,2=b:2,3=c:3"},
		{in: " 3=c:3 , 1=a:1,", want: "1=a:1,3=c:3"},
		{in: "", err: "empty peer list"},
		{in: "1=a:1,1=b:2", err: "names store 1 twice"},
		{in: "0=a:1", err: "positive integer"},
		{in: "x=a:1", err: "positive integer"},
		{in: "1=", err: "want id=host:port"},
		{in: "1", err: "want id=host:port"},
	} {
		t.Run(tc.in, func(t *testing.T) {
			r, err := grpctransport.ParsePeers(tc.in)
			if tc.err != "" {
				if err == nil || !strings.Contains(err.Error(), tc.err) {
					t.Fatalf("ParsePeers(%q) = %v, %v; want error containing %q", tc.in, r, err, tc.err)
				}
				return
			}
			if err != nil || r.String() != tc.want {
				t.Fatalf("ParsePeers(%q) = %v, %v; want %s", tc.in, r, err, tc.want)
			}
		})
	}
	if _, err := (grpctransport.StaticResolver{1: "a:1"}).Resolve(2); !errors.Is(err, grpctransport.ErrUnknownStore) {
		t.Errorf("Resolve of an unknown store: %v, want ErrUnknownStore", err)
	}
}

// TestBatchesAndSnapshotDelivered sends batches both ways between two
// stores (in order: one stream per destination) and a snapshot.
func TestBatchesAndSnapshotDelivered(t *testing.T) {
	peers, lis := listen(t, 1, 2)
	h1, h2 := &recorder{}, &recorder{}
	n1 := newNode(t, testConfig(1, peers), lis[1], h1)
	n2 := newNode(t, testConfig(2, peers), lis[2], h2)
	const count = 200
	for i := range uint64(count) {
		if err := n1.tr.Send(2, batch(1, 2, i)); err != nil {
			t.Fatalf("send 1->2 #%d: %v", i, err)
		}
		if err := n2.tr.Send(1, batch(2, 1, i)); err != nil {
			t.Fatalf("send 2->1 #%d: %v", i, err)
		}
	}
	for _, h := range []*recorder{h1, h2} {
		waitFor(t, 5*time.Second, "batches", func() bool { m, _, _ := h.counts(); return m == count })
		h.mu.Lock()
		for i, m := range h.msgs {
			if m.GetMessage().GetCommit() != uint64(i) {
				t.Fatalf("message %d carries commit %d: out of order", i, m.GetMessage().GetCommit())
			}
		}
		h.mu.Unlock()
	}
	if st := n1.tr.Stats(); st.Msgs != count || st.DroppedFull+st.DroppedUnreachable != 0 {
		t.Errorf("store 1 stats %+v: want %d messages, no drops", st, count)
	}
	if st := n2.srv.Stats(); st.Msgs != count || st.StreamsRefused != 0 {
		t.Errorf("store 2 server stats %+v: want %d messages, none refused", st, count)
	}

	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
	defer cancel()
	if err := n1.tr.SendSnapshot(ctx, 2, snapshotWriter(20, 4<<10)); err != nil {
		t.Fatalf("snapshot: %v", err)
	}
	h2.mu.Lock()
	got := h2.snaps
	h2.mu.Unlock()
	if len(got) != 1 || len(got[0]) != 22 || got[0][0].GetHeader() == nil || got[0][21].GetFooter().GetPairs() != 20 {
		t.Fatalf("received %d snapshots, the first of %d chunks; want one of 22 (header, 20 data, footer)", len(got), len(got[0]))
	}

	// The receiver's verdict comes back to the sender.
	h2.mu.Lock()
	h2.snapErr = errors.New("region 1 is unknown here")
	h2.mu.Unlock()
	err := n1.tr.SendSnapshot(ctx, 2, snapshotWriter(1, 10))
	if status.Code(err) != codes.Aborted || !strings.Contains(err.Error(), "region 1 is unknown here") {
		t.Errorf("snapshot the handler rejects: %v, want Aborted with the handler's reason", err)
	}
	// A cancelled context ends the stream on the sender's side.
	cctx, ccancel := context.WithCancel(context.Background())
	err = n1.tr.SendSnapshot(cctx, 2, func(send func(*raftkvpb.SnapshotChunk) error) error {
		ccancel()
		return snapshotWriter(1, 10)(send)
	})
	if !errors.Is(err, context.Canceled) {
		t.Errorf("snapshot with a cancelled context: %v, want context.Canceled", err)
	}
	if st := n1.tr.Stats(); st.Snapshots != 1 || st.SnapshotsFailed != 2 {
		t.Errorf("stats %+v: want 1 snapshot sent, 2 failed", st)
	}
}

// TestReconnectAfterServerRestart stops the receiving store's server:
// Send reports it unreachable, then messages flow again once it serves on
// the same address.
func TestReconnectAfterServerRestart(t *testing.T) {
	peers, lis := listen(t, 1, 2)
	h2 := &recorder{}
	n1 := newNode(t, testConfig(1, peers), lis[1], &recorder{})
	n2 := newNode(t, testConfig(2, peers), lis[2], h2)
	if err := n1.tr.Send(2, batch(1, 2, 0)); err != nil {
		t.Fatal(err)
	}
	waitFor(t, 5*time.Second, "the first message", func() bool { m, _, _ := h2.counts(); return m == 1 })

	n2.stopServer()
	var sendErr error
	waitFor(t, 5*time.Second, "Send to report store 2 unreachable", func() bool {
		sendErr = n1.tr.Send(2, batch(1, 2, 1))
		return sendErr != nil
	})
	if !errors.Is(sendErr, transport.ErrUnreachable) {
		t.Fatalf("Send to a stopped store: %v, want transport.ErrUnreachable", sendErr)
	}
	// Still down after a few backoff rounds.
	time.Sleep(100 * time.Millisecond)
	if err := n1.tr.Send(2, batch(1, 2, 1)); err == nil {
		t.Fatal("Send to a stopped store succeeded")
	}

	n2.restartServer()
	waitFor(t, 10*time.Second, "messages to flow again", func() bool {
		_ = n1.tr.Send(2, batch(1, 2, 2))
		m, _, _ := h2.counts()
		return m > 1
	})
	if st := n1.tr.Stats(); st.StreamFailures == 0 || st.DroppedUnreachable == 0 {
		t.Errorf("stats %+v: want stream failures and unreachable drops counted", st)
	}
}

// TestWrongClusterRefused: a store of another cluster gets nothing
// through, in either direction, and the refusal names both clusters.
func TestWrongClusterRefused(t *testing.T) {
	peers, lis := listen(t, 1, 2)
	h1, h2 := &recorder{}, &recorder{}
	cfg1 := testConfig(1, peers)
	cfg1.ClusterID = 8 // the intruder
	n1 := newNode(t, cfg1, lis[1], h1)
	n2 := newNode(t, testConfig(2, peers), lis[2], h2)

	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
	defer cancel()
	err := n1.tr.SendSnapshot(ctx, 2, snapshotWriter(1, 10))
	if status.Code(err) != codes.FailedPrecondition || !strings.Contains(err.Error(), "cluster 7") ||
		!strings.Contains(err.Error(), "cluster 8") || !strings.Contains(err.Error(), "no data from another cluster accepted") {
		t.Errorf("snapshot from another cluster: %v; want FailedPrecondition naming clusters 7 and 8", err)
	}
	waitFor(t, 5*time.Second, "Send to fail", func() bool { return n1.tr.Send(2, batch(1, 2, 0)) != nil })
	// The other way round, the sender refuses to talk to a receiver of
	// another cluster (its header names cluster 8).
	err = n2.tr.SendSnapshot(ctx, 1, snapshotWriter(1, 10))
	if err == nil || !strings.Contains(err.Error(), "another cluster") {
		t.Errorf("snapshot to a store of another cluster: %v, want a refusal", err)
	}
	if m, b, s := h2.counts(); m+b+s != 0 {
		t.Errorf("store 2 received %d messages, %d snapshots from another cluster", m, s)
	}
	if m, b, s := h1.counts(); m+b+s != 0 {
		t.Errorf("store 1 received %d messages, %d snapshots from another cluster", m, s)
	}
	if st := n2.srv.Stats(); st.StreamsRefused < 2 {
		t.Errorf("server stats %+v: want the streams refused", st)
	}
}

// TestUnknownSenderRefused: a store missing from the receiver's peer list
// is refused, and so is a stream that reached the wrong store.
func TestUnknownSenderRefused(t *testing.T) {
	peers, lis := listen(t, 1, 2)
	h2 := &recorder{}
	newNode(t, testConfig(2, grpctransport.StaticResolver{2: peers[2]}), lis[2], h2)
	n1 := newNode(t, testConfig(1, peers), lis[1], &recorder{})
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
	defer cancel()
	err := n1.tr.SendSnapshot(ctx, 2, snapshotWriter(1, 10))
	if status.Code(err) != codes.PermissionDenied || !strings.Contains(err.Error(), "store 1") {
		t.Errorf("snapshot from an unknown store: %v, want PermissionDenied naming store 1", err)
	}

	// Store 3's address in store 1's peer list points at store 2.
	wrong := grpctransport.StaticResolver{1: peers[1], 2: peers[2], 3: peers[2]}
	tr, err := grpctransport.New(testConfig(1, wrong))
	if err != nil {
		t.Fatal(err)
	}
	defer tr.Close()
	err = tr.SendSnapshot(ctx, 3, snapshotWriter(1, 10))
	if status.Code(err) != codes.FailedPrecondition || !strings.Contains(err.Error(), "meant for store 3") {
		t.Errorf("snapshot to the wrong address: %v, want FailedPrecondition", err)
	}
	if err := tr.Send(4, batch(1, 4, 0)); !errors.Is(err, grpctransport.ErrUnknownStore) || !errors.Is(err, transport.ErrUnreachable) {
		t.Errorf("Send to a store without an address: %v, want ErrUnknownStore and ErrUnreachable", err)
	}
	if m, b, s := h2.counts(); m+b+s != 0 {
		t.Errorf("store 2 received %d messages, %d snapshots it should have refused", m, s)
	}
}

// TestOversizeSnapshotRefused: a snapshot stream larger than
// MaxSnapshotBytes is refused before the handler sees it.
func TestOversizeSnapshotRefused(t *testing.T) {
	peers, lis := listen(t, 1, 2)
	h2 := &recorder{}
	cfg2 := testConfig(2, peers)
	cfg2.MaxSnapshotBytes = 64 << 10
	n1 := newNode(t, testConfig(1, peers), lis[1], &recorder{})
	newNode(t, cfg2, lis[2], h2)
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
	defer cancel()
	if err := n1.tr.SendSnapshot(ctx, 2, snapshotWriter(10, 4<<10)); err != nil {
		t.Fatalf("a snapshot below the bound: %v", err)
	}
	err := n1.tr.SendSnapshot(ctx, 2, snapshotWriter(100, 4<<10))
	if status.Code(err) != codes.ResourceExhausted || !strings.Contains(err.Error(), "exceeds 65536 bytes") {
		t.Errorf("oversize snapshot: %v, want ResourceExhausted", err)
	}
	if _, _, s := h2.counts(); s != 1 {
		t.Errorf("handler got %d snapshots, want only the small one", s)
	}
}

// TestLargeBatchSplit: a batch above MaxMsgBytes goes out in parts; a
// single message above it is dropped and counted.
func TestLargeBatchSplit(t *testing.T) {
	peers, lis := listen(t, 1, 2)
	h2 := &recorder{}
	cfg1, cfg2 := testConfig(1, peers), testConfig(2, peers)
	cfg1.MaxMsgBytes, cfg2.MaxMsgBytes = 16<<10, 16<<10
	n1 := newNode(t, cfg1, lis[1], &recorder{})
	newNode(t, cfg2, lis[2], h2)
	b := &raftkvpb.RaftMessageBatch{}
	for i := range uint64(10) {
		m := batch(1, 2, i).Msgs[0]
		m.Message.Type = raftpb.MsgApp.Enum()
		size := 4 << 10
		if i == 5 {
			size = 32 << 10 // too large on its own
		}
		m.Message.Entries = []*raftpb.Entry{{Index: proto.Uint64(i), Data: make([]byte, size)}}
		b.Msgs = append(b.Msgs, m)
	}
	if err := n1.tr.Send(2, b); err != nil {
		t.Fatal(err)
	}
	waitFor(t, 5*time.Second, "the parts", func() bool { m, _, _ := h2.counts(); return m == 9 })
	if _, batches, _ := h2.counts(); batches < 3 {
		t.Errorf("9 messages of 4 KiB arrived in %d batches under a 16 KiB bound", batches)
	}
	if st := n1.tr.Stats(); st.DroppedTooLarge != 1 {
		t.Errorf("stats %+v: want one message dropped as too large", st)
	}
}

// TestCloseLeavesNoGoroutines: after Close (and the servers' Stop) no
// goroutine of this package or of gRPC is left.
func TestCloseLeavesNoGoroutines(t *testing.T) {
	peers, lis := listen(t, 1, 2, 3)
	h := &recorder{}
	n1 := newNode(t, testConfig(1, peers), lis[1], h)
	n2 := newNode(t, testConfig(2, peers), lis[2], h)
	lis[3].Close() // store 3 is down: its writer is backing off
	for i := range uint64(10) {
		_ = n1.tr.Send(2, batch(1, 2, i))
		_ = n1.tr.Send(3, batch(1, 3, i))
		_ = n2.tr.Send(1, batch(2, 1, i))
	}
	waitFor(t, 5*time.Second, "messages", func() bool { m, _, _ := h.counts(); return m == 20 })
	// A snapshot stuck in a write that waits for the end of the transport.
	snapDone := make(chan error, 1)
	go func() {
		snapDone <- n1.tr.SendSnapshot(context.Background(), 2, func(send func(*raftkvpb.SnapshotChunk) error) error {
			for {
				if err := snapshotWriter(1, 10)(send); err != nil {
					return err
				}
				time.Sleep(time.Millisecond)
			}
		})
	}()
	time.Sleep(50 * time.Millisecond)
	for _, n := range []*node{n1, n2} {
		if err := n.tr.Close(); err != nil {
			t.Fatal(err)
		}
		n.stopServer()
	}
	if err := <-snapDone; err == nil {
		t.Error("a snapshot stream in flight at Close succeeded")
	}
	if err := n1.tr.Send(2, batch(1, 2, 0)); !errors.Is(err, grpctransport.ErrClosed) {
		t.Errorf("Send after Close: %v, want ErrClosed", err)
	}
	checkNoGoroutines(t)
}

// checkNoGoroutines waits up to a few seconds for goroutines of this
// package and of gRPC to end, then fails listing those left. (goleak is
// not a dependency of the module.)
func checkNoGoroutines(t testing.TB) {
	t.Helper()
	var left []string
	deadline := time.Now().Add(5 * time.Second)
	for {
		buf := make([]byte, 1<<20)
		buf = buf[:runtime.Stack(buf, true)]
		left = left[:0]
		for _, g := range strings.Split(string(buf), "\n\n") {
			if strings.Contains(g, "grpctransport.(") || strings.Contains(g, "google.golang.org/grpc") {
				left = append(left, g)
			}
		}
		if len(left) == 0 {
			return
		}
		if time.Now().After(deadline) {
			t.Fatalf("%d goroutines left:\n%s", len(left), strings.Join(left, "\n\n"))
		}
		time.Sleep(10 * time.Millisecond)
	}
}

// blockingHandler holds HandleRaft until release is closed, as a receiver
// that stopped reading would.
type blockingHandler struct {
	recorder
	release chan struct{}
}

func (h *blockingHandler) HandleRaft(b *raftkvpb.RaftMessageBatch) {
	<-h.release
	h.recorder.HandleRaft(b)
}

// TestFullQueueDrops: when the receiver does not keep up, flow control
// stalls the stream, the queue fills and Send drops batches without
// blocking and without reporting the store unreachable.
func TestFullQueueDrops(t *testing.T) {
	peers, lis := listen(t, 1, 2)
	h2 := &blockingHandler{release: make(chan struct{})}
	cfg1 := testConfig(1, peers)
	cfg1.QueueLen = 4
	n1 := newNode(t, cfg1, lis[1], &recorder{})
	newNode(t, testConfig(2, peers), lis[2], h2)
	big := batch(1, 2, 0)
	big.Msgs[0].Message.Entries = []*raftpb.Entry{{Data: make([]byte, 64<<10)}}
	released := false
	defer func() {
		if !released {
			close(h2.release)
		}
	}()
	waitFor(t, 10*time.Second, "a full queue", func() bool {
		if err := n1.tr.Send(2, big); err != nil {
			t.Fatalf("Send to a slow store: %v", err)
		}
		return n1.tr.Stats().DroppedFull > 0
	})
	close(h2.release)
	released = true
	// The stream recovers once the receiver reads again.
	waitFor(t, 10*time.Second, "messages after the stall", func() bool {
		_ = n1.tr.Send(2, batch(1, 2, 1))
		h2.mu.Lock()
		defer h2.mu.Unlock()
		return len(h2.msgs) > 0 && h2.msgs[len(h2.msgs)-1].GetMessage().GetCommit() == 1
	})
}

// movingResolver is a Resolver whose addresses change, as the
// scheduler's will.
type movingResolver struct {
	mu    sync.Mutex
	addrs grpctransport.StaticResolver
}

func (r *movingResolver) Resolve(id uint64) (string, error) {
	r.mu.Lock()
	defer r.mu.Unlock()
	return r.addrs.Resolve(id)
}

func (r *movingResolver) move(id uint64, addr string) {
	r.mu.Lock()
	defer r.mu.Unlock()
	r.addrs[id] = addr
}

// TestStoreMovesToNewAddress: after a failure the transport resolves the
// destination again, so a store that comes back on another address is
// reached there.
func TestStoreMovesToNewAddress(t *testing.T) {
	peers, lis := listen(t, 1, 2)
	r := &movingResolver{addrs: grpctransport.StaticResolver{1: peers[1], 2: peers[2]}}
	h2 := &recorder{}
	n1 := newNode(t, testConfig(1, r), lis[1], &recorder{})
	n2 := newNode(t, testConfig(2, r), lis[2], h2)
	if err := n1.tr.Send(2, batch(1, 2, 0)); err != nil {
		t.Fatal(err)
	}
	waitFor(t, 5*time.Second, "the first message", func() bool { m, _, _ := h2.counts(); return m == 1 })
	n2.stopServer()
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	n2.addr = l.Addr().String()
	r.move(2, n2.addr)
	n2.serve(l)
	waitFor(t, 10*time.Second, "messages at the new address", func() bool {
		_ = n1.tr.Send(2, batch(1, 2, 1))
		m, _, _ := h2.counts()
		return m > 1
	})
}
