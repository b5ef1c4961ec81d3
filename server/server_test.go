package server

import (
	"context"
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/tls"
	"crypto/x509"
	"crypto/x509/pkix"
	"encoding/pem"
	"errors"
	"fmt"
	"io"
	"math/big"
	"net"
	"net/http"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/kvs-lab/kvs"
	"github.com/kvs-lab/kvs/internal/vfs"
	"github.com/redis/go-redis/v9"
)

func TestPipelineOf1000Commands(t *testing.T) {
	for _, eng := range engines {
		t.Run("engine="+eng, func(t *testing.T) {
			ts := startServer(t, eng, t.TempDir(), SyncGroup, nil)
			rdb := newClient(t, ts.addr, nil)
			ctx := context.Background()
			pipe := rdb.Pipeline()
			for i := range 500 {
				pipe.Set(ctx, fmt.Sprintf("key%04d", i), fmt.Sprintf("val%d", i), 0)
			}
			gets := make([]*redis.StringCmd, 500)
			for i := range 500 {
				gets[i] = pipe.Get(ctx, fmt.Sprintf("key%04d", i))
			}
			cmds, err := pipe.Exec(ctx)
			if err != nil {
				t.Fatal(err)
			}
			if len(cmds) != 1000 {
				t.Fatalf("%d replies", len(cmds))
			}
			for i, g := range gets {
				if v, err := g.Result(); err != nil || v != fmt.Sprintf("val%d", i) {
					t.Fatalf("GET key%04d = %q, %v", i, v, err)
				}
			}
		})
	}
}

func TestConcurrentClientsIncrExactly(t *testing.T) {
	const clients, perClient = 100, 20
	for _, eng := range engines {
		t.Run("engine="+eng, func(t *testing.T) {
			ts := startServer(t, eng, t.TempDir(), SyncGroup, nil)
			rdb := newClient(t, ts.addr, func(o *redis.Options) { o.PoolSize = clients })
			ctx := context.Background()
			var wg sync.WaitGroup
			errs := make(chan error, clients)
			for c := range clients {
				wg.Go(func() {
					own := fmt.Sprintf("own%d", c)
					for i := range perClient {
						if err := rdb.Incr(ctx, fmt.Sprintf("shared%d", i%4)).Err(); err != nil {
							errs <- err
							return
						}
						// A plain SET of a shared key must not be lost
						// between an INCR's read and write (see
						// engineBackend): SET 0 then INCRs would reset
						// counts, so SET goes to the client's own keys.
						v := fmt.Sprintf("%d-%d", c, i)
						if err := rdb.Set(ctx, own, v, 0).Err(); err != nil {
							errs <- err
							return
						}
						if got, err := rdb.Get(ctx, own).Result(); err != nil || got != v {
							errs <- fmt.Errorf("GET %s = %q, %v; want %q", own, got, err, v)
							return
						}
					}
				})
			}
			wg.Wait()
			close(errs)
			for err := range errs {
				t.Fatal(err)
			}
			total := int64(0)
			for k := range 4 {
				n, err := rdb.Get(ctx, fmt.Sprintf("shared%d", k)).Int64()
				if err != nil {
					t.Fatal(err)
				}
				total += n
			}
			if total != clients*perClient {
				t.Fatalf("INCRs counted %d, want %d", total, clients*perClient)
			}
		})
	}
}

func TestSetOrderedAgainstIncr(t *testing.T) {
	// SET k 1000000 racing INCRs: whatever the order, the final value is
	// 1000000 plus the INCRs after the SET, never fewer than 1000000 (a
	// lost SET shows as a value below it).
	ts := startServer(t, "bitcask", t.TempDir(), SyncNone, nil)
	rdb := newClient(t, ts.addr, func(o *redis.Options) { o.PoolSize = 20 })
	ctx := context.Background()
	var wg sync.WaitGroup
	for range 8 {
		wg.Go(func() {
			for range 100 {
				rdb.Incr(ctx, "k")
			}
		})
	}
	time.Sleep(time.Millisecond)
	if err := rdb.Set(ctx, "k", "1000000", 0).Err(); err != nil {
		t.Fatal(err)
	}
	wg.Wait()
	if n, err := rdb.Get(ctx, "k").Int64(); err != nil || n < 1000000 || n > 1000800 {
		t.Fatalf("k = %d, %v", n, err)
	}
}

