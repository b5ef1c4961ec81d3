// Package client is the Go client of a raftkv cluster. It sends Put,
// Delete, the read-modify-writes (IncrBy, Append, PutIfAbsent,
// PutIfPresent, Swap), Get and Scan to the region's leader over a small Cluster
// interface (the in-process test cluster implements it now, a network
// client later), and hides leader changes, lost messages and dropped
// proposals behind retries.
//
// # Retries and idempotency
//
// A Client has a random 64-bit id and numbers its writes 1, 2, 3...; a
// write keeps its (id, seq) across every retry, and the store's state
// machine applies a given (id, seq) at most once (it remembers the last
// seq applied per client, atomically with the data). So the client may
// retry a write whose outcome it does not know, after a timeout or a lost
// reply, without applying it twice. For that to hold a Client sends one
// write at a time: writes are serialised by a mutex (reads are not). Use
// one Client per goroutine for parallel writes.
//
// The state machine also keeps the Response of each client's last write
// with its session, so a retry of a read-modify-write gets the result of
// its one application: an IncrBy whose first reply was lost returns the
// value it produced then, not a second increment's.
//
// The client first tries the store it last saw leading; a NotLeader
// answer names the leader's store, which it tries next; otherwise it goes
// round the stores, with a short backoff after each miss, until ctx ends.
//
// # Membership changes
//
// The client needs nothing special when the region's stores change: it
// asks Cluster.Stores afresh each time it goes round, so a Cluster that
// learns of a new store (the hook: return it from Stores) is tried at the
// next miss, and a leader hint naming any store is followed. A store that
// no longer holds (or does not yet hold) the region answers NotLeader
// without a hint, a redirect: the client moves on to the next store.
//
// # Errors
//
// Writes return nil once applied. A read-modify-write the state machine
// refused (IncrBy on a value that is not an integer, or past int64;
// Append past its size limit) returns api.ErrNotInteger, api.ErrOverflow
// or api.ErrTooLarge: it changed nothing. When ctx ends first, the error wraps
// api.ErrTimeout if some attempt may have applied, or the last "not
// executed" error (api.NotExecuted reports true) if none did. Get returns
// kvs.ErrNotFound for an absent key.
//
// # Example
//
//	c := client.New(cluster, nil)
//	if err := c.Put(ctx, []byte("k"), []byte("v")); err != nil { ... }
//	v, err := c.Get(ctx, []byte("k"))
package client

import (
	"context"
	"crypto/rand"
	"encoding/binary"
	"errors"
	"fmt"
	"sync"
	"sync/atomic"
	"time"

	"github.com/kvs-lab/kvs"
	"github.com/kvs-lab/kvs/raftkv/api"
	"github.com/kvs-lab/kvs/raftkv/raftkvpb"
)

// Cluster is how a Client reaches the stores.
type Cluster interface {
	// Stores returns the ids of the stores a client may try. The client
	// calls it again every time it looks for a leader, so the list may
	// change (stores added to or removed from the cluster); stores not
	// holding the region are harmless, they redirect.
	Stores() []uint64
	// Store returns store id's Service, or an error wrapping
	// api.ErrUnreachable if it cannot be reached now.
	Store(id uint64) (api.Service, error)
}

// Config tunes a Client. The zero value (or nil) takes the defaults.
type Config struct {
	// ClientID identifies the client's writes; 0 picks a random one. Two
	// clients must never share an id.
	ClientID uint64
	// AttemptTimeout bounds one try at one store (default 1 s).
	AttemptTimeout time.Duration
	// Backoff is the pause after a try that found no leader (default 5 ms).
	Backoff time.Duration
}

// Client sends requests to a raftkv cluster. Its methods are safe for
// concurrent use; writes go one at a time (see the package comment).
type Client struct {
	cluster Cluster
	cfg     Config

	writeMu sync.Mutex
	seq     uint64 // guarded by writeMu

	leader atomic.Uint64 // store id of the last known leader, 0 if none
	next   atomic.Uint64 // round-robin position
}

