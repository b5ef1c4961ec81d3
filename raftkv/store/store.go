package store

import (
	"bytes"
	"context"
	"encoding/binary"
	"errors"
	"fmt"
	"io"
	"math/rand/v2"
	"sort"
	"sync"
	"sync/atomic"
	"time"

	"github.com/kvs-lab/kvs"
	"github.com/kvs-lab/kvs/raftkv/api"
	"github.com/kvs-lab/kvs/raftkv/raftkvpb"
	"github.com/kvs-lab/kvs/raftkv/raftstorage"
	"github.com/kvs-lab/kvs/raftkv/transport"
	"github.com/sirupsen/logrus"
	"go.etcd.io/raft/v3"
	"go.etcd.io/raft/v3/raftpb"
	"google.golang.org/protobuf/proto"
)

// Store hosts the region peers of one process over one engine and drives
// them from a single loop goroutine. It implements api.Service for
// clients and transport.Handler for other stores. All exported methods
// are safe for concurrent use.
type Store struct {
	cfg Config
	id  uint64
	eng kvs.Engine

	in inbox

	// peers, tombstones, nextProposal and nextRead belong to the loop
	// goroutine. tombstones holds, per region whose peer this store
	// destroyed, the smallest peer id that may still live here: messages
	// to lower ids are for dead peers and never create one.
	peers        map[uint64]*peer
	tombstones   map[uint64]uint64
	nextProposal uint64
	nextRead     uint64
	// bootID is random per New: with the store id it tags this life's
	// proposals (proposal ids start again at 1 after a restart).
	bootID uint64
	// invalidFrom holds the stores whose invalid messages were logged
	// (once per store); it belongs to the loop goroutine.
	invalidFrom map[uint64]bool
	invalidMsgs atomic.Uint64

	statusMu sync.Mutex
	status   map[uint64]RegionStatus
	err      error // why the loop stopped, if it failed

	stopOnce   sync.Once
	stopc      chan struct{}
	loopDone   chan struct{}
	snapCtx    context.Context
	snapCancel context.CancelFunc
	snapWG     sync.WaitGroup
}

var (
	_ api.Service       = (*Store)(nil)
	_ transport.Handler = (*Store)(nil)
)

// RegionStatus is what a store knows about one of its peers, as of the
// end of the loop's last round.
type RegionStatus struct {
	RegionID uint64
	PeerID   uint64
	Leader   bool
	// State is raft's state for the peer: "leader", "follower",
	// "candidate" or "precandidate" (campaigning with PreVote).
	State     string
	LeaderID  uint64 // raft id of the leader, 0 if unknown
	Term      uint64
	Commit    uint64
	Applied   uint64
	FirstLog  uint64 // first index still in the log (truncated + 1)
	LastLog   uint64
	Snapshots uint64 // snapshots this peer applied since the store started
	// Region is the region as this peer last applied it (peers, epoch,
	// next peer id); nil while the peer is uninitialized (created by a
	// leader's message, waiting for its snapshot). It is shared: do not
	// modify it.
	Region *raftkvpb.Region
}

// Bootstrap writes the initial state of region into engine for the peer
// this store hosts (every store of the region's initial peers calls it
// with the same region, before New). It does nothing if the store already
// has that region, so a restarted store can call it again. The store's
// identity is recorded by the first New on the engine, not here.
func Bootstrap(engine kvs.Engine, region *raftkvpb.Region) error {
	st, err := raftstorage.Open(engine, region.GetId())
	if err != nil {
		return err
	}
	defer st.Close()
	if st.RegionState() != nil {
		// Bootstrapped before, or the peer was removed since (a
		// tombstone): either way there is nothing to do.
		return nil
	}
	wb := new(kvs.Batch)
	u := st.NewUpdate(wb)
	if err := u.Bootstrap(region); err != nil {
		return err
	}
	if err := engine.Write(wb, kvs.Sync); err != nil {
		return fmt.Errorf("store: bootstrap region %d: %w", region.GetId(), err)
	}
	return u.Commit()
}

