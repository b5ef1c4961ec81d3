package bitcask

import (
	"errors"
	"fmt"
	"io"
	"sync"
	"sync/atomic"

	"github.com/kvs-lab/kvs"
	"github.com/kvs-lab/kvs/internal/vfs"
)

// segment is one data file: the active one, a sealed one, or a merge
// output. Its file handle serves every read; the active segment's handle
// also takes the appends.
//
// Lifetime. refs counts the holders that may still read the file: the
// DB's segment table holds one reference while the segment is live, and
// every Get in flight, snapshot, iterator and group-commit syncer using it
// holds one more. A merge that replaces the segment marks it obsolete and
// drops the table's reference; whoever drops the last one closes the file
// and, the segment being obsolete, deletes it (DB.unref). So a merge never
// deletes a file under a reader.
type segment struct {
	id   uint64
	path string
	f    vfs.File

	refs      atomic.Int32
	obsolete  atomic.Bool // replaced by a merge; delete when unreferenced
	closeOnce sync.Once

	// The active segment gathers appends in pending and hands them to
	// the file in one Write when appendBufferSize bytes have gathered,
	// and before every fsync (flush): a write(2) per 100-byte record
	// cost more than the rest of a Put. flushed is the file's size (read
	// without bufMu by readRecord's fast path, written under it); the
	// records past it are in pending, whole, and readRecord serves them
	// from there. bufMu guards both.
	bufMu   sync.RWMutex
	pending []byte
	flushed atomic.Int64

	// Counters, guarded by DB.mu (the active segment's bytes also by
	// DB.writeMu, which every change to it holds).
	bytes       int64 // file size
	liveBytes   int64 // bytes of records the keydir points at
	records     int64
	liveRecords int64
	hintBytes   int64 // size of the hint file; 0 when there is none

	// mm is a read-only shared map of the file's first len(mm) bytes
	// (Options.ReadMode "mmap"; nil for pread, or when the file
	// cannot be mapped). readRecord copies a record out of it when the
	// record lies wholly in the file (below flushed) and in the map. It is
	// set before the segment is published and removed only when no
	// reference is left (closeFile), so no read can outlive it.
	mm        []byte
	unmapOnce sync.Once
}

func newSegment(id uint64, path string, f vfs.File) *segment {
	s := &segment{id: id, path: path, f: f}
	s.refs.Store(1) // the segment table's
	return s
}

// appendBufferSize is how many bytes of appends the active segment
// gathers before it writes them to the file.
const appendBufferSize = 64 << 10

// setFlushed records the size of a segment's file as found on disk, the
// offset the next append goes to.
func (s *segment) setFlushed(n int64) {
	s.bufMu.Lock()
	s.flushed.Store(n)
	s.bufMu.Unlock()
}

// append adds p to the segment's pending appends and writes them out
// once a buffer's worth has gathered. DB.writeMu is held.
func (s *segment) append(p []byte) error {
	s.bufMu.Lock()
	defer s.bufMu.Unlock()
	s.pending = append(s.pending, p...)
	if len(s.pending) < appendBufferSize {
		return nil
	}
	return s.flushLocked()
}

// flush hands the pending appends to the file (no fsync): after it
// returns, they survive a crash of the process.
func (s *segment) flush() error {
	s.bufMu.Lock()
	defer s.bufMu.Unlock()
	return s.flushLocked()
}

func (s *segment) flushLocked() error {
	if len(s.pending) == 0 {
		return nil
	}
	n, err := s.f.Write(s.pending)
	if err == nil && n < len(s.pending) {
		err = io.ErrShortWrite
	}
	if err != nil {
		// NB: the engine fails now (the caller's db.fail) and appends
		// nothing more. The file may end in part of a record, which
		// recovery cuts as a torn tail; pending stays as it is, so that
		// Gets of the records in it still find them until Close.
		return fmt.Errorf("write %s: %w", s.path, err)
	}
	s.flushed.Add(int64(n))
	if cap(s.pending) > 4*appendBufferSize {
		s.pending = nil
	} else {
		s.pending = s.pending[:0]
	}
	return nil
}

// syncFile flushes the pending appends and fsyncs the file.
func (s *segment) syncFile() error {
	if err := s.flush(); err != nil {
		return err
	}
	if err := s.f.Sync(); err != nil {
		return fmt.Errorf("sync %s: %w", s.path, err)
	}
	return nil
}

