package bitcask

import (
	"bytes"
	"errors"
	"fmt"
	"testing"

	"github.com/kvs-lab/kvs"
	"github.com/kvs-lab/kvs/internal/vfs"
)

// fuzzSegment returns a valid segment: a header and a few records,
// a batch among them.
func fuzzSegment() []byte {
	b := appendFileHeader(nil, segmentMagic, segmentVersion)
	b = appendRecord(b, typePut, 1, []byte("a"), []byte("value a"))
	b = appendRecord(b, typeDelete|typeBatchContinues, 2, []byte("b"), nil)
	b = appendRecord(b, typePut, 3, []byte("c"), bytes.Repeat([]byte{0xff}, 300))
	return b
}

// fuzzHint returns a valid hint file for the records of fuzzSegment but
// the tombstone (as if it were a merge output).
func fuzzHint() []byte {
	return encodeHint(
		hintEntry{seq: 1, key: []byte("a"), size: 16},
		hintEntry{seq: 3, key: []byte("c"), size: 310},
	)
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

// FuzzScanHint feeds arbitrary bytes to ScanHint: it must report entries
// or a *kvs.CorruptionError, never panic, and never report an entry past
// the point where it says the file stops parsing. The engine's loader,
// given a segment of the size the entries add up to, must accept exactly
// the files ScanHint accepts, and load the same entries.
func FuzzScanHint(f *testing.F) {
	good := fuzzHint()
	f.Add(good)
	f.Add(good[:len(good)-1])
	f.Add(good[:len(good)-hintTrailerLen])
	f.Add(good[:fileHeaderLen])
	f.Add(encodeHint())
	f.Add([]byte("kvsbchnt"))
	f.Fuzz(func(t *testing.T, data []byte) {
		fs := writeMemFile(t, "/hint", data)
		var scanned []hintEntry
		var last int64 = -1
		segEnd := int64(fileHeaderLen)
		err := ScanHint(fs, "/hint", func(h HintInfo) error {
			if h.EntryOffset <= last || h.EntryOffset >= int64(len(data)) || len(h.Key) == 0 || h.Offset != segEnd || h.Size < minRecordLen {
				t.Fatalf("entry %+v after one at %d, records ending at %d, in a %d-byte file", h, last, segEnd, len(data))
			}
			last, segEnd = h.EntryOffset, h.Offset+h.Size
			scanned = append(scanned, hintEntry{seq: h.Seq, key: h.Key, offset: h.Offset, size: h.Size})
			return nil
		})
		var ce *kvs.CorruptionError
		if err != nil && (!errors.As(err, &ce) || ce.Offset <= last && ce.Offset != 0) {
			t.Fatalf("ScanHint = %v after an entry at %d", err, last)
		}
		var loaded []hintEntry
		_, lerr := loadHint(fs, "/hint", segEnd, func(e hintEntry) {
			e.key = bytes.Clone(e.key)
			loaded = append(loaded, e)
		})
		switch {
		case (lerr == nil) != (err == nil):
			t.Fatalf("loadHint = %v, ScanHint = %v", lerr, err)
		case lerr == nil && fmt.Sprint(loaded) != fmt.Sprint(scanned):
			t.Fatalf("loadHint found %v, ScanHint %v", loaded, scanned)
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

// FuzzDecodeDone feeds arbitrary bytes to the merge commit record's
// decoder: it must return ids or an error wrapping kvs.ErrCorruption,
// never panic, and whatever it accepts must re-encode to the same bytes
// (the checksum leaves no room for two spellings of one DONE).
func FuzzDecodeDone(f *testing.F) {
	f.Add(encodeDone([]uint64{1, 2, 3}, []uint64{9, 10}))
	f.Add(encodeDone(nil, []uint64{7}))
	f.Add([]byte("input 1\ncrc32c 00000000\n"))
	f.Add([]byte{})
	f.Fuzz(func(t *testing.T, in []byte) {
		inputs, outputs, err := decodeDone("merge/DONE", in)
		if err != nil {
			if !errors.Is(err, kvs.ErrCorruption) {
				t.Fatalf("decodeDone error %v does not wrap kvs.ErrCorruption", err)
			}
			return
		}
		if again := encodeDone(inputs, outputs); !bytes.Equal(again, in) {
			t.Fatalf("decodeDone(%q) = %v, %v, which re-encodes as %q", in, inputs, outputs, again)
		}
	})
}