// New opens every region peer found in cfg.Engine and starts the store's
// loop. Call Stop to end it. The first New on an engine records the
// store's identity (cfg.ClusterID, cfg.StoreID) in it; New refuses an
// engine recorded for another store or cluster, with an error naming
// both, and a zero ClusterID.
func New(cfg Config) (*Store, error) {
	c, err := cfg.withDefaults()
	if err != nil {
		return nil, err
	}
	if err := checkIdentity(c.Engine, c.ClusterID, c.StoreID); err != nil {
		return nil, err
	}
	s := &Store{
		cfg:        c,
		id:         c.StoreID,
		eng:        c.Engine,
		peers:      map[uint64]*peer{},
		tombstones: map[uint64]uint64{},
		status:     map[uint64]RegionStatus{},
		stopc:      make(chan struct{}),
		loopDone:   make(chan struct{}),
		bootID:     newBootID(),
	}
	s.in.notify = make(chan struct{}, 1)
	s.snapCtx, s.snapCancel = context.WithCancel(context.Background())
	ids, err := regionIDs(c.Engine)
	if err != nil {
		return nil, err
	}
	for _, id := range ids {
		p, err := s.openPeer(id)
		if err != nil {
			s.closePeers()
			return nil, err
		}
		if p != nil {
			s.peers[id] = p
		}
	}
	s.publishStatus()
	go s.run()
	return s, nil
}

// newBootID returns a random non-zero boot id.
func newBootID() uint64 {
	for {
		if id := rand.Uint64(); id != 0 {
			return id
		}
	}
}

// proposalTag is what a store's proposals carry to find their caller:
// the store id and the boot id of this life (with a proposal id each).
type proposalTag struct{ store, boot uint64 }

func (s *Store) tag() proposalTag { return proposalTag{s.id, s.bootID} }

// checkIdentity checks that engine belongs to store storeID of cluster
// clusterID (raftkvpb.StoreIdent under raftstorage.StoreIdentKey), and
// records that identity, synced, if the engine has none yet: the first
// start of a store on it. An engine run as another store would vote
// and acknowledge with another store's log, and two leaders could be
// elected in one term.
func checkIdentity(engine kvs.Engine, clusterID, storeID uint64) error {
	if clusterID == 0 {
		return errors.New("store: config: ClusterID must be set")
	}
	v, err := engine.Get(raftstorage.StoreIdentKey())
	if errors.Is(err, kvs.ErrNotFound) {
		b, err := proto.Marshal(&raftkvpb.StoreIdent{ClusterId: clusterID, StoreId: storeID})
		if err != nil {
			return err
		}
		if err := engine.Put(raftstorage.StoreIdentKey(), b, kvs.Sync); err != nil {
			return fmt.Errorf("store: record store identity: %w", err)
		}
		return nil
	}
	if err != nil {
		return fmt.Errorf("store: read store identity: %w", err)
	}
	id := &raftkvpb.StoreIdent{}
	if err := proto.Unmarshal(v, id); err != nil {
		return fmt.Errorf("store: store identity: %w: %v", kvs.ErrCorruption, err)
	}
	if id.GetClusterId() != clusterID || id.GetStoreId() != storeID {
		return fmt.Errorf("store: the engine belongs to store %d of cluster %d, not to store %d of cluster %d",
			id.GetStoreId(), id.GetClusterId(), storeID, clusterID)
	}
	return nil
}

// regionIDs lists the regions with a region state in engine.
func regionIDs(engine kvs.Engine) ([]uint64, error) {
	lower := raftstorage.RegionStateKey(0)[:2]
	upper := []byte{lower[0], lower[1] + 1}
	it, err := engine.NewIter(&kvs.IterOptions{LowerBound: lower, UpperBound: upper})
	if err != nil {
		return nil, fmt.Errorf("store: list regions: %w", err)
	}
	var ids []uint64
	for ok := it.First(); ok; ok = it.Next() {
		if k := it.Key(); len(k) == 10 {
			ids = append(ids, binary.BigEndian.Uint64(k[2:]))
		}
	}
	if err := it.Close(); err != nil {
		return nil, fmt.Errorf("store: list regions: %w", err)
	}
	return ids, nil
}

