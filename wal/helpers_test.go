package wal

import (
	"bytes"
	"errors"
	"flag"
	"fmt"
	"io"
	"io/fs"
	"math/rand"
	"os"
	"testing"
	"time"

	"github.com/kvs-lab/kvs"
	"github.com/kvs-lab/kvs/internal/vfs"
)

var seedFlag = flag.Int64("seed", 0, "seed of the randomized tests (0: from the clock)")

// testSeed returns the seed for a randomized test and logs it, so that a
// failure can be replayed with -seed.
func testSeed(t testing.TB) int64 {
	t.Helper()
	seed := *seedFlag
	if seed == 0 {
		seed = time.Now().UnixNano()
	}
	t.Logf("seed %d (replay with -seed %d)", seed, seed)
	return seed
}

// testLogNum is the log number of most test logs.
const testLogNum = 7

// readResult is everything a Reader reported for one log.
type readResult struct {
	records [][]byte
	offsets []int64
	torn    TornTail
	tornOK  bool
	err     error // nil when Next ended with io.EOF
}

// readLog reads every record of the log in f.
func readLog(f vfs.File, name string, logNum uint64) readResult {
	r := NewReader(f, name, logNum)
	var res readResult
	for {
		rec, err := r.Next()
		if err == io.EOF {
			break
		}
		if err != nil {
			res.err = err
			break
		}
		res.records = append(res.records, bytes.Clone(rec))
		res.offsets = append(res.offsets, r.Offset())
	}
	res.torn, res.tornOK = r.TornTail()
	return res
}

// readBytes reads the log whose file holds data.
func readBytes(data []byte, logNum uint64) readResult {
	return readLog(&bytesFile{data: data}, "test.log", logNum)
}

// readFile reads the log at name in fsys.
func readFile(t testing.TB, fsys vfs.FS, name string, logNum uint64) readResult {
	t.Helper()
	f, err := fsys.Open(name)
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	return readLog(f, name, logNum)
}

// encodeLog writes records with a Writer and returns the file's bytes
// and each record's end offset.
func encodeLog(t testing.TB, logNum uint64, records [][]byte) ([]byte, []int64) {
	t.Helper()
	f := &bytesFile{}
	w := NewWriter(f, logNum)
	var ends []int64
	for _, rec := range records {
		end, err := w.WriteRecord(rec)
		if err != nil {
			t.Fatal(err)
		}
		ends = append(ends, end)
	}
	if err := w.Close(); err != nil {
		t.Fatal(err)
	}
	return f.data, ends
}

// createLog creates name in fsys, durably (the directory entry too), and
// returns a Writer for it.
func createLog(t testing.TB, fsys vfs.FS, name string, logNum uint64) *Writer {
	t.Helper()
	f, err := fsys.Create(name)
	if err != nil {
		t.Fatal(err)
	}
	if err := vfs.SyncDir(fsys, fsys.PathDir(name)); err != nil {
		t.Fatal(err)
	}
	return NewWriter(f, logNum)
}

// record returns a record of n bytes that names i, so that a record read
// back can be matched with the one written.
func record(i, n int) []byte {
	b := make([]byte, n)
	for j := range b {
		b[j] = byte(i*31 + j*7 + j>>8)
	}
	copy(b, fmt.Sprintf("#%d#", i))
	return b
}

// checkRecords fails unless got equals want.
func checkRecords(t testing.TB, got, want [][]byte) {
	t.Helper()
	if len(got) != len(want) {
		t.Fatalf("read %d records, want %d", len(got), len(want))
	}
	for i := range got {
		if !bytes.Equal(got[i], want[i]) {
			t.Fatalf("record %d: read %d bytes %.20x..., want %d bytes %.20x...", i, len(got[i]), got[i], len(want[i]), want[i])
		}
	}
}

// checkCorruption fails unless err is a *kvs.CorruptionError for file at
// offset.
func checkCorruption(t testing.TB, err error, file string, offset int64) {
	t.Helper()
	var ce *kvs.CorruptionError
	if !errors.As(err, &ce) || !errors.Is(err, kvs.ErrCorruption) {
		t.Fatalf("error %v, want a *kvs.CorruptionError", err)
	}
	if ce.File != file || ce.Offset != offset {
		t.Fatalf("corruption in %s at offset %d (%s), want %s at offset %d", ce.File, ce.Offset, ce.Reason, file, offset)
	}
}

// randomSize returns a record size that exercises small records, block
// boundaries and records of several blocks.
func randomSize(r *rand.Rand) int {
	switch r.Intn(10) {
	case 0:
		return 0
	case 1:
		return MaxFragmentPayload - 3 + r.Intn(6)
	case 2:
		return r.Intn(3 * BlockSize)
	case 3:
		return r.Intn(BlockSize)
	}
	return r.Intn(300)
}

// bytesFile is a vfs.File over a byte slice, for fuzzing and benchmarks:
// ReadAt reads data, Write appends to it. It is not safe for concurrent
// use.
type bytesFile struct {
	data    []byte
	discard bool // Write counts bytes and keeps none
	n       int64
}

var _ vfs.File = (*bytesFile)(nil)

func (f *bytesFile) Read(p []byte) (int, error) { return 0, io.EOF }

func (f *bytesFile) ReadAt(p []byte, off int64) (int, error) {
	if off >= int64(len(f.data)) {
		return 0, io.EOF
	}
	n := copy(p, f.data[off:])
	if n < len(p) {
		return n, io.EOF
	}
	return n, nil
}

func (f *bytesFile) Write(p []byte) (int, error) {
	if !f.discard {
		f.data = append(f.data, p...)
	}
	f.n += int64(len(p))
	return len(p), nil
}

func (f *bytesFile) Close() error { return nil }

func (f *bytesFile) Stat() (os.FileInfo, error) { return nil, fs.ErrInvalid }

func (f *bytesFile) Sync() error { return nil }

func (f *bytesFile) Truncate(size int64) error { return fs.ErrInvalid }

func (f *bytesFile) Seek(offset int64, whence int) (int64, error) { return 0, fs.ErrInvalid }
