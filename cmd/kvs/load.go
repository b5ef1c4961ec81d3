package main

import (
	"bufio"
	"bytes"
	"fmt"
	"io"
	"os"
	"time"

	"github.com/kvs-lab/kvs"
	"github.com/kvs-lab/kvs/bench"
	"github.com/schollz/progressbar/v3"
	"github.com/spf13/cobra"
	"golang.org/x/term"
)

// loadSummary is what load reports.
type loadSummary struct {
	Keys         int64   `json:"keys"`
	UserBytes    int64   `json:"user_bytes"`
	Seconds      float64 `json:"seconds"`
	OpsPerSec    float64 `json:"ops_per_sec"`
	BytesOnDisk  int64   `json:"bytes_on_disk"`
	LiveKeys     int64   `json:"live_keys"`
	Sync         string  `json:"sync"`
	BatchSize    int     `json:"batch_size"`
	FromStdin    bool    `json:"from_stdin"`
	Seed         uint64  `json:"seed,omitempty"`
	KeySize      int     `json:"key_size,omitempty"`
	ValueSize    int     `json:"value_size,omitempty"`
	StartIndex   uint64  `json:"start_index,omitempty"`
	ValueVersion uint64  `json:"value_version,omitempty"`
}

func newLoadCmd(g *globals) *cobra.Command {
	var count, batchSize int
	var seed, startIndex, version uint64
	var keySize, valueSize int
	var stdin, noProgress bool
	cmd := &cobra.Command{
		Use:   "load",
		Short: "Write N generated key/values (the same N for the same --seed), or pairs from stdin",
		Long: `load writes a data set into the engine.

Generated (the default): --count keys of --key-size bytes with values of
--value-size bytes. Keys and values depend only on --seed and their index, so
the same flags always write the same data; keys of 16 bytes or more arrive in
random order. --version changes the values (an overwrite pass); --start
shifts the indexes (load more keys).

--stdin: one pair per line, KEY then a tab or space then VALUE (the rest of
the line).

Writes go in batches of --batch; --sync picks their durability (default none:
the engine is synced once, when it is closed at the end).`,
		Args: exactArgs(0, "no arguments"),
		RunE: func(cmd *cobra.Command, args []string) error {
			if count < 0 {
				return usagef("--count: %d is negative", count)
			}
			if batchSize < 1 {
				return usagef("--batch: %d must be at least 1", batchSize)
			}
			gen := bench.Gen{Seed: seed, KeySize: keySize, ValueSize: valueSize}
			if !stdin {
				if err := gen.Validate(); err != nil {
					return usageError{err}
				}
			}
			wo, err := g.writeOptions("none")
			if err != nil {
				return err
			}
			return g.withEngine(cmd, true, func(e kvs.Engine) error {
				return load(cmd, e, loadArgs{gen, count, batchSize, startIndex, version, stdin, noProgress || g.json, g.json, wo, g.sync})
			})
		},
	}
	f := cmd.Flags()
	f.IntVar(&count, "count", 100000, "number of generated keys")
	f.Uint64Var(&seed, "seed", 1, "seed of the generated keys and values")
	f.IntVar(&keySize, "key-size", 16, "bytes per generated key (at least 8)")
	f.IntVar(&valueSize, "value-size", 100, "bytes per generated value")
	f.Uint64Var(&startIndex, "start", 0, "index of the first generated key")
	f.Uint64Var(&version, "version", 0, "value version: a different version overwrites the same keys with new values")
	f.IntVar(&batchSize, "batch", 100, "keys per atomic batch")
	f.BoolVar(&stdin, "stdin", false, "read KEY VALUE lines from standard input instead of generating")
	f.BoolVar(&noProgress, "no-progress", false, "hide the progress bar")
	return cmd
}

// loadArgs are load's flags, resolved.
type loadArgs struct {
	gen               bench.Gen
	count, batchSize  int
	startIndex        uint64
	version           uint64
	stdin, noProgress bool
	json              bool
	wo                kvs.WriteOptions
	sync              string
}