// New returns a Client of cluster.
func New(cluster Cluster, cfg *Config) *Client {
	c := &Client{cluster: cluster}
	if cfg != nil {
		c.cfg = *cfg
	}
	if c.cfg.ClientID == 0 {
		var b [8]byte
		for c.cfg.ClientID == 0 {
			_, _ = rand.Read(b[:])
			c.cfg.ClientID = binary.LittleEndian.Uint64(b[:])
		}
	}
	if c.cfg.AttemptTimeout == 0 {
		c.cfg.AttemptTimeout = time.Second
	}
	if c.cfg.Backoff == 0 {
		c.cfg.Backoff = 5 * time.Millisecond
	}
	return c
}

// ID returns the client id its writes carry.
func (c *Client) ID() uint64 { return c.cfg.ClientID }

// Put stores value under key.
func (c *Client) Put(ctx context.Context, key, value []byte) error {
	_, err := c.Write(ctx, &raftkvpb.Op{Type: raftkvpb.Op_Put, Key: key, Value: value})
	return err
}

// Delete removes key.
func (c *Client) Delete(ctx context.Context, key []byte) error {
	_, err := c.Write(ctx, &raftkvpb.Op{Type: raftkvpb.Op_Delete, Key: key})
	return err
}

// IncrBy adds delta to key's value, read as a decimal int64 (an absent key
// reads as 0), and returns the new value, as Redis's INCRBY does. It
// fails with api.ErrNotInteger if the value is not such an integer and
// with api.ErrOverflow if the sum leaves int64; the value is then
// unchanged.
func (c *Client) IncrBy(ctx context.Context, key []byte, delta int64) (int64, error) {
	resp, err := c.Write(ctx, &raftkvpb.Op{Type: raftkvpb.Op_IncrBy, Key: key, Delta: delta})
	if err != nil {
		return 0, err
	}
	return api.Result(resp, 0).GetInt(), nil
}

// Append appends suffix to key's value (an absent key reads as empty) and
// returns the new length. It fails with api.ErrTooLarge, changing
// nothing, if the value would pass kvs.DefaultMaxValueSize; Write with
// an Op's MaxValueBytes sets another bound.
func (c *Client) Append(ctx context.Context, key, suffix []byte) (int, error) {
	resp, err := c.Write(ctx, &raftkvpb.Op{Type: raftkvpb.Op_Append, Key: key, Value: suffix})
	if err != nil {
		return 0, err
	}
	return int(api.Result(resp, 0).GetLength()), nil
}

// PutIfAbsent stores value under key only if key does not exist (Redis's
// SET NX) and reports whether it did.
func (c *Client) PutIfAbsent(ctx context.Context, key, value []byte) (bool, error) {
	resp, err := c.Write(ctx, &raftkvpb.Op{Type: raftkvpb.Op_Put, Key: key, Value: value, Condition: raftkvpb.Op_IfAbsent})
	if err != nil {
		return false, err
	}
	return api.Result(resp, 0).GetApplied(), nil
}

// PutIfPresent stores value under key only if key exists (Redis's SET XX)
// and reports whether it did.
func (c *Client) PutIfPresent(ctx context.Context, key, value []byte) (bool, error) {
	resp, err := c.Write(ctx, &raftkvpb.Op{Type: raftkvpb.Op_Put, Key: key, Value: value, Condition: raftkvpb.Op_IfPresent})
	if err != nil {
		return false, err
	}
	return api.Result(resp, 0).GetApplied(), nil
}

// Swap stores value under key and returns the value it replaced, or
// kvs.ErrNotFound (with the write done) if key did not exist: Redis's
// GETSET. The returned slice is the caller's.
func (c *Client) Swap(ctx context.Context, key, value []byte) ([]byte, error) {
	resp, err := c.Write(ctx, &raftkvpb.Op{Type: raftkvpb.Op_Put, Key: key, Value: value, ReturnOld: true})
	if err != nil {
		return nil, err
	}
	r := api.Result(resp, 0)
	if !r.GetExisted() {
		return nil, kvs.ErrNotFound
	}
	return r.GetOld(), nil
}

