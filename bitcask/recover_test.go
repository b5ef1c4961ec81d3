package bitcask

import (
	"errors"
	"fmt"
	"io"
	oldrand "math/rand"
	"testing"

	"github.com/kvs-lab/kvs"
	"github.com/kvs-lab/kvs/internal/vfs"
)

const testDir = "/db"

// records returns the records ScanSegment finds in path.
func records(t testing.TB, fs vfs.FS, path string) []RecordInfo {
	t.Helper()
	var recs []RecordInfo
	if err := ScanSegment(fs, path, func(r RecordInfo) error { recs = append(recs, r); return nil }); err != nil {
		t.Fatalf("scan %s: %v", path, err)
	}
	return recs
}

// fileSize returns the size of path, or -1 when it does not exist.
func fileSize(t testing.TB, fs vfs.FS, path string) int64 {
	t.Helper()
	st, err := fs.Stat(path)
	if err != nil {
		return -1
	}
	return st.Size()
}

// truncateFile cuts path to size bytes.
func truncateFile(t testing.TB, fs vfs.FS, path string, size int64) {
	t.Helper()
	f, err := fs.OpenReadWrite(path)
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	if err := f.Truncate(size); err != nil {
		t.Fatal(err)
	}
}

// writeAt overwrites path at off with b, creating or extending it if
// needed.
func writeAt(t testing.TB, fs vfs.FS, path string, off int64, b []byte) {
	t.Helper()
	open := fs.OpenReadWrite
	if fileSize(t, fs, path) < 0 {
		open = fs.Create
	}
	f, err := open(path)
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	if _, err := f.Seek(off, io.SeekStart); err != nil {
		t.Fatal(err)
	}
	if _, err := f.Write(b); err != nil {
		t.Fatal(err)
	}
}

// flipByte inverts one byte of path.
func flipByte(t testing.TB, fs vfs.FS, path string, off int64) {
	t.Helper()
	f, err := fs.Open(path)
	if err != nil {
		t.Fatal(err)
	}
	b := make([]byte, 1)
	if _, err := f.ReadAt(b, off); err != nil {
		t.Fatal(err)
	}
	f.Close()
	writeAt(t, fs, path, off, []byte{^b[0]})
}

// tenKeys writes k0..k9 to a new DB on fs, the last one as a batch of
// three when batch is set, and closes it. It returns the contents.
func tenKeys(t *testing.T, fs vfs.FS, batch bool) map[string]string {
	db := openDB(t, testDir, testOptions(fs, kvs.IndexHash))
	want := map[string]string{}
	for i := 0; i < 9; i++ {
		k, v := fmt.Sprintf("k%d", i), valueN(i, 0, 40)
		mustPut(t, db, k, v, kvs.NoSync)
		want[k] = v
	}
	if batch {
		var b kvs.Batch
		for _, k := range []string{"b1", "b2", "k9"} {
			b.Put([]byte(k), []byte("batch "+k))
			want[k] = "batch " + k
		}
		if err := db.Write(&b, kvs.NoSync); err != nil {
			t.Fatal(err)
		}
	} else {
		mustPut(t, db, "k9", "last", kvs.NoSync)
		want["k9"] = "last"
	}
	mustClose(t, db)
	return want
}

