package main

import (
	"bufio"
	"encoding/csv"
	"fmt"
	"io"
	"net"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"

	"github.com/kvs-lab/kvs"
)

// serveArgsEnv carries the kvs serve command line, separated by 0x1f (the
// ASCII unit separator), to the child process TestServeChild runs.
const serveArgsEnv = "KVS_TEST_SERVE_ARGS"

// TestServeChild is not a test on its own: startServe runs the test binary
// again with serveArgsEnv set, and this function then runs kvs with those
// arguments and exits with its status.
func TestServeChild(t *testing.T) {
	args := os.Getenv(serveArgsEnv)
	if args == "" {
		t.Skip("runs only as the child of startServe")
	}
	os.Exit(run(strings.Split(args, "\x1f"), os.Stdin, os.Stdout, os.Stderr))
}

// servedKVS is a kvs serve process started by startServe.
type servedKVS struct {
	cmd    *exec.Cmd
	port   string
	stderr *strings.Builder
	exited chan error
}

// freePort returns a loopback port nothing listens on at the moment.
func freePort(t testing.TB) string {
	t.Helper()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer ln.Close()
	_, port, _ := net.SplitHostPort(ln.Addr().String())
	return port
}

// startServe runs `kvs serve --addr 127.0.0.1:PORT args...` in a child
// process and waits until it answers a PING.
func startServe(t *testing.T, args ...string) *servedKVS {
	t.Helper()
	port := freePort(t)
	return startKVS(t, port, append([]string{"serve", "--addr", "127.0.0.1:" + port}, args...)...)
}

// startKVS runs `kvs all...` in a child process and waits until the Redis
// port it was given answers a PING.
func startKVS(t *testing.T, port string, all ...string) *servedKVS {
	t.Helper()
	s := &servedKVS{port: port, stderr: &strings.Builder{}, exited: make(chan error, 1)}
	s.cmd = exec.Command(os.Args[0], "-test.run", "^TestServeChild$")
	s.cmd.Env = append(os.Environ(), serveArgsEnv+"="+strings.Join(all, "\x1f"))
	s.cmd.Stderr = s.stderr
	if err := s.cmd.Start(); err != nil {
		t.Fatal(err)
	}
	go func() { s.exited <- s.cmd.Wait() }()
	t.Cleanup(func() {
		s.cmd.Process.Kill()
		<-s.exited
	})
	deadline := time.Now().Add(20 * time.Second)
	for {
		if c, err := net.DialTimeout("tcp", "127.0.0.1:"+s.port, time.Second); err == nil {
			c.SetDeadline(time.Now().Add(5 * time.Second))
			fmt.Fprint(c, "PING\r\n")
			line, err := bufio.NewReader(c).ReadString('\n')
			c.Close()
			if err == nil && line == "+PONG\r\n" {
				return s
			}
		}
		select {
		case err := <-s.exited:
			t.Fatalf("kvs serve exited before answering: %v\n%s", err, s.stderr)
		default:
		}
		if time.Now().After(deadline) {
			t.Fatalf("kvs serve did not answer PING within 20s\n%s", s.stderr)
		}
		time.Sleep(50 * time.Millisecond)
	}
}

// stop sends sig and waits for the process to exit, returning its error.
func (s *servedKVS) stop(t *testing.T, sig syscall.Signal) error {
	t.Helper()
	s.cmd.Process.Signal(sig)
	select {
	case err := <-s.exited:
		s.exited <- err // for the cleanup
		return err
	case <-time.After(30 * time.Second):
		t.Fatalf("kvs serve did not exit within 30s of %v\n%s", sig, s.stderr)
		return nil
	}
}

// needTool returns the path of a redis-tools program. Without it the test
// is skipped, except in CI, where .ci/run installs redis-tools and a
// missing tool is a failure.
func needTool(t *testing.T, name string) string {
	t.Helper()
	path, err := exec.LookPath(name)
	if err != nil {
		if os.Getenv("CI") != "" {
			t.Fatalf("%s not found: .ci/run installs redis-tools", name)
		}
		t.Skipf("%s not installed (apt-get install redis-tools)", name)
	}
	return path
}

