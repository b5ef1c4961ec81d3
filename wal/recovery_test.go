package wal

import (
	"bytes"
	"errors"
	"strings"
	"testing"

	"github.com/kvs-lab/kvs"
	"github.com/kvs-lab/kvs/internal/vfs"
)

// tornTestRecords is a small log whose records end inside block 0, fill
// block 0 to within a few bytes (so block 0 ends in padding) and span
// blocks 1 and 2.
func tornTestRecords() [][]byte {
	return [][]byte{
		record(0, 10),
		record(1, 0),
		record(2, 300),
		record(3, BlockSize-4*HeaderSize-10-300-5), // leaves 5 bytes of block 0: padding
		record(4, BlockSize+200),                   // FIRST in block 1, LAST in block 2
		record(5, 1),
	}
}

// TestReaderStopsCleanlyAtEveryTruncation cuts a log at every byte and
// checks that the Reader returns exactly the whole records before the cut,
// without error, and reports the rest as a torn tail.
func TestReaderStopsCleanlyAtEveryTruncation(t *testing.T) {
	records := tornTestRecords()
	data, ends := encodeLog(t, testLogNum, records)
	step := 1
	if testing.Short() {
		step = 7 // still lands on every fragment boundary's neighbourhood often enough
	}
	check := func(cut int) {
		res := readBytes(data[:cut], testLogNum)
		if res.err != nil {
			t.Fatalf("cut at %d: %v", cut, res.err)
		}
		whole := 0
		var lastEnd int64
		for whole < len(ends) && ends[whole] <= int64(cut) {
			lastEnd = ends[whole]
			whole++
		}
		checkRecords(t, res.records, records[:whole])
		// Bytes after the last whole record are either the padding of
		// its block (a clean end) or the start of a record (torn).
		inPadding := BlockSize-lastEnd%BlockSize < HeaderSize && int64(cut) <= lastEnd+(BlockSize-lastEnd%BlockSize)
		wantTorn := int64(cut) > lastEnd && !inPadding
		if res.tornOK != wantTorn {
			t.Fatalf("cut at %d: torn tail %+v %v, want torn %v", cut, res.torn, res.tornOK, wantTorn)
		}
		if res.tornOK {
			if res.torn.Offset < lastEnd || res.torn.Offset >= lastEnd+HeaderSize || res.torn.Offset+res.torn.Bytes != int64(cut) {
				t.Fatalf("cut at %d after a record ending at %d: torn tail %+v", cut, lastEnd, res.torn)
			}
		}
	}
	for cut := 0; cut <= len(data); cut += step {
		check(cut)
	}
	// In short mode, make sure every spot near a record boundary is cut.
	for _, end := range ends {
		for cut := max(0, int(end)-HeaderSize-1); cut <= min(len(data), int(end)+HeaderSize+1); cut++ {
			check(cut)
		}
	}
}

// TestReaderTreatsZeroFilledTailAsTorn appends zeros, as a file system
// that extended the file but never wrote its pages leaves, and zeroes the
// end of the last record.
func TestReaderTreatsZeroFilledTailAsTorn(t *testing.T) {
	records := tornTestRecords()
	data, ends := encodeLog(t, testLogNum, records)
	for _, n := range []int{1, HeaderSize - 1, HeaderSize, 100, BlockSize, 3*BlockSize + 17} {
		log := append(bytes.Clone(data), make([]byte, n)...)
		res := readBytes(log, testLogNum)
		if res.err != nil {
			t.Fatalf("%d zeros: %v", n, res.err)
		}
		checkRecords(t, res.records, records)
		if !res.tornOK || res.torn.Offset != int64(len(data)) || res.torn.Bytes != int64(n) {
			t.Fatalf("%d zeros: torn tail %+v %v, want %d bytes at %d", n, res.torn, res.tornOK, n, len(data))
		}
	}
	// The last record's end never reached the disk: its tail reads as
	// zeros, so it fails its checksum with only zeros after it.
	last := ends[len(ends)-2] // record 5 starts here
	for _, from := range []int{int(last) + 5, int(last) + HeaderSize, len(data) - 1} {
		log := bytes.Clone(data)
		clear(log[from:])
		res := readBytes(log, testLogNum)
		if res.err != nil {
			t.Fatalf("zeros from %d: %v", from, res.err)
		}
		checkRecords(t, res.records, records[:len(records)-1])
		if !res.tornOK || res.torn.Offset != last {
			t.Fatalf("zeros from %d: torn tail %+v %v, want at %d", from, res.torn, res.tornOK, last)
		}
	}
	// A zeroed LAST fragment of a record spanning blocks drops the whole
	// record, from its FIRST fragment.
	log := bytes.Clone(data[:ends[4]])
	clear(log[2*BlockSize:])
	res := readBytes(log, testLogNum)
	if res.err != nil {
		t.Fatal(res.err)
	}
	checkRecords(t, res.records, records[:4])
	if !res.tornOK || res.torn.Offset != BlockSize || res.torn.Offset+res.torn.Bytes != ends[4] {
		t.Fatalf("torn tail %+v %v, want from %d to %d", res.torn, res.tornOK, BlockSize, ends[4])
	}
}