// ID returns the store's id.
func (s *Store) ID() uint64 { return s.id }

// Tick advances every peer's raft clock by one tick. Without a
// TickInterval the caller drives time this way; ticks that arrive while
// the loop is busy are merged into one, as a time.Ticker drops them.
func (s *Store) Tick() { s.in.push(func(b *inboxBatch) { b.tick = true }) }

// Stop ends the loop, fails the requests still waiting (a write among
// them may have applied), waits for snapshot streams in flight and closes
// the peers' storages. It does not close the engine. Stop may be called
// more than once.
func (s *Store) Stop() {
	s.stopOnce.Do(func() {
		close(s.stopc)
		<-s.loopDone
		s.snapCancel()
		s.snapWG.Wait()
		s.closePeers()
	})
}

// Err returns the error that stopped the loop, or nil.
func (s *Store) Err() error {
	s.statusMu.Lock()
	defer s.statusMu.Unlock()
	return s.err
}

// Status returns the status of every region peer the store hosts, by
// region id order.
func (s *Store) Status() []RegionStatus {
	s.statusMu.Lock()
	defer s.statusMu.Unlock()
	out := make([]RegionStatus, 0, len(s.status))
	for _, st := range s.status {
		out = append(out, st)
	}
	sort.Slice(out, func(i, j int) bool { return out[i].RegionID < out[j].RegionID })
	return out
}

func (s *Store) closePeers() {
	for _, p := range s.peers {
		_ = p.st.Close()
	}
}

// Write implements api.Service: it proposes req to the leader of the
// region holding its keys, waits until the entry applied and returns the
// request's Response (for a retry of a request that applied, the
// Response of that first application). The store tags a copy of req;
// req itself is not changed. A request with an unknown op type, with
// fields its op type does not use, or larger than MaxRequestBytes is
// refused with api.ErrInvalid before it reaches the log.
func (s *Store) Write(ctx context.Context, req *raftkvpb.Request) (*raftkvpb.Response, error) {
	if req.GetClientId() == 0 || req.GetSeq() == 0 || len(req.GetOps()) == 0 {
		return nil, fmt.Errorf("%w: a write needs a client id, a seq and ops", api.ErrInvalid)
	}
	for i, op := range req.GetOps() {
		if err := checkOp(op); err != nil {
			return nil, fmt.Errorf("op %d: %w", i, err)
		}
	}
	if n := proto.Size(req); n > s.cfg.MaxRequestBytes {
		return nil, fmt.Errorf("%w: the request is %d bytes encoded, the store takes at most %d (MaxRequestBytes)",
			api.ErrInvalid, n, s.cfg.MaxRequestBytes)
	}
	pr := &proposal{req: proto.CloneOf(req), done: make(chan error, 1)}
	if err := s.proposeAndWait(ctx, pr); err != nil {
		return nil, err
	}
	// A copy: the loop may hand the same recorded Response to several
	// retries of one request, and the caller owns what it gets.
	return proto.CloneOf(pr.resp), nil
}

