package enginetest

import (
	"bufio"
	"fmt"
	"io"
	"maps"
	"math/rand"
	"os"
	"os/exec"
	"runtime"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/kvs-lab/kvs"
	"github.com/kvs-lab/kvs/internal/vfs"
)

// Environment variables that turn a re-executed test binary into the
// writer child of RunKillTest.
const (
	childDirEnv    = "KVS_ENGINETEST_CHILD_DIR"
	childEngineEnv = "KVS_ENGINETEST_CHILD_ENGINE"
	childSeedEnv   = "KVS_ENGINETEST_CHILD_SEED"
)

// childKeys is the key space of the kill test's writer.
const childKeys = 150

// RunKillTest checks durability against a real crash: it re-executes the
// test binary as a child process that opens c.Engine on the operating
// system's file system and writes with Sync in a loop, announcing each
// write before making it and acknowledging it after; the test kills the
// child with SIGKILL at a random moment (sometimes in the middle of a
// Compact), reopens the directory and checks that every acknowledged write
// is there, and nothing else but the one write that was in flight.
// Rounds share one directory, so each child resumes on what the last one
// left.
//
// Call it directly from a test function (or subtest): the child re-runs
// exactly that test, found by t.Name(), and RunKillTest, seeing the
// environment variables it set, runs the writer instead. It is skipped on
// Windows.
func RunKillTest(t *testing.T, c Config) {
	c = c.withDefaults()
	if dir := os.Getenv(childDirEnv); dir != "" {
		if os.Getenv(childEngineEnv) != c.Engine {
			t.Skipf("kill test child for engine %q", os.Getenv(childEngineEnv))
		}
		runKillChild(c, dir)
		return // not reached
	}
	if runtime.GOOS == "windows" {
		t.Skip("the kill test needs SIGKILL and flock")
	}
	seed := seeds(t, 1)[0]
	t.Logf("seed %d (replay with -enginetest.seed=%d)", seed, seed)
	defer func() {
		if t.Failed() {
			t.Logf("replay: go test -run '%s' -enginetest.seed=%d (kill timing varies between runs)", runPattern(t.Name()), seed)
		}
	}()
	rng := rand.New(rand.NewSource(seed))
	dir := t.TempDir()
	model := state{}
	var totalAcks int
	for round := 0; round < c.KillRounds; round++ {
		acks, err := killRound(t, c, dir, round, seed+int64(round)*1000, rng, model)
		if err != nil {
			t.Fatalf("round %d: %v", round, err)
		}
		totalAcks += acks
	}
	t.Logf("%d rounds, %d acknowledged writes, %d keys at the end", c.KillRounds, totalAcks, len(model))
	e, err := kvs.Open(c.Engine, dir, options(c.CrashOptions, vfs.Default))
	if err != nil {
		t.Fatalf("final open: %v", err)
	}
	checkState(t, e, model, nil)
	mustClose(t, e)
}

// killOp is one entry of a write the child announces: a put of the value
// token expands to, or a delete.
type killOp struct {
	del   bool
	key   string
	token string
}

// killValue expands a value token ("r3n57s800") into the value written.
func killValue(token string) string {
	i := strings.LastIndexByte(token, 's')
	size, _ := strconv.Atoi(token[i+1:])
	seed := 0
	for _, b := range []byte(token) {
		seed = seed*31 + int(b)
	}
	return token + "|" + pattern(size, seed)
}