func TestRecoverTruncatesTornTail(t *testing.T) {
	seg := testDir + "/000001.data"
	for _, tc := range []struct {
		name  string
		batch bool
		// tear damages the newest segment, whose records are recs, and
		// returns the size recovery must cut it to and the keys it
		// loses.
		tear func(t *testing.T, fs vfs.FS, recs []RecordInfo) (int64, []string)
	}{
		{"last record cut in half", false, func(t *testing.T, fs vfs.FS, recs []RecordInfo) (int64, []string) {
			last := recs[len(recs)-1]
			truncateFile(t, fs, seg, last.Offset+last.Size/2)
			return last.Offset, []string{"k9"}
		}},
		{"last record's header cut", false, func(t *testing.T, fs vfs.FS, recs []RecordInfo) (int64, []string) {
			last := recs[len(recs)-1]
			truncateFile(t, fs, seg, last.Offset+3)
			return last.Offset, []string{"k9"}
		}},
		{"zero-filled tail", false, func(t *testing.T, fs vfs.FS, recs []RecordInfo) (int64, []string) {
			size := fileSize(t, fs, seg)
			writeAt(t, fs, seg, size, make([]byte, 4096))
			return size, nil
		}},
		{"last record zeroed", false, func(t *testing.T, fs vfs.FS, recs []RecordInfo) (int64, []string) {
			last := recs[len(recs)-1]
			writeAt(t, fs, seg, last.Offset, make([]byte, last.Size))
			return last.Offset, []string{"k9"}
		}},
		{"checksum mismatch with zeros after", false, func(t *testing.T, fs vfs.FS, recs []RecordInfo) (int64, []string) {
			last := recs[len(recs)-1]
			flipByte(t, fs, seg, last.Offset+last.Size-1)
			writeAt(t, fs, seg, last.Offset+last.Size, make([]byte, 100))
			return last.Offset, []string{"k9"}
		}},
		{"batch without its last record", true, func(t *testing.T, fs vfs.FS, recs []RecordInfo) (int64, []string) {
			last := recs[len(recs)-1]
			truncateFile(t, fs, seg, last.Offset)
			return recs[len(recs)-3].Offset, []string{"b1", "b2", "k9"}
		}},
		{"batch with its last record torn", true, func(t *testing.T, fs vfs.FS, recs []RecordInfo) (int64, []string) {
			last := recs[len(recs)-1]
			truncateFile(t, fs, seg, last.Offset+last.Size-1)
			return recs[len(recs)-3].Offset, []string{"b1", "b2", "k9"}
		}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			fs := vfs.NewMem()
			want := tenKeys(t, fs, tc.batch)
			wantSize, lost := tc.tear(t, fs, records(t, fs, seg))
			for _, k := range lost {
				delete(want, k)
			}
			db := openDB(t, testDir, testOptions(fs, kvs.IndexHash))
			if got := fileSize(t, fs, seg); got != wantSize {
				t.Errorf("newest segment is %d bytes after recovery, want %d", got, wantSize)
			}
			checkContents(t, db, want, lost...)
			// The engine works on, and the cut is durable.
			mustPut(t, db, "after", "recovery", kvs.Sync)
			want["after"] = "recovery"
			crashed := fs.CrashClone()
			mustClose(t, db)
			db = openDB(t, testDir, testOptions(crashed, kvs.IndexHash))
			checkContents(t, db, want, lost...)
		})
	}
}

func TestRecoverRemovesNewestSegmentWithTornHeader(t *testing.T) {
	for _, header := range [][]byte{nil, []byte("kvsb"), make([]byte, fileHeaderLen)} {
		t.Run(fmt.Sprintf("%d bytes", len(header)), func(t *testing.T) {
			fs := vfs.NewMem()
			want := tenKeys(t, fs, false)
			torn := testDir + "/" + segmentName(2)
			writeAt(t, fs, torn, 0, header)
			db := openDB(t, testDir, testOptions(fs, kvs.IndexHash))
			checkContents(t, db, want)
			if fileSize(t, fs, torn) != -1 {
				t.Fatalf("%s survived recovery", torn)
			}
		})
	}
}

