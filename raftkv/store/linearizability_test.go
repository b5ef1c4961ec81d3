package store_test

import (
	"errors"
	"fmt"
	"math"
	"math/rand/v2"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/anishathalye/porcupine"
	"github.com/kvs-lab/kvs"
	"github.com/kvs-lab/kvs/raftkv/api"
	"github.com/kvs-lab/kvs/raftkv/client"
)

// kvInput is one client operation of a recorded history.
type kvInput struct {
	op    string // "get", "put", "delete" or "incr"
	key   string
	value string // put only
	delta int64  // incr only
}

// kvOutput is what the operation returned. unknown marks a write whose
// outcome the client never learnt (it timed out or may have applied):
// the model lets it take effect or not, and its return time is the end
// of the history. An incr returns its new value in value, or fails with
// err "not an integer" or "overflow" (a known outcome: it changed
// nothing).
type kvOutput struct {
	value   string
	found   bool
	unknown bool
	err     string
}

// incrOf is what an incr by delta does to s, as Redis (and the state
// machine) define it: the new value, or the error.
func incrOf(s kvState, delta int64) (int64, string) {
	var n int64
	if s.found {
		v, err := strconv.ParseInt(s.value, 10, 64)
		if err != nil || strconv.FormatInt(v, 10) != s.value {
			return 0, "not an integer"
		}
		n = v
	}
	if (delta > 0 && n > math.MaxInt64-delta) || (delta < 0 && n < math.MinInt64-delta) {
		return 0, "overflow"
	}
	return n + delta, ""
}

// kvState is one key's value in the model; histories are partitioned
// per key.
type kvState struct {
	value string
	found bool
}

// kvModel is the sequential specification of a key-value map for
// porcupine: a get sees the last put or delete before it.
var kvModel = porcupine.Model{
	Partition: func(history []porcupine.Operation) [][]porcupine.Operation {
		byKey := map[string][]porcupine.Operation{}
		var keys []string
		for _, op := range history {
			k := op.Input.(kvInput).key
			if _, ok := byKey[k]; !ok {
				keys = append(keys, k)
			}
			byKey[k] = append(byKey[k], op)
		}
		out := make([][]porcupine.Operation, 0, len(keys))
		for _, k := range keys {
			out = append(out, byKey[k])
		}
		return out
	},
	Init: func() any { return kvState{} },
	Step: func(state, input, output any) (bool, any) {
		s, in, out := state.(kvState), input.(kvInput), output.(kvOutput)
		switch in.op {
		case "get":
			return out.found == s.found && out.value == s.value, s
		case "put":
			return true, kvState{value: in.value, found: true}
		case "incr":
			n, e := incrOf(s, in.delta)
			next := s
			if e == "" {
				next = kvState{value: strconv.FormatInt(n, 10), found: true}
			}
			if out.unknown {
				return true, next
			}
			return out.err == e && (e != "" || out.value == next.value), next
		default: // delete
			return true, kvState{}
		}
	},
	DescribeOperation: func(input, output any) string {
		in, out := input.(kvInput), output.(kvOutput)
		switch {
		case in.op == "get" && !out.found:
			return fmt.Sprintf("get(%s) -> absent", in.key)
		case in.op == "get":
			return fmt.Sprintf("get(%s) -> %s", in.key, out.value)
		case in.op == "put":
			return fmt.Sprintf("put(%s, %s)%s", in.key, in.value, unknownMark(out))
		case in.op == "incr" && out.err != "":
			return fmt.Sprintf("incr(%s, %d) -> %s", in.key, in.delta, out.err)
		case in.op == "incr":
			return fmt.Sprintf("incr(%s, %d) -> %s%s", in.key, in.delta, out.value, unknownMark(out))
		}
		return fmt.Sprintf("delete(%s)%s", in.key, unknownMark(out))
	},
	DescribeState: func(state any) string {
		if s := state.(kvState); s.found {
			return s.value
		}
		return "(absent)"
	},
}

func unknownMark(out kvOutput) string {
	if out.unknown {
		return " ?"
	}
	return ""
}

// recorder collects a history of client operations with call and return
// times from one monotonic clock.
type recorder struct {
	start time.Time
	mu    sync.Mutex
	ops   []porcupine.Operation
}

func newRecorder() *recorder { return &recorder{start: time.Now()} }

func (r *recorder) now() int64 { return int64(time.Since(r.start)) }

func (r *recorder) add(clientID int, in kvInput, out kvOutput, call, ret int64) {
	r.mu.Lock()
	defer r.mu.Unlock()
	r.ops = append(r.ops, porcupine.Operation{ClientId: clientID, Input: in, Call: call, Output: out, Return: ret})
}

