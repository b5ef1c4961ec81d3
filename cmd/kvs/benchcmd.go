package main

import (
	"fmt"
	"io"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"sync"
	"time"

	"github.com/kvs-lab/kvs"
	"github.com/kvs-lab/kvs/bench"
	"github.com/schollz/progressbar/v3"
	"github.com/spf13/cobra"
	"github.com/spf13/pflag"
)

// benchArgs are kvs bench's own flags.
type benchArgs struct {
	engines, workloads string
	keys, ops          int
	keySize, valueSize int
	concurrency        int
	settle             time.Duration
	maxTime            time.Duration
	seed               uint64
	out                string
	noProgress         bool
}

func newBenchCmd(g *globals) *cobra.Command {
	var a benchArgs
	cmd := &cobra.Command{
		Use:   "bench",
		Short: "Run workloads on engines and print (and optionally write) a comparison",
		Long: `bench runs every workload of --workloads on every engine of --engines, one
run each in a fresh directory, and prints one table row per run: throughput,
latency percentiles, write and space amplification, memory per key, stall
time and reopen time.

Engines: ` + strings.Join(bench.Registered(), ", ") + ` (bitcask/hash and lsm/leveled
are accepted for bitcask and lsm). Workloads: ` + strings.Join(bench.WorkloadNames(), ", ") + `,
or "all". A preloaded workload first loads --keys keys (untimed, no sync),
then times --ops operations (default: --keys, but --keys/100 scans for scan
and ycsb-e, so that they read about as many keys as the others). The global engine flags
(--memtable-size, --compaction, ...) apply to every run; --sync always or
group syncs every timed write (one run never mixes sync modes).

--out DIR also writes results.json, results.csv, SVG charts and report.md
into DIR; --json prints the results as JSON instead of the table.`,
		Args: exactArgs(0, "no arguments"),
		RunE: func(cmd *cobra.Command, args []string) error { return runBench(cmd, g, &a) },
	}
	f := cmd.Flags()
	f.StringVar(&a.engines, "engines", "bitcask,lsm", "comma-separated engines to compare")
	f.StringVar(&a.workloads, "workloads", "fillrandom,readrandom,scan", `comma-separated workloads, or "all"`)
	f.IntVar(&a.keys, "keys", 200000, "key space: keys preloaded, or written by a fill workload")
	// NB: not MarkDeprecated, whose notice goes to stdout and would spoil
	// --json; runBench writes its own to stderr.
	f.IntVar(&a.keys, "count", 200000, "old name of --keys")
	f.MarkHidden("count")
	f.IntVar(&a.ops, "ops", 0, "timed operations per run (default: --keys; --keys/100 for scan and ycsb-e)")
	f.IntVar(&a.keySize, "key-size", 16, "bytes per key")
	f.IntVar(&a.valueSize, "value-size", 100, "bytes per value")
	f.IntVar(&a.concurrency, "concurrency", 1, "goroutines issuing operations")
	f.DurationVar(&a.maxTime, "max-time", time.Minute, "cap on each run's timed phase; the run then reports the operations it did (0: no cap)")
	f.DurationVar(&a.settle, "settle", 2*time.Minute, "longest wait after a writing run for the engine's own writes to stop, before write amplification is taken (0: don't wait)")
	f.Uint64Var(&a.seed, "seed", 1, "seed of the key order, the values and the key choices")
	f.StringVar(&a.out, "out", "", "directory to write the report into (results.json, results.csv, charts, report.md)")
	f.BoolVar(&a.noProgress, "no-progress", false, "hide progress bars")
	return cmd
}

// benchAliases are engine names kvs bench accepts for registered ones.
var benchAliases = map[string]string{"bitcask/hash": "bitcask", "lsm/leveled": "lsm"}

// parseEngines checks --engines against bench.Registered and folds in the
// variant the global --index and --compaction flags pick, so that a row's
// name says what ran.
func parseEngines(list, index, compaction string) ([]string, error) {
	known := bench.Registered()
	var out []string
	for _, name := range strings.Split(list, ",") {
		name = strings.TrimSpace(name)
		if alias, ok := benchAliases[name]; ok {
			name = alias
		}
		if !slices.Contains(known, name) {
			return nil, usagef("--engines: unknown engine %q (known: %s)", name, strings.Join(known, ", "))
		}
		base, variant, _ := strings.Cut(name, "/")
		for _, flag := range []struct{ name, val, engine, dflt string }{
			{"--index", index, "bitcask", kvs.IndexHash},
			{"--compaction", compaction, "lsm", kvs.CompactionLeveled},
		} {
			if flag.val == "" || base != flag.engine {
				continue
			}
			if variant == "" {
				variant = flag.val // the flag picks the variant
			}
			if variant != flag.val {
				return nil, usagef("--engines: %s conflicts with %s %s", name, flag.name, flag.val)
			}
			if name = base; variant != flag.dflt {
				name += "/" + variant
			}
		}
		if slices.Contains(out, name) {
			return nil, usagef("--engines: %s is listed twice", name)
		}
		out = append(out, name)
	}
	return out, nil
}

