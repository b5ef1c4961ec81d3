package raftstorage_test

import (
	"math"
	"math/rand/v2"
	"slices"
	"testing"

	"github.com/kvs-lab/kvs/raftkv/raftstorage"
	"go.etcd.io/raft/v3"
	"go.etcd.io/raft/v3/raftpb"
	"google.golang.org/protobuf/proto"
)

// TestEntryCacheAgreesWithEngine drives a Storage through random appends
// (with conflicting tails), commits, applies, log GC and snapshots, and
// after every step checks that everything raft can read from it (Term and
// Entries of every index, with and without a size limit) is what a
// Storage freshly opened on the same engine reads from disk. The first
// Storage serves most of it from its entry cache, the fresh one from the
// engine alone, so the two agree only if the cache follows every change
// of the log.
func TestEntryCacheAgreesWithEngine(t *testing.T) {
	forEach(t, func(t *testing.T, h *harness) {
		rng := rand.New(rand.NewPCG(1, 2))
		s := h.withLog(1, index(raftstorage.InitIndex).terms(raftstorage.InitTerm), raftstorage.InitIndex)
		defer s.Close()
		term := uint64(raftstorage.InitTerm)
		for step := range 300 {
			first, _ := s.FirstIndex()
			last, _ := s.LastIndex()
			hs, _, _ := s.InitialState()
			commit, applied := hs.GetCommit(), s.AppliedIndex()
			switch op := rng.IntN(10); {
			case op < 5: // append, sometimes over an uncommitted tail
				from := last + 1
				if last > commit && rng.IntN(3) == 0 {
					from = commit + 1 + rng.Uint64N(last-commit)
					term++ // a new leader's entries
				}
				n := 1 + rng.IntN(8)
				ents := make([]*raftpb.Entry, n)
				for k := range ents {
					ents[k] = &raftpb.Entry{Index: proto.Uint64(from + uint64(k)), Term: proto.Uint64(term),
						Data: make([]byte, rng.IntN(300))}
				}
				h.update(s, func(u *raftstorage.Update) error { return u.Append(ents) })
			case op < 7: // commit and apply some
				if last > commit {
					c := commit + 1 + rng.Uint64N(last-commit)
					h.update(s, func(u *raftstorage.Update) error {
						if err := u.SetHardState(&raftpb.HardState{Term: proto.Uint64(term), Commit: proto.Uint64(c)}); err != nil {
							return err
						}
						return u.SetApplied(c)
					})
				}
			case op < 9: // log GC
				if applied >= first {
					to := first + rng.Uint64N(applied-first+1)
					h.update(s, func(u *raftstorage.Update) error { return u.CompactTo(to) })
				}
			default: // a snapshot past the log
				idx := last + 1 + rng.Uint64N(20)
				term++
				meta := &raftpb.SnapshotMetadata{Index: proto.Uint64(idx), Term: proto.Uint64(term), ConfState: testConfState}
				h.update(s, func(u *raftstorage.Update) error { return u.ApplySnapshot(meta, testRegion(1)) })
			}
			fresh := h.storage(1)
			compareStorages(t, step, s, fresh)
			_ = fresh.Close()
		}
		hits, misses, cached, bytes := s.CacheStats()
		t.Logf("cache: %d hits, %d misses, %d entries (%d bytes) at the end", hits, misses, cached, bytes)
		if hits == 0 {
			t.Error("the entry cache never served an entry")
		}
	})
}

// compareStorages checks that a and b answer Term and Entries alike.
func compareStorages(t *testing.T, step int, a, b *raftstorage.Storage) {
	t.Helper()
	af, _ := a.FirstIndex()
	bf, _ := b.FirstIndex()
	al, _ := a.LastIndex()
	bl, _ := b.LastIndex()
	if af != bf || al != bl {
		t.Fatalf("step %d: cached storage has log %d..%d, fresh one %d..%d", step, af, al, bf, bl)
	}
	for i := af - 1; i <= al+1; i++ {
		at, aerr := a.Term(i)
		bt, berr := b.Term(i)
		if at != bt || aerr != berr {
			t.Fatalf("step %d: Term(%d): cached %d, %v; fresh %d, %v", step, i, at, aerr, bt, berr)
		}
	}
	for lo := af; lo <= al; lo++ {
		for _, maxSize := range []uint64{0, 500, math.MaxUint64} {
			ae, aerr := a.Entries(lo, al+1, maxSize)
			be, berr := b.Entries(lo, al+1, maxSize)
			if aerr != nil || berr != nil {
				t.Fatalf("step %d: Entries(%d, %d, %d): cached %v, fresh %v", step, lo, al+1, maxSize, aerr, berr)
			}
			if !slices.EqualFunc(ae, be, func(x, y *raftpb.Entry) bool { return proto.Equal(x, y) }) {
				t.Fatalf("step %d: Entries(%d, %d, %d): cached %d entries, fresh %d, or they differ", step, lo, al+1, maxSize, len(ae), len(be))
			}
		}
	}
	if _, err := a.Entries(af-1, al+1, math.MaxUint64); af > 1 && err != raft.ErrCompacted {
		t.Fatalf("step %d: Entries below the first index: %v, want ErrCompacted", step, err)
	}
}
