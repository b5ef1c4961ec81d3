package transport

import (
	"context"
	"errors"
	"fmt"
	"math/rand/v2"
	"sync"
	"sync/atomic"
	"time"

	"github.com/kvs-lab/kvs/raftkv/raftkvpb"
	"google.golang.org/protobuf/proto"
)

// ErrUnreachable is returned by a Network's Send and SendSnapshot when the
// destination store is down (not registered or disconnected) or, for a
// snapshot, on the other side of a partition or dropped by the unreliable
// network.
var ErrUnreachable = errors.New("transport: store unreachable")

// Filter decides whether a raft message from store from to store to is
// delivered: false drops it. Filters run after the partition and crash
// checks and before the unreliable network's dice.
type Filter func(from, to uint64, m *raftkvpb.RaftMessage) bool

// Unreliable describes how badly a Network treats the messages that pass
// its partitions and filters. The zero value is a perfect network. Each
// rate is a probability in [0, 1] applied per raft message, and per
// snapshot stream: a dropped stream fails, a delayed one is held back
// before delivery (later streams and messages overtake it), and a
// duplicated one is delivered a second time, after a random delay up to
// MaxDelay, as a stream sent again would be.
type Unreliable struct {
	// DropRate is the chance that a message is lost.
	DropRate float64
	// DuplicateRate is the chance that a message is delivered twice.
	DuplicateRate float64
	// DelayRate is the chance that a message is held back for a random
	// time up to MaxDelay, so that later messages overtake it
	// (reordering).
	DelayRate float64
	// MaxDelay bounds the delay of a held-back message.
	MaxDelay time.Duration
}

// NetworkStats counts what a Network did with the raft messages it was
// given (snapshot streams are counted as one message each).
type NetworkStats struct {
	Sent, Delivered, Dropped, Duplicated, Delayed uint64
	Snapshots, SnapshotsDropped                   uint64
}

// Network connects stores inside one process, in the manner of TinyKV's
// test_raftstore simulator but with our own filters. Each store registers
// its Handler under its id and sends through Transport(id). Messages are
// cloned on the way, as the wire would, so sender and receiver never share
// a raft message.
//
// Delivery is synchronous (the receiving store only queues the batch)
// except for messages the unreliable network delays, which arrive later
// from a timer goroutine. A Network is safe for concurrent use.
type Network struct {
	mu         sync.Mutex
	rng        *rand.Rand
	handlers   map[uint64]Handler
	cut        map[uint64]bool // stores cut off from everyone
	group      map[uint64]int  // partition groups; nil: no partition
	unreliable Unreliable
	filters    []Filter
	closed     bool
	timers     sync.WaitGroup

	sent, delivered, dropped, duplicated, delayed atomic.Uint64
	snapshots, snapshotsDropped                   atomic.Uint64
}

// NewNetwork returns a perfect network with no stores. seed feeds the
// random choices of the unreliable network.
func NewNetwork(seed uint64) *Network {
	return &Network{
		rng:      rand.New(rand.NewPCG(seed, seed^0x9e3779b97f4a7c15)),
		handlers: map[uint64]Handler{},
		cut:      map[uint64]bool{},
	}
}

// Register connects store id, delivering to h. A store that restarts
// registers its new handler under the same id.
func (n *Network) Register(id uint64, h Handler) {
	n.mu.Lock()
	defer n.mu.Unlock()
	n.handlers[id] = h
}

// Unregister takes store id off the network (it crashed or stopped):
// messages to it fail with ErrUnreachable, and delayed ones still in
// flight are lost.
func (n *Network) Unregister(id uint64) {
	n.mu.Lock()
	defer n.mu.Unlock()
	delete(n.handlers, id)
}

// Disconnect cuts store id off from every other store, both ways, while
// it keeps running. Reconnect undoes it.
func (n *Network) Disconnect(id uint64) {
	n.mu.Lock()
	defer n.mu.Unlock()
	n.cut[id] = true
}

// Reconnect undoes Disconnect.
func (n *Network) Reconnect(id uint64) {
	n.mu.Lock()
	defer n.mu.Unlock()
	delete(n.cut, id)
}