// killRound runs one child, kills it and checks the directory. It updates
// model to the recovered contents and returns the number of acks seen.
func killRound(t testing.TB, c Config, dir string, round int, seed int64, rng *rand.Rand, model state) (int, error) {
	cmd := exec.Command(os.Args[0], "-test.run="+runPattern(t.Name()), "-test.count=1", "-test.timeout=5m")
	cmd.Env = append(os.Environ(),
		childDirEnv+"="+dir,
		childEngineEnv+"="+c.Engine,
		childSeedEnv+"="+strconv.FormatInt(seed, 10)+":"+strconv.Itoa(round),
	)
	stdin, err := cmd.StdinPipe()
	if err != nil {
		return 0, err
	}
	stdout, err := cmd.StdoutPipe()
	if err != nil {
		return 0, err
	}
	var stderr strings.Builder
	cmd.Stderr = &syncWriter{w: &stderr}
	if err := cmd.Start(); err != nil {
		return 0, err
	}
	defer stdin.Close()
	lines := make(chan string, 1024)
	go func() {
		sc := bufio.NewScanner(stdout)
		sc.Buffer(make([]byte, 64<<10), 1<<20)
		for sc.Scan() {
			lines <- sc.Text()
		}
		close(lines)
	}()

	acked := model.clone()
	var pending []killOp // announced, not yet acknowledged
	acks := 0
	exited := false
	handle := func(line string) error {
		f := strings.Fields(line)
		if len(f) == 0 {
			return nil
		}
		switch f[0] {
		case "try":
			ops, err := parseKillOps(f[2:])
			if err != nil {
				return fmt.Errorf("bad line %q: %v", line, err)
			}
			if pending != nil {
				return fmt.Errorf("child announced a write before the previous one was acknowledged")
			}
			pending = ops
		case "ack":
			if pending == nil {
				return fmt.Errorf("ack with no write in flight: %q", line)
			}
			applyKillOps(acked, pending)
			pending = nil
			acks++
		case "error":
			return fmt.Errorf("child: %s", line)
		}
		return nil
	}
	// wait reads lines until one starts with prefix (or the child ends).
	wait := func(prefix string, d time.Duration) (bool, error) {
		timer := time.NewTimer(d)
		defer timer.Stop()
		for {
			select {
			case line, ok := <-lines:
				if !ok {
					exited = true
					return false, nil
				}
				if err := handle(line); err != nil {
					return false, err
				}
				if prefix != "" && strings.HasPrefix(line, prefix) {
					return true, nil
				}
			case <-timer.C:
				return false, nil
			}
		}
	}
	fail := func(err error) (int, error) {
		cmd.Process.Kill()
		cmd.Wait()
		return 0, fmt.Errorf("%v\nchild stderr:\n%s", err, stderr.String())
	}
	ready, err := wait("ready", 60*time.Second)
	if err != nil {
		return fail(err)
	}
	if !ready {
		return fail(fmt.Errorf("child never opened the engine"))
	}
	delay := time.Duration(50+rng.Intn(250)) * time.Millisecond
	if rng.Intn(3) == 0 {
		// Kill in the middle of a Compact.
		if _, err := wait("", time.Duration(20+rng.Intn(80))*time.Millisecond); err != nil {
			return fail(err)
		}
		io.WriteString(stdin, "compact\n")
		if _, err := wait("compact-start", 10*time.Second); err != nil {
			return fail(err)
		}
		delay = time.Duration(rng.Intn(3000)) * time.Microsecond
	}
	if _, err := wait("", delay); err != nil {
		return fail(err)
	}
	if exited {
		return fail(fmt.Errorf("child exited before it was killed"))
	}
	if err := cmd.Process.Kill(); err != nil {
		return fail(fmt.Errorf("kill: %v", err))
	}
	for line := range lines {
		if err := handle(line); err != nil {
			return fail(err)
		}
	}
	cmd.Wait()
	if s := stderr.String(); strings.Contains(s, "DATA RACE") || strings.Contains(s, "panic:") {
		return 0, fmt.Errorf("child reported a problem:\n%s", s)
	}

	e, err := kvs.Open(c.Engine, dir, options(c.CrashOptions, vfs.Default))
	if err != nil {
		return 0, fmt.Errorf("open after SIGKILL: %v", err)
	}
	defer e.Close()
	got := readAll(t, e, nil)
	withPending := acked.clone()
	applyKillOps(withPending, pending)
	if !maps.Equal(got, acked) && !maps.Equal(got, withPending) {
		return 0, fmt.Errorf("after SIGKILL the directory holds neither the acknowledged writes nor those plus the one in flight (%v):\n%s",
			pending, diffStates(acked, got))
	}
	t.Logf("round %d: %d writes acknowledged before SIGKILL, in flight %v, recovered %d keys", round, acks, pending != nil, len(got))
	clear(model)
	maps.Copy(model, got)
	return acks, e.Close()
}

