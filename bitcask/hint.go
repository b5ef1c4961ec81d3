package bitcask

import (
	"bufio"
	"encoding/binary"
	"errors"
	"fmt"
	"hash/crc32"
	"io"
	"math"

	"github.com/kvs-lab/kvs"
	"github.com/kvs-lab/kvs/internal/vfs"
)

// This file implements the hint file format (version 2) of
// docs/formats/bitcask.md. Merge writes one hint file per output segment
// so that Open can rebuild the keydir without reading values:
//
//	+--------------------+---------+---------+-----+-----------+----------------+
//	| file header (16 B) | entry 0 | entry 1 | ... | entry n-1 | trailer (20 B) |
//	+--------------------+---------+---------+-----+-----------+----------------+
//
//	entry:
//	+-------------------------+--------------+--------------+-----+
//	| seq delta zigzag varint | klen uvarint | size uvarint | key |
//	+-------------------------+--------------+--------------+-----+
//
//	trailer:
//	+-----------+------------+------------------+
//	| count u64 | crc32c u32 | magic "kvsbhend" |
//	+-----------+------------+------------------+
//
//	crc32c: of every byte from the start of the file through count.
//
// An entry stores no record offset: a merge output holds exactly the
// records its hint lists, in the same order, back to back from the end of
// its header, so entry i's record starts at 16 plus the sizes of entries
// 0 to i-1 (hintWriter.add enforces it). The sequence number is stored as
// its difference from the previous entry's (from 0 for the first), a
// signed varint because merge copies records in roughly, not strictly,
// increasing order; the difference usually takes one byte. There is one
// checksum for the whole file, not one per entry: a hint is loaded whole
// or not at all, so a per-entry checksum would locate damage nobody uses.

const (
	// hintEndMagic ends every complete hint file.
	hintEndMagic = "kvsbhend"
	// hintTrailerLen is the trailer's size: count, crc and magic.
	hintTrailerLen = 8 + 4 + len(hintEndMagic)
)

// maxRecordLen is the largest record a segment can hold.
const maxRecordLen = maxRecordHeaderLen + maxKeyLen + maxValueLen

// errOldHint says a hint file is of format version 1, which kvs no longer
// reads. It is not damage: Open ignores such a hint like a damaged one,
// but says so more quietly.
var errOldHint = errors.New("kvs/bitcask: hint file of format version 1, no longer read")

// hintEntry is one decoded hint entry. key aliases the buffer it was
// decoded from.
type hintEntry struct {
	seq    uint64
	key    []byte
	offset int64 // of the record in the segment, computed from the sizes before it
	size   int64 // of the record
}

// appendHintEntry appends to dst the entry for a record of size bytes
// holding seq and key; prevSeq is the previous entry's sequence number, 0
// for the first entry.
func appendHintEntry(dst []byte, prevSeq, seq uint64, key []byte, size int64) []byte {
	// NB: the difference wraps modulo 2^64 and the reader's sum wraps
	// back, so every pair of sequence numbers round-trips.
	dst = binary.AppendVarint(dst, int64(seq-prevSeq))
	dst = binary.AppendUvarint(dst, uint64(len(key)))
	dst = binary.AppendUvarint(dst, uint64(size))
	return append(dst, key...)
}

// appendHintTrailer appends a hint file's trailer to dst. crc is the
// crc32c of every byte of the file before the trailer, and count the
// number of entries; the stored checksum extends crc over the count.
func appendHintTrailer(dst []byte, crc uint32, count uint64) []byte {
	start := len(dst)
	dst = binary.LittleEndian.AppendUint64(dst, count)
	crc = crc32.Update(crc, crcTable, dst[start:])
	dst = binary.LittleEndian.AppendUint32(dst, crc)
	return append(dst, hintEndMagic...)
}

// hintTrailer is what the end of a hint file says.
type hintTrailer struct {
	found bool   // the file ends with the trailer magic
	count uint64 // the number of entries the writer wrote
	crcOK bool   // the checksum matches the bytes it covers
	start int    // where the trailer starts, which is where the entries end; the file's length when not found
}

// readHintTrailer reads the trailer at the end of b, a whole hint file
// whose header is valid.
func readHintTrailer(b []byte) hintTrailer {
	start := len(b) - hintTrailerLen
	if start < fileHeaderLen || string(b[len(b)-len(hintEndMagic):]) != hintEndMagic {
		return hintTrailer{start: len(b)}
	}
	crcAt := start + 8
	return hintTrailer{
		found: true,
		count: binary.LittleEndian.Uint64(b[start:]),
		crcOK: crc32.Checksum(b[:crcAt], crcTable) == binary.LittleEndian.Uint32(b[crcAt:]),
		start: start,
	}
}

