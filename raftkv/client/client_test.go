package client_test

import (
	"context"
	"errors"
	"strconv"
	"sync"
	"testing"
	"time"

	"github.com/kvs-lab/kvs"
	"github.com/kvs-lab/kvs/raftkv/api"
	"github.com/kvs-lab/kvs/raftkv/client"
	"github.com/kvs-lab/kvs/raftkv/raftkvpb"
)

// fakeStore answers according to its role: the leader applies writes
// once per (client, seq), keeping the last Response per client for
// retries as the real state machine does, and may lose its first reply;
// a follower answers NotLeader with a hint.
type fakeStore struct {
	c  *fakeCluster
	id uint64
}

type fakeCluster struct {
	mu       sync.Mutex
	leader   uint64
	hint     uint64 // what followers say
	data     map[string]string
	applied  map[uint64]uint64             // client -> last seq
	resps    map[uint64]*raftkvpb.Response // client -> last seq's Response
	applies  int
	attempts map[uint64]int // per store
	loseNext int            // replies the leader loses (after applying)
	down     map[uint64]bool
	stores   []uint64 // nil: 1, 2, 3
}

func newFake() *fakeCluster {
	return &fakeCluster{leader: 3, hint: 3, data: map[string]string{}, applied: map[uint64]uint64{}, resps: map[uint64]*raftkvpb.Response{}, attempts: map[uint64]int{}, down: map[uint64]bool{}}
}

func (c *fakeCluster) Stores() []uint64 {
	c.mu.Lock()
	defer c.mu.Unlock()
	if c.stores != nil {
		return append([]uint64(nil), c.stores...)
	}
	return []uint64{1, 2, 3}
}

func (c *fakeCluster) Store(id uint64) (api.Service, error) {
	c.mu.Lock()
	defer c.mu.Unlock()
	if c.down[id] {
		return nil, api.ErrUnreachable
	}
	return &fakeStore{c: c, id: id}, nil
}

func (s *fakeStore) Write(ctx context.Context, req *raftkvpb.Request) (*raftkvpb.Response, error) {
	c := s.c
	c.mu.Lock()
	defer c.mu.Unlock()
	c.attempts[s.id]++
	if s.id != c.leader {
		return nil, &api.NotLeaderError{RegionID: 1, Leader: c.hint}
	}
	if req.GetSeq() > c.applied[req.GetClientId()] {
		c.applied[req.GetClientId()] = req.GetSeq()
		c.applies++
		resp := &raftkvpb.Response{}
		for _, op := range req.GetOps() {
			res := &raftkvpb.OpResult{Applied: true}
			switch op.GetType() {
			case raftkvpb.Op_IncrBy:
				n, _ := strconv.ParseInt(c.data[string(op.GetKey())], 10, 64)
				res.Int = n + op.GetDelta()
				c.data[string(op.GetKey())] = strconv.FormatInt(res.Int, 10)
			default:
				c.data[string(op.GetKey())] = string(op.GetValue())
			}
			resp.Results = append(resp.Results, res)
		}
		c.resps[req.GetClientId()] = resp
	}
	if c.loseNext > 0 {
		c.loseNext--
		return nil, api.ErrTimeout
	}
	return c.resps[req.GetClientId()], nil
}

func (s *fakeStore) Get(ctx context.Context, key []byte) ([]byte, error) {
	c := s.c
	c.mu.Lock()
	defer c.mu.Unlock()
	if s.id != c.leader {
		return nil, &api.NotLeaderError{RegionID: 1, Leader: c.hint}
	}
	v, ok := c.data[string(key)]
	if !ok {
		return nil, kvs.ErrNotFound
	}
	return []byte(v), nil
}

func (s *fakeStore) Scan(ctx context.Context, start, end []byte, limit int) ([]*raftkvpb.KeyValue, error) {
	return nil, errors.New("not implemented")
}

func TestClientFollowsLeaderHint(t *testing.T) {
	c := newFake()
	cl := client.New(c, &client.Config{ClientID: 5})
	ctx := context.Background()
	if err := cl.Put(ctx, []byte("a"), []byte("1")); err != nil {
		t.Fatal(err)
	}
	// The first try goes round-robin; the hint leads straight to store 3.
	if c.attempts[3] != 1 || c.attempts[1]+c.attempts[2] > 1 {
		t.Fatalf("attempts %v: want one miss at most, then the leader", c.attempts)
	}
	if v, err := cl.Get(ctx, []byte("a")); err != nil || string(v) != "1" {
		t.Fatalf("get = %q, %v", v, err)
	}
	if _, err := cl.Get(ctx, []byte("b")); !errors.Is(err, kvs.ErrNotFound) {
		t.Fatalf("get of absent key: %v, want kvs.ErrNotFound", err)
	}
}

