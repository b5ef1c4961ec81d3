package server

import (
	"context"
	"errors"
	"fmt"
	"net"
	"net/http"
	"strconv"
	"strings"
	"sync/atomic"
	"syscall"
	"testing"
	"time"

	"github.com/kvs-lab/kvs"
	"github.com/redis/go-redis/v9"
)

// Integers from 2^64 to 2^64+3 used to wrap around to 0..3 in parseInt64.
func TestIntegersPast2To64AreRejected(t *testing.T) {
	ts := startServer(t, "bitcask", t.TempDir(), SyncNone, nil)
	rdb := newClient(t, ts.addr, nil)
	ctx := context.Background()
	const notInt = "ERR value is not an integer or out of range"
	for _, v := range []string{"18446744073709551616", "18446744073709551617", "18446744073709551619"} {
		if err := rdb.Set(ctx, "n", v, 0).Err(); err != nil {
			t.Fatal(err)
		}
		for _, cmd := range [][]any{
			{"INCR", "n"},
			{"INCRBY", "m", v},
			{"DECRBY", "m", v},
			{"SCAN", "0", "COUNT", v},
			{"SELECT", v},
		} {
			if got, err := rdb.Do(ctx, cmd...).Result(); err == nil || err.Error() != notInt {
				t.Errorf("%v = %v, %v; want %q", cmd, got, err, notInt)
			}
		}
	}
	if got, err := rdb.Get(ctx, "m").Result(); !errors.Is(err, redis.Nil) {
		t.Errorf("m = %q, %v; want no key", got, err)
	}
}

// One client loops MSET a i b i (and DEL a b); another's MGET a b and
// EXISTS a b must never see half of one.
func TestMultiKeyReadsNeverSeeHalfAWrite(t *testing.T) {
	for _, name := range engines {
		t.Run(name, func(t *testing.T) {
			ts := startServer(t, name, t.TempDir(), SyncNone, nil)
			w := newClient(t, ts.addr, nil)
			r := newClient(t, ts.addr, nil)
			ctx := context.Background()
			w.MSet(ctx, "a", "0", "b", "0")
			var stop atomic.Bool
			done := make(chan error, 1)
			go func() {
				for i := 1; !stop.Load(); i++ {
					s := strconv.Itoa(i)
					if err := w.MSet(ctx, "a", s, "b", s).Err(); err != nil {
						done <- err
						return
					}
					if i%8 == 0 {
						if err := w.Del(ctx, "a", "b").Err(); err != nil {
							done <- err
							return
						}
					}
				}
				done <- nil
			}()
			deadline := time.Now().Add(time.Second)
			for time.Now().Before(deadline) {
				v, err := r.MGet(ctx, "a", "b").Result()
				if err != nil {
					t.Fatal(err)
				}
				if v[0] != v[1] {
					t.Fatalf("MGET a b saw half of a write: %v", v)
				}
				n, err := r.Exists(ctx, "a", "b").Result()
				if err != nil {
					t.Fatal(err)
				}
				if n == 1 {
					t.Fatal("EXISTS a b saw half of a write: 1")
				}
			}
			stop.Store(true)
			if err := <-done; err != nil {
				t.Fatal(err)
			}
		})
	}
}

// emfileListener fails its first fails Accepts with EMFILE, as a process
// out of file descriptors does.
type emfileListener struct {
	net.Listener
	fails atomic.Int32
}

func (l *emfileListener) Accept() (net.Conn, error) {
	if l.fails.Add(-1) >= 0 {
		return nil, &net.OpError{Op: "accept", Net: "tcp", Err: syscall.EMFILE}
	}
	return l.Listener.Accept()
}

func TestAcceptRetriesAfterTemporaryErrors(t *testing.T) {
	e := openEngine(t, "bitcask", t.TempDir())
	s, err := New(NewEngineBackend("bitcask", e, SyncNone), Config{Addr: "127.0.0.1:0", Logger: kvs.DiscardLogger()})
	if err != nil {
		t.Fatal(err)
	}
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	el := &emfileListener{Listener: ln}
	el.fails.Store(4)
	served := make(chan error, 1)
	go func() { served <- s.Serve(el) }()
	rdb := newClient(t, ln.Addr().String(), nil)
	if err := rdb.Ping(context.Background()).Err(); err != nil {
		t.Fatalf("PING after EMFILEs: %v", err)
	}
	select {
	case err := <-served:
		t.Fatalf("EMFILE from Accept ended Serve (and closed the engine): %v", err)
	default:
	}
	if err := s.Shutdown(context.Background()); err != nil {
		t.Fatal(err)
	}
	if err := <-served; err != nil {
		t.Fatalf("Serve: %v", err)
	}
}

