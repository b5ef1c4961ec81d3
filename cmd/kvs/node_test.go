package main

import (
	"bufio"
	"fmt"
	"io"
	"net"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"syscall"
	"testing"
	"time"

	"github.com/kvs-lab/kvs"
	"github.com/kvs-lab/kvs/raftkv/raftstorage"
)

// respClient is a minimal RESP client that follows MOVED replies, for the
// multi-process tests (redis-cli is not needed).
type respClient struct {
	addr string
	conn net.Conn
	r    *bufio.Reader
}

func (c *respClient) close() {
	if c.conn != nil {
		c.conn.Close()
		c.conn = nil
	}
}

// do sends one command and returns its first reply line (and, for a bulk
// reply, the bulk), following up to 3 MOVED redirects. An error means no
// reply: the connection failed.
func (c *respClient) do(args ...string) (string, error) {
	for range 4 {
		if c.conn == nil {
			conn, err := net.DialTimeout("tcp", c.addr, time.Second)
			if err != nil {
				return "", err
			}
			c.conn, c.r = conn, bufio.NewReader(conn)
		}
		c.conn.SetDeadline(time.Now().Add(5 * time.Second))
		var b strings.Builder
		fmt.Fprintf(&b, "*%d\r\n", len(args))
		for _, a := range args {
			fmt.Fprintf(&b, "$%d\r\n%s\r\n", len(a), a)
		}
		if _, err := c.conn.Write([]byte(b.String())); err != nil {
			c.close()
			return "", err
		}
		line, err := c.r.ReadString('\n')
		if err != nil {
			c.close()
			return "", err
		}
		line = strings.TrimRight(line, "\r\n")
		if addr, ok := strings.CutPrefix(line, "-MOVED 0 "); ok {
			c.close()
			c.addr = addr
			continue
		}
		if n, err := strconv.Atoi(strings.TrimPrefix(line, "$")); err == nil && strings.HasPrefix(line, "$") && n >= 0 {
			v := make([]byte, n+2)
			if _, err := io.ReadFull(c.r, v); err != nil {
				c.close()
				return "", err
			}
			return string(v[:n]), nil
		}
		return line, nil
	}
	return "", fmt.Errorf("too many MOVED redirects")
}

// nodeCluster is three `kvs node` processes on loopback.
type nodeCluster struct {
	nodes      map[uint64]*servedKVS
	respPorts  map[uint64]string
	args       map[uint64][]string
	peers, cli string
}

func startNodeCluster(t *testing.T, engine string) *nodeCluster {
	t.Helper()
	c := &nodeCluster{nodes: map[uint64]*servedKVS{}, respPorts: map[uint64]string{}, args: map[uint64][]string{}}
	var peers, cli []string
	for id := uint64(1); id <= 3; id++ {
		c.respPorts[id] = freePort(t)
		peers = append(peers, fmt.Sprintf("%d=127.0.0.1:%s", id, freePort(t)))
		cli = append(cli, fmt.Sprintf("%d=127.0.0.1:%s", id, c.respPorts[id]))
	}
	c.peers, c.cli = strings.Join(peers, ","), strings.Join(cli, ",")
	for id := uint64(1); id <= 3; id++ {
		c.args[id] = []string{"node", "--id", fmt.Sprint(id), "--dir", t.TempDir(), "--engine", engine,
			"--peers", c.peers, "--client-addrs", c.cli, "--addr", "127.0.0.1:" + c.respPorts[id],
			"--tick", "50ms", "--log-level", "error"}
		c.nodes[id] = startKVS(t, c.respPorts[id], c.args[id]...)
	}
	return c
}

// leader returns the store id whose INFO raft says leader, waiting up to d.
func (c *nodeCluster) leader(t *testing.T, d time.Duration, skip uint64) uint64 {
	t.Helper()
	deadline := time.Now().Add(d)
	for time.Now().Before(deadline) {
		for id, port := range c.respPorts {
			if id == skip {
				continue
			}
			cl := &respClient{addr: "127.0.0.1:" + port}
			info, err := cl.do("INFO", "raft")
			cl.close()
			if err == nil && strings.Contains(info, "raft_state:leader") {
				return id
			}
		}
		time.Sleep(50 * time.Millisecond)
	}
	return 0
}