// TestClientRetriesWithSameSeq loses the leader's reply twice: the client
// retries the same (client id, seq) and the write applies once; the next
// write gets the next seq.
func TestClientRetriesWithSameSeq(t *testing.T) {
	c := newFake()
	c.loseNext = 2
	cl := client.New(c, &client.Config{ClientID: 5, Backoff: time.Millisecond})
	ctx := context.Background()
	if err := cl.Put(ctx, []byte("a"), []byte("1")); err != nil {
		t.Fatal(err)
	}
	if c.applies != 1 || c.attempts[3] != 3 {
		t.Fatalf("applies %d after %d attempts at the leader; want 1 after 3", c.applies, c.attempts[3])
	}
	if err := cl.Put(ctx, []byte("a"), []byte("2")); err != nil {
		t.Fatal(err)
	}
	if c.applies != 2 || c.applied[5] != 2 || c.data["a"] != "2" {
		t.Fatalf("second write: applies %d, seq %d, a=%q", c.applies, c.applied[5], c.data["a"])
	}
}

// TestClientIncrByRetryReturnsFirstResult loses the leader's replies to
// an IncrBy twice: the retries carry the same seq, so the increment
// applies once and the client returns the value of that one application
// (the store's recorded Response), not a later one.
func TestClientIncrByRetryReturnsFirstResult(t *testing.T) {
	c := newFake()
	c.data["n"] = "10"
	c.loseNext = 2
	cl := client.New(c, &client.Config{ClientID: 5, Backoff: time.Millisecond})
	ctx := context.Background()
	n, err := cl.IncrBy(ctx, []byte("n"), 5)
	if err != nil {
		t.Fatal(err)
	}
	if n != 15 || c.data["n"] != "15" || c.applies != 1 || c.attempts[3] != 3 {
		t.Fatalf("IncrBy = %d, n=%q, applies %d after %d attempts; want 15, \"15\", 1 after 3", n, c.data["n"], c.applies, c.attempts[3])
	}
	if n, err := cl.IncrBy(ctx, []byte("n"), -20); err != nil || n != -5 {
		t.Fatalf("second IncrBy = %d, %v; want -5", n, err)
	}
}

// TestClientGivesUp reports whether a write may have applied when ctx
// ends: "not executed" when every store refused, ErrTimeout when some
// try may have applied.
func TestClientGivesUp(t *testing.T) {
	c := newFake()
	c.leader = 0 // nobody leads
	c.hint = 0
	cl := client.New(c, &client.Config{Backoff: time.Millisecond})
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Millisecond)
	defer cancel()
	err := cl.Put(ctx, []byte("a"), []byte("1"))
	if !api.NotExecuted(err) || errors.Is(err, api.ErrTimeout) {
		t.Fatalf("no leader: %v, want a not-executed error", err)
	}
	c.leader, c.hint, c.loseNext = 3, 3, 1<<30
	ctx2, cancel2 := context.WithTimeout(context.Background(), 30*time.Millisecond)
	defer cancel2()
	if err := cl.Put(ctx2, []byte("a"), []byte("1")); !errors.Is(err, api.ErrTimeout) {
		t.Fatalf("lost replies: %v, want ErrTimeout (may have applied)", err)
	}
}

// TestClientFindsLeaderAfterMembershipChange moves the region off the
// store the client knows as leader to a store the cluster learnt of
// later: the old leader and the followers redirect without a hint, and
// the client, asking the cluster for its stores again, finds the new one.
func TestClientFindsLeaderAfterMembershipChange(t *testing.T) {
	c := newFake()
	cl := client.New(c, &client.Config{Backoff: time.Millisecond})
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
	defer cancel()
	if err := cl.Put(ctx, []byte("a"), []byte("1")); err != nil {
		t.Fatal(err)
	}
	c.mu.Lock()
	c.stores = []uint64{1, 2, 3, 4}
	c.leader, c.hint = 4, 0
	c.mu.Unlock()
	if err := cl.Put(ctx, []byte("a"), []byte("2")); err != nil {
		t.Fatal(err)
	}
	if c.attempts[4] != 1 || c.data["a"] != "2" {
		t.Fatalf("attempts %v, a=%q: want the write applied by the new store 4", c.attempts, c.data["a"])
	}
}
