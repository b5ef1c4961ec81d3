package store

import (
	"bytes"
	"encoding/binary"
	"errors"
	"fmt"
	"strconv"

	"github.com/kvs-lab/kvs"
	"github.com/kvs-lab/kvs/internal/redisint"
	"github.com/kvs-lab/kvs/raftkv/api"
	"github.com/kvs-lab/kvs/raftkv/raftkvpb"
	"github.com/kvs-lab/kvs/raftkv/raftstorage"
	"google.golang.org/protobuf/proto"
)

// This file is the state machine's handling of client requests: how one
// committed Request becomes engine writes and a Response, on every
// replica alike.
//
// # Reads inside a batch
//
// apply gathers the writes of all the entries it applies in one
// kvs.Batch, written once at the end. A read-modify-write op (IncrBy,
// Append, a conditional Put) must see the writes of the entries before
// it, but those sit in the unwritten batch, where an engine Get cannot
// see them. So an applyBatch keeps an overlay: the last value each key
// got in this batch (or that it was deleted), consulted before the
// engine. The same goes for client sessions. The engine itself holds
// exactly the state as of the previous batch: the loop is the only
// writer of region data.
//
// # Determinism
//
// Every replica applies the same entries in the same order to the same
// state, so every replica must compute the same thing from them: the ops
// read nothing but the region's data and the op itself (no clock, no
// configuration; an Append's size limit travels in the op), and a
// request fails, or not, the same way everywhere. A failed request writes
// nothing of its ops (they are staged, and dropped) but records its
// Response in the session like any other.
//
// # Sessions
//
// A client's session is its last applied seq and that request's
// Response, under sessionKey in the region's data, written in the same
// batch as the request's writes (so a crash keeps both or neither, and
// snapshots carry them). A request whose seq is the session's gets the
// recorded Response back, and applies nothing: that is how a retry after
// a lost reply returns the first application's result instead of
// incrementing twice (Raft dissertation §6.3). Keeping only the last
// Response is enough because a client sends one write at a time: once it
// sends seq n+1 it has the answer to n.

// sessionKey is the user key under which the state machine keeps client
// id's session. It starts with api.ReservedPrefix, so it sits in the
// region's data (snapshots carry it) where clients cannot touch it: a
// key starting with the prefix is refused (api.CheckKey), and Scan skips
// those keys, so SCAN and DBSIZE never count sessions.
func sessionKey(clientID uint64) []byte {
	return binary.BigEndian.AppendUint64([]byte{api.ReservedPrefix, 's'}, clientID)
}

// session is a client's record in the state machine.
type session struct {
	seq uint64 // the last applied seq, 0 if none
	// resp is the Response of request seq. nil for a session written
	// before responses were recorded (an 8-byte value): a retry of that
	// request gets an empty Response, which is all a Put or Delete (the
	// only ops then) ever returned.
	resp *raftkvpb.Response
}

// Session value format (under sessionKey):
//
//	+-----------+------------------------------------+
//	| seq (u64) | Response (protobuf), may be absent |
//	+-----------+------------------------------------+
//
// seq is big-endian. The first version stored the seq alone; its 8-byte
// values read as a session without a Response.

// encodeSession returns the stored form of sess.
func encodeSession(sess session) ([]byte, error) {
	b := binary.BigEndian.AppendUint64(nil, sess.seq)
	return proto.MarshalOptions{Deterministic: true}.MarshalAppend(b, sess.resp)
}

// decodeSession parses a stored session.
func decodeSession(v []byte) (session, error) {
	if len(v) < 8 {
		return session{}, fmt.Errorf("%d bytes, want at least 8", len(v))
	}
	sess := session{seq: binary.BigEndian.Uint64(v)}
	if len(v) > 8 {
		sess.resp = &raftkvpb.Response{}
		if err := proto.Unmarshal(v[8:], sess.resp); err != nil {
			return session{}, fmt.Errorf("response: %w", err)
		}
	}
	return sess, nil
}

// overlayValue is a key's value as this batch left it.
type overlayValue struct {
	value   []byte
	deleted bool
}

// applyBatch is the state machine's view of a region's data while a
// batch of committed entries applies: the engine, plus what the batch
// wrote so far (see "Reads inside a batch"). It is used by the loop
// goroutine only, for one batch.
type applyBatch struct {
	eng      kvs.Engine
	wb       *kvs.Batch
	regionID uint64
	data     map[string]overlayValue // by user key
	sessions map[uint64]session      // by client id
}

func newApplyBatch(eng kvs.Engine, wb *kvs.Batch, regionID uint64) *applyBatch {
	return &applyBatch{eng: eng, wb: wb, regionID: regionID, data: map[string]overlayValue{}, sessions: map[uint64]session{}}
}

// get returns user key's current value: the batch's last write of it,
// else the engine's. found is false for an absent key. An error is an
// engine failure.
func (a *applyBatch) get(key []byte) (v []byte, found bool, err error) {
	if o, ok := a.data[string(key)]; ok {
		return o.value, !o.deleted, nil
	}
	v, err = a.eng.Get(raftstorage.DataKey(key))
	if errors.Is(err, kvs.ErrNotFound) {
		return nil, false, nil
	}
	if err != nil {
		return nil, false, fmt.Errorf("%w: read key %q: %w", errEngine, key, err)
	}
	return v, true, nil
}

// session returns client's session as of this point of the batch.
func (a *applyBatch) session(client uint64) (session, error) {
	if sess, ok := a.sessions[client]; ok {
		return sess, nil
	}
	v, err := a.eng.Get(raftstorage.DataKey(sessionKey(client)))
	if errors.Is(err, kvs.ErrNotFound) {
		return session{}, nil
	}
	if err != nil {
		return session{}, fmt.Errorf("%w: read session: %w", errEngine, err)
	}
	sess, err := decodeSession(v)
	if err != nil {
		return session{}, fmt.Errorf("store: region %d: session of client %d: %w: %v", a.regionID, client, kvs.ErrCorruption, err)
	}
	return sess, nil
}