// TestNodeLeaderKilledNoAcknowledgedWriteLost runs three `kvs node`
// processes, has four clients write while the leader is killed with
// SIGKILL, and checks that a new leader serves writes within a few
// election timeouts and that every write acknowledged with +OK, before or
// after the kill, is readable afterwards.
func TestNodeLeaderKilledNoAcknowledgedWriteLost(t *testing.T) {
	for _, engine := range []string{"bitcask", "lsm"} {
		t.Run(engine, func(t *testing.T) {
			c := startNodeCluster(t, engine)
			first := c.leader(t, 10*time.Second, 0)
			if first == 0 {
				t.Fatal("no leader within 10 s")
			}
			const writers = 4
			var acked sync.Map // key -> value, every +OK
			var stop atomic.Bool
			var lastOK atomic.Int64 // unix nanos of the newest +OK
			var wg sync.WaitGroup
			for w := range writers {
				wg.Go(func() {
					// Start at a follower half the time: MOVED is part of
					// the path under test.
					cl := &respClient{addr: "127.0.0.1:" + c.respPorts[uint64(w%3+1)]}
					defer cl.close()
					for i := 0; !stop.Load(); i++ {
						k, v := fmt.Sprintf("w%d-%05d", w, i), fmt.Sprintf("v%d", i)
						reply, err := cl.do("SET", k, v)
						switch {
						case err == nil && reply == "+OK":
							acked.Store(k, v)
							lastOK.Store(time.Now().UnixNano())
						case err != nil || strings.HasPrefix(reply, "-"):
							// Outcome unknown or not executed: try
							// another store after a moment.
							cl.close()
							cl.addr = "127.0.0.1:" + c.respPorts[uint64((w+i)%3+1)]
							time.Sleep(20 * time.Millisecond)
						}
					}
				})
			}
			time.Sleep(500 * time.Millisecond)
			killedAt := time.Now()
			c.nodes[first].cmd.Process.Signal(syscall.SIGKILL)
			<-c.nodes[first].exited
			c.nodes[first].exited <- nil

			next := c.leader(t, 10*time.Second, first)
			if next == 0 {
				stop.Store(true)
				wg.Wait()
				t.Fatalf("no new leader within 10 s of killing store %d", first)
			}
			// Writes resume: wait for a +OK after the kill.
			deadline := time.Now().Add(10 * time.Second)
			for lastOK.Load() < killedAt.UnixNano() && time.Now().Before(deadline) {
				time.Sleep(20 * time.Millisecond)
			}
			resumed := time.Duration(lastOK.Load() - killedAt.UnixNano())
			time.Sleep(300 * time.Millisecond)
			stop.Store(true)
			wg.Wait()
			if resumed <= 0 {
				t.Fatalf("no write acknowledged within 10 s after killing leader %d (new leader %d)", first, next)
			}
			t.Logf("leader %d killed; store %d leads; first acknowledged write %v after the kill (election timeout 500 ms)", first, next, resumed.Round(time.Millisecond))

			// Every acknowledged write is there, read through the new
			// leader (linearizable reads).
			cl := &respClient{addr: "127.0.0.1:" + c.respPorts[next]}
			defer cl.close()
			n := 0
			var failed error
			acked.Range(func(k, v any) bool {
				n++
				got, err := cl.do("GET", k.(string))
				if err != nil || got != v.(string) {
					failed = fmt.Errorf("acknowledged SET %s=%s reads back %q, %v", k, v, got, err)
					return false
				}
				return true
			})
			if failed != nil {
				t.Fatal(failed)
			}
			if n == 0 {
				t.Fatal("no write was acknowledged: the test proved nothing")
			}
			t.Logf("%d acknowledged writes, all readable after the leader's SIGKILL", n)

			// The killed store restarts from its directory and rejoins.
			c.nodes[first] = startKVS(t, c.respPorts[first], c.args[first]...)
			// Until it hears from the leader it answers TRYAGAIN.
			rc := &respClient{addr: "127.0.0.1:" + c.respPorts[first]}
			defer rc.close()
			deadline = time.Now().Add(10 * time.Second)
			for {
				got, err := rc.do("SET", "after-restart", "yes")
				if err == nil && got == "+OK" {
					break
				}
				if time.Now().After(deadline) || (err == nil && !strings.HasPrefix(got, "-TRYAGAIN")) {
					t.Fatalf("SET through the restarted store %d: %q, %v", first, got, err)
				}
				rc.close()
				rc.addr = "127.0.0.1:" + c.respPorts[first]
				time.Sleep(50 * time.Millisecond)
			}
		})
	}
}

