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
	// proposal tag) and waits until it applied or failed. See the package
	// comment for what an error means.
	Write(ctx context.Context, req *raftkvpb.Request) error
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
