package peers

import (
	"bytes"
	"errors"
	"os"
	"path/filepath"

	"github.com/cockroachdb/pebble/v2"
	"github.com/cockroachdb/pebble/v2/bloom"
	"github.com/dgraph-io/badger/v4"
	"github.com/kvs-lab/kvs"
	"github.com/kvs-lab/kvs/bench"
	"github.com/rosedblabs/rosedb/v2"
	"github.com/syndtr/goleveldb/leveldb"
	leveldberrors "github.com/syndtr/goleveldb/leveldb/errors"
	"github.com/syndtr/goleveldb/leveldb/filter"
	"github.com/syndtr/goleveldb/leveldb/opt"
	"github.com/syndtr/goleveldb/leveldb/util"
	bolt "go.etcd.io/bbolt"
)

// blockCacheBytes is the block cache given to the LSM peers that have one
// of a size we choose: 8 MiB, the kvs lsm default (lsm.DefaultBlockCacheBytes).
const blockCacheBytes = 8 << 20

// bloomBitsPerKey is the bloom filter given to the LSM peers that write
// none by default: kvs lsm's 10 bits per key.
const bloomBitsPerKey = 10

func init() {
	bench.Register("pebble", openPebble)
	bench.Register("goleveldb", openGoleveldb)
	bench.Register("badger", openBadger)
	bench.Register("bbolt", openBbolt)
	bench.Register("rosedb", openRosedb)
}

// None of the adapters implements bench.Statser: no peer counts what
// kvs.Stats means (user key+value bytes in, every byte out to files, files
// probed per Get) in a way that could sit in the same column as the kvs
// engines' figures, so the runner's /proc/self/io numbers are used for all.
// NB: badger writes its WAL and its tables through mmap, which wchar does not
// see, so badger's write-amp column is an undercount.

// pebbleDB adapts CockroachDB's Pebble (v2).
//
// Durability: with o.Sync false every write uses pebble.NoSync: the batch is
// copied into the WAL's current 32 KiB block in memory, and the WAL's flush
// goroutine writes a block to the file only once it is full (or a synced
// write, a WAL rotation or Close comes), so a process crash can lose up to a
// block of recent writes and a machine crash anything not yet synced. With
// o.Sync true every write uses pebble.Sync: it returns after the WAL was
// written and fsynced (concurrent writers share one fsync).
//
// Options that differ from what pebble.Open gives with a zero Options:
// bloom filters of 10 bits per key on every level, as kvs lsm writes
// (pebble writes none by default, which would make its Gets of absent keys
// read a block per level; every LSM user turns them on). CacheSize is
// 8 MiB, the kvs lsm default block cache, which is also pebble's own
// default. The logger discards informational output (Fatalf still goes to
// pebble's default logger). Left at pebble's defaults and worth knowing:
// 4 MiB memtables and the oldest supported format major version (pebble
// v2 does not pick the newest one, with columnar blocks, unless asked).
type pebbleDB struct {
	db *pebble.DB
	wo *pebble.WriteOptions
}

func openPebble(dir string, o bench.OpenOptions) (bench.DB, error) {
	po := &pebble.Options{CacheSize: blockCacheBytes, Logger: quietPebbleLogger{}}
	for i := range po.Levels {
		po.Levels[i].FilterPolicy = bloom.FilterPolicy(bloomBitsPerKey)
	}
	db, err := pebble.Open(dir, po)
	if err != nil {
		return nil, err
	}
	wo := pebble.NoSync
	if o.Sync {
		wo = pebble.Sync
	}
	return &pebbleDB{db: db, wo: wo}, nil
}

func (d *pebbleDB) Put(key, value []byte) error { return d.db.Set(key, value, d.wo) }
func (d *pebbleDB) Delete(key []byte) error     { return d.db.Delete(key, d.wo) }
func (d *pebbleDB) Close() error                { return d.db.Close() }

func (d *pebbleDB) Get(key []byte) ([]byte, error) {
	v, closer, err := d.db.Get(key)
	if errors.Is(err, pebble.ErrNotFound) {
		return nil, kvs.ErrNotFound
	}
	if err != nil {
		return nil, err
	}
	// NB: v points into pebble's memory until closer.Close.
	v = bytes.Clone(v)
	if v == nil {
		v = []byte{}
	}
	return v, closer.Close()
}

