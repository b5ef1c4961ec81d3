package bitcask

import (
	"bytes"
	"encoding/binary"
	"encoding/hex"
	"errors"
	"fmt"
	"hash/crc32"
	"strings"
	"testing"

	"github.com/kvs-lab/kvs"
)

func TestRecordRoundTrips(t *testing.T) {
	for _, tc := range []struct {
		name       string
		typ        byte
		seq        uint64
		key, value string
		headerLen  int
	}{
		{"put", typePut, 1, "k", "v", 8},
		{"put with empty value", typePut, 7, "key", "", 8},
		{"tombstone", typeDelete, 300, "gone", "", 9},
		{"put in a batch", typePut | typeBatchContinues, 1 << 40, "a", "b", 13},
		{"tombstone in a batch", typeDelete | typeBatchContinues, 2, "a", "", 8},
		{"largest seq", typePut, ^uint64(0), "k", "v", 4 + 1 + 10 + 1 + 1},
		{"largest key", typePut, 1, strings.Repeat("k", kvs.MaxKeySize), "v", 4 + 1 + 1 + 3 + 1},
		{"binary", typePut, 9, "\x00\xff", "\x00\x01\x80", 8},
	} {
		t.Run(tc.name, func(t *testing.T) {
			rec := appendRecord(nil, tc.typ, tc.seq, []byte(tc.key), []byte(tc.value))
			if len(rec) != recordLen(tc.seq, len(tc.key), len(tc.value)) {
				t.Fatalf("encoded %d bytes, recordLen says %d", len(rec), recordLen(tc.seq, len(tc.key), len(tc.value)))
			}
			h, k, v, err := decodeRecord(rec)
			if err != nil {
				t.Fatalf("decode: %v", err)
			}
			if h.typ != tc.typ || h.seq != tc.seq || string(k) != tc.key || string(v) != tc.value || h.headerLen != tc.headerLen {
				t.Fatalf("decoded type %#x seq %d key %.10q value %q header %d; want %#x %d %.10q %q %d",
					h.typ, h.seq, k, v, h.headerLen, tc.typ, tc.seq, tc.key, tc.value, tc.headerLen)
			}
			if h.tombstone() != (tc.typ&typeMask == typeDelete) || h.batchContinues() != (tc.typ&typeBatchContinues != 0) {
				t.Fatalf("tombstone %v batch %v for type %#x", h.tombstone(), h.batchContinues(), tc.typ)
			}
			if got := valueLenOf(int64(len(rec)), tc.seq, len(tc.key)); got != len(tc.value) {
				t.Fatalf("valueLenOf = %d, want %d", got, len(tc.value))
			}
		})
	}
}

// TestRecordEncodingMatchesSpec checks the worked example of
// docs/formats/bitcask.md byte for byte.
func TestRecordEncodingMatchesSpec(t *testing.T) {
	got := hex.EncodeToString(appendRecord(nil, typePut, 5, []byte("key"), []byte("value")))
	// crc32c | type | seq | klen | vlen | "key" | "value"
	want := "e171b0cd" + "01" + "05" + "03" + "05" + "6b6579" + "76616c7565"
	if got != want {
		t.Fatalf("record = %s, want %s", got, want)
	}
	// The standard CRC-32C check value anchors the algorithm.
	if got := crc32.Checksum([]byte("123456789"), crcTable); got != 0xe3069283 {
		t.Fatalf("crc32c(\"123456789\") = %#x, want 0xe3069283", got)
	}
	if got, want := hex.EncodeToString(appendFileHeader(nil, segmentMagic, segmentVersion)), "6b76736263736567"+"01000000"+"90ee0d48"; got != want {
		t.Fatalf("segment header = %s, want %s", got, want)
	}
}