// cli runs redis-cli against s with args and returns its output.
func (s *servedKVS) cli(t *testing.T, args ...string) string {
	t.Helper()
	all := append([]string{"-p", s.port, "--no-auth-warning"}, args...)
	out, err := exec.Command(needTool(t, "redis-cli"), all...).CombinedOutput()
	if err != nil {
		t.Fatalf("redis-cli %s: %v\n%s", strings.Join(args, " "), err, out)
	}
	return strings.TrimRight(string(out), "\n")
}

// TestServeAnswersRedisCLI runs kvs serve on each engine and drives it with
// redis-cli and a short redis-benchmark, then stops it with SIGTERM and
// checks the data is on disk.
func TestServeAnswersRedisCLI(t *testing.T) {
	needTool(t, "redis-cli")
	needTool(t, "redis-benchmark")
	for _, engine := range []string{"bitcask", "lsm"} {
		t.Run(engine, func(t *testing.T) {
			dir := t.TempDir()
			s := startServe(t, "--engine", engine, "--dir", dir)
			for _, c := range []struct {
				args []string
				want string
			}{
				{[]string{"PING"}, "PONG"},
				{[]string{"ECHO", "hello"}, "hello"},
				{[]string{"SET", "greeting", "hello world"}, "OK"},
				{[]string{"GET", "greeting"}, "hello world"},
				{[]string{"SET", "greeting", "again", "NX"}, ""},
				{[]string{"APPEND", "greeting", "!"}, "12"},
				{[]string{"STRLEN", "greeting"}, "12"},
				{[]string{"INCR", "counter"}, "1"},
				{[]string{"INCRBY", "counter", "41"}, "42"},
				{[]string{"DECR", "counter"}, "41"},
				{[]string{"MSET", "a", "1", "b", "2", "c", "3"}, "OK"},
				{[]string{"MGET", "a", "b", "missing", "c"}, "1\n2\n\n3"},
				{[]string{"EXISTS", "a", "b", "missing"}, "2"},
				{[]string{"DEL", "c", "missing"}, "1"},
				{[]string{"DBSIZE"}, "4"},
				{[]string{"SCAN", "0", "COUNT", "100"}, "0\na\nb\ncounter\ngreeting"},
				{[]string{"SCAN", "0", "MATCH", "g*"}, "0\ngreeting"},
				{[]string{"SELECT", "0"}, "OK"},
				{[]string{"NOSUCH", "x"}, "ERR unknown command 'NOSUCH', with args beginning with: 'x' "},
				{[]string{"GET"}, "ERR wrong number of arguments for 'get' command"},
			} {
				if got := s.cli(t, c.args...); got != c.want {
					t.Errorf("redis-cli %s = %q, want %q", strings.Join(c.args, " "), got, c.want)
				}
			}
			if info := s.cli(t, "INFO"); !strings.Contains(info, "engine:"+engine) {
				t.Errorf("INFO does not name the engine %s:\n%s", engine, info)
			}

			// A short redis-benchmark: it must complete every request and
			// report a throughput for SET and GET.
			out, err := exec.Command(needTool(t, "redis-benchmark"), "-p", s.port, "-t", "set,get", "-n", "5000",
				"-c", "20", "-P", "4", "-d", "100", "-r", "10000", "--csv").CombinedOutput()
			if err != nil {
				t.Fatalf("redis-benchmark: %v\n%s", err, out)
			}
			if strings.Contains(string(out), "WARNING") {
				t.Errorf("redis-benchmark warned (it asks CONFIG GET save and appendonly first):\n%s", out)
			}
			rps := parseBenchmarkCSV(t, string(out))
			for _, test := range []string{"SET", "GET"} {
				if rps[test] <= 0 {
					t.Errorf("redis-benchmark reported no %s throughput:\n%s", test, out)
				}
			}
			// redis-benchmark writes keys key:000000000123 and so on; with
			// -r 10000 some of them exist now.
			if n, _ := strconv.Atoi(s.cli(t, "DBSIZE")); n <= 4 {
				t.Errorf("DBSIZE after redis-benchmark = %d, want more than the 4 keys set before", n)
			}

			// SIGTERM: a graceful shutdown, exit status 0, engine closed.
			if err := s.stop(t, syscall.SIGTERM); err != nil {
				t.Fatalf("kvs serve after SIGTERM: %v\n%s", err, s.stderr)
			}
			if got := mustRun(t, "get", "--dir", dir, "greeting"); got != "hello world!\n" {
				t.Fatalf("after shutdown, kvs get greeting = %q", got)
			}
		})
	}
}

