package bitcask

import (
	"bytes"
	"errors"
	"testing"

	"github.com/kvs-lab/kvs"
	"github.com/kvs-lab/kvs/internal/vfs"
)

// fuzzSegment returns a valid segment: a header and a few records,
// a batch among them.
func fuzzSegment() []byte {
	b := appendFileHeader(nil, segmentMagic)
	b = appendRecord(b, typePut, 1, []byte("a"), []byte("value a"))
	b = appendRecord(b, typeDelete|typeBatchContinues, 2, []byte("b"), nil)
	b = appendRecord(b, typePut, 3, []byte("c"), bytes.Repeat([]byte{0xff}, 300))
	return b
}

func fuzzHint() []byte {
	b := appendFileHeader(nil, hintMagic)
	b = appendHintEntry(b, 1, []byte("a"), 16, 16)
	b = appendHintEntry(b, 3, []byte("c"), 32, 308)
	return b
}

// writeMemFile stores data as the file name on a fresh MemFS.
func writeMemFile(t testing.TB, name string, data []byte) vfs.FS {
	t.Helper()
	fs := vfs.NewMem()
	f, err := fs.Create(name)
	if err != nil {
		t.Fatal(err)
	}
	if _, err := f.Write(data); err != nil {
		t.Fatal(err)
	}
	f.Close()
	return fs
}

// FuzzScanSegment feeds arbitrary bytes to ScanSegment: it must report
// records or a *kvs.CorruptionError, never panic, and never report a
// record past the point where it says the file stops parsing.
func FuzzScanSegment(f *testing.F) {
	good := fuzzSegment()
	f.Add(good)
	f.Add(good[:len(good)-5])
	f.Add(append(bytes.Clone(good), make([]byte, 40)...))
	f.Add(good[:fileHeaderLen])
	f.Add([]byte{})
	f.Fuzz(func(t *testing.T, data []byte) {
		fs := writeMemFile(t, "/seg", data)
		var last int64 = -1
		err := ScanSegment(fs, "/seg", func(r RecordInfo) error {
			if r.Offset <= last || r.Offset+r.Size > int64(len(data)) || r.Size < minRecordLen {
				t.Fatalf("record at %d (%d bytes) after %d in a %d-byte file", r.Offset, r.Size, last, len(data))
			}
			last = r.Offset
			return nil
		})
		var ce *kvs.CorruptionError
		if err != nil && (!errors.As(err, &ce) || ce.Offset <= last && ce.Offset != 0) {
			t.Fatalf("ScanSegment = %v after a record at %d", err, last)
		}
	})
}

// FuzzScanHint is FuzzScanSegment for hint files.
func FuzzScanHint(f *testing.F) {
	good := fuzzHint()
	f.Add(good)
	f.Add(good[:len(good)-1])
	f.Add(good[:fileHeaderLen])
	f.Add([]byte("kvsbchnt"))
	f.Fuzz(func(t *testing.T, data []byte) {
		fs := writeMemFile(t, "/hint", data)
		err := ScanHint(fs, "/hint", func(h HintInfo) error {
			if h.EntryOffset < fileHeaderLen || h.EntryOffset >= int64(len(data)) || len(h.Key) == 0 {
				t.Fatalf("entry %+v in a %d-byte file", h, len(data))
			}
			return nil
		})
		var ce *kvs.CorruptionError
		if err != nil && !errors.As(err, &ce) {
			t.Fatalf("ScanHint = %v, want nil or a *kvs.CorruptionError", err)
		}
		// The engine's strict loader must agree or be stricter.
		if _, lerr := loadHint(fs, "/hint", 1<<40, func(hintEntry) {}); lerr == nil && err != nil {
			t.Fatalf("loadHint accepted a file ScanHint rejects: %v", err)
		}
	})
}

// FuzzDecodeRecord feeds arbitrary bytes to the decoder Get runs: an error
// or a record that re-encodes to the same bytes (when its varints are
// minimal), never a panic.
func FuzzDecodeRecord(f *testing.F) {
	f.Add(appendRecord(nil, typePut, 5, []byte("key"), []byte("value")))
	f.Add(appendRecord(nil, typeDelete|typeBatchContinues, 1<<62, []byte("k"), nil))
	f.Add([]byte{0, 0, 0, 0, 1, 0x80})
	f.Fuzz(func(t *testing.T, data []byte) {
		h, key, value, err := decodeRecord(data)
		if err != nil {
			return
		}
		again := appendRecord(nil, h.typ, h.seq, key, value)
		if len(again) == len(data) && !bytes.Equal(again, data) {
			t.Fatalf("decoded %x, re-encoded %x", data, again)
		}
		if valueLenOf(int64(len(again)), h.seq, len(key)) != len(value) {
			t.Fatalf("valueLenOf disagrees with the decoder for %x", data)
		}
	})
}