// TestReaderReportsCorruptionInTheMiddle damages one fragment followed by
// valid ones and expects a *kvs.CorruptionError naming the file and the
// damaged fragment's offset, after the records before it.
func TestReaderReportsCorruptionInTheMiddle(t *testing.T) {
	records := tornTestRecords()
	data, ends := encodeLog(t, testLogNum, records)
	rec2 := ends[1] // record 2 starts where record 1 ends
	tests := []struct {
		name    string
		pos     int64 // byte to change
		xor     byte
		off     int64 // the damaged fragment
		records int   // records read before the error
		reason  string
	}{
		{"checksum byte", rec2, 0x01, rec2, 2, "checksum"},
		{"payload byte", rec2 + HeaderSize + 100, 0x80, rec2, 2, "checksum"},
		{"length grows past the block", rec2 + 5, 0xff, rec2, 2, "past the end of its block"},
		{"length shrinks", rec2 + 4, 0x04, rec2, 2, "checksum"},
		{"type", rec2 + 6, 0x0c, rec2, 2, "unknown fragment type"},
		{"log number (checksummed)", rec2 + 7, 0x01, rec2, 2, "checksum"},
		{"first record", 3, 0x01, 0, 0, "checksum"},
		{"padding", BlockSize - 2, 0x40, BlockSize - 5, 4, "padding"},
		{"FIRST fragment of a record spanning blocks", BlockSize + 20, 0x01, BlockSize, 4, "checksum"},
		{"LAST fragment followed by a record", 2*BlockSize + 2, 0x01, 2 * BlockSize, 4, "checksum"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			log := bytes.Clone(data)
			log[tt.pos] ^= tt.xor
			res := readBytes(log, testLogNum)
			checkCorruption(t, res.err, "test.log", tt.off)
			if !strings.Contains(res.err.Error(), tt.reason) {
				t.Errorf("error %q does not say %q", res.err, tt.reason)
			}
			checkRecords(t, res.records, records[:tt.records])
			if res.tornOK {
				t.Errorf("torn tail %+v reported with a corruption", res.torn)
			}
		})
	}
}

// TestReaderTakesDamagedLastRecordForTornTail documents the limit of the
// rule: damage to the last record, with nothing after it, looks exactly
// like a torn write, so it is cut, not reported.
func TestReaderTakesDamagedLastRecordForTornTail(t *testing.T) {
	records := tornTestRecords()
	data, ends := encodeLog(t, testLogNum, records)
	data[len(data)-1] ^= 1
	res := readBytes(data, testLogNum)
	if res.err != nil {
		t.Fatal(res.err)
	}
	checkRecords(t, res.records, records[:len(records)-1])
	if !res.tornOK || res.torn.Offset != ends[len(ends)-2] {
		t.Fatalf("torn tail %+v %v", res.torn, res.tornOK)
	}
}

// TestReaderRejectsFragmentsOutOfOrder hand-builds logs whose fragments
// are whole and checksummed but in an order no Writer produces.
func TestReaderRejectsFragmentsOutOfOrder(t *testing.T) {
	frag := func(typ fragmentType, payload string) []byte {
		return appendFragment(nil, typ, testLogNum, []byte(payload))
	}
	cat := func(parts ...[]byte) []byte { return bytes.Join(parts, nil) }
	tests := []struct {
		name    string
		log     []byte
		off     int64
		records int
	}{
		{"MIDDLE first", cat(frag(typeMiddle, "ab"), frag(typeFull, "c")), 0, 0},
		{"LAST first", cat(frag(typeFull, "a"), frag(typeLast, "b")), HeaderSize + 1, 1},
		{"FULL inside a record", cat(frag(typeFirst, "ab"), frag(typeFull, "c")), HeaderSize + 2, 0},
		{"FIRST inside a record", cat(frag(typeFirst, "ab"), frag(typeMiddle, "c"), frag(typeFirst, "d"), frag(typeLast, "e")), 2*HeaderSize + 3, 0},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			res := readBytes(tt.log, testLogNum)
			checkCorruption(t, res.err, "test.log", tt.off)
			if len(res.records) != tt.records {
				t.Errorf("read %d records before the error, want %d", len(res.records), tt.records)
			}
		})
	}
	// Fragments need not be as long as the block allows.
	res := readBytes(cat(frag(typeFirst, "ab"), frag(typeMiddle, ""), frag(typeMiddle, "c"), frag(typeLast, "d")), testLogNum)
	if res.err != nil || len(res.records) != 1 || string(res.records[0]) != "abcd" {
		t.Fatalf("read %q, %v; want [abcd]", res.records, res.err)
	}
}

