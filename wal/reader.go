package wal

import (
	"bytes"
	"encoding/binary"
	"errors"
	"fmt"
	"io"

	"github.com/kvs-lab/kvs"
	"github.com/kvs-lab/kvs/internal/vfs"
)

// Reader reads the records of one log file in the order they were
// written. It is not safe for concurrent use.
//
// Next returns io.EOF at the end of the log. How the log ends decides
// what else Next reports (docs/formats/wal.md, "Recovery"):
//
//   - At a clean end (the file ends after a whole record, possibly inside
//     a block's zero padding) there is nothing more to say.
//   - At a torn tail (what a crash while appending leaves: a fragment cut
//     short by the end of the file, a zero-filled rest of the file, a
//     record whose FIRST fragment has no LAST) Next also returns io.EOF,
//     and TornTail describes the bytes it dropped, for the engine to log
//     once.
//   - Damage followed by a whole, checksummed fragment of this log is not
//     a torn tail: the writer wrote past it, so it is corruption in the
//     middle of the log, and Next returns a *kvs.CorruptionError naming
//     the file and the damaged fragment's offset.
type Reader struct {
	f      vfs.File
	name   string
	logNum uint32

	buf      []byte // the current block: the bytes of it the file holds
	blockOff int64  // file offset of buf[0]
	pos      int    // next unread byte of buf
	last     bool   // buf is the file's last block

	rec    []byte // a record being assembled from fragments
	recOff int64  // offset of the first fragment of the record Next returned last
	err    error  // sticky: io.EOF, a corruption or a read error
	torn   TornTail
	tornOK bool
}

// NewReader returns a Reader of the log in f, which must have been
// written by a Writer given the same logNum. name is the file's path, for
// errors. The Reader reads f with ReadAt from offset 0, so f's own offset
// does not matter.
func NewReader(f vfs.File, name string, logNum uint64) *Reader {
	return &Reader{f: f, name: name, logNum: logNumBits(logNum)}
}

// TornTail describes the bytes a Reader dropped at the end of a log.
type TornTail struct {
	// Offset is where the dropped bytes begin: the end of the last whole
	// record (a file truncated to Offset holds exactly the records read).
	Offset int64
	// Bytes is the number of bytes dropped, up to the end of the file.
	Bytes int64
	// Reason says what was found at the first damaged fragment.
	Reason string
}

// TornTail reports whether Next, having returned io.EOF, dropped a torn
// tail, and describes it. ok is false before Next returns io.EOF, at a
// clean end, and after a corruption error.
func (r *Reader) TornTail() (t TornTail, ok bool) {
	return r.torn, r.tornOK
}

// Offset returns the file offset of the first fragment of the record Next
// returned last.
func (r *Reader) Offset() int64 { return r.recOff }

// Next returns the next record. The slice is the Reader's and is valid
// until the next call to Next; copy it to keep it.
//
// Errors: io.EOF at the end of the log, clean or torn (see TornTail); a
// *kvs.CorruptionError for damage in the middle of the log, or for
// fragments out of order; an error wrapping the file's error for a failed
// read. Every error is sticky: later calls return it again.
func (r *Reader) Next() ([]byte, error) {
	if r.err != nil {
		return nil, r.err
	}
	r.rec = r.rec[:0]
	inRecord := false // a FIRST fragment was read and its LAST was not
	var start int64   // offset of the record's FIRST fragment
	for {
		f, d, err := r.nextFragment()
		switch {
		case err == io.EOF:
			if inRecord {
				end := r.blockOff + int64(len(r.buf))
				r.setTorn(start, end, fmt.Sprintf("the record begun at offset %d has no LAST fragment before the end of the file", start))
			}
			r.err = io.EOF
			return nil, r.err
		case err != nil:
			r.err = err
			return nil, r.err
		case d != nil:
			return nil, r.damaged(*d, inRecord, start)
		}
		switch f.typ {
		case typeFull:
			if inRecord {
				return nil, r.corrupt(f.off, "FULL fragment inside the record begun at offset %d", start)
			}
			r.recOff = f.off
			return f.payload, nil
		case typeFirst:
			if inRecord {
				return nil, r.corrupt(f.off, "FIRST fragment inside the record begun at offset %d", start)
			}
			inRecord, start = true, f.off
			r.rec = append(r.rec, f.payload...)
		case typeMiddle, typeLast:
			if !inRecord {
				return nil, r.corrupt(f.off, "%s fragment outside a record", f.typ)
			}
			r.rec = append(r.rec, f.payload...)
			if f.typ == typeLast {
				r.recOff = start
				return r.rec, nil
			}
		}
	}
}

