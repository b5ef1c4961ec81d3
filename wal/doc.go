// Package wal is the write-ahead log of the LSM engine: an append-only
// file of records, each a byte slice the engine gives it (an encoded
// kvs.Batch), framed so that a reader finds every record written before
// a crash, stops cleanly where the crash tore the last one, and reports
// damage anywhere else. The format follows the LevelDB log format
// (google/leveldb doc/log_format.md) with a log number in each fragment
// header, as RocksDB's recyclable format has; docs/formats/wal.md gives
// every byte.
//
// # Format
//
// A log is a sequence of 32 KiB blocks (the last may be short). A record
// is stored as one or more fragments; a fragment never crosses a block
// boundary, so a record that does not fit in the rest of a block is split
// into a FIRST fragment, MIDDLE fragments and a LAST fragment. A block
// tail shorter than a header is zero-filled.
//
//	      block 0 (32768 B)                   block 1 (32768 B)            block 2 ...
//	+--------+--------+---------+---+ +---------+----------+---------+ +-----
//	| FULL a | FULL b | FIRST c |pad| | LAST c  | FULL d   | FIRST e | | ...
//	+--------+--------+---------+---+ +---------+----------+---------+ +-----
//
//	fragment:
//	+--------------+------------+---------+----------------+------------------+
//	| checksum u32 | length u16 | type u8 | log number u32 | payload (length) |
//	+--------------+------------+---------+----------------+------------------+
//	               <----------------- covered by the checksum ---------------->
//
// The checksum is CRC-32C of every byte after it; integers are
// little-endian; types are FULL=1, FIRST=2, MIDDLE=3, LAST=4 (0 is what a
// zero-filled stretch reads as, never a fragment). The log number is the
// low 32 bits of the number the engine names the file by: a fragment left
// over from another log (a reused or preallocated file) never counts as a
// fragment of this one.
//
// # Recovery
//
// A Reader stops at the first fragment that is not a whole, checksummed,
// in-order fragment of this log. If a whole, checksummed fragment of this
// log starts anywhere after that point, the writer wrote past the damage:
// it is corruption in the middle of the log, reported as a
// *kvs.CorruptionError naming the file and the offset; so is a whole
// fragment out of order (a MIDDLE outside a record, say). Otherwise it is
// the torn tail a crash while appending leaves: Next returns io.EOF and
// TornTail says what was dropped. Deciding whether a torn tail is
// acceptable (only in the newest log) is the engine's business.
//
// # Concurrency and durability
//
// A Writer is safe for concurrent use. WriteRecord encodes each record
// under the Writer's mutex into a buffer of records not yet written, so
// records never interleave; the buffer goes to the file in one Write when
// it holds a block's worth (32 KiB), and before every fsync, Flush and
// Close. A record survives a crash of the process once it has been
// written (Flush forces that), and a crash of the machine once an fsync
// covering it returns (Sync, SyncRecord, WaitDurable). Concurrent callers
// waiting for durability share fsyncs (group commit): one leader fsyncs
// on behalf of every record appended before its fsync began. Records lie
// in the log in the order their WriteRecord calls took the mutex, so an
// engine that numbers its batches assigns the numbers and calls
// WriteRecord under one lock of its own, then releases it and waits in
// WaitDurable, where concurrent writers pile up behind one fsync. Errors are
// sticky: after a failed write or fsync every later call fails, so an
// engine never acknowledges a write the log may not hold.
//
// A Reader is for one goroutine and reads a file no Writer is appending
// to.
//
// # Example
//
//	f, err := fs.Create("000007.log")
//	...
//	w := wal.NewWriter(f, 7)
//	if _, err := w.SyncRecord(batch.Repr()); err != nil { // durable when it returns
//		return err // the log is unusable from now on
//	}
//	end, err := w.WriteRecord(other) // not yet durable
//	...
//	err = w.WaitDurable(end) // shares an fsync with concurrent callers
//	...
//	err = w.Close() // syncs, then closes f
//
//	f, err = fs.Open("000007.log")
//	...
//	r := wal.NewReader(f, "000007.log", 7)
//	for {
//		rec, err := r.Next()
//		if err == io.EOF {
//			break
//		}
//		if err != nil {
//			return err // a *kvs.CorruptionError or a read error
//		}
//		apply(rec) // rec is valid until the next call to Next
//	}
//	if t, ok := r.TornTail(); ok {
//		logger.Warnf("dropped torn tail of %d bytes at offset %d: %s", t.Bytes, t.Offset, t.Reason)
//	}
package wal
