// Package peers puts other Go storage engines behind bench.DB, so that the
// kvs workload runner can drive them exactly as it drives the kvs engines.
// It is a module of its own (github.com/kvs-lab/kvs/bench/peers, with a
// replace of github.com/kvs-lab/kvs by ../..) so that the main module never
// depends on them.
//
// Importing the package registers, under these names:
//
//	pebble     github.com/cockroachdb/pebble/v2   LSM tree (CockroachDB)
//	goleveldb  github.com/syndtr/goleveldb        LSM tree (LevelDB in Go)
//	badger     github.com/dgraph-io/badger/v4     LSM tree with a value log
//	bbolt      go.etcd.io/bbolt                   copy-on-write B+tree in one mmapped file
//	rosedb     github.com/rosedblabs/rosedb/v2    Bitcask: append-only log, in-memory B-tree index
//
// Each adapter's comment in peers.go says what durability its no-sync and
// sync modes give and which options differ from the engine's defaults.
// The adapters are safe for concurrent use; Get returns a slice the caller
// owns and an error matching kvs.ErrNotFound for a missing key.
//
// To compare the kvs engines (bitcask, lsm) with the peers on the default
// workloads (fillrandom, readrandom, scan, ycsb-a; 16-byte keys, 100-byte
// values), from this directory:
//
//	go test -run '^$' -bench Peers -benchtime 1000000x
//
// Flags: -peers.dbs (default bitcask, bitcask/btree, lsm and the five peers), -peers.keys
// (key space of the preloaded workloads, default 1000000), -peers.workloads
// (comma-separated, or all), -peers.sync, -peers.concurrency and
// -peers.maxtime (cap on each run's timed phase, default 1m; 0 for none)
// and -peers.out DIR, which writes kvs bench's report of the run
// (results.json, results.csv, SVG charts, report.md) into DIR. After the
// benchmark lines the run prints kvs bench's table: one row per DB and
// workload (per -count), with throughput, latency percentiles, write and
// space amplification, memory per key, stall time and reopen time.
//
// Sub-benchmarks are named db=<name>/workload=<name>, so benchstat can
// pivot them too; for one table per metric, a row per workload and a
// column per DB:
//
//	go test -run '^$' -bench Peers -benchtime 1000000x -count 3 | tee peers.txt
//	go run golang.org/x/perf/cmd/benchstat@latest -row /workload -col /db peers.txt
//
// (-table /workload -col /db instead gives a table per workload; `make
// bench-peers` in the repository root runs both steps.) NB: bitcask's
// default hash keydir sorts the keys for every scan, so at a million keys
// the scan workload on "bitcask" ends at -peers.maxtime having done a
// fraction of its operations; bitcask/btree is the same engine with an
// ordered keydir.
// A million-key run writes several GB and takes a long time on two cores;
// -benchtime 100000x -peers.keys 100000 is a quicker look.
//
// go test ./... checks the adapters: every workload on every peer over a
// small key space, where the runner fails any wrong answer.
package peers
