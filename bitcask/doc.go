// Package bitcask is kvs engine 1: a log-structured hash table after the
// Bitcask paper (Justin Sheehy and David Smith, "Bitcask: A Log-Structured
// Hash Table for Fast Key/Value Data", Basho, 2010). It registers itself
// with kvs as "bitcask".
//
// # Design
//
// Every write is appended to the active segment; an in-memory keydir maps
// each live key to the file, offset and size of its newest record, so a
// Get costs one lookup and one read: by default a copy out of a read-only
// memory map of the segment, or one pread with
// Options.ReadMode "pread" (segment.go, readRecord; a fault in the
// map becomes an error, not a crash). Segments are sealed at
// Options.Bitcask.MaxSegmentBytes; a merge (Compact) rewrites the live
// records of the sealed segments into new segments with hint files and
// deletes the old ones.
//
//	                 keydir (hash map or btree)
//	   key ──► { file id, offset, size, seq }
//	                    │
//	                    ▼
//	+-------------+-------------+-------------+-----------------------+
//	| 000001.data | 000002.data | 000003.data | 000004.data (active)  |◄── appends
//	| 000001.hint |   sealed    |   sealed    |                       |
//	+-------------+-------------+-------------+-----------------------+
//
//	segment:  | header 16 B | record | record | ... |
//	record:   | crc32c u32 | type u8 | seq uvarint | klen uvarint | vlen uvarint | key | value |
//	                       <------------------- covered by the crc ------------------------->
//	hint:     | header 16 B | entry | entry | ... | count u64 | crc32c u32 | "kvsbhend" |
//	entry:    | seq delta zigzag varint | klen uvarint | size uvarint | key |
//
// A hint entry stores no offset: a merge output holds exactly the records
// its hint lists, back to back, so the sizes give the offsets. One crc32c
// in the trailer covers the whole hint file, which Open uses whole or not
// at all.
//
// docs/formats/bitcask.md gives every byte; record.go, hint.go and
// merge.go (the DONE file) implement it.
//
// # Durability
//
// A batch is appended as consecutive records, all but the last flagged
// "batch continues"; recovery drops a batch whose last record is missing,
// so a batch survives a crash whole or not at all. Appends gather in the
// active segment's 64 KiB buffer and reach the file in one write(2) when
// it fills or before an fsync, so an unsynced write may be lost with the
// process (a suffix of the log, never a record in the middle); Gets read
// the buffered records from memory. With WriteOptions.Sync a
// write returns once it is fsynced; concurrent synced writers share one
// fsync (group commit, see waitDurable) unless
// Options.DisableGroupCommit. A segment is fsynced before the next one is
// created, so the log is durable as a prefix: a synced write implies every
// earlier write is durable. After a failed write or fsync the engine
// refuses writes (kvs.ErrFailed) until reopened: the page cache can no
// longer be trusted to hold what the failed fsync was to make durable.
//
// # Recovery
//
// Open finishes or discards an interrupted merge (merge/DONE is its commit
// point; the outputs of a merge that never committed still carry a
// .merging suffix and are deleted), loads every segment (from its hint
// file when it has a valid one), lets the record with the highest
// sequence number win for each key, truncates a torn tail of the newest
// segment (logging a warning) and reports damage anywhere else as a
// *kvs.CorruptionError naming file and offset. Damage in the newest
// segment counts as a torn tail only if no whole, checksummed record
// follows it anywhere in the file (a resync scan; see DB.isTornTail): a
// flipped bit in a length field must not pass for a crash and cut off
// acknowledged writes. It deletes every segment left without a record
// (such as the active segment of an Open that wrote nothing), then starts
// a new active segment.
//
// # Keydir and ordered scans
//
// Options.Bitcask.Index picks the keydir:
//
//	"hash"  (default) a Go map, the paper's design: O(1) Get, 55 to 110
//	        bytes per key plus the key, as the map doubles. NewIter scans
//	        the whole map for the keys in range, O(n), and sorts them,
//	        O(k log k); NewSnapshot copies the map, O(n).
//	"btree" a google/btree: O(log n) Get, 63 (keys inserted at random) to
//	        89 (keys inserted in order) bytes per key plus the key.
//	        NewIter and NewSnapshot clone it in O(1) (copy-on-write).
//
// Stats.IndexBytes reports an estimate (hashIndex.memBytes and
// btreeIndex.memBytes give the formulas); BenchmarkIndexMemory measures
// the real figure next to it.
//
// # Limits
//
// Every segment's file stays open while the engine is open (pread reads
// use it; there is no file-handle cache), and in mmap mode each segment
// also holds a map of up to MaxSegmentBytes of address space: one file
// descriptor per
// segment, about bytes on disk / Options.Bitcask.MaxSegmentBytes. A merge
// opens its outputs before it closes its inputs, and a snapshot or
// iterator keeps the inputs it pins open, so the count can double for a
// while. 1 TiB in the default 64 MiB segments is 16384 descriptors, far
// above the usual ulimit -n of 1024: size MaxSegmentBytes, or the limit,
// accordingly. The keydir holds every live key in memory (see below), as
// in the paper.
//
// # Concurrency
//
// A DB is safe for concurrent use. Writers serialize on one mutex while
// they append; the keydir has a read-write lock that writers hold only to
// update it and readers only to look a key up, so Gets read files in
// parallel with each other and with appends. Merges run one at a time and
// copy without blocking writers; only their install step takes the keydir
// lock. Snapshots and iterators pin the segments they may read, so a merge
// deletes a replaced segment only when the last pin drops. Iterators are
// not safe for concurrent use; snapshots are, except for Close.
//
// # Example
//
//	db, err := bitcask.Open("/tmp/db", &kvs.Options{})
//	if err != nil {
//		return err
//	}
//	defer db.Close()
//	if err := db.Put([]byte("k"), []byte("v"), kvs.Sync); err != nil {
//		return err
//	}
//	v, err := db.Get([]byte("k")) // v == "v"
//
// Most callers open it by name instead: kvs.Open("bitcask", dir, opts).
package bitcask
