package main

import (
	"bytes"
	"encoding/json"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/kvs-lab/kvs"
)

// kvsRun runs one command line in-process and returns stdout, stderr and
// the exit status.
func kvsRun(t testing.TB, stdin string, args ...string) (string, string, int) {
	t.Helper()
	var out, errb bytes.Buffer
	code := run(args, strings.NewReader(stdin), &out, &errb)
	return out.String(), errb.String(), code
}

// mustRun runs a command that must succeed.
func mustRun(t testing.TB, args ...string) string {
	t.Helper()
	out, errs, code := kvsRun(t, "", args...)
	if code != 0 {
		t.Fatalf("kvs %s: exit %d, stderr: %s", strings.Join(args, " "), code, errs)
	}
	return out
}

func TestPutGetDelScriptContract(t *testing.T) {
	dir := filepath.Join(t.TempDir(), "db")
	mustRun(t, "put", "--engine", "bitcask", "--dir", dir, "greeting", "hello world")
	if out := mustRun(t, "get", "--engine", "bitcask", "--dir", dir, "greeting"); out != "hello world\n" {
		t.Fatalf("get printed %q, want the value and a newline", out)
	}
	// Without --engine the directory's ENGINE file decides.
	if out := mustRun(t, "get", "--dir", dir, "greeting"); out != "hello world\n" {
		t.Fatalf("get without --engine printed %q", out)
	}
	mustRun(t, "del", "--dir", dir, "greeting")
	out, errs, code := kvsRun(t, "", "get", "--dir", dir, "greeting")
	if code != 1 || out != "" || !strings.Contains(errs, "not found") {
		t.Fatalf("get of a deleted key: exit %d, stdout %q, stderr %q; want exit 1 and \"not found\" on stderr", code, out, errs)
	}
}

func TestLoadIsDeterministicForASeed(t *testing.T) {
	a, b := t.TempDir(), t.TempDir()
	for _, dir := range []string{a, b} {
		mustRun(t, "load", "--engine", "bitcask", "--dir", dir, "--count", "500", "--seed", "42", "--value-size", "20")
	}
	sa := mustRun(t, "scan", "--dir", a)
	sb := mustRun(t, "scan", "--dir", b)
	if sa != sb || strings.Count(sa, "\n") != 500 {
		t.Fatalf("two loads with one seed differ or miss keys (%d lines)", strings.Count(sa, "\n"))
	}
	c := t.TempDir()
	mustRun(t, "load", "--dir", c, "--count", "500", "--seed", "43", "--value-size", "20")
	if mustRun(t, "scan", "--dir", c) == sa {
		t.Fatal("a different seed wrote the same data")
	}
	var sum loadSummary
	if err := json.Unmarshal([]byte(mustRun(t, "load", "--dir", c, "--count", "10", "--json", "--version", "1", "--seed", "43", "--value-size", "20")), &sum); err != nil {
		t.Fatal(err)
	}
	if sum.Keys != 10 || sum.LiveKeys != 500 {
		t.Fatalf("load --json: %+v, want 10 keys written and 500 live", sum)
	}
}

func TestLoadFromStdin(t *testing.T) {
	dir := t.TempDir()
	_, errs, code := kvsRun(t, "a 1\nb\ttwo words\n\nc 3\n", "load", "--dir", dir, "--stdin")
	if code != 0 {
		t.Fatalf("load --stdin: %s", errs)
	}
	if out := mustRun(t, "scan", "--dir", dir); out != "a\t1\nb\ttwo words\nc\t3\n" {
		t.Fatalf("scan after stdin load = %q", out)
	}
	_, errs, code = kvsRun(t, "good 1\nlonely\n", "load", "--dir", dir, "--stdin")
	if code != 1 || !strings.Contains(errs, "line 2") {
		t.Fatalf("a line without a value: exit %d, stderr %q; want an error naming line 2", code, errs)
	}
}

