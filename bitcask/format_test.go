package bitcask

import (
	"bytes"
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
	if got, want := hex.EncodeToString(appendFileHeader(nil, segmentMagic)), "6b76736263736567"+"01000000"+"90ee0d48"; got != want {
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
	good := appendFileHeader(nil, hintMagic)
	if reason := checkFileHeader(good, hintMagic); reason != "" {
		t.Fatalf("good header: %s", reason)
	}
	other := appendFileHeader(nil, "kvsother")
	v2 := append([]byte(hintMagic), 2, 0, 0, 0)
	v2 = append(v2, appendFileHeader(nil, hintMagic)[12:]...)
	for _, tc := range []struct {
		name string
		b    []byte
		want string
	}{
		{"short", good[:15], "shorter than its 16-byte header"},
		{"segment magic in a hint", appendFileHeader(nil, segmentMagic), "bad magic"},
		{"other magic", other, "bad magic"},
		{"bad crc", append(bytes.Clone(good[:12]), 1, 2, 3, 4), "checksum mismatch"},
		{"zeros", make([]byte, 16), "checksum mismatch"},
		{"version 2 with a stale crc", v2, "checksum mismatch"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			if reason := checkFileHeader(tc.b, hintMagic); !strings.Contains(reason, tc.want) {
				t.Fatalf("reason %q, want it to contain %q", reason, tc.want)
			}
		})
	}
}

func TestHintEntryRoundTrips(t *testing.T) {
	for _, tc := range []struct {
		name         string
		seq          uint64
		key          string
		offset, size int64
	}{
		{"small", 1, "k", fileHeaderLen, minRecordLen},
		{"large", 1 << 50, strings.Repeat("x", 1000), 1 << 40, 1 << 30},
	} {
		t.Run(tc.name, func(t *testing.T) {
			b := appendHintEntry(nil, tc.seq, []byte(tc.key), tc.offset, tc.size)
			e, n, st, reason := decodeHintEntry(b)
			if st != scanOK || n != len(b) {
				t.Fatalf("decode: status %d (%s), %d of %d bytes", st, reason, n, len(b))
			}
			if e.seq != tc.seq || string(e.key) != tc.key || e.offset != tc.offset || e.size != tc.size {
				t.Fatalf("decoded %+v", e)
			}
		})
	}
}

func TestDecodeHintEntryRejectsDamage(t *testing.T) {
	good := appendHintEntry(nil, 3, []byte("key"), 16, 14)
	bad := bytes.Clone(good)
	bad[len(bad)-1] ^= 1
	for _, tc := range []struct {
		name string
		b    []byte
		want scanStatus
	}{
		{"empty", nil, scanEOF},
		{"cut crc", good[:3], scanTruncated},
		{"cut fields", good[:6], scanTruncated},
		{"cut key", good[:len(good)-1], scanTruncated},
		{"bad checksum", bad, scanChecksum},
		{"offset inside the header", appendHintEntry(nil, 3, []byte("k"), 15, 14), scanInvalid},
		{"size below a record", appendHintEntry(nil, 3, []byte("k"), 16, 8), scanInvalid},
		{"empty key", appendHintEntry(nil, 3, nil, 16, 14), scanInvalid},
	} {
		t.Run(tc.name, func(t *testing.T) {
			if _, _, st, _ := decodeHintEntry(tc.b); st != tc.want {
				t.Fatalf("status %d, want %d", st, tc.want)
			}
		})
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
	b = appendFileHeader(b, segmentMagic)
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
	hint := appendHintEntry(appendFileHeader(nil, hintMagic), 5, []byte("key"), 16, 16)
	if got, want := hex.EncodeToString(hint), "6b76736263686e7401000000df9ed5b1"+"574ee704050310106b6579"; got != want {
		t.Fatalf("hint = %s, the doc says %s", got, want)
	}
	if got, want := string(encodeDone([]uint64{1, 2, 3}, []uint64{5})), "input 1\ninput 2\ninput 3\noutput 5\ncrc32c ad0c87fd\n"; got != want {
		t.Fatalf("DONE = %q, the doc says %q", got, want)
	}
}
