package lsm

import (
	"bytes"
	"errors"
	"reflect"
	"testing"

	"github.com/kvs-lab/kvs"
	"github.com/kvs-lab/kvs/compaction"
	"github.com/kvs-lab/kvs/internal/base"
)

func meta(num uint64, lo, hi string, seqLo, seqHi uint64) *compaction.TableMeta {
	return &compaction.TableMeta{
		FileNum: num, Size: int64(num) * 1000,
		Smallest:    base.MakeInternalKey([]byte(lo), seqHi, base.KindSet),
		Largest:     base.MakeInternalKey([]byte(hi), seqLo, base.KindDelete),
		SmallestSeq: seqLo, LargestSeq: seqHi,
	}
}

func TestKindsMatchTheRootPackage(t *testing.T) {
	if base.KindSet != base.Kind(kvs.KindSet) || base.KindDelete != base.Kind(kvs.KindDelete) {
		t.Fatal("internal/base kinds differ from kvs kinds: batches and internal keys would disagree")
	}
}

func TestVersionEditRoundTrip(t *testing.T) {
	e := &VersionEdit{
		LogNumber: 7, NextFileNumber: 12, LastSeq: 99, Compaction: "tiered",
		Deleted: []DeletedTable{{0, 3}, {1, 4}},
		Added:   []NewTable{{1, meta(9, "a", "m", 10, 50)}, {2, meta(10, "n\x00", "z\xff", 1, 1)}},
	}
	got, err := DecodeVersionEdit(e.Encode(nil))
	if err != nil {
		t.Fatal(err)
	}
	if !reflect.DeepEqual(got, e) {
		t.Fatalf("round trip:\n got %+v\nwant %+v", got, e)
	}
	if empty, err := DecodeVersionEdit(nil); err != nil || !reflect.DeepEqual(empty, &VersionEdit{}) {
		t.Fatalf("empty edit: %+v, %v", empty, err)
	}
}

func TestDecodeVersionEditRejectsMalformed(t *testing.T) {
	good := (&VersionEdit{Added: []NewTable{{1, meta(9, "a", "m", 10, 50)}}}).Encode(nil)
	cases := map[string][]byte{
		"unknown tag":     {99, 1},
		"truncated":       good[:len(good)-3],
		"level too deep":  {tagDeletedTable, 9, 1},
		"bad varint":      {tagLogNumber, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0x01},
		"key too long":    {tagNewTable, 1, 9, 1, 200, 'a'},
		"short key":       {tagNewTable, 1, 9, 1, 3, 'a', 'b', 'c'},
		"unknown policy":  append([]byte{tagCompaction, 5}, "fancy"...),
		"policy too long": {tagCompaction, 9, 't'},
		"inverted range":  (&VersionEdit{Added: []NewTable{{1, meta(9, "z", "a", 1, 2)}}}).Encode(nil),
	}
	for name, in := range cases {
		t.Run(name, func(t *testing.T) {
			if _, err := DecodeVersionEdit(in); !errors.Is(err, errBadEdit) {
				t.Fatalf("DecodeVersionEdit(%x) = %v, want errBadEdit", in, err)
			}
		})
	}
}