// parseBenchmarkCSV reads redis-benchmark --csv output into requests per
// second by test name.
func parseBenchmarkCSV(t *testing.T, out string) map[string]float64 {
	t.Helper()
	r := csv.NewReader(strings.NewReader(out))
	r.FieldsPerRecord = -1
	rows, err := r.ReadAll()
	if err != nil {
		t.Fatalf("redis-benchmark --csv output: %v\n%s", err, out)
	}
	rps := map[string]float64{}
	for _, row := range rows {
		if len(row) < 2 || row[0] == "test" {
			continue
		}
		v, err := strconv.ParseFloat(row[1], 64)
		if err != nil {
			t.Fatalf("redis-benchmark --csv row %q: %v", row, err)
		}
		rps[row[0]] = v
	}
	return rps
}

// TestServeShutdownCommand checks that SHUTDOWN from a client stops the
// server cleanly (exit status 0) with the data on disk, under the lsm
// engine and --sync none: the close syncs what was not.
func TestServeShutdownCommand(t *testing.T) {
	dir := t.TempDir()
	s := startServe(t, "--engine", "lsm", "--dir", dir, "--sync", "none")
	c, err := net.Dial("tcp", "127.0.0.1:"+s.port)
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close()
	c.SetDeadline(time.Now().Add(10 * time.Second))
	fmt.Fprint(c, "*3\r\n$3\r\nSET\r\n$1\r\nk\r\n$5\r\nvalue\r\n*1\r\n$8\r\nSHUTDOWN\r\n")
	if line, err := bufio.NewReader(c).ReadString('\n'); err != nil || line != "+OK\r\n" {
		t.Fatalf("SET before SHUTDOWN: %q, %v", line, err)
	}
	select {
	case err := <-s.exited:
		s.exited <- err
		if err != nil {
			t.Fatalf("kvs serve after SHUTDOWN: %v\n%s", err, s.stderr)
		}
	case <-time.After(30 * time.Second):
		t.Fatalf("kvs serve still running 30s after SHUTDOWN\n%s", s.stderr)
	}
	if got := mustRun(t, "get", "--dir", dir, "k"); got != "value\n" {
		t.Fatalf("after SHUTDOWN, kvs get k = %q", got)
	}
}

// TestServeConfigFile checks --config: its keys are flag names, the
// command line wins, and a bad file is refused before any engine opens.
func TestServeConfigFile(t *testing.T) {
	tmp := t.TempDir()
	write := func(name, text string) string {
		p := filepath.Join(tmp, name)
		if err := os.WriteFile(p, []byte(text), 0o644); err != nil {
			t.Fatal(err)
		}
		return p
	}
	dir := filepath.Join(tmp, "db")
	for _, c := range []struct {
		name, config string
		args         []string
		want         string
	}{
		{"unknown key", "adr = \"127.0.0.1:1\"\n", nil, `unknown key "adr"`},
		{"bad value", "max-clients = \"many\"\n", nil, `key "max-clients": "many"`},
		{"table", "[engine]\nname = \"lsm\"\n", nil, `key "engine"`},
		{"not toml", "addr = \n", nil, "--config"},
		{"bad sync", "sync = \"sometimes\"\n", nil, `key "sync": --sync: `},
		{"non-loopback", "addr = \"0.0.0.0:6380\"\n", nil, "loopback"},
		{"bad size", "memtable-size = \"lots\"\n", nil, `key "memtable-size": --memtable-size: `},
	} {
		t.Run(c.name, func(t *testing.T) {
			p := write(strings.ReplaceAll(c.name, " ", "_")+".toml", c.config)
			args := append([]string{"serve", "--config", p, "--dir", dir}, c.args...)
			_, errs, code := kvsRun(t, "", args...)
			if code != 2 || !strings.Contains(errs, c.want) {
				t.Fatalf("kvs %s: exit %d, stderr %q; want exit 2 naming %q", strings.Join(args, " "), code, errs, c.want)
			}
			if _, err := os.Stat(dir); err == nil {
				t.Fatalf("a refused configuration created %s", dir)
			}
		})
	}

	// The file sets the engine and sync mode; the command line's --addr
	// wins over the file's.
	p := write("good.toml", "engine = \"lsm\"\nsync = \"none\"\naddr = \"127.0.0.1:1\"\nlog-format = \"json\"\n")
	s := startServe(t, "--config", p, "--dir", dir) // startServe passes --addr first
	s.cli(t, "SET", "k", "v")
	if info := s.cli(t, "INFO", "engine"); !strings.Contains(info, "engine:lsm") {
		t.Fatalf("the config file's engine did not reach the server:\n%s", info)
	}
	if err := s.stop(t, syscall.SIGINT); err != nil {
		t.Fatalf("kvs serve after SIGINT: %v\n%s", err, s.stderr)
	}
	if !strings.Contains(s.stderr.String(), `"level":"info"`) {
		t.Errorf("log-format = \"json\" from the file: stderr is not JSON lines:\n%s", s.stderr)
	}
}

