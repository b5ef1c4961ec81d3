package store_test

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"sync"
	"testing"
	"time"

	"github.com/kvs-lab/kvs/raftkv/api"
	"github.com/kvs-lab/kvs/raftkv/raftkvpb"
	"github.com/kvs-lab/kvs/raftkv/store"
)

// TestMultiGetSeesWholeWrites: one writer stores the same value under two
// keys in one request, again and again, while readers read both keys with
// MultiGet on the leader. Every read must see both keys equal: one read
// of both keys, never half of a write. It also checks absent and empty
// values and a refused key.
func TestMultiGetSeesWholeWrites(t *testing.T) {
	forEngines(t, func(t *testing.T, engine string) {
		c := newCluster(t, engine, clusterOpts{})
		leader := c.leader(5 * time.Second)
		if leader == 0 {
			t.Fatal("no leader elected")
		}
		svc, _ := c.Store(leader)
		ls := svc.(*store.Store)
		ctx, cancel := ctxTimeout(20 * time.Second)
		defer cancel()

		req := &raftkvpb.Request{ClientId: 7, Seq: 1, Ops: []*raftkvpb.Op{{Key: []byte("empty"), Value: []byte{}}}}
		if _, err := ls.Write(ctx, req); err != nil {
			t.Fatal(err)
		}
		vals, err := ls.MultiGet(ctx, [][]byte{[]byte("absent"), []byte("empty")})
		if err != nil || len(vals) != 2 || vals[0] != nil || vals[1] == nil || len(vals[1]) != 0 {
			t.Fatalf("MultiGet(absent, empty) = %q, %v; want [nil, empty]", vals, err)
		}
		if _, err := ls.MultiGet(ctx, [][]byte{[]byte("a"), {0, 's'}}); !errors.Is(err, api.ErrInvalid) {
			t.Fatalf("MultiGet of a reserved key: %v, want ErrInvalid", err)
		}

		const writes = 150
		var wg sync.WaitGroup
		wg.Go(func() {
			for i := range writes {
				v := fmt.Appendf(nil, "%d", i)
				req := &raftkvpb.Request{ClientId: 8, Seq: uint64(i + 1), Ops: []*raftkvpb.Op{{Key: []byte("a"), Value: v}, {Key: []byte("b"), Value: v}}}
				if _, err := ls.Write(ctx, req); err != nil {
					t.Errorf("write %d: %v", i, err)
					return
				}
			}
		})
		reads := 0
		var mu sync.Mutex
		for range 3 {
			wg.Go(func() {
				for ctx.Err() == nil {
					vals, err := ls.MultiGet(ctx, [][]byte{[]byte("a"), []byte("b")})
					if err != nil {
						if !errors.Is(err, context.DeadlineExceeded) {
							t.Errorf("MultiGet: %v", err)
						}
						return
					}
					if !bytes.Equal(vals[0], vals[1]) {
						t.Errorf("MultiGet saw a = %q, b = %q: half of a write", vals[0], vals[1])
						return
					}
					mu.Lock()
					reads++
					done := string(vals[0]) == fmt.Sprint(writes-1)
					mu.Unlock()
					if done {
						return
					}
				}
			})
		}
		wg.Wait()
		t.Logf("%d reads of both keys during %d writes", reads, writes)
		if reads < 10 {
			t.Fatalf("only %d reads ran beside the writes", reads)
		}
	})
}
