package bench

import (
	"fmt"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/kvs-lab/kvs"
)

// BenchOptions configure Benchmark.
type BenchOptions struct {
	DBs       []string   // registered DB names
	Workloads []Workload // workloads to run on each
	// Keys is the key space of preloaded workloads; fill workloads write
	// b.N keys. Default 100000.
	Keys               int
	KeySize, ValueSize int // default 16 and 100
	Concurrency        int // default 1
	Sync               bool
	// MaxTime caps each run's timed phase (RunConfig.MaxTime); ns/op is
	// then over the operations that ran. 0: no cap.
	MaxTime time.Duration
	KVS     *kvs.Options
	// OnResult, if set, receives every run's Result. The testing package
	// may run a sub-benchmark more than once (a one-operation probe, then
	// b.N); the last Result for a name is the one it reports.
	OnResult func(*Result)
}

// Benchmark runs every workload on every DB as sub-benchmarks named
// <db>/<workload>, with b.N timed operations each, so that
//
//	go test -run '^$' -bench . -benchtime 1000000x ./bench | benchstat -col /db -
//
// prints engines side by side. The preload and the reopen are not timed:
// ns/op is the timed phase's time per operation (reported over the one
// the testing package measures), and the rest of the Result comes as
// metrics: latency percentiles in ns, write-amp (process bytes written per
// user byte), engine-write-amp, space-amp, mem-B/key, tables/get and
// read-syscalls/get where they apply, stall-%, max-debt-MB (the most
// compaction debt a sample saw) and reopen-ms. The bench/peers
// module calls it with its engines.
func Benchmark(b *testing.B, o BenchOptions) {
	if o.Keys == 0 {
		o.Keys = 100_000
	}
	for _, db := range o.DBs {
		for _, w := range o.Workloads {
			b.Run(fmt.Sprintf("db=%s/workload=%s", strings.ReplaceAll(db, "/", "-"), w.Name), func(b *testing.B) {
				keys := o.Keys
				if !w.Preload || w.Dist == Permuted {
					// NB: a fill writes b.N keys; deleterandom deletes
					// each loaded key at most once.
					keys = max(keys, b.N)
				}
				res, err := Run(RunConfig{DB: db, Workload: w, Keys: keys, Ops: b.N, KeySize: o.KeySize, ValueSize: o.ValueSize,
					Concurrency: o.Concurrency, Sync: o.Sync, KVS: o.KVS, Seed: 1, MaxTime: o.MaxTime, Dir: filepath.Join(b.TempDir(), "db")})
				if err != nil {
					b.Fatal(err)
				}
				ReportMetrics(b, res)
				if o.OnResult != nil {
					o.OnResult(res)
				}
			})
		}
	}
}

// ReportMetrics reports a Result through b.ReportMetric.
func ReportMetrics(b *testing.B, res *Result) {
	b.ReportMetric(float64(res.Elapsed.Nanoseconds())/float64(res.Ops), "ns/op")
	if res.MBPerSec > 0 {
		b.ReportMetric(res.MBPerSec, "MB/s")
	}
	all := res.Latency["all"]
	b.ReportMetric(float64(all.P50), "p50-ns")
	b.ReportMetric(float64(all.P99), "p99-ns")
	b.ReportMetric(float64(all.P999), "p99.9-ns")
	if res.WriteAmp > 0 {
		b.ReportMetric(res.WriteAmp, "write-amp")
	}
	if res.EngineWriteAmp > 0 {
		b.ReportMetric(res.EngineWriteAmp, "engine-write-amp")
	}
	b.ReportMetric(res.SpaceAmp, "space-amp")
	b.ReportMetric(res.MemoryPerKey, "mem-B/key")
	if res.TablesPerGet > 0 {
		b.ReportMetric(res.TablesPerGet, "tables/get")
	}
	if _, ok := res.Latency[OpRead.String()]; ok || res.Latency[OpReadMissing.String()] != nil {
		b.ReportMetric(res.ReadSyscallsPerGet, "read-syscalls/get")
	}
	if res.StallTime > 0 {
		b.ReportMetric(100*res.StallTime.Seconds()/res.Elapsed.Seconds(), "stall-%")
	}
	if res.MaxCompactionDebt > 0 {
		b.ReportMetric(float64(res.MaxCompactionDebt)/1e6, "max-debt-MB")
	}
	b.ReportMetric(float64(res.Reopen.Microseconds())/1000, "reopen-ms")
}
