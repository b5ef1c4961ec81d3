// Package base holds what the LSM tree's building blocks share: the
// internal key (a user key with a sequence number and a kind) and the
// internal iterator interface that memtables, sstables and merging
// iterators implement.
//
// # Internal keys
//
// Every entry the LSM tree stores is keyed by an internal key:
//
//	+----------------+-------------------------------------+
//	| user key bytes | trailer: seq << 8 | kind (u64, LE)  |
//	+----------------+-------------------------------------+
//
// Internal keys order by user key ascending, then by trailer descending,
// so for one user key the newest version comes first. A reader at snapshot
// sequence number s seeks to the user key and takes the first entry with
// seq <= s. Kinds are KindDelete (0) and KindSet (1), the same numbers as kvs.Kind.
package base