func parseKillOps(f []string) ([]killOp, error) {
	var ops []killOp
	for i := 0; i < len(f); {
		switch {
		case f[i] == "P" && i+2 < len(f):
			ops = append(ops, killOp{key: f[i+1], token: f[i+2]})
			i += 3
		case f[i] == "D" && i+1 < len(f):
			ops = append(ops, killOp{del: true, key: f[i+1]})
			i += 2
		default:
			return nil, fmt.Errorf("bad op at field %d", i)
		}
	}
	if len(ops) == 0 {
		return nil, fmt.Errorf("no ops")
	}
	return ops, nil
}

func applyKillOps(s state, ops []killOp) {
	for _, o := range ops {
		if o.del {
			delete(s, o.key)
		} else {
			s[o.key] = killValue(o.token)
		}
	}
}

type syncWriter struct {
	mu sync.Mutex
	w  io.Writer
}

func (s *syncWriter) Write(p []byte) (int, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.w.Write(p)
}

// runKillChild is the child's side: open the engine in dir and write with
// Sync until killed. It never returns.
func runKillChild(c Config, dir string) {
	var outMu sync.Mutex
	say := func(format string, args ...any) {
		outMu.Lock()
		defer outMu.Unlock()
		fmt.Fprintf(os.Stdout, format+"\n", args...)
	}
	die := func(format string, args ...any) {
		say("error "+format, args...)
		os.Exit(1)
	}
	var seed int64
	var round int
	if s := strings.SplitN(os.Getenv(childSeedEnv), ":", 2); len(s) == 2 {
		seed, _ = strconv.ParseInt(s[0], 10, 64)
		round, _ = strconv.Atoi(s[1])
	}
	rng := rand.New(rand.NewSource(seed))
	e, err := kvs.Open(c.Engine, dir, options(c.CrashOptions, vfs.Default))
	if err != nil {
		die("open: %v", err)
	}
	// The parent sends "compact" lines; its death closes stdin.
	go func() {
		sc := bufio.NewScanner(os.Stdin)
		for sc.Scan() {
			if sc.Text() == "compact" {
				go func() {
					say("compact-start")
					if err := e.Compact(); err != nil {
						die("compact: %v", err)
					}
					say("compact-done")
				}()
			}
		}
		os.Exit(3)
	}()
	go func() {
		time.Sleep(2 * time.Minute)
		die("not killed after 2 minutes")
	}()
	say("ready")
	key := func() string { return fmt.Sprintf("kk-%03d", rng.Intn(childKeys)) }
	for n := 0; ; n++ {
		token := func(j int) string {
			return fmt.Sprintf("r%dn%dj%ds%d", round, n, j, 10+rng.Intn(1500))
		}
		var b kvs.Batch
		var line strings.Builder
		fmt.Fprintf(&line, "try %d", n)
		entries := 1
		if rng.Intn(5) == 0 {
			entries = 2 + rng.Intn(4)
		}
		for j := 0; j < entries; j++ {
			k := key()
			if rng.Intn(5) == 0 {
				b.Delete([]byte(k))
				fmt.Fprintf(&line, " D %s", k)
			} else {
				tok := token(j)
				b.Put([]byte(k), []byte(killValue(tok)))
				fmt.Fprintf(&line, " P %s %s", k, tok)
			}
		}
		say("%s", line.String())
		if entries == 1 && rng.Intn(2) == 0 {
			// The same write through Put or Delete.
			kind, k, v, _ := func() (kvs.Kind, []byte, []byte, bool) { r := b.Reader(); return r.Next() }()
			if kind == kvs.KindDelete {
				err = e.Delete(k, kvs.Sync)
			} else {
				err = e.Put(k, v, kvs.Sync)
			}
		} else {
			err = e.Write(&b, kvs.Sync)
		}
		if err != nil {
			die("write %d: %v", n, err)
		}
		say("ack %d", n)
	}
}
