package bitcask

import (
	"bufio"
	"encoding/binary"
	"errors"
	"fmt"
	"hash/crc32"
	"io"

	"github.com/kvs-lab/kvs"
)

// This file implements the segment (data file) format of
// docs/formats/bitcask.md: the 16-byte file header and the records.
//
//	record:
//	+------------+---------+-------------+--------------+--------------+-----+-------+
//	| crc32c u32 | type u8 | seq uvarint | klen uvarint | vlen uvarint | key | value |
//	+------------+---------+-------------+--------------+--------------+-----+-------+
//	             <-------------------- covered by the crc ---------------------------->

// crcTable is CRC-32C (Castagnoli), the checksum of every bitcask file.
var crcTable = crc32.MakeTable(crc32.Castagnoli)

const (
	// fileHeaderLen is the size of the header that starts segments and
	// hint files: an 8-byte magic, a u32 version and a crc32c of both.
	fileHeaderLen = 16

	segmentMagic = "kvsbcseg"
	hintMagic    = "kvsbchnt"

	// segmentVersion and hintVersion are the format versions the two
	// headers carry. They change apart: hint files are at version 2 (see
	// hint.go), segments still at 1.
	segmentVersion = 1
	hintVersion    = 2
)

// Record types: the low 7 bits of a record's type byte. The numbers are
// part of the format; never reuse one.
const (
	typePut    byte = 1
	typeDelete byte = 2
	// typeBatchContinues is set on every record of a batch but the last.
	typeBatchContinues byte = 0x80
	typeMask           byte = 0x7f
)

const (
	// maxKeyLen and maxValueLen are the largest lengths a decoder accepts:
	// the engine-wide key limit and the largest MaxValueSize
	// kvs.Options.Validate allows.
	maxKeyLen   = kvs.MaxKeySize
	maxValueLen = 1 << 30

	// maxRecordHeaderLen is the most bytes a record header can take on
	// disk: crc, type and three uvarints of at most 10 bytes each. kvs
	// writes minimal uvarints, so its headers are at most 4+1+10+3+5 = 23
	// bytes, but a reader accepts any uvarint encoding.
	maxRecordHeaderLen = 4 + 1 + 3*binary.MaxVarintLen64

	// minRecordLen is the smallest possible record: an 8-byte header and
	// a one-byte key.
	minRecordLen = 4 + 1 + 1 + 1 + 1 + 1
)

// appendFileHeader appends the 16-byte header of a file with magic and
// format version.
func appendFileHeader(dst []byte, magic string, version uint32) []byte {
	start := len(dst)
	dst = append(dst, magic...)
	dst = binary.LittleEndian.AppendUint32(dst, version)
	return binary.LittleEndian.AppendUint32(dst, crc32.Checksum(dst[start:start+12], crcTable))
}

// checkFileHeader returns why b (the first bytes of a file) is not a valid
// header with magic and version, or "" when it is.
func checkFileHeader(b []byte, magic string, version uint32) string {
	switch {
	case len(b) < fileHeaderLen:
		return fmt.Sprintf("file of %d bytes is shorter than its %d-byte header", len(b), fileHeaderLen)
	case crc32.Checksum(b[:12], crcTable) != binary.LittleEndian.Uint32(b[12:16]):
		return "file header checksum mismatch"
	case string(b[:8]) != magic:
		return fmt.Sprintf("bad magic %q, want %q", b[:8], magic)
	case binary.LittleEndian.Uint32(b[8:12]) != version:
		return fmt.Sprintf("unsupported format version %d, want %d", binary.LittleEndian.Uint32(b[8:12]), version)
	}
	return ""
}

// uvarintLen returns how many bytes binary.AppendUvarint uses for v.
func uvarintLen(v uint64) int {
	n := 1
	for v >= 0x80 {
		v >>= 7
		n++
	}
	return n
}

// recordLen returns the encoded size of a record.
func recordLen(seq uint64, keyLen, valueLen int) int {
	return 4 + 1 + uvarintLen(seq) + uvarintLen(uint64(keyLen)) + uvarintLen(uint64(valueLen)) + keyLen + valueLen
}

// valueLenOf recovers a record's value length from its total size, sequence
// number and key length, which is what a keydir entry and its key give.
// It works because v + uvarintLen(v) grows strictly with v, so exactly one
// v fits. It assumes minimal uvarints (what kvs writes); for a record with
// padded varints it errs by the padding, which only skews Stats.
func valueLenOf(size int64, seq uint64, keyLen int) int {
	rest := size - int64(4+1+uvarintLen(seq)+uvarintLen(uint64(keyLen))+keyLen)
	for w := int64(1); w <= binary.MaxVarintLen64; w++ {
		if v := rest - w; v >= 0 && int64(uvarintLen(uint64(v))) == w {
			return int(v)
		}
	}
	return 0
}

