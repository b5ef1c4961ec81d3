package enginetest

import (
	"bytes"
	"errors"
	"strings"
	"testing"

	"github.com/kvs-lab/kvs"
)

// testPointOps checks Get, Put and Delete one key at a time.
func testPointOps(t *testing.T, c Config) {
	t.Run("GetAbsentKeyReturnsErrNotFound", func(t *testing.T) {
		e, _ := openMem(t, c)
		v, err := e.Get([]byte("absent"))
		if !errors.Is(err, kvs.ErrNotFound) {
			t.Fatalf("get of an absent key in an empty engine: value %q, error %v; want kvs.ErrNotFound", v, err)
		}
		mustPut(t, e, "present", "v", kvs.NoSync)
		v, err = e.Get([]byte("absent"))
		if !errors.Is(err, kvs.ErrNotFound) {
			t.Fatalf("get of an absent key: value %q, error %v; want kvs.ErrNotFound", v, err)
		}
	})
	t.Run("PutThenGetReturnsValue", func(t *testing.T) {
		e, _ := openMem(t, c)
		mustPut(t, e, "a", "1", kvs.NoSync)
		mustPut(t, e, "b", "2", kvs.Sync)
		checkGet(t, e, "a", "1", true)
		checkGet(t, e, "b", "2", true)
	})
	t.Run("OverwriteReplacesValue", func(t *testing.T) {
		e, _ := openMem(t, c)
		mustPut(t, e, "k", "first", kvs.NoSync)
		mustPut(t, e, "k", "second, longer", kvs.NoSync)
		checkGet(t, e, "k", "second, longer", true)
		mustPut(t, e, "k", "3", kvs.Sync)
		checkGet(t, e, "k", "3", true)
		checkState(t, e, state{"k": "3"}, nil)
	})
	t.Run("DeleteRemovesKey", func(t *testing.T) {
		e, _ := openMem(t, c)
		mustPut(t, e, "k", "v", kvs.NoSync)
		mustPut(t, e, "other", "w", kvs.NoSync)
		mustDelete(t, e, "k", kvs.NoSync)
		checkGet(t, e, "k", "", false)
		checkState(t, e, state{"other": "w"}, []string{"k"})
		mustPut(t, e, "k", "again", kvs.NoSync)
		checkGet(t, e, "k", "again", true)
	})
	t.Run("DeleteOfAbsentKeySucceeds", func(t *testing.T) {
		e, _ := openMem(t, c)
		mustDelete(t, e, "never-written", kvs.NoSync)
		mustDelete(t, e, "never-written", kvs.Sync)
		mustPut(t, e, "k", "v", kvs.NoSync)
		mustDelete(t, e, "k", kvs.NoSync)
		mustDelete(t, e, "k", kvs.NoSync)
		checkState(t, e, state{}, []string{"k", "never-written"})
	})
	t.Run("EmptyValueIsStoredAndDistinctFromAbsent", func(t *testing.T) {
		e, _ := openMem(t, c)
		mustPut(t, e, "empty", "", kvs.Sync)
		got, err := e.Get([]byte("empty"))
		if err != nil {
			t.Fatalf("get of a key holding an empty value: %v", err)
		}
		if len(got) != 0 {
			t.Fatalf("get of a key holding an empty value = %q", got)
		}
		checkState(t, e, state{"empty": ""}, nil)
	})
	t.Run("LargeValueRoundTrips", func(t *testing.T) {
		e, _ := openMem(t, c)
		big := pattern(1<<20, 7)
		mustPut(t, e, "big", big, kvs.Sync)
		mustPut(t, e, "small", "s", kvs.NoSync)
		checkGet(t, e, "big", big, true)
		big2 := pattern(1<<20+3, 11)
		mustPut(t, e, "big", big2, kvs.NoSync)
		checkGet(t, e, "big", big2, true)
		checkState(t, e, state{"big": big2, "small": "s"}, nil)
	})
	t.Run("BinaryKeysAndValues", func(t *testing.T) {
		e, _ := openMem(t, c)
		want := state{
			"\x00":             "zero",
			"\x00\x00":         "two zeros",
			"\xff":             "\x00\xff\x00",
			"\xff\xff\xff":     "",
			"a\x00b":           "embedded zero",
			"a":                "\xff\xfe",
			"\x01\x80\x7f\xc3": strings.Repeat("\x00", 100),
		}
		for _, k := range state(want).sortedKeys() {
			mustPut(t, e, k, want[k], kvs.NoSync)
		}
		for k, v := range want {
			checkGet(t, e, k, v, true)
		}
		checkGet(t, e, "a\x00", "", false)
		checkGet(t, e, "\x00\x00\x00", "", false)
		checkState(t, e, want, []string{"a\x00", "\x00\x00\x00", "b"})
	})
	t.Run("CallerOwnsSlices", func(t *testing.T) {
		e, _ := openMem(t, c)
		key := []byte("key")
		val := []byte("value")
		if err := e.Put(key, val, kvs.NoSync); err != nil {
			t.Fatal(err)
		}
		// Reuse the caller's buffers after Put returned.
		copy(key, "KEY")
		copy(val, "VALUE")
		checkGet(t, e, "key", "value", true)
		checkGet(t, e, "KEY", "", false)

		var b kvs.Batch
		bk, bv := []byte("bkey"), []byte("bval")
		b.Put(bk, bv)
		copy(bk, "XXXX")
		copy(bv, "YYYY")
		mustWrite(t, e, &b, kvs.NoSync)
		checkGet(t, e, "bkey", "bval", true)

		got, err := e.Get([]byte("key"))
		if err != nil {
			t.Fatal(err)
		}
		// The returned slice is the caller's: scribbling over it (and
		// appending to it) must not change what the engine holds.
		for i := range got {
			got[i] = '!'
		}
		_ = append(got[:len(got):len(got)], "tail"...)
		got2, err := e.Get([]byte("key"))
		if err != nil {
			t.Fatal(err)
		}
		if string(got2) != "value" {
			t.Fatalf("after the caller modified a slice Get returned, Get = %q, want %q", got2, "value")
		}
		if len(got) > 0 && len(got2) > 0 && &got[0] == &got2[0] {
			t.Fatalf("two Gets returned the same backing array; the slice must belong to the caller")
		}

		// So is a slice a snapshot's Get returns.
		snap, err := e.NewSnapshot()
		if err != nil {
			t.Fatal(err)
		}
		sv, err := snap.Get([]byte("key"))
		if err != nil {
			t.Fatal(err)
		}
		for i := range sv {
			sv[i] = '?'
		}
		checkGet(t, snap, "key", "value", true)
		if err := snap.Close(); err != nil {
			t.Fatal(err)
		}

		// Iterator values copied out by the caller stay put.
		it, err := e.NewIter(nil)
		if err != nil {
			t.Fatal(err)
		}
		var keys [][]byte
		for ok := it.First(); ok; ok = it.Next() {
			keys = append(keys, bytes.Clone(it.Key()))
		}
		if err := it.Close(); err != nil {
			t.Fatal(err)
		}
		if len(keys) != 2 || string(keys[0]) != "bkey" || string(keys[1]) != "key" {
			t.Fatalf("scan keys = %q, want [bkey key]", keys)
		}
		checkState(t, e, state{"key": "value", "bkey": "bval"}, nil)
	})
	t.Run("ManyKeysAllReadable", func(t *testing.T) {
		e, _ := openMem(t, c)
		want := state{}
		for i := 0; i < 2000; i++ {
			k := keyf("key-%05d", i*7919%2000)
			v := pattern(i%300, i)
			want[k] = v
			mustPut(t, e, k, v, kvs.NoSync)
		}
		for i := 0; i < 2000; i += 3 {
			k := keyf("key-%05d", i)
			delete(want, k)
			mustDelete(t, e, k, kvs.NoSync)
		}
		checkState(t, e, want, []string{"key-00000", "key-00003", "key-02000"})
	})
}

