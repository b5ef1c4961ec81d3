package bench

import (
	"bytes"
	"encoding/csv"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"maps"
	"os"
	"runtime"
	"slices"
	"strconv"
	"strings"
	"time"

	"github.com/kvs-lab/kvs/internal/vfs"
)

// ErrMixedSync is returned by WriteTable and WriteReport when the results
// were not all measured with the same sync mode: synced and unsynced
// writes differ by orders of magnitude, so one table never holds both.
var ErrMixedSync = errors.New("bench: results mix synced and unsynced writes")

// ReportMeta is what a report says about how its results were made.
// Durations in results.json are integer nanoseconds (time.Duration).
type ReportMeta struct {
	// Command is the command line that produced the results, as a user
	// would type it again.
	Command   string
	Engines   []string // the DB names, in the order asked
	Workloads []string // the workload names, in the order asked
	// Keys is the key space; Ops the timed operations asked for each
	// run, 0 when each workload took its default (Result.Ops has it).
	Keys, Ops int
	KeySize   int
	ValueSize int
	// Concurrency is the goroutines issuing operations in each run.
	Concurrency int
	Seed        uint64
	// Sync says whether writes were synced; SyncMode is how ("none",
	// "group", "always").
	Sync     bool
	SyncMode string
	// EngineOptions are the engine flags that differ from the defaults
	// ("--memtable-size 64KiB"), if any.
	EngineOptions []string `json:",omitempty"`
	Machine       Machine
	// Date is when the runs started.
	Date time.Time
}

// Machine describes the computer a report was measured on.
type Machine struct {
	GOOS, GOARCH string
	CPUs         int    // runtime.NumCPU
	CPUModel     string `json:",omitempty"` // from /proc/cpuinfo where there is one
	GoVersion    string
}

// CurrentMachine describes the machine the process runs on.
func CurrentMachine() Machine {
	m := Machine{GOOS: runtime.GOOS, GOARCH: runtime.GOARCH, CPUs: runtime.NumCPU(), GoVersion: runtime.Version()}
	if b, err := os.ReadFile("/proc/cpuinfo"); err == nil {
		for _, line := range strings.Split(string(b), "\n") {
			if name, val, ok := strings.Cut(line, ":"); ok && strings.TrimSpace(name) == "model name" {
				m.CPUModel = strings.TrimSpace(val)
				break
			}
		}
	}
	return m
}

// Report is the contents of results.json: the parameters and the results.
type Report struct {
	Meta    ReportMeta
	Results []*Result
}

// syncOf returns the sync mode every result shares, or ErrMixedSync.
func syncOf(results []*Result) (bool, error) {
	if len(results) == 0 {
		return false, errors.New("bench: no results to report")
	}
	for _, r := range results[1:] {
		if r.Sync != results[0].Sync {
			return false, fmt.Errorf("%w (%s %s is %s, %s %s is %s)", ErrMixedSync, results[0].DB, results[0].Workload,
				syncWord(results[0].Sync), r.DB, r.Workload, syncWord(r.Sync))
		}
	}
	return results[0].Sync, nil
}

func syncWord(sync bool) string {
	if sync {
		return "synced"
	}
	return "not synced"
}

// ordered returns results sorted by workload, in the order workloads first
// appear, then by DB in the order DBs first appear: the rows of a table.
func ordered(results []*Result) []*Result {
	wl, db := firstSeen(results, func(r *Result) string { return r.Workload }), firstSeen(results, func(r *Result) string { return r.DB })
	out := slices.Clone(results)
	slices.SortStableFunc(out, func(a, b *Result) int {
		if c := slices.Index(wl, a.Workload) - slices.Index(wl, b.Workload); c != 0 {
			return c
		}
		return slices.Index(db, a.DB) - slices.Index(db, b.DB)
	})
	return out
}

// firstSeen returns the distinct values of f over results, in the order
// they first appear.
func firstSeen(results []*Result, f func(*Result) string) []string {
	var out []string
	for _, r := range results {
		if v := f(r); !slices.Contains(out, v) {
			out = append(out, v)
		}
	}
	return out
}

