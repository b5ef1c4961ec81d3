package server

import (
	"context"
	"errors"
	"fmt"
	"net"
	"strings"
	"sync/atomic"
	"testing"
	"time"

	"github.com/kvs-lab/kvs"
	"github.com/redis/go-redis/v9"
)

// countingBackend counts the writes that reach the backend, and can make
// MSet fail.
type countingBackend struct {
	Backend
	sets, msets, msetKeys atomic.Int64
	maxMSet               atomic.Int64 // most keys in one MSet
	failMSet              atomic.Bool
}

func (b *countingBackend) Set(key, value []byte) error {
	b.sets.Add(1)
	return b.Backend.Set(key, value)
}

func (b *countingBackend) MSet(pairs [][]byte) error {
	b.msets.Add(1)
	n := int64(len(pairs) / 2)
	b.msetKeys.Add(n)
	for m := b.maxMSet.Load(); n > m && !b.maxMSet.CompareAndSwap(m, n); m = b.maxMSet.Load() {
	}
	if b.failMSet.Load() {
		return errors.New("injected: the engine refused the batch")
	}
	return b.Backend.MSet(pairs)
}

// startCounting serves bitcask through a countingBackend.
func startCounting(t *testing.T, batch int) (*countingBackend, string) {
	t.Helper()
	cb := &countingBackend{Backend: NewEngineBackend("bitcask", openEngine(t, "bitcask", t.TempDir()), SyncNone)}
	s, err := New(cb, Config{Addr: "127.0.0.1:0", PipelineBatch: batch, MaxValueBytes: 64, Logger: kvs.DiscardLogger()})
	if err != nil {
		t.Fatal(err)
	}
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	served := make(chan error, 1)
	go func() { served <- s.Serve(ln) }()
	t.Cleanup(func() {
		ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
		defer cancel()
		if err := s.Shutdown(ctx); err != nil {
			t.Error(err)
		}
		<-served
	})
	return cb, ln.Addr().String()
}

// TestPipelinedSetsAreMerged: a pipeline of plain SETs reaches the
// backend as MSets of at most PipelineBatch keys, and with PipelineBatch 1
// as one Set each. Every SET is answered and counted. (How many MSets
// depends on how the server's reads cut the pipeline: a run of SETs ends
// with each read. So the merged cases check bounds, not exact counts.)
func TestPipelinedSetsAreMerged(t *testing.T) {
	for _, batch := range []int{0, 50, 1} {
		t.Run(fmt.Sprintf("batch=%d", batch), func(t *testing.T) {
			cb, addr := startCounting(t, batch)
			rdb := newClient(t, addr, nil)
			ctx := context.Background()
			pipe := rdb.Pipeline()
			for i := range 200 {
				pipe.Set(ctx, fmt.Sprintf("k%03d", i), fmt.Sprintf("v%d", i), 0)
			}
			cmds, err := pipe.Exec(ctx)
			if err != nil {
				t.Fatal(err)
			}
			for i, c := range cmds {
				if s, err := c.(*redis.StatusCmd).Result(); err != nil || s != "OK" {
					t.Fatalf("SET %d: %q, %v", i, s, err)
				}
			}
			sets, msets, keys, most := cb.sets.Load(), cb.msets.Load(), cb.msetKeys.Load(), cb.maxMSet.Load()
			t.Logf("backend saw %d Sets and %d MSets (%d keys, at most %d in one)", sets, msets, keys, most)
			limit := int64(batch)
			if batch == 0 {
				limit = DefaultPipelineBatch
			}
			switch {
			case sets+keys != 200:
				t.Errorf("backend wrote %d keys, want 200", sets+keys)
			case batch == 1 && (sets != 200 || msets != 0):
				t.Errorf("merging off: %d Sets and %d MSets, want 200 and 0", sets, msets)
			case batch != 1 && (most > limit || sets+msets > 200/4):
				t.Errorf("merging: %d writes for 200 SETs, at most %d keys in one; want at least 4 SETs per write and at most %d", sets+msets, most, limit)
			}
			for i := range 200 {
				if v, err := rdb.Get(ctx, fmt.Sprintf("k%03d", i)).Result(); err != nil || v != fmt.Sprintf("v%d", i) {
					t.Fatalf("get k%03d = %q, %v", i, v, err)
				}
			}
			info, err := rdb.Info(ctx, "stats").Result()
			if err != nil || !strings.Contains(info, "total_commands_processed:") {
				t.Fatalf("INFO stats: %v", err)
			}
		})
	}
}