func TestCorruptByteInMiddleNamesFileAndOffset(t *testing.T) {
	// Small segments: the keys spread over several files.
	opts := func(fs vfs.FS) *kvs.Options {
		o := testOptions(fs, kvs.IndexHash)
		o.Bitcask.MaxSegmentBytes = 1000
		return o
	}
	setup := func(t *testing.T) (vfs.FS, []string) {
		fs := vfs.NewMem()
		db := openDB(t, testDir, opts(fs))
		for i := 0; i < 60; i++ {
			mustPut(t, db, keyN(i), valueN(i, 0, 60), kvs.NoSync)
		}
		mustClose(t, db)
		names, _ := fs.List(testDir)
		var segs []string
		for _, n := range names {
			if _, kind := ParseFileName(n); kind == FileSegment {
				segs = append(segs, testDir+"/"+n)
			}
		}
		if len(segs) < 3 {
			t.Fatalf("want at least 3 segments, have %v", segs)
		}
		return fs, segs
	}
	for _, tc := range []struct {
		name string
		pick func(segs []string) (path string, rec int) // rec < 0 counts from the end
		at   func(r RecordInfo) int64
	}{
		{"value byte of a sealed segment's middle record", func(s []string) (string, int) { return s[0], 3 }, func(r RecordInfo) int64 { return r.Offset + r.Size - 1 }},
		{"crc of a sealed segment's first record", func(s []string) (string, int) { return s[1], 0 }, func(r RecordInfo) int64 { return r.Offset }},
		{"length of a sealed segment's record", func(s []string) (string, int) { return s[1], 2 }, func(r RecordInfo) int64 { return r.Offset + 6 }},
		{"last record of a sealed segment", func(s []string) (string, int) { return s[0], -1 }, func(r RecordInfo) int64 { return r.Offset + 10 }},
		{"newest segment's middle record", func(s []string) (string, int) { return s[len(s)-1], 1 }, func(r RecordInfo) int64 { return r.Offset + r.Size - 2 }},
	} {
		t.Run(tc.name, func(t *testing.T) {
			fs, segs := setup(t)
			path, i := tc.pick(segs)
			recs := records(t, fs, path)
			if i < 0 {
				i += len(recs)
			}
			if i >= len(recs)-1 && path == segs[len(segs)-1] {
				t.Fatalf("record %d is not followed by another in the newest segment", i)
			}
			flipByte(t, fs, path, tc.at(recs[i]))
			_, err := Open(testDir, opts(fs))
			var ce *kvs.CorruptionError
			if !errors.As(err, &ce) || !errors.Is(err, kvs.ErrCorruption) {
				t.Fatalf("open = %v, want a *kvs.CorruptionError", err)
			}
			if ce.File != path || ce.Offset != recs[i].Offset {
				t.Fatalf("corruption reported in %s at %d, want %s at %d (%v)", ce.File, ce.Offset, path, recs[i].Offset, err)
			}
			// Open failed cleanly: the lock is free and nothing was cut.
			if _, err := Open(testDir, opts(fs)); !errors.As(err, &ce) {
				t.Fatalf("second open = %v, want the same corruption", err)
			}
		})
	}
}

func TestGetOfCorruptRecordReturnsCorruptionError(t *testing.T) {
	for _, index := range indexes {
		t.Run("index="+index, func(t *testing.T) {
			fs := vfs.NewMem()
			db := openDB(t, testDir, testOptions(fs, index))
			mustPut(t, db, "a", "fine", kvs.NoSync)
			mustPut(t, db, "b", "to be damaged", kvs.Sync) // in the file, not the append buffer
			path := db.active.path
			recs := records(t, fs, path)
			flipByte(t, fs, path, recs[1].Offset+recs[1].Size-1)
			_, err := db.Get([]byte("b"))
			var ce *kvs.CorruptionError
			if !errors.As(err, &ce) || ce.File != path || ce.Offset != recs[1].Offset {
				t.Fatalf("get of a damaged record = %v, want a *kvs.CorruptionError at %s:%d", err, path, recs[1].Offset)
			}
			it, err := db.NewIter(nil)
			if err != nil {
				t.Fatal(err)
			}
			it.SeekGE([]byte("b"))
			if v := it.Value(); v != nil || it.Valid() || !errors.As(it.Error(), &ce) {
				t.Fatalf("iterator value of a damaged record = %q, valid %v, error %v", v, it.Valid(), it.Error())
			}
			if err := it.Close(); !errors.As(err, &ce) {
				t.Fatalf("iterator close = %v, want the corruption", err)
			}
			if v, err := db.Get([]byte("a")); err != nil || string(v) != "fine" {
				t.Fatalf("get of an intact record = %q, %v", v, err)
			}
		})
	}
}