// tableHeader describes the data set and the sync mode in one line.
func tableHeader(results []*Result, sync bool) string {
	r := results[0]
	g := "goroutine"
	if r.Concurrency != 1 {
		g += "s"
	}
	return fmt.Sprintf("%d keys of %d B, values of %d B, %d %s; writes %s", r.Keys, r.KeySize, r.ValueSize, r.Concurrency, g, syncWord(sync))
}

var tableColumns = []string{"workload", "engine", "ops", "ops/s", "p50", "p99", "p99.9", "write amp", "space amp", "mem/key", "stall", "reopen"}

// tableRows formats the results as cells of tableColumns; repeated
// workload names are left blank when blank is set.
func tableRows(results []*Result, blank bool) [][]string {
	var rows [][]string
	prev := ""
	for _, r := range ordered(results) {
		wl := r.Workload
		if blank && wl == prev {
			wl = ""
		}
		prev = r.Workload
		all := r.Latency["all"]
		if all == nil {
			all = &Latency{}
		}
		wamp := "-" // nothing written
		if r.UserBytesWritten > 0 {
			wamp = fmt.Sprintf("%.2f", r.WriteAmp)
		}
		mem := "-"
		if r.LiveKeys > 0 {
			mem = fmt.Sprintf("%.0f B", max(0, r.MemoryPerKey))
		}
		space := "-" // nothing live to divide by
		if r.LiveBytes > 0 {
			space = fmt.Sprintf("%.2f", r.SpaceAmp)
		}
		stall := "-"
		if r.StallTime > 0 {
			stall = fmt.Sprintf("%.1f%%", 100*r.StallTime.Seconds()/r.Elapsed.Seconds())
		}
		rows = append(rows, []string{wl, r.DB, strconv.Itoa(r.Ops), HumanCount(r.OpsPerSec),
			humanNanos(all.P50), humanNanos(all.P99), humanNanos(all.P999), wamp, space,
			mem, stall, humanDuration(r.Reopen)})
	}
	return rows
}

// WriteTable writes results as an aligned text table, one row per
// workload and engine, under a line that gives the data set and whether
// writes were synced. Latencies are over all operations of a run. It
// refuses results that mix sync modes (ErrMixedSync).
func WriteTable(w io.Writer, results []*Result) error {
	sync, err := syncOf(results)
	if err != nil {
		return err
	}
	rows := append([][]string{tableColumns}, tableRows(results, true)...)
	widths := make([]int, len(tableColumns))
	for _, row := range rows {
		for i, c := range row {
			widths[i] = max(widths[i], len([]rune(c)))
		}
	}
	var b strings.Builder
	b.WriteString(tableHeader(results, sync) + "\n\n")
	for _, row := range rows {
		var line strings.Builder
		for i, c := range row {
			pad := strings.Repeat(" ", widths[i]-len([]rune(c)))
			switch {
			case i < 2: // names: left-aligned
				line.WriteString(c + pad + "  ")
			default: // numbers: right-aligned
				line.WriteString(pad + c + "  ")
			}
		}
		b.WriteString(strings.TrimRight(line.String(), " ") + "\n")
	}
	_, err = io.WriteString(w, b.String())
	return err
}

// writeMarkdownTable writes the table of WriteTable as a Markdown table.
func writeMarkdownTable(w io.Writer, results []*Result) {
	fmt.Fprintf(w, "| %s |\n|", strings.Join(tableColumns, " | "))
	for i := range tableColumns {
		if i < 2 {
			fmt.Fprint(w, " --- |")
		} else {
			fmt.Fprint(w, " ---: |")
		}
	}
	fmt.Fprintln(w)
	for _, row := range tableRows(results, false) {
		fmt.Fprintf(w, "| %s |\n", strings.Join(row, " | "))
	}
}

// humanNanos formats a latency in nanoseconds: 850ns, 12.3µs, 1.25ms, 2.10s.
func humanNanos(ns int64) string {
	switch f := float64(ns); {
	case ns < 1000:
		return fmt.Sprintf("%dns", ns)
	case ns < 1e6:
		return fmt.Sprintf("%.3gµs", f/1e3)
	case ns < 1e9:
		return fmt.Sprintf("%.3gms", f/1e6)
	default:
		return fmt.Sprintf("%.3gs", f/1e9)
	}
}