// checkOp refuses an op the state machine would not know how to apply:
// a bad key, an unknown type or condition, or a field set that its type
// ignores (more likely a caller's mistake than an intent).
func checkOp(op *raftkvpb.Op) error {
	if err := api.CheckKey(op.GetKey()); err != nil {
		return err
	}
	t := op.GetType()
	switch t {
	case raftkvpb.Op_Put, raftkvpb.Op_Delete, raftkvpb.Op_IncrBy, raftkvpb.Op_Append:
	default:
		return fmt.Errorf("%w: unknown op type %v", api.ErrInvalid, t)
	}
	switch c := op.GetCondition(); {
	case c != raftkvpb.Op_Always && c != raftkvpb.Op_IfAbsent && c != raftkvpb.Op_IfPresent:
		return fmt.Errorf("%w: unknown condition %v", api.ErrInvalid, c)
	case c != raftkvpb.Op_Always && t != raftkvpb.Op_Put:
		return fmt.Errorf("%w: a condition on a %v (only Put takes one)", api.ErrInvalid, t)
	case op.GetReturnOld() && t != raftkvpb.Op_Put:
		return fmt.Errorf("%w: return_old on a %v (only Put takes it)", api.ErrInvalid, t)
	case op.GetDelta() != 0 && t != raftkvpb.Op_IncrBy:
		return fmt.Errorf("%w: a delta on a %v (only IncrBy takes one)", api.ErrInvalid, t)
	case op.GetMaxValueBytes() != 0 && t != raftkvpb.Op_Append:
		return fmt.Errorf("%w: max_value_bytes on a %v (only Append takes it)", api.ErrInvalid, t)
	case len(op.GetValue()) > 0 && (t == raftkvpb.Op_Delete || t == raftkvpb.Op_IncrBy):
		return fmt.Errorf("%w: a value on a %v", api.ErrInvalid, t)
	}
	return nil
}

// proposeAndWait hands pr to the loop and waits until it applied or
// failed, ctx ended (the write may have applied) or the store stopped.
func (s *Store) proposeAndWait(ctx context.Context, pr *proposal) error {
	s.in.push(func(b *inboxBatch) { b.props = append(b.props, pr) })
	select {
	case err := <-pr.done:
		return err
	case <-ctx.Done():
		return fmt.Errorf("%w: %w", api.ErrTimeout, ctx.Err())
	case <-s.loopDone:
		return api.ErrStopped
	}
}

// Get implements api.Service: a linearizable read through ReadIndex.
func (s *Store) Get(ctx context.Context, key []byte) ([]byte, error) {
	if err := api.CheckKey(key); err != nil {
		return nil, err
	}
	r, err := s.read(ctx, &readReq{key: bytes.Clone(key)})
	if err != nil {
		return nil, err
	}
	return r.value, r.err
}

// MultiGet reads keys as of one moment: one linearizable read through
// ReadIndex, whose keys the loop reads together, between two applies, so
// it never sees part of a write. An absent key's value is nil; a present
// empty value is a non-nil empty slice. Every key must lie in one region
// (today there is one), else the read fails with api.ErrInvalid.
func (s *Store) MultiGet(ctx context.Context, keys [][]byte) ([][]byte, error) {
	if len(keys) == 0 {
		return nil, nil
	}
	cloned := make([][]byte, len(keys))
	for i, k := range keys {
		if err := api.CheckKey(k); err != nil {
			return nil, err
		}
		cloned[i] = bytes.Clone(k)
	}
	r, err := s.read(ctx, &readReq{key: cloned[0], keys: cloned})
	if err != nil {
		return nil, err
	}
	return r.values, r.err
}

// Scan implements api.Service: a linearizable range read through
// ReadIndex.
func (s *Store) Scan(ctx context.Context, start, end []byte, limit int) ([]*raftkvpb.KeyValue, error) {
	r, err := s.read(ctx, &readReq{scan: true, start: bytes.Clone(start), end: bytes.Clone(end), limit: limit})
	if err != nil {
		return nil, err
	}
	return r.pairs, r.err
}

func (s *Store) read(ctx context.Context, r *readReq) (*readResult, error) {
	r.done = make(chan *readResult, 1)
	s.in.push(func(b *inboxBatch) { b.reads = append(b.reads, r) })
	select {
	case res := <-r.done:
		return res, nil
	case <-ctx.Done():
		return nil, fmt.Errorf("%w: %w", api.ErrTimeout, ctx.Err())
	case <-s.loopDone:
		return nil, api.ErrStopped
	}
}

// HandleRaft implements transport.Handler.
func (s *Store) HandleRaft(batch *raftkvpb.RaftMessageBatch) {
	s.in.push(func(b *inboxBatch) { b.msgs = append(b.msgs, batch.GetMsgs()...) })
}