// check runs porcupine over the history. Writes of unknown outcome get
// the end of the history as their return time. On a violation it writes
// porcupine's HTML visualisation under os.TempDir and fails, naming the
// file.
func (r *recorder) check(t testing.TB) {
	t.Helper()
	r.mu.Lock()
	ops := append([]porcupine.Operation(nil), r.ops...)
	r.mu.Unlock()
	end := r.now() + 1
	var unknown, reads int
	for i := range ops {
		if ops[i].Output.(kvOutput).unknown {
			ops[i].Return = end
			unknown++
		}
		if ops[i].Input.(kvInput).op == "get" {
			reads++
		}
	}
	res, info := porcupine.CheckOperationsVerbose(kvModel, ops, porcupineTimeout)
	t.Logf("history: %d operations (%d reads, %d writes of unknown outcome): %s", len(ops), reads, unknown, res)
	switch res {
	case porcupine.Illegal:
		name := strings.NewReplacer("/", "_", "=", "-").Replace(t.Name())
		path := filepath.Join(os.TempDir(), fmt.Sprintf("raftkv-%s-%d.html", name, time.Now().UnixNano()))
		if err := porcupine.VisualizePath(kvModel, info, path); err != nil {
			t.Fatalf("history is not linearizable; writing the visualisation failed: %v", err)
		}
		t.Fatalf("history is not linearizable: see %s", path)
	case porcupine.Unknown:
		// An undecided history is not a passed one: a bug that makes the
		// search blow up (many unknown writes, a stuck key) would hide
		// behind it.
		t.Fatalf("porcupine did not decide linearizability within %v: shrink the workload or raise the timeout", porcupineTimeout)
	}
}

// porcupineTimeout bounds porcupine's search of one history; generous,
// as the histories of a -short run take well under a second.
const porcupineTimeout = 2 * time.Minute

// workload runs clients goroutines of random gets, puts, incrs and deletes over
// keys keys through client.Client until stop is closed, recording every
// operation. A failed get is left out (it had no effect); a failed write
// is recorded with an unknown outcome.
type workload struct {
	clients int
	keys    int
	// opTimeout bounds one operation, attemptTimeout one try at one
	// store; short ones leave writes of unknown outcome in the history.
	opTimeout, attemptTimeout time.Duration
}

func (w workload) run(t testing.TB, c *cluster, rec *recorder, seed uint64, stop <-chan struct{}) (ok, failed int) {
	var wg sync.WaitGroup
	var mu sync.Mutex
	if w.opTimeout == 0 {
		w.opTimeout = 2 * time.Second
	}
	if w.attemptTimeout == 0 {
		w.attemptTimeout = time.Second
	}
	for ci := range w.clients {
		wg.Add(1)
		go func() {
			defer wg.Done()
			rng := rand.New(rand.NewPCG(seed, uint64(ci)))
			cl := client.New(c, &client.Config{AttemptTimeout: w.attemptTimeout})
			for i := 0; ; i++ {
				select {
				case <-stop:
					return
				default:
				}
				key := fmt.Sprintf("k%d", rng.IntN(w.keys))
				in := kvInput{key: key}
				var out kvOutput
				ctx, cancel := ctxTimeout(w.opTimeout)
				call := rec.now()
				var err error
				switch p := rng.IntN(10); {
				case p < 4:
					in.op = "get"
					var v []byte
					v, err = cl.Get(ctx, []byte(key))
					if errors.Is(err, kvs.ErrNotFound) {
						err = nil
					} else {
						out.value, out.found = string(v), err == nil
					}
				case p < 7:
					// Half the values are integers, which incrs can add to.
					in.op, in.value = "put", fmt.Sprintf("c%d.%d", ci, i)
					if i%2 == 0 {
						in.value = strconv.Itoa(ci*1_000_000 + i)
					}
					err = cl.Put(ctx, []byte(key), []byte(in.value))
				case p < 9:
					in.op, in.delta = "incr", int64(rng.IntN(5)+1)
					var n int64
					n, err = cl.IncrBy(ctx, []byte(key), in.delta)
					switch {
					case err == nil:
						out.value = strconv.FormatInt(n, 10)
					case errors.Is(err, api.ErrNotInteger):
						out.err, err = "not an integer", nil
					case errors.Is(err, api.ErrOverflow):
						out.err, err = "overflow", nil
					}
				default:
					in.op = "delete"
					err = cl.Delete(ctx, []byte(key))
				}
				ret := rec.now()
				cancel()
				mu.Lock()
				if err != nil {
					failed++
				} else {
					ok++
				}
				mu.Unlock()
				if err != nil {
					if in.op == "get" {
						continue
					}
					out.unknown = true
				}
				rec.add(ci, in, out, call, ret)
			}
		}()
	}
	wg.Wait()
	return ok, failed
}

