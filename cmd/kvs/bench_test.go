package main

import (
	"bytes"
	"encoding/csv"
	"encoding/json"
	"encoding/xml"
	"errors"
	"io"
	"os"
	"path/filepath"
	"regexp"
	"slices"
	"strconv"
	"strings"
	"testing"

	"github.com/kvs-lab/kvs/bench"
)

func TestBenchPrintsATable(t *testing.T) {
	out := mustRun(t, "bench", "--keys", "3000", "--no-progress")
	for _, want := range []string{"3000 keys of 16 B", "writes not synced", "workload", "ops/s", "p99.9", "write amp",
		"fillrandom", "readrandom", "scan", "bitcask", "lsm"} {
		if !strings.Contains(out, want) {
			t.Fatalf("bench output lacks %q:\n%s", want, out)
		}
	}
	for _, line := range strings.Split(out, "\n") {
		if len([]rune(line)) > 120 {
			t.Errorf("line wider than 120 columns: %q", line)
		}
	}
	// The deprecated --count still names the key space.
	var rep bench.Report
	if err := json.Unmarshal([]byte(mustRun(t, "bench", "--count", "1000", "--ops", "500", "--engines", "bitcask",
		"--workloads", "readrandom", "--json")), &rep); err != nil {
		t.Fatal(err)
	}
	if len(rep.Results) != 1 || rep.Results[0].Keys != 1000 || rep.Results[0].Ops != 500 || rep.Results[0].OpsPerSec <= 0 {
		t.Fatalf("bench --json = %+v", rep.Results)
	}
}

func TestBenchAppliesEngineFlags(t *testing.T) {
	writeAmp := func(extra ...string) float64 {
		var rep bench.Report
		args := append([]string{"bench", "--keys", "20000", "--engines", "lsm", "--workloads", "fillrandom", "--json"}, extra...)
		if err := json.Unmarshal([]byte(mustRun(t, args...)), &rep); err != nil || len(rep.Results) != 1 {
			t.Fatalf("kvs %v: %v", args, err)
		}
		return rep.Results[0].EngineWriteAmp
	}
	// 20000 keys of 116 B fit the default 8 MiB memtable (only the WAL is
	// written) but flush and compact many times through 64 KiB ones. The
	// engine's own count is used: the process's counters would include
	// the files other tests write meanwhile.
	if def, small := writeAmp(), writeAmp("--memtable-size", "64KiB"); small < 2*def {
		t.Fatalf("write amplification %.2f with 64 KiB memtables, %.2f by default: the flag did not reach the engine", small, def)
	}
	if _, errs, code := kvsRun(t, "", "bench", "--engines", "lsm", "--compaction", "sideways"); code != 2 || !strings.Contains(errs, "--compaction") {
		t.Fatalf("bad --compaction: exit %d, %q", code, errs)
	}
}

func TestBenchRejectsBadArguments(t *testing.T) {
	for _, tc := range []struct {
		args []string
		want []string // in stderr
	}{
		{[]string{"--workloads", "ycsb-a,ycsb-z"}, []string{"--workloads", `"ycsb-z"`, "known:", "ycsb-a", "fillrandom"}},
		{[]string{"--engines", "bitcask,rocksdb"}, []string{"--engines", `"rocksdb"`, "known:", "bitcask/btree", "lsm/tiered"}},
		{[]string{"--engines", "lsm,lsm/leveled"}, []string{"--engines", "lsm is listed twice"}},
		{[]string{"--engines", "lsm/tiered", "--compaction", "leveled"}, []string{"lsm/tiered conflicts with --compaction leveled"}},
		{[]string{"--keys", "0"}, []string{"--keys"}},
		{[]string{"--workloads", "deleterandom", "--keys", "10", "--ops", "20"}, []string{"--ops", "deleterandom"}},
		{[]string{"--key-size", "8", "--keys", "99999999"}, []string{"--key-size"}},
		{[]string{"--sync", "sometimes"}, []string{"--sync"}},
	} {
		_, errs, code := kvsRun(t, "", append([]string{"bench", "--no-progress"}, tc.args...)...)
		if code != 2 {
			t.Errorf("kvs bench %v: exit %d, want 2 (stderr %q)", tc.args, code, errs)
			continue
		}
		for _, w := range tc.want {
			if !strings.Contains(errs, w) {
				t.Errorf("kvs bench %v: stderr %q lacks %q", tc.args, errs, w)
			}
		}
	}
}

