package wal

import (
	"bytes"
	"math/rand"
	"testing"
)

// TestRecordsRoundTripAtBlockBoundaries writes sequences of records
// chosen to land on every interesting spot of a block and reads them back.
func TestRecordsRoundTripAtBlockBoundaries(t *testing.T) {
	const (
		H = HeaderSize
		P = MaxFragmentPayload
	)
	tests := []struct {
		name  string
		sizes []int
		// size is the log's expected size; 0 skips the check.
		size int64
	}{
		{"empty record", []int{0}, H},
		{"one byte", []int{1}, H + 1},
		{"no records", nil, 0},
		{"record fills a block exactly", []int{P, 1}, BlockSize + H + 1},
		{"block ends exactly one header later", []int{P - H, 0, 1}, BlockSize + H + 1},
		// The second record gets an empty FIRST fragment in the last
		// HeaderSize bytes of block 0 and a LAST fragment in block 1.
		{"empty first fragment", []int{P - H, 5}, BlockSize + H + 5},
		// 10 bytes are left in block 0: too few for a header, so they are
		// padding and the second record starts block 1.
		{"header would straddle blocks", []int{P - 10, 7}, BlockSize + H + 7},
		{"one byte over a block", []int{P + 1}, BlockSize + H + 1},
		{"exactly two blocks of payload", []int{2 * P}, 2 * BlockSize},
		{"three blocks and more", []int{3*BlockSize + 5}, 3*BlockSize + 4*H + 5},
		{"small records across blocks", []int{100, 30000, 100, 5000, 0, 2, 70000, 1}, 0},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			var records [][]byte
			for i, n := range tt.sizes {
				records = append(records, record(i, n))
			}
			data, ends := encodeLog(t, testLogNum, records)
			if tt.size != 0 && int64(len(data)) != tt.size {
				t.Errorf("log is %d bytes, want %d", len(data), tt.size)
			}
			if len(ends) > 0 && ends[len(ends)-1] != int64(len(data)) {
				t.Errorf("last end offset %d, log size %d", ends[len(ends)-1], len(data))
			}
			res := readBytes(data, testLogNum)
			if res.err != nil || res.tornOK {
				t.Fatalf("read: err %v, torn tail %+v %v", res.err, res.torn, res.tornOK)
			}
			checkRecords(t, res.records, records)
			// Each record starts at the previous one's end, or after the
			// padding of a block tail too short for a header.
			for i, off := range res.offsets {
				var prev int64
				if i > 0 {
					prev = ends[i-1]
				}
				if left := BlockSize - prev%BlockSize; left < HeaderSize {
					prev += left
				}
				if off != prev {
					t.Errorf("record %d read at offset %d, want %d", i, off, prev)
				}
			}
		})
	}
}

// TestFragmentLayout checks the fragments a record is split into, as
// docs/formats/wal.md's fragmentation example describes them.
func TestFragmentLayout(t *testing.T) {
	data, _ := encodeLog(t, testLogNum, [][]byte{record(0, 100), record(1, 40000)})
	type frag struct {
		off    int
		typ    fragmentType
		length int
	}
	want := []frag{
		{0, typeFull, 100},
		{111, typeFirst, 32646},
		{32768, typeLast, 7354},
	}
	var got []frag
	for off := 0; off < len(data); {
		h := decodeHeader(data[off:])
		got = append(got, frag{off, h.typ, h.length})
		off += HeaderSize + h.length
	}
	if len(got) != len(want) {
		t.Fatalf("fragments %v, want %v", got, want)
	}
	for i := range got {
		if got[i] != want[i] {
			t.Errorf("fragment %d: %+v, want %+v", i, got[i], want[i])
		}
	}
	if len(data) != 32768+HeaderSize+7354 {
		t.Errorf("log is %d bytes, want %d", len(data), 32768+HeaderSize+7354)
	}
}

// TestRandomRecordsMatchModel writes records of random sizes and reads
// them back against the list of what was written.
func TestRandomRecordsMatchModel(t *testing.T) {
	r := rand.New(rand.NewSource(testSeed(t)))
	n := 2000
	if testing.Short() {
		n = 300
	}
	var model [][]byte
	for i := 0; i < n; i++ {
		rec := make([]byte, randomSize(r))
		r.Read(rec)
		model = append(model, rec)
	}
	data, _ := encodeLog(t, testLogNum, model)
	res := readBytes(data, testLogNum)
	if res.err != nil || res.tornOK {
		t.Fatalf("read: err %v, torn tail %+v", res.err, res.torn)
	}
	checkRecords(t, res.records, model)
}

// TestChecksumIsCRC32C pins the checksum algorithm the format names.
func TestChecksumIsCRC32C(t *testing.T) {
	b := append(make([]byte, 4), "123456789"...)
	if got := fragmentChecksum(b); got != 0xe3069283 {
		t.Fatalf("crc32c(\"123456789\") = %#x, want 0xe3069283", got)
	}
}

// TestWriterReusesNoCallerMemory checks that a record's bytes are copied:
// the caller may reuse p once WriteRecord returns.
func TestWriterReusesNoCallerMemory(t *testing.T) {
	f := &bytesFile{}
	w := NewWriter(f, testLogNum)
	p := []byte("first")
	if _, err := w.WriteRecord(p); err != nil {
		t.Fatal(err)
	}
	copy(p, "XXXXX")
	if err := w.Flush(); err != nil {
		t.Fatal(err)
	}
	res := readBytes(f.data, testLogNum)
	if len(res.records) != 1 || !bytes.Equal(res.records[0], []byte("first")) {
		t.Fatalf("read %q, want [first]", res.records)
	}
}

// TestWriterGathersRecordsIntoBlockWrites checks when records reach the
// file: not one by one, but once a block's worth has gathered, and at a
// Flush or Sync.
func TestWriterGathersRecordsIntoBlockWrites(t *testing.T) {
	f := &bytesFile{}
	w := NewWriter(f, testLogNum)
	rec := bytes.Repeat([]byte("r"), 1000)
	if _, err := w.WriteRecord(rec); err != nil {
		t.Fatal(err)
	}
	if len(f.data) != 0 {
		t.Fatalf("one small record wrote %d bytes to the file at once", len(f.data))
	}
	n := 1
	for ; len(f.data) == 0; n++ {
		if n > BlockSize/len(rec)+1 {
			t.Fatalf("%d records (%d bytes) gathered without a write", n, w.Size())
		}
		if _, err := w.WriteRecord(rec); err != nil {
			t.Fatal(err)
		}
	}
	if int64(len(f.data)) != w.Size() {
		t.Fatalf("file holds %d bytes after the block filled, log size %d", len(f.data), w.Size())
	}
	if _, err := w.WriteRecord([]byte("last")); err != nil {
		t.Fatal(err)
	}
	if err := w.Flush(); err != nil {
		t.Fatal(err)
	}
	res := readBytes(f.data, testLogNum)
	if len(res.records) != n+1 || !bytes.Equal(res.records[n], []byte("last")) {
		t.Fatalf("read %d records, want %d ending in \"last\"", len(res.records), n+1)
	}
}