// HandleSnapshot implements transport.Handler. It checks the stream
// before the loop sees it: the MsgSnap (checkMessage), the header against
// it (its region is the message's and lists the receiving peer), and the
// data, by building (and dropping) the batch that would apply it; the
// loop then checks the region epoch against the peer's. So raft never
// steps a MsgSnap whose data is unusable, and the Ready that applies the
// snapshot fails only on an engine error.
func (s *Store) HandleSnapshot(chunks []*raftkvpb.SnapshotChunk) error {
	select {
	case <-s.stopc:
		return api.ErrStopped
	default:
	}
	if len(chunks) == 0 || chunks[0].GetHeader() == nil {
		return fmt.Errorf("store %d: snapshot stream without a header", s.id)
	}
	hdr := chunks[0].GetHeader()
	msg := hdr.GetMessage()
	if msg.GetMessage().GetType() != raftpbMsgSnap {
		return fmt.Errorf("store %d: snapshot stream carries a %v, not a MsgSnap", s.id, msg.GetMessage().GetType())
	}
	if msg.GetClusterId() != s.cfg.ClusterID {
		return fmt.Errorf("store %d: snapshot from cluster %d, this is cluster %d", s.id, msg.GetClusterId(), s.cfg.ClusterID)
	}
	// Everything that could make the Ready applying the snapshot fail
	// (and stop the loop) is checked here, before raft sees the MsgSnap:
	// the message, the header against it, and the data stream.
	if err := checkMessage(msg, true); err != nil {
		return fmt.Errorf("store %d: snapshot stream: %w", s.id, err)
	}
	if err := checkSnapshotHeader(s.id, hdr); err != nil {
		return fmt.Errorf("store %d: snapshot stream: %w", s.id, err)
	}
	if msg.GetMessage().GetSnapshot().GetMetadata().GetIndex() != hdr.GetApplyState().GetAppliedIndex() {
		return fmt.Errorf("store %d: snapshot of region %d: data at index %d, message at %d", s.id,
			msg.GetRegionId(), hdr.GetApplyState().GetAppliedIndex(), msg.GetMessage().GetSnapshot().GetMetadata().GetIndex())
	}
	if _, err := raftstorage.ApplySnapshotData(s.eng, new(kvs.Batch), chunkReader(chunks)); err != nil {
		return err
	}
	s.in.push(func(b *inboxBatch) { b.snaps = append(b.snaps, chunks) })
	return nil
}

// chunkReader returns a next function over chunks for ApplySnapshotData.
func chunkReader(chunks []*raftkvpb.SnapshotChunk) func() (*raftkvpb.SnapshotChunk, error) {
	return func() (*raftkvpb.SnapshotChunk, error) {
		if len(chunks) == 0 {
			return nil, io.EOF
		}
		c := chunks[0]
		chunks = chunks[1:]
		return c, nil
	}
}

// inbox queues work for the loop without ever blocking the sender: the
// transport's delivery goroutines and the clients' goroutines push, the
// loop takes everything at once.
type inbox struct {
	mu     sync.Mutex
	b      inboxBatch
	notify chan struct{}
}

type inboxBatch struct {
	tick      bool
	msgs      []*raftkvpb.RaftMessage
	snaps     [][]*raftkvpb.SnapshotChunk
	props     []*proposal
	reads     []*readReq
	transfers []*transfer
	reports   []report
}

func (in *inbox) push(f func(*inboxBatch)) {
	in.mu.Lock()
	f(&in.b)
	in.mu.Unlock()
	in.wake()
}

// wake makes the loop run a round soon, without queueing anything.
func (in *inbox) wake() {
	select {
	case in.notify <- struct{}{}:
	default:
	}
}

func (in *inbox) take() inboxBatch {
	in.mu.Lock()
	defer in.mu.Unlock()
	b := in.b
	in.b = inboxBatch{}
	return b
}

