package grpctransport

import (
	"context"
	"errors"
	"fmt"
	"io"
	"math/rand/v2"
	"strconv"
	"sync"
	"sync/atomic"
	"time"

	"github.com/kvs-lab/kvs/raftkv/raftkvpb"
	"github.com/kvs-lab/kvs/raftkv/transport"
	"google.golang.org/grpc"
	"google.golang.org/grpc/metadata"
	"google.golang.org/protobuf/proto"
)

// ErrClosed is returned (wrapped, together with transport.ErrUnreachable)
// by a Transport's methods after Close.
var ErrClosed = errors.New("grpctransport: transport closed")

// Stats counts what a Transport did with the traffic it was given.
type Stats struct {
	// Batches and Msgs count the raft batches (and messages) written to a
	// Send stream. Written is not delivered: a stream that breaks loses
	// what gRPC had buffered.
	Batches, Msgs uint64
	// DroppedFull counts batches dropped because their destination's
	// queue was full (the stream is slower than the store loop).
	DroppedFull uint64
	// DroppedUnreachable counts batches refused by Send because the
	// destination was down or unknown, and batches still queued when
	// their stream failed.
	DroppedUnreachable uint64
	// DroppedTooLarge counts raft messages larger than MaxMsgBytes on
	// their own; they can never be sent.
	DroppedTooLarge uint64
	// StreamFailures counts Send streams that could not be opened or
	// broke; each is followed by a reconnect after a backoff.
	StreamFailures uint64
	// Snapshots and SnapshotsFailed count SendSnapshot calls the
	// receiver accepted, and those that failed.
	Snapshots, SnapshotsFailed uint64
}

// Peer states, as seen by Send.
const (
	stateNew  int32 = iota // no stream yet: Send queues (the first connect is lazy)
	stateUp                // a stream is open: Send queues
	stateDown              // the last attempt failed, reconnecting: Send fails
)

// Transport is the sending side: a transport.Transport that reaches other
// stores over gRPC. It is safe for concurrent use. See the package
// comment for its streams, queues and reconnects.
type Transport struct {
	cfg    Config
	ctx    context.Context // ends at Close
	cancel context.CancelFunc

	mu     sync.Mutex
	peers  map[uint64]*peer
	closed bool
	wg     sync.WaitGroup // writer goroutines and SendSnapshot calls

	batches, msgs, droppedFull, droppedUnreachable, droppedTooLarge atomic.Uint64
	streamFailures, snapshots, snapshotsFailed                      atomic.Uint64
}

var _ transport.Transport = (*Transport)(nil)

// peer is one destination store: its queue, its writer goroutine, and
// the client connection it shares with snapshot streams.
type peer struct {
	t     *Transport
	id    uint64
	queue chan *raftkvpb.RaftMessageBatch
	state atomic.Int32

	mu      sync.Mutex
	addr    string
	conn    *grpc.ClientConn
	lastErr error // why the peer is down
}

// New returns a Transport sending as cfg's store. It opens no connection
// until the first Send or SendSnapshot to a store. Call Close to end it.
func New(cfg Config) (*Transport, error) {
	c, err := cfg.withDefaults()
	if err != nil {
		return nil, err
	}
	t := &Transport{cfg: c, peers: map[uint64]*peer{}}
	t.ctx, t.cancel = context.WithCancel(context.Background())
	return t, nil
}

// Stats returns the Transport's counters.
func (t *Transport) Stats() Stats {
	return Stats{
		Batches: t.batches.Load(), Msgs: t.msgs.Load(),
		DroppedFull: t.droppedFull.Load(), DroppedUnreachable: t.droppedUnreachable.Load(),
		DroppedTooLarge: t.droppedTooLarge.Load(), StreamFailures: t.streamFailures.Load(),
		Snapshots: t.snapshots.Load(), SnapshotsFailed: t.snapshotsFailed.Load(),
	}
}

// Close stops every writer goroutine, ends the streams (queued batches
// are lost; snapshot streams in flight fail), closes the connections and
// waits for all of it. Close may be called more than once.
func (t *Transport) Close() error {
	t.mu.Lock()
	if t.closed {
		t.mu.Unlock()
		return nil
	}
	t.closed = true
	t.mu.Unlock()
	t.cancel()
	t.wg.Wait()
	// No goroutine uses the peers any more.
	for _, p := range t.peers {
		p.mu.Lock()
		if p.conn != nil {
			_ = p.conn.Close()
			p.conn = nil
		}
		p.mu.Unlock()
	}
	return nil
}

