package server

import (
	"bufio"
	"context"
	"errors"
	"net"
	"strings"
	"testing"
	"time"

	"github.com/kvs-lab/kvs"
	_ "github.com/kvs-lab/kvs/bitcask"
	_ "github.com/kvs-lab/kvs/lsm"
	"github.com/redis/go-redis/v9"
)

var engines = []string{"bitcask", "lsm"}

func openEngine(tb testing.TB, name, dir string) kvs.Engine {
	tb.Helper()
	e, err := kvs.Open(name, dir, &kvs.Options{Logger: kvs.DiscardLogger()})
	if err != nil {
		tb.Fatalf("open %s: %v", name, err)
	}
	return e
}

// testServer is a server on a loopback port with its Serve result.
type testServer struct {
	*Server
	addr   string
	served chan error
}

// startServer serves engine name in dir. mut adjusts the config. The
// server is shut down at cleanup if the test did not.
func startServer(tb testing.TB, name, dir string, mode SyncMode, mut func(*Config)) *testServer {
	tb.Helper()
	cfg := Config{Addr: "127.0.0.1:0", Logger: kvs.DiscardLogger()}
	if mut != nil {
		mut(&cfg)
	}
	s, err := New(NewEngineBackend(name, openEngine(tb, name, dir), mode), cfg)
	if err != nil {
		tb.Fatalf("New: %v", err)
	}
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		tb.Fatal(err)
	}
	ts := &testServer{Server: s, addr: ln.Addr().String(), served: make(chan error, 1)}
	go func() { ts.served <- s.Serve(ln) }()
	tb.Cleanup(func() { ts.stop(tb) })
	return ts
}

// stop shuts the server down and checks that Serve returned nil.
func (ts *testServer) stop(tb testing.TB) {
	tb.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	if err := ts.Shutdown(ctx); err != nil {
		tb.Errorf("Shutdown: %v", err)
	}
	select {
	case err := <-ts.served:
		if err != nil {
			tb.Errorf("Serve: %v", err)
		}
		ts.served <- nil // a second stop finds it again
	case <-time.After(10 * time.Second):
		tb.Errorf("Serve did not return after Shutdown")
	}
}

func newClient(tb testing.TB, addr string, mut func(*redis.Options)) *redis.Client {
	tb.Helper()
	o := &redis.Options{Addr: addr, DialTimeout: 5 * time.Second, ReadTimeout: 10 * time.Second, WriteTimeout: 10 * time.Second, MaxRetries: -1}
	if mut != nil {
		mut(o)
	}
	c := redis.NewClient(o)
	tb.Cleanup(func() { c.Close() })
	return c
}

// rawConn is a plain TCP connection for exact protocol checks.
type rawConn struct {
	tb testing.TB
	net.Conn
	r *bufio.Reader
}

func dialRaw(tb testing.TB, addr string) *rawConn {
	tb.Helper()
	nc, err := net.DialTimeout("tcp", addr, 5*time.Second)
	if err != nil {
		tb.Fatal(err)
	}
	tb.Cleanup(func() { nc.Close() })
	_ = nc.SetDeadline(time.Now().Add(20 * time.Second))
	return &rawConn{tb: tb, Conn: nc, r: bufio.NewReader(nc)}
}

func (c *rawConn) send(s string) {
	c.tb.Helper()
	if _, err := c.Write([]byte(s)); err != nil {
		c.tb.Fatalf("write: %v", err)
	}
}

// line reads one reply line without its CRLF.
func (c *rawConn) line() string {
	c.tb.Helper()
	l, err := c.r.ReadString('\n')
	if err != nil {
		c.tb.Fatalf("read reply: %v (got %q)", err, l)
	}
	return strings.TrimSuffix(l, "\r\n")
}

// expectClosed checks that the server closed the connection.
func (c *rawConn) expectClosed() {
	c.tb.Helper()
	_ = c.SetReadDeadline(time.Now().Add(5 * time.Second))
	b, err := c.r.ReadByte()
	if err == nil {
		c.tb.Fatalf("connection still open: read %q", b)
	}
	var ne net.Error
	if errors.As(err, &ne) && ne.Timeout() {
		c.tb.Fatalf("connection not closed within 5s")
	}
}
