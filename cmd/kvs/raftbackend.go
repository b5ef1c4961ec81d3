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
//     (ReadIndex) on the leader. MGET reads its keys one by one, so unlike
//     on a local engine it may see half of a concurrent MSET.
//   - SET, MSET and DEL are raft proposals; MSET and DEL are one request,
//     so they apply atomically. DEL's count comes from reads made just
//     before the delete.
//   - INCR, APPEND and SET NX/XX/GET need a read-modify-write inside the
//     state machine, which step 1 does not have: they get an error.
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

// errNoRMW is the reply to the commands that need a read-modify-write in
// the state machine.
var errNoRMW = server.RawError("ERR this command reads and writes a key in one step, which the replicated store does not support yet (it needs a read-modify-write inside the raft state machine); use GET and SET")

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
	s := <-b.sessions
	defer func() { b.sessions <- s }()
	s.seq++
	ctx, cancel := b.ctx()
	defer cancel()
	err := b.st.Write(ctx, &raftkvpb.Request{ClientId: s.clientID, Seq: s.seq, Ops: ops})
	if err != nil && api.NotExecuted(err) {
		// Not executed: the seq was not used, so the next write may
		// reuse it without being taken for a duplicate.
		s.seq--
	}
	return b.redirect(err)
}

func (b *raftBackend) Set(key, value []byte) error {
	return b.write([]*raftkvpb.Op{{Type: raftkvpb.Op_Put, Key: key, Value: value}})
}

func (b *raftBackend) Update(key []byte, u server.Update) (server.UpdateResult, error) {
	return server.UpdateResult{}, errNoRMW
}

func (b *raftBackend) MGet(keys [][]byte, maxBytes int64) ([][]byte, error) {
	out := make([][]byte, len(keys))
	var total int64
	for i, k := range keys {
		v, err := b.Get(k)
		switch {
		case errors.Is(err, kvs.ErrNotFound):
			continue
		case err != nil:
			return nil, err
		}
		if v == nil {
			v = []byte{}
		}
		out[i] = v
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