// writeSegment writes a segment file holding recs.
func writeSegment(t testing.TB, fs vfs.FS, path string, recs ...[]byte) {
	t.Helper()
	b := appendFileHeader(nil, segmentMagic, segmentVersion)
	for _, r := range recs {
		b = append(b, r...)
	}
	writeAt(t, fs, path, 0, b)
}

// TestHighestSeqWinsAcrossFiles builds segments by hand where a file with
// a higher id holds older records, as merge outputs do, and checks that
// recovery lets the newest record of each key win, tombstones included,
// whether the older file is scanned or loaded from its hint.
func TestHighestSeqWinsAcrossFiles(t *testing.T) {
	for _, hint := range []bool{false, true} {
		for _, index := range indexes {
			t.Run(fmt.Sprintf("hint=%v/index=%s", hint, index), func(t *testing.T) {
				fs := vfs.NewMem()
				fs.MkdirAll(testDir, 0o755)
				if err := kvs.WriteEngineFile(fs, testDir, "bitcask"); err != nil {
					t.Fatal(err)
				}
				// Newer records in the lower file.
				writeSegment(t, fs, testDir+"/000001.data",
					appendRecord(nil, typeDelete, 10, []byte("deleted"), nil),
					appendRecord(nil, typePut, 11, []byte("updated"), []byte("new")),
				)
				// Older records in the higher file.
				older := [][]byte{
					appendRecord(nil, typePut, 5, []byte("deleted"), []byte("old")),
					appendRecord(nil, typePut, 3, []byte("updated"), []byte("old")),
					appendRecord(nil, typePut, 4, []byte("kept"), []byte("old but live")),
				}
				writeSegment(t, fs, testDir+"/000002.data", older...)
				if hint {
					var entries []hintEntry
					for _, r := range older {
						hdr, key, _, _ := decodeRecord(r)
						entries = append(entries, hintEntry{seq: hdr.seq, key: key, size: int64(len(r))})
					}
					writeAt(t, fs, testDir+"/000002.hint", 0, encodeHint(entries...))
				}
				db := openDB(t, testDir, testOptions(fs, index))
				checkContents(t, db, map[string]string{"updated": "new", "kept": "old but live"}, "deleted")
				if got := db.Stats().Segments[1].Hint; got != hint {
					t.Fatalf("segment 2 hint = %v, want %v", got, hint)
				}
				// New writes get higher sequence numbers than any on disk.
				mustPut(t, db, "deleted", "again", kvs.NoSync)
				mustClose(t, db)
				db = openDB(t, testDir, testOptions(fs, index))
				checkContents(t, db, map[string]string{"updated": "new", "kept": "old but live", "deleted": "again"})
			})
		}
	}
}

func TestDamagedHintFallsBackToScan(t *testing.T) {
	for _, tc := range []struct {
		name   string
		damage func(t *testing.T, fs vfs.FS, hint string)
	}{
		{"flipped entry byte", func(t *testing.T, fs vfs.FS, hint string) { flipByte(t, fs, hint, fileHeaderLen+10) }},
		{"flipped trailer magic", func(t *testing.T, fs vfs.FS, hint string) { flipByte(t, fs, hint, fileSize(t, fs, hint)-1) }},
		{"truncated", func(t *testing.T, fs vfs.FS, hint string) { truncateFile(t, fs, hint, fileSize(t, fs, hint)-3) }},
		{"trailer gone", func(t *testing.T, fs vfs.FS, hint string) {
			truncateFile(t, fs, hint, fileSize(t, fs, hint)-int64(hintTrailerLen))
		}},
		{"bad header", func(t *testing.T, fs vfs.FS, hint string) { flipByte(t, fs, hint, 2) }},
		{"entry past the segment", func(t *testing.T, fs vfs.FS, hint string) {
			truncateFile(t, fs, hint, 0)
			writeAt(t, fs, hint, 0, encodeHint(hintEntry{seq: 1, key: []byte("k"), size: 1 << 20}))
		}},
		{"version 1", func(t *testing.T, fs vfs.FS, hint string) {
			b := appendFileHeader(nil, hintMagic, 1)
			b = append(b, 0x57, 0x4e, 0xe7, 0x04, 0x05, 0x03, 0x10, 0x10, 'k', 'e', 'y')
			truncateFile(t, fs, hint, 0)
			writeAt(t, fs, hint, 0, b)
		}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			fs := vfs.NewMem()
			db := openDB(t, testDir, testOptions(fs, kvs.IndexHash))
			want := map[string]string{}
			for i := 0; i < 50; i++ {
				mustPut(t, db, keyN(i%20), valueN(i, 0, 30), kvs.NoSync)
				want[keyN(i%20)] = valueN(i, 0, 30)
			}
			mustCompact(t, db)
			mustClose(t, db)
			var hint string
			names, _ := fs.List(testDir)
			for _, n := range names {
				if _, kind := ParseFileName(n); kind == FileHint {
					hint = testDir + "/" + n
				}
			}
			if hint == "" {
				t.Fatalf("no hint file after a merge: %v", names)
			}
			tc.damage(t, fs, hint)
			db = openDB(t, testDir, testOptions(fs, kvs.IndexHash))
			checkContents(t, db, want)
			if fileSize(t, fs, hint) != -1 {
				t.Fatalf("the damaged hint %s is still there", hint)
			}
		})
	}
}

