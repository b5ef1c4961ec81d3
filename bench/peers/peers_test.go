package peers

import (
	"flag"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/kvs-lab/kvs/bench"
)

// peerNames are the DBs this module registers, in the order benchmarks
// list them.
var peerNames = []string{"pebble", "goleveldb", "badger", "bbolt", "rosedb"}

var (
	flagDBs = flag.String("peers.dbs", "bitcask,bitcask/btree,lsm,"+strings.Join(peerNames, ","),
		"comma-separated DBs for BenchmarkPeers (bitcask/btree is the kvs bitcask with an ordered keydir)")
	flagWorkloads = flag.String("peers.workloads", "fillrandom,readrandom,scan,ycsb-a", "comma-separated workloads for BenchmarkPeers, or all")
	flagKeys      = flag.Int("peers.keys", 1_000_000, "key space of preloaded workloads in BenchmarkPeers")
	flagSync      = flag.Bool("peers.sync", false, "sync every write in BenchmarkPeers")
	flagConc      = flag.Int("peers.concurrency", 1, "goroutines issuing operations in BenchmarkPeers")
	flagMaxTime   = flag.Duration("peers.maxtime", time.Minute, "cap on each run's timed phase in BenchmarkPeers (0: none)")
)

// TestPeersAnswerCorrectly runs every workload on every peer over a small
// key space. The runner fails a run on any wrong answer (a missing key, a
// value of the wrong size, a scan out of order, a deleted key back after
// reopen), so this checks the adapters. Sync is exercised on a read and a
// write workload.
func TestPeersAnswerCorrectly(t *testing.T) {
	type variant struct {
		workload bench.Workload
		sync     bool
	}
	var variants []variant
	for _, w := range bench.Workloads {
		variants = append(variants, variant{w, false})
	}
	for _, name := range []string{"readrandom", "ycsb-a"} {
		w, err := bench.FindWorkload(name)
		if err != nil {
			t.Fatal(err)
		}
		variants = append(variants, variant{w, true})
	}
	for _, db := range peerNames {
		t.Run("db="+db, func(t *testing.T) {
			t.Parallel()
			for _, v := range variants {
				name := "workload=" + v.workload.Name
				if v.sync {
					name += "/sync"
				}
				conc := 2
				if v.workload.Dist == bench.Latest {
					// NB: with more than one worker the runner can pick
					// for a read the newest key while another worker's
					// Put of it is still in flight (the insert counter
					// moves before the Put), and count the miss as a
					// wrong answer. One worker checks the adapter without
					// that race.
					conc = 1
				}
				t.Run(name, func(t *testing.T) {
					_, err := bench.Run(bench.RunConfig{DB: db, Workload: v.workload, Keys: 2000, Ops: 1000, Settle: -1,
						Concurrency: conc, Sync: v.sync, Seed: 1, Dir: filepath.Join(t.TempDir(), "db")})
					if err != nil {
						t.Fatal(err)
					}
				})
			}
		})
	}
}

// TestPeersRegistered checks that every peer is reachable by name.
func TestPeersRegistered(t *testing.T) {
	registered := bench.Registered()
	for _, name := range peerNames {
		found := false
		for _, r := range registered {
			found = found || r == name
		}
		if !found {
			t.Errorf("%s is not registered (registered: %s)", name, strings.Join(registered, ", "))
		}
	}
}

// BenchmarkPeers runs the kvs engines and the peers side by side:
//
//	go test -run '^$' -bench Peers -benchtime 1000000x
//
// NB: "bitcask" is the kvs bitcask with its default hash keydir, which
// gathers and sorts every key at or after the start of each scan, so the
// scan workload on it would take hours at a million keys: -peers.maxtime
// (default 1m) cuts each timed phase short and ns/op is then over the
// operations that ran. -peers.dbs bitcask/btree,lsm,pebble,goleveldb,badger,bbolt,rosedb
// compares scans on the ordered keydir instead.
//
// Sub-benchmarks are named db=<name>/workload=<name>; see the package doc
// for the benchstat command that turns them into a table per workload.
func BenchmarkPeers(b *testing.B) {
	ws, err := bench.ParseWorkloads(*flagWorkloads)
	if err != nil {
		b.Fatal(err)
	}
	bench.Benchmark(b, bench.BenchOptions{DBs: strings.Split(*flagDBs, ","), Workloads: ws, Keys: *flagKeys,
		Sync: *flagSync, Concurrency: *flagConc, MaxTime: *flagMaxTime})
}
