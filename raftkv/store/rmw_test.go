package store_test

import (
	"errors"
	"strconv"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/kvs-lab/kvs/raftkv/api"
	"github.com/kvs-lab/kvs/raftkv/client"
	"github.com/kvs-lab/kvs/raftkv/raftkvpb"
	"github.com/kvs-lab/kvs/raftkv/transport"
	"go.etcd.io/raft/v3/raftpb"
)

// TestConcurrentIncrByOverUnreliableNetwork has clients increment one
// counter by 1 through a 3-store cluster whose network drops,
// duplicates and delays messages, with attempts short enough that
// clients often retry a request whose first try is still in the log.
// Now and then the followers' append acknowledgements are held back for
// longer than an attempt, so that entries wait uncommitted while their
// clients time out and propose the same (client id, seq) again: both
// entries commit, and the second must be answered from the session.
// Each applied increment takes the counter one step, so:
//   - the final count lies between the number of acknowledged increments
//     and that plus the number of increments whose outcome is unknown
//     (a retry that applied twice would push it above; a lost
//     acknowledged one below);
//   - every acknowledged result is a distinct value in [1, final]: a
//     retry answered from the session gets the first application's
//     value, never a second application's, nor an empty result.
func TestConcurrentIncrByOverUnreliableNetwork(t *testing.T) {
	forEngines(t, func(t *testing.T, engine string) {
		c := newCluster(t, engine, clusterOpts{})
		c.net.SetUnreliable(transport.Unreliable{DropRate: 0.1, DuplicateRate: 0.1, DelayRate: 0.2, MaxDelay: 20 * time.Millisecond})
		var stalled atomic.Bool
		c.net.AddFilter(func(_, _ uint64, m *raftkvpb.RaftMessage) bool {
			return !stalled.Load() || m.GetMessage().GetType() != raftpb.MsgAppResp
		})
		key := []byte("counter")
		var (
			mu      sync.Mutex
			acked   = map[int64]int{} // result -> client that got it
			nAcked  int
			unknown int
			dups    []string
		)
		stop := make(chan struct{})
		var wg sync.WaitGroup
		for ci := range 4 {
			wg.Add(1)
			go func() {
				defer wg.Done()
				cl := client.New(c, &client.Config{AttemptTimeout: 60 * time.Millisecond, Backoff: 2 * time.Millisecond})
				for {
					select {
					case <-stop:
						return
					default:
					}
					ctx, cancel := ctxTimeout(time.Second)
					n, err := cl.IncrBy(ctx, key, 1)
					cancel()
					mu.Lock()
					switch {
					case err == nil:
						if other, ok := acked[n]; ok {
							dups = append(dups, "result "+strconv.FormatInt(n, 10)+" returned to clients "+strconv.Itoa(other)+" and "+strconv.Itoa(ci))
						}
						acked[n] = ci
						nAcked++
					case api.NotExecuted(err):
						// Not applied, and never will be.
					default:
						unknown++
					}
					mu.Unlock()
				}
			}()
		}
		for end := time.Now().Add(scale(2 * time.Second)); time.Now().Before(end); {
			time.Sleep(100 * time.Millisecond)
			stalled.Store(true)
			time.Sleep(150 * time.Millisecond)
			stalled.Store(false)
		}
		close(stop)
		wg.Wait()

		c.net.Heal()
		c.waitConverged(10 * time.Second)
		ctx, cancel := ctxTimeout(5 * time.Second)
		defer cancel()
		v, err := client.New(c, nil).Get(ctx, key)
		if err != nil {
			t.Fatal(err)
		}
		final, err := strconv.ParseInt(string(v), 10, 64)
		if err != nil {
			t.Fatalf("counter = %q: %v", v, err)
		}
		t.Logf("final count %d: %d acknowledged, %d of unknown outcome", final, nAcked, unknown)
		if nAcked == 0 {
			t.Fatal("no increment was acknowledged")
		}
		for _, d := range dups {
			t.Error(d)
		}
		if final < int64(nAcked) || final > int64(nAcked+unknown) {
			t.Errorf("final count %d outside [acknowledged %d, acknowledged + unknown %d]", final, nAcked, nAcked+unknown)
		}
		for n := range acked {
			if n < 1 || n > final {
				t.Errorf("acknowledged result %d outside [1, %d]", n, final)
			}
		}
	})
}

// TestIncrByErrorThroughCluster sends IncrBy on a value that is not an
// integer, and past int64, through the cluster: the client gets the
// state machine's error (api.ErrNotInteger, api.ErrOverflow), the value
// is unchanged, and every replica agrees.
func TestIncrByErrorThroughCluster(t *testing.T) {
	c := newCluster(t, "lsm", clusterOpts{})
	cl := client.New(c, nil)
	ctx, cancel := ctxTimeout(10 * time.Second)
	defer cancel()
	for _, tc := range []struct {
		value string
		delta int64
		want  error
	}{
		{"abc", 1, api.ErrNotInteger},
		{"9223372036854775807", 1, api.ErrOverflow},
	} {
		if err := cl.Put(ctx, []byte("k"), []byte(tc.value)); err != nil {
			t.Fatal(err)
		}
		if _, err := cl.IncrBy(ctx, []byte("k"), tc.delta); !errors.Is(err, tc.want) {
			t.Errorf("IncrBy on %q: %v, want %v", tc.value, err, tc.want)
		}
		if v, err := cl.Get(ctx, []byte("k")); err != nil || string(v) != tc.value {
			t.Errorf("k = %q, %v after a failed IncrBy, want %q", v, err, tc.value)
		}
	}
	if ok, err := cl.PutIfAbsent(ctx, []byte("k"), []byte("nx")); err != nil || ok {
		t.Errorf("PutIfAbsent on a present key = %v, %v; want false", ok, err)
	}
	if ok, err := cl.PutIfAbsent(ctx, []byte("fresh"), []byte("nx")); err != nil || !ok {
		t.Errorf("PutIfAbsent on an absent key = %v, %v; want true", ok, err)
	}
	if old, err := cl.Swap(ctx, []byte("fresh"), []byte("swapped")); err != nil || string(old) != "nx" {
		t.Errorf("Swap = %q, %v; want nx", old, err)
	}
	if n, err := cl.Append(ctx, []byte("fresh"), []byte("!")); err != nil || n != len("swapped!") {
		t.Errorf("Append = %d, %v; want %d", n, err, len("swapped!"))
	}
	c.waitConverged(5 * time.Second)
}
