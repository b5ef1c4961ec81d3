package bitcask

import (
	"hash/crc32"
	"math/rand/v2"
	"testing"
)

// randomSegment returns a segment of size random bytes on a MemFS, with
// the given records written over them at the given offsets.
func randomSegment(t testing.TB, size int64, seed uint64, at map[int64][]byte) (*segment, []byte) {
	t.Helper()
	data := make([]byte, size)
	rng := rand.New(rand.NewPCG(seed, seed))
	for i := range data {
		data[i] = byte(rng.Uint32())
	}
	for off, rec := range at {
		copy(data[off:], rec)
	}
	fs := writeMemFile(t, "/seg", data)
	f, err := fs.Open("/seg")
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { f.Close() })
	seg := newSegment(1, "/seg", f)
	seg.bytes = size
	return seg, data
}

func TestCrcOfRangeMatchesDirectChecksum(t *testing.T) {
	const size = 3*resyncStride + 77
	seg, data := randomSegment(t, size, 1, nil)
	for _, start := range []int64{0, 1, resyncStride - 1, 100} {
		tl := &tail{seg: seg, start: start, end: size}
		if err := tl.checkpoint(); err != nil {
			t.Fatal(err)
		}
		rng := rand.New(rand.NewPCG(2, uint64(start)))
		for range 500 {
			a := start + rng.Int64N(size-start+1)
			b := a + rng.Int64N(size-a+1)
			got, err := tl.crcOfRange(a, b)
			if err != nil {
				t.Fatal(err)
			}
			if want := crc32.Checksum(data[a:b], crcTable); got != want {
				t.Fatalf("tail from %d: crc of [%d, %d) = %#08x, want %#08x", start, a, b, got, want)
			}
		}
	}
}

// TestRecordAfterFindsRecordAtAnyOffset plants one record in random bytes
// at offsets that test the edges of the scan: right after the damage, at
// and across the boundary of its 1 MiB read windows, at the end of the
// file. recordAfter must find exactly it, and nothing in the bytes alone.
func TestRecordAfterFindsRecordAtAnyOffset(t *testing.T) {
	rec := appendRecord(nil, typePut, 42, []byte("key"), []byte("a value of some length"))
	const size = resyncBufferSize + 5000
	const damage = 100
	for _, off := range []int64{
		damage + 1,
		damage + 1 + resyncBufferSize - maxRecordHeaderLen - 1, // last offset of the first window
		damage + 1 + resyncBufferSize - maxRecordHeaderLen,     // first offset of the second
		damage + 1 + resyncBufferSize - 10,                     // straddles the windows
		size - int64(len(rec)),                                 // ends the file
	} {
		seg, _ := randomSegment(t, size, 3, map[int64][]byte{off: rec})
		if got, err := recordAfter(seg, damage); err != nil || got != off {
			t.Errorf("record planted at %d: recordAfter = %d, %v", off, got, err)
		}
	}
	seg, _ := randomSegment(t, size, 3, nil)
	if got, err := recordAfter(seg, damage); err != nil || got != -1 {
		t.Errorf("random bytes: recordAfter = %d, %v; want -1", got, err)
	}
	// A record must start after the damage, not at it.
	seg, _ = randomSegment(t, size, 3, map[int64][]byte{damage: rec})
	if got, err := recordAfter(seg, damage); err != nil || got != -1 {
		t.Errorf("record at the damage offset: recordAfter = %d, %v; want -1", got, err)
	}
	// Nor may it run past the end of the file.
	seg, _ = randomSegment(t, size, 3, map[int64][]byte{size - int64(len(rec)) + 1: rec[:len(rec)-1]})
	if got, err := recordAfter(seg, damage); err != nil || got != -1 {
		t.Errorf("record cut by the end of the file: recordAfter = %d, %v; want -1", got, err)
	}
}