// TestServeTenThousandConnections holds 10,000 clients open on a kvs serve
// process (its --max-clients), checks that the ones past the limit get
// Redis's error and are closed, that the server's memory stays bounded,
// and that once they leave it serves again with its data intact.
func TestServeTenThousandConnections(t *testing.T) {
	const clients = 10000
	var lim syscall.Rlimit
	if err := syscall.Getrlimit(syscall.RLIMIT_NOFILE, &lim); err != nil || lim.Cur < clients+500 {
		t.Skipf("open-file limit %d is below the %d this test needs", lim.Cur, clients+500)
	}
	dir := t.TempDir()
	s := startServe(t, "--engine", "bitcask", "--dir", dir, "--max-clients", strconv.Itoa(clients), "--log-level", "error")
	addr := "127.0.0.1:" + s.port
	first, err := net.Dial("tcp", addr)
	if err != nil {
		t.Fatal(err)
	}
	firstR := bufio.NewReader(first)
	first.SetDeadline(time.Now().Add(time.Minute))
	fmt.Fprint(first, "*3\r\n$3\r\nSET\r\n$4\r\nkept\r\n$4\r\nsafe\r\n")
	if line, err := firstR.ReadString('\n'); err != nil || line != "+OK\r\n" {
		t.Fatalf("SET: %q, %v", line, err)
	}
	conns := []net.Conn{first}
	defer func() {
		for _, c := range conns {
			c.Close()
		}
	}()
	for len(conns) < clients {
		c, err := net.Dial("tcp", addr)
		if err != nil {
			t.Fatalf("connection %d: %v", len(conns)+1, err)
		}
		conns = append(conns, c)
	}
	// Every held connection is served: a PING on each, then the replies.
	for _, c := range conns[1:] {
		c.SetDeadline(time.Now().Add(time.Minute))
		if _, err := fmt.Fprint(c, "PING\r\n"); err != nil {
			t.Fatal(err)
		}
	}
	buf := make([]byte, 7)
	for i, c := range conns[1:] {
		if _, err := io.ReadFull(c, buf); err != nil || string(buf) != "+PONG\r\n" {
			t.Fatalf("PING on connection %d of %d: %q, %v", i+2, clients, buf, err)
		}
	}
	// Past the limit: Redis's error, then the server closes the connection.
	for i := 0; i < 20; i++ {
		c, err := net.Dial("tcp", addr)
		if err != nil {
			t.Fatal(err)
		}
		c.SetDeadline(time.Now().Add(30 * time.Second))
		b, err := io.ReadAll(c)
		c.Close()
		if err != nil || string(b) != "-ERR max number of clients reached\r\n" {
			t.Fatalf("connection %d over the limit: read %q, %v; want the max-clients error and EOF", i+1, b, err)
		}
	}
	rss := processRSS(t, s.cmd.Process.Pid)
	t.Logf("kvs serve holding %d clients: VmRSS %.0f MiB (%.1f KiB per client)", clients, float64(rss)/(1<<20), float64(rss)/clients/1024)
	if rss > 1<<30 {
		t.Errorf("kvs serve holding %d idle clients uses %d MiB of memory", clients, rss>>20)
	}
	for _, c := range conns[1:] {
		c.Close()
	}
	conns = conns[:1]
	// The clients left: new ones are served, and the data is there.
	deadline := time.Now().Add(30 * time.Second)
	for {
		got := s.cli(t, "GET", "kept")
		if got == "safe" {
			break
		}
		if time.Now().After(deadline) {
			t.Fatalf("GET kept after the clients left = %q, want safe", got)
		}
		time.Sleep(100 * time.Millisecond) // the server may not have seen every close yet
	}
}