// Partition splits the stores into groups: messages flow only inside a
// group. A store in no group is alone in its own. It replaces any earlier
// partition.
func (n *Network) Partition(groups ...[]uint64) {
	n.mu.Lock()
	defer n.mu.Unlock()
	n.group = map[uint64]int{}
	for i, g := range groups {
		for _, id := range g {
			n.group[id] = i + 1
		}
	}
}

// Heal removes the partition, the disconnections and the filters, and
// makes the network reliable again.
func (n *Network) Heal() {
	n.mu.Lock()
	defer n.mu.Unlock()
	n.group = nil
	n.cut = map[uint64]bool{}
	n.filters = nil
	n.unreliable = Unreliable{}
}

// SetUnreliable sets how messages are dropped, duplicated and delayed.
func (n *Network) SetUnreliable(u Unreliable) {
	n.mu.Lock()
	defer n.mu.Unlock()
	n.unreliable = u
}

// AddFilter adds f to the filters every message must pass.
func (n *Network) AddFilter(f Filter) {
	n.mu.Lock()
	defer n.mu.Unlock()
	n.filters = append(n.filters, f)
}

// Stats returns the Network's counters.
func (n *Network) Stats() NetworkStats {
	return NetworkStats{
		Sent: n.sent.Load(), Delivered: n.delivered.Load(), Dropped: n.dropped.Load(),
		Duplicated: n.duplicated.Load(), Delayed: n.delayed.Load(),
		Snapshots: n.snapshots.Load(), SnapshotsDropped: n.snapshotsDropped.Load(),
	}
}

// WaitDelayed waits until every message the unreliable network held back
// so far was delivered or dropped. Do not call it while another
// goroutine sends.
func (n *Network) WaitDelayed() { n.timers.Wait() }

// Close stops deliveries and waits for delayed messages still in flight
// to be dropped or delivered.
func (n *Network) Close() {
	n.mu.Lock()
	n.closed = true
	n.mu.Unlock()
	n.timers.Wait()
}

// linkedLocked reports whether from can reach to, not counting filters
// and dice.
func (n *Network) linkedLocked(from, to uint64) bool {
	if n.closed || n.cut[from] || n.cut[to] {
		return false
	}
	if n.group != nil && n.group[from] != n.group[to] {
		return false
	}
	return true
}

// Transport returns the Transport store from sends through.
func (n *Network) Transport(from uint64) Transport { return &netTransport{n: n, from: from} }

type netTransport struct {
	n    *Network
	from uint64
}

type delayed struct {
	m     *raftkvpb.RaftMessage
	after time.Duration
}

func (t *netTransport) Send(to uint64, batch *raftkvpb.RaftMessageBatch) error {
	n := t.n
	n.sent.Add(uint64(len(batch.GetMsgs())))
	n.mu.Lock()
	h := n.handlers[to]
	if h == nil || n.handlers[t.from] == nil {
		n.mu.Unlock()
		n.dropped.Add(uint64(len(batch.GetMsgs())))
		return fmt.Errorf("store %d: %w", to, ErrUnreachable)
	}
	if !n.linkedLocked(t.from, to) {
		// A partition loses messages silently, as a real one does.
		n.mu.Unlock()
		n.dropped.Add(uint64(len(batch.GetMsgs())))
		return nil
	}
	u := n.unreliable
	now := &raftkvpb.RaftMessageBatch{}
	var later []delayed
	for _, m := range batch.GetMsgs() {
		pass := true
		for _, f := range n.filters {
			if !f(t.from, to, m) {
				pass = false
				break
			}
		}
		if !pass || (u.DropRate > 0 && n.rng.Float64() < u.DropRate) {
			n.dropped.Add(1)
			continue
		}
		copies := 1
		if u.DuplicateRate > 0 && n.rng.Float64() < u.DuplicateRate {
			copies = 2
			n.duplicated.Add(1)
		}
		for range copies {
			c := proto.CloneOf(m)
			if u.DelayRate > 0 && u.MaxDelay > 0 && n.rng.Float64() < u.DelayRate {
				later = append(later, delayed{c, time.Duration(n.rng.Int64N(int64(u.MaxDelay)))})
				continue
			}
			now.Msgs = append(now.Msgs, c)
		}
	}
	n.timers.Add(len(later))
	n.mu.Unlock()
	for _, d := range later {
		n.delayed.Add(1)
		time.AfterFunc(d.after, func() {
			defer n.timers.Done()
			n.mu.Lock()
			h := n.handlers[to]
			ok := h != nil && n.handlers[t.from] != nil && n.linkedLocked(t.from, to)
			n.mu.Unlock()
			if !ok {
				n.dropped.Add(1)
				return
			}
			n.delivered.Add(1)
			h.HandleRaft(&raftkvpb.RaftMessageBatch{Msgs: []*raftkvpb.RaftMessage{d.m}})
		})
	}
	if len(now.Msgs) > 0 {
		n.delivered.Add(uint64(len(now.Msgs)))
		h.HandleRaft(now)
	}
	return nil
}