// report is news for raft about a peer it sends to: unreachable, or how
// a snapshot stream ended.
type report struct {
	regionID, to uint64
	snapshot     bool
	status       raft.SnapshotStatus
}

// proposal is a client write, or a membership change, on its way
// through the log.
type proposal struct {
	req  *raftkvpb.Request // a client write; nil for a membership change
	conf *confChange       // a membership change; nil for a write
	done chan error        // buffered: the loop never waits on a caller
	// resp is a client write's Response, set by the loop before it sends
	// nil on done.
	resp *raftkvpb.Response
	// index and term of the entry that carries it, once the leader
	// appended it (0 before).
	index, term uint64
}

// readReq is a Get or Scan waiting for its ReadIndex.
type readReq struct {
	key        []byte
	keys       [][]byte // a MultiGet: key is keys[0]
	scan       bool
	start, end []byte
	limit      int
	rctx       []byte // the unique ReadIndex request context
	index      uint64 // the read index, once raft confirmed it
	confirmed  bool
	done       chan *readResult
}

type readResult struct {
	value  []byte
	values [][]byte // a MultiGet's, nil for an absent key
	pairs  []*raftkvpb.KeyValue
	err    error
}

// run is the store loop.
func (s *Store) run() {
	defer close(s.loopDone)
	var tickc <-chan time.Time
	if s.cfg.TickInterval > 0 {
		t := time.NewTicker(s.cfg.TickInterval)
		defer t.Stop()
		tickc = t.C
	}
	for {
		select {
		case <-s.stopc:
			s.failAll(api.ErrStopped)
			return
		case <-s.in.notify:
		case <-tickc:
			s.in.push(func(b *inboxBatch) { b.tick = true })
		}
		if err := s.round(); err != nil {
			s.cfg.Logger.WithError(err).Error("store loop stopped")
			s.statusMu.Lock()
			s.err = err
			s.statusMu.Unlock()
			// The peers must not go on from state that may not be on
			// disk: answer every request with ErrStopped until Stop.
			for {
				s.failAll(api.ErrStopped)
				select {
				case <-s.stopc:
					return
				case <-s.in.notify:
				}
			}
		}
	}
}

// failAll answers every request still waiting.
func (s *Store) failAll(err error) {
	b := s.in.take()
	for _, pr := range b.props {
		pr.done <- err
	}
	for _, r := range b.reads {
		r.done <- &readResult{err: err}
	}
	for _, t := range b.transfers {
		t.done <- err
	}
	for _, p := range s.peers {
		p.failAll(err)
	}
}

// round is one turn of the loop: tick, step what arrived, start the new
// requests, then handle every peer's Ready (see handleReadies).
func (s *Store) round() error {
	b := s.in.take()
	if b.tick {
		for _, p := range s.peers {
			p.rn.Tick()
			if p.transfer != nil {
				p.transfer.ticks++
			}
		}
	}
	for _, m := range b.msgs {
		if err := s.onRaftMessage(m); err != nil {
			return err
		}
	}
	for _, chunks := range b.snaps {
		if err := s.onSnapshot(chunks); err != nil {
			return err
		}
	}
	for _, r := range b.reports {
		if p := s.peers[r.regionID]; p != nil {
			if r.snapshot {
				p.rn.ReportSnapshot(r.to, r.status)
			} else {
				p.rn.ReportUnreachable(r.to)
			}
		}
	}
	for _, pr := range b.props {
		s.propose(pr)
	}
	for _, r := range b.reads {
		s.startRead(r)
	}
	for _, t := range b.transfers {
		s.startTransfer(t)
	}
	// A Ready's handling can make another (the leader's own log write
	// counting towards a commit, a conf change applied): go on until the
	// peers are quiet, but give the inbox a turn now and then.
	busy := true
	for i := 0; busy && i < maxReadyPasses; i++ {
		var err error
		if busy, err = s.handleReadies(); err != nil {
			return err
		}
	}
	if busy {
		// Still busy: come back after the inbox's turn, not at the next
		// tick or message (there may be none).
		s.in.wake()
	}
	for _, p := range s.peers {
		// The streams raft did not restore (older than one it took, or
		// than the log) are useless now.
		p.snapStreams = nil
		p.settleConfProposals()
		s.checkTransfer(p)
	}
	s.publishStatus()
	return nil
}

