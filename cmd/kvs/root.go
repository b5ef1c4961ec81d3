package main

import (
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"io/fs"
	"os"
	"strings"

	"github.com/kvs-lab/kvs"
	"github.com/sirupsen/logrus"
	"github.com/spf13/cobra"
)

// globals are the flags every command shares.
type globals struct {
	engine      string
	dir         string
	json        bool
	index       string
	readMode    string
	segmentSize string
	memtable    string
	targetFile  string
	l0Trigger   int
	l1Size      string
	levelMult   int
	blockSize   string
	bloomBits   int
	cacheSize   string
	compression string
	maxValue    string
	sync        string
	logLevel    string
	compaction  string
}

func newRootCmd() *cobra.Command {
	g := &globals{}
	root := &cobra.Command{
		Use:   "kvs",
		Short: "kvs: a log-structured storage engine testbed",
		Long: `kvs runs the kvs storage engines (bitcask, lsm) from the shell.

Data commands take --engine and --dir; when --engine is left out, kvs reads
the engine from the directory's ENGINE file (bitcask for a new directory).`,
		SilenceUsage:  true,
		SilenceErrors: true,
	}
	root.CompletionOptions.DisableDefaultCmd = true
	pf := root.PersistentFlags()
	pf.StringVar(&g.engine, "engine", "", "engine: "+strings.Join(kvs.Engines(), ", ")+" (default: the directory's, else bitcask)")
	pf.StringVar(&g.dir, "dir", "", "engine directory")
	pf.BoolVar(&g.json, "json", false, "print JSON for scripts instead of tables")
	pf.StringVar(&g.index, "index", "", "bitcask keydir index: hash (default) or btree")
	pf.StringVar(&g.readMode, "read-mode", "", "how engines read their files: mmap (default; copy records and blocks out of a memory map of each file) or pread (one pread(2) each)")
	pf.StringVar(&g.segmentSize, "segment-size", "", "bitcask segment size before rotation, e.g. 64MiB (default 64MiB)")
	pf.StringVar(&g.memtable, "memtable-size", "", "lsm memtable size before a flush, e.g. 4MiB (default 8MiB)")
	pf.StringVar(&g.targetFile, "target-file-size", "", "lsm compaction output table size, e.g. 2MiB (default 2MiB)")
	pf.IntVar(&g.l0Trigger, "l0-trigger", 0, "lsm L0 table count that starts an L0 compaction (default 4)")
	pf.StringVar(&g.compaction, "compaction", "", "lsm compaction policy: leveled (default) or tiered")
	pf.StringVar(&g.l1Size, "l1-size", "", "lsm L1 target size, e.g. 64MiB (default 32MiB)")
	pf.IntVar(&g.levelMult, "level-multiplier", 0, "lsm growth of each level's target over the one above, at least 2 (default 10)")
	pf.StringVar(&g.blockSize, "block-size", "", "lsm sstable data block size, e.g. 4KiB (default 4KiB)")
	pf.IntVar(&g.bloomBits, "bloom-bits", 0, "lsm bloom filter bits per key; -1 writes no filter (default 10)")
	pf.StringVar(&g.cacheSize, "cache-size", "", "lsm block cache size, e.g. 8MiB (default 8MiB)")
	pf.StringVar(&g.compression, "compression", "", "lsm data block compression: snappy (default) or none")
	pf.StringVar(&g.maxValue, "max-value-size", "", "largest value accepted, e.g. 16MiB (default 16MiB)")
	pf.StringVar(&g.sync, "sync", "", "durability of writes: always (fsync each write), group (share fsyncs), none")
	pf.StringVar(&g.logLevel, "log-level", "warn", "engine log level: debug, info, warn, error")

	root.AddCommand(
		newPutCmd(g), newGetCmd(g), newDelCmd(g), newScanCmd(g),
		newLoadCmd(g), newStatsCmd(g), newCompactCmd(g), newInspectCmd(g),
		newBenchCmd(g), newEnginesCmd(g), newServeCmd(g), newNodeCmd(g), newClusterCmd(g),
	)
	return root
}

