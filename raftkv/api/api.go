// Package api is what a raftkv store offers clients: the Service interface
// a store implements (and, later, a network client of a store), and the
// errors that cross it. It is a leaf: the store and the client both import
// it, neither imports the other.
//
// # What an error says about a write
//
// The rule of DESIGN.md: a redirect means the command was NOT executed,
// any other error on a write means it may have applied. Here:
//
//   - *NotLeaderError (errors.Is(err, ErrNotLeader)): not executed. The
//     store is not the region's leader; Leader is the store id of the
//     leader it knows, or 0.
//   - ErrProposalDropped: not executed. Raft refused the proposal, or the
//     entry that carried it was replaced in the log by another leader's
//     entry, so it can never apply.
//   - ErrConfChangeInProgress: not executed (a membership change, refused
//     because another one has not applied yet).
//   - anything else (ErrTimeout, ErrStopped, ErrPeerRemoved, a context
//     error, an engine error): the write may have applied. A client retries it with the same
//     client id and seq, and the store applies it at most once.
//
// A read has no effect, so any error on a read only means "no answer".
//
// # Results of a write
//
// A write that applied comes back as a raftkvpb.Response: one OpResult
// per op (an IncrBy's new value, an Append's new length, a Put's old
// value and whether its condition held), or the error the state machine
// failed the whole request with (ResponseError turns it into
// ErrNotInteger, ErrOverflow or ErrTooLarge). A failed request wrote
// nothing, but it did apply: its seq is used, and a retry of it gets the
// same failure. The state machine keeps each client's last Response with
// its session, so a retry of a write that applied returns the first
// application's results, never a second application's.
package api

import (
	"context"
	"errors"
	"fmt"

	"github.com/kvs-lab/kvs/raftkv/raftkvpb"
)

// Service is a store's client interface. Write proposes a request to the
// region's raft group and returns once it applied; Get and Scan are
// linearizable reads. All methods are safe for concurrent use. Returned
// slices belong to the caller.
type Service interface {
	// Write proposes req (its ClientId, Seq and Ops; the store sets the
	// proposal tag), waits until it applied and returns its Response
	// (see "Results of a write": a request the state machine failed
	// comes back with a nil error and Response.Error set). An error
	// means the request did not apply or its outcome is unknown: see the
	// package comment.
	Write(ctx context.Context, req *raftkvpb.Request) (*raftkvpb.Response, error)
	// Get returns the value of key, or kvs.ErrNotFound.
	Get(ctx context.Context, key []byte) ([]byte, error)
	// Scan returns up to limit pairs (all if limit <= 0) with keys in
	// [start, end) in key order; an empty end means no upper bound.
	Scan(ctx context.Context, start, end []byte, limit int) ([]*raftkvpb.KeyValue, error)
}

// ErrNotLeader matches every *NotLeaderError.
var ErrNotLeader = errors.New("raftkv: not leader")

// NotLeaderError says the store that got a request does not lead the
// region: the request was not executed. Leader is the store id of the
// leader the store knows of (a hint, possibly stale), 0 if none. RegionID
// 0 means the store holds no region for the request's key at all (it was
// removed from the region, or not yet added).
type NotLeaderError struct {
	RegionID uint64
	Leader   uint64
}

func (e *NotLeaderError) Error() string {
	if e.RegionID == 0 {
		return "raftkv: not leader: the store holds no region for the key"
	}
	if e.Leader == 0 {
		return fmt.Sprintf("raftkv: region %d: not leader, leader unknown", e.RegionID)
	}
	return fmt.Sprintf("raftkv: region %d: not leader, try store %d", e.RegionID, e.Leader)
}

// Is makes errors.Is(err, ErrNotLeader) true.
func (e *NotLeaderError) Is(target error) bool { return target == ErrNotLeader }