// check reports a data set the runner would refuse, before any run starts.
func (a *benchArgs) check(workloads []bench.Workload) error {
	switch {
	case a.keys <= 0:
		return usagef("--keys: %d is not a positive count", a.keys)
	case a.ops < 0:
		return usagef("--ops: %d is negative", a.ops)
	case a.keySize < bench.MinKeySize || a.keySize > kvs.MaxKeySize:
		return usagef("--key-size: %d is not in [%d, %d]", a.keySize, bench.MinKeySize, kvs.MaxKeySize)
	case a.valueSize < 0:
		return usagef("--value-size: %d is negative", a.valueSize)
	case a.concurrency < 1:
		return usagef("--concurrency: %d is less than 1", a.concurrency)
	}
	for _, w := range workloads {
		ops := a.opsFor(w)
		// Keys are zero-padded decimal indexes of up to 16 digits.
		if digits := min(a.keySize, 16); digits < 16 && float64(a.keys+ops) >= pow10(digits) {
			return usagef("--key-size: %d-byte keys cannot number %d keys and operations", a.keySize, a.keys+ops)
		}
		if w.Preload && w.Dist == bench.Permuted && ops > a.keys {
			return usagef("--ops: %s takes each of the %d keys once, so it cannot run %d operations", w.Name, a.keys, ops)
		}
	}
	return nil
}

// opsFor returns the timed operations of a run of w: --ops, or by default
// --keys, except for workloads that scan ranges from random keys (scan,
// ycsb-e), which run --keys / ScanMax scans: about as many keys read as a
// point workload reads. NB: without the cut a scan workload on bitcask's
// hash keydir, which gathers and sorts the keys in range for every scan,
// would run for hours at the default --keys.
func (a *benchArgs) opsFor(w bench.Workload) int {
	switch {
	case a.ops > 0:
		return a.ops
	case w.ScanMax > 0 && w.Dist != bench.Sequential:
		return max(1, a.keys/w.ScanMax)
	}
	return a.keys
}

// width is the length of the longest name.
func width(names []string) int {
	n := 0
	for _, s := range names {
		n = max(n, len(s))
	}
	return n
}

func pow10(n int) float64 {
	x := 1.0
	for range n {
		x *= 10
	}
	return x
}

func runBench(cmd *cobra.Command, g *globals, a *benchArgs) error {
	stderr := cmd.ErrOrStderr()
	if cmd.Flags().Changed("count") {
		fmt.Fprintln(stderr, "kvs bench: --count is deprecated, use --keys")
	}
	workloads, err := bench.ParseWorkloads(a.workloads)
	if err != nil {
		return usagef("--workloads: %s", strings.TrimPrefix(err.Error(), "bench: "))
	}
	var wlNames []string
	for _, w := range workloads {
		if slices.Contains(wlNames, w.Name) {
			return usagef("--workloads: %s is listed twice", w.Name)
		}
		wlNames = append(wlNames, w.Name)
	}
	dbs, err := parseEngines(a.engines, g.index, g.compaction)
	if err != nil {
		return err
	}
	if err := a.check(workloads); err != nil {
		return err
	}
	syncMode := g.sync
	if syncMode == "" {
		syncMode = "none"
	}
	wo, err := g.writeOptions(syncMode)
	if err != nil {
		return err
	}
	opts, err := g.options(stderr)
	if err != nil {
		return err
	}
	// Engine warnings (write stalls) would tear through the progress bars
	// and the table; they are shown only when asked for.
	if !cmd.Flags().Changed("log-level") {
		opts.Logger = kvs.DiscardLogger()
	}

	// Each run gets a fresh directory under a temporary one, made under
	// --dir when given (to benchmark on that file system), and removed
	// with everything in it afterwards.
	if g.dir != "" {
		if err := os.MkdirAll(g.dir, 0o755); err != nil {
			return fmt.Errorf("kvs bench: %w", err)
		}
	}
	parent, err := os.MkdirTemp(g.dir, "kvs-bench-")
	if err != nil {
		return fmt.Errorf("kvs bench: make a directory for the runs: %w", err)
	}
	defer os.RemoveAll(parent)

	meta := bench.ReportMeta{Command: commandLine(cmd), Engines: dbs, Workloads: wlNames, Keys: a.keys, Ops: a.ops,
		KeySize: a.keySize, ValueSize: a.valueSize, Concurrency: a.concurrency, Seed: a.seed, Sync: wo.Sync,
		SyncMode: syncMode, EngineOptions: engineFlags(cmd), Machine: bench.CurrentMachine(), Date: time.Now()}
	show := !a.noProgress && isTerminal(stderr)
	var results []*bench.Result
	n := len(dbs) * len(workloads)
	for i, w := range workloads {
		for j, db := range dbs {
			run := i*len(dbs) + j
			cfg := bench.RunConfig{DB: db, Workload: w, Keys: a.keys, Ops: a.opsFor(w), KeySize: a.keySize, ValueSize: a.valueSize,
				Concurrency: a.concurrency, Sync: wo.Sync, Seed: a.seed, KVS: opts, Settle: settleFlag(a.settle), MaxTime: a.maxTime,
				Dir: filepath.Join(parent, fmt.Sprintf("%02d-%s-%s", run, strings.ReplaceAll(db, "/", "-"), w.Name))}
			var bar *runBar
			if show {
				label := fmt.Sprintf("[%d/%d] %-*s %-*s", run+1, n, width(dbs), db, width(wlNames), w.Name)
				bar = newRunBar(stderr, label, cfg)
				cfg.Progress = bar.progress
			}
			res, err := bench.Run(cfg)
			bar.finish(err)
			os.RemoveAll(cfg.Dir)
			if err != nil {
				return err
			}
			results = append(results, res)
		}
	}

	if a.out != "" {
		if err := bench.WriteReport(a.out, meta, results); err != nil {
			return err
		}
		fmt.Fprintf(stderr, "kvs bench: report written to %s\n", filepath.Join(a.out, bench.ReportMarkdown))
	}
	out := cmd.OutOrStdout()
	if g.json {
		return printJSON(out, bench.Report{Meta: meta, Results: results})
	}
	return bench.WriteTable(out, results)
}

