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
//	step the raft messages and snapshots that arrived
//	report unreachable stores and finished snapshots to raft
//	propose the new writes, start ReadIndex for the new reads
//	handle the Readies of all peers:
//	    one batch: every peer's snapshot data, entries, hard state
//	    one engine Write with Sync, then commit the raftstorage Updates
//	    send the messages, batched per destination store (MsgSnap: a stream)
//	    apply committed entries: data + sessions + applied index, one batch per peer
//	    note ReadStates; Advance
//	    serve reads whose index has applied; log GC past the threshold
//
// # Requests
//
// Store implements api.Service. A write goes to the region's leader only
// (a follower answers *api.NotLeaderError with the leader's store id); the
// waiting caller is answered when the entry applies, with
// api.ErrProposalDropped if another leader overwrote it, and with
// api.ErrTimeout when its context ends first (the write may still apply).
// Reads wait for their ReadIndex and then read the engine, which the loop
// alone writes, so it holds exactly the state as of the applied index.
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
// New finds the store's regions in the engine (their region states) and
// restarts their peers from what the engine holds. Stop fails the waiting
// requests with api.ErrStopped and waits for snapshot streams in flight.
// A failed engine write stops the loop (Err reports it): raft cannot go
// on from state that may not be on disk.
package store
