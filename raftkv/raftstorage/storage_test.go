package raftstorage_test

import (
	"errors"
	"fmt"
	"math"
	"slices"
	"testing"

	"github.com/kvs-lab/kvs"
	"github.com/kvs-lab/kvs/internal/vfs"
	"github.com/kvs-lab/kvs/raftkv/raftkvpb"
	"github.com/kvs-lab/kvs/raftkv/raftstorage"
	"go.etcd.io/raft/v3"
	"go.etcd.io/raft/v3/raftpb"
	"google.golang.org/protobuf/proto"
)

// The tests below follow etcd raft's storage_test.go case for case, run
// on both engines, and check each result on the live Storage and again
// after the engine and Storage are closed and reopened.

func TestStorageTerm(t *testing.T) {
	ents := index(3).terms(3, 4, 5)
	tests := []struct {
		i     uint64
		werr  error
		wterm uint64
	}{
		{2, raft.ErrCompacted, 0},
		{3, nil, 3},
		{4, nil, 4},
		{5, nil, 5},
		{6, raft.ErrUnavailable, 0},
	}
	forEach(t, func(t *testing.T, h *harness) {
		s := h.withLog(1, ents, 3)
		h.checkBoth(t, func(t *testing.T, ss []*raftstorage.Storage) {
			for _, tt := range tests {
				term, err := ss[0].Term(tt.i)
				if err != tt.werr || term != tt.wterm {
					t.Errorf("Term(%d) = %d, %v; want %d, %v", tt.i, term, err, tt.wterm, tt.werr)
				}
			}
		}, s)
	})
}

func TestStorageEntries(t *testing.T) {
	ents := index(3).terms(3, 4, 5, 6)
	size := func(i int) uint64 { return uint64(proto.Size(ents[i])) }
	tests := []struct {
		lo, hi, maxsize uint64
		werr            error
		wentries        []*raftpb.Entry
	}{
		{2, 6, math.MaxUint64, raft.ErrCompacted, nil},
		{3, 4, math.MaxUint64, raft.ErrCompacted, nil},
		{4, 5, math.MaxUint64, nil, index(4).terms(4)},
		{4, 6, math.MaxUint64, nil, index(4).terms(4, 5)},
		{4, 7, math.MaxUint64, nil, index(4).terms(4, 5, 6)},
		// Even with maxsize zero the first entry comes back.
		{4, 7, 0, nil, index(4).terms(4)},
		{4, 7, size(1) + size(2), nil, index(4).terms(4, 5)},
		{4, 7, size(1) + size(2) + size(3)/2, nil, index(4).terms(4, 5)},
		{4, 7, size(1) + size(2) + size(3) - 1, nil, index(4).terms(4, 5)},
		{4, 7, size(1) + size(2) + size(3), nil, index(4).terms(4, 5, 6)},
		// Past the last index.
		{4, 8, math.MaxUint64, raft.ErrUnavailable, nil},
	}
	forEach(t, func(t *testing.T, h *harness) {
		s := h.withLog(1, ents, 3)
		h.checkBoth(t, func(t *testing.T, ss []*raftstorage.Storage) {
			for _, tt := range tests {
				got, err := ss[0].Entries(tt.lo, tt.hi, tt.maxsize)
				if err != tt.werr || !entriesEqual(got, tt.wentries) {
					t.Errorf("Entries(%d, %d, %d) = %v, %v; want %v, %v", tt.lo, tt.hi, tt.maxsize, got, err, tt.wentries, tt.werr)
				}
			}
		}, s)
	})
}

func TestStorageLastIndex(t *testing.T) {
	forEach(t, func(t *testing.T, h *harness) {
		s := h.withLog(1, index(3).terms(3, 4, 5), 3)
		if last, _ := s.LastIndex(); last != 5 {
			t.Fatalf("LastIndex = %d, want 5", last)
		}
		h.update(s, func(u *raftstorage.Update) error { return u.Append(index(6).terms(5)) })
		h.checkBoth(t, func(t *testing.T, ss []*raftstorage.Storage) {
			if last, err := ss[0].LastIndex(); last != 6 || err != nil {
				t.Errorf("LastIndex = %d, %v; want 6", last, err)
			}
		}, s)
	})
}