func TestRestartKeepsData(t *testing.T) {
	for _, eng := range engines {
		for _, mode := range []SyncMode{SyncGroup, SyncNone} {
			t.Run(fmt.Sprintf("engine=%s/sync=%s", eng, mode), func(t *testing.T) {
				dir := t.TempDir()
				ts := startServer(t, eng, dir, mode, nil)
				rdb := newClient(t, ts.addr, nil)
				ctx := context.Background()
				for i := range 100 {
					if err := rdb.Set(ctx, fmt.Sprintf("k%d", i), fmt.Sprintf("v%d", i), 0).Err(); err != nil {
						t.Fatal(err)
					}
				}
				if err := rdb.MSet(ctx, "m1", "a", "m2", "b").Err(); err != nil {
					t.Fatal(err)
				}
				rdb.Close()
				ts.stop(t)
				e := openEngine(t, eng, dir)
				defer e.Close()
				for i := range 100 {
					v, err := e.Get(fmt.Appendf(nil, "k%d", i))
					if err != nil || string(v) != fmt.Sprintf("v%d", i) {
						t.Fatalf("after restart k%d = %q, %v", i, v, err)
					}
				}
				if v, err := e.Get([]byte("m2")); err != nil || string(v) != "b" {
					t.Fatalf("after restart m2 = %q, %v", v, err)
				}
			})
		}
	}
}

func TestShutdownCommandStopsServer(t *testing.T) {
	dir := t.TempDir()
	ts := startServer(t, "bitcask", dir, SyncNone, nil)
	c := dialRaw(t, ts.addr)
	c.send("*3\r\n$3\r\nSET\r\n$1\r\nk\r\n$1\r\nv\r\n*1\r\n$8\r\nSHUTDOWN\r\n")
	if got := c.line(); got != "+OK" {
		t.Fatalf("SET: %q", got)
	}
	c.expectClosed()
	select {
	case <-ts.Done():
	case <-time.After(5 * time.Second):
		t.Fatal("Done not closed after SHUTDOWN")
	}
	select {
	case err := <-ts.served:
		if err != nil {
			t.Fatalf("Serve: %v", err)
		}
		ts.served <- nil
	case <-time.After(10 * time.Second):
		t.Fatal("Serve did not return")
	}
	// The engine is closed: it opens again.
	e := openEngine(t, "bitcask", dir)
	defer e.Close()
	if v, err := e.Get([]byte("k")); err != nil || string(v) != "v" {
		t.Fatalf("k = %q, %v", v, err)
	}
	// Shutdown after SHUTDOWN is a no-op returning the same result.
	if err := ts.Shutdown(context.Background()); err != nil {
		t.Fatal(err)
	}
}

func TestShutdownFinishesPipelinedCommands(t *testing.T) {
	dir := t.TempDir()
	ts := startServer(t, "lsm", dir, SyncNone, nil)
	c := dialRaw(t, ts.addr)
	var b strings.Builder
	for i := range 200 {
		fmt.Fprintf(&b, "*3\r\n$3\r\nSET\r\n$4\r\nk%03d\r\n$1\r\nv\r\n", i)
	}
	c.send(b.String())
	if got := c.line(); got != "+OK" {
		t.Fatalf("first SET: %q", got)
	}
	ts.stop(t)
	for i := 1; i < 200; i++ {
		if got := c.line(); got != "+OK" {
			t.Fatalf("SET %d: %q", i, got)
		}
	}
	c.expectClosed()
}

