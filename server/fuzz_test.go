package server

import (
	"io"
	"net"
	"testing"
	"time"
)

// FuzzCommands feeds arbitrary bytes to a server over a real connection.
// Whatever they are, the server must not panic, must answer or close the
// connection (never hang it), and must answer PING on a fresh connection
// afterwards (unless the input itself sent SHUTDOWN). Each input gets a
// server of its own.
func FuzzCommands(f *testing.F) {
	for _, seed := range []string{
		"*1\r\n$4\r\nPING\r\n",
		"*3\r\n$3\r\nSET\r\n$1\r\nk\r\n$1\r\nv\r\n*2\r\n$3\r\nGET\r\n$1\r\nk\r\n",
		"*2\r\n$4\r\nINCR\r\n$1\r\nn\r\n*3\r\n$6\r\nAPPEND\r\n$1\r\nn\r\n$1\r\nx\r\n",
		"*4\r\n$4\r\nSCAN\r\n$1\r\n0\r\n$5\r\nMATCH\r\n$5\r\n[a-*\r\n",
		"*5\r\n$4\r\nMSET\r\n$1\r\na\r\n$1\r\n1\r\n$1\r\nb\r\n$1\r\n2\r\n*3\r\n$3\r\nDEL\r\n$1\r\na\r\n$1\r\na\r\n",
		"*1\r\n$600000000\r\n",
		"*3\r\n$3\r\nSET\r\n$1\r\nk\r\n$2000\r\nshort",
		"*1\r\n$-2\r\n",
		"*-1\r\n*0\r\n",
		"*99999999999999999999\r\n",
		"PING\r\nECHO \"a\\x b\"\r\n",
		"SET k 'unbalanced\r\n",
		"$4\r\nPING\r\n",
		"*2\r\n$4\r\nINFO\r\n$3\r\nall\r\n*1\r\n$7\r\nCOMMAND\r\n",
		"*3\r\n$6\r\nCLIENT\r\n$7\r\nSETNAME\r\n$1\r\nx\r\n*2\r\n$6\r\nCLIENT\r\n$4\r\nLIST\r\n",
		"*2\r\n$6\r\nSELECT\r\n$1\r\n1\r\n*2\r\n$4\r\nAUTH\r\n$1\r\nx\r\n",
		"*1\r\n$4\r\nQUIT\r\n*1\r\n$4\r\nPING\r\n",
		"\r\n\n\x00\xff",
		"*1\r\n$8\r\nSHUTDOWN\r\n*1\r\n$4\r\nPING\r\n",
	} {
		f.Add([]byte(seed))
	}
	f.Fuzz(func(t *testing.T, in []byte) {
		// Small limits so that inputs reach them.
		ts := startServer(t, "bitcask", t.TempDir(), SyncNone, func(c *Config) {
			c.MaxValueBytes, c.MaxKeyBytes, c.MaxQueryBytes = 4096, 1024, 1<<20
		})
		nc, err := net.DialTimeout("tcp", ts.addr, 5*time.Second)
		if err != nil {
			t.Fatal(err)
		}
		defer nc.Close()
		_ = nc.SetDeadline(time.Now().Add(10 * time.Second))
		if _, err := nc.Write(in); err != nil {
			return // the server may close early on a protocol error
		}
		_ = nc.(*net.TCPConn).CloseWrite()
		// The server answers what it can and closes once it reads EOF: a
		// read that times out instead is a hung connection.
		if _, err := io.Copy(io.Discard, nc); err != nil {
			if ne, ok := err.(net.Error); ok && ne.Timeout() {
				t.Fatalf("connection hung after input %q", in)
			}
		}
		select {
		case <-ts.Done():
			return // the input shut the server down
		default:
		}
		c, err := net.DialTimeout("tcp", ts.addr, 5*time.Second)
		if err != nil {
			t.Fatal(err)
		}
		defer c.Close()
		_ = c.SetDeadline(time.Now().Add(10 * time.Second))
		if _, err := c.Write([]byte("*1\r\n$4\r\nPING\r\n")); err != nil {
			t.Fatal(err)
		}
		buf := make([]byte, 7)
		if _, err := io.ReadFull(c, buf); err != nil || string(buf) != "+PONG\r\n" {
			t.Fatalf("PING after input %q: %q, %v", in, buf, err)
		}
	})
}