// humanDuration formats d like humanNanos.
func humanDuration(d time.Duration) string { return humanNanos(d.Nanoseconds()) }

// HumanCount formats a count or a rate compactly: 812, 45.2k, 1.31M.
func HumanCount(r float64) string {
	switch {
	case r >= 1e6:
		return fmt.Sprintf("%.2fM", r/1e6)
	case r >= 1e4:
		return fmt.Sprintf("%.1fk", r/1e3)
	}
	return fmt.Sprintf("%.0f", r)
}

// The files WriteReport writes besides the charts.
const (
	ReportJSON     = "results.json"
	ReportCSV      = "results.csv"
	ReportMarkdown = "report.md"
)

// WriteReport writes into dir (creating it): results.json (meta and
// results), results.csv (one flat row per result), the charts as SVG
// files, and report.md, which shows the table and the charts and gives the
// command line that made them. Files of an earlier report in dir are
// overwritten; charts it no longer makes are left alone. It refuses
// results that mix sync modes, or whose sync mode is not meta.Sync
// (ErrMixedSync). A zero meta.Machine or meta.Date is filled in with this
// machine and now.
func WriteReport(dir string, meta ReportMeta, results []*Result) error {
	sync, err := syncOf(results)
	if err != nil {
		return err
	}
	if sync != meta.Sync {
		return fmt.Errorf("%w (the report is for %s writes, the results are %s)", ErrMixedSync, syncWord(meta.Sync), syncWord(sync))
	}
	if meta.Machine == (Machine{}) {
		meta.Machine = CurrentMachine()
	}
	if meta.Date.IsZero() {
		meta.Date = time.Now()
	}
	if err := vfs.Default.MkdirAll(dir, 0o755); err != nil {
		return fmt.Errorf("bench: report: %w", err)
	}
	var js bytes.Buffer
	enc := json.NewEncoder(&js)
	enc.SetIndent("", "  ")
	if err := enc.Encode(Report{Meta: meta, Results: results}); err != nil {
		return fmt.Errorf("bench: report: %w", err)
	}
	var cs bytes.Buffer
	if err := writeCSV(&cs, results); err != nil {
		return err
	}
	files := map[string][]byte{ReportJSON: js.Bytes(), ReportCSV: cs.Bytes()}
	charts, err := makeCharts(results)
	if err != nil {
		return err
	}
	for _, c := range charts {
		files[c.file] = c.svg
	}
	var md bytes.Buffer
	writeMarkdown(&md, meta, results, charts)
	files[ReportMarkdown] = md.Bytes()
	for _, name := range slices.Sorted(maps.Keys(files)) {
		if err := writeFile(vfs.Default.PathJoin(dir, name), files[name]); err != nil {
			return err
		}
	}
	return nil
}

func writeFile(path string, data []byte) error {
	f, err := vfs.Default.Create(path)
	if err != nil {
		return fmt.Errorf("bench: report: %w", err)
	}
	_, err = f.Write(data)
	if cerr := f.Close(); err == nil {
		err = cerr
	}
	if err != nil {
		return fmt.Errorf("bench: report: write %s: %w", path, err)
	}
	return nil
}

// csvColumns are results.csv's columns: units are in the names; a latency
// column covers all operations of the run, a count_ column one kind.
var csvColumns = []string{"db", "workload", "sync", "keys", "ops", "key_size", "value_size", "concurrency",
	"load_s", "elapsed_s", "ops_per_sec", "mb_per_sec",
	"latency_count", "latency_mean_ns", "p50_ns", "p95_ns", "p99_ns", "p999_ns", "max_ns",
	"user_bytes_written", "write_amp", "engine_write_amp", "live_keys", "live_bytes", "bytes_on_disk", "space_amp",
	"read_syscalls_per_get", "tables_per_get", "memory_per_key_bytes", "stall_s", "max_l0_files", "max_compaction_debt_bytes", "reopen_s"}