func TestApplyKeepsLevelsOrdered(t *testing.T) {
	v := &compaction.Version{}
	flush := func(num, seq uint64) *VersionEdit {
		return &VersionEdit{Added: []NewTable{{0, meta(num, "a", "z", seq, seq+9)}}}
	}
	var err error
	for i, e := range []*VersionEdit{flush(1, 1), flush(2, 11), flush(3, 21)} {
		if v, err = e.Apply(v); err != nil {
			t.Fatalf("edit %d: %v", i, err)
		}
	}
	if got := []uint64{v.Levels[0][0].FileNum, v.Levels[0][1].FileNum, v.Levels[0][2].FileNum}; !reflect.DeepEqual(got, []uint64{3, 2, 1}) {
		t.Fatalf("L0 order %v, want newest first 3,2,1", got)
	}
	// A compaction: L0 tables out, two L1 tables in (given out of order).
	c := &VersionEdit{
		Deleted: []DeletedTable{{0, 1}, {0, 2}, {0, 3}},
		Added:   []NewTable{{1, meta(5, "n", "z", 1, 30)}, {1, meta(4, "a", "m", 1, 30)}},
	}
	before := v
	if v, err = c.Apply(v); err != nil {
		t.Fatal(err)
	}
	if len(v.Levels[0]) != 0 || v.Levels[1][0].FileNum != 4 || v.Levels[1][1].FileNum != 5 {
		t.Fatalf("after compaction: L0 %v, L1 %v", v.Levels[0], v.Levels[1])
	}
	if len(before.Levels[0]) != 3 {
		t.Fatal("Apply modified the version it was given")
	}
}

func TestApplyRejectsInconsistentEdits(t *testing.T) {
	v, err := (&VersionEdit{Added: []NewTable{{1, meta(4, "a", "m", 1, 2)}}}).Apply(&compaction.Version{})
	if err != nil {
		t.Fatal(err)
	}
	bad := map[string]*VersionEdit{
		"delete absent":        {Deleted: []DeletedTable{{1, 99}}},
		"delete wrong level":   {Deleted: []DeletedTable{{2, 4}}},
		"add duplicate":        {Added: []NewTable{{2, meta(4, "x", "y", 1, 2)}}},
		"overlap in level one": {Added: []NewTable{{1, meta(8, "c", "q", 3, 4)}}},
	}
	for name, e := range bad {
		t.Run(name, func(t *testing.T) {
			if _, err := e.Apply(v); err == nil {
				t.Fatal("Apply accepted it")
			}
		})
	}
}

func FuzzDecodeVersionEdit(f *testing.F) {
	f.Add((&VersionEdit{LogNumber: 3, Deleted: []DeletedTable{{0, 1}}, Added: []NewTable{{1, meta(9, "a", "m", 10, 50)}}}).Encode(nil))
	f.Add([]byte{})
	f.Add([]byte{tagNewTable, 0, 1, 1, 9})
	f.Fuzz(func(t *testing.T, in []byte) {
		e, err := DecodeVersionEdit(in)
		if err != nil {
			if !errors.Is(err, errBadEdit) {
				t.Fatalf("error %v does not wrap errBadEdit", err)
			}
			return
		}
		// Whatever decodes re-encodes to an edit that decodes the same.
		again, err := DecodeVersionEdit(e.Encode(nil))
		if err != nil || !bytes.Equal(again.Encode(nil), e.Encode(nil)) {
			t.Fatalf("re-encoding %x: %v", in, err)
		}
		_, _ = e.Apply(&compaction.Version{}) // must not panic
	})
}

// TestManifestWorkedExample pins the example in docs/formats/manifest.md.
func TestManifestWorkedExample(t *testing.T) {
	e := &VersionEdit{LogNumber: 4, NextFileNumber: 6, LastSeq: 100, Deleted: []DeletedTable{{Level: 0, FileNum: 3}},
		Added: []NewTable{{Level: 1, Meta: &compaction.TableMeta{FileNum: 5, Size: 4096,
			Smallest: base.MakeInternalKey([]byte("a"), 7, base.KindSet), Largest: base.MakeInternalKey([]byte("m"), 2, base.KindDelete),
			SmallestSeq: 2, LargestSeq: 7}}}}
	want := []byte{
		0x01, 0x04, 0x02, 0x06, 0x03, 0x64, 0x04, 0x00, 0x03, 0x05, 0x01, 0x05, 0x80, 0x20,
		0x09, 0x61, 0x01, 0x07, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00,
		0x09, 0x6d, 0x00, 0x02, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00,
		0x02, 0x07,
	}
	if got := e.Encode(nil); !bytes.Equal(got, want) {
		t.Fatalf("encoding changed: the doc's example is\n% x\nthe code writes\n% x", want, got)
	}
}