// TestNodeRefusesBadPeers checks the command line's bad input: an id that
// is not in --peers, a malformed --peers, a zero cluster id.
func TestNodeRefusesBadPeers(t *testing.T) {
	dir := t.TempDir()
	for _, c := range []struct {
		args []string
		want string
	}{
		{[]string{"node", "--id", "4", "--peers", "1=127.0.0.1:1,2=127.0.0.1:2,3=127.0.0.1:3", "--dir", dir}, "--id 4 is not in --peers (stores 1, 2, 3)"},
		{[]string{"node", "--id", "1", "--peers", "1=127.0.0.1:1,x", "--dir", dir}, "--peers"},
		{[]string{"node", "--id", "1", "--peers", "1=127.0.0.1:1", "--cluster-id", "0", "--dir", dir}, "--cluster-id"},
		{[]string{"node", "--peers", "1=127.0.0.1:1", "--dir", dir}, "--id is required"},
	} {
		_, errs, code := kvsRun(t, "", c.args...)
		if code != 2 || !strings.Contains(errs, c.want) {
			t.Errorf("kvs %s: exit %d, stderr %q; want exit 2 naming %q", strings.Join(c.args, " "), code, errs, c.want)
		}
	}
}

// TestNodeRefusesCorruptRaftLog starts a one-store cluster, writes through
// it, stops it, overwrites one raft log entry in its engine with garbage,
// and starts it again: kvs node must refuse with an error naming the
// region and the damaged key, and must not serve.
func TestNodeRefusesCorruptRaftLog(t *testing.T) {
	dir := t.TempDir()
	port := freePort(t)
	args := []string{"node", "--id", "1", "--peers", "1=127.0.0.1:" + freePort(t), "--dir", dir, "--engine", "lsm",
		"--addr", "127.0.0.1:" + port, "--tick", "20ms", "--log-level", "error"}
	s := startKVS(t, port, args...)
	cl := &respClient{addr: "127.0.0.1:" + port}
	deadline := time.Now().Add(10 * time.Second)
	for i := 0; i < 5; {
		got, err := cl.do("SET", fmt.Sprintf("k%d", i), "v")
		switch {
		case err == nil && got == "+OK":
			i++
		case time.Now().After(deadline):
			t.Fatalf("SET on the one-store cluster: %q, %v", got, err)
		default:
			cl.close()
			time.Sleep(20 * time.Millisecond) // TRYAGAIN until it elects itself
		}
	}
	cl.close()
	if err := s.stop(t, syscall.SIGTERM); err != nil {
		t.Fatalf("kvs node after SIGTERM: %v\n%s", err, s.stderr)
	}

	// Damage the newest raft log entry: find it by its key prefix.
	e, err := kvs.Open("lsm", dir, &kvs.Options{Logger: kvs.DiscardLogger()})
	if err != nil {
		t.Fatal(err)
	}
	prefix := raftstorage.EntryKey(firstRegionID, 0)[:len(raftstorage.EntryKey(firstRegionID, 0))-8]
	it, err := e.NewIter(&kvs.IterOptions{LowerBound: prefix, UpperBound: append(append([]byte{}, prefix...), 0xff)})
	if err != nil {
		t.Fatal(err)
	}
	var last []byte
	for ok := it.First(); ok; ok = it.Next() {
		last = append(last[:0], it.Key()...)
	}
	it.Close()
	if last == nil {
		t.Fatal("no raft log entry found in the engine")
	}
	if err := e.Put(last, []byte("not a raft entry"), kvs.Sync); err != nil {
		t.Fatal(err)
	}
	if err := e.Close(); err != nil {
		t.Fatal(err)
	}

	_, errs, code := kvsRun(t, "", args...)
	if code != 1 || !strings.Contains(errs, "region 1") || !strings.Contains(errs, fmt.Sprintf("%x", last)) {
		t.Fatalf("kvs node on a damaged raft log: exit %d, stderr %q; want exit 1 naming region 1 and key %x", code, errs, last)
	}
}