func TestStorageFirstIndex(t *testing.T) {
	forEach(t, func(t *testing.T, h *harness) {
		s := h.withLog(1, index(3).terms(3, 4, 5), 5)
		if first, _ := s.FirstIndex(); first != 4 {
			t.Fatalf("FirstIndex = %d, want 4", first)
		}
		h.update(s, func(u *raftstorage.Update) error { return u.CompactTo(4) })
		h.checkBoth(t, func(t *testing.T, ss []*raftstorage.Storage) {
			if first, err := ss[0].FirstIndex(); first != 5 || err != nil {
				t.Errorf("FirstIndex = %d, %v; want 5", first, err)
			}
		}, s)
	})
}

func TestStorageCompact(t *testing.T) {
	ents := index(3).terms(3, 4, 5)
	tests := []struct {
		i      uint64
		werr   error
		windex uint64 // truncated index after
		wterm  uint64 // truncated term after
		wlen   int    // log length after, not counting the truncated entry
	}{
		{2, raft.ErrCompacted, 3, 3, 2},
		{3, raft.ErrCompacted, 3, 3, 2},
		{4, nil, 4, 4, 1},
		{5, nil, 5, 5, 0},
	}
	for _, tt := range tests {
		t.Run(fmt.Sprintf("i=%d", tt.i), func(t *testing.T) {
			forEach(t, func(t *testing.T, h *harness) {
				s := h.withLog(1, ents, 5)
				if err := h.tryUpdate(s, func(u *raftstorage.Update) error { return u.CompactTo(tt.i) }); err != tt.werr {
					t.Fatalf("CompactTo(%d) = %v, want %v", tt.i, err, tt.werr)
				}
				h.checkBoth(t, func(t *testing.T, ss []*raftstorage.Storage) {
					as := ss[0].ApplyState()
					first, _ := ss[0].FirstIndex()
					last, _ := ss[0].LastIndex()
					term, err := ss[0].Term(tt.windex)
					if as.GetTruncatedIndex() != tt.windex || as.GetTruncatedTerm() != tt.wterm || first != tt.windex+1 ||
						int(last-first+1) != tt.wlen || term != tt.wterm || err != nil {
						t.Errorf("after CompactTo(%d): truncated %d/%d first %d last %d Term(%d)=%d,%v; want truncated %d/%d, %d entries",
							tt.i, as.GetTruncatedIndex(), as.GetTruncatedTerm(), first, last, tt.windex, term, err, tt.windex, tt.wterm, tt.wlen)
					}
					if got, want := logKeys(t, h.eng, 1), seq(tt.windex+1, 5); !slices.Equal(got, want) {
						t.Errorf("log keys on disk %v, want %v", got, want)
					}
				}, s)
			})
		})
	}
}

func seq(lo, hi uint64) []uint64 {
	var out []uint64
	for i := lo; i <= hi; i++ {
		out = append(out, i)
	}
	return out
}

// TestStorageCreateSnapshot is etcd raft's TestStorageCreateSnapshot: the
// snapshot's index is the applied index, its term that entry's term.
func TestStorageCreateSnapshot(t *testing.T) {
	ents := index(3).terms(3, 4, 5)
	for _, applied := range []uint64{4, 5} {
		t.Run(fmt.Sprintf("applied=%d", applied), func(t *testing.T) {
			forEach(t, func(t *testing.T, h *harness) {
				s := h.withLog(1, ents, applied)
				h.checkBoth(t, func(t *testing.T, ss []*raftstorage.Storage) {
					snap, err := ss[0].Snapshot()
					if err != nil {
						t.Fatal(err)
					}
					want := &raftpb.SnapshotMetadata{Index: u64(applied), Term: u64(applied), ConfState: testConfState}
					if !proto.Equal(snap.GetMetadata(), want) {
						t.Errorf("snapshot metadata %v, want %v", snap.GetMetadata(), want)
					}
					hdr, err := raftstorage.SnapshotHeaderOf(snap)
					if err != nil {
						t.Fatal(err)
					}
					if hdr.GetRegion().GetId() != 1 || hdr.GetApplyState().GetAppliedIndex() != applied {
						t.Errorf("snapshot header %v", hdr)
					}
				}, s)
			})
		})
	}
}

