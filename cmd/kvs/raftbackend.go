package main

import (
	"context"
	"crypto/rand"
	"encoding/binary"
	"errors"
	"fmt"
	"strconv"
	"time"

	"github.com/kvs-lab/kvs"
	"github.com/kvs-lab/kvs/raftkv/api"
	"github.com/kvs-lab/kvs/raftkv/raftkvpb"
	"github.com/kvs-lab/kvs/raftkv/store"
	"github.com/kvs-lab/kvs/server"
)

// raftBackend puts a raftkv store behind the RESP server: the same
// server.Backend the local engine implements, with every read and write
// going through raft. It lives here, in the command, because the server
// and raftkv packages may not import each other.
//
// What a client sees:
//   - GET, MGET, EXISTS, STRLEN, SCAN and DBSIZE are linearizable reads
//     (ReadIndex) on the leader. MGET is one read of all its keys
//     (Store.MultiGet), so it never sees half of a concurrent MSET.
//   - SET, MSET and DEL are raft proposals; MSET and DEL are one request,
//     so they apply atomically. DEL's count comes from reads made just
//     before the delete.
//   - INCR/INCRBY/DECR/DECRBY, APPEND, SET NX/XX/GET and GETSET (the
//     server's Update) are one op each, a read-modify-write that the
//     state machine runs at the op's place in the log, on every replica
//     alike (raftkvpb.Op: IncrBy, Append, Put with a condition and
//     return_old). The reply comes from the op's result in the request's
//     Response, which the state machine also keeps with the session: a
//     request retried under the same seq gets the first reply again. An
//     INCR on a non-integer fails the request on every replica with
//     Redis's error text, and changes nothing.
//   - On a follower, a command gets "MOVED 0 host:port" naming the leader's
//     RESP address when it is known (--client-addrs), or "TRYAGAIN" when no
//     leader is known. Either way the command was NOT executed.
type raftBackend struct {
	engine string
	st     *store.Store
	eng    kvs.Engine
	close  func() error
	// clientAddrs maps store ids to RESP addresses, for MOVED.
	clientAddrs map[uint64]string
	timeout     time.Duration
	// sessions are raftkv client sessions (client id, last seq). A
	// session serves one write at a time, so that its seqs apply in
	// order; concurrent writers take different sessions.
	sessions chan *raftSession
}

type raftSession struct {
	clientID, seq uint64
}

// raftSessions is how many writes a node can have in flight at once.
const raftSessions = 256

func newRaftBackend(engine string, st *store.Store, eng kvs.Engine, clientAddrs map[uint64]string, closeFn func() error) *raftBackend {
	b := &raftBackend{engine: engine, st: st, eng: eng, close: closeFn, clientAddrs: clientAddrs,
		timeout: 5 * time.Second, sessions: make(chan *raftSession, raftSessions)}
	var buf [8]byte
	for range raftSessions {
		rand.Read(buf[:])
		b.sessions <- &raftSession{clientID: binary.LittleEndian.Uint64(buf[:]) | 1}
	}
	return b
}

var _ server.Backend = (*raftBackend)(nil)

// redirect turns a raftkv error into the RESP error a client should see.
// A *NotLeaderError becomes MOVED (or TRYAGAIN): not executed.
func (b *raftBackend) redirect(err error) error {
	var nl *api.NotLeaderError
	if errors.As(err, &nl) {
		if addr, ok := b.clientAddrs[nl.Leader]; ok && nl.Leader != 0 {
			return server.RawError("MOVED 0 " + addr)
		}
		if nl.Leader != 0 {
			return server.RawError(fmt.Sprintf("MOVED 0 store-%d", nl.Leader))
		}
		return server.RawError("TRYAGAIN no raft leader known yet; retry")
	}
	return err
}

func (b *raftBackend) ctx() (context.Context, context.CancelFunc) {
	return context.WithTimeout(context.Background(), b.timeout)
}

func (b *raftBackend) Name() string              { return "raft/" + b.engine }
func (b *raftBackend) SyncMode() server.SyncMode { return server.SyncAlways }

func (b *raftBackend) Get(key []byte) ([]byte, error) {
	ctx, cancel := b.ctx()
	defer cancel()
	v, err := b.st.Get(ctx, key)
	if err != nil && !errors.Is(err, kvs.ErrNotFound) {
		return nil, b.redirect(err)
	}
	return v, err
}

