// Package raftstorage keeps a region peer's raft log and states in a
// store's kvs engine and serves them to etcd raft as a raft.Storage.
//
// A store runs one engine and hosts many region peers. Each peer opens a
// Storage on the shared engine with Open(engine, regionID); all of a
// peer's keys carry its region id, so peers never see each other's log.
//
// # Key layout
//
// Local keys (per peer, never user data) start with 0x01; user data keys
// start with 'z' (0x7a), so every local key sorts before every data key
// and a region's data is the contiguous range ['z'+start, 'z'+end).
// Integers are 8-byte big-endian.
//
//	+------+-----+--------------+------+-----------+
//	| 0x01 | 'r' | regionID (8) | 0x01 | index (8) |  raft log entry    -> raftpb.Entry
//	+------+-----+--------------+------+-----------+
//	| 0x01 | 'r' | regionID (8) | 0x02 |               raft local state  -> raftkvpb.RaftLocalState
//	| 0x01 | 'r' | regionID (8) | 0x03 |               apply state       -> raftkvpb.RaftApplyState
//	| 0x01 | 's' | regionID (8) |                      region state      -> raftkvpb.RegionLocalState
//	| 0x01 | 'i' |                                     store identity    -> raftkvpb.StoreIdent
//	| 'z'  | user key ...       |                      data              -> the user's value
//
// The store identity (StoreIdentKey) is the store's, not a peer's: the
// cluster id and store id the engine belongs to, written by store.New the
// first time a store starts on the engine and checked at every later
// start.
//
// Values are protobuf (package raftkvpb, and raftpb for entries). See
// docs/formats/raftkv-keys.md for worked examples. DataKey, UserKey and
// DataRange convert between user and engine keys.
//
// # States
//
// RaftLocalState holds the HardState and the last index and term; it is
// written with the entries, in the batch that persists a Ready.
// RaftApplyState holds the applied index, the truncated index and term
// (log GC and snapshots) and the ConfState as of the applied index; it is
// written with the data writes of the entries it accounts for, so data and
// applied index never disagree on disk. RegionLocalState holds the region.
// FirstIndex is truncated+1 and LastIndex is the last index, so the log on
// disk is exactly the keys (truncated, last].
//
// A peer with no stored state is uninitialized: empty log, empty
// ConfState; it waits for a snapshot from the leader. A new region is
// bootstrapped with Update.Bootstrap at InitIndex/InitTerm (5/5), the way
// TinyKV does, not with RawNode.Bootstrap's conf change entries: a log
// that starts above zero forces every peer that was not bootstrapped to
// be caught up by a snapshot, which carries the region's data and
// metadata; that is how peers added later, or created for a region born
// from a split, get their data.
//
// A peer removed from its region is destroyed (Update.Destroy): its log,
// raft and apply states and data go, and its region state becomes a
// Tombstone whose region's next_peer_id says which peer ids of the region
// are dead on this store. A newer peer of the region, created over the
// tombstone and waiting for its snapshot, may have voted: Open accepts a
// hard state (without log) beside a tombstone.
//
// # Writing: two phases
//
// Writes go through an Update: NewUpdate(wb) copies the states; Append,
// SetHardState, SetApplied, SetConfState, SetRegion, CompactTo,
// ApplySnapshot, Bootstrap and Destroy add engine writes to wb and change the copy; the caller
// writes wb (one engine.Write with Sync for all peers of the store per
// round); only then does Update.Commit install the copy. If the write
// fails, the Update is dropped and the Storage still matches the engine:
// raft never sees entries or states that are not durable. See Update for
// the store loop's order of calls.
//
// # Snapshots
//
// Snapshot (raft.Storage) takes an engine snapshot and reads the apply
// state and region from it; the raft metadata (index = applied index) and
// the data streamed by RegionSnapshot.WriteChunks come from that same
// engine snapshot, so they always agree. A receiver feeds the stream to
// ApplySnapshotData and records Update.ApplySnapshot, in one batch.
//
// # Errors and concurrency
//
// Open checks the states (they decode, commit <= last, truncated <=
// applied <= commit) and that the log has no hole; damage is reported as
// a *CorruptionError naming region and key, matching kvs.ErrCorruption.
// Entries and Term return raft.ErrCompacted and raft.ErrUnavailable as
// raft.Storage specifies. Storage methods are safe for concurrent use;
// an Update is not.
package raftstorage
