package main

import (
	"fmt"
	"io"
	"strings"
	"text/tabwriter"
	"time"

	"github.com/kvs-lab/kvs/bench"
	"github.com/schollz/progressbar/v3"
	"github.com/spf13/cobra"
)

func newBenchCmd(g *globals) *cobra.Command {
	var engines string
	var count, reads, keySize, valueSize int
	var seed uint64
	var noProgress bool
	cmd := &cobra.Command{
		Use:   "bench",
		Short: "Quick engine comparison: load, random reads, a full scan and a reopen, in one table",
		Long: `bench loads --count generated keys (random order, no sync) into each engine,
reads --reads random keys back (every value checked), scans everything once,
and reopens the engine, then prints one row per engine. Engines are written
engine or engine/variant: bitcask (hash keydir), bitcask/btree, lsm. Space
amplification divides bytes on disk by the data set's key and value bytes.`,
		Args: exactArgs(0, "no arguments"),
		RunE: func(cmd *cobra.Command, args []string) error {
			cfg := bench.QuickConfig{Count: count, Reads: reads, Gen: bench.Gen{Seed: seed, KeySize: keySize, ValueSize: valueSize}}
			if count <= 0 || reads < 0 {
				return usagef("--count must be positive and --reads not negative")
			}
			if err := cfg.Gen.Validate(); err != nil {
				return usageError{err}
			}
			// The global engine flags (--segment-size, --memtable-size,
			// --compaction, ...) apply to every engine benchmarked; the
			// spec's variant (bitcask/btree) picks the keydir.
			flags, err := g.options(cmd.ErrOrStderr())
			if err != nil {
				return err
			}
			for _, s := range strings.Split(engines, ",") {
				spec, err := bench.ParseEngineSpec(strings.TrimSpace(s))
				if err != nil {
					return usageError{err}
				}
				index := spec.Options.Bitcask.Index
				spec.Options.Bitcask = flags.Bitcask
				spec.Options.Bitcask.Index = index
				spec.Options.LSM = flags.LSM
				spec.Options.MaxValueSize = flags.MaxValueSize
				cfg.Engines = append(cfg.Engines, spec)
			}
			cfg.Dir = g.dir
			show := !noProgress && !g.json && isTerminal(cmd.ErrOrStderr())
			var bar *progressbar.ProgressBar
			var barFor string
			cfg.Progress = func(engine, phase string, done, total int) {
				if !show {
					return
				}
				if key := engine + " " + phase; key != barFor || bar == nil {
					if bar != nil {
						bar.Finish()
					}
					barFor = key
					bar = progressbar.NewOptions(total, progressbar.OptionSetWriter(cmd.ErrOrStderr()),
						progressbar.OptionSetDescription(fmt.Sprintf("%-14s %-5s", engine, phase)),
						progressbar.OptionThrottle(100*time.Millisecond), progressbar.OptionClearOnFinish())
				}
				bar.Set(done)
			}
			res, err := bench.RunQuick(cfg)
			if bar != nil {
				bar.Finish()
			}
			if err != nil {
				return err
			}
			out := cmd.OutOrStdout()
			if g.json {
				return printJSON(out, quickJSON(cfg.Gen, res))
			}
			printQuick(out, cfg, res)
			return nil
		},
	}
	f := cmd.Flags()
	f.StringVar(&engines, "engines", "bitcask/hash,bitcask/btree,lsm", "comma-separated engines to compare")
	f.IntVar(&count, "count", 200000, "keys to load")
	f.IntVar(&reads, "reads", 0, "random reads after loading (default: --count)")
	f.IntVar(&keySize, "key-size", 16, "bytes per key")
	f.IntVar(&valueSize, "value-size", 100, "bytes per value")
	f.Uint64Var(&seed, "seed", 1, "seed of the data set and the read order")
	f.BoolVar(&noProgress, "no-progress", false, "hide progress bars")
	return cmd
}

type quickRow struct {
	Engine         string  `json:"engine"`
	Keys           int     `json:"keys"`
	FillOpsPerSec  float64 `json:"fill_ops_per_sec"`
	Reads          int     `json:"reads"`
	ReadOpsPerSec  float64 `json:"read_ops_per_sec"`
	ScanKeysPerSec float64 `json:"scan_keys_per_sec"`
	ReopenSeconds  float64 `json:"reopen_seconds"`
	BytesOnDisk    int64   `json:"bytes_on_disk"`
	SpaceAmp       float64 `json:"space_amp"`
	WriteAmp       float64 `json:"write_amp"`
	IndexBytes     int64   `json:"index_bytes"`
	BytesPerKey    float64 `json:"index_bytes_per_key"`
}

func quickJSON(g bench.Gen, res []bench.QuickResult) []quickRow {
	var rows []quickRow
	for _, r := range res {
		st := r.StatsAfterFill
		rows = append(rows, quickRow{r.Label, r.Count, r.FillOpsPerSec(), r.Reads, r.ReadOpsPerSec(), r.ScanKeysPerSec(),
			r.Reopen.Seconds(), st.BytesOnDisk, r.SpaceAmp(g), st.WriteAmp(), st.IndexBytes, float64(st.IndexBytes) / float64(r.Count)})
	}
	return rows
}

func printQuick(w io.Writer, cfg bench.QuickConfig, res []bench.QuickResult) {
	fmt.Fprintf(w, "%d keys of %d B, values of %d B, random order, writes not synced; %d random reads; seed %d\n\n",
		cfg.Count, cfg.Gen.KeySize, cfg.Gen.ValueSize, res[0].Reads, cfg.Gen.Seed)
	tw := tabwriter.NewWriter(w, 0, 0, 2, ' ', tabwriter.AlignRight)
	fmt.Fprintln(tw, "engine\tfill ops/s\tread ops/s\tscan keys/s\treopen\tbytes on disk\tspace amp\twrite amp\tindex B/key\t")
	for _, r := range quickJSON(cfg.Gen, res) {
		perKey := "-" // the engine does not count its index memory
		if r.IndexBytes > 0 {
			perKey = fmt.Sprintf("%.1f", r.BytesPerKey)
		}
		fmt.Fprintf(tw, "%s\t%s\t%s\t%s\t%s\t%s\t%.2f\t%.2f\t%s\t\n", r.Engine, humanRate(r.FillOpsPerSec), humanRate(r.ReadOpsPerSec),
			humanRate(r.ScanKeysPerSec), time.Duration(r.ReopenSeconds*float64(time.Second)).Round(time.Millisecond),
			humanBytes(r.BytesOnDisk), r.SpaceAmp, r.WriteAmp, perKey)
	}
	tw.Flush()
}