func (d *pebbleDB) Scan(start []byte, n int, fn func(key, value []byte) bool) error {
	it, err := d.db.NewIter(&pebble.IterOptions{LowerBound: start})
	if err != nil {
		return err
	}
	for ok := it.First(); ok && n > 0; ok = it.Next() {
		n--
		v, err := it.ValueAndErr()
		if err != nil {
			return errors.Join(err, it.Close())
		}
		if !fn(it.Key(), v) {
			break
		}
	}
	return errors.Join(it.Error(), it.Close())
}

// quietPebbleLogger drops pebble's informational and error messages, as the
// kvs engines' loggers do in benchmarks; a fatal error still stops the
// process.
type quietPebbleLogger struct{}

func (quietPebbleLogger) Infof(string, ...any)  {}
func (quietPebbleLogger) Errorf(string, ...any) {}
func (quietPebbleLogger) Fatalf(format string, args ...any) {
	pebble.DefaultLogger.Fatalf(format, args...)
}

// goleveldbDB adapts syndtr/goleveldb.
//
// Durability: a write appends to the journal and flushes it to the file
// before returning, so with o.Sync false (WriteOptions{Sync: false}) it
// survives a process crash but not a machine crash. With o.Sync true
// (WriteOptions{Sync: true}) the journal is also fsynced before the write
// returns; concurrent writers are merged into one journal write and sync.
//
// Options: goleveldb's defaults (8 MiB block cache, the same as kvs lsm's,
// 4 MiB write buffer, snappy) but for a bloom filter of 10 bits per key,
// as kvs lsm and pebble here (goleveldb writes none by default).
type goleveldbDB struct {
	db *leveldb.DB
	wo *opt.WriteOptions
}

func openGoleveldb(dir string, o bench.OpenOptions) (bench.DB, error) {
	db, err := leveldb.OpenFile(dir, &opt.Options{Filter: filter.NewBloomFilter(bloomBitsPerKey)})
	if err != nil {
		return nil, err
	}
	return &goleveldbDB{db: db, wo: &opt.WriteOptions{Sync: o.Sync}}, nil
}

func (d *goleveldbDB) Put(key, value []byte) error { return d.db.Put(key, value, d.wo) }
func (d *goleveldbDB) Delete(key []byte) error     { return d.db.Delete(key, d.wo) }
func (d *goleveldbDB) Close() error                { return d.db.Close() }

func (d *goleveldbDB) Get(key []byte) ([]byte, error) {
	// goleveldb's Get already returns a slice the caller owns.
	v, err := d.db.Get(key, nil)
	if errors.Is(err, leveldberrors.ErrNotFound) {
		return nil, kvs.ErrNotFound
	}
	return v, err
}

func (d *goleveldbDB) Scan(start []byte, n int, fn func(key, value []byte) bool) error {
	it := d.db.NewIterator(&util.Range{Start: start}, nil)
	for ok := it.First(); ok && n > 0; ok = it.Next() {
		n--
		if !fn(it.Key(), it.Value()) {
			break
		}
	}
	it.Release()
	return it.Error()
}

// badgerDB adapts dgraph-io/badger v4. Each Put and Delete is its own
// read-write transaction (DB.Update), which is how a user writes one key;
// badger batches concurrent commits in its write loop.
//
// Durability: with o.Sync false (Options.SyncWrites false, the default) a
// commit writes to the memtable's WAL, a file badger maps into memory, and
// returns: the data is in the page cache, so it survives a process crash
// but not a machine crash. With o.Sync true (SyncWrites true) the WAL is
// msynced after each commit's entries go into the memtable and before the
// commit returns (one msync per commit, even when the write loop takes
// several commits in one round).
//
// Options that differ from badger.DefaultOptions: the logger discards
// everything (badger logs at INFO by default), and BlockCacheSize is 8 MiB,
// the kvs lsm default and what pebble and goleveldb get, instead of 256 MiB,
// which would hold the whole data set of a million-key run. Left at badger's
// defaults and worth knowing: 64 MiB memtables (five of them may be in
// memory), 4 compactors, bloom filters (1% false positives), snappy, and a
// 1 MiB value threshold, so the benchmark's values live in the LSM tree, not
// in the value log.
type badgerDB struct {
	db *badger.DB
}

