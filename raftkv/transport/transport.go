// Package transport carries raft traffic between the stores of a raftkv
// cluster. It defines the Transport a store sends through and the Handler
// a store receives with, and an in-process Network that connects stores
// inside one test binary and can drop, delay, duplicate and reorder
// messages, partition stores into groups and cut a store off.
//
// Two kinds of traffic flow between stores, as in the Raft gRPC service of
// package raftkvpb: batches of raft messages (every message a store's loop
// produced for one destination store in one round, all regions together),
// and snapshot streams (a header carrying the MsgSnap, the region's data
// in chunks, a footer). Snapshots get their own stream so that megabytes
// of region data never queue ahead of heartbeats.
//
// Messages are best effort, like UDP: a Send that returns nil may still
// be lost, and raft's retries deal with it. A Send error means the
// destination is known to be unreachable; the store then calls
// RawNode.ReportUnreachable so the leader stops pipelining to it. A
// snapshot stream reports success only once the receiver accepted the
// whole stream; the store reports the outcome with RawNode.ReportSnapshot.
//
// A gRPC implementation (one Send stream per destination store, a
// Snapshot stream per snapshot, reconnect with backoff) satisfies the same
// interface; it comes with the `kvs node` process.
package transport

import (
	"context"

	"github.com/kvs-lab/kvs/raftkv/raftkvpb"
)

// Handler receives what other stores send. A store implements it. Both
// methods may be called from many goroutines at once and must not block
// for long: a store queues the work for its loop.
type Handler interface {
	// HandleRaft takes a batch of raft messages from another store. The
	// handler owns the batch.
	HandleRaft(batch *raftkvpb.RaftMessageBatch)
	// HandleSnapshot takes one complete snapshot stream: a header (whose
	// message is the MsgSnap), data chunks, a footer. It returns an error
	// if the stream is unusable (cut, out of order, of an unknown region);
	// the sender then reports the snapshot as failed. The handler owns
	// the chunks.
	HandleSnapshot(chunks []*raftkvpb.SnapshotChunk) error
}

// Transport sends one store's raft traffic to the other stores, by store
// id. Implementations are safe for concurrent use.
type Transport interface {
	// Send sends batch to store to without waiting for delivery. The
	// transport owns the batch once Send is called. nil does not mean
	// delivered; an error means the destination is unreachable now and
	// the batch was dropped.
	Send(to uint64, batch *raftkvpb.RaftMessageBatch) error
	// SendSnapshot streams one snapshot to store to: write is called once
	// with a send function that transmits one chunk; it returns when the
	// receiver has accepted or rejected the stream, or ctx ends. nil means
	// the receiver accepted the whole stream.
	SendSnapshot(ctx context.Context, to uint64, write func(send func(*raftkvpb.SnapshotChunk) error) error) error
}
