// Package bench holds what kvs uses to compare engines: workloads (db_bench's
// and YCSB's), the runner that measures one workload on one DB (Run), the
// reports `kvs bench` writes (WriteTable, WriteReport), and a deterministic
// key/value generator shared with `kvs load`.
package bench

import (
	"encoding/binary"
	"fmt"
	"strconv"
)

// Gen makes the i-th key and value of a data set. The same Seed, KeySize and
// ValueSize always give the same keys and values, whatever order they are
// asked for in, so a reader can check every value it reads without storing
// the data set.
type Gen struct {
	Seed      uint64
	KeySize   int // bytes per key, at least MinKeySize
	ValueSize int // bytes per value
}

// MinKeySize is the smallest KeySize for which keys stay unique.
const MinKeySize = 8

// Validate reports an impossible size, naming it.
func (g Gen) Validate() error {
	if g.KeySize < MinKeySize {
		return fmt.Errorf("bench: key size %d is below the minimum of %d", g.KeySize, MinKeySize)
	}
	if g.KeySize > 64<<10 {
		return fmt.Errorf("bench: key size %d exceeds 64 KiB", g.KeySize)
	}
	if g.ValueSize < 0 {
		return fmt.Errorf("bench: value size %d is negative", g.ValueSize)
	}
	return nil
}

// splitmix64 is a bijection on uint64 with good mixing (Steele et al.,
// "Fast splittable pseudorandom number generators", 2014).
func splitmix64(x uint64) uint64 {
	x += 0x9e3779b97f4a7c15
	x = (x ^ (x >> 30)) * 0xbf58476d1ce4e5b9
	x = (x ^ (x >> 27)) * 0x94d049bb133111eb
	return x ^ (x >> 31)
}

// Key appends the i-th key to dst. Keys of 16 bytes or more start with 16
// hex digits of a bijective hash of i, so they are unique and arrive in
// random order (fillrandom); shorter keys are i in zero-padded decimal.
func (g Gen) Key(dst []byte, i uint64) []byte {
	start := len(dst)
	if g.KeySize < 16 {
		s := strconv.FormatUint(i, 10)
		for n := len(s); n < g.KeySize; n++ {
			dst = append(dst, '0')
		}
		return append(dst, s...)
	}
	h := splitmix64(i ^ splitmix64(g.Seed))
	var b [8]byte
	binary.BigEndian.PutUint64(b[:], h)
	dst = fmt.Appendf(dst, "%x", b)
	for len(dst)-start < g.KeySize {
		dst = append(dst, 'k')
	}
	return dst
}

// Value appends the i-th value (lower-case letters) to dst. version lets
// an overwrite workload write a different value for the same key.
//
// Every 12 letters come from a fresh 64-bit draw (26^12 < 2^64), keyed by
// the value's seed and the chunk's position, so a value is as random as
// 26 letters allow: a compressor finds no repeats across values to
// exploit, only the letters' 4.7 bits of entropy per byte.
func (g Gen) Value(dst []byte, i, version uint64) []byte {
	seed := splitmix64(g.Seed ^ splitmix64(i) ^ version*0x632be59bd9b4e019)
	var x uint64
	for n := 0; n < g.ValueSize; n++ {
		if n%12 == 0 {
			x = splitmix64(seed + uint64(n/12)*0x9e3779b97f4a7c15)
		}
		dst = append(dst, 'a'+byte(x%26))
		x /= 26
	}
	return dst
}