// hintedKeys estimates from the trailers of the hint files how many keys
// loading them will add, so the keydir can be sized once. It is only an
// estimate: a trailer is not checked here (loadHint checks it), so each
// count is capped by what its hint file could hold.
func (db *DB) hintedKeys(hints map[uint64]bool) int {
	const minHintEntry = 4 // seq delta, klen, size and a 1-byte key
	total := 0
	for id := range hints {
		f, err := db.fs.Open(db.path(hintName(id)))
		if err != nil {
			continue
		}
		var tr [hintTrailerLen]byte
		st, err := f.Stat()
		if err == nil && st.Size() >= int64(fileHeaderLen+hintTrailerLen) {
			if _, err := f.ReadAt(tr[:], st.Size()-int64(hintTrailerLen)); err == nil && string(tr[12:]) == hintEndMagic {
				n := binary.LittleEndian.Uint64(tr[:8])
				total += int(min(n, uint64(st.Size()/minHintEntry)))
			}
		}
		f.Close()
	}
	return total
}

// hintDecoder decodes the entries of a hint file in order, working out
// each sequence number from the deltas and each record's offset from the
// sizes before it.
type hintDecoder struct {
	b      []byte // the whole file
	end    int    // where the entries end: the trailer's start, or len(b) without a trailer
	off    int    // where the next entry starts in the hint file
	seq    uint64 // the previous entry's sequence number
	recOff int64  // where the next entry's record starts in the segment
}

func newHintDecoder(b []byte, end int) *hintDecoder {
	return &hintDecoder{b: b, end: end, off: fileHeaderLen, recOff: fileHeaderLen}
}

// next decodes the entry at d.off and moves past it. It returns scanEOF at
// d.end; for an entry that runs past d.end, scanTruncated, and for a field
// no writer produces, scanInvalid, both with the reason and without
// moving.
func (d *hintDecoder) next() (e hintEntry, st scanStatus, reason string) {
	b := d.b[d.off:d.end]
	if len(b) == 0 {
		return e, scanEOF, ""
	}
	delta, w := binary.Varint(b)
	if st, reason := varintStatus(w, "sequence number delta"); st != scanOK {
		return e, st, reason
	}
	pos := w
	klen, w := binary.Uvarint(b[pos:])
	if st, reason := varintStatus(w, "key length"); st != scanOK {
		return e, st, reason
	}
	pos += w
	size, w := binary.Uvarint(b[pos:])
	if st, reason := varintStatus(w, "record size"); st != scanOK {
		return e, st, reason
	}
	pos += w
	seq := d.seq + uint64(delta)
	switch {
	case klen == 0:
		return e, scanInvalid, "hint entry has an empty key"
	case klen > maxKeyLen:
		return e, scanInvalid, fmt.Sprintf("hint key length %d exceeds %d", klen, maxKeyLen)
	case size > maxRecordLen || size < uint64(recordLen(seq, int(klen), 0)):
		return e, scanInvalid, fmt.Sprintf("hint record size %d is impossible for seq %d and a %d-byte key", size, seq, klen)
	case d.recOff > math.MaxInt64-int64(size):
		return e, scanInvalid, "hint record offsets overflow 63 bits"
	case uint64(len(b)-pos) < klen:
		return e, scanTruncated, "hint entry cut short: key"
	}
	n := pos + int(klen)
	e = hintEntry{seq: seq, key: b[pos:n:n], offset: d.recOff, size: int64(size)}
	d.off += n
	d.seq = seq
	d.recOff += int64(size)
	return e, scanOK, ""
}

// varintStatus interprets w, the length a binary.Varint or Uvarint call
// returned for the field called name: 0 means the bytes ran out, a
// negative length that the value overflows 64 bits.
func varintStatus(w int, name string) (scanStatus, string) {
	switch {
	case w == 0:
		return scanTruncated, "hint entry cut short: " + name
	case w < 0:
		return scanInvalid, name + " overflows 64 bits"
	}
	return scanOK, ""
}

// readWhole returns the whole contents of the file at path.
func readWhole(fsys vfs.FS, path string) ([]byte, error) {
	f, err := fsys.Open(path)
	if err != nil {
		return nil, err
	}
	defer f.Close()
	st, err := f.Stat()
	if err != nil {
		return nil, err
	}
	b := make([]byte, st.Size())
	if n, err := f.ReadAt(b, 0); n < len(b) {
		if err == nil || err == io.EOF {
			err = io.ErrUnexpectedEOF
		}
		return nil, err
	}
	return b, nil
}

