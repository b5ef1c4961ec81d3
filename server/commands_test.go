package server

import (
	"context"
	"errors"
	"fmt"
	"reflect"
	"strconv"
	"strings"
	"testing"

	"github.com/redis/go-redis/v9"
)

// step is one command and its Redis-compatible reply: want for a value
// (nil for a null reply), err for an error reply's exact text.
type step struct {
	args []any
	want any
	err  string
}

func runSteps(t *testing.T, rdb *redis.Client, steps []step) {
	t.Helper()
	ctx := context.Background()
	for _, s := range steps {
		got, err := rdb.Do(ctx, s.args...).Result()
		name := fmt.Sprintf("%q", s.args)
		switch {
		case s.err != "":
			if err == nil || err.Error() != s.err {
				t.Errorf("%s: error %v, want %q (reply %#v)", name, err, s.err, got)
			}
		case errors.Is(err, redis.Nil):
			if s.want != nil {
				t.Errorf("%s: null reply, want %#v", name, s.want)
			}
		case err != nil:
			t.Errorf("%s: error %v, want %#v", name, err, s.want)
		case !reflect.DeepEqual(got, s.want):
			t.Errorf("%s: got %#v, want %#v", name, got, s.want)
		}
	}
}

func TestCommandsReplyLikeRedis(t *testing.T) {
	for _, eng := range engines {
		t.Run("engine="+eng, func(t *testing.T) {
			ts := startServer(t, eng, t.TempDir(), SyncNone, nil)
			rdb := newClient(t, ts.addr, nil)
			wrongType := "ERR value is not an integer or out of range"
			runSteps(t, rdb, []step{
				{args: []any{"PING"}, want: "PONG"},
				{args: []any{"ping", "hi"}, want: "hi"},
				{args: []any{"ping", "a", "b"}, err: "ERR wrong number of arguments for 'ping' command"},
				{args: []any{"ECHO", "hello world"}, want: "hello world"},
				{args: []any{"GET", "k"}, want: nil},
				{args: []any{"SET", "k", "v1"}, want: "OK"},
				{args: []any{"GET", "k"}, want: "v1"},
				{args: []any{"SET", "k", "v2", "NX"}, want: nil},
				{args: []any{"SET", "k", "v2", "XX"}, want: "OK"},
				{args: []any{"SET", "absent", "v", "XX"}, want: nil},
				{args: []any{"SET", "k", "v3", "GET"}, want: "v2"},
				{args: []any{"SET", "new", "n1", "NX", "GET"}, want: nil},
				{args: []any{"GET", "new"}, want: "n1"},
				{args: []any{"SET", "k", "v", "NX", "XX"}, err: "ERR syntax error"},
				{args: []any{"SET", "k", "v", "BOGUS"}, err: "ERR syntax error"},
				{args: []any{"SET", "k", "v", "EX", "10"}, err: "ERR TTL options are not supported by kvs"},
				{args: []any{"set", "k", "v", "px", "10"}, err: "ERR TTL options are not supported by kvs"},
				{args: []any{"SET", "k", "v", "KEEPTTL"}, err: "ERR TTL options are not supported by kvs"},
				{args: []any{"SET", "k"}, err: "ERR wrong number of arguments for 'set' command"},
				{args: []any{"GETSET", "k", "v4"}, want: "v3"},
				{args: []any{"GETSET", "fresh", "f"}, want: nil},
				{args: []any{"EXISTS", "k", "k", "nope", "fresh"}, want: int64(3)},
				{args: []any{"DEL", "fresh", "fresh", "nope"}, want: int64(1)},
				{args: []any{"EXISTS", "fresh"}, want: int64(0)},
				{args: []any{"MSET", "a", "1", "b", "2", "c", "3"}, want: "OK"},
				{args: []any{"MSET", "a", "1", "b"}, err: "ERR wrong number of arguments for 'mset' command"},
				{args: []any{"MGET", "a", "nope", "c"}, want: []any{"1", nil, "3"}},
				{args: []any{"INCR", "counter"}, want: int64(1)},
				{args: []any{"INCRBY", "counter", "41"}, want: int64(42)},
				{args: []any{"DECR", "counter"}, want: int64(41)},
				{args: []any{"DECRBY", "counter", "50"}, want: int64(-9)},
				{args: []any{"INCRBY", "counter", "x"}, err: wrongType},
				{args: []any{"INCR", "k"}, err: wrongType},
				{args: []any{"SET", "big", "9223372036854775807"}, want: "OK"},
				{args: []any{"INCR", "big"}, err: "ERR increment or decrement would overflow"},
				{args: []any{"SET", "spaced", " 1"}, want: "OK"},
				{args: []any{"INCR", "spaced"}, err: wrongType},
				{args: []any{"DECRBY", "counter", "-9223372036854775808"}, err: "ERR decrement would overflow"},
				{args: []any{"APPEND", "ap", "Hello"}, want: int64(5)},
				{args: []any{"APPEND", "ap", " World"}, want: int64(11)},
				{args: []any{"GET", "ap"}, want: "Hello World"},
				{args: []any{"STRLEN", "ap"}, want: int64(11)},
				{args: []any{"STRLEN", "nope"}, want: int64(0)},
				{args: []any{"SELECT", "0"}, want: "OK"},
				{args: []any{"SELECT", "1"}, err: "ERR DB index is out of range"},
				{args: []any{"SELECT", "x"}, err: wrongType},
				{args: []any{"FOO", "a", "b"}, err: "ERR unknown command 'FOO', with args beginning with: 'a' 'b' "},
				{args: []any{"hello", "3"}, err: "ERR unknown command 'hello', with args beginning with: '3' "},
				{args: []any{"GET"}, err: "ERR wrong number of arguments for 'get' command"},
				{args: []any{"GET", ""}, err: "ERR empty keys are not supported by kvs"},
				{args: []any{"CLIENT", "SETNAME", "tester"}, want: "OK"},
				{args: []any{"CLIENT", "GETNAME"}, want: "tester"},
				{args: []any{"CLIENT", "SETNAME", "two words"}, err: "ERR Client names cannot contain spaces, newlines or special characters."},
				{args: []any{"CLIENT", "NOPE"}, err: "ERR unknown subcommand 'NOPE'. Try CLIENT HELP."},
				{args: []any{"COMMAND", "COUNT"}, want: int64(len(commands))},
				{args: []any{"COMMAND", "DOCS"}, want: []any{}},
				{args: []any{"COMMAND", "INFO", "get", "nope"}, want: []any{[]any{"get", int64(2), []any{"readonly"}, int64(1), int64(1), int64(1)}, nil}},
				{args: []any{"AUTH", "pw"}, err: "ERR AUTH <password> called without any password configured for the default user. Are you sure your configuration is correct?"},
				{args: []any{"KVS.COMPACT"}, want: "OK"},
				{args: []any{"GET", "a"}, want: "1"},
				{args: []any{"PING"}, want: "PONG"},
			})
			ctx := context.Background()
			n, err := rdb.DBSize(ctx).Result()
			if err != nil || n != 9 {
				t.Errorf("DBSIZE = %d, %v; want 9", n, err)
			}
			id, err := rdb.ClientID(ctx).Result()
			if err != nil || id <= 0 {
				t.Errorf("CLIENT ID = %d, %v", id, err)
			}
			list, err := rdb.ClientList(ctx).Result()
			if err != nil || !strings.Contains(list, "name=tester") || !strings.Contains(list, fmt.Sprintf("id=%d ", id)) {
				t.Errorf("CLIENT LIST = %q, %v", list, err)
			}
			info, err := rdb.Info(ctx).Result()
			for _, want := range []string{"# Server", "redis_version:", "# Clients", "connected_clients:", "# Stats", "total_commands_processed:", "# Keyspace", "db0:keys=", "# Engine", "engine:" + eng, "bytes_on_disk:", "write_amp:"} {
				if err != nil || !strings.Contains(info, want) {
					t.Errorf("INFO lacks %q (err %v):\n%s", want, err, info)
				}
			}
			if eng == "lsm" && !strings.Contains(info, "level0:files=") {
				t.Errorf("INFO engine section lacks levels:\n%s", info)
			}
			if eng == "bitcask" && !strings.Contains(info, "segments:") {
				t.Errorf("INFO engine section lacks segments:\n%s", info)
			}
			only, _ := rdb.Info(ctx, "engine").Result()
			if strings.Contains(only, "# Server") || !strings.Contains(only, "# Engine") {
				t.Errorf("INFO engine = %q", only)
			}
			stats, err := rdb.Do(ctx, "KVS.STATS").Text()
			if err != nil || !strings.Contains(stats, "engine: "+eng) {
				t.Errorf("KVS.STATS = %q, %v", stats, err)
			}
			all, err := rdb.Do(ctx, "COMMAND").Slice()
			if err != nil || len(all) != len(commands) {
				t.Errorf("COMMAND returned %d entries, %v", len(all), err)
			}
		})
	}
}

