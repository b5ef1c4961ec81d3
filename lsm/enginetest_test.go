package lsm

import (
	"testing"

	"github.com/kvs-lab/kvs"
	"github.com/kvs-lab/kvs/internal/enginetest"
)

// smallOptions makes the engine change its files every few writes: 8 KiB
// memtables, 1 KiB blocks, 16 KiB tables and a 64 KiB L1, so that crashes
// and injected errors land in rotations, flushes and compactions.
func smallOptions() *Options { return OptionsFrom(smallLSMOptions()) }

// smallLSMOptions are smallOptions as the root options spell them, for
// engines opened by name.
func smallLSMOptions() kvs.LSMOptions {
	return kvs.LSMOptions{
		MemtableBytes:       8 << 10,
		BlockSize:           1 << 10,
		L0CompactionTrigger: 2,
		BaseLevelBytes:      64 << 10,
		TargetFileSize:      16 << 10,
	}
}

// smallKVSOptions returns root options holding smallLSMOptions.
func smallKVSOptions() *kvs.Options { return &kvs.Options{LSM: smallLSMOptions()} }

// TestEngineConformance runs the engine conformance suite with the default
// options and with small ones.
func TestEngineConformance(t *testing.T) {
	for _, c := range []struct {
		name string
		opts func() *kvs.Options
	}{
		{"default", nil},
		{"small", smallKVSOptions},
		{"small-tiered", func() *kvs.Options {
			o := smallKVSOptions()
			o.LSM.Compaction = kvs.CompactionTiered
			return o
		}},
	} {
		t.Run("options="+c.name, func(t *testing.T) {
			enginetest.Run(t, enginetest.Config{Engine: engineName, Options: c.opts})
		})
	}
}

// TestSyncedWritesSurviveSIGKILL kills a writer process (sometimes in the
// middle of a Compact) and checks that every write it acknowledged with
// Sync is there after reopening. The child is this test binary: it opens
// the engine with the small options, so that flushes and compactions run
// while it is killed.
func TestSyncedWritesSurviveSIGKILL(t *testing.T) {
	enginetest.RunKillTest(t, enginetest.Config{Engine: engineName, CrashOptions: smallKVSOptions})
}
