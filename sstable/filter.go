package sstable

import (
	"math"

	"github.com/cespare/xxhash/v2"
)

// The filter block is one bloom filter over every distinct user key in the
// table:
//
//	+------------------------------+-----------+
//	| bit array (m bits, m/8 bytes)| k (u8)    |
//	+------------------------------+-----------+
//
// A key's hash is h = xxhash64(userKey), split into h1 = low 32 bits and
// h2 = high 32 bits. Its k probes are bits (h1 + i*h2) mod m for i = 0..k-1,
// computed in uint32 arithmetic (Kirsch and Mitzenmacher, "Less hashing,
// same performance", 2006). Bit j is bit j%8 of byte j/8.

// DefaultFilterBitsPerKey gives about a 1% false-positive rate.
const DefaultFilterBitsPerKey = 10

// maxProbes bounds k so a filter can never make Get spin.
const maxProbes = 30

// filterHash is the hash the filter stores for a user key.
func filterHash(userKey []byte) uint64 { return xxhash.Sum64(userKey) }

// probesFor returns k for bitsPerKey: bitsPerKey*ln 2 minimises the false
// positive rate.
func probesFor(bitsPerKey int) int {
	k := int(math.Round(float64(bitsPerKey) * math.Ln2))
	return max(1, min(k, maxProbes))
}

// buildFilter returns the filter block for the given key hashes.
func buildFilter(hashes []uint64, bitsPerKey int) []byte {
	nBits := max(len(hashes)*bitsPerKey, 64)
	nBytes := min((nBits+7)/8, math.MaxUint32/8) // bit numbers are uint32
	nBits = nBytes * 8
	k := probesFor(bitsPerKey)
	f := make([]byte, nBytes+1)
	f[nBytes] = byte(k)
	for _, h := range hashes {
		h1, h2 := uint32(h), uint32(h>>32)
		for i := 0; i < k; i++ {
			bit := (h1 + uint32(i)*h2) % uint32(nBits)
			f[bit/8] |= 1 << (bit % 8)
		}
	}
	return f
}

// bloomFilter is a decoded filter block. nBits is a multiple of 8, at
// least 8 and below 2^32.
type bloomFilter struct {
	bits  []byte
	nBits uint32
	k     int
}

// decodeFilter checks a filter block's shape. The reason is empty when it
// is well formed.
func decodeFilter(b []byte) (bloomFilter, string) {
	if len(b) < 2 {
		return bloomFilter{}, "filter block too short"
	}
	k := int(b[len(b)-1])
	if k < 1 || k > maxProbes {
		return bloomFilter{}, "filter probe count out of range"
	}
	if uint64(len(b)-1) > math.MaxUint32/8 {
		return bloomFilter{}, "filter too large"
	}
	return bloomFilter{bits: b[:len(b)-1], nBits: uint32(len(b)-1) * 8, k: k}, ""
}

// mayContain reports whether userKey may be in the table; false is
// certain.
func (f bloomFilter) mayContain(userKey []byte) bool {
	h := filterHash(userKey)
	h1, h2 := uint32(h), uint32(h>>32)
	for i := 0; i < f.k; i++ {
		bit := (h1 + uint32(i)*h2) % f.nBits
		if f.bits[bit/8]&(1<<(bit%8)) == 0 {
			return false
		}
	}
	return true
}