// TestBenchFlagsPickTheVariant checks that --compaction tiered and --index
// btree rename the engines they change, so a row says what ran.
func TestBenchFlagsPickTheVariant(t *testing.T) {
	var rep bench.Report
	if err := json.Unmarshal([]byte(mustRun(t, "bench", "--engines", "bitcask,lsm", "--workloads", "fillseq", "--keys", "500",
		"--compaction", "tiered", "--index", "btree", "--json")), &rep); err != nil {
		t.Fatal(err)
	}
	if got := []string{rep.Results[0].DB, rep.Results[1].DB}; !slices.Equal(got, []string{"bitcask/btree", "lsm/tiered"}) {
		t.Fatalf("engines %q, want bitcask/btree and lsm/tiered", got)
	}
}

func TestBenchSyncedRunsSaySo(t *testing.T) {
	out := mustRun(t, "bench", "--engines", "bitcask", "--workloads", "fillseq", "--keys", "200", "--sync", "always")
	if !strings.Contains(out, "writes synced") {
		t.Fatalf("a synced run's table does not say so:\n%s", out)
	}
	var rep bench.Report
	if err := json.Unmarshal([]byte(mustRun(t, "bench", "--engines", "bitcask", "--workloads", "fillseq", "--keys", "200",
		"--sync", "group", "--json")), &rep); err != nil {
		t.Fatal(err)
	}
	if !rep.Meta.Sync || rep.Meta.SyncMode != "group" || !rep.Results[0].Sync {
		t.Fatalf("--sync group: meta %+v, result sync %v", rep.Meta, rep.Results[0].Sync)
	}
}