// peer returns the destination to, creating it (and starting its writer)
// on first use. It fails if the Transport is closed or to is unknown.
func (t *Transport) peer(to uint64) (*peer, error) {
	t.mu.Lock()
	defer t.mu.Unlock()
	if t.closed {
		return nil, fmt.Errorf("%w: %w", ErrClosed, transport.ErrUnreachable)
	}
	if p := t.peers[to]; p != nil {
		return p, nil
	}
	if _, err := t.cfg.Resolver.Resolve(to); err != nil {
		return nil, fmt.Errorf("grpctransport: %w: %w", err, transport.ErrUnreachable)
	}
	p := &peer{t: t, id: to, queue: make(chan *raftkvpb.RaftMessageBatch, t.cfg.QueueLen)}
	t.peers[to] = p
	t.wg.Add(1)
	go p.run()
	return p, nil
}

// Send implements transport.Transport: it queues batch for store to's
// stream and returns at once. A full queue drops the batch silently (raft
// retries); a destination that is down (its last connection attempt
// failed, a reconnect is pending) or unknown makes Send fail with an error
// wrapping transport.ErrUnreachable, so that the store reports it to raft.
func (t *Transport) Send(to uint64, batch *raftkvpb.RaftMessageBatch) error {
	p, err := t.peer(to)
	if err != nil {
		t.droppedUnreachable.Add(1)
		return err
	}
	if p.state.Load() == stateDown {
		t.droppedUnreachable.Add(1)
		p.mu.Lock()
		last := p.lastErr
		p.mu.Unlock()
		return fmt.Errorf("grpctransport: store %d (%v): %w", to, last, transport.ErrUnreachable)
	}
	select {
	case p.queue <- batch:
	default:
		t.droppedFull.Add(1)
	}
	return nil
}

// SendSnapshot implements transport.Transport: it opens a Raft.Snapshot
// stream to store to, lets write send the chunks, closes the stream and
// waits for the receiver's verdict. It returns early, with an error, when
// ctx ends or the Transport closes.
func (t *Transport) SendSnapshot(ctx context.Context, to uint64, write func(send func(*raftkvpb.SnapshotChunk) error) error) error {
	p, err := t.peer(to)
	if err != nil {
		return err
	}
	t.mu.Lock()
	if t.closed {
		t.mu.Unlock()
		return fmt.Errorf("%w: %w", ErrClosed, transport.ErrUnreachable)
	}
	t.wg.Add(1)
	t.mu.Unlock()
	defer t.wg.Done()
	if err := p.sendSnapshot(ctx, write); err != nil {
		t.snapshotsFailed.Add(1)
		return fmt.Errorf("grpctransport: snapshot to store %d: %w", to, err)
	}
	t.snapshots.Add(1)
	return nil
}

func (p *peer) sendSnapshot(ctx context.Context, write func(send func(*raftkvpb.SnapshotChunk) error) error) error {
	conn, err := p.connect()
	if err != nil {
		return err
	}
	ctx, cancel := context.WithCancel(ctx)
	defer cancel()
	defer context.AfterFunc(p.t.ctx, cancel)()
	var st grpc.ClientStreamingClient[raftkvpb.SnapshotChunk, raftkvpb.Done]
	err = p.t.open(ctx, cancel, p.id, func(ctx context.Context) (grpc.ClientStream, error) {
		s, err := raftkvpb.NewRaftClient(conn).Snapshot(ctx)
		st = s
		return s, err
	})
	if err != nil {
		return err
	}
	err = write(func(c *raftkvpb.SnapshotChunk) error {
		if err := ctx.Err(); err != nil {
			return err
		}
		err := st.Send(c)
		if err == io.EOF {
			// The receiver ended the stream; its status says why.
			err = streamEnd(st.RecvMsg(new(raftkvpb.Done)))
		}
		return err
	})
	if err != nil {
		return err
	}
	if _, err := st.CloseAndRecv(); err != nil {
		return err
	}
	return nil
}

