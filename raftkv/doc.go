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
// stores; its membership changes through raft (store.Store.AddPeer,
// RemovePeer, TransferLeader). Everything is shaped for many regions: a store keeps a map of
// peers, every key and message carries its region id.
//
// # How a write travels
//
//  1. client.Client.Put builds a raftkvpb.Request{client_id, seq, ops} and
//     sends it to the store it believes leads (store.Store.Write). A
//     follower answers NotLeader with the leader's store id; the client
//     follows the hint. A redirect means the write was not executed.
//  2. The leader's loop tags the request with its store id, its boot id
//     (random per start) and a proposal id and calls RawNode.Propose;
//     raft appends the entry to its log, and the loop notes the index and
//     term the entry got.
//  3. In the next Ready the leader writes the entry (and its hard state)
//     to its engine with one synced batch, then sends MsgApp to the
//     followers. Each follower does the same: persist, then acknowledge.
//  4. When a majority (the leader included) has the entry on disk, the
//     leader advances its commit index (Raft §5.3, §5.4.2: only entries of
//     the leader's own term are committed by counting replicas).
//  5. Every replica applies committed entries in log order: the data
//     writes, the client's session (last seq and the request's
//     Response) and the applied index go into one engine batch. The
//     leader's loop finds its tag in the applied entry and answers the
//     waiting Write with the Response, if the entry is the
//     one its proposal was appended as (same index and term): an entry of
//     an earlier life of the store, uncommitted through a restart and
//     committed in a later term, can carry the same proposal id, and must
//     not acknowledge a write whose own entry has not committed.
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
// # Read-modify-write
//
// IncrBy, Append and the conditional Puts (raftkvpb.Op) read the key and
// write what they compute from it. They run inside the state machine, at
// the entry's place in the log, on every replica alike: reading a value
// on the leader and proposing the result would lose any write committed
// in between. The apply reads the engine plus an overlay of what earlier
// entries of the same apply batch wrote (the batch is not yet visible to
// the engine), and a request with a failing op (IncrBy on a non-integer
// or past int64, Append past its limit) writes nothing, on every replica.
// See store/apply.go.
//
// # Idempotent writes
//
// A client may not know whether a write applied (a timeout, a lost
// reply, a crash of the leader). It retries with the same client_id and
// seq. The state machine keeps, per client, the last seq it applied and
// that request's Response, stored as a reserved data key (prefix 0x00,
// see api.ReservedPrefix) in the same batch as the write and the applied
// index. A request whose seq is the session's gets the recorded Response
// and applies nothing; one below it applies nothing and gets an
// outcome-unknown error (its Response is gone, but its client has moved
// on). So a retried write applies at most once, and a retried IncrBy
// returns the value of its one application (Raft dissertation §6.3),
// also across restarts and snapshots (the session is region data, so a
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
//     TestCrashRestart/crash=powerLoss cuts the power in the middle of a
//     round (as the round sends, after its synced write), keeps only synced
//     bytes, and fails (raft panics on a lost commit, which stops the
//     store with an error) if the order breaks.
//   - Set Config.Applied on restart: store.openPeer passes the stored
//     applied index, so raft does not hand back entries whose effect is
//     already in the engine (applying a delete twice is harmless, but a
//     replayed write below a later one is not).
//   - Apply every committed conf change, an empty one included (leaving a
//     joint configuration): store.apply calls RawNode.ApplyConfChange for
//     each EntryConfChange/EntryConfChangeV2 entry and stores the
//     resulting ConfState, and the region with its new peer list and
//     conf_ver, in the batch of the applied index.
//   - A conf change raft refused arrives as an empty entry: raft allows
//     one unapplied conf change at a time and, instead of returning an
//     error, appends an empty normal entry in place of a second one. The
//     applier skips it like a new leader's empty entry; the proposer
//     (store.Store.AddPeer, RemovePeer) sees that no entry carrying its
//     tag was appended in the Ready after the proposal and answers
//     api.ErrConfChangeInProgress (not executed) instead of waiting
//     forever.
//   - Never reuse node ids: a raft node id names one peer's votes and log
//     forever; a store removed and added back under its old id could
//     vote twice in a term or be sent entries it claims to hold. New ids
//     come from the region's next_peer_id (raftkvpb.Region), which only
//     grows and is applied, persisted and snapshotted with the region, so
//     every replica agrees on it; a store removed and re-added gets a new
//     id and a fresh snapshot. A destroyed peer leaves a tombstone whose
//     next_peer_id makes the store ignore messages to the dead id. The
//     tests number peers apart from stores so that a mix-up shows.
//   - The removed leader: raft leaves a leader that applied its own
//     removal leading a group it is not in unless
//     raft.Config.StepDownOnRemoval is set (off by default); we set it,
//     and the store destroys the peer right after the apply anyway. Its
//     last Ready's messages, which carry the removal's commit, go out
//     before it applies the change; the others elect a new leader (and
//     commit the entry again if they missed that). Removing the leader
//     of a two-peer region is refused: the remaining peer may never learn
//     that the removal committed and cannot win an election without the
//     removed peer's vote (transfer the leadership first).
//   - The peer removed while cut off never applies its removal, and no
//     member sends to it again: it would campaign forever. A member that
//     gets a message from a peer its region no longer lists, carrying an
//     older region epoch, answers with a tombstone message and the
//     store destroys that peer (store.answerRemovedPeer).
//   - A snapshot older than the last conf change does not list a peer it
//     added, and raft refuses it on the new peer (and the leader sends it
//     again): raftstorage regenerates a cached snapshot whose ConfState is
//     not the current one.
//   - Proposals can be dropped silently: followers refuse proposals
//     (DisableProposalForwarding) with NotLeader instead of forwarding
//     them into the void; a proposal whose entry another leader
//     overwrote fails with api.ErrProposalDropped (its index applied with
//     another term); anything else that goes wrong times out, and the
//     client retries idempotently.
//   - Messages from other stores are input, and raft trusts them: it
//     panics on a MsgApp whose entries do not follow its index. The store
//     checks every message's shape (type, term, raft's from and to against
//     the wrapper's peers, consecutive entries, snapshot metadata) and
//     sender (a member, or a leader's or candidate's message to a peer
//     that has not heard of it) before stepping it, and a snapshot
//     stream's header against its message and the peer's region epoch;
//     invalid ones are dropped and counted (Store.InvalidMessages). A
//     panic in Step that the checks miss stops the store with an error
//     rather than the process.
//   - An engine run as another store would vote and acknowledge with that
//     store's log: two leaders in one term. The first start of a store
//     records its cluster id and store id in the engine
//     (raftkvpb.StoreIdent), and New refuses an engine of another store or
//     cluster.
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
// snapshot catch-up after log GC, and all of it together; then
// membership: a store added under load (caught up by snapshot), a
// follower and the leader removed, leader transfers, a store removed and
// re-added (new peer id), refused conf changes, and membership changes
// amid crashes and an unreliable network. Each records
// the clients' history and checks it with porcupine; a violation writes
// porcupine's HTML visualisation under os.TempDir and names the file.
// `go test -short ./raftkv/...` runs them at CI scale;
// `go test ./raftkv/store -raftkv.long` (or KVS_RAFT_LONG=1) runs them ten
// times longer.
package raftkv
