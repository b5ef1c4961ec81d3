package wal

import (
	"fmt"
	"io"
	"sync"
	"sync/atomic"

	"github.com/kvs-lab/kvs"
	"github.com/kvs-lab/kvs/internal/vfs"
)

// Writer appends records to one log file. It is safe for concurrent use:
// appends are serialized in the order their callers take its mutex, and
// concurrent callers waiting for durability share fsyncs (group commit,
// see WaitDurable).
//
// Records are gathered in memory and handed to the file in one Write when
// a block's worth (32 KiB) has gathered, and whenever a sync, Flush or
// Close needs them there: one system call per small record would cost
// more than encoding it. A record survives a crash of the process once it
// has been handed to the file (the page cache holds it), and a crash of
// the machine once a Sync, SyncRecord or WaitDurable covering it returns.
// Records lost in a crash are always a suffix of those appended.
//
// Errors are sticky: after a failed write or fsync every later call
// (WriteRecord, SyncRecord, WaitDurable, Sync, Close) returns the first
// error. After a failed fsync the kernel may have dropped the dirty pages
// it could not write, so a retried fsync that succeeds proves nothing; a
// failed write may have left part of a record in the file. Either way the
// log can no longer promise durability, and the engine must stop
// acknowledging writes and start a new log after recovery.
type Writer struct {
	f      vfs.File
	logNum uint64

	// mu guards the append state: size, pending, err and closing. Lock
	// order: syncMu, then mu.
	mu      sync.Mutex
	size    int64  // bytes appended: handed to f, then pending
	pending []byte // encoded bytes not yet handed to f
	err     error  // sticky failure, nil while healthy
	closing bool   // Close has begun: no more appends

	// syncMu guards the group commit state. syncCond is signalled when a
	// leader's fsync ends.
	syncMu   sync.Mutex
	syncCond sync.Cond
	syncing  bool  // a leader is running an fsync
	synced   int64 // bytes known durable
	closed   bool  // the file is closed

	records      atomic.Int64
	payloadBytes atomic.Int64
	syncs        atomic.Int64
}

// NewWriter returns a Writer that appends to f, which must be empty and
// open for writing at offset 0: a log is written once, from its start, and
// never appended to after a restart (recovery starts a new log).
//
// logNum is the log's number, which the engine also puts in the file's
// name; every fragment carries its low 32 bits so that a Reader given the
// same number never takes bytes of another log (an older file reused or
// preallocated under this name) for records of this one.
func NewWriter(f vfs.File, logNum uint64) *Writer {
	w := &Writer{f: f, logNum: logNum}
	w.syncCond.L = &w.syncMu
	return w
}

// WriterStats counts what a Writer has done.
type WriterStats struct {
	Records      int64 // records appended
	PayloadBytes int64 // record bytes appended, without framing
	Bytes        int64 // bytes appended to the file: payload, headers and block padding
	Syncs        int64 // fsyncs run, each covering one or more records
}

// Stats returns the Writer's counters. It is safe to call at any time.
func (w *Writer) Stats() WriterStats {
	return WriterStats{
		Records:      w.records.Load(),
		PayloadBytes: w.payloadBytes.Load(),
		Bytes:        w.Size(),
		Syncs:        w.syncs.Load(),
	}
}

// Size returns the number of bytes appended to the log so far: the
// offset at which the next record's framing begins.
func (w *Writer) Size() int64 {
	w.mu.Lock()
	defer w.mu.Unlock()
	return w.size
}

// WriteRecord appends p as one record and returns end, the log's size
// just after it; pass end to WaitDurable to wait until the record is
// durable. p may be reused once WriteRecord returns. WriteRecord does not
// fsync.
//
// Errors: the sticky error after an earlier failure; an error wrapping
// kvs.ErrClosed after Close; the file's write error (which then sticks).
func (w *Writer) WriteRecord(p []byte) (end int64, err error) {
	w.mu.Lock()
	defer w.mu.Unlock()
	if w.err != nil {
		return 0, w.err
	}
	if w.closing {
		return 0, fmt.Errorf("kvs/wal: write log %d: %w", w.logNum, kvs.ErrClosed)
	}
	n := len(w.pending)
	w.pending = w.encode(w.pending, p)
	w.size += int64(len(w.pending) - n)
	w.records.Add(1)
	w.payloadBytes.Add(int64(len(p)))
	if len(w.pending) >= BlockSize {
		if err := w.flushLocked(); err != nil {
			return 0, err
		}
	}
	return w.size, nil
}