// testLimits checks that bad keys and values are rejected with the
// documented errors, and that a batch holding one is rejected whole.
func testLimits(t *testing.T, c Config) {
	const maxValue = 1000
	limited := c
	limited.Options = func() *kvs.Options {
		o := c.Options()
		if o == nil {
			o = &kvs.Options{}
		}
		o = o.Clone()
		o.MaxValueSize = maxValue
		return o
	}
	maxKey := strings.Repeat("k", kvs.MaxKeySize)
	tooLongKey := strings.Repeat("k", kvs.MaxKeySize+1)
	tooBig := strings.Repeat("v", maxValue+1)

	t.Run("EmptyKeyIsRejected", func(t *testing.T) {
		e, _ := openMem(t, limited)
		if err := e.Put(nil, []byte("v"), kvs.NoSync); !errors.Is(err, kvs.ErrEmptyKey) {
			t.Errorf("put with a nil key: %v, want kvs.ErrEmptyKey", err)
		}
		if err := e.Put([]byte{}, []byte("v"), kvs.Sync); !errors.Is(err, kvs.ErrEmptyKey) {
			t.Errorf("put with an empty key: %v, want kvs.ErrEmptyKey", err)
		}
		if err := e.Delete([]byte{}, kvs.NoSync); !errors.Is(err, kvs.ErrEmptyKey) {
			t.Errorf("delete with an empty key: %v, want kvs.ErrEmptyKey", err)
		}
		if _, err := e.Get([]byte{}); err == nil {
			t.Errorf("get of an empty key succeeded; want an error")
		}
		checkState(t, e, state{}, nil)
	})
	t.Run("KeyOfMaxKeySizeIsAccepted", func(t *testing.T) {
		e, _ := openMem(t, limited)
		mustPut(t, e, maxKey, "v", kvs.Sync)
		checkGet(t, e, maxKey, "v", true)
		mustDelete(t, e, maxKey, kvs.NoSync)
		checkGet(t, e, maxKey, "", false)
		mustPut(t, e, maxKey, "w", kvs.NoSync)
		checkState(t, e, state{maxKey: "w"}, nil)
	})
	t.Run("KeyOverMaxKeySizeIsRejected", func(t *testing.T) {
		e, _ := openMem(t, limited)
		if err := e.Put([]byte(tooLongKey), []byte("v"), kvs.NoSync); !errors.Is(err, kvs.ErrKeyTooLarge) {
			t.Errorf("put with a %d-byte key: %v, want kvs.ErrKeyTooLarge", len(tooLongKey), err)
		}
		if err := e.Delete([]byte(tooLongKey), kvs.NoSync); !errors.Is(err, kvs.ErrKeyTooLarge) {
			t.Errorf("delete with a %d-byte key: %v, want kvs.ErrKeyTooLarge", len(tooLongKey), err)
		}
		checkState(t, e, state{}, nil)
	})
	t.Run("ValueOverMaxValueSizeIsRejected", func(t *testing.T) {
		e, _ := openMem(t, limited)
		mustPut(t, e, "max", strings.Repeat("v", maxValue), kvs.NoSync)
		if err := e.Put([]byte("k"), []byte(tooBig), kvs.Sync); !errors.Is(err, kvs.ErrValueTooLarge) {
			t.Errorf("put of a %d-byte value with MaxValueSize %d: %v, want kvs.ErrValueTooLarge", len(tooBig), maxValue, err)
		}
		checkState(t, e, state{"max": strings.Repeat("v", maxValue)}, nil)
	})
	t.Run("DefaultMaxValueSizeIsEnforced", func(t *testing.T) {
		e, _ := openMem(t, c)
		o := c.Options()
		limit := kvs.DefaultMaxValueSize
		if o != nil && o.MaxValueSize != 0 {
			limit = o.MaxValueSize
		}
		if err := e.Put([]byte("k"), make([]byte, limit+1), kvs.NoSync); !errors.Is(err, kvs.ErrValueTooLarge) {
			t.Errorf("put of a %d-byte value with MaxValueSize %d: %v, want kvs.ErrValueTooLarge", limit+1, limit, err)
		}
		checkState(t, e, state{}, nil)
	})
	t.Run("BatchWithOneBadEntryIsRejectedWhole", func(t *testing.T) {
		e, _ := openMem(t, limited)
		mustPut(t, e, "a", "old", kvs.NoSync)
		bad := []struct {
			name string
			add  func(b *kvs.Batch)
			want error
		}{
			{"empty key", func(b *kvs.Batch) { b.Put(nil, []byte("x")) }, kvs.ErrEmptyKey},
			{"empty key in a delete", func(b *kvs.Batch) { b.Delete(nil) }, kvs.ErrEmptyKey},
			{"long key", func(b *kvs.Batch) { b.Put([]byte(tooLongKey), []byte("x")) }, kvs.ErrKeyTooLarge},
			{"big value", func(b *kvs.Batch) { b.Put([]byte("z"), []byte(tooBig)) }, kvs.ErrValueTooLarge},
		}
		for _, bc := range bad {
			for _, o := range []kvs.WriteOptions{kvs.NoSync, kvs.Sync} {
				var b kvs.Batch
				b.Put([]byte("a"), []byte("new"))
				b.Put([]byte("b"), []byte("new"))
				b.Delete([]byte("a"))
				bc.add(&b)
				b.Put([]byte("c"), []byte("new"))
				if err := e.Write(&b, o); !errors.Is(err, bc.want) {
					t.Errorf("batch with a bad entry (%s), sync=%v: %v, want %v", bc.name, o.Sync, err, bc.want)
				}
			}
		}
		checkState(t, e, state{"a": "old"}, []string{"b", "c", "z"})
		// The engine still works after the rejections.
		mustPut(t, e, "b", "after", kvs.Sync)
		checkState(t, e, state{"a": "old", "b": "after"}, nil)
	})
	t.Run("RejectedWritesDoNotSurviveReopen", func(t *testing.T) {
		fs := newMem()
		e := openEngine(t, limited, limited.Options, fs, engineDir)
		mustPut(t, e, "a", "1", kvs.Sync)
		e.Put(nil, []byte("x"), kvs.Sync)
		e.Put([]byte("b"), []byte(tooBig), kvs.Sync)
		var b kvs.Batch
		b.Put([]byte("c"), []byte("1"))
		b.Put([]byte(tooLongKey), nil)
		e.Write(&b, kvs.Sync)
		mustPut(t, e, "d", "1", kvs.NoSync)
		mustClose(t, e)
		e = openEngine(t, limited, limited.Options, fs, engineDir)
		defer e.Close()
		checkState(t, e, state{"a": "1", "d": "1"}, []string{"b", "c"})
	})
}
