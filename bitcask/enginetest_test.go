package bitcask_test

import (
	"testing"

	"github.com/kvs-lab/kvs"
	_ "github.com/kvs-lab/kvs/bitcask"
	"github.com/kvs-lab/kvs/internal/enginetest"
)

// conformanceConfig runs bitcask with the given keydir. The crash, I/O
// error and kill tests use 4 KiB segments so that rotation, merges and
// hint files happen every few writes; the other tests use 64 KiB segments,
// still smaller than the 1 MiB values they write.
func conformanceConfig(index string) enginetest.Config {
	return enginetest.Config{
		Engine: "bitcask",
		Options: func() *kvs.Options {
			return &kvs.Options{Bitcask: kvs.BitcaskOptions{Index: index, MaxSegmentBytes: 64 << 10}}
		},
		CrashOptions: func() *kvs.Options {
			return &kvs.Options{Bitcask: kvs.BitcaskOptions{Index: index, MaxSegmentBytes: 4 << 10}}
		},
	}
}

// TestEngineConformance runs the engine conformance suite with each keydir.
func TestEngineConformance(t *testing.T) {
	for _, index := range []string{kvs.IndexHash, kvs.IndexBTree} {
		t.Run("index="+index, func(t *testing.T) {
			t.Parallel()
			enginetest.Run(t, conformanceConfig(index))
		})
	}
}

// TestSyncedWritesSurviveSIGKILL kills a writer process and checks that
// every write it acknowledged with Sync is there after reopening.
func TestSyncedWritesSurviveSIGKILL(t *testing.T) {
	enginetest.RunKillTest(t, conformanceConfig(kvs.IndexBTree))
}
