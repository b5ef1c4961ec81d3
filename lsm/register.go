package lsm

import "github.com/kvs-lab/kvs"

func init() {
	kvs.Register(engineName, func(dir string, opts *kvs.Options) (kvs.Engine, error) {
		db, err := OpenWith(dir, opts, namedOptions())
		if err != nil {
			return nil, err // NB: not db, which would be a non-nil interface holding a nil *DB
		}
		return db, nil
	})
}

// namedOptions returns the LSM options of an engine opened by name
// (kvs.Open). kvs.Options has no LSM section yet, so they are the
// defaults; this package's tests swap in small memtables and tables to
// run the conformance suite through many flushes and compactions.
var namedOptions = func() *Options { return nil }
