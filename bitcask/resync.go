package bitcask

import (
	"fmt"
	"hash/crc32"
	"io"
)

// This file holds the resync scan recovery runs on damage in the newest
// segment, to tell a torn tail from damage in the middle of the log (see
// DB.isTornTail).

// recordAfter returns the offset of the first whole record with a good
// checksum that starts in (off, seg.bytes), or -1 when none does. After
// damage nothing says where the next record starts, so it tries every
// byte offset.
//
// Checking each candidate by checksumming its bytes would be quadratic:
// random bytes (a torn value) decode as a plausible record header that
// fits in the file about once every 200 offsets, with lengths reaching
// far into the file; for a 16 MiB tail that is 12 GB of crc32c. Instead
// a first pass keeps the crc32c of the tail's prefixes at every
// resyncStride bytes, and a candidate's checksum comes from two prefix
// checksums (crcOfRange). So the scan reads the tail twice and keeps 4
// bytes per resyncStride bytes of it: 0.1 s for a 16 MiB tail of random
// bytes.
func recordAfter(seg *segment, off int64) (int64, error) {
	start, end := off+1, seg.bytes
	if end-start < minRecordLen {
		return -1, nil
	}
	t := &tail{seg: seg, start: start, end: end}
	if err := t.checkpoint(); err != nil {
		return -1, err
	}
	buf := make([]byte, resyncBufferSize)
	for base := start; base < end; {
		n := int(min(int64(len(buf)), end-base))
		if err := readFull(seg, buf[:n], base); err != nil {
			return -1, err
		}
		// Look at the offsets whose longest possible header lies in buf,
		// or at all of them in the last window.
		limit := n
		if base+int64(n) < end {
			limit = n - maxRecordHeaderLen
		}
		for i := 0; i < limit; i++ {
			// Most offsets fail on the type byte: skip them before
			// decodeRecordHeader formats an error for each.
			if i+4 >= n {
				break
			}
			if typ := buf[i+4] & typeMask; typ != typePut && typ != typeDelete {
				continue
			}
			h, err := decodeRecordHeader(buf[i:min(n, i+maxRecordHeaderLen)])
			p := base + int64(i)
			if err != nil || p+h.size() > end {
				continue
			}
			crc, err := t.crcOfRange(p+4, p+h.size())
			if err != nil {
				return -1, err
			}
			if crc == h.crc {
				return p, nil
			}
		}
		base += int64(limit)
	}
	return -1, nil
}

const (
	// resyncStride is the distance between the prefix checksums a resync
	// scan keeps.
	resyncStride = 256
	// resyncBufferSize is the read buffer of each pass of a resync scan,
	// a multiple of resyncStride.
	resyncBufferSize = 1 << 20
)

// tail is the part [start, end) of a segment that a resync scan searches,
// with the crc32c of its prefixes: prefix[i] is the checksum of
// [start, start+i*resyncStride).
type tail struct {
	seg        *segment
	start, end int64
	prefix     []uint32
	scratch    [resyncStride]byte
}

// checkpoint fills t.prefix in one pass over the tail.
func (t *tail) checkpoint() error {
	t.prefix = make([]uint32, 1, (t.end-t.start)/resyncStride+1)
	buf := make([]byte, resyncBufferSize)
	var crc uint32
	for pos := t.start; pos < t.end; {
		n := int(min(int64(len(buf)), t.end-pos))
		if err := readFull(t.seg, buf[:n], pos); err != nil {
			return err
		}
		for i := 0; i < n; i += resyncStride {
			j := min(i+resyncStride, n)
			crc = crc32.Update(crc, crcTable, buf[i:j])
			if j-i == resyncStride {
				t.prefix = append(t.prefix, crc)
			}
		}
		pos += int64(n)
	}
	return nil
}

// crcOfPrefix returns the crc32c of [t.start, p).
func (t *tail) crcOfPrefix(p int64) (uint32, error) {
	i := (p - t.start) / resyncStride
	from := t.start + i*resyncStride
	b := t.scratch[:p-from]
	if err := readFull(t.seg, b, from); err != nil {
		return 0, err
	}
	return crc32.Update(t.prefix[i], crcTable, b), nil
}

// crcOfRange returns the crc32c of [a, b), a subrange of the tail.
func (t *tail) crcOfRange(a, b int64) (uint32, error) {
	pa, err := t.crcOfPrefix(a)
	if err != nil {
		return 0, err
	}
	pb, err := t.crcOfPrefix(b)
	if err != nil {
		return 0, err
	}
	// crc(X‖Y) = x^(8|Y|)·crc(X) ⊕ crc(Y) (zlib's crc32_combine), so
	// crc(Y) = crc(X‖Y) ⊕ x^(8|Y|)·crc(X) with X = [start, a) and
	// Y = [a, b).
	return pb ^ crcMulMod(crcShift(b-a), pa), nil
}

// readFull reads len(b) bytes of seg at off.
func readFull(seg *segment, b []byte, off int64) error {
	if len(b) == 0 {
		return nil
	}
	n, err := seg.f.ReadAt(b, off)
	if n == len(b) {
		return nil
	}
	if err == nil || err == io.EOF {
		err = io.ErrUnexpectedEOF
	}
	return fmt.Errorf("kvs/bitcask: read %s at offset %d: %w", seg.path, off, err)
}

// Arithmetic on crc32c values as polynomials over GF(2) modulo the
// Castagnoli polynomial, in the reflected bit order hash/crc32 uses (the
// top bit is x^0). After zlib's crc32.c (multmodp, x2nmodp).

// crc32cPoly is the Castagnoli polynomial, reflected.
const crc32cPoly = 0x82f63b78

// crcMulMod returns a·b modulo the polynomial.
func crcMulMod(a, b uint32) uint32 {
	var p uint32
	for m := uint32(1) << 31; m != 0; m >>= 1 {
		if a&m != 0 {
			p ^= b
		}
		if b&1 != 0 {
			b = b>>1 ^ crc32cPoly
		} else {
			b >>= 1
		}
	}
	return p
}

// crcPowers[k] is x^(2^k) modulo the polynomial, for every k crcShift
// needs with an n of up to 63 bits.
var crcPowers = func() (t [3 + 63]uint32) {
	p := uint32(1) << 30 // x^1
	for k := range t {
		t[k] = p
		p = crcMulMod(p, p)
	}
	return t
}()

// crcShift returns x^(8n) modulo the polynomial: the factor by which
// crc(X) enters crc(X‖Y) when Y is n bytes long.
func crcShift(n int64) uint32 {
	p := uint32(1) << 31 // x^0
	for k := 3; n != 0; n, k = n>>1, k+1 {
		if n&1 != 0 {
			p = crcMulMod(crcPowers[k], p)
		}
	}
	return p
}