func TestDecodeRecordRejectsDamage(t *testing.T) {
	good := appendRecord(nil, typePut, 5, []byte("key"), []byte("value"))
	flip := func(i int) []byte {
		b := bytes.Clone(good)
		b[i] ^= 0x01
		return b
	}
	for _, tc := range []struct {
		name string
		rec  []byte
		want string
	}{
		{"empty", nil, "shorter than its header"},
		{"cut header", good[:6], "shorter than its header"},
		{"cut body", good[:len(good)-1], "says 16 bytes, have 15"},
		{"extra byte", append(bytes.Clone(good), 0), "says 16 bytes, have 17"},
		{"flipped crc", flip(0), "checksum mismatch"},
		{"flipped value", flip(len(good) - 1), "checksum mismatch"},
		{"unknown type", append(bytes.Clone(good[:4]), append([]byte{3}, good[5:]...)...), "unknown record type"},
		{"empty key", []byte{0, 0, 0, 0, 1, 1, 0, 0}, "empty key"},
		{"tombstone with value", []byte{0, 0, 0, 0, 2, 1, 1, 1, 'k', 'v'}, "tombstone with a 1-byte value"},
		{"key too long", []byte{0, 0, 0, 0, 1, 1, 0x81, 0x80, 0x04, 0}, "key length 65537 exceeds"},
		{"value too long", []byte{0, 0, 0, 0, 1, 1, 1, 0x81, 0x80, 0x80, 0x80, 0x04}, "value length 1073741825 exceeds"},
		{"seq overflow", append([]byte{0, 0, 0, 0, 1}, bytes.Repeat([]byte{0xff}, 11)...), "overflows 64 bits"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			_, _, _, err := decodeRecord(tc.rec)
			if err == nil || !strings.Contains(err.Error(), tc.want) {
				t.Fatalf("decode = %v, want an error containing %q", err, tc.want)
			}
		})
	}
}

func TestFileHeaderChecks(t *testing.T) {
	good := appendFileHeader(nil, hintMagic, hintVersion)
	if reason := checkFileHeader(good, hintMagic, hintVersion); reason != "" {
		t.Fatalf("good header: %s", reason)
	}
	staleCRC := bytes.Clone(good)
	staleCRC[8] = 3 // version 3, the crc still that of version 2
	for _, tc := range []struct {
		name string
		b    []byte
		want string
	}{
		{"short", good[:15], "shorter than its 16-byte header"},
		{"segment magic in a hint", appendFileHeader(nil, segmentMagic, hintVersion), "bad magic"},
		{"other magic", appendFileHeader(nil, "kvsother", hintVersion), "bad magic"},
		{"bad crc", append(bytes.Clone(good[:12]), 1, 2, 3, 4), "checksum mismatch"},
		{"zeros", make([]byte, 16), "checksum mismatch"},
		{"version changed, crc stale", staleCRC, "checksum mismatch"},
		{"version 1", appendFileHeader(nil, hintMagic, 1), "unsupported format version 1, want 2"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			if reason := checkFileHeader(tc.b, hintMagic, hintVersion); !strings.Contains(reason, tc.want) {
				t.Fatalf("reason %q, want it to contain %q", reason, tc.want)
			}
		})
	}
}

// encodeHint returns a whole version-2 hint file listing entries (their
// offsets are ignored: the format has none).
func encodeHint(entries ...hintEntry) []byte {
	b := appendFileHeader(nil, hintMagic, hintVersion)
	var prev uint64
	for _, e := range entries {
		b = appendHintEntry(b, prev, e.seq, e.key, e.size)
		prev = e.seq
	}
	return appendHintTrailer(b, crc32.Checksum(b, crcTable), uint64(len(entries)))
}

// decodeHint decodes every entry of the whole hint file b with the
// engine's loader, for a segment of segSize bytes.
func decodeHint(t testing.TB, b []byte, segSize int64) ([]hintEntry, error) {
	t.Helper()
	fs := writeMemFile(t, "/hint", b)
	var got []hintEntry
	_, err := loadHint(fs, "/hint", segSize, func(e hintEntry) {
		e.key = bytes.Clone(e.key)
		got = append(got, e)
	})
	return got, err
}