func TestAuthRequiredWithPassword(t *testing.T) {
	ts := startServer(t, "bitcask", t.TempDir(), SyncNone, func(c *Config) { c.Password = "s3cret" })
	c := dialRaw(t, ts.addr)
	c.send("*3\r\n$3\r\nSET\r\n$1\r\nk\r\n$1\r\nv\r\n")
	if got := c.line(); got != "-NOAUTH Authentication required." {
		t.Fatalf("before AUTH: %q", got)
	}
	c.send("*2\r\n$4\r\nAUTH\r\n$5\r\nwrong\r\n")
	if got := c.line(); got != "-WRONGPASS invalid username-password pair or user is disabled." {
		t.Fatalf("wrong password: %q", got)
	}
	c.send("*3\r\n$4\r\nAUTH\r\n$5\r\nalice\r\n$6\r\ns3cret\r\n")
	if got := c.line(); !strings.HasPrefix(got, "-WRONGPASS") {
		t.Fatalf("wrong user: %q", got)
	}
	c.send("*3\r\n$4\r\nAUTH\r\n$7\r\ndefault\r\n$6\r\ns3cret\r\n*1\r\n$4\r\nPING\r\n")
	if got := c.line() + c.line(); got != "+OK+PONG" {
		t.Fatalf("after AUTH: %q", got)
	}

	ctx := context.Background()
	// go-redis sends HELLO 3 with the password, gets an unknown command
	// error and falls back to AUTH.
	good := newClient(t, ts.addr, func(o *redis.Options) { o.Password = "s3cret" })
	if err := good.Set(ctx, "k", "v", 0).Err(); err != nil {
		t.Fatalf("go-redis with password: %v", err)
	}
	bad := newClient(t, ts.addr, func(o *redis.Options) { o.Password = "nope" })
	if err := bad.Ping(ctx).Err(); err == nil || !strings.Contains(err.Error(), "WRONGPASS") {
		t.Fatalf("go-redis with a wrong password: %v", err)
	}
	none := newClient(t, ts.addr, nil)
	if err := none.Get(ctx, "k").Err(); err == nil || !strings.HasPrefix(err.Error(), "NOAUTH") {
		t.Fatalf("go-redis without password: %v", err)
	}
}

func TestValidateRefusesExposedAddr(t *testing.T) {
	for _, tc := range []struct {
		cfg  Config
		want string // "" = valid
	}{
		{Config{}, ""},
		{Config{Addr: "localhost:6380"}, ""},
		{Config{Addr: "[::1]:6380"}, ""},
		{Config{Addr: "0.0.0.0:6380"}, `server: addr "0.0.0.0:6380" is not loopback: set a password (requirepass) or --insecure`},
		{Config{Addr: ":6380"}, "is not loopback"},
		{Config{Addr: "0.0.0.0:6380", Password: "pw"}, ""},
		{Config{Addr: "0.0.0.0:6380", Insecure: true}, ""},
		{Config{Addr: "nonsense"}, "addr"},
		{Config{HTTPAddr: "0.0.0.0:9000", Password: "pw"}, "http addr"},
		{Config{TLSCertFile: "a.pem"}, "tls cert file"},
		{Config{MaxClients: -1}, "max clients"},
		{Config{MaxValueBytes: 1 << 20, MaxQueryBytes: 1 << 10}, "max query bytes"},
		{Config{IdleTimeout: -time.Second}, "idle timeout"},
	} {
		err := tc.cfg.Validate()
		switch {
		case tc.want == "" && err != nil:
			t.Errorf("%+v: %v", tc.cfg, err)
		case tc.want != "" && (err == nil || !strings.Contains(err.Error(), tc.want)):
			t.Errorf("%+v: error %v, want %q", tc.cfg, err, tc.want)
		}
	}
	if _, err := ParseSyncMode("fast"); err == nil || !strings.Contains(err.Error(), `"fast"`) || !strings.Contains(err.Error(), `"group"`) {
		t.Errorf("ParseSyncMode(fast): %v", err)
	}
	for _, m := range []SyncMode{SyncNone, SyncGroup, SyncAlways} {
		if got, err := ParseSyncMode(string(m)); err != nil || got != m {
			t.Errorf("ParseSyncMode(%s) = %q, %v", m, got, err)
		}
	}
}

