package bench

import (
	"errors"
	"fmt"
	"slices"
	"strings"
	"sync"

	"github.com/kvs-lab/kvs"
	_ "github.com/kvs-lab/kvs/bitcask" // registers "bitcask"
	_ "github.com/kvs-lab/kvs/lsm"     // registers "lsm"
)

// DB is what a workload drives. The kvs engines reach it through an
// adapter over kvs.Engine (OpenKVS); engines kvs is compared with reach it
// through the adapters of the bench/peers module, so that the main module
// never imports them. Implementations must be safe for concurrent use.
type DB interface {
	// Put stores value under key. Whether it is synced is fixed when the
	// DB is opened (OpenOptions.Sync).
	Put(key, value []byte) error
	// Get returns key's value, or an error matching kvs.ErrNotFound.
	Get(key []byte) ([]byte, error)
	// Delete removes key; deleting a missing key is not an error.
	Delete(key []byte) error
	// Scan calls fn with up to n entries in key order, starting at the
	// first key >= start, and stops early when fn returns false. The
	// slices are valid only during the call.
	Scan(start []byte, n int, fn func(key, value []byte) bool) error
	// Close flushes and closes the engine.
	Close() error
}

// Statser is a DB that reports engine counters (the kvs engines do). The
// runner takes amplification from them where it can, and from the
// process's own I/O counters for every DB.
type Statser interface {
	Stats() kvs.Stats
}

// OpenOptions configure a DB for a run.
type OpenOptions struct {
	// Sync makes every write durable before it returns (fsync, or the
	// engine's equivalent). Sync and no-sync results are never mixed in
	// one table.
	Sync bool
	// KVS holds the kvs engines' options (the CLI's engine flags); peers
	// ignore it.
	KVS *kvs.Options
}

// OpenFunc opens (creating if needed) a DB in dir.
type OpenFunc func(dir string, o OpenOptions) (DB, error)

var (
	registryMu sync.Mutex
	registry   = map[string]OpenFunc{}
)

// Register makes a DB available to the runner under name ("pebble",
// "bitcask/btree"). The bench/peers module registers its engines from an
// init function; registering a name twice panics.
func Register(name string, open OpenFunc) {
	registryMu.Lock()
	defer registryMu.Unlock()
	if _, dup := registry[name]; dup {
		panic(fmt.Sprintf("bench: DB %q registered twice", name))
	}
	registry[name] = open
}

// Registered returns the registered DB names, sorted.
func Registered() []string {
	registryMu.Lock()
	defer registryMu.Unlock()
	names := make([]string, 0, len(registry))
	for name := range registry {
		names = append(names, name)
	}
	slices.Sort(names)
	return names
}

// Open opens the registered DB name in dir.
func Open(name, dir string, o OpenOptions) (DB, error) {
	registryMu.Lock()
	open := registry[name]
	registryMu.Unlock()
	if open == nil {
		return nil, fmt.Errorf("bench: unknown DB %q (registered: %s)", name, strings.Join(Registered(), ", "))
	}
	return open(dir, o)
}

func init() {
	// The kvs engines, with their variants, under the labels
	// ParseEngineSpec understands.
	for _, label := range []string{"bitcask", "bitcask/btree", "lsm", "lsm/tiered"} {
		Register(label, func(dir string, o OpenOptions) (DB, error) {
			spec, err := ParseEngineSpec(label)
			if err != nil {
				return nil, err
			}
			return OpenKVS(spec, dir, o)
		})
	}
}

// kvsDB adapts a kvs.Engine to DB.
type kvsDB struct {
	e  kvs.Engine
	wo kvs.WriteOptions
}

// OpenKVS opens the kvs engine spec names in dir as a DB. o.KVS, when set,
// supplies the engine knobs spec leaves at their defaults.
func OpenKVS(spec EngineSpec, dir string, o OpenOptions) (DB, error) {
	opts := spec.Options.Clone()
	if o.KVS != nil {
		opts = mergeOptions(o.KVS, spec.Options)
	}
	if opts.Logger == nil {
		opts.Logger = kvs.DiscardLogger()
	}
	e, err := kvs.Open(spec.Engine, dir, opts)
	if err != nil {
		return nil, err
	}
	return &kvsDB{e: e, wo: kvs.WriteOptions{Sync: o.Sync}}, nil
}

// mergeOptions returns base with the variant's choices (index, policy)
// laid over it.
func mergeOptions(base, variant *kvs.Options) *kvs.Options {
	o := base.Clone()
	if variant.Bitcask.Index != "" {
		o.Bitcask.Index = variant.Bitcask.Index
	}
	if variant.LSM.Compaction != "" {
		o.LSM.Compaction = variant.LSM.Compaction
	}
	return o
}

func (d *kvsDB) Put(key, value []byte) error    { return d.e.Put(key, value, d.wo) }
func (d *kvsDB) Get(key []byte) ([]byte, error) { return d.e.Get(key) }
func (d *kvsDB) Delete(key []byte) error        { return d.e.Delete(key, d.wo) }
func (d *kvsDB) Close() error                   { return d.e.Close() }
func (d *kvsDB) Stats() kvs.Stats               { return d.e.Stats() }

func (d *kvsDB) Scan(start []byte, n int, fn func(key, value []byte) bool) error {
	it, err := d.e.NewIter(&kvs.IterOptions{LowerBound: start})
	if err != nil {
		return err
	}
	for ok := it.First(); ok && n > 0; ok = it.Next() {
		n--
		if !fn(it.Key(), it.Value()) {
			break
		}
	}
	return errors.Join(it.Error(), it.Close())
}
