package main

import (
	"fmt"
	"io"
	"strings"
	"text/tabwriter"
	"time"

	"github.com/kvs-lab/kvs"
	"github.com/spf13/cobra"
)

func newStatsCmd(g *globals) *cobra.Command {
	return &cobra.Command{
		Use:   "stats",
		Short: "Print the engine's counters, amplification and on-disk layout",
		Args:  exactArgs(0, "no arguments"),
		RunE: func(cmd *cobra.Command, args []string) error {
			return g.withEngine(cmd, false, func(e kvs.Engine) error {
				st := e.Stats()
				if g.json {
					return printJSON(cmd.OutOrStdout(), statsJSON(st))
				}
				printStats(cmd.OutOrStdout(), st)
				return nil
			})
		},
	}
}

// statsJSON adds the derived ratios to the raw Stats.
func statsJSON(st kvs.Stats) any {
	return struct {
		kvs.Stats
		WriteAmp     float64 `json:"WriteAmp"`
		SpaceAmp     float64 `json:"SpaceAmp"`
		ReadAmp      float64 `json:"ReadAmp"`
		MemoryPerKey float64 `json:"MemoryPerKey"`
	}{st, st.WriteAmp(), st.SpaceAmp(), st.ReadAmp(), st.MemoryPerKey()}
}

func printStats(w io.Writer, st kvs.Stats) {
	tw := tabwriter.NewWriter(w, 0, 0, 2, ' ', 0)
	kind := ""
	if st.IndexKind != "" && st.IndexKind != st.Engine {
		kind = " (index " + st.IndexKind + ")"
	}
	if st.Compaction != "" {
		kind += " (compaction " + st.Compaction + ")"
	}
	fmt.Fprintf(tw, "engine\t%s%s\n", st.Engine, kind)
	// NB: an LSM tree estimates its live figures from table properties
	// (exact after a full compaction); see lsm.DB.Stats.
	estimate := ""
	if st.Engine == "lsm" {
		estimate = ", estimated"
	}
	fmt.Fprintf(tw, "live keys\t%d\t%s\n", st.LiveKeys, strings.TrimPrefix(estimate, ", "))
	fmt.Fprintf(tw, "live data\t%s\t(keys + values%s)\n", humanBytes(st.LiveBytes), estimate)
	fmt.Fprintf(tw, "bytes on disk\t%s\tspace amplification %.2f\n", humanBytes(st.BytesOnDisk), st.SpaceAmp())
	fmt.Fprintf(tw, "user bytes written\t%s\tsince open\n", humanBytes(st.UserBytesWritten))
	fmt.Fprintf(tw, "disk bytes written\t%s\twrite amplification %.2f\n", humanBytes(st.DiskBytesWritten), st.WriteAmp())
	skips := ""
	if st.FilterSkips > 0 || st.MemtableFilterSkips > 0 {
		skips = fmt.Sprintf(" (bloom filters skipped %d tables and %d memtable searches)", st.FilterSkips, st.MemtableFilterSkips)
	}
	fmt.Fprintf(tw, "gets\t%d\t%d disk reads, read amplification %.2f%s\n", st.Gets, st.DiskReads, st.ReadAmp(), skips)
	fmt.Fprintf(tw, "fsyncs\t%d\n", st.Syncs)
	fmt.Fprintf(tw, "compactions\t%d\t%s, read %s, wrote %s\n", st.Compactions, st.CompactionTime.Round(time.Millisecond),
		humanBytes(st.CompactionBytesRead), humanBytes(st.CompactionBytesWritten))
	fmt.Fprintf(tw, "index memory\t%s\t%.1f bytes per key\n", humanBytes(st.IndexBytes), st.MemoryPerKey())
	tw.Flush()

	if len(st.Segments) > 0 {
		fmt.Fprintln(w)
		tw = tabwriter.NewWriter(w, 0, 0, 2, ' ', tabwriter.AlignRight)
		fmt.Fprintln(tw, "segment\tbytes\tlive bytes\tlive %\trecords\tlive records\thint\tactive\t")
		for _, s := range st.Segments {
			pct := 0.0
			if s.Bytes > 0 {
				pct = 100 * float64(s.LiveBytes) / float64(s.Bytes)
			}
			fmt.Fprintf(tw, "%06d\t%s\t%s\t%.0f%%\t%d\t%d\t%s\t%s\t\n", s.ID, humanBytes(s.Bytes), humanBytes(s.LiveBytes),
				pct, s.Records, s.LiveRecords, yes(s.Hint), yes(s.Active))
		}
		tw.Flush()
	}
	if len(st.Levels) > 0 {
		fmt.Fprintln(w)
		tw = tabwriter.NewWriter(w, 0, 0, 2, ' ', tabwriter.AlignRight)
		fmt.Fprintln(tw, "level\tfiles\tsize\tscore\tread\twritten\tcompactions\ttime\t")
		for _, l := range st.Levels {
			fmt.Fprintf(tw, "L%d\t%d\t%s\t%.2f\t%s\t%s\t%d\t%s\t\n", l.Level, l.Files, humanBytes(l.Bytes), l.Score,
				humanBytes(l.BytesRead), humanBytes(l.BytesWritten), l.Compactions, l.CompactionTime.Round(time.Millisecond))
		}
		tw.Flush()
	}
}

func yes(b bool) string {
	if b {
		return "yes"
	}
	return "-"
}

func newCompactCmd(g *globals) *cobra.Command {
	return &cobra.Command{
		Use:   "compact",
		Short: "Reclaim space: a bitcask merge (an LSM full compaction)",
		Args:  exactArgs(0, "no arguments"),
		RunE: func(cmd *cobra.Command, args []string) error {
			return g.withEngine(cmd, false, func(e kvs.Engine) error {
				return compact(cmd, e, g.json)
			})
		},
	}
}

// compact runs e.Compact and reports what it reclaimed.
func compact(cmd *cobra.Command, e kvs.Engine, asJSON bool) error {
	before := e.Stats()
	start := time.Now()
	if err := e.Compact(); err != nil {
		return err
	}
	took := time.Since(start)
	after := e.Stats()
	out := cmd.OutOrStdout()
	if asJSON {
		return printJSON(out, map[string]any{
			"seconds": took.Seconds(), "bytes_on_disk_before": before.BytesOnDisk,
			"bytes_on_disk_after": after.BytesOnDisk, "live_bytes": after.LiveBytes,
			"files_before": len(before.Segments) + levelFiles(before), "files_after": len(after.Segments) + levelFiles(after),
		})
	}
	fmt.Fprintf(out, "compacted in %s: bytes on disk %s -> %s (live data %s, space amplification %.2f -> %.2f)\n",
		took.Round(time.Millisecond), humanBytes(before.BytesOnDisk), humanBytes(after.BytesOnDisk),
		humanBytes(after.LiveBytes), before.SpaceAmp(), after.SpaceAmp())
	return nil
}

func levelFiles(st kvs.Stats) int {
	n := 0
	for _, l := range st.Levels {
		n += l.Files
	}
	return n
}