// One client's long scan must not evict the cursor of another's.
func TestScanCursorSurvivesAnotherLongScan(t *testing.T) {
	// NB: lsm, whose iterators seek; bitcask's hash keydir sorts all keys
	// for each call, which makes 5000 calls slow under -race.
	ts := startServer(t, "lsm", t.TempDir(), SyncNone, nil)
	rdb := newClient(t, ts.addr, nil)
	ctx := context.Background()
	const n = cursorMaxEntries + 1000
	for i := 0; i < n; i += 500 {
		var p []any
		for j := i; j < i+500; j++ {
			p = append(p, fmt.Sprintf("k%05d", j), "v")
		}
		if err := rdb.MSet(ctx, p...).Err(); err != nil {
			t.Fatal(err)
		}
	}
	keysA, curA, err := rdb.Scan(ctx, 0, "", 1).Result()
	if err != nil {
		t.Fatal(err)
	}
	var cur uint64
	calls := 0
	for {
		_, cur, err = rdb.Scan(ctx, cur, "", 1).Result()
		if err != nil {
			t.Fatal(err)
		}
		calls++
		if cur == 0 {
			break
		}
	}
	if calls < cursorMaxEntries {
		t.Fatalf("scan B made %d calls, fewer than the table holds", calls)
	}
	keys, _, err := rdb.Scan(ctx, curA, "", 1).Result()
	if err != nil {
		t.Fatalf("scan A resumed after scan B's %d calls: %v", calls, err)
	}
	if len(keysA) != 1 || len(keys) != 1 || keys[0] <= keysA[0] {
		t.Fatalf("scan A: %q then %q", keysA, keys)
	}
}

func TestScanOfAnotherTypeReturnsNothingWhateverTheCount(t *testing.T) {
	ts := startServer(t, "bitcask", t.TempDir(), SyncNone, nil)
	rdb := newClient(t, ts.addr, nil)
	ctx := context.Background()
	rdb.Set(ctx, "k", "v", 0)
	for _, args := range [][]any{
		{"SCAN", "0", "TYPE", "hash", "COUNT", "10"},
		{"SCAN", "0", "TYPE", "list", "MATCH", "*"},
		{"SCAN", "0", "COUNT", "10", "TYPE", "zset"},
	} {
		v, err := rdb.Do(ctx, args...).Result()
		if err != nil {
			t.Fatalf("%v: %v", args, err)
		}
		if keys := v.([]any)[1].([]any); len(keys) != 0 {
			t.Errorf("%v returned string keys %v", args, keys)
		}
	}
	v, err := rdb.Do(ctx, "SCAN", "0", "TYPE", "string", "COUNT", "10").Result()
	if err != nil || len(v.([]any)[1].([]any)) != 1 {
		t.Errorf("SCAN TYPE string: %v, %v", v, err)
	}
}

