package bench

import (
	"bytes"
	"encoding/csv"
	"encoding/json"
	"errors"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"
)

// fakeResult returns a plausible result of ops operations, half reads and
// half updates.
func fakeResult(db, workload string, sync bool, ops int) *Result {
	lat := func(n int64) *Latency {
		l := &Latency{Count: n, Mean: 1500, P50: 1200, P95: 3000, P99: 9000, P999: 40000, Max: 120000}
		for i, q := range []float64{0.1, 0.5, 0.9, 0.99, 1} {
			l.CDF = append(l.CDF, CDFPoint{Nanos: int64(1000 * (i + 1) * (i + 1)), Fraction: q})
		}
		return l
	}
	r := &Result{DB: db, Workload: workload, Sync: sync, Keys: ops, Ops: ops, KeySize: 16, ValueSize: 100, Concurrency: 1,
		Elapsed: time.Duration(ops) * time.Microsecond, OpsPerSec: 1e6, UserBytesWritten: int64(ops) * 58, WriteAmp: 1.1,
		LiveKeys: int64(ops), LiveBytes: int64(ops) * 116, BytesOnDisk: int64(ops) * 130, SpaceAmp: 1.12, MemoryPerKey: 80,
		Reopen:  3 * time.Millisecond,
		Latency: map[string]*Latency{"read": lat(int64(ops / 2)), "update": lat(int64(ops - ops/2)), "all": lat(int64(ops))}}
	for i := range 5 {
		r.Samples = append(r.Samples, Sample{Seconds: float64(i) / 4, Ops: int64(i * ops / 4), BytesOnDisk: int64(i+1) << 20})
	}
	return r
}

func TestWriteReportRefusesMixedSync(t *testing.T) {
	mixed := []*Result{fakeResult("bitcask", "ycsb-a", false, 100), fakeResult("lsm", "ycsb-a", true, 100)}
	dir := filepath.Join(t.TempDir(), "out")
	if err := WriteReport(dir, ReportMeta{Sync: false}, mixed); !errors.Is(err, ErrMixedSync) {
		t.Fatalf("WriteReport of synced and unsynced results: %v, want ErrMixedSync", err)
	}
	if _, err := os.Stat(dir); err == nil {
		t.Error("WriteReport refused the results but made the directory")
	}
	if err := WriteTable(&bytes.Buffer{}, mixed); !errors.Is(err, ErrMixedSync) {
		t.Fatalf("WriteTable of synced and unsynced results: %v, want ErrMixedSync", err)
	}
	// Results all synced, but a meta that says they were not.
	synced := []*Result{fakeResult("bitcask", "ycsb-a", true, 100)}
	if err := WriteReport(dir, ReportMeta{Sync: false}, synced); !errors.Is(err, ErrMixedSync) {
		t.Fatalf("WriteReport of synced results under an unsynced meta: %v, want ErrMixedSync", err)
	}
	if err := WriteReport(dir, ReportMeta{}, nil); err == nil {
		t.Fatal("WriteReport of no results succeeded")
	}
}

func TestWriteTableIsAligned(t *testing.T) {
	results := []*Result{
		fakeResult("bitcask", "ycsb-a", false, 1000), fakeResult("lsm", "ycsb-a", false, 1000),
		fakeResult("bitcask/btree", "readrandom", false, 1000), fakeResult("lsm/tiered", "readrandom", false, 1000),
		fakeResult("lsm", "readrandom", false, 1000),
	}
	results[2].UserBytesWritten = 0 // a read-only workload has no write amplification
	var b bytes.Buffer
	if err := WriteTable(&b, results); err != nil {
		t.Fatal(err)
	}
	lines := strings.Split(strings.TrimRight(b.String(), "\n"), "\n")
	if !strings.Contains(lines[0], "writes not synced") || !strings.Contains(lines[0], "1000 keys of 16 B") {
		t.Fatalf("header line %q", lines[0])
	}
	table := lines[2:]
	if len(table) != 1+len(results) {
		t.Fatalf("%d table lines for %d results:\n%s", len(table), len(results), b.String())
	}
	// Numbers are right-aligned, so every line ends in the same column.
	for _, l := range table {
		if n := len([]rune(l)); n != len([]rune(table[0])) || n > 120 {
			t.Errorf("line of %d columns (header %d): %q", n, len([]rune(table[0])), l)
		}
	}
	// Rows go by workload, then by engine, each in the order first seen.
	want := []string{"ycsb-a      bitcask ", "            lsm ", "readrandom  lsm ", "            bitcask/btree", "            lsm/tiered"}
	for i, w := range want {
		if !strings.HasPrefix(table[1+i], w) {
			t.Errorf("row %d = %q, want it to start %q", i, table[1+i], w)
		}
	}
	if !strings.Contains(table[4], " - ") || !strings.Contains(table[1], "1.10") || !strings.Contains(table[1], "1.2µs") {
		t.Errorf("rows: %q, %q", table[1], table[4])
	}
}

