package lsm

import (
	"github.com/kvs-lab/kvs"
	"github.com/kvs-lab/kvs/compaction"
	"github.com/kvs-lab/kvs/sstable"
)

func init() {
	kvs.Register(engineName, func(dir string, opts *kvs.Options) (kvs.Engine, error) {
		db, err := Open(dir, opts)
		if err != nil {
			return nil, err // NB: not db, which would be a non-nil interface holding a nil *DB
		}
		return db, nil
	})
}

// OptionsFrom maps the LSM section of the root options onto the engine's
// own Options; zero fields stay zero and so mean the defaults. It does not
// validate: kvs.Options.Validate does, naming the root option.
func OptionsFrom(o kvs.LSMOptions) *Options {
	lo := &Options{
		MemtableBytes:     o.MemtableBytes,
		L0SlowdownTrigger: o.L0SlowdownTrigger,
		L0StopTrigger:     o.L0StopTrigger,
		BlockCacheBytes:   o.BlockCacheBytes,
		Table: sstable.WriterOptions{
			BlockSize:        o.BlockSize,
			FilterBitsPerKey: o.BloomBitsPerKey,
		},
		Compaction: compaction.Options{
			L0CompactionTrigger: o.L0CompactionTrigger,
			BaseLevelBytes:      o.BaseLevelBytes,
			LevelMultiplier:     o.LevelMultiplier,
			TargetFileSize:      o.TargetFileSize,
		},
		Policy: o.Compaction,
	}
	switch o.Compression {
	case kvs.CompressionNone:
		lo.Table.Compression = sstable.NoCompression
	case kvs.CompressionSnappy:
		lo.Table.Compression = sstable.SnappyCompression
	}
	return lo
}