// write proposes ops as one request under a session.
func (b *raftBackend) write(ops []*raftkvpb.Op) error {
	_, err := b.writeResp(ops)
	return err
}

// writeResp proposes ops as one request under a session and returns the
// request's Response. A Response the state machine failed (Response.Error
// set) comes with a nil error: see updateError.
func (b *raftBackend) writeResp(ops []*raftkvpb.Op) (*raftkvpb.Response, error) {
	s := <-b.sessions
	defer func() { b.sessions <- s }()
	s.seq++
	ctx, cancel := b.ctx()
	defer cancel()
	resp, err := b.st.Write(ctx, &raftkvpb.Request{ClientId: s.clientID, Seq: s.seq, Ops: ops})
	if err != nil && api.NotExecuted(err) {
		// Not executed: the seq was not used, so the next write may
		// reuse it without being taken for a duplicate. (A request the
		// state machine failed did use its seq: it has a Response and no
		// error, and keeps it.)
		s.seq--
	}
	return resp, b.redirect(err)
}

func (b *raftBackend) Set(key, value []byte) error {
	return b.write([]*raftkvpb.Op{{Type: raftkvpb.Op_Put, Key: key, Value: value}})
}

// Update turns a server.Update into one raftkv op and its result back
// into a server.UpdateResult. NB: server.Update does not say whether SET
// asked for GET, so every OpSet carries return_old: the old value
// travels back in the Response (and sits in the session until the
// session's next write) also for a SET NX or XX that does not show it.
func (b *raftBackend) Update(key []byte, u server.Update) (server.UpdateResult, error) {
	op := &raftkvpb.Op{Key: key}
	switch u.Op {
	case server.OpSet:
		op.Type, op.Value, op.ReturnOld = raftkvpb.Op_Put, u.Value, true
		switch u.Cond {
		case server.CondNX:
			op.Condition = raftkvpb.Op_IfAbsent
		case server.CondXX:
			op.Condition = raftkvpb.Op_IfPresent
		}
	case server.OpIncr:
		op.Type, op.Delta = raftkvpb.Op_IncrBy, u.Delta
	case server.OpAppend:
		// The server's limit travels in the op, so that every replica
		// checks the same one. (The server always sets it; 0 would mean
		// raftkv's default, kvs.DefaultMaxValueSize.)
		op.Type, op.Value, op.MaxValueBytes = raftkvpb.Op_Append, u.Value, uint64(max(u.MaxValue, 0))
	default:
		return server.UpdateResult{}, fmt.Errorf("raft backend: unknown update op %d", u.Op)
	}
	resp, err := b.writeResp([]*raftkvpb.Op{op})
	if err != nil {
		return server.UpdateResult{}, err
	}
	if err := updateError(resp); err != nil {
		return server.UpdateResult{}, err
	}
	r := api.Result(resp, 0)
	res := server.UpdateResult{Existed: r.GetExisted(), Applied: r.GetApplied(), Int: r.GetInt(), Len: int(r.GetLength())}
	if r.GetExisted() {
		// A present empty value is an empty bulk, not a null one.
		res.Old = r.GetOld()
		if res.Old == nil {
			res.Old = []byte{}
		}
	}
	return res, nil
}

// updateError maps the error a Response failed with to the server's
// error of the same meaning (and Redis's text): ErrNotInteger,
// ErrOverflow, ErrTooLarge.
func updateError(resp *raftkvpb.Response) error {
	err := api.ResponseError(resp, nil)
	switch {
	case err == nil:
		return nil
	case errors.Is(err, api.ErrNotInteger):
		return server.ErrNotInteger
	case errors.Is(err, api.ErrOverflow):
		return server.ErrOverflow
	case errors.Is(err, api.ErrTooLarge):
		return server.ErrTooLarge
	}
	return err
}

// MGet is one linearizable read of every key (Store.MultiGet): it never
// sees part of a concurrent MSET or DEL.
func (b *raftBackend) MGet(keys [][]byte, maxBytes int64) ([][]byte, error) {
	ctx, cancel := b.ctx()
	defer cancel()
	out, err := b.st.MultiGet(ctx, keys)
	if err != nil {
		return nil, b.redirect(err)
	}
	var total int64
	for _, v := range out {
		total += int64(len(v))
		if maxBytes > 0 && total > maxBytes {
			return nil, server.ErrReplyTooLarge
		}
	}
	return out, nil
}

