// Package lsm is kvs engine 2, a log-structured merge tree built from the
// memtable, wal, sstable and compaction packages. It is being assembled
// piece by piece (issue 3); this package so far holds the MANIFEST's
// version edits: the atomic changes to the set of tables that flushes and
// compactions make, and how replaying them rebuilds the table set.
package lsm
