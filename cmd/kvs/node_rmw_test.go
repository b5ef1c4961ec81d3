package main

import (
	"context"
	"errors"
	"fmt"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/redis/go-redis/v9"
)

// TestNodeReadModifyWrite sends the read-modify-write commands to the
// leader of a three-process `kvs node` cluster through go-redis (which
// also sends HELLO first, and must fall back to RESP2 on the -ERR) and
// checks each reply against what Redis answers: INCR and friends, INCR
// on a non-integer and past int64 (Redis's error text, value
// unchanged), SET NX/XX/GET, GETSET, APPEND; then concurrent INCRs, whose
// replies must all differ and add up; DBSIZE must count user keys only,
// not the client sessions the state machine keeps beside them; and a
// follower must redirect an INCR (MOVED: not executed).
func TestNodeReadModifyWrite(t *testing.T) {
	c := startNodeCluster(t, "lsm")
	leader := c.leader(t, 10*time.Second, 0)
	if leader == 0 {
		t.Fatal("no leader within 10 s")
	}
	rc := redis.NewClient(&redis.Options{Addr: "127.0.0.1:" + c.respPorts[leader], MaxRetries: -1,
		DialTimeout: 5 * time.Second, ReadTimeout: 10 * time.Second, WriteTimeout: 10 * time.Second, PoolSize: 8})
	defer rc.Close()
	ctx := context.Background()

	wantInt := func(what string, cmd *redis.IntCmd, want int64) {
		t.Helper()
		if got, err := cmd.Result(); err != nil || got != want {
			t.Errorf("%s = %d, %v; want %d", what, got, err, want)
		}
	}
	wantErr := func(what string, err error, want string) {
		t.Helper()
		if err == nil || err.Error() != want {
			t.Errorf("%s: error %v, want %q", what, err, want)
		}
	}
	wantGet := func(key, want string) {
		t.Helper()
		if got, err := rc.Get(ctx, key).Result(); err != nil || got != want {
			t.Errorf("GET %s = %q, %v; want %q", key, got, err, want)
		}
	}
	wantNil := func(what string, err error) {
		t.Helper()
		if !errors.Is(err, redis.Nil) {
			t.Errorf("%s: %v, want a nil reply", what, err)
		}
	}

	wantInt("INCR n", rc.Incr(ctx, "n"), 1)
	wantInt("INCRBY n 10", rc.IncrBy(ctx, "n", 10), 11)
	wantInt("DECR n", rc.Decr(ctx, "n"), 10)
	wantInt("DECRBY n 4", rc.DecrBy(ctx, "n", 4), 6)
	wantGet("n", "6")

	if err := rc.Set(ctx, "s", "abc", 0).Err(); err != nil {
		t.Fatal(err)
	}
	wantErr("INCR s", rc.Incr(ctx, "s").Err(), "ERR value is not an integer or out of range")
	wantGet("s", "abc")
	if err := rc.Set(ctx, "max", "9223372036854775807", 0).Err(); err != nil {
		t.Fatal(err)
	}
	wantErr("INCR max", rc.Incr(ctx, "max").Err(), "ERR increment or decrement would overflow")
	wantGet("max", "9223372036854775807")

	if ok, err := rc.SetNX(ctx, "nx", "v1", 0).Result(); err != nil || !ok {
		t.Errorf("SET nx v1 NX = %v, %v; want OK", ok, err)
	}
	if ok, err := rc.SetNX(ctx, "nx", "v2", 0).Result(); err != nil || ok {
		t.Errorf("second SET nx v2 NX = %v, %v; want nil (not set)", ok, err)
	}
	wantGet("nx", "v1")
	if ok, err := rc.SetXX(ctx, "absent", "v", 0).Result(); err != nil || ok {
		t.Errorf("SET absent v XX = %v, %v; want nil (not set)", ok, err)
	}
	wantNil("GET absent", rc.Get(ctx, "absent").Err())
	if old, err := rc.SetArgs(ctx, "nx", "v3", redis.SetArgs{Mode: "XX", Get: true}).Result(); err != nil || old != "v1" {
		t.Errorf("SET nx v3 XX GET = %q, %v; want v1", old, err)
	}
	wantNil("SET fresh v GET", rc.SetArgs(ctx, "fresh", "v", redis.SetArgs{Get: true}).Err())
	if old, err := rc.Do(ctx, "GETSET", "nx", "v4").Text(); err != nil || old != "v3" {
		t.Errorf("GETSET nx v4 = %q, %v; want v3", old, err)
	}
	wantGet("nx", "v4")
	if err := rc.Set(ctx, "empty", "", 0).Err(); err != nil {
		t.Fatal(err)
	}
	if old, err := rc.Do(ctx, "GETSET", "empty", "x").Text(); err != nil || old != "" {
		t.Errorf("GETSET of an empty value = %q, %v; want an empty bulk", old, err)
	}
	wantInt("APPEND ap hello", rc.Append(ctx, "ap", "hello"), 5)
	wantInt("APPEND ap !", rc.Append(ctx, "ap", "!"), 6)
	wantGet("ap", "hello!")

	// Concurrent INCRs take distinct sessions of the node: every reply
	// differs, and the count adds up.
	const workers, each = 4, 25
	var mu sync.Mutex
	seen := map[int64]bool{}
	var wg sync.WaitGroup
	for range workers {
		wg.Go(func() {
			for range each {
				n, err := rc.Incr(ctx, "ctr").Result()
				mu.Lock()
				if err != nil {
					t.Errorf("INCR ctr: %v", err)
				} else if seen[n] {
					t.Errorf("INCR ctr replied %d twice", n)
				}
				seen[n] = true
				mu.Unlock()
			}
		})
	}
	wg.Wait()
	wantGet("ctr", fmt.Sprint(workers*each))

	// n s max nx fresh empty ap ctr: 8 keys; the sessions are not keys.
	wantInt("DBSIZE", rc.DBSize(ctx), 8)
	var keys []string
	for cursor := uint64(0); ; {
		page, next, err := rc.Scan(ctx, cursor, "*", 3).Result()
		if err != nil {
			t.Fatalf("SCAN: %v", err)
		}
		keys = append(keys, page...)
		if cursor = next; cursor == 0 {
			break
		}
	}
	if len(keys) != 8 {
		t.Errorf("SCAN found %q, want the 8 user keys", keys)
	}

	for id, port := range c.respPorts {
		if id == leader {
			continue
		}
		// A plain (non-cluster) go-redis client does not follow MOVED: it
		// hands the redirect back as the error.
		fc := redis.NewClient(&redis.Options{Addr: "127.0.0.1:" + port, MaxRetries: -1, DialTimeout: 5 * time.Second, ReadTimeout: 5 * time.Second})
		if err := fc.Incr(ctx, "n").Err(); err == nil || !strings.HasPrefix(err.Error(), "MOVED 0 ") {
			t.Errorf("INCR on follower %d: %v, want MOVED", id, err)
		}
		fc.Close()
	}
	wantGet("n", "6")
}