func TestUnknownCommandKeepsConnection(t *testing.T) {
	ts := startServer(t, "bitcask", t.TempDir(), SyncNone, nil)
	c := dialRaw(t, ts.addr)
	c.send("*3\r\n$3\r\nfoo\r\n$1\r\na\r\n$1\r\nb\r\n*1\r\n$4\r\nPING\r\n")
	if got, want := c.line(), "-ERR unknown command 'foo', with args beginning with: 'a' 'b' "; got != want {
		t.Errorf("got %q, want %q", got, want)
	}
	if got := c.line(); got != "+PONG" {
		t.Errorf("after unknown command: %q", got)
	}
	if n := ts.nErrors.Load(); n != 1 {
		t.Errorf("total_error_replies after one unknown command = %d, want 1 (Redis counts them)", n)
	}
	// Inline commands work too (telnet, redis-cli's fallback).
	c.send("PING\r\nECHO \"a b\"\r\n")
	if got := c.line(); got != "+PONG" {
		t.Errorf("inline PING: %q", got)
	}
	if got := c.line() + c.line(); got != "$3a b" {
		t.Errorf("inline ECHO: %q", got)
	}
}

func TestGoRedisTypedAPI(t *testing.T) {
	ts := startServer(t, "lsm", t.TempDir(), SyncNone, nil)
	rdb := newClient(t, ts.addr, nil)
	ctx := context.Background()
	if err := rdb.Set(ctx, "k", "v", 0).Err(); err != nil {
		t.Fatal(err)
	}
	if v, err := rdb.Get(ctx, "k").Result(); err != nil || v != "v" {
		t.Fatalf("Get = %q, %v", v, err)
	}
	if err := rdb.Get(ctx, "missing").Err(); !errors.Is(err, redis.Nil) {
		t.Fatalf("Get missing: %v", err)
	}
	if ok, err := rdb.SetNX(ctx, "k", "x", 0).Result(); err != nil || ok {
		t.Fatalf("SetNX existing = %v, %v", ok, err)
	}
	if n, err := rdb.Incr(ctx, "n").Result(); err != nil || n != 1 {
		t.Fatalf("Incr = %d, %v", n, err)
	}
	if err := rdb.Set(ctx, "t", "v", 5e9).Err(); err == nil || !strings.Contains(err.Error(), "TTL options are not supported") {
		t.Fatalf("Set with TTL: %v", err)
	}
}

