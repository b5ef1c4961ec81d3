// Package store runs a raftkv store: one process, one kvs engine, a map
// of region peers (etcd raft RawNodes over raftstorage.Storage), and one
// loop goroutine that drives them all. See package raftkv for the write
// path, the read path and the traps this package avoids; this comment
// says how the code is arranged.
//
// # The loop
//
// Everything that touches a peer happens on the loop goroutine. Other
// goroutines (clients calling Write, Get and Scan; the transport calling
// HandleRaft and HandleSnapshot; snapshot senders reporting back) only
// push work into the store's inbox, which never blocks. One round of the
// loop:
//
//	tick every peer (Config.TickInterval, or Store.Tick from the caller)
//	check, then step the raft messages and snapshots that arrived
//	    (several snapshot streams for a peer are kept by index and term)
//	report unreachable stores and finished snapshots to raft
//	propose the new writes, start ReadIndex for the new reads
//	handle the Readies of all peers:
//	    one batch: every peer's snapshot data, entries, hard state
//	    one engine Write, synced if any Ready MustSync (or has a snapshot),
//	    then commit the raftstorage Updates
//	    send the messages, batched per destination store (MsgSnap: a stream)
//	    apply committed entries: data + sessions + applied index, one batch per peer
//	    note ReadStates; Advance
//	    serve reads whose index has applied; log GC past the threshold
//	repeat while a peer has a Ready, at most 8 times, then wake the loop
//	    again if still busy; drop the round's snapshot streams
//
// # Requests
//
// Store implements api.Service. A write goes to the region's leader only
// (a follower answers *api.NotLeaderError with the leader's store id, a
// store without the region one without a hint); the waiting caller is
// answered when the entry applies, with the request's
// raftkvpb.Response (apply.go: read-modify-writes, sessions), with
// api.ErrProposalDropped if another leader overwrote it, and with
// api.ErrTimeout when its context ends first (the write may still apply).
// Reads wait for their ReadIndex and then read the engine, which the loop
// alone writes, so it holds exactly the state as of the applied index.
//
// # Membership
//
// AddPeer, RemovePeer and TransferLeader change a region's membership on
// its leader (membership.go). A change is a ConfChangeV2 with one change
// (no joint consensus) whose context (raftkvpb.ConfChangeContext) names
// the peer and tags the proposal; raft allows one unapplied change at a
// time and turns a second into an empty entry, which the store notices
// after the round's Readies and answers with api.ErrConfChangeInProgress.
// Every replica applies a committed change to raft (ApplyConfChange) and
// to the region (peers, conf_ver+1, next_peer_id) in the batch of its
// applied index.
//
// Peer ids come from the region's next_peer_id, so they are never reused.
// A peer's life on a store:
//
//	created    a raft message from the right cluster names this store and
//	           a peer id the store has not seen die: an uninitialized peer
//	           (no log, no data, no region) that the leader catches up by
//	           snapshot
//	live       bootstrapped, or initialized by that snapshot
//	destroyed  it applied its own removal, or a message names a newer peer
//	           of the region on this store: log, states and data deleted
//	           and a Tombstone region state written, in one synced batch;
//	           the tombstone's next_peer_id keeps messages to the dead id
//	           (and older ones) from creating it again
//
// # Starting and stopping
//
//	eng, _ := kvs.Open("lsm", dir, nil)
//	_ = store.Bootstrap(eng, region) // the first time, on each initial store
//	s, _ := store.New(store.Config{StoreID: 1, Engine: eng, Transport: t})
//	network.Register(1, s) // s is also the transport.Handler
//	...
//	s.Stop()
//	eng.Close()
//
// New checks the engine's store identity (raftkvpb.StoreIdent under
// raftstorage.StoreIdentKey): it records Config.ClusterID and StoreID the
// first time a store starts on the engine and refuses, at every later
// start, an engine recorded for another store or cluster (and a zero
// ClusterID). It finds the store's regions in the engine (their region
// states) and restarts their peers from what the engine holds. Stop fails the waiting
// requests with api.ErrStopped and waits for snapshot streams in flight.
// A failed engine write stops the loop (Err reports it): raft cannot go
// on from state that may not be on disk. So does a panic of raft while
// stepping a message (one the checks of validate.go let through): raft's
// state after it cannot be trusted.
package store