// TestPipelineOrderWithMergedSets mixes queued SETs with every other kind
// of reply in one pipeline: each command must see the SETs before it, and
// the replies must come in the order the commands were sent.
func TestPipelineOrderWithMergedSets(t *testing.T) {
	_, addr := startCounting(t, 0)
	c := dialRaw(t, addr)
	cmd := func(args ...string) string {
		var b strings.Builder
		fmt.Fprintf(&b, "*%d\r\n", len(args))
		for _, a := range args {
			fmt.Fprintf(&b, "$%d\r\n%s\r\n", len(a), a)
		}
		return b.String()
	}
	c.send(cmd("SET", "a", "1") + cmd("SET", "b", "2") + cmd("GET", "a") +
		cmd("SET", "a", "3") + cmd("SET", "a", "4") + cmd("GET", "a") +
		cmd("SET", "", "x") + // an error among queued SETs
		cmd("SET", "c", "5") + cmd("SET", "d", strings.Repeat("v", 65)) + // value over the limit
		cmd("SET", "e", "6") + cmd("NOSUCH") + cmd("SET", "f", "7") +
		cmd("SET", "g", "8", "NX") + cmd("SET", "g", "9") + cmd("MGET", "a", "b", "c", "e", "f", "g") +
		cmd("SET", "h", "10") + "*1\r\n$x\r\n") // a protocol error after a queued SET
	want := []string{"+OK", "+OK", "$1", "1",
		"+OK", "+OK", "$1", "4",
		"-ERR empty keys are not supported by kvs",
		"+OK", "-ERR value too large: 65 bytes, the limit is 64",
		"+OK", "-ERR unknown command 'NOSUCH', with args beginning with: ", "+OK",
		"+OK", "+OK", "*6", "$1", "4", "$1", "2", "$1", "5", "$1", "6", "$1", "7", "$1", "9",
		"+OK"}
	for i, w := range want {
		if got := c.line(); got != w {
			t.Fatalf("reply line %d = %q, want %q", i, got, w)
		}
	}
	if got := c.line(); !strings.HasPrefix(got, "-ERR Protocol error") {
		t.Fatalf("after the bad header: %q, want a protocol error", got)
	}
	// The SET queued before the protocol error was written.
	rdb := newClient(t, addr, nil)
	if v, err := rdb.Get(context.Background(), "h").Result(); err != nil || v != "10" {
		t.Fatalf("get h = %q, %v; want the SET before the protocol error applied", v, err)
	}
}

// TestMergedSetErrorAnswersEverySet: when the merged write fails, every
// SET in it gets the error, in order, and none claims success.
func TestMergedSetErrorAnswersEverySet(t *testing.T) {
	cb, addr := startCounting(t, 0)
	cb.failMSet.Store(true)
	rdb := newClient(t, addr, nil)
	ctx := context.Background()
	pipe := rdb.Pipeline()
	for i := range 10 {
		pipe.Set(ctx, fmt.Sprintf("k%d", i), "v", 0)
	}
	cmds, _ := pipe.Exec(ctx)
	for i, c := range cmds {
		if err := c.Err(); err == nil || !strings.Contains(err.Error(), "injected") {
			t.Fatalf("SET %d: %v, want the injected error", i, err)
		}
	}
	if cb.msetKeys.Load() != 10 {
		t.Fatalf("MSet saw %d keys, want all 10 in one write", cb.msetKeys.Load())
	}
}