// TestStorageSnapshotFollowsLogGC checks that the cached snapshot is kept
// while usable and replaced once log GC passes it.
func TestStorageSnapshotFollowsLogGC(t *testing.T) {
	forEach(t, func(t *testing.T, h *harness) {
		s := h.withLog(1, index(3).terms(3, 4, 5, 6), 4)
		snap, err := s.Snapshot()
		if err != nil || snap.GetMetadata().GetIndex() != 4 {
			t.Fatalf("Snapshot = %v, %v", snap.GetMetadata(), err)
		}
		rs, err := s.AcquireSnapshot(4)
		if err != nil {
			t.Fatal(err)
		}
		h.update(s, func(u *raftstorage.Update) error {
			if err := u.SetHardState(&raftpb.HardState{Term: u64(6), Commit: u64(6)}); err != nil {
				return err
			}
			return u.SetApplied(6)
		})
		if snap, _ := s.Snapshot(); snap.GetMetadata().GetIndex() != 4 {
			t.Errorf("snapshot at %d replaced before log GC passed it", snap.GetMetadata().GetIndex())
		}
		h.update(s, func(u *raftstorage.Update) error { return u.CompactTo(5) })
		if _, err := s.AcquireSnapshot(4); !errors.Is(err, raftstorage.ErrSnapshotGone) {
			t.Errorf("AcquireSnapshot(4) after GC to 5 = %v, want ErrSnapshotGone", err)
		}
		if snap, _ := s.Snapshot(); snap.GetMetadata().GetIndex() != 6 || snap.GetMetadata().GetTerm() != 6 {
			t.Errorf("snapshot after GC: %v, want index 6 term 6", snap.GetMetadata())
		}
		// The acquired snapshot still works after the Storage let go of it.
		n := 0
		if err := rs.WriteChunks(nil, 0, func(*raftkvpb.SnapshotChunk) error { n++; return nil }); err != nil || n != 2 {
			t.Errorf("WriteChunks of a released-by-storage snapshot: %d chunks, %v", n, err)
		}
		rs.Release()
		_ = s.Close()
	})
}

func TestStorageApplySnapshot(t *testing.T) {
	snapAt := func(i uint64) *raftpb.SnapshotMetadata {
		return &raftpb.SnapshotMetadata{Index: u64(i), Term: u64(i), ConfState: testConfState}
	}
	tests := []struct {
		name  string
		metas []*raftpb.SnapshotMetadata
		werr  error
		wlast uint64
	}{
		{"normal", []*raftpb.SnapshotMetadata{snapAt(4)}, nil, 4},
		{"out of date", []*raftpb.SnapshotMetadata{snapAt(4), snapAt(3)}, raft.ErrSnapOutOfDate, 4},
		{"newer replaces log", []*raftpb.SnapshotMetadata{snapAt(4), snapAt(9)}, nil, 9},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			forEach(t, func(t *testing.T, h *harness) {
				s := h.storage(1)
				var err error
				for _, m := range tt.metas {
					err = h.tryUpdate(s, func(u *raftstorage.Update) error {
						if err := u.ApplySnapshot(m, testRegion(1)); err != nil {
							return err
						}
						return u.Append(index(m.GetIndex()+1).terms(m.GetTerm(), m.GetTerm()))
					})
				}
				if err != tt.werr {
					t.Fatalf("ApplySnapshot = %v, want %v", err, tt.werr)
				}
				h.checkBoth(t, func(t *testing.T, ss []*raftstorage.Storage) {
					s := ss[0]
					first, _ := s.FirstIndex()
					last, _ := s.LastIndex()
					term, _ := s.Term(tt.wlast)
					hs, cs, _ := s.InitialState()
					if first != tt.wlast+1 || last != tt.wlast+2 || term != tt.wlast || hs.GetCommit() != tt.wlast || !proto.Equal(cs, testConfState) {
						t.Errorf("after snapshot: first %d last %d term %d hs %v cs %v", first, last, term, hs, cs)
					}
					if got, want := logKeys(t, h.eng, 1), seq(tt.wlast+1, tt.wlast+2); !slices.Equal(got, want) {
						t.Errorf("log keys %v, want %v", got, want)
					}
					if !s.Initialized() || s.RegionState().GetRegion().GetId() != 1 {
						t.Errorf("region state %v", s.RegionState())
					}
				}, s)
			})
		})
	}
}