// runBar is the progress bar of one run: the preload, the timed
// operations, then one step for the reopen. The runner reports from its
// workers, so progress may be called concurrently.
type runBar struct {
	mu    sync.Mutex
	w     io.Writer
	bar   *progressbar.ProgressBar
	label string
	phase string
	load  int // the preload's share of the bar
	ops   int // the timed operations' share
}

func newRunBar(w io.Writer, label string, cfg bench.RunConfig) *runBar {
	b := &runBar{w: w, label: label, ops: cfg.Ops}
	if cfg.Workload.Preload {
		b.load = cfg.Keys
	}
	b.bar = progressbar.NewOptions(b.load+b.ops+1, progressbar.OptionSetWriter(w),
		progressbar.OptionSetDescription(label+"        "), progressbar.OptionSetWidth(30),
		progressbar.OptionThrottle(100*time.Millisecond), progressbar.OptionShowElapsedTimeOnFinish(),
		progressbar.OptionOnCompletion(func() { fmt.Fprintln(w) }))
	return b
}

func (b *runBar) progress(phase string, done, total int) {
	b.mu.Lock()
	defer b.mu.Unlock()
	if phase != b.phase {
		b.phase = phase
		b.bar.Describe(fmt.Sprintf("%s: %-6s", b.label, phase))
	}
	switch phase {
	case "load":
		b.bar.Set(min(done, b.load))
	case "run":
		b.bar.Set(b.load + min(done, b.ops))
	}
}

// finish completes the bar (one line left per run), or on a failed run
// stops it where it is.
func (b *runBar) finish(err error) {
	if b == nil {
		return
	}
	b.mu.Lock()
	defer b.mu.Unlock()
	if err != nil {
		b.bar.Exit()
		fmt.Fprintln(b.w)
		return
	}
	b.bar.Describe(b.label + "        ")
	b.bar.Finish()
}

// commandLine rebuilds the command line from the flags that were set, in
// a canonical order (the deprecated --count as --keys), so that a report
// says how to make it again.
func commandLine(cmd *cobra.Command) string {
	parts := []string{"kvs", cmd.Name()}
	cmd.Flags().Visit(func(f *pflag.Flag) {
		name := f.Name
		if name == "count" {
			name = "keys"
		}
		if f.Value.Type() == "bool" {
			if f.Value.String() == "true" {
				parts = append(parts, "--"+name)
			} else {
				parts = append(parts, "--"+name+"=false")
			}
			return
		}
		parts = append(parts, "--"+name, shellQuote(f.Value.String()))
	})
	return strings.Join(parts, " ")
}

// engineFlags lists the global engine flags that were set.
func engineFlags(cmd *cobra.Command) []string {
	var out []string
	cmd.Flags().Visit(func(f *pflag.Flag) {
		switch f.Name {
		case "index", "read-mode", "segment-size", "memtable-size", "target-file-size", "l0-trigger", "compaction", "l1-size",
			"level-multiplier", "block-size", "bloom-bits", "cache-size", "compression", "max-value-size":
			out = append(out, "--"+f.Name+" "+f.Value.String())
		}
	})
	return out
}

// shellQuote quotes s for a POSIX shell when it needs it.
func shellQuote(s string) string {
	if s != "" && strings.IndexFunc(s, func(r rune) bool {
		return !(r >= 'a' && r <= 'z' || r >= 'A' && r <= 'Z' || r >= '0' && r <= '9' || strings.ContainsRune("-_./,:=+@%", r))
	}) < 0 {
		return s
	}
	return "'" + strings.ReplaceAll(s, "'", `'\''`) + "'"
}

// settleFlag maps --settle to RunConfig.Settle, where 0 means the default
// and a negative value means no wait.
func settleFlag(d time.Duration) time.Duration {
	if d <= 0 {
		return -1
	}
	return d
}