// Before AUTH a client may not announce more than 10 arguments or a bulk
// over 16 KiB (Redis, CVE-2021-32675), so that it cannot make the server
// buffer MaxQueryBytes.
func TestUnauthenticatedClientCannotSendLargeCommands(t *testing.T) {
	ts := startServer(t, "bitcask", t.TempDir(), SyncNone, func(c *Config) { c.Password = "secret" })
	c := dialRaw(t, ts.addr)
	c.send("*11\r\n")
	if got := c.line(); got != "-ERR Protocol error: unauthenticated multibulk length" {
		t.Fatalf("*11 before AUTH: %q", got)
	}
	c.expectClosed()

	c = dialRaw(t, ts.addr)
	c.send("*3\r\n$3\r\nSET\r\n$1\r\nk\r\n$16385\r\n")
	if got := c.line(); got != "-ERR Protocol error: unauthenticated bulk length" {
		t.Fatalf("16 KiB + 1 bulk before AUTH: %q", got)
	}
	c.expectClosed()

	// Within the limits: NOAUTH, and the connection stays.
	c = dialRaw(t, ts.addr)
	c.send("*3\r\n$3\r\nSET\r\n$1\r\nk\r\n$16384\r\n" + strings.Repeat("v", 16384) + "\r\n")
	if got := c.line(); got != "-NOAUTH Authentication required." {
		t.Fatalf("16 KiB bulk before AUTH: %q", got)
	}
	// After AUTH, in the same pipeline, the limits no longer apply.
	big := strings.Repeat("v", 1<<20)
	c.send("*2\r\n$4\r\nAUTH\r\n$6\r\nsecret\r\n*3\r\n$3\r\nSET\r\n$1\r\nk\r\n$" + strconv.Itoa(len(big)) + "\r\n" + big + "\r\n")
	if got := c.line(); got != "+OK" {
		t.Fatalf("AUTH: %q", got)
	}
	if got := c.line(); got != "+OK" {
		t.Fatalf("1 MiB SET after AUTH: %q", got)
	}
	args := "*12\r\n$4\r\nMSET\r\n" + strings.Repeat("$1\r\nk\r\n$1\r\nv\r\n", 5) + "$1\r\nk\r\n"
	c.send(args)
	if got := c.line(); got != "-ERR wrong number of arguments for 'mset' command" {
		t.Fatalf("12 arguments after AUTH: %q", got)
	}
}

func TestAuthAcceptsOnlyThePassword(t *testing.T) {
	ts := startServer(t, "bitcask", t.TempDir(), SyncNone, func(c *Config) { c.Password = "s3cret" })
	c := dialRaw(t, ts.addr)
	for _, tc := range []struct{ cmd, want string }{
		{"AUTH s3cre\r\n", "-WRONGPASS invalid username-password pair or user is disabled."},
		{"AUTH s3cret!\r\n", "-WRONGPASS invalid username-password pair or user is disabled."},
		{"AUTH \"\"\r\n", "-WRONGPASS invalid username-password pair or user is disabled."},
		{"AUTH other s3cret\r\n", "-WRONGPASS invalid username-password pair or user is disabled."},
		{"GET k\r\n", "-NOAUTH Authentication required."},
		{"AUTH default s3cret\r\n", "+OK"},
		{"GET k\r\n", "$-1"},
	} {
		c.send(tc.cmd)
		if got := c.line(); got != tc.want {
			t.Errorf("%q: %q, want %q", tc.cmd, got, tc.want)
		}
	}
}

// /debug/pprof/cmdline would show os.Args, and so --requirepass.
func TestPprofDoesNotServeCmdline(t *testing.T) {
	ts := startServer(t, "bitcask", t.TempDir(), SyncNone, func(c *Config) { c.HTTPAddr = "127.0.0.1:0" })
	deadline := time.Now().Add(5 * time.Second)
	for ts.HTTPAddr() == nil {
		if time.Now().After(deadline) {
			t.Fatal("no HTTP listener")
		}
		time.Sleep(5 * time.Millisecond)
	}
	base := "http://" + ts.HTTPAddr().String() + "/debug/pprof/"
	resp, err := http.Get(base + "cmdline")
	if err != nil {
		t.Fatal(err)
	}
	resp.Body.Close()
	if resp.StatusCode != http.StatusNotFound {
		t.Errorf("/debug/pprof/cmdline: status %d, want 404", resp.StatusCode)
	}
	for _, p := range []string{"", "heap", "goroutine?debug=1", "allocs", "symbol"} {
		httpGet(t, base+p)
	}
}

// pipelineWithoutReading sends GETs of a 1 MiB value on a raw connection
// and never reads the replies, until the server stops taking them.
func pipelineWithoutReading(t *testing.T, addr string) net.Conn {
	t.Helper()
	rdb := newClient(t, addr, nil)
	if err := rdb.Set(context.Background(), "big", strings.Repeat("v", 1<<20), 0).Err(); err != nil {
		t.Fatal(err)
	}
	nc, err := net.Dial("tcp", addr)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { nc.Close() })
	go func() {
		req := []byte(strings.Repeat("*2\r\n$3\r\nGET\r\n$3\r\nbig\r\n", 100))
		for range 100 {
			_ = nc.SetWriteDeadline(time.Now().Add(10 * time.Second))
			if _, err := nc.Write(req); err != nil {
				return
			}
		}
	}()
	return nc
}