// TestConfigGetAnswersWhatRedisBenchmarkAsks checks CONFIG GET's few
// read-only parameters (redis-benchmark asks for save and appendonly
// before it starts) and that CONFIG SET is refused with a clear error.
func TestConfigGetAnswersWhatRedisBenchmarkAsks(t *testing.T) {
	for _, c := range []struct {
		mode       SyncMode
		appendonly string
	}{{SyncNone, "no"}, {SyncGroup, "yes"}} {
		ts := startServer(t, "bitcask", t.TempDir(), c.mode, nil)
		rc := dialRaw(t, ts.addr)
		rc.send("*4\r\n$6\r\nCONFIG\r\n$3\r\nGET\r\n$4\r\nsave\r\n$10\r\nAPPENDONLY\r\n")
		got := make([]string, 9)
		for i := range got {
			got[i] = rc.line()
		}
		want := []string{"*4", "$10", "appendonly", "$" + strconv.Itoa(len(c.appendonly)), c.appendonly, "$4", "save", "$0", ""}
		if strings.Join(got, "|") != strings.Join(want, "|") {
			t.Errorf("sync %s: CONFIG GET save APPENDONLY = %q, want %q", c.mode, got, want)
		}
		rc.send("*4\r\n$6\r\nCONFIG\r\n$3\r\nSET\r\n$4\r\nsave\r\n$0\r\n\r\n*2\r\n$6\r\nCONFIG\r\n$3\r\nGET\r\n")
		if got := rc.line(); !strings.HasPrefix(got, "-ERR CONFIG SET is not supported by kvs") {
			t.Errorf("CONFIG SET: %q", got)
		}
		if got := rc.line(); got != "-ERR wrong number of arguments for 'config|get' command" {
			t.Errorf("CONFIG GET without a parameter: %q", got)
		}
	}
}