// errSessionMovedOn answers a request whose seq is below its client's
// last applied one: the client has had the answer to it (it sends one
// write at a time) and stopped waiting, but a store may still hold the
// proposal of an earlier try. Its Response is gone, so its outcome is
// unknown to that caller.
var errSessionMovedOn = fmt.Errorf("%w: the client's session has applied a later request; this one's result is no longer kept", api.ErrTimeout)

// applyRequest applies req at most once (see "Sessions") and returns its
// Response: the recorded one for a retry of the session's last request,
// a fresh one otherwise. A request below the session's seq applies
// nothing and returns errSessionMovedOn. Any other error is an engine
// failure.
func (a *applyBatch) applyRequest(req *raftkvpb.Request) (*raftkvpb.Response, error) {
	client := req.GetClientId()
	sess, err := a.session(client)
	if err != nil {
		return nil, err
	}
	switch {
	case req.GetSeq() == sess.seq:
		// A retry of the request that applied last: same answer, no
		// second application.
		if sess.resp == nil {
			return &raftkvpb.Response{}, nil
		}
		return sess.resp, nil
	case req.GetSeq() < sess.seq:
		return nil, errSessionMovedOn
	}
	resp, writes, err := a.run(req.GetOps())
	if err != nil {
		return nil, err
	}
	// NB: writes are empty when the request failed: it applies whole or
	// not at all. Its Response is recorded all the same, so that a retry
	// fails the same way instead of applying on a changed value.
	for _, w := range writes {
		if w.deleted {
			a.wb.Delete(raftstorage.DataKey(w.key))
		} else {
			a.wb.Put(raftstorage.DataKey(w.key), w.value)
		}
		a.data[string(w.key)] = overlayValue{value: w.value, deleted: w.deleted}
	}
	sess = session{seq: req.GetSeq(), resp: resp}
	v, err := encodeSession(sess)
	if err != nil {
		return nil, fmt.Errorf("store: region %d: encode session of client %d: %w", a.regionID, client, err)
	}
	a.wb.Put(raftstorage.DataKey(sessionKey(client)), v)
	a.sessions[client] = sess
	return resp, nil
}

// write is one staged write of a request.
type write struct {
	key, value []byte
	deleted    bool
}

// run computes what ops do, in order, each seeing the ones before it. It
// returns the Response and the writes to make, none if an op failed the
// request. An error is an engine failure.
func (a *applyBatch) run(ops []*raftkvpb.Op) (*raftkvpb.Response, []write, error) {
	var writes []write
	staged := map[string]int{} // user key -> index in writes of its last write
	read := func(key []byte) ([]byte, bool, error) {
		if i, ok := staged[string(key)]; ok {
			return writes[i].value, !writes[i].deleted, nil
		}
		return a.get(key)
	}
	stage := func(w write) {
		staged[string(w.key)] = len(writes)
		writes = append(writes, w)
	}
	resp := &raftkvpb.Response{Results: make([]*raftkvpb.OpResult, 0, len(ops))}
	fail := func(i int, e raftkvpb.Response_Error) (*raftkvpb.Response, []write, error) {
		return &raftkvpb.Response{Error: e, FailedOp: uint32(i)}, nil, nil
	}
	for i, op := range ops {
		res := &raftkvpb.OpResult{}
		key := op.GetKey()
		switch op.GetType() {
		case raftkvpb.Op_Put:
			if op.GetCondition() != raftkvpb.Op_Always || op.GetReturnOld() {
				old, found, err := read(key)
				if err != nil {
					return nil, nil, err
				}
				res.Existed = found
				if op.GetReturnOld() {
					res.Old = bytes.Clone(old)
				}
				if (op.GetCondition() == raftkvpb.Op_IfAbsent && found) ||
					(op.GetCondition() == raftkvpb.Op_IfPresent && !found) {
					resp.Results = append(resp.Results, res) // not applied
					continue
				}
			}
			stage(write{key: key, value: op.GetValue()})
		case raftkvpb.Op_Delete:
			stage(write{key: key, deleted: true})
		case raftkvpb.Op_IncrBy:
			old, found, err := read(key)
			if err != nil {
				return nil, nil, err
			}
			res.Existed = found
			var n int64
			if found {
				var ok bool
				if n, ok = redisint.Parse(old); !ok {
					return fail(i, raftkvpb.Response_NotInteger)
				}
			}
			d := op.GetDelta()
			if redisint.AddOverflows(n, d) {
				return fail(i, raftkvpb.Response_Overflow)
			}
			res.Int = n + d
			stage(write{key: key, value: strconv.AppendInt(nil, res.Int, 10)})
		case raftkvpb.Op_Append:
			old, found, err := read(key)
			if err != nil {
				return nil, nil, err
			}
			res.Existed = found
			limit := op.GetMaxValueBytes()
			if limit == 0 {
				limit = kvs.DefaultMaxValueSize
			}
			if uint64(len(old))+uint64(len(op.GetValue())) > limit {
				return fail(i, raftkvpb.Response_TooLarge)
			}
			v := append(bytes.Clone(old), op.GetValue()...)
			res.Length = uint64(len(v))
			stage(write{key: key, value: v})
		default:
			// Store.Write refuses unknown types, so only an entry from a
			// newer version gets here; every replica of this version
			// skips the op alike (it reports not applied).
			resp.Results = append(resp.Results, res)
			continue
		}
		res.Applied = true
		resp.Results = append(resp.Results, res)
	}
	return resp, writes, nil
}