// Flush hands the records gathered in memory to the file, without an
// fsync: after it returns they survive a crash of the process.
func (w *Writer) Flush() error {
	w.mu.Lock()
	defer w.mu.Unlock()
	return w.flushLocked()
}

// flushLocked writes w.pending to the file. mu is held.
func (w *Writer) flushLocked() error {
	if w.err != nil {
		return w.err
	}
	if len(w.pending) == 0 {
		return nil
	}
	n, err := w.f.Write(w.pending)
	if err == nil && n < len(w.pending) {
		err = io.ErrShortWrite
	}
	if err != nil {
		// NB: the file may now end in part of a record. Nothing more is
		// appended after it, so a Reader finds it as a torn tail.
		w.err = fmt.Errorf("kvs/wal: write log %d at offset %d: %w", w.logNum, w.size-int64(len(w.pending)), err)
		return w.err
	}
	if cap(w.pending) <= maxKeptBuffer {
		w.pending = w.pending[:0]
	} else {
		w.pending = nil
	}
	return nil
}

// maxKeptBuffer is the largest pending buffer a Writer keeps between
// writes, so that one huge record does not pin its memory.
const maxKeptBuffer = 1 << 20

// encode appends to dst the fragments of record p, starting at log offset
// w.size, with the zero padding of a block tail too short for a header
// in front of any fragment that would not fit.
func (w *Writer) encode(dst, p []byte) []byte {
	logNum := logNumBits(w.logNum)
	blockOff := int(w.size % BlockSize)
	first := true
	for {
		if left := BlockSize - blockOff; left < HeaderSize {
			dst = append(dst, zeros[:left]...)
			blockOff = 0
		}
		n := min(len(p), BlockSize-blockOff-HeaderSize)
		last := n == len(p)
		var typ fragmentType
		switch {
		case first && last:
			typ = typeFull
		case first:
			typ = typeFirst
		case last:
			typ = typeLast
		default:
			typ = typeMiddle
		}
		dst = appendFragment(dst, typ, logNum, p[:n])
		blockOff = (blockOff + HeaderSize + n) % BlockSize
		p = p[n:]
		first = false
		if last {
			return dst
		}
	}
}

// zeros pads block tails.
var zeros [HeaderSize]byte

// SyncRecord appends p as one record, as WriteRecord does, and returns
// once it is durable, sharing the fsync with concurrent callers. Its
// errors are those of WriteRecord and WaitDurable.
func (w *Writer) SyncRecord(p []byte) (end int64, err error) {
	end, err = w.WriteRecord(p)
	if err != nil {
		return 0, err
	}
	return end, w.WaitDurable(end)
}

// Sync returns once every record appended so far is durable, sharing the
// fsync with concurrent callers. Its errors are those of WaitDurable.
func (w *Writer) Sync() error {
	return w.WaitDurable(w.Size())
}

// SyncUnshared makes the first end bytes of the log durable (end is what
// WriteRecord returned) with an fsync of its own: it waits for an fsync in
// progress to end, then runs one for this caller alone, even when the one
// it waited for already covered end. It is the opposite of group commit,
// for engines told to fsync each synced write by itself
// (kvs.Options.DisableGroupCommit) and for measuring what group commit
// saves. On a closed log it returns nil when Close made end durable.
// Errors are those of WaitDurable.
func (w *Writer) SyncUnshared(end int64) error {
	w.syncMu.Lock()
	defer w.syncMu.Unlock()
	for w.syncing {
		w.syncCond.Wait()
	}
	if err := w.failure(); err != nil {
		return err
	}
	if w.closed {
		// NB: an engine that rotated to a new log closed this one, which
		// synced every record in it.
		if w.synced >= end {
			return nil
		}
		return fmt.Errorf("kvs/wal: sync log %d: %w", w.logNum, kvs.ErrClosed)
	}
	return w.leadSync()
}

