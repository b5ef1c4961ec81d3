package server

import (
	"bytes"
	"io"
	"net"
	"runtime"
	"strings"
	"testing"
	"time"

	"github.com/kvs-lab/kvs"
)

func TestSplitInlineLikeRedis(t *testing.T) {
	for _, tc := range []struct {
		in   string
		want []string // nil with err: an error
		err  bool
	}{
		{in: "", want: nil},
		{in: "   \t ", want: nil},
		{in: "PING", want: []string{"PING"}},
		{in: "  set  k   v ", want: []string{"set", "k", "v"}},
		{in: "a\tb", want: []string{"a", "b"}},
		{in: `echo "a b"`, want: []string{"echo", "a b"}},
		{in: `echo ""`, want: []string{"echo", ""}},
		{in: `echo "\x41\x7a\n\r\t\b\a\"\\\q"`, want: []string{"echo", "Az\n\r\t\b\a\"\\q"}},
		{in: `echo "\x4"`, want: []string{"echo", "x4"}},
		{in: `echo "\xZZ"`, want: []string{"echo", "xZZ"}},
		{in: `echo 'a "b" \'c\' \n'`, want: []string{"echo", `a "b" 'c' \n`}},
		{in: `echo ''`, want: []string{"echo", ""}},
		{in: `a"b c"d`, err: true},
		{in: `a"b c" d`, want: []string{"ab c", "d"}},
		{in: `x'y'`, want: []string{"xy"}},
		{in: `echo "a`, err: true},
		{in: `echo 'a`, err: true},
		{in: `echo "a"b`, err: true},
		{in: `echo 'a'b`, err: true},
		{in: `echo "a\"`, err: true},
	} {
		t.Run(tc.in, func(t *testing.T) {
			got, err := splitInline([]byte(tc.in), nil)
			if tc.err {
				if err == nil || err.Error() != "Protocol error: unbalanced quotes in request" {
					t.Fatalf("splitInline(%q) = %q, %v; want unbalanced quotes", tc.in, got, err)
				}
				return
			}
			if err != nil {
				t.Fatalf("splitInline(%q): %v", tc.in, err)
			}
			var gs []string
			for _, a := range got {
				gs = append(gs, string(a))
			}
			if strings.Join(gs, "|") != strings.Join(tc.want, "|") || len(gs) != len(tc.want) {
				t.Fatalf("splitInline(%q) = %q, want %q", tc.in, gs, tc.want)
			}
		})
	}
}

// An inline line of many one-byte words used to allocate a buffer the size
// of the rest of the line per word (redcon's parser): 64 KiB of "a a a ..."
// made about 1 GiB of garbage, before AUTH.
func TestInlineLineOfManyWordsAllocatesLittle(t *testing.T) {
	ts := startServer(t, "bitcask", t.TempDir(), SyncNone, func(c *Config) { c.Password = "secret" })
	c := dialRaw(t, ts.addr)
	c.send("PING\r\n") // the connection's goroutine and buffers are set up
	if got := c.line(); got != "-NOAUTH Authentication required." {
		t.Fatalf("PING: %q", got)
	}
	line := strings.Repeat("a ", (maxInlineBytes-16)/2) + "\r\n"
	var before, after runtime.MemStats
	runtime.GC()
	runtime.ReadMemStats(&before)
	c.send(line)
	got := c.line()
	runtime.ReadMemStats(&after)
	if !strings.HasPrefix(got, "-ERR unknown command 'a'") {
		t.Errorf("reply %.60q", got)
	}
	if d := after.TotalAlloc - before.TotalAlloc; d > 8<<20 {
		t.Errorf("one %d-byte inline command allocated %d MiB", len(line), d>>20)
	}
}

func TestInlineUnbalancedQuotesClosesConnection(t *testing.T) {
	ts := startServer(t, "bitcask", t.TempDir(), SyncNone, nil)
	c := dialRaw(t, ts.addr)
	c.send("ECHO \"a b\"\r\n")
	if got := c.line(); got != "$3" {
		t.Fatalf("ECHO \"a b\": %q", got)
	}
	if got := c.line(); got != "a b" {
		t.Fatalf("ECHO \"a b\": %q", got)
	}
	c.send("SET k \"v\r\n")
	if got := c.line(); got != "-ERR Protocol error: unbalanced quotes in request" {
		t.Fatalf("reply %q", got)
	}
	c.expectClosed()
}

type tinyReadConn struct{ net.Conn }

func (c tinyReadConn) Read(p []byte) (int, error) {
	if len(p) > 1 {
		p = p[:1]
	}
	return c.Conn.Read(p)
}

type tinyReadListener struct{ net.Listener }

func (l tinyReadListener) Accept() (net.Conn, error) {
	c, err := l.Listener.Accept()
	if err != nil {
		return nil, err
	}
	return tinyReadConn{c}, nil
}

// runPipeline sends in on one connection, half-closes it and returns every
// reply; tiny makes the server read one byte at a time.
func runPipeline(t *testing.T, tiny bool, in string) string {
	t.Helper()
	s, err := New(NewEngineBackend("bitcask", openEngine(t, "bitcask", t.TempDir()), SyncNone),
		Config{Addr: "127.0.0.1:0", MaxKeyBytes: 16, MaxValueBytes: 32, MaxQueryBytes: 1 << 20, Logger: kvs.DiscardLogger()})
	if err != nil {
		t.Fatal(err)
	}
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	var l net.Listener = ln
	if tiny {
		l = tinyReadListener{ln}
	}
	served := make(chan error, 1)
	go func() { served <- s.Serve(l) }()
	defer func() {
		if err := s.Shutdown(t.Context()); err != nil {
			t.Error(err)
		}
		<-served
	}()
	nc, err := net.Dial("tcp", ln.Addr().String())
	if err != nil {
		t.Fatal(err)
	}
	defer nc.Close()
	_ = nc.SetDeadline(time.Now().Add(20 * time.Second))
	go func() {
		_, _ = nc.Write([]byte(in))
		_ = nc.(*net.TCPConn).CloseWrite()
	}()
	var out bytes.Buffer
	if _, err := io.Copy(&out, nc); err != nil {
		t.Fatalf("read: %v (got %q)", err, out.String())
	}
	return out.String()
}

func TestFramingIsIndependentOfReadSizes(t *testing.T) {
	big := strings.Repeat("x", 100)
	in := "*3\r\n$3\r\nSET\r\n$1\r\nk\r\n$1\r\nv\r\n" +
		"PING\r\n" +
		"*0\r\n*-1\r\n" +
		"*3\r\n$3\r\nSET\r\n$1\r\nk\r\n$100\r\n" + big + "\r\n" +
		"*2\r\n$3\r\nGET\r\n$1\r\nk\r\n" +
		"*3\r\n$4\r\nMGET\r\n$1\r\nk\r\n$2\r\nno\r\n" +
		"ECHO \"a b\"\n" +
		"\r\n" +
		"*2\r\n$4\r\nINCR\r\n$1\r\nn\r\n" +
		"*1\r\n$4\r\nQUIT\r\n"
	want := runPipeline(t, false, in)
	if !strings.Contains(want, "$3\r\na b\r\n") || !strings.HasSuffix(want, ":1\r\n+OK\r\n") {
		t.Fatalf("replies %q", want)
	}
	if got := runPipeline(t, true, in); got != want {
		t.Errorf("1-byte reads:\n got %q\nwant %q", got, want)
	}
}
