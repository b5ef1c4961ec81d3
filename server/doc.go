// Package server is kvs's RESP2 front end: it lets redis-cli,
// redis-benchmark and any Redis client (go-redis is tested) store strings
// in a kvs engine.
//
// # Layers
//
//	client ──RESP2──► conn (framer, redcon parse, command table) ──► Backend ──► kvs.Engine
//
// A connection goroutine reads into its own buffer, frames whole commands
// (the framer checks every "*N" and "$N" header first: see Limits), lets
// github.com/tidwall/redcon split each command into arguments without
// copying, runs the command and appends the reply with redcon's encoders.
// Inline (telnet) lines are split by the server itself, in place, with
// Redis's quoting rules ("..." with \xHH escapes, '...'); an unbalanced
// quote is "-ERR Protocol error: unbalanced quotes in request" and closes
// the connection. Replies of a pipeline are written together once no
// further complete command is buffered, or earlier when they pass 64 KiB.
// Consecutive plain SETs of a pipeline are queued and written as one
// Backend.MSet (Config.PipelineBatch, at most 64 by default): one engine
// batch, so one commit and, under group or always, one fsync. Any other
// command, the end of the buffered commands, or a protocol error writes
// the queue first, so every command sees the SETs before it and every
// SET's +OK (or the batch's error) comes in order, after its write.
//
// Commands reach storage only through the Backend interface. The local
// backend (NewEngineBackend) wraps a kvs.Engine; a raft-replicated store
// will implement the same interface. Backend speaks in operations, not
// callbacks: SET NX/XX/GET, GETSET, INCR and APPEND travel as an Update
// value that a replicated backend can append to its log and apply in its
// state machine, while the local backend applies it under a per-key lock.
//
// # Durability
//
// Each write is acknowledged after kvs.Engine's Put or Write returns, with
// kvs.WriteOptions{Sync: mode != SyncNone}:
//   - SyncNone: no fsync; a crash may lose recent writes (never a write
//     acknowledged under another mode). Shutdown still closes the engine,
//     which syncs it, so a clean shutdown loses nothing.
//   - SyncGroup: fsync before the reply; concurrent writers from many
//     connections share fsyncs through the engine's group commit.
//   - SyncAlways: fsync before the reply, one per write; the caller opens
//     the engine with kvs.Options.DisableGroupCommit.
//
// MSET is one kvs.Batch: all of it or none of it, also across a crash.
//
// NB: under SyncGroup and SyncAlways a write can become visible to other
// clients' reads before its fsync completes (the lsm engine publishes a
// write and then syncs it; the writer's own reply waits for the fsync).
// So a client may read a value that a crash right then would lose, unlike
// Redis with appendfsync always, where a write is in the AOF before any
// client can read it.
//
// # Limits and their errors
//
//   - A bulk longer than MaxBulkBytes (512 MiB), an argument count over
//     MaxArgs, or any malformed header: "-ERR Protocol error: ..." and the
//     connection is closed, before anything of the command is buffered.
//   - An argument longer than both MaxKeyBytes and MaxValueBytes (but
//     within MaxBulkBytes): never buffered. The framer rewrites its header
//     to an empty bulk and drops its bytes as they arrive, then the
//     command fails with "-ERR argument too large: N bytes, the limit is K
//     for keys and V for values"; the connection stays usable. So a client
//     streaming a huge value costs the server one read buffer, not the
//     value.
//   - A key over MaxKeyBytes ("-ERR key too large ..."), a value over
//     MaxValueBytes ("-ERR value too large ..."), an empty key: an error,
//     the connection stays usable.
//   - One command longer than MaxQueryBytes (64 MiB, or more when
//     MaxValueBytes needs it): "-ERR max query buffer length exceeded" and
//     the connection is closed, like Redis's client-query-buffer-limit.
//     A connection's input buffer holds at most one partial command plus
//     one read, so it stays below twice MaxQueryBytes, however long a
//     pipeline is.
//   - An inline (telnet) command line over 64 KiB: protocol error, closed.
//   - Before AUTH (when a password is set), as in Redis since
//     CVE-2021-32675: more than 10 arguments is "-ERR Protocol error:
//     unauthenticated multibulk length", a bulk over 16 KiB "-ERR
//     Protocol error: unauthenticated bulk length", and the connection is
//     closed; so an unauthenticated client cannot make the server buffer
//     MaxQueryBytes.
//   - MaxReplyBytes (256 MiB) bounds what one reply holds in memory: an
//     MGET whose values pass it fails with "-ERR reply too large ...",
//     and a SCAN call stops early, returning a cursor, once its keys
//     reach it.
//   - MaxClients connected: a new connection gets "-ERR max number of
//     clients reached" and is closed.
//   - IdleTimeout: a client silent that long is closed.
//   - WriteTimeout (IdleTimeout when set, else 30 s): a client that does
//     not read its replies within it is closed; once shutdown has begun,
//     within a second.
//
// # Compatibility
//
// RESP2 only: HELLO is an unknown command, so clients that try RESP3
// (go-redis v9 does) fall back to RESP2. Strings only, no TTL: SET's EX,
// PX, EXAT, PXAT and KEEPTTL fail with "ERR TTL options are not supported
// by kvs". Only database 0 exists (SELECT 0). Keys cannot be empty (the
// engines reject them). Unknown commands and wrong arity get Redis's exact
// texts and never close the connection. INFO reports redis_version 7.0.0
// so that tools pick RESP2-era features; its keyspace line uses the
// engine's live key count (an estimate for lsm), while DBSIZE counts keys
// exactly with a scan, O(keys).
//
// SCAN returns keys in key order. Its cursor is a decimal number, as
// clients expect, that names a server-side entry holding the next key to
// visit; "0" starts and ends a scan. A key present for the whole scan is
// returned exactly once, whatever is written between calls. The server
// keeps at most 4096 cursors (16 MiB of keys) and forgets the least
// recently used first; a call that resumes a cursor moves it to the front
// of that line, so about one cursor per scan in progress stays live and
// one client's long scan does not evict another's. A forgotten or unknown
// cursor gets "ERR invalid cursor". MATCH is Redis's byte-wise
// glob (*, ?, [a-z], [^...], \ escapes); COUNT is the number of keys
// examined per call, as in Redis.
//
// # Concurrency
//
// Each connection has one goroutine; commands of one connection run in
// order. Single-key reads (GET, STRLEN) and SCAN take no lock; MGET and
// EXISTS read-lock their keys' stripes (below, in ascending order), so
// they never see half of an MSET or a multi-key DEL. Every write
// of a key takes that key's stripe of 1024 mutexes in the engine backend:
// INCR, APPEND and the conditional SETs read and write under it, and
// plain SET, MSET and DEL take it too, so that a SET can never fall
// between an INCR's read and write and be overwritten by a stale result.
// Multi-key writes lock their stripes in ascending order. A replicated
// backend needs no stripes: its leader orders all writes in its log, and
// it serves a multi-key read at one applied index.
//
// Accept errors other than a closed listener (EMFILE, ECONNABORTED, ...)
// are retried after a pause doubling from 5 ms to 1 s, with a warning at
// most every 10 s; Serve warns at start when MaxClients is above the soft
// RLIMIT_NOFILE less 128.
//
// Shutdown stops accepting, lets each connection finish the commands it
// has read and write their replies (each write within a second), closes
// the connections and then the backend (closing, and so syncing, the
// engine). SHUTDOWN from a client
// does the same; Done tells the process.
//
// # Observability
//
// Registry holds per-command counts, errors and latency histograms,
// connection counts, bytes in and out, and the engine's kvs.Stats as
// gauges read at scrape time. With Config.HTTPAddr set the server also
// serves /metrics, /debug/pprof/ and a status page at / showing the
// engine's levels or segments. It does not serve /debug/pprof/cmdline,
// which would show the command line and any password on it. AUTH
// compares SHA-256 digests in constant time, so its timing tells nothing
// of the password, not even its length.
//
// # Example
//
//	e, err := kvs.Open("bitcask", dir, nil)
//	...
//	s, err := server.New(server.NewEngineBackend("bitcask", e, server.SyncGroup), server.Config{})
//	...
//	go func() { <-sigterm; s.Shutdown(context.Background()) }()
//	err = s.ListenAndServe() // nil after a clean shutdown
package server
