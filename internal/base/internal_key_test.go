package base

import (
	"slices"
	"testing"
)

func TestInternalKeyOrder(t *testing.T) {
	keys := []InternalKey{
		MakeInternalKey([]byte("b"), 1, KindSet),
		MakeInternalKey([]byte("a"), 5, KindSet),
		MakeInternalKey([]byte("a"), 9, KindDelete),
		MakeSearchKey([]byte("a")),
		MakeInternalKey([]byte("a"), 9, KindSet),
		MakeInternalKey([]byte("ab"), 1, KindSet),
	}
	slices.SortFunc(keys, InternalCompare)
	want := []string{`"a"#72057594037927935,SET`, `"a"#9,SET`, `"a"#9,DEL`, `"a"#5,SET`, `"ab"#1,SET`, `"b"#1,SET`}
	for i, k := range keys {
		if k.String() != want[i] {
			t.Errorf("position %d: %s, want %s", i, k, want[i])
		}
	}
	for i := 1; i < len(keys); i++ {
		a, b := keys[i-1].Append(nil), keys[i].Append(nil)
		if CompareEncoded(a, b) >= 0 {
			t.Errorf("encoded %s does not sort before %s", keys[i-1], keys[i])
		}
	}
}

func TestInternalKeyRoundTrip(t *testing.T) {
	k := MakeInternalKey([]byte("user\x00key"), 12345, KindDelete)
	enc := k.Append(nil)
	if len(enc) != k.Size() {
		t.Fatalf("encoded %d bytes, Size says %d", len(enc), k.Size())
	}
	got, ok := DecodeInternalKey(enc)
	if !ok || string(got.UserKey) != "user\x00key" || got.Seq() != 12345 || got.Kind() != KindDelete {
		t.Fatalf("decoded %v, %v", got, ok)
	}
	if _, ok := DecodeInternalKey(enc[:5]); ok {
		t.Fatal("decoded a key shorter than its trailer")
	}
	bad := MakeInternalKey([]byte("k"), 1, Kind(7)).Append(nil)
	if _, ok := DecodeInternalKey(bad); ok {
		t.Fatal("decoded an unknown kind")
	}
}
