package wal

import (
	"encoding/binary"
	"hash/crc32"
)

// This file holds the byte layout of a fragment, shared by the Writer and
// the Reader. docs/formats/wal.md describes it byte by byte.

const (
	// BlockSize is the size of the blocks a log is framed in. A fragment
	// never crosses a block boundary, so every block starts with a
	// fragment header, and a reader that loses its place can always find
	// the next fragment at the next block.
	BlockSize = 32 << 10

	// HeaderSize is the size of a fragment header:
	//
	//	checksum u32 | length u16 | type u8 | log number u32
	HeaderSize = 4 + 2 + 1 + 4

	// MaxFragmentPayload is the largest payload one fragment carries: a
	// whole block less its header.
	MaxFragmentPayload = BlockSize - HeaderSize
)

// logNumAt is the offset of the log number in a fragment header.
const logNumAt = 7

// fragmentType says which part of a record a fragment holds. Zero is not
// a type: it is what a zero-filled (never written) stretch of a file
// decodes as, so a reader can never take one for a fragment.
type fragmentType uint8

const (
	typeFull   fragmentType = 1 // a whole record
	typeFirst  fragmentType = 2 // the first part of a record
	typeMiddle fragmentType = 3 // an inner part of a record
	typeLast   fragmentType = 4 // the last part of a record
)

// String returns the type's name as the docs spell it, such as "FULL".
func (t fragmentType) String() string {
	switch t {
	case typeFull:
		return "FULL"
	case typeFirst:
		return "FIRST"
	case typeMiddle:
		return "MIDDLE"
	case typeLast:
		return "LAST"
	}
	return "unknown"
}

// crcTable is CRC-32C (Castagnoli), which modern CPUs compute in hardware.
var crcTable = crc32.MakeTable(crc32.Castagnoli)

// header is a decoded fragment header.
type header struct {
	checksum uint32
	length   int // payload bytes, at most MaxFragmentPayload
	typ      fragmentType
	logNum   uint32
}

// decodeHeader decodes the HeaderSize bytes of b.
func decodeHeader(b []byte) header {
	_ = b[HeaderSize-1] // one bounds check
	return header{
		checksum: binary.LittleEndian.Uint32(b[0:4]),
		length:   int(binary.LittleEndian.Uint16(b[4:6])),
		typ:      fragmentType(b[6]),
		logNum:   binary.LittleEndian.Uint32(b[7:11]),
	}
}

// appendFragment appends one fragment (header and payload) to dst. The
// checksum covers every byte after itself: length, type, log number and
// payload.
func appendFragment(dst []byte, typ fragmentType, logNum uint32, payload []byte) []byte {
	start := len(dst)
	dst = append(dst, 0, 0, 0, 0) // checksum, filled in below
	dst = binary.LittleEndian.AppendUint16(dst, uint16(len(payload)))
	dst = append(dst, byte(typ))
	dst = binary.LittleEndian.AppendUint32(dst, logNum)
	dst = append(dst, payload...)
	binary.LittleEndian.PutUint32(dst[start:], crc32.Checksum(dst[start+4:], crcTable))
	return dst
}

// fragmentChecksum returns the checksum a fragment whose header and
// payload are b (HeaderSize+length bytes) should carry.
func fragmentChecksum(b []byte) uint32 {
	return crc32.Checksum(b[4:], crcTable)
}

// logNumBits returns the part of a log number a fragment stores: its low
// 32 bits. Two logs whose numbers differ by a multiple of 2^32 cannot be
// told apart by their fragments; kvs never keeps that many.
func logNumBits(logNum uint64) uint32 { return uint32(logNum) }
