package server

import (
	"context"
	"fmt"
	"io"
	"runtime"
	"strings"
	"testing"
	"time"

	"github.com/redis/go-redis/v9"
)

func TestOversizedKeyOrValueKeepsConnection(t *testing.T) {
	// MaxKeyBytes over MaxValueBytes: a value just over its limit is
	// buffered and refused by the command, not skipped by the framer.
	ts := startServer(t, "bitcask", t.TempDir(), SyncNone, func(c *Config) { c.MaxKeyBytes, c.MaxValueBytes = 2048, 1024 })
	rdb := newClient(t, ts.addr, func(o *redis.Options) { o.PoolSize = 1 })
	ctx := context.Background()
	err := rdb.Set(ctx, "k", strings.Repeat("v", 1025), 0).Err()
	if err == nil || err.Error() != "ERR value too large: 1025 bytes, the limit is 1024" {
		t.Fatalf("oversized value: %v", err)
	}
	err = rdb.Set(ctx, strings.Repeat("k", 2049), "v", 0).Err()
	if err == nil || err.Error() != "ERR argument too large: 2049 bytes, the limit is 2048 for keys and 1024 for values" {
		t.Fatalf("oversized key: %v", err)
	}
	// Longer than any key or value: skipped as it arrives, never buffered.
	ts2 := startServer(t, "lsm", t.TempDir(), SyncNone, func(c *Config) { c.MaxKeyBytes, c.MaxValueBytes = 16, 1024 })
	rdb2 := newClient(t, ts2.addr, nil)
	err = rdb2.Get(ctx, strings.Repeat("k", 17)).Err()
	if err == nil || err.Error() != "ERR key too large: 17 bytes, the limit is 16" {
		t.Fatalf("oversized key: %v", err)
	}
	if err := rdb2.Ping(ctx).Err(); err != nil {
		t.Fatal(err)
	}
	err = rdb.Set(ctx, "k", strings.Repeat("v", 1<<20), 0).Err()
	if err == nil || err.Error() != "ERR argument too large: 1048576 bytes, the limit is 2048 for keys and 1024 for values" {
		t.Fatalf("huge value: %v", err)
	}
	err = rdb.Append(ctx, "k", strings.Repeat("v", 1000)).Err()
	if err != nil {
		t.Fatal(err)
	}
	if err := rdb.Append(ctx, "k", strings.Repeat("v", 25)).Err(); err == nil || !strings.Contains(err.Error(), "maximum allowed size") {
		t.Fatalf("APPEND past the limit: %v", err)
	}
	// The same connection still works.
	if err := rdb.Set(ctx, "k", "ok", 0).Err(); err != nil {
		t.Fatal(err)
	}
	if v, err := rdb.Get(ctx, "k").Result(); err != nil || v != "ok" {
		t.Fatalf("GET after errors = %q, %v", v, err)
	}
	if n := ts.clientCount(); n != 1 {
		t.Fatalf("%d connections, want the one kept", n)
	}
}

func TestHugeBulkHeaderClosesWithoutBuffering(t *testing.T) {
	ts := startServer(t, "bitcask", t.TempDir(), SyncNone, nil)
	other := newClient(t, ts.addr, nil)
	ctx := context.Background()
	var before runtime.MemStats
	runtime.GC()
	runtime.ReadMemStats(&before)

	c := dialRaw(t, ts.addr)
	c.send("*1\r\n$600000000\r\n")
	// Keep sending: the server must not be reading these into memory.
	go func() {
		chunk := make([]byte, 1<<20)
		for range 64 {
			if _, err := c.Write(chunk); err != nil {
				return
			}
		}
	}()
	if got := c.line(); got != "-ERR Protocol error: invalid bulk length" {
		t.Fatalf("reply %q", got)
	}
	c.expectClosed()
	if err := other.Set(ctx, "k", "v", 0).Err(); err != nil {
		t.Fatalf("another client after the bad one: %v", err)
	}
	var after runtime.MemStats
	runtime.GC()
	runtime.ReadMemStats(&after)
	if grew := int64(after.HeapAlloc) - int64(before.HeapAlloc); grew > 64<<20 {
		t.Fatalf("heap grew by %d MiB", grew>>20)
	}
}

func TestStreamedHugeValueStaysBounded(t *testing.T) {
	// 96 MiB (512 MiB without -short) of one value, within MaxBulkBytes
	// but over MaxValueBytes: the server drops it as it arrives and keeps
	// the connection.
	size := 96 << 20
	if !testing.Short() {
		size = 500 << 20
	}
	ts := startServer(t, "bitcask", t.TempDir(), SyncNone, nil)
	var before, peak runtime.MemStats
	runtime.GC()
	runtime.ReadMemStats(&before)
	c := dialRaw(t, ts.addr)
	c.send(fmt.Sprintf("*3\r\n$3\r\nSET\r\n$1\r\nk\r\n$%d\r\n", size))
	chunk := make([]byte, 1<<20)
	for sent := 0; sent < size; sent += len(chunk) {
		if _, err := c.Write(chunk[:min(len(chunk), size-sent)]); err != nil {
			t.Fatal(err)
		}
		if sent%(32<<20) == 0 {
			runtime.ReadMemStats(&peak)
			if grew := int64(peak.HeapAlloc) - int64(before.HeapAlloc); grew > 64<<20 {
				t.Fatalf("heap grew by %d MiB after %d MiB sent", grew>>20, sent>>20)
			}
		}
	}
	c.send("\r\n*1\r\n$4\r\nPING\r\n")
	if got := c.line(); !strings.HasPrefix(got, "-ERR argument too large") {
		t.Fatalf("reply %q", got)
	}
	if got := c.line(); got != "+PONG" {
		t.Fatalf("after the skipped value: %q", got)
	}
	runtime.ReadMemStats(&peak)
	if grew := int64(peak.HeapAlloc) - int64(before.HeapAlloc); grew > 64<<20 {
		t.Fatalf("heap grew by %d MiB", grew>>20)
	}
}

