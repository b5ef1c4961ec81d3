package bench

import (
	"flag"
	"strings"
	"testing"
	"time"
)

var (
	flagDBs       = flag.String("bench.dbs", "bitcask,lsm", "comma-separated DBs for BenchmarkEngines")
	flagWorkloads = flag.String("bench.workloads", "fillrandom,readrandom,scan,ycsb-a", "comma-separated workloads for BenchmarkEngines, or all")
	flagKeys      = flag.Int("bench.keys", 100_000, "key space of preloaded workloads")
	flagSync      = flag.Bool("bench.sync", false, "sync every write")
	flagConc      = flag.Int("bench.concurrency", 1, "goroutines issuing operations")
	flagMaxTime   = flag.Duration("bench.maxtime", time.Minute, "cap on each run's timed phase (0: none)")
)

// BenchmarkEngines compares the kvs engines on the chosen workloads:
//
//	go test -run '^$' -bench Engines -benchtime 1000000x -bench.keys 1000000 ./bench
func BenchmarkEngines(b *testing.B) {
	ws, err := ParseWorkloads(*flagWorkloads)
	if err != nil {
		b.Fatal(err)
	}
	Benchmark(b, BenchOptions{DBs: strings.Split(*flagDBs, ","), Workloads: ws, Keys: *flagKeys,
		Sync: *flagSync, Concurrency: *flagConc, MaxTime: *flagMaxTime})
}
