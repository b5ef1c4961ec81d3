// Package lsm is kvs engine 2, a log-structured merge tree built from the
// memtable, wal, sstable and compaction packages, registered with kvs as
// "lsm". It follows LevelDB's design (and pebble's vocabulary):
//
//	writes ──► WAL (NNNNNN.log) ──► mutable memtable
//	                                     │ full: rotate (new memtable, new WAL)
//	                                     ▼
//	                               immutable memtables ──flush──► L0 tables (overlapping)
//	                                                                  │ compaction
//	                                                                  ▼
//	                                                      L1 … L6 (one sorted run each)
//
//	MANIFEST-NNNNNN: a log of version edits, one per flush or compaction;
//	CURRENT names the MANIFEST in use.
//
// Files (docs/formats/ gives the bytes): ENGINE ("lsm"), LOCK, CURRENT,
// MANIFEST-NNNNNN (version_edit.go, manifest.go), NNNNNN.log (WAL, package
// wal; each record an encoded kvs.Batch), NNNNNN.sst (package sstable).
// One counter numbers every file.
//
// # Write path (write.go)
//
// Under commitMu a writer makes room for its whole batch in the mutable
// memtable (summing memtable.MaxNodeSize; rotating to a new memtable and
// WAL when it is full, after syncing the old WAL whole), assigns the batch
// consecutive sequence numbers, appends it to the WAL as one record, adds
// its entries to the memtable and only then publishes its last sequence
// number, so readers never see half a batch. A synced writer then waits in
// wal.Writer.WaitDurable outside the lock, sharing one fsync with the
// writers waiting beside it (group commit). Writers stall while
// MaxImmutableMemtables memtables wait for their flush or L0 holds
// L0StopTrigger tables, and are delayed a millisecond from
// L0SlowdownTrigger tables. Any I/O error on the WAL, a flush, a
// compaction or the MANIFEST fails the engine: writes return
// kvs.ErrFailed until it is reopened.
//
// # Read path (read.go)
//
// A read takes a reference on the current readState and the visible
// sequence number together (under db.mu). Get looks in the memtables, the
// L0 tables newest first, then the one table per deeper level whose range
// holds the key, skipping a table whose bloom filter rules the key out
// (counted in Stats.FilterSkips; the tables read are Stats.DiskReads); the
// first version found is the newest. NewIter merges an iterator per memtable and
// per table (mergingIter) and hides invisible, shadowed and deleted
// versions (dbIter); an iterator holds its read state until it is
// closed, so the tables it reads are not deleted under it. A snapshot is
// a registered sequence number that reads the current read state: it pins
// no memtable or table, and compactions keep the versions it sees.
//
// # Flush and compaction (flush.go, compact.go)
//
// Two background goroutines work side by side: one flushes (flushMu,
// shared with Compact), the other compacts (jobMu, likewise), so a writer
// waiting for a full memtable to be flushed never waits behind a long
// compaction. They take turns only to append their version edit and
// install the version it makes (manifestMu). A flush writes the oldest immutable
// memtable to an L0 table, syncs it and its directory, then appends a
// version edit adding the table and advancing the log number past its WAL;
// the WAL is deleted once the edit is durable. A compaction merges its
// input tables, keeping per user key the newest version and the newest
// version each open snapshot sees, dropping deletions every snapshot sees
// when no deeper level holds the key; it cuts its output at
// TargetFileSize (or sooner, to bound overlap with the next level) and
// replaces inputs by outputs in one edit (a trivial move edits only).
// Replaced tables are deleted when the last readState holding them goes,
// or at Close, whichever comes first.
// With Options.Policy "tiered" the picker is compaction.Tiered instead:
// it merges consecutive sorted runs in L0 into one table that takes their
// place, dropping a deletion only when no older run or deeper level holds
// the key.
// The MANIFEST gains an edit per flush and compaction; once it is larger
// than 64 KiB and four times the snapshot it began with, the next edit is
// followed by a new MANIFEST holding a snapshot of the tree (logEdit), so
// it stays in proportion to the number of tables.
//
// # Stats (stats.go)
//
// Stats defines the figures an LSM tree cannot simply count: BytesOnDisk
// lists the directory; IndexBytes is memtable arena bytes in use + index
// and filter blocks of open tables + block cache bytes in use; LiveKeys
// and LiveBytes are estimated from entry counts (sets − tombstones),
// exact after a full Compact with no snapshot open.
//
// # Recovery (recover.go)
//
// Open replays the MANIFEST, replays the WALs it does not cover into
// memtables (only the newest WAL may end in a torn tail; damage elsewhere
// is a *kvs.CorruptionError), flushes them to L0, writes a new MANIFEST
// and switches CURRENT to it, then deletes the old MANIFEST, the replayed
// WALs and tables no version holds, and starts a new WAL.
//
// # Use
//
// The LSM knobs (memtable size, stall triggers, table and compaction
// options) are in kvs.Options.LSM, which Open (and so kvs.Open("lsm", ...))
// maps onto this package's Options with OptionsFrom. OpenWith takes an
// Options directly, for the few knobs only it has:
//
//	e, err := kvs.Open("lsm", dir, &kvs.Options{LSM: kvs.LSMOptions{MemtableBytes: 1 << 20}}) // import _ "github.com/kvs-lab/kvs/lsm"
//	...
//	db, err := lsm.OpenWith(dir, &kvs.Options{Logger: entry}, &lsm.Options{DisableAutomaticCompactions: true})
//	...
//	err = db.Put([]byte("k"), []byte("v"), kvs.Sync)
//	err = db.Compact() // flush, then push everything to the bottom level
//	fmt.Println(db.Stats().Levels)
//
// A DB is safe for concurrent use; DB's documentation gives its locks and
// the order they are taken in.
package lsm
