// Package sstable writes and reads sorted string tables: immutable files
// of internal keys (base.InternalKey) and values, sorted by
// base.InternalCompare, which the LSM tree produces when it flushes a
// memtable or compacts tables. docs/formats/sstable.md gives the byte
// layout with a worked example; this comment is its summary.
//
// # File layout
//
//	+--------------+-----+--------------+--------+-------+------------+--------+
//	| data block 0 | ... | data block n | filter | index | properties | footer |
//	+--------------+-----+--------------+--------+-------+------------+--------+
//	 each block is followed by a 5-byte trailer      fixed 64 bytes ^
//
//	block trailer: compression type (u8: 0 none, 1 snappy) | CRC-32C (u32)
//	               of the stored block bytes and the type byte
//
//	footer: index handle | filter handle | properties handle | version (u32)
//	        (each offset u64 + length u64)  | CRC-32C of the preceding 52 bytes (u32)
//	        | magic "kvsSST\x00\x01" (u64)
//
// A block is a sequence of prefix-compressed entries and a restart array:
//
//	entry:  shared (uvarint) | unshared (uvarint) | value length (uvarint)
//	        | key bytes after the shared prefix | value
//	block:  entry... | restart offsets (u32 each) | restart count (u32)
//
// Data block keys are encoded internal keys (user key, then the 8-byte
// trailer seq<<8|kind). The index block has one entry per data block:
// a separator key, >= every key of the block and < every key of the next,
// and the block's handle (offset and length as uvarints). The filter block
// is one bloom filter over the table's user keys (xxhash64, double
// hashing). The properties block maps names ("kvs.num.entries") to
// values. Integers are little-endian.
//
// Each block is compressed with snappy only when that saves at least an
// eighth of its size, and checksummed. Every block read is verified, so a
// damaged file gives a *kvs.CorruptionError naming the file and the
// offset of the damaged block (or of the footer), never wrong data and
// never a panic.
//
// # Use
//
//	f, _ := fs.Create("000007.sst")
//	w := sstable.NewWriter(f, sstable.WriterOptions{})
//	w.Add(base.MakeInternalKey([]byte("apple"), 3, base.KindSet), []byte("red"))
//	props, err := w.Close() // syncs and closes f
//
//	f, _ = fs.Open("000007.sst")
//	r, err := sstable.Open(f, "000007.sst", size, sstable.ReaderOptions{Cache: cache})
//	v, kind, found, err := r.Get([]byte("apple"), snapshotSeq)
//	it, err := r.NewIter(lower, upper)
//	for ok := it.First(); ok; ok = it.Next() { ... it.Key(), it.Value() ... }
//	err = it.Close()
//
// # Concurrency
//
// A Writer is used by one goroutine. A Reader is safe for concurrent use
// (Get, NewIter, Properties); each Iterator belongs to one goroutine. A
// Cache is safe for concurrent use and may be shared by every Reader of a
// database.
package sstable
