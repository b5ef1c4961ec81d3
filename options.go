package kvs

import (
	"fmt"
	"io"
	"os"

	"github.com/kvs-lab/kvs/internal/vfs"
	"github.com/sirupsen/logrus"
)

// MaxKeySize is the largest key any engine accepts, in bytes.
const MaxKeySize = 64 << 10

// MaxBatchSize is the largest batch, in encoded bytes (Batch.Repr), that
// an engine accepts: the LSM engine holds a batch in one memtable.
const MaxBatchSize = 1 << 30

// maxBatchSize is MaxBatchSize; tests lower it.
var maxBatchSize = MaxBatchSize

// DefaultMaxValueSize is Options.MaxValueSize when it is left zero.
const DefaultMaxValueSize = 16 << 20

// Options configure an engine. The zero value (and a nil *Options) means
// defaults; EnsureDefaults fills them in.
type Options struct {
	// FS is the file system the engine uses. Default: vfs.Default, the
	// operating system's. Tests pass a vfs.MemFS to simulate crashes.
	FS vfs.FS
	// Logger receives open, recovery, merge and warning messages. Default:
	// logrus to stderr at Warn level.
	Logger *logrus.Entry
	// MaxValueSize is the largest value accepted, in bytes. Default
	// DefaultMaxValueSize (16 MiB).
	MaxValueSize int
	// DisableGroupCommit makes every synced write fsync on its own instead
	// of sharing one fsync with the synced writers waiting beside it. It
	// exists to measure what group commit buys.
	DisableGroupCommit bool
	// ErrorIfNotExist makes Open fail when the directory does not exist
	// instead of creating it.
	ErrorIfNotExist bool
	// ReadMode is how the engines read their immutable files (bitcask
	// segments, lsm tables): "mmap" (the default) copies records and
	// blocks out of a read-only memory map of each file, "pread" reads
	// each with one pread(2). A file system whose files cannot be mapped
	// (vfs.MemFS, fault injection) is always read with pread. See
	// docs/01-bitcask.md §8 for what each costs.
	ReadMode string

	// Bitcask holds options only the bitcask engine reads.
	Bitcask BitcaskOptions
	// LSM holds options only the lsm engine reads.
	LSM LSMOptions
}

// BitcaskOptions are the bitcask engine's knobs. They live here, not in
// package bitcask, so that an engine opened by name can be configured.
type BitcaskOptions struct {
	// Index selects the keydir: "hash" (the paper's hash table, the
	// default) or "btree" (an ordered google/btree). Both support ordered
	// scans; see docs/01-bitcask.md for what each costs.
	Index string
	// MaxSegmentBytes is the size at which the active segment is sealed
	// and a new one started. Default 64 MiB.
	MaxSegmentBytes int64
}

// Bitcask keydir index names.
const (
	IndexHash  = "hash"
	IndexBTree = "btree"
)

// Read modes (Options.ReadMode).
const (
	ReadModeMmap  = "mmap"
	ReadModePread = "pread"
)

// DefaultMaxSegmentBytes is BitcaskOptions.MaxSegmentBytes when left zero.
const DefaultMaxSegmentBytes = 64 << 20