// TestReaderIgnoresStaleDataOfAnotherLog simulates a reused file: a new
// log written over the start of an old one. The old log's fragments are
// whole and checksummed but carry the old log number, so the Reader stops
// where the new log ends.
func TestReaderIgnoresStaleDataOfAnotherLog(t *testing.T) {
	var old, cur [][]byte
	for i := 0; i < 50; i++ {
		old = append(old, record(1000+i, 500)) // fragments aligned with the new log's
	}
	for i := 0; i < 10; i++ {
		cur = append(cur, record(i, 500))
	}
	oldData, _ := encodeLog(t, 6, old)
	curData, _ := encodeLog(t, 7, cur)
	log := bytes.Clone(oldData)
	copy(log, curData)
	res := readBytes(log, 7)
	if res.err != nil {
		t.Fatal(res.err)
	}
	checkRecords(t, res.records, cur)
	if !res.tornOK || res.torn.Offset != int64(len(curData)) || !strings.Contains(res.torn.Reason, "stale") {
		t.Fatalf("torn tail %+v %v, want stale data from %d", res.torn, res.tornOK, len(curData))
	}

	// A Reader given the wrong log number reads nothing of it.
	res = readBytes(curData, 8)
	if res.err != nil || len(res.records) != 0 || !res.tornOK || res.torn.Offset != 0 {
		t.Fatalf("log 7 read as log 8: %d records, err %v, torn tail %+v", len(res.records), res.err, res.torn)
	}
}

// TestReaderErrorsAreSticky checks that Next keeps returning its first
// error, and io.EOF after the end.
func TestReaderErrorsAreSticky(t *testing.T) {
	data, _ := encodeLog(t, testLogNum, [][]byte{record(0, 10), record(1, 10), record(2, 10)})
	data[25] ^= 1 // record 1's payload
	r := NewReader(&bytesFile{data: data}, "test.log", testLogNum)
	if _, err := r.Next(); err != nil {
		t.Fatal(err)
	}
	_, err1 := r.Next()
	_, err2 := r.Next()
	if err1 == nil || err1 != err2 {
		t.Fatalf("errors %v then %v, want the same corruption twice", err1, err2)
	}
}

// TestReaderReportsReadErrors checks that a failed read is returned as
// such, wrapped with the file's name, and not taken for damage.
func TestReaderReportsReadErrors(t *testing.T) {
	mem := vfs.NewMem()
	w := createLog(t, mem, "/000009.log", 9)
	for i := 0; i < 3; i++ {
		if _, err := w.WriteRecord(record(i, BlockSize/2)); err != nil {
			t.Fatal(err)
		}
	}
	if err := w.Close(); err != nil {
		t.Fatal(err)
	}
	for k := int64(1); k <= 2; k++ { // the log is two blocks: two reads
		fsys := vfs.Inject(mem, vfs.OnIndex(k, vfs.ErrIO, vfs.OpRead))
		res := readFile(t, fsys, "/000009.log", 9)
		if !errors.Is(res.err, vfs.ErrIO) || errors.Is(res.err, kvs.ErrCorruption) || !strings.Contains(res.err.Error(), "/000009.log") {
			t.Fatalf("read %d failed: got %v, want EIO naming the file", k, res.err)
		}
	}
}

// TestWaitDurableRejectsOffsetPastTheEnd checks that waiting for bytes
// never written fails instead of fsyncing forever.
func TestWaitDurableRejectsOffsetPastTheEnd(t *testing.T) {
	w := NewWriter(&bytesFile{}, 1)
	end, err := w.WriteRecord([]byte("x"))
	if err != nil {
		t.Fatal(err)
	}
	if err := w.WaitDurable(end + 1); err == nil {
		t.Fatal("WaitDurable past the end succeeded")
	}
	if err := w.WaitDurable(end); err != nil {
		t.Fatal(err)
	}
}
