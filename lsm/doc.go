// Package lsm is kvs engine 2, a log-structured merge tree built from the
// memtable, wal, sstable and compaction packages. It is being assembled
// piece by piece (issue 3). So far it holds:
//
//   - the MANIFEST (version_edit.go, manifest.go): version edits, the atomic
//     changes to the set of tables that flushes and compactions make; the
//     log they are appended to; CURRENT; and ReadManifest, the replay that
//     rebuilds the table set (docs/formats/manifest.md);
//   - the read path's iterators (merging_iter.go, db_iter.go): mergingIter
//     merges memtable and sstable iterators into one stream of internal
//     keys with a heap, both directions; dbIter turns that stream into a
//     kvs.Iterator at a snapshot sequence number, showing each user key's
//     newest visible version and hiding deletions.
//
// The DB itself (write path, flush, compaction, recovery) comes next; the
// engine is not registered with kvs until it passes the conformance suite.
package lsm