func TestScanRangesPrefixLimitReverse(t *testing.T) {
	dir := t.TempDir()
	for _, k := range []string{"apple", "apricot", "banana", "blueberry", "cherry"} {
		mustRun(t, "put", "--dir", dir, "--sync", "none", k, strings.ToUpper(k))
	}
	cases := []struct {
		args []string
		want string
	}{
		{[]string{"--prefix", "ap", "--keys-only"}, "apple\napricot\n"},
		{[]string{"--start", "apricot", "--end", "blueberry", "--keys-only"}, "apricot\nbanana\n"},
		{[]string{"--limit", "2", "--keys-only"}, "apple\napricot\n"},
		{[]string{"--reverse", "--limit", "2", "--keys-only"}, "cherry\nblueberry\n"},
		{[]string{"--prefix", "b", "--start", "bb", "--keys-only"}, "blueberry\n"},
		{[]string{"--prefix", "c"}, "cherry\tCHERRY\n"},
		{[]string{"--prefix", "zz"}, ""},
	}
	for _, c := range cases {
		args := append([]string{"scan", "--dir", dir}, c.args...)
		if got := mustRun(t, args...); got != c.want {
			t.Errorf("kvs %s = %q, want %q", strings.Join(c.args, " "), got, c.want)
		}
	}
	var pairs []pair
	if err := json.Unmarshal([]byte(mustRun(t, "scan", "--dir", dir, "--json", "--prefix", "ch")), &pairs); err != nil {
		t.Fatal(err)
	}
	if len(pairs) != 1 || pairs[0].Key != "cherry" || pairs[0].Value != "CHERRY" {
		t.Fatalf("scan --json = %+v", pairs)
	}
}

func TestStatsCompactAndInspect(t *testing.T) {
	dir := t.TempDir()
	for v := 0; v < 3; v++ {
		mustRun(t, "load", "--dir", dir, "--count", "2000", "--version", string(rune('0'+v)), "--segment-size", "64KiB")
	}
	var st kvs.Stats
	if err := json.Unmarshal([]byte(mustRun(t, "stats", "--dir", dir, "--json")), &st); err != nil {
		t.Fatal(err)
	}
	if st.Engine != "bitcask" || st.LiveKeys != 2000 || len(st.Segments) < 3 {
		t.Fatalf("stats: engine %q, %d live keys, %d segments", st.Engine, st.LiveKeys, len(st.Segments))
	}
	human := mustRun(t, "stats", "--dir", dir)
	for _, want := range []string{"live keys", "space amplification", "segment"} {
		if !strings.Contains(human, want) {
			t.Errorf("stats output lacks %q:\n%s", want, human)
		}
	}
	var res map[string]any
	if err := json.Unmarshal([]byte(mustRun(t, "compact", "--dir", dir, "--json", "--segment-size", "64KiB")), &res); err != nil {
		t.Fatal(err)
	}
	if res["bytes_on_disk_after"].(float64) >= res["bytes_on_disk_before"].(float64) {
		t.Fatalf("compact did not shrink the directory: %v", res)
	}
	summary := mustRun(t, "inspect", "--dir", dir)
	if !strings.Contains(summary, "engine bitcask") || !strings.Contains(summary, ".hint") {
		t.Fatalf("inspect of the directory after merge lacks the engine or a hint file:\n%s", summary)
	}
	out := mustRun(t, "inspect", largestSegment(t, dir), "--limit", "3")
	if !strings.Contains(out, "OFFSET") || !strings.Contains(out, "ok") || !strings.Contains(out, "more (raise --limit)") {
		t.Fatalf("inspect of a segment:\n%s", out)
	}
}

func TestInspectReportsCorruptionWithOffset(t *testing.T) {
	dir := t.TempDir()
	mustRun(t, "load", "--dir", dir, "--count", "50", "--batch", "1")
	seg := largestSegment(t, dir)
	b, err := os.ReadFile(seg)
	if err != nil {
		t.Fatal(err)
	}
	b[len(b)/2] ^= 0x55
	if err := os.WriteFile(seg, b, 0o644); err != nil {
		t.Fatal(err)
	}
	out, errs, code := kvsRun(t, "", "inspect", seg)
	if code != 1 || !strings.Contains(out, "BAD") {
		t.Fatalf("inspect of a damaged segment: exit %d, stderr %q, stdout:\n%s", code, errs, out)
	}
	_, errs, code = kvsRun(t, "", "get", "--dir", dir, "anything")
	if code != 1 || !strings.Contains(errs, "corruption") || !strings.Contains(errs, filepath.Base(seg)) || !strings.Contains(errs, "offset") {
		t.Fatalf("opening a damaged directory: exit %d, stderr %q; want a corruption error naming file and offset", code, errs)
	}
}