// TestBenchWritesAReport is issue 4's must-show: the report files exist,
// parse, and hold the numbers of the run that was asked for.
func TestBenchWritesAReport(t *testing.T) {
	dir := filepath.Join(t.TempDir(), "results")
	const keys = 5000
	out := mustRun(t, "bench", "--engines", "bitcask,lsm", "--workloads", "ycsb-a,ycsb-c", "--keys", strconv.Itoa(keys),
		"--out", dir, "--no-progress")
	engines, workloads := []string{"bitcask", "lsm"}, []string{"ycsb-a", "ycsb-c"}

	var rep bench.Report
	b, err := os.ReadFile(filepath.Join(dir, "results.json"))
	if err != nil {
		t.Fatal(err)
	}
	if err := json.Unmarshal(b, &rep); err != nil {
		t.Fatalf("results.json: %v", err)
	}
	if len(rep.Results) != len(engines)*len(workloads) {
		t.Fatalf("results.json holds %d results, want %d", len(rep.Results), len(engines)*len(workloads))
	}
	m := rep.Meta
	if !slices.Equal(m.Engines, engines) || !slices.Equal(m.Workloads, workloads) || m.Keys != keys || m.Sync ||
		m.Machine.CPUs <= 0 || m.Machine.GoVersion == "" || m.Date.IsZero() || !strings.Contains(m.Command, "--out "+dir) {
		t.Fatalf("results.json meta: %+v", m)
	}
	seen := map[string]bool{}
	for _, r := range rep.Results {
		seen[r.DB+" "+r.Workload] = true
		if !slices.Contains(engines, r.DB) || !slices.Contains(workloads, r.Workload) {
			t.Errorf("result for %s %s, which was not asked for", r.DB, r.Workload)
		}
		if r.Ops != keys || r.Keys != keys || r.Sync || r.OpsPerSec <= 0 {
			t.Errorf("%s %s: ops %d, keys %d, sync %v, %.0f ops/s; want %d ops of %d keys, unsynced", r.DB, r.Workload,
				r.Ops, r.Keys, r.Sync, r.OpsPerSec, keys, keys)
		}
		var calls int64
		for kind, l := range r.Latency {
			if kind != "all" {
				calls += l.Count
			}
		}
		if all := r.Latency["all"]; all == nil || all.Count != keys || calls != keys || len(all.CDF) == 0 {
			t.Errorf("%s %s: latency counts %d (all) and %d (by kind), want %d", r.DB, r.Workload, all.Count, calls, keys)
		}
		if r.Workload == "ycsb-c" && (r.Latency["update"] != nil || r.Latency["read"] == nil || r.Latency["read"].Count != keys) {
			t.Errorf("%s ycsb-c is not all reads: %v", r.DB, r.Latency)
		}
	}
	if len(seen) != 4 {
		t.Errorf("results.json repeats a run: %v", seen)
	}

	f, err := os.Open(filepath.Join(dir, "results.csv"))
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	rows, err := csv.NewReader(f).ReadAll()
	if err != nil {
		t.Fatalf("results.csv: %v", err)
	}
	if len(rows) != 1+len(rep.Results) {
		t.Fatalf("results.csv has %d rows, want a header and %d", len(rows), len(rep.Results))
	}
	col := map[string]int{}
	for i, name := range rows[0] {
		col[name] = i
	}
	for _, row := range rows[1:] {
		get := func(name string) string {
			i, ok := col[name]
			if !ok {
				t.Fatalf("results.csv has no %s column: %q", name, rows[0])
			}
			return row[i]
		}
		num := func(name string) int {
			n, err := strconv.Atoi(get(name))
			if err != nil {
				t.Fatalf("results.csv %s: %v", name, err)
			}
			return n
		}
		if !slices.Contains(engines, get("db")) || !slices.Contains(workloads, get("workload")) {
			t.Errorf("results.csv row for %s %s", get("db"), get("workload"))
		}
		if num("ops") != keys || num("latency_count") != keys || num("count_read")+num("count_update") != keys {
			t.Errorf("results.csv %s %s: ops %s, latency count %s, reads %s + updates %s; want %d", get("db"), get("workload"),
				get("ops"), get("latency_count"), get("count_read"), get("count_update"), keys)
		}
		if ops, err := strconv.ParseFloat(get("ops_per_sec"), 64); err != nil || ops <= 0 {
			t.Errorf("results.csv ops_per_sec %q", get("ops_per_sec"))
		}
	}

	md, err := os.ReadFile(filepath.Join(dir, "report.md"))
	if err != nil {
		t.Fatal(err)
	}
	charts, _ := filepath.Glob(filepath.Join(dir, "*.svg"))
	pngs, _ := filepath.Glob(filepath.Join(dir, "*.png"))
	charts = append(charts, pngs...)
	var names []string
	for _, c := range charts {
		names = append(names, filepath.Base(c))
	}
	for _, want := range []string{"throughput.svg", "amplification.svg", "latency-cdf-ycsb-a.svg", "latency-cdf-ycsb-c.svg",
		"disk-usage-ycsb-a.svg", "disk-usage-ycsb-c.svg"} {
		if !slices.Contains(names, want) {
			t.Errorf("no %s among the charts %q", want, names)
		}
	}
	for _, c := range charts {
		checkChart(t, c)
		if !bytes.Contains(md, []byte("]("+filepath.Base(c)+")")) {
			t.Errorf("report.md does not link %s", filepath.Base(c))
		}
	}
	for _, link := range regexp.MustCompile(`\]\(([^)]+)\)`).FindAllSubmatch(md, -1) {
		if _, err := os.Stat(filepath.Join(dir, string(link[1]))); err != nil {
			t.Errorf("report.md links %s: %v", link[1], err)
		}
	}
	for _, want := range []string{m.Command, "| workload | engine |", "| ycsb-a | bitcask | 5000 |", "| ycsb-c | lsm | 5000 |",
		"writes not synced", "results.json", "results.csv"} {
		if !bytes.Contains(md, []byte(want)) {
			t.Errorf("report.md lacks %q", want)
		}
	}
	// The table on stdout is the same run's.
	if !strings.Contains(out, "ycsb-a") || !strings.Contains(out, "5000") {
		t.Errorf("stdout table:\n%s", out)
	}
}

// checkChart checks that path is a PNG or an SVG document of some size.
func checkChart(t *testing.T, path string) {
	t.Helper()
	b, err := os.ReadFile(path)
	if err != nil {
		t.Fatal(err)
	}
	if len(b) < 2000 {
		t.Errorf("%s is only %d bytes", path, len(b))
	}
	if strings.HasSuffix(path, ".png") {
		if !bytes.HasPrefix(b, []byte("\x89PNG\r\n\x1a\n")) {
			t.Errorf("%s has no PNG header", path)
		}
		return
	}
	dec := xml.NewDecoder(bytes.NewReader(b))
	root := ""
	for {
		tok, err := dec.Token()
		if err != nil {
			t.Errorf("%s: %v before the root element", path, err)
			return
		}
		if se, ok := tok.(xml.StartElement); ok {
			root = se.Name.Local
			break
		}
	}
	if root != "svg" {
		t.Errorf("%s: root element %q, want svg", path, root)
	}
	// The whole document must parse.
	for {
		if _, err := dec.Token(); err != nil {
			if !errors.Is(err, io.EOF) {
				t.Errorf("%s: %v", path, err)
			}
			break
		}
	}
}