func TestHintRoundTrips(t *testing.T) {
	for _, tc := range []struct {
		name string
		seqs []uint64
		keys []string
		size int64 // of every record
	}{
		{"empty", nil, nil, 0},
		{"one", []uint64{1}, []string{"k"}, minRecordLen},
		{"increasing", []uint64{5, 6, 9, 1000}, []string{"a", "b", "c", "d"}, 100},
		{"decreasing", []uint64{1000, 999, 5}, []string{"a", "b", "c"}, 100},
		{"wrapping deltas", []uint64{^uint64(0), 1, 1 << 63, 0}, []string{"a", "b", "c", "d"}, 40},
		{"large", []uint64{1 << 50}, []string{strings.Repeat("x", kvs.MaxKeySize)}, maxRecordLen},
	} {
		t.Run(tc.name, func(t *testing.T) {
			var want []hintEntry
			off := int64(fileHeaderLen)
			for i, seq := range tc.seqs {
				want = append(want, hintEntry{seq: seq, key: []byte(tc.keys[i]), offset: off, size: tc.size})
				off += tc.size
			}
			got, err := decodeHint(t, encodeHint(want...), off)
			if err != nil {
				t.Fatal(err)
			}
			if fmt.Sprint(got) != fmt.Sprint(want) {
				t.Fatalf("decoded %v\nwant %v", got, want)
			}
		})
	}
}

// TestHintEntryOfSmallRecordTakes19Bytes pins the entry size that keeps
// space amplification after a merge under 1.3 (see
// TestMergeReclaimsSpace): a 16-byte key, a 126-byte record and the next
// sequence number cost 19 bytes, and a file adds 36.
func TestHintEntryOfSmallRecordTakes19Bytes(t *testing.T) {
	if n := len(appendHintEntry(nil, 123456, 123457, []byte(keyN(1)), 126)); n != 19 {
		t.Fatalf("hint entry of 16-byte key is %d bytes, want 19", n)
	}
	if n := len(encodeHint()); n != fileHeaderLen+hintTrailerLen || hintTrailerLen != 20 {
		t.Fatalf("empty hint file is %d bytes, want 16 + 20", n)
	}
}