// writeSelfSignedCert writes a certificate for 127.0.0.1 and its key.
func writeSelfSignedCert(t *testing.T) (certFile, keyFile string, pool *x509.CertPool) {
	t.Helper()
	key, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	if err != nil {
		t.Fatal(err)
	}
	tmpl := &x509.Certificate{
		SerialNumber: big.NewInt(1),
		Subject:      pkix.Name{CommonName: "kvs test"},
		NotBefore:    time.Now().Add(-time.Hour),
		NotAfter:     time.Now().Add(time.Hour),
		IPAddresses:  []net.IP{net.ParseIP("127.0.0.1")},
		KeyUsage:     x509.KeyUsageDigitalSignature,
		ExtKeyUsage:  []x509.ExtKeyUsage{x509.ExtKeyUsageServerAuth},
	}
	der, err := x509.CreateCertificate(rand.Reader, tmpl, tmpl, &key.PublicKey, key)
	if err != nil {
		t.Fatal(err)
	}
	kder, err := x509.MarshalECPrivateKey(key)
	if err != nil {
		t.Fatal(err)
	}
	dir := t.TempDir()
	certFile, keyFile = filepath.Join(dir, "cert.pem"), filepath.Join(dir, "key.pem")
	if err := os.WriteFile(certFile, pem.EncodeToMemory(&pem.Block{Type: "CERTIFICATE", Bytes: der}), 0o600); err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(keyFile, pem.EncodeToMemory(&pem.Block{Type: "EC PRIVATE KEY", Bytes: kder}), 0o600); err != nil {
		t.Fatal(err)
	}
	cert, _ := x509.ParseCertificate(der)
	pool = x509.NewCertPool()
	pool.AddCert(cert)
	return certFile, keyFile, pool
}

func TestTLS(t *testing.T) {
	certFile, keyFile, pool := writeSelfSignedCert(t)
	ts := startServer(t, "bitcask", t.TempDir(), SyncNone, func(c *Config) { c.TLSCertFile, c.TLSKeyFile = certFile, keyFile })
	rdb := newClient(t, ts.addr, func(o *redis.Options) {
		o.TLSConfig = &tls.Config{RootCAs: pool, ServerName: "127.0.0.1", MinVersion: tls.VersionTLS12}
	})
	ctx := context.Background()
	if err := rdb.Set(ctx, "k", "over tls", 0).Err(); err != nil {
		t.Fatal(err)
	}
	if v, err := rdb.Get(ctx, "k").Result(); err != nil || v != "over tls" {
		t.Fatalf("GET over TLS = %q, %v", v, err)
	}
	// A plaintext client gets no RESP reply.
	plain := newClient(t, ts.addr, func(o *redis.Options) { o.ReadTimeout = time.Second })
	if err := plain.Ping(ctx).Err(); err == nil {
		t.Fatal("plaintext PING succeeded against a TLS server")
	}
	if _, err := New(NewEngineBackend("x", nil, SyncNone), Config{TLSCertFile: "/nonexistent", TLSKeyFile: "/nonexistent"}); err == nil {
		t.Fatal("New loaded a missing certificate")
	}
}

func TestListenAndServeWithMetricsAndStatusPage(t *testing.T) {
	for _, eng := range engines {
		t.Run("engine="+eng, func(t *testing.T) {
			e := openEngine(t, eng, t.TempDir())
			s, err := New(NewEngineBackend(eng, e, SyncNone), Config{Addr: "127.0.0.1:0", HTTPAddr: "127.0.0.1:0", Logger: kvs.DiscardLogger()})
			if err != nil {
				t.Fatal(err)
			}
			served := make(chan error, 1)
			go func() { served <- s.ListenAndServe() }()
			deadline := time.Now().Add(5 * time.Second)
			for s.Addr() == nil || s.HTTPAddr() == nil {
				if time.Now().After(deadline) {
					t.Fatal("server did not start listening")
				}
				time.Sleep(5 * time.Millisecond)
			}
			rdb := newClient(t, s.Addr().String(), nil)
			ctx := context.Background()
			for i := range 5 {
				rdb.Set(ctx, fmt.Sprint("k", i), "v", 0)
			}
			rdb.Get(ctx, "k1")
			rdb.Do(ctx, "INCR", "k1") // an error reply
			base := "http://" + s.HTTPAddr().String()
			metrics := httpGet(t, base+"/metrics")
			for _, want := range []string{
				`kvs_server_commands_total{cmd="set"} 5`,
				`kvs_server_commands_total{cmd="get"} 1`,
				`kvs_server_command_errors_total{cmd="incr"} 1`,
				`kvs_server_command_duration_seconds_count{cmd="set"} 5`,
				`kvs_server_connected_clients 1`,
				`kvs_engine_live_keys{engine="` + eng + `"}`,
				`kvs_engine_bytes_on_disk{engine="` + eng + `"}`,
				`kvs_server_connections_total`,
			} {
				if !strings.Contains(metrics, want) {
					t.Errorf("/metrics lacks %q", want)
				}
			}
			page := httpGet(t, base+"/")
			if !strings.Contains(page, "kvs serving "+eng) {
				t.Errorf("status page does not name the engine:\n%s", page)
			}
			if eng == "lsm" && !strings.Contains(page, "LSM levels") || eng == "bitcask" && !strings.Contains(page, "Bitcask segments") {
				t.Errorf("status page lacks the engine layout:\n%s", page)
			}
			if p := httpGet(t, base+"/debug/pprof/"); !strings.Contains(p, "goroutine") {
				t.Errorf("pprof index: %q", p)
			}
			if err := s.Shutdown(context.Background()); err != nil {
				t.Fatal(err)
			}
			if err := <-served; err != nil {
				t.Fatalf("ListenAndServe after Shutdown: %v", err)
			}
			if _, err := http.Get(base + "/metrics"); err == nil {
				t.Error("HTTP still served after Shutdown")
			}
			if _, err := e.Get([]byte("k1")); !errors.Is(err, kvs.ErrClosed) {
				t.Errorf("engine not closed by Shutdown: %v", err)
			}
		})
	}
}