func writeCSV(w io.Writer, results []*Result) error {
	cw := csv.NewWriter(w)
	header := slices.Clone(csvColumns)
	for k := range numOpKinds {
		header = append(header, "count_"+OpKind(k).String())
	}
	cw.Write(header)
	f := func(x float64) string { return strconv.FormatFloat(x, 'g', 6, 64) }
	i := strconv.Itoa
	i64 := func(x int64) string { return strconv.FormatInt(x, 10) }
	for _, r := range ordered(results) {
		all := r.Latency["all"]
		if all == nil {
			all = &Latency{}
		}
		row := []string{r.DB, r.Workload, strconv.FormatBool(r.Sync), i(r.Keys), i(r.Ops), i(r.KeySize), i(r.ValueSize), i(r.Concurrency),
			f(r.Load.Seconds()), f(r.Elapsed.Seconds()), f(r.OpsPerSec), f(r.MBPerSec),
			i64(all.Count), f(all.Mean), i64(all.P50), i64(all.P95), i64(all.P99), i64(all.P999), i64(all.Max),
			i64(r.UserBytesWritten), f(r.WriteAmp), f(r.EngineWriteAmp), i64(r.LiveKeys), i64(r.LiveBytes), i64(r.BytesOnDisk), f(r.SpaceAmp),
			f(r.ReadSyscallsPerGet), f(r.TablesPerGet), f(r.MemoryPerKey), f(r.StallTime.Seconds()), i(r.MaxL0Files), i64(r.MaxCompactionDebt), f(r.Reopen.Seconds())}
		for k := range numOpKinds {
			var n int64
			if l := r.Latency[OpKind(k).String()]; l != nil {
				n = l.Count
			}
			row = append(row, i64(n))
		}
		cw.Write(row)
	}
	cw.Flush()
	if err := cw.Error(); err != nil {
		return fmt.Errorf("bench: report: csv: %w", err)
	}
	return nil
}

// writeMarkdown writes report.md.
func writeMarkdown(w io.Writer, meta ReportMeta, results []*Result, charts []chart) {
	m := meta.Machine
	fmt.Fprintf(w, "# kvs bench: %s on %s\n\n", strings.Join(firstSeen(results, func(r *Result) string { return r.DB }), ", "),
		strings.Join(firstSeen(results, func(r *Result) string { return r.Workload }), ", "))
	if meta.Command != "" {
		fmt.Fprintf(w, "Made by\n\n```sh\n%s\n```\n\non ", meta.Command)
	} else {
		fmt.Fprint(w, "Measured on ")
	}
	fmt.Fprintf(w, "%s, %s/%s, %d CPUs", meta.Date.UTC().Format("2006-01-02 15:04 MST"), m.GOOS, m.GOARCH, m.CPUs)
	if m.CPUModel != "" {
		fmt.Fprintf(w, " (%s)", m.CPUModel)
	}
	fmt.Fprintf(w, ", %s. ", m.GoVersion)
	sync, _ := syncOf(results)
	fmt.Fprintf(w, "%s", tableHeader(results, sync))
	if meta.SyncMode != "" {
		fmt.Fprintf(w, " (--sync %s)", meta.SyncMode)
	}
	fmt.Fprintf(w, "; seed %d.", meta.Seed)
	if len(meta.EngineOptions) > 0 {
		fmt.Fprintf(w, " Engine options: `%s`.", strings.Join(meta.EngineOptions, " "))
	}
	fmt.Fprint(w, "\n\n")
	writeMarkdownTable(w, results)
	fmt.Fprintf(w, "\nLatencies cover every operation of a run. Write amplification is bytes the process wrote "+
		"to files per user byte written (- when the workload writes nothing); space amplification is bytes on disk "+
		"over the live keys' bytes; mem/key is the Go heap the open engine holds per live key; stall is the share of "+
		"the run writers spent stalled; reopen is Close then Open. The numbers are in [%s](%s) (durations in "+
		"nanoseconds) and [%s](%s).\n", ReportJSON, ReportJSON, ReportCSV, ReportCSV)
	section := ""
	for _, c := range charts {
		if c.section != section {
			section = c.section
			fmt.Fprintf(w, "\n## %s\n", section)
		}
		fmt.Fprintf(w, "\n![%s](%s)\n", c.title, c.file)
	}
}