// loadHint reads the whole hint file at path, for a segment of segSize
// bytes, checks it, and then calls fn for each entry. Any flaw (no
// trailer, a checksum mismatch, a count that disagrees, an entry no writer
// produces, records that do not fill the segment exactly) makes it return
// a *kvs.CorruptionError before calling fn at all: a hint is a cache, and
// the caller then scans the segment instead. A hint of format version 1
// returns errOldHint. The entries' keys alias one buffer. It returns the
// hint file's size.
func loadHint(fsys vfs.FS, path string, segSize int64, fn func(hintEntry)) (int64, error) {
	b, err := readWhole(fsys, path)
	if err != nil {
		return 0, err
	}
	if reason := checkFileHeader(b, hintMagic, hintVersion); reason != "" {
		if checkFileHeader(b, hintMagic, 1) == "" {
			return 0, errOldHint
		}
		return 0, kvs.Corruptf(path, 0, "%s", reason)
	}
	tr := readHintTrailer(b)
	switch {
	case !tr.found:
		return 0, kvs.Corruptf(path, int64(len(b)), "hint file does not end with its %q trailer: cut short", hintEndMagic)
	case !tr.crcOK:
		return 0, kvs.Corruptf(path, int64(tr.start+8), "hint file checksum mismatch")
	}
	// Check every entry before applying any: an applied entry cannot be
	// taken back, and decoding twice costs less than keeping the decoded
	// entries.
	d := newHintDecoder(b, tr.start)
	var count uint64
	for {
		at := d.off
		_, st, reason := d.next()
		if st == scanEOF {
			break
		}
		if st != scanOK {
			return 0, kvs.Corruptf(path, int64(at), "%s", reason)
		}
		count++
	}
	switch {
	case count != tr.count:
		return 0, kvs.Corruptf(path, int64(tr.start), "the trailer counts %d entries, the file holds %d", tr.count, count)
	case d.recOff != segSize:
		// NB: this also catches an entry pointing past the segment's end.
		return 0, kvs.Corruptf(path, int64(tr.start), "the listed records end at offset %d, their segment at %d", d.recOff, segSize)
	}
	for d = newHintDecoder(b, tr.start); ; {
		e, st, _ := d.next()
		if st == scanEOF {
			break
		}
		fn(e)
	}
	return int64(len(b)), nil
}

// hintWriter writes a hint file through a buffer, keeping the checksum
// and the count its trailer needs.
type hintWriter struct {
	f       vfs.File
	w       *bufio.Writer
	buf     []byte
	crc     uint32 // crc32c of every byte written so far
	count   uint64 // entries written
	prevSeq uint64 // the last entry's sequence number
	end     int64  // where the record after the last one listed starts in the segment
	written int64  // bytes written, the trailer included once finish ran
}

// newHintWriter starts a hint file in f by writing its header.
func newHintWriter(f vfs.File) (*hintWriter, error) {
	hw := &hintWriter{f: f, w: bufio.NewWriterSize(f, 64<<10), end: fileHeaderLen}
	if err := hw.write(appendFileHeader(nil, hintMagic, hintVersion)); err != nil {
		return nil, err
	}
	return hw, nil
}

func (hw *hintWriter) write(b []byte) error {
	hw.crc = crc32.Update(hw.crc, crcTable, b)
	hw.written += int64(len(b))
	_, err := hw.w.Write(b)
	return err
}

// add lists the record of size bytes holding seq and key that the segment
// holds at offset. The hint stores no offsets, so the records must be
// listed in file order with nothing between them: add panics when offset
// is not the end of the record listed before (a bug in merge, not bad
// input).
func (hw *hintWriter) add(seq uint64, key []byte, offset, size int64) error {
	if offset != hw.end {
		panic(fmt.Sprintf("kvs/bitcask: hint entry for a record at offset %d, but the records listed end at %d", offset, hw.end))
	}
	hw.end += size
	hw.buf = appendHintEntry(hw.buf[:0], hw.prevSeq, seq, key, size)
	hw.prevSeq = seq
	hw.count++
	return hw.write(hw.buf)
}

// finish appends the trailer, flushes and syncs the file. It does not
// close it.
func (hw *hintWriter) finish() error {
	trailer := appendHintTrailer(nil, hw.crc, hw.count)
	hw.written += int64(len(trailer))
	if _, err := hw.w.Write(trailer); err != nil {
		return err
	}
	if err := hw.w.Flush(); err != nil {
		return err
	}
	return hw.f.Sync()
}