func httpGet(t *testing.T, url string) string {
	t.Helper()
	resp, err := http.Get(url)
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	b, err := io.ReadAll(resp.Body)
	if err != nil || resp.StatusCode != http.StatusOK {
		t.Fatalf("GET %s: %d, %v", url, resp.StatusCode, err)
	}
	return string(b)
}

// TestGroupCommitSharesFsyncsAcrossClients runs 32 clients writing their
// own keys under each sync mode, on engines whose fsyncs take a
// millisecond (so that writers queue behind one). Under group, clients'
// writes share fsyncs: far fewer fsyncs than writes. Under always (the
// engine opened with DisableGroupCommit, as kvs serve does), every write
// pays its own.
func TestGroupCommitSharesFsyncsAcrossClients(t *testing.T) {
	const clients, perClient = 32, 10
	const writes = clients * perClient
	for _, eng := range engines {
		for _, mode := range []SyncMode{SyncGroup, SyncAlways} {
			t.Run("engine="+eng+"/sync="+string(mode), func(t *testing.T) {
				slow := vfs.Inject(vfs.Default, vfs.InjectorFunc(func(op vfs.Op, _ string) error {
					if op == vfs.OpSync {
						time.Sleep(time.Millisecond)
					}
					return nil
				}))
				e, err := kvs.Open(eng, t.TempDir(), &kvs.Options{FS: slow, Logger: kvs.DiscardLogger(), DisableGroupCommit: mode == SyncAlways})
				if err != nil {
					t.Fatal(err)
				}
				b := NewEngineBackend(eng, e, mode)
				s, err := New(b, Config{Addr: "127.0.0.1:0", Logger: kvs.DiscardLogger()})
				if err != nil {
					t.Fatal(err)
				}
				ln, err := net.Listen("tcp", "127.0.0.1:0")
				if err != nil {
					t.Fatal(err)
				}
				ts := &testServer{Server: s, addr: ln.Addr().String(), served: make(chan error, 1)}
				go func() { ts.served <- s.Serve(ln) }()
				t.Cleanup(func() { ts.stop(t) })

				rdb := newClient(t, ts.addr, func(o *redis.Options) { o.PoolSize = clients })
				ctx := context.Background()
				if err := rdb.Ping(ctx).Err(); err != nil {
					t.Fatal(err)
				}
				before := b.Stats().Syncs
				var wg sync.WaitGroup
				errs := make(chan error, clients)
				for c := range clients {
					wg.Go(func() {
						for i := range perClient {
							if err := rdb.Set(ctx, fmt.Sprintf("c%d-%d", c, i), "v", 0).Err(); err != nil {
								errs <- err
								return
							}
						}
					})
				}
				wg.Wait()
				close(errs)
				for err := range errs {
					t.Fatal(err)
				}
				syncs := b.Stats().Syncs - before
				t.Logf("%d acknowledged synced writes from %d clients: %d fsyncs", writes, clients, syncs)
				switch mode {
				case SyncGroup:
					if syncs > writes/2 {
						t.Errorf("group commit: %d fsyncs for %d writes from %d clients; want them shared (at most %d)", syncs, writes, clients, writes/2)
					}
				case SyncAlways:
					if syncs < writes {
						t.Errorf("sync always: %d fsyncs for %d writes; want one per write", syncs, writes)
					}
				}
			})
		}
	}
}