// appendRecord appends one encoded record to dst. typ is typePut or
// typeDelete, possibly with typeBatchContinues; value is ignored for a
// tombstone.
func appendRecord(dst []byte, typ byte, seq uint64, key, value []byte) []byte {
	if typ&typeMask == typeDelete {
		value = nil
	}
	start := len(dst)
	dst = append(dst, 0, 0, 0, 0) // the crc, filled in below
	dst = append(dst, typ)
	dst = binary.AppendUvarint(dst, seq)
	dst = binary.AppendUvarint(dst, uint64(len(key)))
	dst = binary.AppendUvarint(dst, uint64(len(value)))
	dst = append(dst, key...)
	dst = append(dst, value...)
	binary.LittleEndian.PutUint32(dst[start:], crc32.Checksum(dst[start+4:], crcTable))
	return dst
}

// recordHeader is the decoded header of a record: everything before the
// key.
type recordHeader struct {
	crc       uint32 // as stored
	typ       byte   // the whole type byte, batch bit included
	seq       uint64
	keyLen    int
	valueLen  int
	headerLen int // bytes before the key
}

// size returns the whole record's length.
func (h recordHeader) size() int64 { return int64(h.headerLen + h.keyLen + h.valueLen) }

// tombstone reports whether the record deletes its key.
func (h recordHeader) tombstone() bool { return h.typ&typeMask == typeDelete }

// batchContinues reports whether more records of the same batch follow.
func (h recordHeader) batchContinues() bool { return h.typ&typeBatchContinues != 0 }

// keyRange and valueRange return where key and value lie in the record.
func (h recordHeader) keyRange() (int, int) { return h.headerLen, h.headerLen + h.keyLen }

func (h recordHeader) valueRange() (int, int) {
	v := h.headerLen + h.keyLen
	return v, v + h.valueLen
}

// errShortHeader says the bytes given end before the record header does.
var errShortHeader = errors.New("kvs/bitcask: record header cut short")

// badRecord is a record header that no writer could have produced.
type badRecord struct{ reason string }

func (e *badRecord) Error() string { return "kvs/bitcask: " + e.reason }

// decodeRecordHeader decodes the header at the start of b, which holds up
// to maxRecordHeaderLen bytes of a record (fewer at the end of a file). It
// returns errShortHeader when b ends inside the header and a *badRecord
// for a header with an unknown type or an impossible length.
func decodeRecordHeader(b []byte) (recordHeader, error) {
	var h recordHeader
	if len(b) < 5 {
		return h, errShortHeader
	}
	h.crc = binary.LittleEndian.Uint32(b)
	h.typ = b[4]
	if t := h.typ & typeMask; t != typePut && t != typeDelete {
		return h, &badRecord{fmt.Sprintf("unknown record type %#x", h.typ)}
	}
	pos := 5
	var fields [3]uint64
	for i, name := range [3]string{"sequence number", "key length", "value length"} {
		v, n := binary.Uvarint(b[pos:])
		switch {
		case n == 0:
			return h, errShortHeader
		case n < 0:
			return h, &badRecord{fmt.Sprintf("%s overflows 64 bits", name)}
		}
		fields[i] = v
		pos += n
	}
	h.seq = fields[0]
	switch klen, vlen := fields[1], fields[2]; {
	case klen == 0:
		return h, &badRecord{"record has an empty key"}
	case klen > maxKeyLen:
		return h, &badRecord{fmt.Sprintf("key length %d exceeds %d", klen, maxKeyLen)}
	case vlen > maxValueLen:
		return h, &badRecord{fmt.Sprintf("value length %d exceeds %d", vlen, maxValueLen)}
	case vlen != 0 && h.tombstone():
		return h, &badRecord{fmt.Sprintf("tombstone with a %d-byte value", vlen)}
	default:
		h.keyLen, h.valueLen = int(klen), int(vlen)
	}
	h.headerLen = pos
	return h, nil
}

// checksumRecord returns the crc32c of a whole encoded record rec, which
// is what its first four bytes should hold.
func checksumRecord(rec []byte) uint32 {
	return crc32.Checksum(rec[4:], crcTable)
}

// decodeRecord decodes the single record that b must hold exactly,
// checking its checksum. Key and value alias b. It is what a Get runs on
// the bytes it read, so it returns plain errors; the caller wraps them
// into a *kvs.CorruptionError naming file and offset.
func decodeRecord(b []byte) (h recordHeader, key, value []byte, err error) {
	n := min(len(b), maxRecordHeaderLen)
	h, err = decodeRecordHeader(b[:n])
	if err != nil {
		if errors.Is(err, errShortHeader) {
			return h, nil, nil, fmt.Errorf("record of %d bytes is shorter than its header", len(b))
		}
		return h, nil, nil, err
	}
	if h.size() != int64(len(b)) {
		return h, nil, nil, fmt.Errorf("record header says %d bytes, have %d", h.size(), len(b))
	}
	if got := checksumRecord(b); got != h.crc {
		return h, nil, nil, fmt.Errorf("record checksum mismatch: stored %#08x, computed %#08x", h.crc, got)
	}
	k0, k1 := h.keyRange()
	v0, v1 := h.valueRange()
	return h, b[k0:k1:k1], b[v0:v1:v1], nil
}