func TestQueryLimitClosesConnection(t *testing.T) {
	ts := startServer(t, "bitcask", t.TempDir(), SyncNone, func(c *Config) {
		c.MaxKeyBytes, c.MaxValueBytes, c.MaxQueryBytes = 16, 1024, 8192
	})
	c := dialRaw(t, ts.addr)
	// MSET of 20 keys with 1000-byte values: each fits, together they
	// exceed MaxQueryBytes.
	var b strings.Builder
	fmt.Fprintf(&b, "*41\r\n$4\r\nMSET\r\n")
	for i := range 20 {
		fmt.Fprintf(&b, "$3\r\nk%02d\r\n$1000\r\n%s\r\n", i, strings.Repeat("v", 1000))
	}
	c.send(b.String())
	if got := c.line(); got != "-ERR max query buffer length exceeded, closing the connection" {
		t.Fatalf("reply %q", got)
	}
	c.expectClosed()
}

func TestTooManyArgsIsProtocolError(t *testing.T) {
	ts := startServer(t, "bitcask", t.TempDir(), SyncNone, func(c *Config) { c.MaxArgs = 3 })
	c := dialRaw(t, ts.addr)
	c.send("*4\r\n")
	if got := c.line(); got != "-ERR Protocol error: invalid multibulk length" {
		t.Fatalf("reply %q", got)
	}
	c.expectClosed()
}

func TestMaxClientsRejectsOneOver(t *testing.T) {
	ts := startServer(t, "bitcask", t.TempDir(), SyncNone, func(c *Config) { c.MaxClients = 2 })
	for range 2 {
		c := dialRaw(t, ts.addr)
		c.send("PING\r\n")
		if got := c.line(); got != "+PONG" {
			t.Fatalf("client within the limit: %q", got)
		}
	}
	c := dialRaw(t, ts.addr)
	if got := c.line(); got != "-ERR max number of clients reached" {
		t.Fatalf("one over: %q", got)
	}
	c.expectClosed()
	if n := ts.nRejected.Load(); n != 1 {
		t.Fatalf("rejected = %d", n)
	}
}

func TestIdleTimeoutClosesClient(t *testing.T) {
	ts := startServer(t, "bitcask", t.TempDir(), SyncNone, func(c *Config) { c.IdleTimeout = 200 * time.Millisecond })
	c := dialRaw(t, ts.addr)
	c.send("PING\r\n")
	if got := c.line(); got != "+PONG" {
		t.Fatal(got)
	}
	start := time.Now()
	c.expectClosed()
	if d := time.Since(start); d < 150*time.Millisecond {
		t.Fatalf("closed after %v, before the idle timeout", d)
	}
}

func TestMalformedRESPIsProtocolError(t *testing.T) {
	ts := startServer(t, "bitcask", t.TempDir(), SyncNone, nil)
	for _, tc := range []struct{ in, reply string }{
		{"*x\r\n", "-ERR Protocol error: invalid multibulk length"},
		{"*1\nfoo", "-ERR Protocol error: invalid multibulk length"},
		{"*99999999999999999999999\r\n", "-ERR Protocol error: invalid multibulk length"},
		{"*1\r\nfoo\r\n", "-ERR Protocol error: expected '$', got 'f'"},
		{"*1\r\n$-2\r\n", "-ERR Protocol error: invalid bulk length"},
		{"*1\r\n$abc\r\n", "-ERR Protocol error: invalid bulk length"},
		{"*1\r\n$1\r\nabc\r\n", "-ERR Protocol error: invalid bulk length"},
		{"*2\r\n$4\r\nPING\r\n\x00", "-ERR Protocol error: expected '$', got '\\x0'"},
		{"$4\r\nPING\r\n", "-ERR Protocol error: expected '*', got '$'"},
		{"ECHO \"unbalanced\r\n", "-ERR Protocol error: unbalanced quotes in request"},
		{strings.Repeat("x", 70<<10), "-ERR Protocol error: too big inline request"},
	} {
		c := dialRaw(t, ts.addr)
		c.send(tc.in)
		if got := c.line(); got != tc.reply {
			t.Errorf("%.40q: reply %q, want %q", tc.in, got, tc.reply)
		}
		c.expectClosed()
	}
	// Empty commands are ignored, as Redis does.
	c := dialRaw(t, ts.addr)
	c.send("*0\r\n*-1\r\n\r\n*1\r\n$4\r\nPING\r\n")
	if got := c.line(); got != "+PONG" {
		t.Fatalf("after empty commands: %q", got)
	}
	c.Close()
	_, _ = io.Copy(io.Discard, c.r)
}