func TestBadInputGivesClearErrors(t *testing.T) {
	dir := t.TempDir()
	mustRun(t, "put", "--dir", dir, "keep", "me")
	stray := t.TempDir()
	os.WriteFile(filepath.Join(stray, "notes.txt"), []byte("mine"), 0o644)
	cases := []struct {
		name string
		args []string
		code int
		want string
	}{
		{"empty key", []string{"put", "--dir", dir, "", "v"}, 1, "empty key"},
		{"oversized key", []string{"put", "--dir", dir, strings.Repeat("k", kvs.MaxKeySize+1), "v"}, 1, "key too large"},
		{"oversized value", []string{"put", "--dir", dir, "--max-value-size", "10", "k", "more than ten bytes"}, 1, "value too large"},
		{"missing directory", []string{"get", "--dir", filepath.Join(dir, "nope"), "k"}, 1, "does not exist"},
		{"non-kvs file", []string{"put", "--dir", stray, "k", "v"}, 1, "notes.txt"},
		{"no dir flag", []string{"get", "k"}, 2, "--dir is required"},
		{"bad sync mode", []string{"put", "--dir", dir, "--sync", "sometimes", "k", "v"}, 2, "--sync"},
		{"bad index", []string{"put", "--dir", dir, "--index", "trie", "k", "v"}, 2, "--index"},
		{"bad l1 size", []string{"put", "--dir", dir, "--l1-size", "0", "k", "v"}, 2, "--l1-size"},
		{"bad level multiplier", []string{"put", "--dir", dir, "--level-multiplier", "1", "k", "v"}, 2, "--level-multiplier"},
		{"bad block size", []string{"put", "--dir", dir, "--block-size", "big", "k", "v"}, 2, "--block-size"},
		{"bad bloom bits", []string{"put", "--dir", dir, "--bloom-bits", "-2", "k", "v"}, 2, "--bloom-bits"},
		{"bad cache size", []string{"put", "--dir", dir, "--cache-size", "-1MiB", "k", "v"}, 2, "--cache-size"},
		{"bad compression", []string{"put", "--dir", dir, "--compression", "zstd", "k", "v"}, 2, "--compression"},
		{"unknown engine", []string{"put", "--engine", "rocks", "--dir", t.TempDir(), "k", "v"}, 1, "unknown engine"},
		{"wrong arg count", []string{"get", "--dir", dir}, 2, "one KEY"},
		{"unknown command", []string{"frobnicate"}, 2, "unknown command"},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			_, errs, code := kvsRun(t, "", c.args...)
			if code != c.code || !strings.Contains(errs, c.want) {
				t.Fatalf("exit %d, stderr %q; want exit %d and %q", code, errs, c.code, c.want)
			}
		})
	}
	if out := mustRun(t, "get", "--dir", dir, "keep"); out != "me\n" {
		t.Fatalf("data changed by bad input: %q", out)
	}
	if b, _ := os.ReadFile(filepath.Join(stray, "notes.txt")); string(b) != "mine" {
		t.Fatal("stray file was touched")
	}
}

func TestDirectoryHeldByAnotherEngineIsRefused(t *testing.T) {
	dir := t.TempDir()
	e, err := kvs.Open("bitcask", dir, &kvs.Options{Logger: kvs.DiscardLogger()})
	if err != nil {
		t.Fatal(err)
	}
	defer e.Close()
	_, errs, code := kvsRun(t, "", "put", "--dir", dir, "k", "v")
	if code != 1 || !strings.Contains(errs, "locked") {
		t.Fatalf("exit %d, stderr %q; want a lock error", code, errs)
	}
}

func TestParseBytes(t *testing.T) {
	for in, want := range map[string]int64{"4096": 4096, "4KiB": 4096, "64MiB": 64 << 20, "1GiB": 1 << 30, "10MB": 10e6, "2k": 2048} {
		if got, err := parseBytes(in); err != nil || got != want {
			t.Errorf("parseBytes(%q) = %d, %v; want %d", in, got, err, want)
		}
	}
	for _, in := range []string{"", "abc", "4XB", "-1"} {
		if _, err := parseBytes(in); err == nil {
			t.Errorf("parseBytes(%q) accepted", in)
		}
	}
}

// largestSegment returns the path of the biggest data file in dir (a fresh
// active segment holds only its header).
func largestSegment(t testing.TB, dir string) string {
	t.Helper()
	segs, _ := filepath.Glob(filepath.Join(dir, "*.data"))
	best, size := "", int64(-1)
	for _, s := range segs {
		if st, err := os.Stat(s); err == nil && st.Size() > size {
			best, size = s, st.Size()
		}
	}
	if best == "" {
		t.Fatalf("no segments in %s", dir)
	}
	return best
}