func (t *netTransport) SendSnapshot(ctx context.Context, to uint64, write func(send func(*raftkvpb.SnapshotChunk) error) error) error {
	n := t.n
	n.snapshots.Add(1)
	var chunks []*raftkvpb.SnapshotChunk
	err := write(func(c *raftkvpb.SnapshotChunk) error {
		if err := ctx.Err(); err != nil {
			return err
		}
		chunks = append(chunks, proto.CloneOf(c))
		return nil
	})
	if err != nil {
		return err
	}
	n.mu.Lock()
	h := n.handlers[to]
	ok := h != nil && n.handlers[t.from] != nil && n.linkedLocked(t.from, to)
	if ok && len(chunks) > 0 {
		// A snapshot stream goes through the filters as its MsgSnap.
		for _, f := range n.filters {
			if !f(t.from, to, chunks[0].GetHeader().GetMessage()) {
				ok = false
				break
			}
		}
		if ok && n.unreliable.DropRate > 0 && n.rng.Float64() < n.unreliable.DropRate {
			ok = false
		}
	}
	var delay, dupDelay time.Duration
	dup := false
	if u := n.unreliable; ok && u.MaxDelay > 0 {
		if u.DelayRate > 0 && n.rng.Float64() < u.DelayRate {
			delay = time.Duration(n.rng.Int64N(int64(u.MaxDelay)))
		}
		if u.DuplicateRate > 0 && n.rng.Float64() < u.DuplicateRate {
			dup, dupDelay = true, time.Duration(n.rng.Int64N(int64(u.MaxDelay)))
			n.timers.Add(1)
		}
	}
	n.mu.Unlock()
	if !ok {
		n.snapshotsDropped.Add(1)
		return fmt.Errorf("snapshot to store %d: %w", to, ErrUnreachable)
	}
	if dup {
		n.duplicated.Add(1)
		again := make([]*raftkvpb.SnapshotChunk, len(chunks))
		for i, c := range chunks {
			again[i] = proto.CloneOf(c)
		}
		time.AfterFunc(dupDelay, func() {
			defer n.timers.Done()
			if h := n.snapshotHandler(t.from, to); h != nil {
				_ = h.HandleSnapshot(again)
			}
		})
	}
	if delay > 0 {
		n.delayed.Add(1)
		select {
		case <-time.After(delay):
		case <-ctx.Done():
			return ctx.Err()
		}
		// The receiver may have gone, or come back, meanwhile.
		if h = n.snapshotHandler(t.from, to); h == nil {
			n.snapshotsDropped.Add(1)
			return fmt.Errorf("snapshot to store %d: %w", to, ErrUnreachable)
		}
	}
	return h.HandleSnapshot(chunks)
}

// snapshotHandler returns the handler a held-back snapshot stream from
// store from reaches now, nil if none.
func (n *Network) snapshotHandler(from, to uint64) Handler {
	n.mu.Lock()
	defer n.mu.Unlock()
	h := n.handlers[to]
	if h == nil || n.handlers[from] == nil || !n.linkedLocked(from, to) {
		return nil
	}
	return h
}
