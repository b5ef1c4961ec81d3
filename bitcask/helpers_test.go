package bitcask

import (
	"errors"
	"fmt"
	"maps"
	"math"
	"slices"
	"testing"

	"github.com/kvs-lab/kvs"
	"github.com/kvs-lab/kvs/internal/vfs"
)

// indexes are the keydir kinds every behavioural test runs with.
var indexes = []string{kvs.IndexHash, kvs.IndexBTree}

// testOptions returns options for an engine on fsys with the given keydir,
// logging nowhere.
func testOptions(fsys vfs.FS, index string) *kvs.Options {
	return &kvs.Options{FS: fsys, Logger: kvs.DiscardLogger(), Bitcask: kvs.BitcaskOptions{Index: index}}
}

// openDB opens a DB in dir, failing t on error. When the test ends it
// checks the DB's invariants and closes it (if the test did not).
func openDB(t testing.TB, dir string, o *kvs.Options) *DB {
	t.Helper()
	db, err := Open(dir, o)
	if err != nil {
		t.Fatalf("open %s: %v", dir, err)
	}
	t.Cleanup(func() {
		if !db.isClosed() {
			checkInvariants(t, db)
		}
		db.Close()
	})
	return db
}

func mustPut(t testing.TB, e kvs.Engine, key, value string, o kvs.WriteOptions) {
	t.Helper()
	if err := e.Put([]byte(key), []byte(value), o); err != nil {
		t.Fatalf("put %q: %v", key, err)
	}
}

func mustDelete(t testing.TB, e kvs.Engine, key string, o kvs.WriteOptions) {
	t.Helper()
	if err := e.Delete([]byte(key), o); err != nil {
		t.Fatalf("delete %q: %v", key, err)
	}
}

func mustClose(t testing.TB, e kvs.Engine) {
	t.Helper()
	if err := e.Close(); err != nil {
		t.Fatalf("close: %v", err)
	}
}

func mustCompact(t testing.TB, e kvs.Engine) {
	t.Helper()
	if err := e.Compact(); err != nil {
		t.Fatalf("compact: %v", err)
	}
}

// scan returns everything r's full forward scan yields.
func scan(t testing.TB, r kvs.Reader) map[string]string {
	t.Helper()
	it, err := r.NewIter(nil)
	if err != nil {
		t.Fatalf("new iterator: %v", err)
	}
	got := map[string]string{}
	var prev string
	for ok := it.First(); ok; ok = it.Next() {
		k := string(it.Key())
		if len(got) > 0 && k <= prev {
			t.Fatalf("scan out of order: %q after %q", k, prev)
		}
		prev = k
		got[k] = string(it.Value())
	}
	if err := it.Close(); err != nil {
		t.Fatalf("scan: %v", err)
	}
	return got
}

// checkContents checks that r holds exactly want, by a scan and by a Get
// of every key in want and of every key in absent.
func checkContents(t testing.TB, r kvs.Reader, want map[string]string, absent ...string) {
	t.Helper()
	if got := scan(t, r); !maps.Equal(got, want) {
		t.Fatalf("scan: %s", diff(want, got))
	}
	for k, v := range want {
		got, err := r.Get([]byte(k))
		if err != nil || string(got) != v {
			t.Fatalf("get %q = %.20q, %v; want %.20q", k, got, err, v)
		}
	}
	for _, k := range absent {
		if v, err := r.Get([]byte(k)); !errors.Is(err, kvs.ErrNotFound) {
			t.Fatalf("get %q = %.20q, %v; want kvs.ErrNotFound", k, v, err)
		}
	}
}

// diff describes the first few differences between two contents.
func diff(want, got map[string]string) string {
	var out []string
	for _, k := range slices.Sorted(maps.Keys(want)) {
		if g, ok := got[k]; !ok {
			out = append(out, fmt.Sprintf("%q missing", k))
		} else if g != want[k] {
			out = append(out, fmt.Sprintf("%q = %.20q, want %.20q", k, g, want[k]))
		}
	}
	for _, k := range slices.Sorted(maps.Keys(got)) {
		if _, ok := want[k]; !ok {
			out = append(out, fmt.Sprintf("%q = %.20q, want absent", k, got[k]))
		}
	}
	if len(out) > 5 {
		out = append(out[:5], fmt.Sprintf("... %d more", len(out)-5))
	}
	return fmt.Sprintf("%d keys, want %d: %v", len(got), len(want), out)
}

// checkInvariants checks, under the DB's locks, that the keydir points
// only at live segments, inside them, and that every live counter equals
// what the keydir implies.
func checkInvariants(t testing.TB, db *DB) {
	t.Helper()
	db.writeMu.Lock()
	defer db.writeMu.Unlock()
	db.mu.RLock()
	defer db.mu.RUnlock()
	items := db.keydir.view(nil, nil).ascend(nil, nil, false, math.MaxInt)
	if len(items) != db.keydir.len() {
		t.Errorf("invariant: a full view has %d items, the keydir %d", len(items), db.keydir.len())
	}
	liveRecords := map[uint64]int64{}
	liveBytes := map[uint64]int64{}
	var userBytes int64
	for _, it := range items {
		s := db.segs[uint64(it.e.fileID)]
		switch {
		case s == nil:
			t.Errorf("invariant: key %q points at segment %d, which is not live", it.key, it.e.fileID)
			continue
		case it.e.offset < fileHeaderLen || it.e.offset+int64(it.e.size) > s.bytes:
			t.Errorf("invariant: key %q points at [%d, %d), outside segment %d of %d bytes", it.key, it.e.offset, it.e.offset+int64(it.e.size), s.id, s.bytes)
		}
		liveRecords[s.id]++
		liveBytes[s.id] += int64(it.e.size)
		userBytes += int64(len(it.key) + valueLenOf(int64(it.e.size), it.e.seq, len(it.key)))
	}
	for id, s := range db.segs {
		if s.liveRecords != liveRecords[id] || s.liveBytes != liveBytes[id] {
			t.Errorf("invariant: segment %d counts %d live records (%d bytes), the keydir says %d (%d bytes)",
				id, s.liveRecords, s.liveBytes, liveRecords[id], liveBytes[id])
		}
		if s.liveRecords > s.records {
			t.Errorf("invariant: segment %d has %d live records of %d", id, s.liveRecords, s.records)
		}
	}
	if userBytes != db.liveUserBytes {
		t.Errorf("invariant: live user bytes counted %d, the keydir says %d", db.liveUserBytes, userBytes)
	}
	if slices.Max(slices.Collect(maps.Keys(db.segs))) != db.active.id {
		t.Errorf("invariant: the active segment %d is not the newest", db.active.id)
	}
}

// keyN and valueN make the n-th test key (16 bytes) and a value of size
// bytes for it in round r.
func keyN(n int) string { return fmt.Sprintf("key-%012d", n) }

func valueN(n, r, size int) string {
	v := fmt.Sprintf("v%d.%d:", n, r)
	for len(v) < size {
		v += string(rune('a' + (n+r+len(v))%26))
	}
	return v[:size]
}