// Write applies ops atomically (all keys must be in one region) and
// returns the request's Response: one result per op (see
// raftkvpb.OpResult). If the state machine failed the request (see
// api.ResponseError), nothing of it was written, and Write returns the
// Response with that error. It waits for the previous write of this
// Client to finish.
func (c *Client) Write(ctx context.Context, ops ...*raftkvpb.Op) (*raftkvpb.Response, error) {
	c.writeMu.Lock()
	defer c.writeMu.Unlock()
	c.seq++
	req := &raftkvpb.Request{ClientId: c.cfg.ClientID, Seq: c.seq, Ops: ops}
	var resp *raftkvpb.Response
	err := c.do(ctx, func(ctx context.Context, s api.Service) error {
		var err error
		// Every try carries the same (client id, seq): whichever try
		// applies, the others get its Response back.
		resp, err = s.Write(ctx, req)
		return err
	})
	if err != nil {
		return nil, err
	}
	return resp, api.ResponseError(resp, ops)
}

// Get returns the value of key, or kvs.ErrNotFound.
func (c *Client) Get(ctx context.Context, key []byte) ([]byte, error) {
	var v []byte
	found := true
	err := c.do(ctx, func(ctx context.Context, s api.Service) error {
		var err error
		v, err = s.Get(ctx, key)
		if errors.Is(err, kvs.ErrNotFound) {
			found = false
			return nil
		}
		return err
	})
	if err != nil {
		return nil, err
	}
	if !found {
		return nil, kvs.ErrNotFound
	}
	return v, nil
}

// Scan returns up to limit pairs (all if limit <= 0) with keys in [start,
// end) in key order; an empty end means no upper bound.
func (c *Client) Scan(ctx context.Context, start, end []byte, limit int) ([]*raftkvpb.KeyValue, error) {
	var pairs []*raftkvpb.KeyValue
	err := c.do(ctx, func(ctx context.Context, s api.Service) error {
		var err error
		pairs, err = s.Scan(ctx, start, end, limit)
		return err
	})
	return pairs, err
}

// do runs fn against stores until it succeeds, fails for good, or ctx
// ends.
func (c *Client) do(ctx context.Context, fn func(context.Context, api.Service) error) error {
	var (
		last      error
		uncertain bool // some attempt may have had an effect
		hints     int  // leader hints followed in a row
	)
	for {
		if err := ctx.Err(); err != nil {
			if last == nil {
				last = err
			}
			if uncertain {
				return fmt.Errorf("client: %w: gave up (%w), last error: %v", api.ErrTimeout, err, last)
			}
			return fmt.Errorf("client: gave up (%v): %w", err, last)
		}
		id := c.leader.Load()
		if id == 0 {
			ids := c.cluster.Stores()
			if len(ids) == 0 {
				return fmt.Errorf("client: %w: no stores", api.ErrUnreachable)
			}
			id = ids[c.next.Add(1)%uint64(len(ids))]
		}
		svc, err := c.cluster.Store(id)
		if err == nil {
			actx, cancel := context.WithTimeout(ctx, c.cfg.AttemptTimeout)
			err = fn(actx, svc)
			cancel()
			if err == nil {
				c.leader.Store(id)
				return nil
			}
		}
		last = err
		if errors.Is(err, api.ErrInvalid) {
			return err
		}
		if !api.NotExecuted(err) {
			uncertain = true
		}
		var nl *api.NotLeaderError
		if errors.As(err, &nl) && nl.Leader != 0 && nl.Leader != id && hints < 3 {
			// Follow the hint at once; a few in a row at most, as stale
			// hints can point in a circle during an election.
			hints++
			c.leader.Store(nl.Leader)
			continue
		}
		hints = 0
		c.leader.Store(0)
		select {
		case <-time.After(c.cfg.Backoff):
		case <-ctx.Done():
		}
	}
}
