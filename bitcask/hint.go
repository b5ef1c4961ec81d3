package bitcask

import (
	"bufio"
	"encoding/binary"
	"fmt"
	"hash/crc32"
	"io"
	"math"

	"github.com/kvs-lab/kvs"
	"github.com/kvs-lab/kvs/internal/vfs"
)

// This file implements the hint file format of docs/formats/bitcask.md.
// Merge writes one hint file per output segment so that Open can rebuild
// the keydir without reading values:
//
//	+-----------------------+---------+---------+-----+
//	| file header (16 B)    | entry 0 | entry 1 | ... |
//	+-----------------------+---------+---------+-----+
//
//	entry:
//	+------------+-------------+--------------+-----------------+---------------+-----+
//	| crc32c u32 | seq uvarint | klen uvarint | offset uvarint  | size uvarint  | key |
//	+------------+-------------+--------------+-----------------+---------------+-----+
//	             <------------------- covered by the crc ---------------------------->

// maxRecordLen is the largest record a segment can hold.
const maxRecordLen = maxRecordHeaderLen + maxKeyLen + maxValueLen

// hintEntry is one decoded hint entry. key aliases the buffer it was
// decoded from.
type hintEntry struct {
	seq    uint64
	key    []byte
	offset int64 // of the record in the segment
	size   int64 // of the record
}

// appendHintEntry appends the encoding of one entry to dst.
func appendHintEntry(dst []byte, seq uint64, key []byte, offset, size int64) []byte {
	start := len(dst)
	dst = append(dst, 0, 0, 0, 0)
	dst = binary.AppendUvarint(dst, seq)
	dst = binary.AppendUvarint(dst, uint64(len(key)))
	dst = binary.AppendUvarint(dst, uint64(offset))
	dst = binary.AppendUvarint(dst, uint64(size))
	dst = append(dst, key...)
	binary.LittleEndian.PutUint32(dst[start:], crc32.Checksum(dst[start+4:], crcTable))
	return dst
}

// decodeHintEntry decodes the entry at the start of b. n is its encoded
// length. It returns scanTruncated when b ends inside the entry and
// scanInvalid (with the reason) for a field no writer produces; a whole
// entry whose checksum fails comes back with scanChecksum.
func decodeHintEntry(b []byte) (e hintEntry, n int, st scanStatus, reason string) {
	if len(b) == 0 {
		return e, 0, scanEOF, ""
	}
	if len(b) < 4 {
		return e, 0, scanTruncated, "hint entry cut short by the end of the file"
	}
	stored := binary.LittleEndian.Uint32(b)
	pos := 4
	var f [4]uint64
	for i, name := range [4]string{"sequence number", "key length", "record offset", "record size"} {
		v, w := binary.Uvarint(b[pos:])
		switch {
		case w == 0:
			return e, 0, scanTruncated, "hint entry cut short by the end of the file"
		case w < 0:
			return e, 0, scanInvalid, name + " overflows 64 bits"
		}
		f[i] = v
		pos += w
	}
	klen, off, size := f[1], f[2], f[3]
	switch {
	case klen == 0:
		return e, 0, scanInvalid, "hint entry has an empty key"
	case klen > maxKeyLen:
		return e, 0, scanInvalid, fmt.Sprintf("hint key length %d exceeds %d", klen, maxKeyLen)
	case off < fileHeaderLen || off > math.MaxInt64:
		return e, 0, scanInvalid, fmt.Sprintf("hint record offset %d is impossible", off)
	case size < minRecordLen || size > maxRecordLen:
		return e, 0, scanInvalid, fmt.Sprintf("hint record size %d is impossible", size)
	}
	if uint64(len(b)-pos) < klen {
		return e, 0, scanTruncated, "hint entry cut short by the end of the file"
	}
	n = pos + int(klen)
	e = hintEntry{seq: f[0], key: b[pos:n:n], offset: int64(off), size: int64(size)}
	if crc32.Checksum(b[4:n], crcTable) != stored {
		return e, n, scanChecksum, "hint entry checksum mismatch"
	}
	return e, n, scanOK, ""
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
// bytes, checks it, and then calls fn for each entry. Any flaw (a checksum,
// a length, an entry pointing outside the segment) makes it return an
// error before calling fn at all: a hint is a cache, and the caller then
// scans the segment instead. The entries' keys alias one buffer. It
// returns the hint file's size.
func loadHint(fsys vfs.FS, path string, segSize int64, fn func(hintEntry)) (int64, error) {
	b, err := readWhole(fsys, path)
	if err != nil {
		return 0, err
	}
	if reason := checkFileHeader(b, hintMagic); reason != "" {
		return 0, kvs.Corruptf(path, 0, "%s", reason)
	}
	// Check everything first, then apply: decoding twice costs less than
	// keeping the decoded entries.
	for _, apply := range []bool{false, true} {
		for off := fileHeaderLen; off < len(b); {
			e, n, st, reason := decodeHintEntry(b[off:])
			if st != scanOK {
				return 0, kvs.Corruptf(path, int64(off), "%s", reason)
			}
			if e.offset+e.size > segSize {
				return 0, kvs.Corruptf(path, int64(off), "entry points at [%d, %d), past the end of its %d-byte segment", e.offset, e.offset+e.size, segSize)
			}
			if apply {
				fn(e)
			}
			off += n
		}
	}
	return int64(len(b)), nil
}

// hintWriter writes a hint file through a buffer.
type hintWriter struct {
	f       vfs.File
	w       *bufio.Writer
	buf     []byte
	written int64
}

func newHintWriter(f vfs.File) (*hintWriter, error) {
	hw := &hintWriter{f: f, w: bufio.NewWriterSize(f, 64<<10)}
	if _, err := hw.w.Write(appendFileHeader(nil, hintMagic)); err != nil {
		return nil, err
	}
	hw.written = fileHeaderLen
	return hw, nil
}

func (hw *hintWriter) add(seq uint64, key []byte, offset, size int64) error {
	hw.buf = appendHintEntry(hw.buf[:0], seq, key, offset, size)
	hw.written += int64(len(hw.buf))
	_, err := hw.w.Write(hw.buf)
	return err
}

// finish flushes and syncs the file. It does not close it.
func (hw *hintWriter) finish() error {
	if err := hw.w.Flush(); err != nil {
		return err
	}
	return hw.f.Sync()
}
