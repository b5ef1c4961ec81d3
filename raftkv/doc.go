// Package raftkv is kvs's replicated key-value store: regions of the key
// space, each replicated by a Raft group (go.etcd.io/raft/v3) on several
// stores, over the kvs engines. This package holds only this overview;
// the code lives in its sub-packages:
//
//	raftkvpb     protobuf messages: regions, raft states, raft messages, snapshot chunks, client requests
//	raftstorage  raft.Storage for one region peer over the store's engine (two-phase Update)
//	store        a Store: one engine, many region peers, one loop goroutine
//	transport    the Transport stores talk through; an in-process Network for tests
//	api          the Service a store offers clients, and the errors crossing it
//	client       the Go client: leader hints, retries, idempotent writes
//
// Step 1 (issue 6) runs one region covering the whole key space on three
// stores. Everything is shaped for many regions: a store keeps a map of
// peers, every key and message carries its region id.
//
// # How a write travels
//
//  1. client.Client.Put builds a raftkvpb.Request{client_id, seq, ops} and
//     sends it to the store it believes leads (store.Store.Write). A
//     follower answers NotLeader with the leader's store id; the client
//     follows the hint. A redirect means the write was not executed.
//  2. The leader's loop tags the request with its store id and a proposal
//     id and calls RawNode.Propose; raft appends the entry to its log.
//  3. In the next Ready the leader writes the entry (and its hard state)
//     to its engine with one synced batch, then sends MsgApp to the
//     followers. Each follower does the same: persist, then acknowledge.
//  4. When a majority (the leader included) has the entry on disk, the
//     leader advances its commit index (Raft §5.3, §5.4.2: only entries of
//     the leader's own term are committed by counting replicas).
//  5. Every replica applies committed entries in log order: the data
//     writes, the client's session (last seq) and the applied index go
//     into one engine batch. The leader's loop finds its proposal id in
//     the applied entry and answers the waiting Write.
//
// # Ready ordering, and why
//
// The store loop handles all peers' Readies together (the TiKV raftstore
// pattern): every peer's snapshot, entries and hard state go into ONE
// kvs.Batch and ONE synced engine Write; only then do the raftstorage
// Updates commit (raft's view of its Storage changes only once it is
// durable), then the messages go out, then committed entries apply, then
// RawNode.Advance. Persisting before sending is what Raft's safety rests
// on: a vote (§5.2) or an append acknowledgement (§5.3) is a promise about
// the disk, and a store that crashes after promising must still hold what
// it promised, or two leaders can be elected in one term and a committed
// entry can be lost. etcd raft's Ready contract says the same: HardState
// and Entries must be saved before Messages are sent. One batch for all
// peers makes it one fsync per round however many regions a store hosts.
//
// # Reads
//
// Get and Scan are linearizable through ReadIndex (Raft dissertation
// §6.4): the leader records its commit index, confirms with a round of
// heartbeats that a majority still follows it, and serves the read once
// its applied index reaches the recorded one. A leader that was deposed
// without knowing it cannot get that confirmation, so it never answers
// from stale state. The alternative, a leader lease, skips the round but
// trusts clocks: it is only safe with CheckQuorum (a leader steps down
// when it has not heard from a majority for an election timeout) and
// bounded clock drift; a paused or slow-clocked old leader would serve
// stale reads. We use ReadIndex; TestDeposedLeaderServesNoStaleRead stops
// the old leader's clock to show the difference.
//
// # Idempotent writes
//
// A client may not know whether a write applied (a timeout, a lost
// reply, a crash of the leader). It retries with the same client_id and
// seq. The state machine keeps, per client, the last seq it applied,
// stored as a reserved data key (prefix 0x00, see api.ReservedPrefix) in
// the same batch as the write and the applied index, and skips a request
// whose seq is not above it: a retried write applies at most once, also
// across restarts and snapshots (the session is region data, so a
// snapshot carries it). A client sends one write at a time. Sessions are
// never expired yet, and all sessions live in the region holding key
// 0x00: step 2's split must give them a per-region home.
//
// # Log GC and snapshots
//
// After applying, a peer whose log holds more than
// Config.RaftLogGCThreshold applied entries truncates it
// (raftstorage.Update.CompactTo) locally, without a log command: each
// replica decides for itself, which is safe because a peer only drops
// entries it has applied. A leader keeps the entries a follower close
// behind still needs; a follower further behind, or down, gets a
// snapshot instead (Raft §7): raft asks raftstorage.Storage.Snapshot,
// which pins an engine snapshot with the region's apply state and data at
// one index; the store streams it (header, data chunks, footer) through
// Transport.SendSnapshot in its own goroutine and reports the outcome with
// RawNode.ReportSnapshot. The receiver checks the whole stream before raft
// sees the MsgSnap, and when raft hands the snapshot back in a Ready, the
// region's data (raftstorage.ApplySnapshotData) and the raft bookkeeping
// (Update.ApplySnapshot) go into that Ready's one batch: a crash leaves
// the old state or the new one, never a mix.
//
// # Known traps and where they are handled
//
//   - Persist HardState and entries before sending: handleReadies writes
//     and syncs, commits the Updates, and only then sends (above).
//     TestCrashRestart/crash=powerLoss keeps only synced bytes at a crash
//     and fails (raft itself panics on a lost commit) if the order breaks.
//   - Set Config.Applied on restart: store.openPeer passes the stored
//     applied index, so raft does not hand back entries whose effect is
//     already in the engine (applying a delete twice is harmless, but a
//     replayed write below a later one is not).
//   - Apply every committed conf change, an empty one included (leaving a
//     joint configuration): store.apply calls RawNode.ApplyConfChange for
//     each EntryConfChange/EntryConfChangeV2 entry and stores the
//     resulting ConfState with the applied index. A conf change raft
//     refused arrives as an empty normal entry and is skipped like the
//     leader's empty entry. (Proposing conf changes comes with step 1's
//     membership work; the apply side is ready.)
//   - Never reuse node ids: peer ids are allocated once and kept even
//     after removal (raftkvpb.Peer); the tests number peers apart from
//     stores so that a mix-up shows.
//   - Proposals can be dropped silently: followers refuse proposals
//     (DisableProposalForwarding) with NotLeader instead of forwarding
//     them into the void; a proposal whose entry another leader
//     overwrote fails with api.ErrProposalDropped (its index applied with
//     another term); anything else that goes wrong times out, and the
//     client retries idempotently.
//   - Lease reads are only safe with CheckQuorum: we read through
//     ReadIndex, and run with CheckQuorum and PreVote on anyway (a
//     partitioned store rejoining does not depose a healthy leader).
//
// # Tests
//
// raftkv/store's tests follow the TinyKV Project 2 suite over the
// in-process transport with real engines (bitcask and lsm each): basic,
// concurrent clients, an unreliable network, partitions with the leader
// in the minority, crash and restart (from disk, and with a power cut),
// snapshot catch-up after log GC, and all of it together. Each records
// the clients' history and checks it with porcupine; a violation writes
// porcupine's HTML visualisation under os.TempDir and names the file.
// `go test -short ./raftkv/...` runs them at CI scale;
// `go test ./raftkv/store -raftkv.long` (or KVS_RAFT_LONG=1) runs them ten
// times longer.
package raftkv
