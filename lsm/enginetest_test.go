package lsm

import (
	"testing"

	"github.com/kvs-lab/kvs/compaction"
	"github.com/kvs-lab/kvs/internal/enginetest"
	"github.com/kvs-lab/kvs/sstable"
)

// smallOptions makes the engine change its files every few writes: 8 KiB
// memtables, 1 KiB blocks, 16 KiB tables and a 64 KiB L1, so that crashes
// and injected errors land in rotations, flushes and compactions.
func smallOptions() *Options {
	return &Options{
		MemtableBytes: 8 << 10,
		Table:         sstable.WriterOptions{BlockSize: 1 << 10},
		Compaction: compaction.Options{
			L0CompactionTrigger: 2,
			BaseLevelBytes:      64 << 10,
			TargetFileSize:      16 << 10,
		},
	}
}

// TestEngineConformance runs the engine conformance suite with the default
// options and with small ones. NB: the two run one after the other, since
// an engine opened by name takes its LSM options from namedOptions.
func TestEngineConformance(t *testing.T) {
	defer func(old func() *Options) { namedOptions = old }(namedOptions)
	for _, c := range []struct {
		name string
		opts func() *Options
	}{
		{"default", func() *Options { return nil }},
		{"small", smallOptions},
	} {
		namedOptions = c.opts
		t.Run("options="+c.name, func(t *testing.T) {
			enginetest.Run(t, enginetest.Config{Engine: engineName})
		})
	}
}

// TestSyncedWritesSurviveSIGKILL kills a writer process (sometimes in the
// middle of a Compact) and checks that every write it acknowledged with
// Sync is there after reopening. The child is this test binary: it opens
// the engine with the small options, so that flushes and compactions run
// while it is killed.
func TestSyncedWritesSurviveSIGKILL(t *testing.T) {
	defer func(old func() *Options) { namedOptions = old }(namedOptions)
	namedOptions = smallOptions
	enginetest.RunKillTest(t, enginetest.Config{Engine: engineName})
}