// scanStatus is what segmentReader.next found at the current offset.
type scanStatus int

const (
	scanOK        scanStatus = iota // a whole record with a good checksum
	scanEOF                         // the clean end of the file
	scanChecksum                    // a whole record whose checksum fails; the reader moved past it
	scanTruncated                   // a record cut short by the end of the file
	scanInvalid                     // a header no writer produces: unknown type, impossible length
)

// scannedRecord is one record found by segmentReader.next. Key and value
// alias the reader's buffers and are valid until the next call.
type scannedRecord struct {
	offset int64
	h      recordHeader
	key    []byte
	value  []byte // nil unless the reader was asked for values
	crcOK  bool
}

// segmentReader reads the records of a segment in order, from just after
// the file header. It reads through a buffer, so it suits recovery and
// merge, which read whole files; point reads use ReadAt.
type segmentReader struct {
	br        *bufio.Reader
	off       int64 // offset of the next record
	size      int64 // file size
	wantValue bool
	key       []byte
	value     []byte
	reason    string // why the last scanInvalid or scanTruncated happened
}

// scanBufferSize is the read buffer of recovery and merge scans.
const scanBufferSize = 256 << 10

// newSegmentReader reads the records of a segment of size bytes through r,
// starting after the file header. The caller checks the header first.
func newSegmentReader(r io.ReaderAt, size int64, wantValue bool) *segmentReader {
	sr := io.NewSectionReader(r, fileHeaderLen, max(size-fileHeaderLen, 0))
	return &segmentReader{
		br:        bufio.NewReaderSize(sr, scanBufferSize),
		off:       fileHeaderLen,
		size:      size,
		wantValue: wantValue,
	}
}

// next reads the record at r.off. On scanOK and scanChecksum it returns the
// record and moves past it; on scanTruncated and scanInvalid it stays at
// the record's offset, with the reason in r.reason. err reports I/O errors
// other than reaching the end of the file.
func (r *segmentReader) next() (rec scannedRecord, st scanStatus, err error) {
	rec.offset = r.off
	hb, perr := r.br.Peek(maxRecordHeaderLen)
	if perr != nil && !errors.Is(perr, io.EOF) && !errors.Is(perr, bufio.ErrBufferFull) {
		return rec, 0, perr
	}
	if len(hb) == 0 {
		return rec, scanEOF, nil
	}
	h, derr := decodeRecordHeader(hb)
	var bad *badRecord
	switch {
	case errors.Is(derr, errShortHeader):
		r.reason = fmt.Sprintf("record header cut short by the end of the file (%d bytes left)", len(hb))
		return rec, scanTruncated, nil
	case errors.As(derr, &bad):
		r.reason = bad.reason
		return rec, scanInvalid, nil
	}
	rec.h = h
	if end := r.off + h.size(); end > r.size {
		r.reason = fmt.Sprintf("%d-byte record runs %d bytes past the end of the file", h.size(), end-r.size)
		return rec, scanTruncated, nil
	}
	crc := crc32.Update(0, crcTable, hb[4:h.headerLen])
	if _, err := r.br.Discard(h.headerLen); err != nil {
		return rec, 0, err
	}
	r.key = grow(r.key, h.keyLen)
	if _, err := io.ReadFull(r.br, r.key); err != nil {
		return rec, 0, unexpected(err)
	}
	crc = crc32.Update(crc, crcTable, r.key)
	rec.key = r.key
	if r.wantValue {
		r.value = grow(r.value, h.valueLen)
		if _, err := io.ReadFull(r.br, r.value); err != nil {
			return rec, 0, unexpected(err)
		}
		crc = crc32.Update(crc, crcTable, r.value)
		rec.value = r.value
	} else {
		// Checksum the value straight from the read buffer.
		for left := h.valueLen; left > 0; {
			chunk, err := r.br.Peek(min(left, r.br.Size()))
			if err != nil && len(chunk) == 0 {
				return rec, 0, unexpected(err)
			}
			crc = crc32.Update(crc, crcTable, chunk)
			r.br.Discard(len(chunk))
			left -= len(chunk)
		}
	}
	r.off += h.size()
	rec.crcOK = crc == h.crc
	if !rec.crcOK {
		return rec, scanChecksum, nil
	}
	return rec, scanOK, nil
}

// unexpected turns an EOF inside a record, which the size check before
// reading rules out unless the file shrank, into io.ErrUnexpectedEOF.
func unexpected(err error) error {
	if errors.Is(err, io.EOF) {
		return io.ErrUnexpectedEOF
	}
	return err
}

// grow returns b resized to n bytes, reallocating only when it must.
func grow(b []byte, n int) []byte {
	if cap(b) < n {
		return make([]byte, n)
	}
	return b[:n]
}