// open opens a stream with newStream and completes the handshake: this
// store's metadata goes out, the receiver's header comes back and is
// checked. cancel (ctx's) ends an attempt that takes longer than
// HandshakeTimeout.
func (t *Transport) open(ctx context.Context, cancel context.CancelFunc, to uint64, newStream func(context.Context) (grpc.ClientStream, error)) error {
	timer := time.AfterFunc(t.cfg.HandshakeTimeout, cancel)
	ctx = metadata.NewOutgoingContext(ctx, metadata.Pairs(
		mdCluster, strconv.FormatUint(t.cfg.ClusterID, 10),
		mdFrom, strconv.FormatUint(t.cfg.StoreID, 10),
		mdTo, strconv.FormatUint(to, 10)))
	cs, err := newStream(ctx)
	if err == nil {
		err = t.checkHeader(cs, to)
	}
	if !timer.Stop() {
		return fmt.Errorf("no handshake within %v: %v", t.cfg.HandshakeTimeout, err)
	}
	return err
}

// checkHeader waits for the receiver's answer to a new stream: a header
// naming its store and cluster, or (a refusal) the stream's end.
func (t *Transport) checkHeader(cs grpc.ClientStream, to uint64) error {
	md, _ := cs.Header()
	if md == nil {
		return streamEnd(cs.RecvMsg(new(raftkvpb.Done)))
	}
	id, okID := mdUint(md, mdStore)
	cluster, okC := mdUint(md, mdCluster)
	switch {
	case !okID || !okC:
		return fmt.Errorf("store %d answered without the kvs handshake", to)
	case cluster != t.cfg.ClusterID:
		return fmt.Errorf("store %d belongs to cluster %d, this is cluster %d: no data sent to another cluster", id, cluster, t.cfg.ClusterID)
	case id != to:
		return fmt.Errorf("the address of store %d is served by store %d", to, id)
	}
	return nil
}

// streamEnd turns the error that ended a stream into one that says so.
func streamEnd(err error) error {
	if err == nil || err == io.EOF {
		return errors.New("stream closed by the receiver")
	}
	return err
}

// connect returns the connection to the peer, resolving its address
// again: a new address replaces the old connection.
func (p *peer) connect() (*grpc.ClientConn, error) {
	addr, err := p.t.cfg.Resolver.Resolve(p.id)
	if err != nil {
		return nil, err
	}
	p.mu.Lock()
	defer p.mu.Unlock()
	if p.conn != nil && p.addr == addr {
		return p.conn, nil
	}
	if p.conn != nil {
		// NB: a snapshot stream still on the old connection fails, and
		// the store reports it to raft, which retries.
		_ = p.conn.Close()
		p.conn = nil
	}
	// NewClient does not dial: the first stream does, and gRPC reconnects
	// by itself (with our backoff) after the connection breaks.
	conn, err := grpc.NewClient(addr, p.t.cfg.dialOptions()...)
	if err != nil {
		return nil, fmt.Errorf("store %d at %s: %w", p.id, addr, err)
	}
	p.addr, p.conn = addr, conn
	return conn, nil
}

// run is the peer's writer goroutine: it keeps one Send stream open and
// feeds it from the queue, reconnecting with backoff after failures.
func (p *peer) run() {
	defer p.t.wg.Done()
	log := p.t.cfg.Logger.WithField("to", p.id)
	attempt := 0
	for {
		up, err := p.session()
		if p.t.ctx.Err() != nil {
			return
		}
		p.t.streamFailures.Add(1)
		p.mu.Lock()
		p.lastErr = err
		addr := p.addr
		p.mu.Unlock()
		// Log once per outage, not once per attempt.
		if p.state.Swap(stateDown) != stateDown {
			log.Warnf("raft stream to store %d at %s failed, reconnecting: %v", p.id, addr, err)
		}
		p.drain()
		if up {
			attempt = 0
		}
		timer := time.NewTimer(p.t.backoff(attempt))
		attempt++
		select {
		case <-timer.C:
		case <-p.t.ctx.Done():
			timer.Stop()
			return
		}
	}
}

// backoff returns the wait after attempt (0, 1, ...) failed attempts in
// a row: BackoffBase doubling up to BackoffMax, ±20% jitter so that the
// stores of a cluster do not reconnect in lockstep.
func (t *Transport) backoff(attempt int) time.Duration {
	d := t.cfg.BackoffBase
	for i := 0; i < attempt && d < t.cfg.BackoffMax; i++ {
		d *= 2
	}
	d = min(d, t.cfg.BackoffMax)
	return time.Duration(float64(d) * (0.8 + 0.4*rand.Float64()))
}