func openBadger(dir string, o bench.OpenOptions) (bench.DB, error) {
	opts := badger.DefaultOptions(dir).
		WithLogger(quietBadgerLogger{}).
		WithBlockCacheSize(blockCacheBytes).
		WithSyncWrites(o.Sync)
	db, err := badger.Open(opts)
	if err != nil {
		return nil, err
	}
	return &badgerDB{db: db}, nil
}

func (d *badgerDB) Close() error { return d.db.Close() }

func (d *badgerDB) Put(key, value []byte) error {
	return d.db.Update(func(txn *badger.Txn) error { return txn.Set(key, value) })
}

func (d *badgerDB) Delete(key []byte) error {
	return d.db.Update(func(txn *badger.Txn) error { return txn.Delete(key) })
}

func (d *badgerDB) Get(key []byte) ([]byte, error) {
	var v []byte
	err := d.db.View(func(txn *badger.Txn) error {
		item, err := txn.Get(key)
		if err != nil {
			return err
		}
		// NB: the item's value is valid only inside the transaction.
		v, err = item.ValueCopy(nil)
		return err
	})
	if errors.Is(err, badger.ErrKeyNotFound) {
		return nil, kvs.ErrNotFound
	}
	return v, err
}

func (d *badgerDB) Scan(start []byte, n int, fn func(key, value []byte) bool) error {
	return d.db.View(func(txn *badger.Txn) error {
		// The values are in the LSM tree (see the type's comment), so
		// prefetching them would only copy them; read them in place.
		it := txn.NewIterator(badger.IteratorOptions{PrefetchValues: false})
		defer it.Close()
		for it.Seek(start); it.Valid() && n > 0; it.Next() {
			n--
			item := it.Item()
			more := true
			if err := item.Value(func(v []byte) error {
				more = fn(item.Key(), v)
				return nil
			}); err != nil {
				return err
			}
			if !more {
				break
			}
		}
		return nil
	})
}

// quietBadgerLogger drops badger's log messages.
type quietBadgerLogger struct{}

func (quietBadgerLogger) Errorf(string, ...any)   {}
func (quietBadgerLogger) Warningf(string, ...any) {}
func (quietBadgerLogger) Infof(string, ...any)    {}
func (quietBadgerLogger) Debugf(string, ...any)   {}

// bboltDB adapts etcd's bbolt: one bucket, and each Put and Delete in its
// own Update transaction, which is how a user writes one key to bbolt.
// bbolt runs one writing transaction at a time, so concurrent writers
// serialize, and nothing batches their commits (DB.Batch would, but a user
// writing one key does not reach for it).
//
// Durability: with o.Sync true (DB.NoSync false, the default) every commit
// writes the changed pages and fdatasyncs the file, then writes the meta
// page and fdatasyncs again, before Update returns. With o.Sync false
// (DB.NoSync true) the same pages are written with pwrite but never
// synced: a commit survives a process crash, and a machine crash can lose
// recent commits (bbolt's docs allow this mode for bulk loads where the
// file can be thrown away).
//
// Options: bbolt's defaults. Reads go through its read-only mmap of the file,
// so read-syscalls/get is 0 for bbolt.
type bboltDB struct {
	db *bolt.DB
}

var bboltBucket = []byte("kv")

func openBbolt(dir string, o bench.OpenOptions) (bench.DB, error) {
	if err := os.MkdirAll(dir, 0o755); err != nil {
		return nil, err
	}
	db, err := bolt.Open(filepath.Join(dir, "bbolt.db"), 0o644, nil)
	if err != nil {
		return nil, err
	}
	db.NoSync = !o.Sync
	if err := db.Update(func(tx *bolt.Tx) error {
		_, err := tx.CreateBucketIfNotExists(bboltBucket)
		return err
	}); err != nil {
		db.Close()
		return nil, err
	}
	return &bboltDB{db: db}, nil
}

