package kvs

import (
	"bytes"
	"errors"
	"fmt"
	"strings"
	"testing"
)

func TestBatchRoundTrip(t *testing.T) {
	var b Batch
	b.Put([]byte("a"), []byte("1"))
	b.Delete([]byte("b"))
	b.Put([]byte{0, 0xff}, nil)
	b.SetSeq(42)
	if b.Count() != 3 {
		t.Fatalf("Count = %d, want 3", b.Count())
	}
	d, err := DecodeBatch(b.Repr())
	if err != nil {
		t.Fatal(err)
	}
	if d.Seq() != 42 || d.Count() != 3 || d.UserBytes() != b.UserBytes() {
		t.Fatalf("decoded seq=%d count=%d user=%d, want 42 3 %d", d.Seq(), d.Count(), d.UserBytes(), b.UserBytes())
	}
	want := []string{"SET a=1", "DEL b=", "SET \x00\xff="}
	r := d.Reader()
	for i, w := range want {
		kind, k, v, ok := r.Next()
		if !ok {
			t.Fatalf("entry %d missing: %v", i, r.Err())
		}
		if got := fmt.Sprintf("%s %s=%s", kind, k, v); got != w {
			t.Errorf("entry %d = %q, want %q", i, got, w)
		}
	}
	if _, _, _, ok := r.Next(); ok {
		t.Fatal("reader returned an entry past the end")
	}
}

func TestBatchCopiesKeyAndValue(t *testing.T) {
	var b Batch
	k, v := []byte("key"), []byte("value")
	b.Put(k, v)
	k[0], v[0] = 'X', 'X'
	r := b.Reader()
	_, gk, gv, _ := r.Next()
	if string(gk) != "key" || string(gv) != "value" {
		t.Fatalf("batch kept caller's buffers: %q=%q", gk, gv)
	}
}

func TestBatchResetReuses(t *testing.T) {
	var b Batch
	b.Put([]byte("a"), []byte("1"))
	b.SetSeq(9)
	b.Reset()
	if !b.Empty() || b.Seq() != 0 || len(b.Repr()) != BatchHeaderLen || b.UserBytes() != 0 {
		t.Fatalf("after Reset: count=%d seq=%d len=%d", b.Count(), b.Seq(), len(b.Repr()))
	}
	b.Delete([]byte("z"))
	if b.Count() != 1 {
		t.Fatalf("Count after reuse = %d", b.Count())
	}
}

func TestBatchValidateNamesEntry(t *testing.T) {
	var b Batch
	b.Put([]byte("ok"), []byte("v"))
	b.Put(nil, []byte("v"))
	err := b.Validate(10)
	if !errors.Is(err, ErrEmptyKey) || !strings.Contains(err.Error(), "entry 1") {
		t.Fatalf("Validate = %v, want ErrEmptyKey naming entry 1", err)
	}
	b.Reset()
	b.Put([]byte("k"), bytes.Repeat([]byte("v"), 11))
	if err := b.Validate(10); !errors.Is(err, ErrValueTooLarge) {
		t.Fatalf("Validate = %v, want ErrValueTooLarge", err)
	}
	b.Reset()
	b.Delete(bytes.Repeat([]byte("k"), MaxKeySize+1))
	if err := b.Validate(10); !errors.Is(err, ErrKeyTooLarge) {
		t.Fatalf("Validate = %v, want ErrKeyTooLarge", err)
	}
}

func TestBatchValidateRefusesABatchOverTheLimit(t *testing.T) {
	defer func(n int) { maxBatchSize = n }(maxBatchSize)
	maxBatchSize = 1000
	var b Batch
	for i := 0; len(b.Repr()) <= maxBatchSize; i++ {
		if err := b.Validate(100); err != nil {
			t.Fatalf("a batch of %d bytes: %v", len(b.Repr()), err)
		}
		b.Put(fmt.Appendf(nil, "key%d", i), bytes.Repeat([]byte("v"), 50))
	}
	if err := b.Validate(100); !errors.Is(err, ErrBatchTooLarge) {
		t.Fatalf("a batch of %d bytes: %v, want ErrBatchTooLarge", len(b.Repr()), err)
	}
}

func TestDecodeBatchRejectsMalformed(t *testing.T) {
	var good Batch
	good.Put([]byte("key"), []byte("value"))
	repr := good.Repr()
	cases := map[string][]byte{
		"short header":   repr[:5],
		"truncated":      repr[:len(repr)-2],
		"trailing bytes": append(append([]byte(nil), repr...), 7),
		"unknown kind":   append(append([]byte(nil), repr[:BatchHeaderLen]...), 9, 1, 'k'),
		"count too high": func() []byte {
			c := append([]byte(nil), repr...)
			c[8] = 2
			return c
		}(),
		"huge length": append(append([]byte(nil), repr[:BatchHeaderLen]...), 1, 0xff, 0xff, 0xff, 0xff, 0x0f),
	}
	for name, in := range cases {
		t.Run(name, func(t *testing.T) {
			if _, err := DecodeBatch(in); err == nil {
				t.Fatalf("DecodeBatch(%x) succeeded", in)
			}
		})
	}
}

func FuzzDecodeBatch(f *testing.F) {
	var b Batch
	b.Put([]byte("a"), []byte("1"))
	b.Delete([]byte("b"))
	f.Add(b.Repr())
	f.Add([]byte{})
	f.Add(make([]byte, BatchHeaderLen))
	f.Fuzz(func(t *testing.T, in []byte) {
		d, err := DecodeBatch(in)
		if err != nil {
			return
		}
		// A batch that decodes re-encodes to the same bytes.
		var again Batch
		r := d.Reader()
		for {
			kind, k, v, ok := r.Next()
			if !ok {
				break
			}
			if kind == KindSet {
				again.Put(k, v)
			} else {
				again.Delete(k)
			}
		}
		again.SetSeq(d.Seq())
		if !bytes.Equal(again.Repr(), in) {
			t.Fatalf("re-encoding %x gave %x", in, again.Repr())
		}
	})
}