// LSMOptions are the lsm engine's knobs. They live here, not in package
// lsm, so that an engine opened by name can be configured. A zero field
// means the lsm engine's default, which package lsm owns and documents
// (lsm.Options); EnsureDefaults fills in only the two names.
type LSMOptions struct {
	// MemtableBytes is the arena size of each memtable: a full memtable
	// is flushed to an L0 table. Default 8 MiB.
	MemtableBytes int
	// L0CompactionTrigger is the L0 file count at which L0 is compacted
	// into L1. Default 4.
	L0CompactionTrigger int
	// L0SlowdownTrigger is the L0 file count at which each write is
	// delayed by a millisecond. Default 8.
	L0SlowdownTrigger int
	// L0StopTrigger is the L0 file count at which writers stop until
	// compaction brings it down. Default 12.
	L0StopTrigger int
	// BaseLevelBytes is L1's target size. Default 32 MiB.
	BaseLevelBytes int64
	// LevelMultiplier is how much larger each level's target is than the
	// one above (at least 2). Default 10.
	LevelMultiplier int
	// TargetFileSize is the size at which a compaction cuts its output
	// into a new table. Default 2 MiB.
	TargetFileSize int64
	// BlockSize is the uncompressed size at which a table's data block is
	// cut. Default 4 KiB.
	BlockSize int
	// BloomBitsPerKey sizes each table's bloom filter; negative writes
	// none. Default 10.
	BloomBitsPerKey int
	// BlockCacheBytes sizes the block cache shared by every table.
	// Default 8 MiB.
	BlockCacheBytes int64
	// Compression is the data block compression: "snappy" (the default;
	// a block is stored compressed only when that pays) or "none".
	Compression string
	// Compaction is the compaction policy: "leveled" (levels growing by
	// LevelMultiplier) or "tiered" (size-tiered: sorted runs of similar
	// size in L0 merged into one; see package compaction's Tiered). The
	// directory records it: empty keeps the policy it was last opened
	// with, leveled for a new directory.
	Compaction string
}

// LSM compression and compaction policy names.
const (
	CompressionSnappy = "snappy"
	CompressionNone   = "none"
	CompactionLeveled = "leveled"
	CompactionTiered  = "tiered"
)

// EnsureDefaults returns o with every zero field set to its default. A nil o
// yields a new Options. The receiver is modified in place and returned.
func (o *Options) EnsureDefaults() *Options {
	if o == nil {
		o = &Options{}
	}
	if o.FS == nil {
		o.FS = vfs.Default
	}
	if o.Logger == nil {
		l := logrus.New()
		l.SetOutput(os.Stderr)
		l.SetLevel(logrus.WarnLevel)
		o.Logger = logrus.NewEntry(l)
	}
	if o.MaxValueSize == 0 {
		o.MaxValueSize = DefaultMaxValueSize
	}
	if o.Bitcask.Index == "" {
		o.Bitcask.Index = IndexHash
	}
	if o.Bitcask.MaxSegmentBytes == 0 {
		o.Bitcask.MaxSegmentBytes = DefaultMaxSegmentBytes
	}
	if o.ReadMode == "" {
		o.ReadMode = ReadModeMmap
	}
	if o.LSM.Compression == "" {
		o.LSM.Compression = CompressionSnappy
	}
	// NB: LSM.Compaction stays empty: the engine then keeps the policy
	// its directory records.
	return o
}

// Clone returns a shallow copy of o (nil gives a zero Options).
func (o *Options) Clone() *Options {
	if o == nil {
		return &Options{}
	}
	c := *o
	return &c
}

// Validate reports the first option with an impossible value, naming it.
func (o *Options) Validate() error {
	if o.MaxValueSize < 0 {
		return fmt.Errorf("kvs: option MaxValueSize: %d is negative", o.MaxValueSize)
	}
	if o.MaxValueSize > 1<<30 {
		return fmt.Errorf("kvs: option MaxValueSize: %d exceeds 1 GiB", o.MaxValueSize)
	}
	switch o.Bitcask.Index {
	case "", IndexHash, IndexBTree:
	default:
		return fmt.Errorf("kvs: option Bitcask.Index: %q is not %q or %q", o.Bitcask.Index, IndexHash, IndexBTree)
	}
	switch o.ReadMode {
	case "", ReadModeMmap, ReadModePread:
	default:
		return fmt.Errorf("kvs: option ReadMode: %q is not %q or %q", o.ReadMode, ReadModeMmap, ReadModePread)
	}
	if o.Bitcask.MaxSegmentBytes < 0 {
		return fmt.Errorf("kvs: option Bitcask.MaxSegmentBytes: %d is negative", o.Bitcask.MaxSegmentBytes)
	}
	return o.LSM.validate()
}