// fragment is a whole, checksummed fragment of this log. payload aliases
// the Reader's block buffer.
type fragment struct {
	typ     fragmentType
	payload []byte
	off     int64
}

// damage is what a Reader found where a fragment should begin but none
// of this log does.
type damage struct {
	off    int64
	reason string
}

// nextFragment returns the next fragment, or the damage found in its
// place, or io.EOF when the file ends where a fragment could begin.
func (r *Reader) nextFragment() (fragment, *damage, error) {
	for {
		if r.pos == len(r.buf) {
			if r.last {
				return fragment{}, nil, io.EOF
			}
			if err := r.loadBlock(r.blockOff + int64(len(r.buf))); err != nil {
				return fragment{}, nil, err
			}
			continue
		}
		off := r.blockOff + int64(r.pos)
		if BlockSize-r.pos < HeaderSize {
			// The block's tail, too short for a header: the writer
			// zero-pads it.
			if !allZero(r.buf[r.pos:]) {
				return fragment{}, &damage{off, "non-zero bytes in the padding at the end of a block"}, nil
			}
			r.pos = len(r.buf)
			continue
		}
		rest := r.buf[r.pos:]
		if len(rest) < HeaderSize {
			return fragment{}, &damage{off, fmt.Sprintf("fragment header cut short by the end of the file (%d of %d bytes)", len(rest), HeaderSize)}, nil
		}
		h := decodeHeader(rest)
		var reason string
		switch {
		case h.typ < typeFull || h.typ > typeLast:
			if allZero(rest[:HeaderSize]) {
				reason = "zero-filled fragment header"
			} else {
				reason = fmt.Sprintf("unknown fragment type %d", h.typ)
			}
		case r.pos+HeaderSize+h.length > BlockSize:
			reason = fmt.Sprintf("fragment length %d runs past the end of its block", h.length)
		case HeaderSize+h.length > len(rest):
			reason = fmt.Sprintf("fragment cut short by the end of the file (%d of %d payload bytes)", len(rest)-HeaderSize, h.length)
		case fragmentChecksum(rest[:HeaderSize+h.length]) != h.checksum:
			reason = "fragment checksum mismatch"
		case h.logNum != r.logNum:
			reason = fmt.Sprintf("fragment of log %d (low 32 bits), not of log %d: stale data", h.logNum, r.logNum)
		}
		if reason != "" {
			return fragment{}, &damage{off, reason}, nil
		}
		r.pos += HeaderSize + h.length
		return fragment{typ: h.typ, payload: rest[HeaderSize : HeaderSize+h.length], off: off}, nil, nil
	}
}

// loadBlock reads the block at off into r.buf.
func (r *Reader) loadBlock(off int64) error {
	if r.buf == nil {
		r.buf = make([]byte, BlockSize)
	}
	r.buf = r.buf[:BlockSize]
	n, err := readAtFull(r.f, r.buf, off)
	if err != nil {
		return fmt.Errorf("kvs/wal: read %s at offset %d: %w", r.name, off, err)
	}
	r.buf, r.blockOff, r.pos, r.last = r.buf[:n], off, 0, n < BlockSize
	return nil
}

