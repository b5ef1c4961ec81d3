package sstable

import (
	"encoding/binary"
	"hash/crc32"
)

// Magic is the last eight bytes of every table kvs writes: "kvsSST\x00\x01"
// read as a little-endian uint64.
const Magic uint64 = 0x0100_5453_5373_766b

// FormatVersion is the table format version stored in the footer. Open
// rejects any other version.
const FormatVersion uint32 = 1

// Sizes of the fixed parts of the format.
const (
	// blockTrailerLen is the compression type byte plus the CRC-32C that
	// follow every block.
	blockTrailerLen = 5
	// footerLen is the fixed size of the footer at the end of the file.
	footerLen = 64
	// maxHandleVarintLen is the longest encoded blockHandle (two uvarints).
	maxHandleVarintLen = 2 * binary.MaxVarintLen64
)

// Block compression types, the first byte of a block trailer. Numbers are
// part of the format: add, never reuse.
const (
	blockTypeNone   byte = 0
	blockTypeSnappy byte = 1
)

// crcTable is CRC-32C (Castagnoli), the checksum of every block and of
// the footer.
var crcTable = crc32.MakeTable(crc32.Castagnoli)

// blockChecksum is the checksum stored in a block trailer: CRC-32C of the
// block as stored (compressed or not) followed by its type byte.
func blockChecksum(stored []byte, typ byte) uint32 {
	c := crc32.Update(0, crcTable, stored)
	return crc32.Update(c, crcTable, []byte{typ})
}

// blockHandle locates a block: Length counts the block's stored bytes,
// not its trailer.
type blockHandle struct {
	Offset, Length uint64
}

// endsBefore reports whether the block and its trailer end at or before
// limit (without overflowing on absurd handles).
func (h blockHandle) endsBefore(limit uint64) bool {
	return h.Offset <= limit && h.Length <= limit-h.Offset && blockTrailerLen <= limit-h.Offset-h.Length
}

// appendHandle appends h as two uvarints (offset, length).
func appendHandle(dst []byte, h blockHandle) []byte {
	dst = binary.AppendUvarint(dst, h.Offset)
	return binary.AppendUvarint(dst, h.Length)
}

// decodeHandle decodes a handle written by appendHandle. ok is false when
// src is not two well-formed uvarints.
func decodeHandle(src []byte) (h blockHandle, n int, ok bool) {
	off, n1 := binary.Uvarint(src)
	if n1 <= 0 {
		return blockHandle{}, 0, false
	}
	length, n2 := binary.Uvarint(src[n1:])
	if n2 <= 0 {
		return blockHandle{}, 0, false
	}
	return blockHandle{Offset: off, Length: length}, n1 + n2, true
}

// footer is the fixed-size record at the end of a table:
//
//	offset  size  field
//	 0      16    index handle       (offset u64, length u64)
//	16      16    filter handle      (length 0: no filter)
//	32      16    properties handle
//	48       4    format version     (u32)
//	52       4    CRC-32C of bytes 0-51
//	56       8    magic              (u64)
//
// All integers are little-endian.
type footer struct {
	index, filter, properties blockHandle
	version                   uint32
}

func (f footer) encode() []byte {
	b := make([]byte, footerLen)
	le := binary.LittleEndian
	for i, h := range []blockHandle{f.index, f.filter, f.properties} {
		le.PutUint64(b[16*i:], h.Offset)
		le.PutUint64(b[16*i+8:], h.Length)
	}
	le.PutUint32(b[48:], f.version)
	le.PutUint32(b[52:], crc32.Checksum(b[:52], crcTable))
	le.PutUint64(b[56:], Magic)
	return b
}

// decodeFooter parses b (footerLen bytes). The reason is empty on success
// and says what is wrong otherwise; the caller turns it into a
// CorruptionError at the footer's offset.
func decodeFooter(b []byte) (f footer, reason string) {
	le := binary.LittleEndian
	if len(b) != footerLen {
		return footer{}, "short footer"
	}
	if m := le.Uint64(b[56:]); m != Magic {
		return footer{}, "bad magic number (not a kvs sstable)"
	}
	if got, want := crc32.Checksum(b[:52], crcTable), le.Uint32(b[52:]); got != want {
		return footer{}, "footer checksum mismatch"
	}
	f.version = le.Uint32(b[48:])
	if f.version != FormatVersion {
		return footer{}, "unsupported format version"
	}
	hs := []*blockHandle{&f.index, &f.filter, &f.properties}
	for i, h := range hs {
		h.Offset = le.Uint64(b[16*i:])
		h.Length = le.Uint64(b[16*i+8:])
	}
	return f, ""
}
