package kvs

import (
	"errors"
	"strings"
	"testing"
)

func TestEnsureDefaultsOnNil(t *testing.T) {
	var o *Options
	o = o.EnsureDefaults()
	if o.FS == nil || o.Logger == nil || o.MaxValueSize != DefaultMaxValueSize ||
		o.Bitcask.Index != IndexHash || o.Bitcask.MaxSegmentBytes != DefaultMaxSegmentBytes ||
		o.LSM.Compression != CompressionSnappy || o.LSM.Compaction != "" {
		t.Fatalf("defaults not applied: %+v", o)
	}
}

func TestValidateNamesTheOption(t *testing.T) {
	cases := []struct {
		name string
		o    Options
		want string
	}{
		{"negative value size", Options{MaxValueSize: -1}, "MaxValueSize"},
		{"huge value size", Options{MaxValueSize: 2 << 30}, "MaxValueSize"},
		{"unknown index", Options{Bitcask: BitcaskOptions{Index: "skiplist"}}, "Bitcask.Index"},
		{"negative segment", Options{Bitcask: BitcaskOptions{MaxSegmentBytes: -5}}, "Bitcask.MaxSegmentBytes"},
		{"negative memtable", Options{LSM: LSMOptions{MemtableBytes: -1}}, "LSM.MemtableBytes"},
		{"huge memtable", Options{LSM: LSMOptions{MemtableBytes: 2 << 30}}, "LSM.MemtableBytes"},
		{"negative target file", Options{LSM: LSMOptions{TargetFileSize: -1}}, "LSM.TargetFileSize"},
		{"negative cache", Options{LSM: LSMOptions{BlockCacheBytes: -1}}, "LSM.BlockCacheBytes"},
		{"multiplier one", Options{LSM: LSMOptions{LevelMultiplier: 1}}, "LSM.LevelMultiplier"},
		{"slowdown above stop", Options{LSM: LSMOptions{L0SlowdownTrigger: 9, L0StopTrigger: 8}}, "LSM.L0SlowdownTrigger"},
		{"trigger above stop", Options{LSM: LSMOptions{L0CompactionTrigger: 9, L0StopTrigger: 8}}, "LSM.L0CompactionTrigger"},
		{"unknown compression", Options{LSM: LSMOptions{Compression: "zstd"}}, "LSM.Compression"},
		{"unknown policy", Options{LSM: LSMOptions{Compaction: "universal"}}, "LSM.Compaction"},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			err := c.o.Validate()
			if err == nil || !strings.Contains(err.Error(), c.want) {
				t.Fatalf("Validate = %v, want an error naming %s", err, c.want)
			}
		})
	}
}

func TestValidateAcceptsZeroAndDefaults(t *testing.T) {
	var zero Options
	if err := zero.Validate(); err != nil {
		t.Fatalf("zero Options: %v", err)
	}
	if err := (&Options{}).EnsureDefaults().Validate(); err != nil {
		t.Fatalf("defaults: %v", err)
	}
	for _, policy := range []string{CompactionLeveled, CompactionTiered} {
		if err := (&Options{LSM: LSMOptions{Compaction: policy}}).Validate(); err != nil {
			t.Errorf("policy %q: %v", policy, err)
		}
	}
}

func TestCheckKeyAndValue(t *testing.T) {
	if err := CheckKey(nil); !errors.Is(err, ErrEmptyKey) {
		t.Errorf("CheckKey(nil) = %v", err)
	}
	if err := CheckKey(make([]byte, MaxKeySize)); err != nil {
		t.Errorf("CheckKey(max) = %v", err)
	}
	if err := CheckKey(make([]byte, MaxKeySize+1)); !errors.Is(err, ErrKeyTooLarge) {
		t.Errorf("CheckKey(max+1) = %v", err)
	}
	if err := CheckValue(make([]byte, 5), 4); !errors.Is(err, ErrValueTooLarge) || !strings.Contains(err.Error(), "5 bytes") {
		t.Errorf("CheckValue = %v", err)
	}
}

func TestCorruptionErrorMatchesSentinel(t *testing.T) {
	err := error(&CorruptionError{File: "000001.data", Offset: 99, Reason: "checksum mismatch"})
	wrapped := errors.Join(errors.New("open"), err)
	if !errors.Is(wrapped, ErrCorruption) {
		t.Fatal("errors.Is(ErrCorruption) false")
	}
	var ce *CorruptionError
	if !errors.As(wrapped, &ce) || ce.Offset != 99 {
		t.Fatal("errors.As failed")
	}
	if got := err.Error(); !strings.Contains(got, "000001.data") || !strings.Contains(got, "offset 99") {
		t.Fatalf("message %q does not name file and offset", got)
	}
}

func TestStatsRatios(t *testing.T) {
	s := Stats{UserBytesWritten: 100, DiskBytesWritten: 250, BytesOnDisk: 130, LiveBytes: 100, Gets: 4, DiskReads: 6, IndexBytes: 640, LiveKeys: 10}
	if s.WriteAmp() != 2.5 || s.SpaceAmp() != 1.3 || s.ReadAmp() != 1.5 || s.MemoryPerKey() != 64 {
		t.Fatalf("ratios: w=%v s=%v r=%v m=%v", s.WriteAmp(), s.SpaceAmp(), s.ReadAmp(), s.MemoryPerKey())
	}
	if (Stats{}).WriteAmp() != 0 || (Stats{}).SpaceAmp() != 0 {
		t.Fatal("empty stats ratios not zero")
	}
}