// TestLSMFlagsShapeTheTree loads 20000 keys (about 2.2 MiB of keys and
// values) with 64 KiB memtables: the load must flush many times, so L0 and
// L1 together hold several tables. With the default 8 MiB memtable it
// would flush none.
func TestLSMFlagsShapeTheTree(t *testing.T) {
	dir := t.TempDir()
	mustRun(t, "load", "--engine", "lsm", "--dir", dir, "--count", "20000", "--no-progress",
		"--memtable-size", "64KiB", "--target-file-size", "128KiB", "--l0-trigger", "4")
	var st kvs.Stats
	if err := json.Unmarshal([]byte(mustRun(t, "stats", "--dir", dir, "--json", "--memtable-size", "64KiB")), &st); err != nil {
		t.Fatal(err)
	}
	if st.Engine != "lsm" || len(st.Levels) < 2 {
		t.Fatalf("stats: engine %q with %d levels", st.Engine, len(st.Levels))
	}
	if n := st.Levels[0].Files + st.Levels[1].Files; n < 3 {
		t.Fatalf("L0 and L1 hold %d tables after loading 2.2 MiB through 64 KiB memtables: %+v", n, st.Levels)
	}
	human := mustRun(t, "stats", "--dir", dir, "--memtable-size", "64KiB")
	for _, want := range []string{"level", "L0", "L1", "compactions"} {
		if !strings.Contains(human, want) {
			t.Errorf("stats output lacks %q:\n%s", want, human)
		}
	}
	if _, errs, code := kvsRun(t, "", "stats", "--dir", dir, "--memtable-size", "lots"); code == 0 || !strings.Contains(errs, "--memtable-size") {
		t.Errorf("a bad --memtable-size: exit %d, stderr %q", code, errs)
	}
}

// TestLSMTableFlagsReachTheTables loads through small memtables with and
// without --bloom-bits -1 --block-size 1KiB --compression none and reads
// the flushed tables' properties back with kvs inspect.
func TestLSMTableFlagsReachTheTables(t *testing.T) {
	type props struct {
		Properties struct {
			DataBlocks  int     `json:"data_blocks"`
			DataBytes   int     `json:"data_bytes"`
			FilterBytes int     `json:"filter_bytes"`
			Compression float64 `json:"compression_ratio"`
		} `json:"properties"`
	}
	load := func(extra ...string) props {
		t.Helper()
		dir := t.TempDir()
		args := append([]string{"load", "--engine", "lsm", "--dir", dir, "--count", "5000", "--no-progress", "--memtable-size", "64KiB"}, extra...)
		mustRun(t, args...)
		tables, _ := filepath.Glob(filepath.Join(dir, "*.sst"))
		if len(tables) == 0 {
			t.Fatalf("kvs %v left no tables", args)
		}
		var p props
		if err := json.Unmarshal([]byte(mustRun(t, "inspect", "--json", tables[0])), &p); err != nil {
			t.Fatal(err)
		}
		return p
	}
	def := load()
	if def.Properties.FilterBytes == 0 || def.Properties.DataBytes/def.Properties.DataBlocks < 2<<10 {
		t.Fatalf("default tables: %+v; want a filter and ~4 KiB blocks", def.Properties)
	}
	p := load("--bloom-bits", "-1", "--block-size", "1KiB", "--compression", "none")
	if p.Properties.FilterBytes != 0 || p.Properties.DataBytes/p.Properties.DataBlocks > 2<<10 || p.Properties.Compression > 1 {
		t.Fatalf("tables with --bloom-bits -1 --block-size 1KiB --compression none: %+v", p.Properties)
	}
}

// TestCompactionPolicyStaysWithTheDirectory loads with --compaction tiered
// and checks that later commands without the flag keep that policy.
func TestCompactionPolicyStaysWithTheDirectory(t *testing.T) {
	dir := t.TempDir()
	mustRun(t, "load", "--engine", "lsm", "--dir", dir, "--count", "2000", "--no-progress", "--compaction", "tiered")
	var st kvs.Stats
	if err := json.Unmarshal([]byte(mustRun(t, "stats", "--dir", dir, "--json")), &st); err != nil {
		t.Fatal(err)
	}
	if st.Compaction != "tiered" {
		t.Fatalf("stats without --compaction after a tiered load: policy %q", st.Compaction)
	}
	if out := mustRun(t, "stats", "--dir", dir); !strings.Contains(out, "lsm (compaction tiered)") {
		t.Fatalf("stats does not name the policy:\n%s", out)
	}
}