// TestFlippedLengthBitInNewestSegmentIsCorruption damages one header byte
// of a record in the middle of the newest segment so that the record
// looks torn: its length (or a varint before it) now runs past the end of
// the file, or over the next record into a zero-filled tail. Whole,
// synced records follow it, so recovery must not cut it as a torn tail,
// which would drop them: Open fails with a *kvs.CorruptionError naming the
// damaged record and leaves the file alone.
func TestFlippedLengthBitInNewestSegmentIsCorruption(t *testing.T) {
	// Every record is 12 bytes: crc 4, type 1, seq 1, klen 1 (3), vlen 1
	// (1), key "kNN", value "v"; record i starts at 16 + 12i.
	const (
		seqAt  = 5
		klenAt = 6
		vlenAt = 7
	)
	for _, tc := range []struct {
		name string
		rec  int // the damaged record
		at   int64
		b    byte // the byte's new value
		zero int  // zero bytes appended to the segment
	}{
		// The reviewer's cases: vlen 1 becomes 0x81, a varint that goes
		// on into the key and makes the value 13697 bytes long.
		{"value length of the first record", 0, vlenAt, 0x81, 0},
		{"value length of record 10", 10, vlenAt, 0x81, 0},
		{"key length of record 10", 10, klenAt, 0x83, 0},
		{"sequence number of the last record but one", 18, seqAt, 0x93, 0},
		{"value length of a batch's middle record", 14, vlenAt, 0x81, 0},
		// vlen 1 becomes 17: the record now ends 4 bytes into a zero tail
		// and fails its checksum with only zeros after it.
		{"value length grown over the last record into zeros", 18, vlenAt, 0x11, 100},
	} {
		t.Run(tc.name, func(t *testing.T) {
			fs := vfs.NewMem()
			db := openDB(t, testDir, testOptions(fs, kvs.IndexHash))
			for i := 0; i < 20; i++ {
				if i >= 13 && i <= 15 {
					continue
				}
				if i == 16 {
					var b kvs.Batch
					for j := 13; j <= 15; j++ {
						b.Put(fmt.Appendf(nil, "k%02d", j), []byte("v"))
					}
					if err := db.Write(&b, kvs.Sync); err != nil {
						t.Fatal(err)
					}
				}
				mustPut(t, db, fmt.Sprintf("k%02d", i), "v", kvs.Sync)
			}
			path := db.active.path
			mustClose(t, db)
			recs := records(t, fs, path)
			if len(recs) != 20 || recs[10].Offset != 16+120 || recs[19].Size != 12 {
				t.Fatalf("unexpected layout: %d records, record 10 at %d", len(recs), recs[10].Offset)
			}
			if tc.zero > 0 {
				writeAt(t, fs, path, fileSize(t, fs, path), make([]byte, tc.zero))
			}
			writeAt(t, fs, path, recs[tc.rec].Offset+tc.at, []byte{tc.b})
			before := snapshotFiles(t, fs, testDir)

			for range 2 { // and again: the failed Open changed nothing
				_, err := Open(testDir, testOptions(fs, kvs.IndexHash))
				var ce *kvs.CorruptionError
				if !errors.As(err, &ce) || !errors.Is(err, kvs.ErrCorruption) {
					t.Fatalf("open = %v, want a *kvs.CorruptionError", err)
				}
				if ce.File != path || ce.Offset != recs[tc.rec].Offset {
					t.Fatalf("corruption reported in %s at %d, want %s at %d (%v)", ce.File, ce.Offset, path, recs[tc.rec].Offset, err)
				}
				if after := snapshotFiles(t, fs, testDir); !equalFiles(before, after) {
					t.Fatalf("a refused open changed the directory:\nbefore %v\nafter  %v", keysOf(before), keysOf(after))
				}
			}
		})
	}
}