// leadSync runs one fsync as the leader: without syncMu, so that other
// callers can queue behind it, then publishes what it covered and wakes
// them. syncMu is held on entry and on return, and no fsync is running.
func (w *Writer) leadSync() error {
	w.syncing = true
	w.syncMu.Unlock()
	target, err := w.syncFile()
	w.syncMu.Lock()
	w.syncing = false
	if err == nil && target > w.synced {
		w.synced = target
	}
	w.syncCond.Broadcast()
	return err
}

// WaitDurable returns once the first end bytes of the log are durable
// (end is what WriteRecord returned). It is the group commit: the first
// caller to find no fsync running becomes the leader, notes how far the
// log reaches at that moment, fsyncs, and publishes that offset, waking
// every caller it covered. Callers arriving while an fsync runs wait for
// it; those it did not cover (they appended after it began) elect the next
// leader among themselves, whose one fsync covers them all. So N
// concurrent synced appends cost about two fsyncs, not N.
//
// Errors: the sticky error after a failure, even when end was covered
// before it (the engine treats any error on a write as "may have
// applied"); the fsync's error, which then sticks; an error wrapping
// kvs.ErrClosed after Close when end is not durable; an error when end
// lies beyond the log's size.
func (w *Writer) WaitDurable(end int64) error {
	w.syncMu.Lock()
	defer w.syncMu.Unlock()
	if size := w.Size(); end > size {
		// NB: without this check no fsync could ever cover end, and the
		// loop below would fsync forever.
		if w.closed {
			return fmt.Errorf("kvs/wal: sync log %d: %w", w.logNum, kvs.ErrClosed)
		}
		return fmt.Errorf("kvs/wal: wait for offset %d of log %d, which holds %d bytes", end, w.logNum, size)
	}
	for {
		if err := w.failure(); err != nil {
			return err
		}
		if w.synced >= end {
			return nil
		}
		if w.closed {
			return fmt.Errorf("kvs/wal: sync log %d: %w", w.logNum, kvs.ErrClosed)
		}
		if w.syncing {
			w.syncCond.Wait()
			continue
		}
		if err := w.leadSync(); err != nil {
			return err
		}
	}
}

// syncFile hands the pending records to the file, fsyncs it and returns
// the log size it made durable: the size when the fsync began, since every
// byte appended before then was handed to the file before it. syncMu is
// not held.
func (w *Writer) syncFile() (int64, error) {
	w.mu.Lock()
	err := w.flushLocked()
	target := w.size
	w.mu.Unlock()
	if err != nil {
		return 0, err
	}
	if err := w.f.Sync(); err != nil {
		w.mu.Lock()
		if w.err == nil {
			w.err = fmt.Errorf("kvs/wal: sync log %d: %w", w.logNum, err)
		}
		err = w.err
		w.mu.Unlock()
		return 0, err
	}
	w.syncs.Add(1)
	return target, nil
}

// failure returns the sticky error, or nil.
func (w *Writer) failure() error {
	w.mu.Lock()
	defer w.mu.Unlock()
	return w.err
}

// Close makes every appended record durable (unless the Writer already
// failed) and closes the file. Appends racing with Close either finish
// before it and are covered, or fail with kvs.ErrClosed. Close returns the
// sticky error if the Writer failed, else the error of the final fsync
// or of closing the file; a second Close returns an error wrapping
// kvs.ErrClosed.
func (w *Writer) Close() error {
	w.mu.Lock()
	if w.closing {
		w.mu.Unlock()
		return fmt.Errorf("kvs/wal: close log %d: %w", w.logNum, kvs.ErrClosed)
	}
	w.closing = true
	end := w.size
	w.mu.Unlock()

	err := w.WaitDurable(end)
	// Wait out a leader's fsync before closing the file under it.
	w.syncMu.Lock()
	for w.syncing {
		w.syncCond.Wait()
	}
	w.closed = true
	w.syncMu.Unlock()

	if cerr := w.f.Close(); err == nil && cerr != nil {
		err = fmt.Errorf("kvs/wal: close log %d: %w", w.logNum, cerr)
	}
	return err
}