// TestHintRejectsDamage checks that the engine's loader refuses every
// flawed hint file as a whole, and that ScanHint reports the flaw after
// the entries before it. They name the same flaw but for a file without
// its trailer: the loader checks the trailer first, ScanHint parses the
// entries first.
func TestHintRejectsDamage(t *testing.T) {
	entries := []hintEntry{
		{seq: 3, key: []byte("key"), size: 14},
		{seq: 4, key: []byte("k2"), size: 13},
	}
	good := encodeHint(entries...)
	const segSize = fileHeaderLen + 14 + 13
	end := len(good) - hintTrailerLen // where the trailer starts
	// reseal recomputes the checksum of a file whose body was changed, so
	// that only the change is wrong.
	reseal := func(b []byte) []byte {
		body := b[:len(b)-hintTrailerLen]
		count := binary.LittleEndian.Uint64(b[len(body):])
		return appendHintTrailer(bytes.Clone(body), crc32.Checksum(body, crcTable), count)
	}
	withEntry := func(prevSeq, seq uint64, key string, size int64) []byte {
		b := bytes.Clone(good[:end])
		b = appendHintEntry(b, prevSeq, seq, []byte(key), size)
		return appendHintTrailer(b, crc32.Checksum(b, crcTable), 3)
	}
	flip := func(i int) []byte {
		b := bytes.Clone(good)
		b[i] ^= 1
		return b
	}
	countWrong := bytes.Clone(good)
	countWrong[end] = 3
	type flaw struct {
		offset int64
		reason string // a part of it
	}
	for _, tc := range []struct {
		name    string
		b       []byte
		segSize int64
		load    flaw
		scan    *flaw // nil: the same as load; &flaw{}: ScanHint accepts the file
		entries int   // that ScanHint reports before the flaw
	}{
		{"flipped key byte", flip(fileHeaderLen + 5), segSize, flaw{int64(end + 8), "checksum mismatch"}, nil, 2},
		{"flipped crc", flip(end + 8), segSize, flaw{int64(end + 8), "checksum mismatch"}, nil, 2},
		{"flipped header", flip(2), segSize, flaw{0, "file header checksum mismatch"}, nil, 0},
		{"count wrong", reseal(countWrong), segSize, flaw{int64(end), "the trailer counts 3 entries, the file holds 2"}, nil, 2},
		{"trailer cut", good[:len(good)-1], segSize, flaw{int64(len(good) - 1), "trailer: cut short"}, &flaw{int64(end), "empty key (the file does not end with its \"kvsbhend\" trailer: cut short?)"}, 2},
		{"trailer gone", good[:end], segSize, flaw{int64(end), "does not end with its \"kvsbhend\" trailer"}, nil, 2},
		{"only a header", good[:fileHeaderLen], fileHeaderLen, flaw{fileHeaderLen, "does not end with its"}, nil, 0},
		{"segment longer", good, segSize + 1, flaw{int64(end), "the listed records end at offset 43, their segment at 44"}, &flaw{}, 2},
		{"segment shorter", good, segSize - 1, flaw{int64(end), "the listed records end at offset 43, their segment at 42"}, &flaw{}, 2},
		{"empty key", withEntry(4, 5, "", 10), segSize + 10, flaw{int64(end), "empty key"}, nil, 2},
		{"record too small for its key", withEntry(4, 5, "abc", 10), segSize + 10, flaw{int64(end), "hint record size 10 is impossible"}, nil, 2},
		{"key too long", reseal(append(append(bytes.Clone(good[:end]), 2, 0x81, 0x80, 0x04, 20), good[end:]...)), segSize, flaw{int64(end), "key length 65537 exceeds"}, nil, 2},
		{"delta overflow", reseal(append(append(bytes.Clone(good[:end]), bytes.Repeat([]byte{0xff}, 11)...), good[end:]...)), segSize, flaw{int64(end), "overflows 64 bits"}, nil, 2},
	} {
		t.Run(tc.name, func(t *testing.T) {
			_, err := decodeHint(t, tc.b, tc.segSize)
			var ce *kvs.CorruptionError
			if !errors.As(err, &ce) || ce.Offset != tc.load.offset || !strings.Contains(ce.Reason, tc.load.reason) {
				t.Fatalf("loadHint = %v, want a corruption at offset %d containing %q", err, tc.load.offset, tc.load.reason)
			}
			want := tc.load
			if tc.scan != nil {
				want = *tc.scan
			}
			n, bad := 0, 0
			err = ScanHint(writeMemFile(t, "/hint", tc.b), "/hint", func(h HintInfo) error {
				n++
				if !h.ChecksumOK {
					bad++
				}
				return nil
			})
			if strings.Contains(want.reason, "checksum mismatch") && bad != n {
				t.Errorf("ScanHint reported %d of %d entries of a file failing its checksum as ChecksumOK", n-bad, n)
			}
			if want == (flaw{}) {
				// Only the segment is wrong, which ScanHint does not see.
				if err != nil || n != tc.entries {
					t.Fatalf("ScanHint = %v after %d entries, want nil after %d", err, n, tc.entries)
				}
				return
			}
			if !errors.As(err, &ce) || ce.Offset != want.offset || n != tc.entries || !strings.Contains(ce.Reason, want.reason) {
				t.Fatalf("ScanHint = %v after %d entries, want a corruption at offset %d containing %q after %d",
					err, n, want.offset, want.reason, tc.entries)
			}
		})
	}
}

// TestOldHintIsIgnored checks that a version-1 hint file, well formed, is
// refused as errOldHint, not as damage, and that ScanHint says why.
func TestOldHintIsIgnored(t *testing.T) {
	b := appendFileHeader(nil, hintMagic, 1)
	b = append(b, 0x57, 0x4e, 0xe7, 0x04, 0x05, 0x03, 0x10, 0x10, 'k', 'e', 'y') // a version-1 entry
	if _, err := decodeHint(t, b, 32); !errors.Is(err, errOldHint) {
		t.Fatalf("loadHint of a version-1 hint = %v, want errOldHint", err)
	}
	err := ScanHint(writeMemFile(t, "/hint", b), "/hint", func(HintInfo) error { return nil })
	var ce *kvs.CorruptionError
	if !errors.As(err, &ce) || !strings.Contains(ce.Reason, "version 1") {
		t.Fatalf("ScanHint of a version-1 hint = %v", err)
	}
}