// TestTornRecordOfRandomBytesIsCut tears a record whose 2 MiB value is
// random bytes, so that the resync scan of the torn tail meets thousands
// of plausible record headers (across its 1 MiB read windows) and must
// find no whole record among them: the tail is cut as before.
func TestTornRecordOfRandomBytesIsCut(t *testing.T) {
	fs := vfs.NewMem()
	db := openDB(t, testDir, testOptions(fs, kvs.IndexHash))
	want := map[string]string{}
	for i := 0; i < 5; i++ {
		mustPut(t, db, keyN(i), valueN(i, 0, 50), kvs.Sync)
		want[keyN(i)] = valueN(i, 0, 50)
	}
	big := make([]byte, 2<<20)
	oldrand.New(oldrand.NewSource(1)).Read(big)
	if err := db.Put([]byte("big"), big, kvs.Sync); err != nil {
		t.Fatal(err)
	}
	path := db.active.path
	mustClose(t, db)
	recs := records(t, fs, path)
	last := recs[len(recs)-1]
	for _, cut := range []int64{last.Offset + 30, last.Offset + last.Size/2, last.Offset + last.Size - 1} {
		img := fs.CrashClone()
		truncateFile(t, img, path, cut)
		db := openDB(t, testDir, testOptions(img, kvs.IndexHash))
		checkContents(t, db, want, "big")
		if got := fileSize(t, img, path); got != last.Offset {
			t.Fatalf("torn at %d: newest segment is %d bytes after recovery, want %d", cut, got, last.Offset)
		}
		mustClose(t, db)
	}
}

// TestTornValueHoldingAWholeRecordIsReportedNotCut pins down the one case
// the resync rule misjudges (see DB.isTornTail): a torn record whose value
// holds the image of a whole record with a good checksum. Recovery cannot
// tell it from damage in the middle of the log, so Open reports
// corruption at the torn record, and cuts nothing.
func TestTornValueHoldingAWholeRecordIsReportedNotCut(t *testing.T) {
	fs := vfs.NewMem()
	db := openDB(t, testDir, testOptions(fs, kvs.IndexHash))
	mustPut(t, db, "a", "1", kvs.Sync)
	image := appendRecord(nil, typePut, 1, []byte("inner"), []byte("record"))
	mustPut(t, db, "copy", string(image)+"and more bytes after the image", kvs.Sync)
	path := db.active.path
	mustClose(t, db)
	recs := records(t, fs, path)
	last := recs[len(recs)-1]
	truncateFile(t, fs, path, last.Offset+last.Size-5)
	_, err := Open(testDir, testOptions(fs, kvs.IndexHash))
	var ce *kvs.CorruptionError
	if !errors.As(err, &ce) || ce.File != path || ce.Offset != last.Offset {
		t.Fatalf("open = %v, want a *kvs.CorruptionError at %s:%d", err, path, last.Offset)
	}
	if got := fileSize(t, fs, path); got != last.Offset+last.Size-5 {
		t.Fatalf("the segment is %d bytes after a refused open, want %d", got, last.Offset+last.Size-5)
	}
}
