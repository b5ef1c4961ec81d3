// Package grpctransport carries raft traffic between the stores of a
// raftkv cluster over gRPC: a Transport (the sending side, a
// transport.Transport) and a Server (the receiving side, the raftkvpb.Raft
// service, delivering to a transport.Handler). Each store runs both: its
// Transport dials the other stores' Servers.
//
// # Streams
//
// Raft messages flow on one long-lived Raft.Send stream per destination
// store, opened on the first Send to it; each stream message is a
// RaftMessageBatch (what one round of the store loop produced for that
// store, split if it exceeds Config.MaxMsgBytes). A snapshot gets a
// Raft.Snapshot stream of its own (header, data chunks, footer), so that
// megabytes of region data never queue ahead of heartbeats; the receiver
// collects the whole stream, at most Config.MaxSnapshotBytes, hands it to
// Handler.HandleSnapshot, and answers Done or an error status, which
// SendSnapshot returns. Both streams of a destination share one HTTP/2
// connection (grpc.ClientConn).
//
// # Backpressure and drops
//
// Send never blocks: it puts the batch in the destination's queue
// (Config.QueueLen batches) and returns. A writer goroutine per
// destination feeds the queue into the stream. When the queue is full
// (the stream is slower than the store loop, or stuck on a dead
// connection) the batch is dropped and counted (Stats.DroppedFull), as a
// lost packet would be: raft retries appends and heartbeats go on. The
// writer merges the batches waiting in the queue into one stream message
// (up to half of MaxMsgBytes), so a stream that fell behind catches up
// with fewer, larger messages. Send
// returns an error (wrapping transport.ErrUnreachable) only when the
// destination is known to be down: its last stream failed and a
// reconnect is pending. The store then calls RawNode.ReportUnreachable, so
// the leader stops pipelining appends into the void. Batches still queued
// when a stream fails are dropped too.
//
// # Reconnect
//
// After a stream fails (the connection broke, the receiver stopped, the
// handshake was refused) the writer waits Config.BackoffBase (100 ms),
// doubling after each further failure up to Config.BackoffMax (5 s), with
// ±20% jitter, then resolves the address again and opens a new stream. A
// stream that got through its handshake resets the backoff. gRPC's own
// reconnect backoff uses the same bounds. Keepalive pings
// (Config.KeepaliveTime, KeepaliveTimeout; both sides ping) notice a dead peer
// whose TCP connection stays open; a half-open connection is then
// declared dead within about 15 s, and until then the queue fills and
// drops.
//
// # The handshake: cluster and store ids
//
// Whoever opens a stream sends its cluster id, its store id and the
// destination store id as gRPC metadata (kvs-cluster-id, kvs-from-store,
// kvs-to-store). The Server refuses, before reading a single message:
// another cluster (codes.FailedPrecondition, the message names both
// cluster ids: no data from another cluster is accepted), a stream meant
// for another store id (FailedPrecondition: the sender's peer list has a
// wrong address), and a sender its Resolver does not know
// (codes.PermissionDenied). A refusal is logged once per sender and
// reason, never per message, and counted in ServerStats.StreamsRefused.
// An accepted stream is answered with a header naming the receiver's
// store and cluster ids, and the sender checks them in turn, so neither
// side sends raft data to a store of another cluster or to the wrong
// store. (The store also checks the cluster id of every message.)
//
// # Message sizes
//
// Config.MaxMsgBytes (default 64 MiB) is gRPC's send and receive bound on
// both sides. Raft appends are bounded by raft's MaxSizePerMsg (1 MiB by
// default) and snapshot chunks are about 1 MiB, so one message fits with
// room to spare; a round's batch that does not fit is split, and a single
// raft message larger than the bound is dropped (Stats.DroppedTooLarge).
//
// # Not done
//
// There is no TLS and no authentication beyond the ids above: raft
// traffic, region data in snapshots included, crosses the network in
// plaintext, and anyone who can reach the port and knows the ids can
// inject raft messages. Run the stores on a private network or loopback.
//
// # Example
//
//	peers, _ := grpctransport.ParsePeers("1=10.0.0.1:7001,2=10.0.0.2:7001,3=10.0.0.3:7001")
//	cfg := grpctransport.Config{StoreID: 1, ClusterID: 7, Resolver: peers}
//	tr, _ := grpctransport.New(cfg)
//	st, _ := store.New(store.Config{StoreID: 1, ClusterID: 7, Engine: eng, Transport: tr})
//	srv, _ := grpctransport.NewServer(cfg, st)
//	g := grpc.NewServer(srv.ServerOptions()...)
//	srv.Register(g)
//	lis, _ := net.Listen("tcp", ":7001")
//	go g.Serve(lis)
//	// shutting down: g.Stop(); st.Stop(); tr.Close()
package grpctransport