func TestDoneRoundTripsAndRejectsDamage(t *testing.T) {
	b := encodeDone([]uint64{1, 2, 7}, []uint64{9, 10})
	if !strings.HasPrefix(string(b), "input 1\ninput 2\ninput 7\noutput 9\noutput 10\ncrc32c ") {
		t.Fatalf("DONE = %q", b)
	}
	in, out, err := decodeDone("DONE", b)
	if err != nil || len(in) != 3 || in[2] != 7 || len(out) != 2 || out[1] != 10 {
		t.Fatalf("decode = %v %v %v", in, out, err)
	}
	for _, tc := range []struct {
		name string
		b    string
	}{
		{"empty", ""},
		{"no newline", strings.TrimSuffix(string(b), "\n")},
		{"changed id", strings.Replace(string(b), "input 7", "input 8", 1)},
		{"no crc line", "input 1\n"},
		{"bad word", "inputs 1\n" + crcLine("inputs 1\n")},
		{"zero id", "input 0\n" + crcLine("input 0\n")},
		{"padded id", "input 01\n" + crcLine("input 01\n")},
	} {
		t.Run(tc.name, func(t *testing.T) {
			_, _, err := decodeDone("DONE", []byte(tc.b))
			var ce *kvs.CorruptionError
			if !errors.As(err, &ce) {
				t.Fatalf("decode = %v, want a *kvs.CorruptionError", err)
			}
		})
	}
}

// crcLine returns the checksum line a DONE file with body ends with, so
// that tests can make well-checksummed bad files.
func crcLine(body string) string {
	return string(appendDoneChecksum([]byte(body)))[len(body):]
}

func TestParseFileName(t *testing.T) {
	for _, tc := range []struct {
		name string
		id   uint64
		kind FileKind
	}{
		{"000007.data", 7, FileSegment},
		{"000007.hint", 7, FileHint},
		{"1234567.data", 1234567, FileSegment},
		{"000000.data", 0, FileSegment},
		{"LOCK", 0, FileLock},
		{"ENGINE", 0, FileEngine},
		{"7.data", 0, FileUnknown},
		{"0000007.data", 0, FileUnknown},
		{"00000x.data", 0, FileUnknown},
		{"000007.dat", 0, FileUnknown},
		{"000007.data.tmp", 0, FileUnknown},
		{"-00007.data", 0, FileUnknown},
		{"99999999999999999999999.data", 0, FileUnknown},
		{"merge", 0, FileUnknown},
		{"ENGINE.tmp", 0, FileUnknown},
	} {
		t.Run(tc.name, func(t *testing.T) {
			id, kind := ParseFileName(tc.name)
			if id != tc.id || kind != tc.kind {
				t.Fatalf("ParseFileName(%q) = %d, %v; want %d, %v", tc.name, id, kind, tc.id, tc.kind)
			}
			if kind == FileSegment && segmentName(id) != tc.name {
				t.Fatalf("segmentName(%d) = %q", id, segmentName(id))
			}
		})
	}
}

func TestAllocSizeRoundsUpToSizeClasses(t *testing.T) {
	for _, tc := range []struct{ n, want int }{
		{0, 0}, {1, 8}, {8, 8}, {9, 16}, {16, 16}, {17, 24}, {33, 48}, {100, 112}, {257, 288}, {1000, 1024}, {1025, 1152}, {40000, 40960},
	} {
		if got := allocSize(tc.n); got != int64(tc.want) {
			t.Errorf("allocSize(%d) = %d, want %d", tc.n, got, tc.want)
		}
	}
}

