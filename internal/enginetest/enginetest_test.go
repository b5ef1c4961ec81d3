package enginetest

import (
	"os"
	"os/exec"
	"strings"
	"testing"
)

// TestReferenceEnginePassesSuite runs the whole suite on refEngine, a
// simple engine that keeps the contract: the suite must not fail a correct
// engine.
func TestReferenceEnginePassesSuite(t *testing.T) {
	Run(t, Config{Engine: "enginetest-ref"})
}

// TestReferenceEngineSurvivesKill runs the real-process kill test on
// refEngine.
func TestReferenceEngineSurvivesKill(t *testing.T) {
	RunKillTest(t, Config{Engine: "enginetest-ref"})
}

// mutantEnv names the broken engine TestMutantHarness runs the suite on.
const mutantEnv = "KVS_ENGINETEST_MUTANT"

// TestMutantHarness runs the suite on a broken engine in a child process
// started by TestSuiteCatchesBrokenEngines; alone it skips.
func TestMutantHarness(t *testing.T) {
	name := os.Getenv(mutantEnv)
	if name == "" {
		t.Skip("runs only as the child of TestSuiteCatchesBrokenEngines")
	}
	Run(t, Config{Engine: name, FaultPoints: 200})
}

// TestSuiteCatchesBrokenEngines runs the suite on mutants of refEngine,
// each with one bug, and checks that the subtest meant to catch the bug
// fails.
func TestSuiteCatchesBrokenEngines(t *testing.T) {
	if os.Getenv(mutantEnv) != "" {
		t.Skip("in a mutant child")
	}
	for _, tc := range []struct {
		engine string
		run    string   // subtests to run
		fails  []string // subtests that must fail
	}{
		{"enginetest-mutant-ignoresync", "CrashRecovery|GroupCommit", []string{"CrashRecovery", "GroupCommit"}},
		{"enginetest-mutant-splitbatch", "CrashRecovery", []string{"CrashRecovery"}},
		{"enginetest-mutant-liveviews", "Iterators|Snapshots|Batches", []string{"Iterators", "Snapshots"}},
		{"enginetest-mutant-swallowsync", "IOErrors", []string{"IOErrors"}},
		{"enginetest-mutant-aliasget", "PointOps", []string{"PointOps"}},
		{"enginetest-mutant-lostclose", "Reopen", []string{"Reopen"}},
		{"enginetest-mutant-keepgoing", "IOErrors", []string{"IOErrors"}},
	} {
		t.Run(tc.engine, func(t *testing.T) {
			t.Parallel()
			cmd := exec.Command(os.Args[0], "-test.run=^TestMutantHarness$/^("+tc.run+")$", "-test.v", "-test.count=1", "-test.short")
			cmd.Env = append(os.Environ(), mutantEnv+"="+tc.engine)
			out, err := cmd.CombinedOutput()
			if err == nil {
				t.Fatalf("the suite passed an engine with a bug (%s):\n%s", tc.engine, tail(out))
			}
			for _, f := range tc.fails {
				if !strings.Contains(string(out), "--- FAIL: TestMutantHarness/"+f) {
					t.Errorf("subtest %s did not fail on %s:\n%s", f, tc.engine, tail(out))
				}
			}
			if strings.Contains(string(out), "panic:") {
				t.Errorf("the suite panicked on %s:\n%s", tc.engine, tail(out))
			}
		})
	}
}

func tail(out []byte) string {
	s := string(out)
	if len(s) > 6000 {
		s = "..." + s[len(s)-6000:]
	}
	return s
}

// TestHistoryAllowsExactlySyncedPrefixes checks the prefix rule the crash
// tests rely on.
func TestHistoryAllowsExactlySyncedPrefixes(t *testing.T) {
	put := func(k, v string) op { return op{key: k, value: v} }
	del := func(k string) op { return op{del: true, key: k} }
	h := newHistory(state{"a": "0"})
	h.add(write{ops: []op{put("a", "1")}, acked: true})
	h.add(write{ops: []op{put("b", "1"), del("a")}, acked: true})
	h.add(write{ops: []op{put("c", "1")}, acked: true})
	for _, tc := range []struct {
		got  state
		want bool
	}{
		{state{"a": "0"}, true},                      // nothing since the base
		{state{"a": "1"}, true},                      // first write
		{state{"b": "1"}, true},                      // two writes
		{state{"b": "1", "c": "1"}, true},            // all
		{state{"a": "1", "b": "1"}, false},           // half of the batch
		{state{"a": "0", "c": "1"}, false},           // not a prefix
		{state{}, false},                             // lost the base
		{state{"b": "1", "c": "1", "d": "1"}, false}, // invented
	} {
		if _, ok := h.match(tc.got); ok != tc.want {
			t.Errorf("before any sync: match(%v) = %v, want %v", tc.got, ok, tc.want)
		}
	}
	h.add(write{ops: []op{put("d", "1")}, sync: true, acked: true})
	if _, ok := h.match(state{"b": "1", "c": "1"}); ok {
		t.Errorf("after a synced write: an outcome without it matched")
	}
	if _, ok := h.match(state{"b": "1", "c": "1", "d": "1"}); !ok {
		t.Errorf("after a synced write: the full outcome did not match")
	}
	// An unacknowledged write may or may not apply, also with acknowledged
	// writes after it.
	h.add(write{ops: []op{put("e", "1")}, acked: false})
	h.add(write{ops: []op{put("f", "1")}, sync: true, acked: true})
	base := state{"b": "1", "c": "1", "d": "1"}
	with := func(kv ...string) state {
		s := base.clone()
		for i := 0; i < len(kv); i += 2 {
			s[kv[i]] = kv[i+1]
		}
		return s
	}
	for _, tc := range []struct {
		got  state
		want bool
	}{
		{with("f", "1"), true},
		{with("e", "1", "f", "1"), true},
		{with("e", "1"), false}, // the synced write after it is missing
		{base, false},
	} {
		if _, ok := h.match(tc.got); ok != tc.want {
			t.Errorf("with an unacknowledged write: match(%v) = %v, want %v", tc.got, ok, tc.want)
		}
	}
	h.durable(with("f", "1"))
	if _, ok := h.match(with("f", "1")); !ok || len(h.log) != 0 {
		t.Errorf("after durable: the durable state did not match or the log is not empty")
	}
}

// TestModelIterMatchesDefinition checks the reference iterator's seeks
// against their definitions.
func TestModelIterMatchesDefinition(t *testing.T) {
	s := state{"b": "", "d": "", "f": ""}
	m := newModelIter(s, []byte("c"), []byte("f"))
	if !m.First() || m.Key() != "d" || m.Next() {
		t.Errorf("[c, f) over b d f: want exactly d")
	}
	if !m.SeekGE([]byte("a")) || m.Key() != "d" {
		t.Errorf("SeekGE(a) in [c, f): want d")
	}
	if m.SeekLT([]byte("d")) {
		t.Errorf("SeekLT(d) in [c, f): want exhausted, got %s", m.Key())
	}
	if !m.SeekLT([]byte("z")) || m.Key() != "d" {
		t.Errorf("SeekLT(z) in [c, f): want d")
	}
	m = newModelIter(s, nil, nil)
	if !m.Last() || m.Key() != "f" || !m.Prev() || m.Key() != "d" || !m.Next() || m.Key() != "f" {
		t.Errorf("Last, Prev, Next over b d f: want f d f")
	}
}