// damaged classifies damage d: a torn tail, ending the log with io.EOF,
// or corruption. inRecord and start say whether d interrupts a record
// begun at start, which the torn tail then includes.
//
// The rule: damage is a torn tail if and only if no whole, checksummed
// fragment of this log starts anywhere after its offset. A crash while
// appending leaves a prefix of what was appended, so everything after the
// tear point is missing, zero, or (in a reused file) stale data of an
// older log, none of which is a fragment of this log; while damage in
// the middle of the log is followed by the fragments written after it.
func (r *Reader) damaged(d damage, inRecord bool, start int64) error {
	next, end, err := r.resync(d.off)
	if err != nil {
		r.err = err
		return err
	}
	if next >= 0 {
		r.err = kvs.Corruptf(r.name, d.off, "%s; a whole fragment of this log follows at offset %d, so this is not a torn tail", d.reason, next)
		return r.err
	}
	cut, reason := d.off, d.reason
	if inRecord {
		cut = start
		reason = fmt.Sprintf("%s at offset %d, inside the record begun at offset %d", d.reason, d.off, start)
	}
	r.setTorn(cut, end, reason)
	r.err = io.EOF
	return r.err
}

func (r *Reader) setTorn(cut, end int64, reason string) {
	r.torn = TornTail{Offset: cut, Bytes: end - cut, Reason: reason}
	r.tornOK = true
}

// corrupt makes a sticky *kvs.CorruptionError at off.
func (r *Reader) corrupt(off int64, format string, args ...any) error {
	r.err = kvs.Corruptf(r.name, off, format, args...)
	return r.err
}

// resync looks for the first whole, checksummed fragment of this log
// that starts after off, trying every byte offset to the end of the file:
// after damage nothing says where the next fragment begins. It returns
// that fragment's offset, or -1 and the file's size.
//
// The scan costs one read of the rest of the file: a fragment never
// crosses a block boundary, so each block is searched on its own, and
// the log number rejects nearly every offset before any checksum is
// computed (a random offset matches it once in 2^32).
func (r *Reader) resync(off int64) (next, size int64, err error) {
	pattern := binary.LittleEndian.AppendUint32(nil, r.logNum)
	buf := make([]byte, BlockSize)
	blockOff := off - off%BlockSize
	from := int(off%BlockSize) + 1
	for {
		n, err := readAtFull(r.f, buf, blockOff)
		if err != nil {
			return -1, 0, fmt.Errorf("kvs/wal: read %s at offset %d: %w", r.name, blockOff, err)
		}
		b := buf[:n]
		for i := from; i+HeaderSize <= len(b); i++ {
			// Jump to the next offset whose header would hold this log's
			// number (bytes.Index is much faster than a loop).
			j := bytes.Index(b[i+logNumAt:], pattern)
			if j < 0 {
				break
			}
			if i += j; i+HeaderSize > len(b) {
				break
			}
			h := decodeHeader(b[i:])
			if h.typ < typeFull || h.typ > typeLast || i+HeaderSize+h.length > len(b) {
				continue
			}
			if fragmentChecksum(b[i:i+HeaderSize+h.length]) == h.checksum {
				return blockOff + int64(i), 0, nil
			}
		}
		if n < BlockSize {
			return -1, blockOff + int64(n), nil
		}
		blockOff += BlockSize
		from = 0
	}
}

// readAtFull reads len(b) bytes of f at off, or up to the end of the
// file, and returns how many it read.
func readAtFull(f vfs.File, b []byte, off int64) (int, error) {
	n := 0
	for n < len(b) {
		m, err := f.ReadAt(b[n:], off+int64(n))
		n += m
		switch {
		case errors.Is(err, io.EOF):
			return n, nil
		case err != nil:
			return n, err
		case m == 0:
			return n, io.ErrNoProgress
		}
	}
	return n, nil
}

func allZero(b []byte) bool {
	for _, c := range b {
		if c != 0 {
			return false
		}
	}
	return true
}