// TestSegmentWorkedExample checks the worked example of
// docs/formats/bitcask.md: the bytes the engine writes and what
// ScanSegment reads back from them.
func TestSegmentWorkedExample(t *testing.T) {
	const doc = "6b76736263736567" + "01000000" + "90ee0d48" +
		"e171b0cd0105030" + "56b6579" + "76616c7565" +
		"aac2b26a020603006b6579" +
		"04e1d6258107010161" + "31" +
		"6a0878730108010162" + "32"
	var b []byte
	b = appendFileHeader(b, segmentMagic, segmentVersion)
	b = appendRecord(b, typePut, 5, []byte("key"), []byte("value"))
	b = appendRecord(b, typeDelete, 6, []byte("key"), nil)
	b = appendRecord(b, typePut|typeBatchContinues, 7, []byte("a"), []byte("1"))
	b = appendRecord(b, typePut, 8, []byte("b"), []byte("2"))
	if got := hex.EncodeToString(b); got != doc {
		t.Fatalf("segment = %s, the doc says %s", got, doc)
	}
	fs := writeMemFile(t, "/000001.data", b)
	var got []string
	err := ScanSegment(fs, "/000001.data", func(r RecordInfo) error {
		got = append(got, fmt.Sprintf("%d+%d seq %d del=%v batch=%v %s/%d ok=%v", r.Offset, r.Size, r.Seq, r.Tombstone, r.BatchContinues, r.Key, r.ValueLen, r.ChecksumOK))
		return nil
	})
	want := []string{
		"16+16 seq 5 del=false batch=false key/5 ok=true",
		"32+11 seq 6 del=true batch=false key/0 ok=true",
		"43+10 seq 7 del=false batch=true a/1 ok=true",
		"53+10 seq 8 del=false batch=false b/1 ok=true",
	}
	if err != nil || strings.Join(got, "\n") != strings.Join(want, "\n") {
		t.Fatalf("scan = %v\n%s\nwant\n%s", err, strings.Join(got, "\n"), strings.Join(want, "\n"))
	}
	if got, want := string(encodeDone([]uint64{1, 2, 3}, []uint64{5})), "input 1\ninput 2\ninput 3\noutput 5\ncrc32c ad0c87fd\n"; got != want {
		t.Fatalf("DONE = %q, the doc says %q", got, want)
	}
}

// TestHintWorkedExample checks the hint file example of
// docs/formats/bitcask.md: a merge output holding puts of "key" (seq 5,
// 16 bytes), "b" (seq 8) and "a" (seq 7, 10 bytes each), as a merge that
// met the younger record first writes them.
func TestHintWorkedExample(t *testing.T) {
	const doc = "6b76736263686e74" + "02000000" + "e617f7d3" +
		"0a03106b6579" +
		"06010a62" +
		"01010a61" +
		"0300000000000000" + "62a2323e" + "6b76736268656e64"
	var seg []byte
	seg = appendFileHeader(seg, segmentMagic, segmentVersion)
	var entries []hintEntry
	for _, r := range []struct {
		seq        uint64
		key, value string
	}{{5, "key", "value"}, {8, "b", "2"}, {7, "a", "1"}} {
		rec := appendRecord(nil, typePut, r.seq, []byte(r.key), []byte(r.value))
		entries = append(entries, hintEntry{seq: r.seq, key: []byte(r.key), offset: int64(len(seg)), size: int64(len(rec))})
		seg = append(seg, rec...)
	}
	hint := encodeHint(entries...)
	if got := hex.EncodeToString(hint); got != doc {
		t.Fatalf("hint = %s, the doc says %s", got, doc)
	}
	got, err := decodeHint(t, hint, int64(len(seg)))
	if err != nil || fmt.Sprint(got) != fmt.Sprint(entries) {
		t.Fatalf("decoded %v, %v; want %v", got, err, entries)
	}
	var lines []string
	err = ScanHint(writeMemFile(t, "/000009.hint", hint), "/000009.hint", func(h HintInfo) error {
		lines = append(lines, fmt.Sprintf("%d: seq %d %s at %d+%d ok=%v", h.EntryOffset, h.Seq, h.Key, h.Offset, h.Size, h.ChecksumOK))
		return nil
	})
	want := []string{
		"16: seq 5 key at 16+16 ok=true",
		"22: seq 8 b at 32+10 ok=true",
		"26: seq 7 a at 42+10 ok=true",
	}
	if err != nil || strings.Join(lines, "\n") != strings.Join(want, "\n") {
		t.Fatalf("scan = %v\n%s\nwant\n%s", err, strings.Join(lines, "\n"), strings.Join(want, "\n"))
	}
}