func TestStorageAppend(t *testing.T) {
	ents := index(3).terms(3, 4, 5)
	tests := []struct {
		entries  []*raftpb.Entry
		werr     bool
		wentries []*raftpb.Entry // including the truncated entry, as etcd's test
	}{
		{index(1).terms(1, 2), false, index(3).terms(3, 4, 5)},
		{index(3).terms(3, 4, 5), false, index(3).terms(3, 4, 5)},
		{index(3).terms(3, 6, 6), false, index(3).terms(3, 6, 6)},
		{index(3).terms(3, 4, 5, 5), false, index(3).terms(3, 4, 5, 5)},
		// Truncate incoming entries, truncate the existing entries and append.
		{index(2).terms(3, 3, 5), false, index(3).terms(3, 5)},
		// Truncate the existing entries and append.
		{index(4).terms(5), false, index(3).terms(3, 5)},
		// Direct append.
		{index(6).terms(5), false, index(3).terms(3, 4, 5, 5)},
		// A gap after the last entry is refused and changes nothing.
		{index(7).terms(5), true, index(3).terms(3, 4, 5)},
		// Entries that are not consecutive are refused.
		{[]*raftpb.Entry{{Index: u64(4), Term: u64(4)}, {Index: u64(6), Term: u64(4)}}, true, index(3).terms(3, 4, 5)},
	}
	for i, tt := range tests {
		t.Run(fmt.Sprint(i), func(t *testing.T) {
			forEach(t, func(t *testing.T, h *harness) {
				s := h.withLog(1, ents, 3)
				err := h.tryUpdate(s, func(u *raftstorage.Update) error { return u.Append(tt.entries) })
				if (err != nil) != tt.werr {
					t.Fatalf("Append = %v, want error %v", err, tt.werr)
				}
				h.checkBoth(t, func(t *testing.T, ss []*raftstorage.Storage) {
					s := ss[0]
					first, _ := s.FirstIndex()
					last, _ := s.LastIndex()
					got, err := s.Entries(first, last+1, math.MaxUint64)
					if err != nil {
						t.Fatal(err)
					}
					if !entriesEqual(got, tt.wentries[1:]) {
						t.Errorf("log %v, want %v", got, tt.wentries[1:])
					}
					lt, _ := s.Term(last)
					if lt != tt.wentries[len(tt.wentries)-1].GetTerm() {
						t.Errorf("last term %d", lt)
					}
					// A truncated tail is gone from disk too.
					if keys, want := logKeys(t, h.eng, 1), seq(4, 3+uint64(len(tt.wentries)-1)); !slices.Equal(keys, want) {
						t.Errorf("log keys on disk %v, want %v", keys, want)
					}
				}, s)
			})
		})
	}
}