// options turns the global flags into engine options.
func (g *globals) options(stderr io.Writer) (*kvs.Options, error) {
	o := &kvs.Options{}
	lvl, err := logrus.ParseLevel(g.logLevel)
	if err != nil {
		return nil, usagef("--log-level: %q is not debug, info, warn or error", g.logLevel)
	}
	l := logrus.New()
	l.SetOutput(stderr)
	l.SetLevel(lvl)
	o.Logger = logrus.NewEntry(l)
	switch g.index {
	case "", kvs.IndexHash, kvs.IndexBTree:
		o.Bitcask.Index = g.index
	default:
		return nil, usagef("--index: %q is not hash or btree", g.index)
	}
	switch g.readMode {
	case "", kvs.ReadModeMmap, kvs.ReadModePread:
		o.ReadMode = g.readMode
	default:
		return nil, usagef("--read-mode: %q is not mmap or pread", g.readMode)
	}
	if g.segmentSize != "" {
		n, err := parseBytes(g.segmentSize)
		if err != nil || n <= 0 {
			return nil, usagef("--segment-size: %q is not a positive size such as 4MiB", g.segmentSize)
		}
		o.Bitcask.MaxSegmentBytes = n
	}
	if g.memtable != "" {
		n, err := parseBytes(g.memtable)
		if err != nil || n <= 0 || n > 1<<30 {
			return nil, usagef("--memtable-size: %q is not a size from 1B to 1GiB such as 4MiB", g.memtable)
		}
		o.LSM.MemtableBytes = int(n)
	}
	if g.targetFile != "" {
		n, err := parseBytes(g.targetFile)
		if err != nil || n <= 0 {
			return nil, usagef("--target-file-size: %q is not a positive size such as 2MiB", g.targetFile)
		}
		o.LSM.TargetFileSize = n
	}
	for _, f := range []struct {
		flag, val string
		dst       *int64
		example   string
	}{
		{"--l1-size", g.l1Size, &o.LSM.BaseLevelBytes, "64MiB"},
		{"--cache-size", g.cacheSize, &o.LSM.BlockCacheBytes, "8MiB"},
	} {
		if f.val == "" {
			continue
		}
		n, err := parseBytes(f.val)
		if err != nil || n <= 0 {
			return nil, usagef("%s: %q is not a positive size such as %s", f.flag, f.val, f.example)
		}
		*f.dst = n
	}
	if g.blockSize != "" {
		n, err := parseBytes(g.blockSize)
		if err != nil || n <= 0 || n > 1<<30 {
			return nil, usagef("--block-size: %q is not a size from 1B to 1GiB such as 4KiB", g.blockSize)
		}
		o.LSM.BlockSize = int(n)
	}
	if g.levelMult != 0 && g.levelMult < 2 {
		return nil, usagef("--level-multiplier: %d is less than 2", g.levelMult)
	}
	o.LSM.LevelMultiplier = g.levelMult
	if g.bloomBits < -1 {
		return nil, usagef("--bloom-bits: %d is not -1 (no filter) or a count of bits per key", g.bloomBits)
	}
	o.LSM.BloomBitsPerKey = g.bloomBits
	switch g.compression {
	case "", kvs.CompressionSnappy, kvs.CompressionNone:
		o.LSM.Compression = g.compression
	default:
		return nil, usagef("--compression: %q is not snappy or none", g.compression)
	}
	if g.l0Trigger < 0 {
		return nil, usagef("--l0-trigger: %d is negative", g.l0Trigger)
	}
	o.LSM.L0CompactionTrigger = g.l0Trigger
	switch g.compaction {
	case "", "leveled", "tiered":
		o.LSM.Compaction = g.compaction
	default:
		return nil, usagef("--compaction: %q is not leveled or tiered", g.compaction)
	}
	if g.maxValue != "" {
		n, err := parseBytes(g.maxValue)
		if err != nil || n <= 0 {
			return nil, usagef("--max-value-size: %q is not a positive size such as 16MiB", g.maxValue)
		}
		o.MaxValueSize = int(n)
	}
	if g.sync == "always" {
		o.DisableGroupCommit = true
	}
	return o, nil
}

// writeOptions returns the WriteOptions for --sync, with def used when the
// flag is not given.
func (g *globals) writeOptions(def string) (kvs.WriteOptions, error) {
	mode := g.sync
	if mode == "" {
		mode = def
	}
	switch mode {
	case "always", "group":
		return kvs.Sync, nil
	case "none":
		return kvs.NoSync, nil
	}
	return kvs.WriteOptions{}, usagef("--sync: %q is not always, group or none", mode)
}

// open opens the engine in --dir. create says whether a missing directory
// may be created (writes) or is an error (reads).
func (g *globals) open(cmd *cobra.Command, create bool) (kvs.Engine, error) {
	if g.dir == "" {
		return nil, usagef("--dir is required: the directory holding the engine's files")
	}
	o, err := g.options(cmd.ErrOrStderr())
	if err != nil {
		return nil, err
	}
	e, _, err := g.openWith(o, create)
	return e, err
}

// openWith opens the engine in --dir with o and returns it with its name:
// --engine, else the directory's ENGINE file, else bitcask for a new
// directory.
func (g *globals) openWith(o *kvs.Options, create bool) (kvs.Engine, string, error) {
	if g.dir == "" {
		return nil, "", usagef("--dir is required: the directory holding the engine's files")
	}
	st, err := os.Stat(g.dir)
	switch {
	case errors.Is(err, fs.ErrNotExist) && !create:
		return nil, "", fmt.Errorf("kvs: directory %s does not exist", g.dir)
	case err == nil && !st.IsDir():
		return nil, "", fmt.Errorf("kvs: %s is a file, not a directory", g.dir)
	case err != nil && !errors.Is(err, fs.ErrNotExist):
		return nil, "", fmt.Errorf("kvs: %w", err)
	}
	o.ErrorIfNotExist = !create
	name := g.engine
	if name == "" {
		found, err := kvs.DetectEngine(nil, g.dir)
		switch {
		case err == nil:
			name = found
		case errors.Is(err, fs.ErrNotExist):
			name = "bitcask"
		default:
			return nil, "", err
		}
	}
	e, err := kvs.Open(name, g.dir, o)
	return e, name, err
}

// printJSON writes v as indented JSON.
func printJSON(w io.Writer, v any) error {
	enc := json.NewEncoder(w)
	enc.SetIndent("", "  ")
	return enc.Encode(v)
}

// withEngine opens the engine in --dir (see open), runs fn on it and
// closes it. It returns fn's error, or else Close's: a failed Close can
// mean lost writes, so it is never dropped.
func (g *globals) withEngine(cmd *cobra.Command, create bool, fn func(kvs.Engine) error) error {
	e, err := g.open(cmd, create)
	if err != nil {
		return err
	}
	err = fn(e)
	if cerr := e.Close(); err == nil {
		err = cerr
	}
	return err
}

func newEnginesCmd(g *globals) *cobra.Command {
	return &cobra.Command{
		Use:   "engines",
		Short: "List the engines this binary knows",
		Args:  cobra.NoArgs,
		RunE: func(cmd *cobra.Command, args []string) error {
			if g.json {
				return printJSON(cmd.OutOrStdout(), kvs.Engines())
			}
			for _, e := range kvs.Engines() {
				fmt.Fprintln(cmd.OutOrStdout(), e)
			}
			return nil
		},
	}
}