func (d *bboltDB) Close() error { return d.db.Close() }

func (d *bboltDB) Put(key, value []byte) error {
	return d.db.Update(func(tx *bolt.Tx) error { return tx.Bucket(bboltBucket).Put(key, value) })
}

func (d *bboltDB) Delete(key []byte) error {
	return d.db.Update(func(tx *bolt.Tx) error { return tx.Bucket(bboltBucket).Delete(key) })
}

func (d *bboltDB) Get(key []byte) ([]byte, error) {
	var v []byte
	err := d.db.View(func(tx *bolt.Tx) error {
		// NB: Get's slice points into the mmap and is valid only for the
		// life of the transaction.
		got := tx.Bucket(bboltBucket).Get(key)
		if got == nil {
			return kvs.ErrNotFound
		}
		v = append(make([]byte, 0, len(got)), got...)
		return nil
	})
	return v, err
}

func (d *bboltDB) Scan(start []byte, n int, fn func(key, value []byte) bool) error {
	return d.db.View(func(tx *bolt.Tx) error {
		c := tx.Bucket(bboltBucket).Cursor()
		for k, v := c.Seek(start); k != nil && n > 0; k, v = c.Next() {
			n--
			if !fn(k, v) {
				break
			}
		}
		return nil
	})
}

// rosedbDB adapts rosedblabs/rosedb v2, a Bitcask-style engine: an
// append-only log in segment files and an in-memory B-tree from each key to
// its record's position.
//
// Durability: with o.Sync false (Options.Sync false, the default) a write
// goes to the segment file with write(2) before it returns, so it survives
// a process crash but not a machine crash. With o.Sync true the adapter
// sets Options.Sync and also calls DB.Sync after each write, because in
// rosedb v2.4.0 (with wal v1.3.8) Options.Sync alone does not sync DB.Put
// and DB.Delete: they commit through a batch whose own Sync is false, and
// the batch's write path never looks at the WAL's Sync option. DB.Sync
// fsyncs the active segment; concurrent writers each sync on their own.
//
// Options: rosedb.DefaultOptions (1 GiB segments, no auto merge) with
// DirPath set. Each Get reads the whole 32 KiB WAL block holding the
// record. Scan uses DB.AscendGreaterOrEqual, which holds the DB's lock
// against writers for the length of the scan and stops early, without an
// error, if a record cannot be read.
type rosedbDB struct {
	db   *rosedb.DB
	sync bool
}

func openRosedb(dir string, o bench.OpenOptions) (bench.DB, error) {
	opts := rosedb.DefaultOptions
	opts.DirPath = dir
	opts.Sync = o.Sync
	db, err := rosedb.Open(opts)
	if err != nil {
		return nil, err
	}
	return &rosedbDB{db: db, sync: o.Sync}, nil
}

func (d *rosedbDB) Close() error { return d.db.Close() }

func (d *rosedbDB) Put(key, value []byte) error {
	// NB: rosedb keeps the key slice given to Put in its index, so a caller
	// reusing its key buffer (as the runner does) would corrupt the index.
	if err := d.db.Put(bytes.Clone(key), value); err != nil {
		return err
	}
	return d.syncIfAsked()
}

func (d *rosedbDB) Delete(key []byte) error {
	if err := d.db.Delete(key); err != nil {
		return err
	}
	return d.syncIfAsked()
}

func (d *rosedbDB) syncIfAsked() error {
	if !d.sync {
		return nil
	}
	return d.db.Sync()
}

func (d *rosedbDB) Get(key []byte) ([]byte, error) {
	// rosedb decodes the value from a fresh read of the file, so the slice
	// is already the caller's.
	v, err := d.db.Get(key)
	if errors.Is(err, rosedb.ErrKeyNotFound) {
		return nil, kvs.ErrNotFound
	}
	return v, err
}

func (d *rosedbDB) Scan(start []byte, n int, fn func(key, value []byte) bool) error {
	if n <= 0 {
		return nil
	}
	d.db.AscendGreaterOrEqual(start, func(k, v []byte) (bool, error) {
		n--
		return fn(k, v) && n > 0, nil
	})
	return nil
}