// load writes the generated or stdin data set into e and reports it.
func load(cmd *cobra.Command, e kvs.Engine, a loadArgs) (err error) {
	count, batchSize, stdin := a.count, a.batchSize, a.stdin
	gen, startIndex, version := a.gen, a.startIndex, a.version
	total := int64(count)
	if stdin {
		total = -1
	}
	bar := progressbar.NewOptions64(total,
		progressbar.OptionSetWriter(cmd.ErrOrStderr()),
		progressbar.OptionSetVisibility(!a.noProgress && isTerminal(cmd.ErrOrStderr())),
		progressbar.OptionSetDescription("loading"),
		progressbar.OptionShowCount(),
		progressbar.OptionShowIts(),
		progressbar.OptionSetItsString("keys"),
		progressbar.OptionThrottle(100*time.Millisecond),
		progressbar.OptionClearOnFinish(),
	)
	sum := loadSummary{Sync: a.sync, BatchSize: batchSize, FromStdin: stdin}
	if sum.Sync == "" {
		sum.Sync = "none"
	}
	var b kvs.Batch
	flush := func() error {
		if b.Empty() {
			return nil
		}
		if err := e.Write(&b, a.wo); err != nil {
			return err
		}
		sum.Keys += int64(b.Count())
		sum.UserBytes += b.UserBytes()
		bar.Add(b.Count())
		b.Reset()
		return nil
	}
	start := time.Now()
	if stdin {
		err = loadStdin(cmd.InOrStdin(), &b, batchSize, flush)
	} else {
		sum.Seed, sum.KeySize, sum.ValueSize, sum.StartIndex, sum.ValueVersion = gen.Seed, gen.KeySize, gen.ValueSize, startIndex, version
		var key, val []byte
		for i := uint64(0); i < uint64(count) && err == nil; i++ {
			key = gen.Key(key[:0], startIndex+i)
			val = gen.Value(val[:0], startIndex+i, version)
			b.Put(key, val)
			if b.Count() >= batchSize {
				err = flush()
			}
		}
	}
	if err == nil {
		err = flush()
	}
	bar.Finish()
	if err != nil {
		return fmt.Errorf("kvs load: after %d keys: %w", sum.Keys, err)
	}
	sum.Seconds = time.Since(start).Seconds()
	if sum.Seconds > 0 {
		sum.OpsPerSec = float64(sum.Keys) / sum.Seconds
	}
	st := e.Stats()
	sum.BytesOnDisk, sum.LiveKeys = st.BytesOnDisk, st.LiveKeys
	out := cmd.OutOrStdout()
	if a.json {
		return printJSON(out, sum)
	}
	fmt.Fprintf(out, "loaded %d keys (%s of keys and values) in %.2fs: %s ops/s\n",
		sum.Keys, humanBytes(sum.UserBytes), sum.Seconds, bench.HumanCount(sum.OpsPerSec))
	fmt.Fprintf(out, "engine now holds %d live keys in %s on disk\n", sum.LiveKeys, humanBytes(sum.BytesOnDisk))
	return nil
}

func loadStdin(r io.Reader, b *kvs.Batch, batchSize int, flush func() error) error {
	sc := bufio.NewScanner(r)
	sc.Buffer(make([]byte, 64<<10), kvs.MaxKeySize+kvs.DefaultMaxValueSize+2)
	line := 0
	for sc.Scan() {
		line++
		text := sc.Bytes()
		if len(bytes.TrimSpace(text)) == 0 {
			continue
		}
		i := bytes.IndexAny(text, "\t ")
		if i <= 0 {
			return fmt.Errorf("kvs load: stdin line %d: want KEY, a tab or space, then VALUE", line)
		}
		b.Put(text[:i], text[i+1:])
		if b.Count() >= batchSize {
			if err := flush(); err != nil {
				return err
			}
		}
	}
	if err := sc.Err(); err != nil {
		return fmt.Errorf("kvs load: stdin after line %d: %w", line, err)
	}
	return nil
}

func isTerminal(w io.Writer) bool {
	f, ok := w.(*os.File)
	return ok && term.IsTerminal(int(f.Fd()))
}