// maxLSMBytes bounds MemtableBytes and BlockSize: a memtable's whole arena
// is allocated when it is created, and a block is read into memory whole,
// so larger values are mistakes.
const maxLSMBytes = 1 << 30

// validate reports the first LSM option with an impossible value.
func (l *LSMOptions) validate() error {
	bad := func(name, format string, args ...any) error {
		return fmt.Errorf("kvs: option LSM.%s: %s", name, fmt.Sprintf(format, args...))
	}
	ints := []struct {
		name string
		v    int64
	}{
		{"MemtableBytes", int64(l.MemtableBytes)},
		{"L0CompactionTrigger", int64(l.L0CompactionTrigger)},
		{"L0SlowdownTrigger", int64(l.L0SlowdownTrigger)},
		{"L0StopTrigger", int64(l.L0StopTrigger)},
		{"BaseLevelBytes", l.BaseLevelBytes},
		{"LevelMultiplier", int64(l.LevelMultiplier)},
		{"TargetFileSize", l.TargetFileSize},
		{"BlockSize", int64(l.BlockSize)},
		{"BlockCacheBytes", l.BlockCacheBytes},
	}
	for _, f := range ints {
		if f.v < 0 {
			return bad(f.name, "%d is negative", f.v)
		}
	}
	switch {
	case l.MemtableBytes > maxLSMBytes:
		return bad("MemtableBytes", "%d exceeds 1 GiB", l.MemtableBytes)
	case l.BlockSize > maxLSMBytes:
		return bad("BlockSize", "%d exceeds 1 GiB", l.BlockSize)
	case l.LevelMultiplier == 1:
		return bad("LevelMultiplier", "1 would make every level the same size; use 2 or more")
	case l.L0SlowdownTrigger != 0 && l.L0StopTrigger != 0 && l.L0SlowdownTrigger > l.L0StopTrigger:
		return bad("L0SlowdownTrigger", "%d exceeds L0StopTrigger %d", l.L0SlowdownTrigger, l.L0StopTrigger)
	case l.L0CompactionTrigger != 0 && l.L0StopTrigger != 0 && l.L0CompactionTrigger > l.L0StopTrigger:
		// NB: writers stopped by L0 would wait for a compaction that
		// never comes.
		return bad("L0CompactionTrigger", "%d exceeds L0StopTrigger %d", l.L0CompactionTrigger, l.L0StopTrigger)
	}
	switch l.Compression {
	case "", CompressionSnappy, CompressionNone:
	default:
		return bad("Compression", "%q is not %q or %q", l.Compression, CompressionSnappy, CompressionNone)
	}
	switch l.Compaction {
	case "", CompactionLeveled, CompactionTiered:
	default:
		return bad("Compaction", "%q is not %q or %q", l.Compaction, CompactionLeveled, CompactionTiered)
	}
	return nil
}

// DiscardLogger returns a logger that drops everything; tests use it.
func DiscardLogger() *logrus.Entry {
	l := logrus.New()
	l.SetOutput(io.Discard)
	return logrus.NewEntry(l)
}

// CheckKey returns ErrEmptyKey or ErrKeyTooLarge (wrapped with the size)
// for a key no engine accepts.
func CheckKey(key []byte) error {
	if len(key) == 0 {
		return ErrEmptyKey
	}
	if len(key) > MaxKeySize {
		return fmt.Errorf("%w: %d bytes, the limit is %d", ErrKeyTooLarge, len(key), MaxKeySize)
	}
	return nil
}

// CheckValue returns ErrValueTooLarge (wrapped with the size) when value is
// longer than max.
func CheckValue(value []byte, max int) error {
	if len(value) > max {
		return fmt.Errorf("%w: %d bytes, the limit is %d", ErrValueTooLarge, len(value), max)
	}
	return nil
}
