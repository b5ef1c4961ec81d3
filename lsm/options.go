package lsm

import (
	"fmt"

	"github.com/kvs-lab/kvs"
	"github.com/kvs-lab/kvs/compaction"
	"github.com/kvs-lab/kvs/sstable"
)

// Options are the LSM engine's own knobs. The zero value (and a nil
// *Options) means defaults.
//
// An engine opened by name (kvs.Open) is configured by kvs.Options.LSM,
// which OptionsFrom maps onto these; the few knobs only Options has
// (MaxImmutableMemtables, DisableAutomaticCompactions) are for tests and
// tools that call OpenWith.
type Options struct {
	// MemtableBytes is the arena size of each memtable: when the mutable
	// memtable has no room for a batch, it becomes immutable, is flushed
	// to an L0 table, and a new one (with a new WAL) takes the writes.
	// Default 8 MiB: four flushes (the L0 compaction trigger) then hold
	// about as much as L1's default 32 MiB target, so an L0→L1 compaction
	// rewrites about as many bytes of L1 as it brings from L0
	// (docs/05-comparing-engines.md measures the alternatives).
	MemtableBytes int
	// MaxImmutableMemtables is how many full memtables may wait for their
	// flush before writers stop. Default 2.
	MaxImmutableMemtables int
	// L0SlowdownTrigger is the L0 file count at which each write is
	// delayed by a millisecond, giving compaction time to catch up.
	// Default 8.
	L0SlowdownTrigger int
	// L0StopTrigger is the L0 file count at which writers stop until
	// compaction brings it down. Default 12.
	L0StopTrigger int
	// BlockCacheBytes sizes the block cache shared by every table.
	// Default 8 MiB.
	BlockCacheBytes int64
	// Table configures the sstable writer (block size, compression,
	// bloom filter bits per key).
	Table sstable.WriterOptions
	// Compaction tunes the leveled picker and the output file size.
	Compaction compaction.Options
	// Policy is the compaction policy, kvs.CompactionLeveled or
	// kvs.CompactionTiered. Empty keeps the policy the directory was last
	// opened with (recorded in its MANIFEST), leveled for a new one.
	// Tiered merges sorted runs in L0 only (compaction.Tiered): a merge
	// writes one table that replaces its input runs, and what Compact
	// pushes to the bottom level stays there. Its merges start at
	// Compaction.L0CompactionTrigger runs.
	Policy string
	// DisableAutomaticCompactions stops the background goroutine from
	// picking compactions (flushes still happen); Compact still works.
	// Tests use it to build a chosen shape.
	DisableAutomaticCompactions bool
}

// Defaults.
const (
	DefaultMemtableBytes         = 8 << 20
	DefaultMaxImmutableMemtables = 2
	DefaultL0SlowdownTrigger     = 8
	DefaultL0StopTrigger         = 12
	DefaultBlockCacheBytes       = 8 << 20
)

// EnsureDefaults returns o with every zero field set to its default; a nil
// o yields a new Options. The receiver is modified in place.
func (o *Options) EnsureDefaults() *Options {
	if o == nil {
		o = &Options{}
	}
	if o.MemtableBytes == 0 {
		o.MemtableBytes = DefaultMemtableBytes
	}
	if o.MaxImmutableMemtables == 0 {
		o.MaxImmutableMemtables = DefaultMaxImmutableMemtables
	}
	if o.L0SlowdownTrigger == 0 {
		o.L0SlowdownTrigger = DefaultL0SlowdownTrigger
	}
	if o.L0StopTrigger == 0 {
		o.L0StopTrigger = DefaultL0StopTrigger
	}
	if o.BlockCacheBytes == 0 {
		o.BlockCacheBytes = DefaultBlockCacheBytes
	}
	o.Table.EnsureDefaults()
	o.Compaction.EnsureDefaults()
	return o
}

// Validate reports the first option with an impossible value.
func (o *Options) Validate() error {
	switch {
	case o.MemtableBytes < 0:
		return fmt.Errorf("kvs/lsm: option MemtableBytes: %d is negative", o.MemtableBytes)
	case o.MaxImmutableMemtables < 0:
		return fmt.Errorf("kvs/lsm: option MaxImmutableMemtables: %d is negative", o.MaxImmutableMemtables)
	case o.L0SlowdownTrigger < 0 || o.L0StopTrigger < 0:
		return fmt.Errorf("kvs/lsm: options L0SlowdownTrigger and L0StopTrigger must not be negative")
	case o.L0StopTrigger != 0 && o.L0SlowdownTrigger > o.L0StopTrigger:
		return fmt.Errorf("kvs/lsm: option L0SlowdownTrigger %d exceeds L0StopTrigger %d", o.L0SlowdownTrigger, o.L0StopTrigger)
	case o.BlockCacheBytes < 0:
		return fmt.Errorf("kvs/lsm: option BlockCacheBytes: %d is negative", o.BlockCacheBytes)
	case o.Policy != "" && o.Policy != kvs.CompactionLeveled && o.Policy != kvs.CompactionTiered:
		return fmt.Errorf("kvs/lsm: option Policy: %q is not %q or %q", o.Policy, kvs.CompactionLeveled, kvs.CompactionTiered)
	}
	return nil
}