// maxReadyPasses bounds the handleReadies passes of one round (a
// variable for tests).
var maxReadyPasses = 8

// route returns the peer whose region holds key.
func (s *Store) route(key []byte) *peer {
	for _, p := range s.peers {
		if p.contains(key) {
			return p
		}
	}
	return nil
}

// onRaftMessage steps a raft message into the peer it is for, creating
// that peer if a leader just added it (see peerFor). An error is an
// engine failure.
func (s *Store) onRaftMessage(m *raftkvpb.RaftMessage) error {
	if m.GetClusterId() != s.cfg.ClusterID {
		s.cfg.Logger.Debugf("dropped a raft message of cluster %d", m.GetClusterId())
		return nil
	}
	if m.GetIsTombstone() {
		return s.onTombstone(m)
	}
	if m.GetMessage().GetType() == raftpbMsgSnap {
		// A MsgSnap without its data stream is useless.
		return nil
	}
	if err := checkMessage(m, false); err != nil {
		s.dropInvalid(m, err)
		return nil
	}
	p, err := s.peerFor(m)
	if p == nil || err != nil {
		return err
	}
	if s.answerRemovedPeer(p, m) {
		return nil
	}
	if err := checkSender(p, m); err != nil {
		s.dropInvalid(m, err)
		return nil
	}
	return s.step(p, m.GetMessage())
}

// errRaftPanic wraps a panic raft raised while stepping a message.
var errRaftPanic = errors.New("store: raft panicked")

// step steps msg into p's raft node. Raft panics on some messages that
// contradict its log (a faulty or malicious peer); checkMessage catches
// the malformed ones before, and this recover is the last line of
// defence: the panic becomes an error that stops the store's loop (Err
// reports it, requests fail with api.ErrStopped), as raft's state after a
// panic mid-Step cannot be trusted. The process and its other work go on.
func (s *Store) step(p *peer, msg *raftpb.Message) (err error) {
	defer func() {
		if r := recover(); r != nil {
			if e, ok := r.(*logrus.Entry); ok {
				r = e.Message // raft's Panicf through the store's logger
			}
			err = fmt.Errorf("%w: region %d: stepping a %v from peer %d: %v", errRaftPanic, p.regionID, msg.GetType(), msg.GetFrom(), r)
		}
	}()
	if err := p.rn.Step(msg); err != nil {
		s.cfg.Logger.Debugf("region %d: step %v: %v", p.regionID, msg.GetType(), err)
	}
	return nil
}

// onSnapshot keeps a checked snapshot stream for the peer and steps its
// MsgSnap: if raft takes the snapshot, the next Ready holds it and
// handleReadies writes the stream's data in the same batch.
//
// Several streams may arrive for the peer in one round: they are kept by
// the (index, term) of their snapshot, and the Ready names the one raft
// restored (at most one: after it, the others are not newer than the
// log). round drops them all once its Readies are handled.
func (s *Store) onSnapshot(chunks []*raftkvpb.SnapshotChunk) error {
	hdr := chunks[0].GetHeader()
	msg := hdr.GetMessage()
	if msg.GetClusterId() != s.cfg.ClusterID {
		return nil
	}
	p, err := s.peerFor(msg)
	if p == nil || err != nil {
		return err
	}
	if err := checkSender(p, msg); err != nil {
		s.dropInvalid(msg, err)
		return nil
	}
	if ours, theirs := p.region.GetEpoch(), hdr.GetRegion().GetEpoch(); p.region != nil &&
		(theirs.GetConfVer() < ours.GetConfVer() || theirs.GetVersion() < ours.GetVersion()) {
		s.cfg.Logger.Debugf("region %d: dropped a snapshot of epoch %v, older than the peer's %v", p.regionID, theirs, ours)
		return nil
	}
	md := msg.GetMessage().GetSnapshot().GetMetadata()
	if p.snapStreams == nil {
		p.snapStreams = map[snapKey][]*raftkvpb.SnapshotChunk{}
	}
	p.snapStreams[snapKey{md.GetIndex(), md.GetTerm()}] = chunks
	return s.step(p, msg.GetMessage())
}

