package bench

import (
	"bytes"
	"fmt"
	"math/rand/v2"
	"os"
	"path/filepath"
	"strings"
	"time"

	"github.com/kvs-lab/kvs"
	"github.com/kvs-lab/kvs/internal/vfs"
)

// EngineSpec names an engine and a variant of its options, written
// "engine" or "engine/variant" (bitcask/hash, bitcask/btree, lsm/tiered).
type EngineSpec struct {
	Label   string // as the user wrote it, used in tables
	Engine  string // registered engine name
	Options *kvs.Options
}

// ParseEngineSpec turns "bitcask" or "bitcask/btree" into an EngineSpec.
func ParseEngineSpec(s string) (EngineSpec, error) {
	name, variant, _ := strings.Cut(s, "/")
	spec := EngineSpec{Label: s, Engine: name, Options: &kvs.Options{}}
	switch name {
	case "bitcask":
		switch variant {
		case "", kvs.IndexHash:
			spec.Options.Bitcask.Index = kvs.IndexHash
			spec.Label = "bitcask/hash"
		case kvs.IndexBTree:
			spec.Options.Bitcask.Index = kvs.IndexBTree
		default:
			return spec, fmt.Errorf("bench: engine %q: bitcask variant must be %q or %q", s, kvs.IndexHash, kvs.IndexBTree)
		}
	case "lsm":
		switch variant {
		case "", kvs.CompactionLeveled:
			spec.Label = "lsm"
		case kvs.CompactionTiered:
			spec.Options.LSM.Compaction = kvs.CompactionTiered
		default:
			return spec, fmt.Errorf("bench: engine %q: lsm variant must be %q or %q", s, kvs.CompactionLeveled, kvs.CompactionTiered)
		}
	default:
		if variant != "" {
			return spec, fmt.Errorf("bench: engine %q: %s has no variants", s, name)
		}
	}
	for _, e := range kvs.Engines() {
		if e == name {
			return spec, nil
		}
	}
	return spec, fmt.Errorf("bench: unknown engine %q (registered: %s)", name, strings.Join(kvs.Engines(), ", "))
}

// QuickConfig is the quick comparison's data set.
type QuickConfig struct {
	Engines []EngineSpec
	Count   int // keys loaded
	Reads   int // random Gets after loading (default Count)
	Gen     Gen
	// Dir is where each engine's directory is made (a temporary directory
	// when empty); the directories are removed afterwards.
	Dir string
	// Progress, when set, is told the engine, phase and progress now and
	// then.
	Progress func(engine, phase string, done, total int)
}

// QuickResult is one engine's row of the quick comparison.
type QuickResult struct {
	Label          string
	Count          int
	Fill           time.Duration // Count puts in random key order, no sync
	Read           time.Duration // Reads random Gets, every value checked
	Reads          int
	Scan           time.Duration // one full forward iteration
	Reopen         time.Duration // Close then Open: recovery time
	StatsAfterFill kvs.Stats
}

// LiveBytes is the key and value bytes of the data set: every key loaded
// is live, so this is what space amplification divides by, whether or not
// the engine's Stats can count live data.
func (r QuickResult) LiveBytes(g Gen) int64 { return int64(r.Count) * int64(g.KeySize+g.ValueSize) }

// SpaceAmp is bytes on disk after the fill over LiveBytes.
func (r QuickResult) SpaceAmp(g Gen) float64 {
	return float64(r.StatsAfterFill.BytesOnDisk) / float64(r.LiveBytes(g))
}

// FillOpsPerSec, ReadOpsPerSec and ScanKeysPerSec are the result's rates.
func (r QuickResult) FillOpsPerSec() float64 { return rate(r.Count, r.Fill) }

// ReadOpsPerSec is random Gets per second.
func (r QuickResult) ReadOpsPerSec() float64 { return rate(r.Reads, r.Read) }

// ScanKeysPerSec is keys per second of a full scan.
func (r QuickResult) ScanKeysPerSec() float64 { return rate(r.Count, r.Scan) }

func rate(n int, d time.Duration) float64 {
	if d <= 0 {
		return 0
	}
	return float64(n) / d.Seconds()
}