func TestStorageBootstrap(t *testing.T) {
	forEach(t, func(t *testing.T, h *harness) {
		s := h.storage(1)
		if s.Initialized() {
			t.Fatal("empty storage is initialized")
		}
		hs, cs, _ := s.InitialState()
		if !raft.IsEmptyHardState(hs) || len(cs.GetVoters()) != 0 {
			t.Fatalf("empty storage: %v %v", hs, cs)
		}
		if first, _ := s.FirstIndex(); first != 1 {
			t.Fatalf("empty storage first index %d", first)
		}
		h.update(s, func(u *raftstorage.Update) error { return u.Bootstrap(testRegion(1)) })
		if err := h.tryUpdate(s, func(u *raftstorage.Update) error { return u.Bootstrap(testRegion(1)) }); err == nil {
			t.Error("second Bootstrap succeeded")
		}
		h.checkBoth(t, func(t *testing.T, ss []*raftstorage.Storage) {
			s := ss[0]
			first, _ := s.FirstIndex()
			last, _ := s.LastIndex()
			term, _ := s.Term(raftstorage.InitIndex)
			hs, cs, _ := s.InitialState()
			if first != raftstorage.InitIndex+1 || last != raftstorage.InitIndex || term != raftstorage.InitTerm ||
				hs.GetCommit() != raftstorage.InitIndex || hs.GetTerm() != raftstorage.InitTerm || !proto.Equal(cs, testConfState) ||
				s.AppliedIndex() != raftstorage.InitIndex {
				t.Errorf("bootstrapped: first %d last %d term %d hs %v cs %v applied %d", first, last, term, hs, cs, s.AppliedIndex())
			}
		}, s)
	})
}

// TestRegionsDoNotSeeEachOther puts two regions' logs in one engine.
func TestRegionsDoNotSeeEachOther(t *testing.T) {
	forEach(t, func(t *testing.T, h *harness) {
		a := h.withLog(1, index(3).terms(3, 4, 5), 5)
		b := h.withLog(2, index(10).terms(7, 8, 8, 9), 10)
		h.update(a, func(u *raftstorage.Update) error { return u.CompactTo(4) })
		h.update(b, func(u *raftstorage.Update) error { return u.Append(index(12).terms(9)) })
		h.checkBoth(t, func(t *testing.T, ss []*raftstorage.Storage) {
			a, b := ss[0], ss[1]
			if got, _ := a.Entries(5, 6, math.MaxUint64); !entriesEqual(got, index(5).terms(5)) {
				t.Errorf("region 1 log %v", got)
			}
			if got, _ := b.Entries(11, 13, math.MaxUint64); !entriesEqual(got, index(11).terms(8, 9)) {
				t.Errorf("region 2 log %v", got)
			}
			if _, err := a.Term(11); err != raft.ErrUnavailable {
				t.Errorf("region 1 Term(11) = %v: sees region 2", err)
			}
			if _, err := b.Term(4); err != raft.ErrCompacted {
				t.Errorf("region 2 Term(4) = %v", err)
			}
			if got := logKeys(t, h.eng, 1); !slices.Equal(got, []uint64{5}) {
				t.Errorf("region 1 keys %v", got)
			}
			if got := logKeys(t, h.eng, 2); !slices.Equal(got, []uint64{11, 12}) {
				t.Errorf("region 2 keys %v", got)
			}
		}, a, b)
	})
}

// TestUncommittedUpdateChangesNothing drops an Update whose batch was
// never written: the Storage must still describe the engine.
func TestUncommittedUpdateChangesNothing(t *testing.T) {
	forEach(t, func(t *testing.T, h *harness) {
		s := h.withLog(1, index(3).terms(3, 4, 5), 4)
		before := s.RaftState()
		u := s.NewUpdate(new(kvs.Batch))
		if err := u.Append(index(5).terms(6, 6, 6)); err != nil {
			t.Fatal(err)
		}
		if err := u.SetHardState(&raftpb.HardState{Term: u64(6), Commit: u64(7)}); err != nil {
			t.Fatal(err)
		}
		if err := u.CompactTo(4); err != nil {
			t.Fatal(err)
		}
		// u is dropped here, as after a failed engine write.
		if !proto.Equal(s.RaftState(), before) {
			t.Errorf("raft state changed: %v", s.RaftState())
		}
		if last, _ := s.LastIndex(); last != 5 {
			t.Errorf("LastIndex = %d", last)
		}
		if term, _ := s.Term(5); term != 5 {
			t.Errorf("Term(5) = %d", term)
		}
		if first, _ := s.FirstIndex(); first != 4 {
			t.Errorf("FirstIndex = %d", first)
		}
	})
}