// ref adds a reference. The caller must already hold one or hold DB.mu
// while the segment is in the table, so the count cannot be zero.
func (s *segment) ref() { s.refs.Add(1) }

// mapFile maps the first length bytes of the file for readRecord: the
// file's size for a sealed segment, the size it may grow to for the
// active one (the map may run past the end of the file; only bytes below
// flushed are read through it). A file that cannot be mapped is read with
// pread; the error says why, for the caller to log.
func (s *segment) mapFile(length int64) error {
	if length <= 0 {
		return nil
	}
	m, err := vfs.Mmap(s.f, length)
	if err != nil {
		return err
	}
	s.mm = m
	return nil
}

// closeFD closes the file handle once. A map of the file stays valid.
func (s *segment) closeFD() {
	s.closeOnce.Do(func() { s.f.Close() })
}

// closeFile closes the file handle and removes the map, once each: for a
// segment no reader can reach any more (no reference left, or never
// published).
func (s *segment) closeFile() {
	s.closeFD()
	s.unmapOnce.Do(func() {
		// NB: munmap fails only for a range that is not a map; the slice
		// came from mmap, so there is nothing to report.
		_ = vfs.Munmap(s.mm)
	})
}

// readMapped copies len(rec) bytes at off out of the map; a fault while
// reading it is an error naming the file (vfs.CatchFault).
func (s *segment) readMapped(rec []byte, off int64) error {
	if err := vfs.CatchFault(func() { copy(rec, s.mm[off:off+int64(len(rec))]) }); err != nil {
		return fmt.Errorf("kvs/bitcask: read %s at offset %d: %w", s.path, off, err)
	}
	return nil
}

// readRecord reads the record that e points at into buf (grown as needed)
// and checks it: the checksum, the length and, when key is not nil, that
// it holds key. A damaged record is a *kvs.CorruptionError naming the file
// and the record's offset.
func (s *segment) readRecord(buf []byte, e entry, key []byte) (rec []byte, h recordHeader, value []byte, err error) {
	rec = grow(buf, int(e.size))
	// NB: flushed only grows and records are written whole, so a record
	// that starts below it is in the file; only the newest ones need
	// bufMu and the pending buffer.
	if e.offset >= s.flushed.Load() {
		s.bufMu.RLock()
		if off := e.offset - s.flushed.Load(); off >= 0 && off+int64(e.size) <= int64(len(s.pending)) {
			copy(rec, s.pending[off:off+int64(e.size)])
			s.bufMu.RUnlock()
			return decodeRead(s.path, rec, e, key)
		}
		s.bufMu.RUnlock()
	}
	if end := e.offset + int64(e.size); s.mm != nil && end <= int64(len(s.mm)) && end <= s.flushed.Load() {
		if err := s.readMapped(rec, e.offset); err != nil {
			return rec, h, nil, err
		}
		return decodeRead(s.path, rec, e, key)
	}
	n, err := s.f.ReadAt(rec, e.offset)
	if n < len(rec) {
		if err == nil || errors.Is(err, io.EOF) {
			return rec, h, nil, kvs.Corruptf(s.path, e.offset, "%d-byte record runs past the end of the file", e.size)
		}
		return rec, h, nil, fmt.Errorf("kvs/bitcask: read %s at offset %d: %w", s.path, e.offset, err)
	}
	return decodeRead(s.path, rec, e, key)
}

// decodeRead checks the record rec that e pointed at, for readRecord.
func decodeRead(path string, rec []byte, e entry, key []byte) ([]byte, recordHeader, []byte, error) {
	h, k, v, derr := decodeRecord(rec)
	switch {
	case derr != nil:
		return rec, h, nil, kvs.Corruptf(path, e.offset, "%v", derr)
	case h.tombstone():
		return rec, h, nil, kvs.Corruptf(path, e.offset, "keydir points at a tombstone")
	case key != nil && string(k) != string(key):
		return rec, h, nil, kvs.Corruptf(path, e.offset, "record holds key %q, the keydir expected %q", k, key)
	}
	return rec, h, v, nil
}

// pinSet is a set of segments held by a snapshot or an iterator, so that
// the files it may read outlive a merge that replaces them.
type pinSet map[uint64]*segment