// RunQuick loads cfg.Count keys into each engine, reads them back at
// random, scans them, reopens the engine, and returns one row per engine.
// Every value read is compared with what was written: a wrong value is an
// error, not a number.
func RunQuick(cfg QuickConfig) ([]QuickResult, error) {
	if err := cfg.Gen.Validate(); err != nil {
		return nil, err
	}
	if cfg.Count <= 0 {
		return nil, fmt.Errorf("bench: key count %d must be positive", cfg.Count)
	}
	if cfg.Reads == 0 {
		cfg.Reads = cfg.Count
	}
	parent := cfg.Dir
	if parent == "" {
		tmp, err := os.MkdirTemp("", "kvs-bench-")
		if err != nil {
			return nil, fmt.Errorf("bench: make temporary directory: %w", err)
		}
		defer vfs.Default.RemoveAll(tmp)
		parent = tmp
	}
	var out []QuickResult
	for i, spec := range cfg.Engines {
		dir := filepath.Join(parent, fmt.Sprintf("%02d-%s", i, strings.ReplaceAll(spec.Label, "/", "-")))
		r, err := runQuickOne(cfg, spec, dir)
		vfs.Default.RemoveAll(dir)
		if err != nil {
			return out, fmt.Errorf("bench: %s: %w", spec.Label, err)
		}
		out = append(out, r)
	}
	return out, nil
}

func runQuickOne(cfg QuickConfig, spec EngineSpec, dir string) (QuickResult, error) {
	res := QuickResult{Label: spec.Label, Count: cfg.Count, Reads: cfg.Reads}
	progress := func(phase string, done, total int) {
		if cfg.Progress != nil {
			cfg.Progress(spec.Label, phase, done, total)
		}
	}
	opts := spec.Options.Clone()
	opts.Logger = kvs.DiscardLogger()
	e, err := kvs.Open(spec.Engine, dir, opts)
	if err != nil {
		return res, err
	}
	defer func() {
		if e != nil {
			e.Close()
		}
	}()
	g := cfg.Gen
	key := make([]byte, 0, g.KeySize)
	val := make([]byte, 0, g.ValueSize)

	start := time.Now()
	for i := 0; i < cfg.Count; i++ {
		key = g.Key(key[:0], uint64(i))
		val = g.Value(val[:0], uint64(i), 0)
		if err := e.Put(key, val, kvs.NoSync); err != nil {
			return res, fmt.Errorf("fill: put %q: %w", key, err)
		}
		if i%8192 == 0 {
			progress("fill", i, cfg.Count)
		}
	}
	res.Fill = time.Since(start)
	res.StatsAfterFill = e.Stats()

	rng := rand.New(rand.NewPCG(g.Seed, 0x5eed))
	start = time.Now()
	for n := 0; n < cfg.Reads; n++ {
		i := uint64(rng.IntN(cfg.Count))
		key = g.Key(key[:0], i)
		got, err := e.Get(key)
		if err != nil {
			return res, fmt.Errorf("read: get %q: %w", key, err)
		}
		val = g.Value(val[:0], i, 0)
		if !bytes.Equal(got, val) {
			return res, fmt.Errorf("read: get %q returned a wrong value", key)
		}
		if n%8192 == 0 {
			progress("read", n, cfg.Reads)
		}
	}
	res.Read = time.Since(start)

	start = time.Now()
	it, err := e.NewIter(nil)
	if err != nil {
		return res, err
	}
	n := 0
	var prev []byte
	for ok := it.First(); ok; ok = it.Next() {
		if prev != nil && bytes.Compare(prev, it.Key()) >= 0 {
			it.Close()
			return res, fmt.Errorf("scan: key %q after %q is out of order", it.Key(), prev)
		}
		prev = append(prev[:0], it.Key()...)
		n++
	}
	if err := it.Close(); err != nil {
		return res, fmt.Errorf("scan: %w", err)
	}
	res.Scan = time.Since(start)
	if n != cfg.Count {
		return res, fmt.Errorf("scan: saw %d keys, loaded %d", n, cfg.Count)
	}
	progress("scan", n, cfg.Count)

	if err := e.Close(); err != nil {
		return res, err
	}
	e = nil
	start = time.Now()
	e, err = kvs.Open(spec.Engine, dir, opts)
	if err != nil {
		return res, fmt.Errorf("reopen: %w", err)
	}
	res.Reopen = time.Since(start)
	// Check a sample of keys after the reopen: recovery must have found
	// them all (every key's value is known from its index).
	for n := 0; n < min(cfg.Count, 1000); n++ {
		i := uint64(rng.IntN(cfg.Count))
		key = g.Key(key[:0], i)
		got, err := e.Get(key)
		if err != nil {
			return res, fmt.Errorf("reopen: get %q: %w", key, err)
		}
		if val = g.Value(val[:0], i, 0); !bytes.Equal(got, val) {
			return res, fmt.Errorf("reopen: get %q returned a wrong value", key)
		}
	}
	err = e.Close()
	e = nil
	return res, err
}