func TestWriteReportWritesEveryFile(t *testing.T) {
	results := []*Result{fakeResult("bitcask", "ycsb-a", true, 400), fakeResult("lsm", "ycsb-a", true, 400),
		fakeResult("bitcask", "scan", true, 40), fakeResult("lsm", "scan", true, 40)}
	// A run too short to sample or time must not break the charts.
	results[3].Samples, results[3].OpsPerSec = nil, 0
	dir := filepath.Join(t.TempDir(), "a", "b")
	meta := ReportMeta{Command: "kvs bench --sync always", Engines: []string{"bitcask", "lsm"}, Workloads: []string{"ycsb-a", "scan"},
		Keys: 400, Sync: true, SyncMode: "always"}
	if err := WriteReport(dir, meta, results); err != nil {
		t.Fatal(err)
	}
	var rep Report
	b, err := os.ReadFile(filepath.Join(dir, ReportJSON))
	if err != nil {
		t.Fatal(err)
	}
	if err := json.Unmarshal(b, &rep); err != nil {
		t.Fatal(err)
	}
	if rep.Meta.Machine.GOOS == "" || rep.Meta.Date.IsZero() || rep.Meta.Command != meta.Command || len(rep.Results) != 4 ||
		rep.Results[0].Latency["all"].Count != 400 || len(rep.Results[0].Samples) != 5 {
		t.Fatalf("results.json: %+v", rep.Meta)
	}
	f, err := os.Open(filepath.Join(dir, ReportCSV))
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	rows, err := csv.NewReader(f).ReadAll()
	if err != nil || len(rows) != 5 {
		t.Fatalf("results.csv: %d rows, %v", len(rows), err)
	}
	if rows[1][0] != "bitcask" || rows[1][1] != "ycsb-a" || rows[1][2] != "true" || rows[1][4] != "400" {
		t.Fatalf("results.csv first row %q", rows[1])
	}
	md, err := os.ReadFile(filepath.Join(dir, ReportMarkdown))
	if err != nil {
		t.Fatal(err)
	}
	for _, name := range []string{"throughput.svg", "amplification.svg", "latency-cdf-ycsb-a.svg", "latency-cdf-scan.svg",
		"disk-usage-ycsb-a.svg", "disk-usage-scan.svg"} {
		svg, err := os.ReadFile(filepath.Join(dir, name))
		if err != nil {
			t.Fatal(err)
		}
		if !bytes.Contains(svg, []byte("<svg")) || !bytes.HasSuffix(bytes.TrimSpace(svg), []byte("</svg>")) {
			t.Errorf("%s is not an SVG document", name)
		}
		if !bytes.Contains(md, []byte("("+name+")")) {
			t.Errorf("report.md does not show %s", name)
		}
	}
	for _, want := range []string{"```sh\nkvs bench --sync always\n```", "writes synced (--sync always)", "| scan | lsm | 40 |"} {
		if !bytes.Contains(md, []byte(want)) {
			t.Errorf("report.md lacks %q:\n%s", want, md)
		}
	}
}

func TestHumanNanos(t *testing.T) {
	for ns, want := range map[int64]string{0: "0ns", 850: "850ns", 1000: "1µs", 12345: "12.3µs", 1_250_000: "1.25ms", 2_100_000_000: "2.1s"} {
		if got := humanNanos(ns); got != want {
			t.Errorf("humanNanos(%d) = %q, want %q", ns, got, want)
		}
	}
}