// TestPorcupineCatchesStaleRead feeds the checker hand-made histories,
// so that it cannot silently pass everything: a read that misses a write
// completed before it began (the stale read a follower or a deposed
// leader would serve without ReadIndex, Raft §6.4) must be illegal, and
// the same read overlapping the write legal; a write of unknown outcome
// may or may not have happened. The incr cases check the model's
// read-modify-write: an increment applied twice, or one result handed
// to two clients, is illegal.
func TestPorcupineCatchesStaleRead(t *testing.T) {
	op := func(client int, in kvInput, out kvOutput, call, ret int64) porcupine.Operation {
		return porcupine.Operation{ClientId: client, Input: in, Output: out, Call: call, Return: ret}
	}
	put := kvInput{op: "put", key: "x", value: "1"}
	get := kvInput{op: "get", key: "x"}
	incr := kvInput{op: "incr", key: "x", delta: 1}
	absent := kvOutput{}
	one := kvOutput{value: "1", found: true}
	cases := []struct {
		name string
		ops  []porcupine.Operation
		want porcupine.CheckResult
	}{
		{"stale read after acknowledged put", []porcupine.Operation{op(0, put, kvOutput{}, 0, 10), op(1, get, absent, 20, 30)}, porcupine.Illegal},
		{"read overlapping put", []porcupine.Operation{op(0, put, kvOutput{}, 0, 25), op(1, get, absent, 20, 30)}, porcupine.Ok},
		{"read sees put then misses it", []porcupine.Operation{op(0, put, kvOutput{}, 0, 100), op(1, get, one, 10, 20), op(1, get, absent, 30, 40)}, porcupine.Illegal},
		{"unknown put seen", []porcupine.Operation{op(0, put, kvOutput{unknown: true}, 0, 1000), op(1, get, one, 30, 40)}, porcupine.Ok},
		{"unknown put not seen", []porcupine.Operation{op(0, put, kvOutput{unknown: true}, 0, 1000), op(1, get, absent, 30, 40)}, porcupine.Ok},
		{"value never written", []porcupine.Operation{op(1, get, kvOutput{value: "2", found: true}, 30, 40)}, porcupine.Illegal},
		// incr: each application takes the value one step, and a
		// result is only ever handed out once.
		{"incrs in turn", []porcupine.Operation{op(2, put, kvOutput{}, -20, -10), op(0, incr, kvOutput{value: "2"}, 0, 10), op(1, incr, kvOutput{value: "3"}, 20, 30), op(1, get, kvOutput{value: "3", found: true}, 40, 50)}, porcupine.Ok},
		{"one result handed out twice", []porcupine.Operation{op(2, put, kvOutput{}, -20, -10), op(0, incr, kvOutput{value: "2"}, 0, 10), op(1, incr, kvOutput{value: "2"}, 20, 30)}, porcupine.Illegal},
		{"incr applied twice", []porcupine.Operation{op(2, put, kvOutput{}, -20, -10), op(0, incr, kvOutput{value: "2"}, 0, 10), op(1, get, kvOutput{value: "4", found: true}, 20, 30)}, porcupine.Illegal},
		{"incr of unknown outcome seen", []porcupine.Operation{op(2, put, kvOutput{}, -20, -10), op(0, incr, kvOutput{unknown: true}, 0, 1000), op(1, get, kvOutput{value: "2", found: true}, 20, 30)}, porcupine.Ok},
		{"incr of a non-integer fails", []porcupine.Operation{op(0, put, kvOutput{}, 0, 10), op(0, kvInput{op: "put", key: "x", value: "a"}, kvOutput{}, 20, 30),
			op(1, incr, kvOutput{err: "not an integer"}, 40, 50), op(1, get, kvOutput{value: "a", found: true}, 60, 70)}, porcupine.Ok},
		{"incr of an integer fails", []porcupine.Operation{op(0, put, kvOutput{}, 0, 10), op(1, incr, kvOutput{err: "not an integer"}, 40, 50)}, porcupine.Illegal},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			res, info := porcupine.CheckOperationsVerbose(kvModel, tc.ops, time.Minute)
			if res != tc.want {
				t.Fatalf("porcupine says %s, want %s", res, tc.want)
			}
			if res == porcupine.Illegal {
				path := filepath.Join(t.TempDir(), "viz.html")
				if err := porcupine.VisualizePath(kvModel, info, path); err != nil {
					t.Fatal(err)
				}
				if fi, err := os.Stat(path); err != nil || fi.Size() == 0 {
					t.Fatalf("visualisation not written: %v", err)
				}
			}
		})
	}
}