// propose starts a client write, or a membership change, on the leader.
func (s *Store) propose(pr *proposal) {
	if pr.conf != nil {
		s.proposeConfChange(pr)
		return
	}
	p := s.route(pr.req.GetOps()[0].GetKey())
	if p == nil {
		// Not hosting the key's region (any more, or yet: a removed or a
		// new store) is a redirect: the client tries another store.
		pr.done <- &api.NotLeaderError{}
		return
	}
	for _, op := range pr.req.GetOps()[1:] {
		if !p.contains(op.GetKey()) {
			pr.done <- fmt.Errorf("%w: keys of one write span regions", api.ErrInvalid)
			return
		}
	}
	if err := p.notLeader(); err != nil {
		pr.done <- err
		return
	}
	s.nextProposal++
	pr.req.StoreId, pr.req.BootId, pr.req.ProposalId = s.id, s.bootID, s.nextProposal
	data, err := proto.Marshal(pr.req)
	if err != nil {
		pr.done <- fmt.Errorf("%w: %v", api.ErrInvalid, err)
		return
	}
	if err := p.rn.Propose(data); err != nil {
		// ErrProposalDropped: a leader transfer is under way, or the
		// uncommitted log is full. Nothing was appended.
		pr.done <- fmt.Errorf("%w: %v", api.ErrProposalDropped, err)
		return
	}
	p.proposals[pr.req.GetProposalId()] = pr
}

// startRead asks raft for a read index (Raft §6.4): the leader records
// its commit index, confirms with a heartbeat round that it still leads,
// and hands back a ReadState; the read is served once the peer applied
// up to that index.
func (s *Store) startRead(r *readReq) {
	key := r.key
	if r.scan {
		key = r.start
	}
	p := s.route(key)
	if p == nil {
		r.done <- &readResult{err: &api.NotLeaderError{}}
		return
	}
	for _, k := range r.keys {
		if s.route(k) != p {
			r.done <- &readResult{err: fmt.Errorf("%w: the keys of one MultiGet lie in different regions", api.ErrInvalid)}
			return
		}
	}
	if err := p.notLeader(); err != nil {
		r.done <- &readResult{err: err}
		return
	}
	s.nextRead++
	r.rctx = binary.BigEndian.AppendUint64(binary.BigEndian.AppendUint64(nil, s.id), s.nextRead)
	p.reads = append(p.reads, r)
	p.rn.ReadIndex(r.rctx)
}

// errEngine wraps an engine failure in the loop.
var errEngine = errors.New("store: engine")

// raftStateName names a raft state as INFO and the status pages do.
func raftStateName(st raft.StateType) string {
	switch st {
	case raft.StateLeader:
		return "leader"
	case raft.StateCandidate:
		return "candidate"
	case raft.StatePreCandidate:
		return "precandidate"
	}
	return "follower"
}

func (s *Store) publishStatus() {
	s.statusMu.Lock()
	defer s.statusMu.Unlock()
	for id, p := range s.peers {
		st := p.rn.BasicStatus()
		as := p.st.ApplyState()
		s.status[id] = RegionStatus{
			RegionID:  id,
			PeerID:    p.id,
			Leader:    st.RaftState == raft.StateLeader,
			State:     raftStateName(st.RaftState),
			LeaderID:  st.Lead,
			Term:      st.GetTerm(),
			Commit:    st.GetCommit(),
			Applied:   as.GetAppliedIndex(),
			FirstLog:  as.GetTruncatedIndex() + 1,
			LastLog:   p.st.RaftState().GetLastIndex(),
			Snapshots: p.snapshotsApplied,
			Region:    p.region,
		}
	}
}