func (b *raftBackend) MSet(pairs [][]byte) error {
	ops := make([]*raftkvpb.Op, 0, len(pairs)/2)
	for i := 0; i+1 < len(pairs); i += 2 {
		ops = append(ops, &raftkvpb.Op{Type: raftkvpb.Op_Put, Key: pairs[i], Value: pairs[i+1]})
	}
	return b.write(ops)
}

func (b *raftBackend) Delete(keys [][]byte) (int, error) {
	seen := map[string]bool{}
	n := 0
	ops := make([]*raftkvpb.Op, 0, len(keys))
	for _, k := range keys {
		if seen[string(k)] {
			continue
		}
		seen[string(k)] = true
		if _, err := b.Get(k); err == nil {
			n++
		} else if !errors.Is(err, kvs.ErrNotFound) {
			return 0, err
		}
		ops = append(ops, &raftkvpb.Op{Type: raftkvpb.Op_Delete, Key: k})
	}
	if err := b.write(ops); err != nil {
		return 0, err
	}
	return n, nil
}

func (b *raftBackend) Scan(start []byte, count int, maxBytes int64, match func(key []byte) bool) ([][]byte, []byte, error) {
	ctx, cancel := b.ctx()
	defer cancel()
	kvps, err := b.st.Scan(ctx, start, nil, count+1)
	if err != nil {
		return nil, nil, b.redirect(err)
	}
	var next []byte
	if len(kvps) > count {
		next = kvps[count].GetKey()
		kvps = kvps[:count]
	}
	var keys [][]byte
	var total int64
	for i, kv := range kvps {
		if match != nil && !match(kv.GetKey()) {
			continue
		}
		keys = append(keys, kv.GetKey())
		total += int64(len(kv.GetKey()))
		if maxBytes > 0 && total >= maxBytes && i+1 < len(kvps) {
			return keys, kvps[i+1].GetKey(), nil
		}
	}
	return keys, next, nil
}

func (b *raftBackend) KeyCount() (int64, error) {
	var n int64
	var start []byte
	for {
		keys, next, err := b.Scan(start, 10000, 0, nil)
		if err != nil {
			return 0, err
		}
		n += int64(len(keys))
		if next == nil {
			return n, nil
		}
		start = next
	}
}

func (b *raftBackend) Stats() kvs.Stats { return b.eng.Stats() }

// InfoSections adds INFO's raft section: this store's view of each region
// it hosts.
func (b *raftBackend) InfoSections() []server.InfoSection {
	sec := server.InfoSection{Name: "raft"}
	add := func(k, v string) { sec.Fields = append(sec.Fields, server.InfoField{Key: k, Value: v}) }
	add("store_id", strconv.FormatUint(b.st.ID(), 10))
	regions := b.st.Status()
	for _, r := range regions {
		state := r.State
		if state == "precandidate" {
			state = "candidate" // campaigning, in PreVote's first phase
		}
		p := fmt.Sprintf("region%d_", r.RegionID)
		if len(regions) == 1 {
			p = ""
			add("region_id", strconv.FormatUint(r.RegionID, 10))
		}
		add(p+"raft_state", state)
		add(p+"peer_id", strconv.FormatUint(r.PeerID, 10))
		add(p+"leader_peer_id", strconv.FormatUint(r.LeaderID, 10))
		add(p+"term", strconv.FormatUint(r.Term, 10))
		add(p+"commit_index", strconv.FormatUint(r.Commit, 10))
		add(p+"applied_index", strconv.FormatUint(r.Applied, 10))
		add(p+"first_log_index", strconv.FormatUint(r.FirstLog, 10))
		add(p+"last_log_index", strconv.FormatUint(r.LastLog, 10))
		add(p+"snapshots_applied", strconv.FormatUint(r.Snapshots, 10))
	}
	return []server.InfoSection{sec}
}

func (b *raftBackend) Compact() error { return b.eng.Compact() }

func (b *raftBackend) Close() error { return b.close() }