// A client that pipelines and never reads blocks its connection in Write;
// a graceful Shutdown must not wait for it until its context ends.
func TestShutdownDoesNotWaitForClientThatDoesNotRead(t *testing.T) {
	ts := startServer(t, "bitcask", t.TempDir(), SyncNone, nil)
	pipelineWithoutReading(t, ts.addr)
	time.Sleep(300 * time.Millisecond) // the server's socket buffers fill
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	start := time.Now()
	if err := ts.Shutdown(ctx); err != nil {
		t.Fatalf("Shutdown: %v", err)
	}
	if d := time.Since(start); d > 5*time.Second {
		t.Errorf("Shutdown took %v, waiting on a client that does not read", d)
	}
}

// WriteTimeout closes a client that does not read its replies.
func TestWriteTimeoutClosesClientThatDoesNotRead(t *testing.T) {
	ts := startServer(t, "bitcask", t.TempDir(), SyncNone, func(c *Config) { c.WriteTimeout = 200 * time.Millisecond })
	pipelineWithoutReading(t, ts.addr)
	deadline := time.Now().Add(5 * time.Second)
	for ts.clientCount() > 1 { // the go-redis client that SET the value stays
		if time.Now().After(deadline) {
			t.Fatalf("%d clients: the one that does not read was not closed", ts.clientCount())
		}
		time.Sleep(20 * time.Millisecond)
	}
}

// MaxReplyBytes bounds what one reply holds: an MGET over it fails, a SCAN
// call stops early and returns a cursor.
func TestReplyMemoryIsBounded(t *testing.T) {
	ts := startServer(t, "bitcask", t.TempDir(), SyncNone, func(c *Config) { c.MaxReplyBytes = 1000 })
	rdb := newClient(t, ts.addr, nil)
	ctx := context.Background()
	v := strings.Repeat("v", 600)
	if err := rdb.MSet(ctx, "a", v, "b", v).Err(); err != nil {
		t.Fatal(err)
	}
	if got, err := rdb.MGet(ctx, "a").Result(); err != nil || got[0] != v {
		t.Fatalf("MGET a: %v", err)
	}
	if _, err := rdb.MGet(ctx, "a", "b").Result(); err == nil || !strings.HasPrefix(err.Error(), "ERR reply too large") {
		t.Fatalf("MGET a b over MaxReplyBytes: %v", err)
	}
	var p []any
	for i := range 10 {
		p = append(p, fmt.Sprintf("%0200d", i), "v")
	}
	if err := rdb.MSet(ctx, p...).Err(); err != nil {
		t.Fatal(err)
	}
	keys, cur, err := rdb.Scan(ctx, 0, "0*", 100).Result()
	if err != nil || cur == 0 || len(keys) != 5 {
		t.Fatalf("SCAN of 200-byte keys under a 1000-byte limit: %d keys, cursor %d, %v", len(keys), cur, err)
	}
}

// Serve registers the HTTP server after the RESP listener; a Shutdown in
// between must not let it start afterwards and outlive the backend.
func TestHTTPServerDoesNotStartAfterShutdown(t *testing.T) {
	e := openEngine(t, "bitcask", t.TempDir())
	s, err := New(NewEngineBackend("bitcask", e, SyncNone), Config{Addr: "127.0.0.1:0", HTTPAddr: "127.0.0.1:0", Logger: kvs.DiscardLogger()})
	if err != nil {
		t.Fatal(err)
	}
	if err := s.Shutdown(context.Background()); err != nil {
		t.Fatal(err)
	}
	// What Serve does next when Shutdown ran just after it took the
	// listener.
	if err := s.serveHTTP(); !errors.Is(err, errClosing) {
		t.Errorf("serveHTTP after Shutdown: %v, want errClosing", err)
	}
	if a := s.HTTPAddr(); a != nil {
		t.Errorf("HTTP server listening on %v after Shutdown closed the backend", a)
	}
}