// processRSS returns a process's resident memory in bytes (Linux).
func processRSS(t *testing.T, pid int) int64 {
	t.Helper()
	b, err := os.ReadFile(fmt.Sprintf("/proc/%d/status", pid))
	if err != nil {
		t.Skipf("no /proc: %v", err)
	}
	for _, line := range strings.Split(string(b), "\n") {
		if rest, ok := strings.CutPrefix(line, "VmRSS:"); ok {
			kb, err := strconv.ParseInt(strings.TrimSuffix(strings.TrimSpace(rest), " kB"), 10, 64)
			if err != nil {
				t.Fatalf("VmRSS line %q: %v", line, err)
			}
			return kb << 10
		}
	}
	t.Fatalf("no VmRSS in /proc/%d/status", pid)
	return 0
}

// TestServeSyncedWritesSurviveSIGKILL kills kvs serve with SIGKILL while 8
// clients write under --sync group (and always): every SET that was
// answered +OK before the kill must be in the engine when it is opened
// again. A reply is sent only after the write's fsync, so an
// acknowledged write can be lost only by a broken durability promise.
func TestServeSyncedWritesSurviveSIGKILL(t *testing.T) {
	for _, c := range []struct{ engine, sync string }{{"bitcask", "group"}, {"lsm", "group"}, {"lsm", "always"}} {
		t.Run(c.engine+"/"+c.sync, func(t *testing.T) {
			dir := t.TempDir()
			s := startServe(t, "--engine", c.engine, "--dir", dir, "--sync", c.sync, "--log-level", "error")
			const writers = 8
			acked := make([]int, writers) // per writer: SETs answered +OK, in order
			var wg sync.WaitGroup
			for w := range writers {
				wg.Go(func() {
					conn, err := net.Dial("tcp", "127.0.0.1:"+s.port)
					if err != nil {
						return
					}
					defer conn.Close()
					r := bufio.NewReader(conn)
					for i := 0; ; i++ {
						conn.SetDeadline(time.Now().Add(10 * time.Second))
						k, v := fmt.Sprintf("w%d-%06d", w, i), fmt.Sprintf("value-%d-%d", w, i)
						if _, err := fmt.Fprintf(conn, "*3\r\n$3\r\nSET\r\n$%d\r\n%s\r\n$%d\r\n%s\r\n", len(k), k, len(v), v); err != nil {
							return
						}
						line, err := r.ReadString('\n')
						if err != nil || line != "+OK\r\n" {
							return // killed mid-command: this one is not acknowledged
						}
						acked[w] = i + 1
					}
				})
			}
			time.Sleep(400 * time.Millisecond)
			s.cmd.Process.Signal(syscall.SIGKILL)
			<-s.exited
			s.exited <- nil
			wg.Wait()

			e, err := kvs.Open(c.engine, dir, &kvs.Options{Logger: kvs.DiscardLogger()})
			if err != nil {
				t.Fatalf("reopen after SIGKILL: %v", err)
			}
			defer e.Close()
			total := 0
			for w, n := range acked {
				total += n
				for i := 0; i < n; i++ {
					k := fmt.Sprintf("w%d-%06d", w, i)
					v, err := e.Get([]byte(k))
					if err != nil || string(v) != fmt.Sprintf("value-%d-%d", w, i) {
						t.Fatalf("acknowledged SET %s lost after SIGKILL: %q, %v (writer %d had %d acknowledged)", k, v, err, w, n)
					}
				}
			}
			if total == 0 {
				t.Fatal("no SET was acknowledged before the kill: the test proved nothing")
			}
			t.Logf("%d acknowledged SETs from %d clients, all there after SIGKILL", total, writers)
		})
	}
}