// TestFailedWriteLeavesStorageUnchanged fails the engine's write with an
// injected I/O error: the caller does not Commit, and the Storage still
// answers from the old state.
func TestFailedWriteLeavesStorageUnchanged(t *testing.T) {
	for _, name := range engineNames {
		t.Run("engine="+name, func(t *testing.T) {
			inj := vfs.After(1, vfs.ErrIO, vfs.OpWrite, vfs.OpSync)
			h := &harness{t: t, name: name, dir: "/db", opts: &kvs.Options{Logger: kvs.DiscardLogger(), FS: vfs.Inject(vfs.NewMem(), inj)}}
			inj.SetEnabled(false)
			h.open()
			defer h.eng.Close()
			s := h.withLog(1, index(3).terms(3, 4, 5), 4)
			before := s.RaftState()
			wb := new(kvs.Batch)
			u := s.NewUpdate(wb)
			if err := u.Append(index(6).terms(6, 6)); err != nil {
				t.Fatal(err)
			}
			inj.SetEnabled(true)
			err := h.eng.Write(wb, kvs.Sync)
			inj.SetEnabled(false)
			if err == nil {
				t.Fatal("write succeeded despite the injected error")
			}
			if !proto.Equal(s.RaftState(), before) {
				t.Errorf("raft state changed after a failed write: %v", s.RaftState())
			}
			if _, err := s.Term(7); err != raft.ErrUnavailable {
				t.Errorf("Term(7) after failed write = %v, want ErrUnavailable", err)
			}
			if got, err := s.Entries(4, 6, math.MaxUint64); err != nil || !entriesEqual(got, index(4).terms(4, 5)) {
				t.Errorf("Entries after failed write = %v, %v", got, err)
			}
		})
	}
}

func TestUpdateConflicts(t *testing.T) {
	forEach(t, func(t *testing.T, h *harness) {
		s := h.withLog(1, index(3).terms(3, 4, 5), 4)
		wb1, wb2, wb3 := new(kvs.Batch), new(kvs.Batch), new(kvs.Batch)
		u1, u2, u3 := s.NewUpdate(wb1), s.NewUpdate(wb2), s.NewUpdate(wb3)
		if err := u1.Append(index(6).terms(5)); err != nil {
			t.Fatal(err)
		}
		if err := u2.Append(index(6).terms(6)); err != nil {
			t.Fatal(err)
		}
		u3.SetConfState(testConfState) // apply state only: no conflict with appends
		for _, wb := range []*kvs.Batch{wb1, wb3} {
			if err := h.eng.Write(wb, kvs.Sync); err != nil {
				t.Fatal(err)
			}
		}
		if err := u1.Commit(); err != nil {
			t.Fatal(err)
		}
		if err := u3.Commit(); err != nil {
			t.Errorf("apply-only update conflicted: %v", err)
		}
		if err := u2.Commit(); !errors.Is(err, raftstorage.ErrConflict) {
			t.Errorf("conflicting Commit = %v, want ErrConflict", err)
		}
		if err := u1.Commit(); err == nil {
			t.Error("second Commit of an update succeeded")
		}
		if last, _ := s.LastIndex(); last != 6 || s.AppliedIndex() != 4 {
			t.Errorf("last %d applied %d", last, s.AppliedIndex())
		}
	})
}