// drain drops the batches queued for a stream that failed: they are
// stale by the time a new stream opens, and raft resends what matters.
func (p *peer) drain() {
	for {
		select {
		case <-p.queue:
			p.t.droppedUnreachable.Add(1)
		default:
			return
		}
	}
}

// session opens one Send stream and writes queued batches to it until it
// fails or the Transport closes. up reports whether the handshake
// succeeded; err says why the session ended.
func (p *peer) session() (up bool, err error) {
	conn, err := p.connect()
	if err != nil {
		return false, err
	}
	ctx, cancel := context.WithCancel(p.t.ctx)
	defer cancel()
	var st grpc.ClientStreamingClient[raftkvpb.RaftMessageBatch, raftkvpb.Done]
	err = p.t.open(ctx, cancel, p.id, func(ctx context.Context) (grpc.ClientStream, error) {
		s, err := raftkvpb.NewRaftClient(conn).Send(ctx)
		st = s
		return s, err
	})
	if err != nil {
		return false, err
	}
	if p.state.Swap(stateUp) == stateDown {
		p.t.cfg.Logger.WithField("to", p.id).Infof("raft stream to store %d reconnected", p.id)
	}
	// The receiver only answers when it ends the stream (an error, or it
	// stopped): a reader goroutine waits for that so the writer notices
	// even while it has nothing to send.
	recvDone := make(chan struct{})
	var recvErr error
	go func() {
		defer close(recvDone)
		recvErr = st.RecvMsg(new(raftkvpb.Done))
	}()
	defer func() {
		cancel()
		<-recvDone
	}()
	for {
		select {
		case <-ctx.Done():
			return true, ctx.Err()
		case <-recvDone:
			return true, streamEnd(recvErr)
		case b := <-p.queue:
			if err := p.write(st, p.coalesce(b)); err != nil {
				if err == io.EOF {
					<-recvDone
					err = streamEnd(recvErr)
				}
				return true, err
			}
		}
	}
}

// coalesce appends the batches waiting behind b to it, up to half of
// MaxMsgBytes, so that a stream that fell behind catches up with fewer,
// larger messages. Order is kept. The transport owns queued batches, so it
// may change b.
func (p *peer) coalesce(b *raftkvpb.RaftMessageBatch) *raftkvpb.RaftMessageBatch {
	size := proto.Size(b)
	for size < p.t.cfg.MaxMsgBytes/2 {
		select {
		case more := <-p.queue:
			b.Msgs = append(b.Msgs, more.GetMsgs()...)
			size += proto.Size(more)
		default:
			return b
		}
	}
	return b
}

// write sends b on st, split into batches that fit MaxMsgBytes.
func (p *peer) write(st grpc.ClientStreamingClient[raftkvpb.RaftMessageBatch, raftkvpb.Done], b *raftkvpb.RaftMessageBatch) error {
	limit := p.t.cfg.MaxMsgBytes - 64 // room for the batch's own framing
	if proto.Size(b) <= limit {
		return p.sendBatch(st, b)
	}
	part, size := &raftkvpb.RaftMessageBatch{}, 0
	for _, m := range b.GetMsgs() {
		n := proto.Size(m) + 16 // field tag and length prefix
		if n > limit {
			p.t.droppedTooLarge.Add(1)
			continue
		}
		if size+n > limit {
			if err := p.sendBatch(st, part); err != nil {
				return err
			}
			part, size = &raftkvpb.RaftMessageBatch{}, 0
		}
		part.Msgs = append(part.Msgs, m)
		size += n
	}
	if len(part.Msgs) == 0 {
		return nil
	}
	return p.sendBatch(st, part)
}

func (p *peer) sendBatch(st grpc.ClientStreamingClient[raftkvpb.RaftMessageBatch, raftkvpb.Done], b *raftkvpb.RaftMessageBatch) error {
	if err := st.Send(b); err != nil {
		return err
	}
	p.t.batches.Add(1)
	p.t.msgs.Add(uint64(len(b.GetMsgs())))
	return nil
}
