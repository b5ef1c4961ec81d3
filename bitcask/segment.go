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

	// Counters, guarded by DB.mu (the active segment's bytes also by
	// DB.writeMu, which every change to it holds).
	bytes       int64 // file size
	liveBytes   int64 // bytes of records the keydir points at
	records     int64
	liveRecords int64
	hintBytes   int64 // size of the hint file; 0 when there is none
}

func newSegment(id uint64, path string, f vfs.File) *segment {
	s := &segment{id: id, path: path, f: f}
	s.refs.Store(1) // the segment table's
	return s
}

// ref adds a reference. The caller must already hold one or hold DB.mu
// while the segment is in the table, so the count cannot be zero.
func (s *segment) ref() { s.refs.Add(1) }

// closeFile closes the file handle once.
func (s *segment) closeFile() {
	s.closeOnce.Do(func() { s.f.Close() })
}

// readRecord reads the record that e points at into buf (grown as needed)
// and checks it: the checksum, the length and, when key is not nil, that
// it holds key. A damaged record is a *kvs.CorruptionError naming the file
// and the record's offset.
func (s *segment) readRecord(buf []byte, e entry, key []byte) (rec []byte, h recordHeader, value []byte, err error) {
	rec = grow(buf, int(e.size))
	n, err := s.f.ReadAt(rec, e.offset)
	if n < len(rec) {
		if err == nil || errors.Is(err, io.EOF) {
			return rec, h, nil, kvs.Corruptf(s.path, e.offset, "%d-byte record runs past the end of the file", e.size)
		}
		return rec, h, nil, fmt.Errorf("kvs/bitcask: read %s at offset %d: %w", s.path, e.offset, err)
	}
	h, k, v, derr := decodeRecord(rec)
	switch {
	case derr != nil:
		return rec, h, nil, kvs.Corruptf(s.path, e.offset, "%v", derr)
	case h.tombstone():
		return rec, h, nil, kvs.Corruptf(s.path, e.offset, "keydir points at a tombstone")
	case key != nil && string(k) != string(key):
		return rec, h, nil, kvs.Corruptf(s.path, e.offset, "record holds key %q, the keydir expected %q", k, key)
	}
	return rec, h, v, nil
}

// pinSet is a set of segments held by a snapshot or an iterator, so that
// the files it may read outlive a merge that replaces them.
type pinSet map[uint64]*segment