var (
	// ErrProposalDropped says a write was not applied and never will be:
	// raft dropped the proposal, or another leader overwrote its entry.
	ErrProposalDropped = errors.New("raftkv: proposal dropped, not applied")
	// ErrTimeout says the request did not finish in time. A write may have
	// applied.
	ErrTimeout = errors.New("raftkv: timed out, a write may have applied")
	// ErrStopped says the store stopped before the request finished. A
	// write may have applied.
	ErrStopped = errors.New("raftkv: store stopped, a write may have applied")
	// ErrUnreachable says the store could not be reached: the request was
	// not delivered, so it was not executed. Client-side transports return
	// it.
	ErrUnreachable = errors.New("raftkv: store unreachable, not executed")
	// ErrInvalid says a request is malformed (an empty or reserved key, no
	// ops, no client id), or a membership change makes no sense (adding a
	// store that already holds a peer, removing the last one). It was not
	// executed.
	ErrInvalid = errors.New("raftkv: invalid request")
	// ErrConfChangeInProgress says a membership change was refused
	// because the region has another one that has not applied yet (raft
	// allows one at a time, and turns the refused one into an empty
	// entry). It was not executed; try again once the other applied.
	ErrConfChangeInProgress = errors.New("raftkv: another membership change of the region is in progress, not applied")
	// ErrPeerRemoved says the store's peer of the region was removed from
	// the region (and destroyed) while the request waited on it. A write
	// may have applied: the region lives on on other stores.
	ErrPeerRemoved = errors.New("raftkv: the store's peer was removed from the region, a write may have applied")
)

// Errors of a request the state machine applied and failed (see "Results
// of a write"): nothing of it was written, and a retry gets the same
// error. Unlike the others, their texts are Redis's own replies, word for
// word, because these are Redis's errors: the RESP front end shows them
// to Redis clients as they are.
var (
	// ErrNotInteger: an IncrBy found a value that is not a decimal int64.
	ErrNotInteger = errors.New("ERR value is not an integer or out of range")
	// ErrOverflow: an IncrBy's sum would leave int64.
	ErrOverflow = errors.New("ERR increment or decrement would overflow")
	// ErrTooLarge: an Append would make a value longer than its limit.
	ErrTooLarge = errors.New("ERR string exceeds maximum allowed size")
)

// ResponseError returns the error a Response failed with (ErrNotInteger,
// ErrOverflow or ErrTooLarge, wrapped with the failing op's index and
// key), or nil if its request applied. ops are the request's ops, to name
// the key; nil is fine.
func ResponseError(resp *raftkvpb.Response, ops []*raftkvpb.Op) error {
	var err error
	switch resp.GetError() {
	case raftkvpb.Response_None:
		return nil
	case raftkvpb.Response_NotInteger:
		err = ErrNotInteger
	case raftkvpb.Response_Overflow:
		err = ErrOverflow
	case raftkvpb.Response_TooLarge:
		err = ErrTooLarge
	default:
		return fmt.Errorf("raftkv: request failed with unknown error %v", resp.GetError())
	}
	if i := int(resp.GetFailedOp()); i < len(ops) {
		return fmt.Errorf("%w (op %d, key %q)", err, i, ops[i].GetKey())
	}
	return err
}

// Result returns the result of op i of an applied request, or an empty
// OpResult if resp has none for it (a request applied before results
// were recorded, retried: see the store's session format).
func Result(resp *raftkvpb.Response, i int) *raftkvpb.OpResult {
	if rs := resp.GetResults(); i < len(rs) {
		return rs[i]
	}
	return &raftkvpb.OpResult{}
}

// NotExecuted reports whether err tells for sure that a write did not
// apply, so that a client may give up on it without losing track of the
// outcome.
func NotExecuted(err error) bool {
	return errors.Is(err, ErrNotLeader) || errors.Is(err, ErrProposalDropped) ||
		errors.Is(err, ErrUnreachable) || errors.Is(err, ErrInvalid) ||
		errors.Is(err, ErrConfChangeInProgress)
}

// ReservedPrefix starts the user keys raftkv keeps for itself (client
// sessions, see the store package). They live in the region's data so
// that snapshots carry them; clients may not write or read them.
const ReservedPrefix byte = 0x00

// CheckKey returns an ErrInvalid error if key is empty or reserved.
func CheckKey(key []byte) error {
	if len(key) == 0 {
		return fmt.Errorf("%w: empty key", ErrInvalid)
	}
	if key[0] == ReservedPrefix {
		return fmt.Errorf("%w: key %q starts with the reserved byte 0x00", ErrInvalid, key)
	}
	return nil
}
