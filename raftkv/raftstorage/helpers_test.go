package raftstorage_test

import (
	"testing"

	"github.com/kvs-lab/kvs"
	_ "github.com/kvs-lab/kvs/bitcask"
	_ "github.com/kvs-lab/kvs/lsm"
	"github.com/kvs-lab/kvs/raftkv/raftkvpb"
	"github.com/kvs-lab/kvs/raftkv/raftstorage"
	"go.etcd.io/raft/v3/raftpb"
	"google.golang.org/protobuf/proto"
)

var engineNames = []string{"bitcask", "lsm"}

// harness is one engine in a directory, reopened on demand.
type harness struct {
	t    testing.TB
	name string
	dir  string
	opts *kvs.Options
	eng  kvs.Engine
}

func newHarness(t testing.TB, name string) *harness {
	t.Helper()
	h := &harness{t: t, name: name, dir: t.TempDir(), opts: &kvs.Options{Logger: kvs.DiscardLogger()}}
	h.open()
	t.Cleanup(func() {
		if h.eng != nil {
			_ = h.eng.Close()
		}
	})
	return h
}

func (h *harness) open() {
	h.t.Helper()
	eng, err := kvs.Open(h.name, h.dir, h.opts)
	if err != nil {
		h.t.Fatalf("open %s: %v", h.name, err)
	}
	h.eng = eng
}

func (h *harness) storage(regionID uint64) *raftstorage.Storage {
	h.t.Helper()
	s, err := raftstorage.Open(h.eng, regionID)
	if err != nil {
		h.t.Fatalf("open storage of region %d: %v", regionID, err)
	}
	return s
}

// reopen closes the given storages and the engine, opens the engine again
// and returns the storages reopened from it, in the same order.
func (h *harness) reopen(ss ...*raftstorage.Storage) []*raftstorage.Storage {
	h.t.Helper()
	for _, s := range ss {
		_ = s.Close()
	}
	if err := h.eng.Close(); err != nil {
		h.t.Fatalf("close %s: %v", h.name, err)
	}
	h.open()
	out := make([]*raftstorage.Storage, len(ss))
	for i, s := range ss {
		out[i] = h.storage(s.RegionID())
	}
	return out
}

// update runs fn on an Update of s, writes the batch with Sync and
// commits; it fails the test on any error.
func (h *harness) update(s *raftstorage.Storage, fn func(u *raftstorage.Update) error) {
	h.t.Helper()
	if err := h.tryUpdate(s, fn); err != nil {
		h.t.Fatal(err)
	}
}

func (h *harness) tryUpdate(s *raftstorage.Storage, fn func(u *raftstorage.Update) error) error {
	wb := new(kvs.Batch)
	u := s.NewUpdate(wb)
	if err := fn(u); err != nil {
		return err
	}
	if err := h.eng.Write(wb, kvs.Sync); err != nil {
		return err
	}
	return u.Commit()
}

func u64(v uint64) *uint64 { return &v }

// index(i).terms(t...) builds consecutive entries as etcd raft's
// storage_test.go does.
type index uint64

func (i index) terms(terms ...uint64) []*raftpb.Entry {
	ents := make([]*raftpb.Entry, len(terms))
	for k, t := range terms {
		ents[k] = &raftpb.Entry{Index: u64(uint64(i) + uint64(k)), Term: u64(t)}
	}
	return ents
}

var testConfState = &raftpb.ConfState{Voters: []uint64{1, 2, 3}}

func testRegion(id uint64) *raftkvpb.Region {
	return &raftkvpb.Region{
		Id:    id,
		Epoch: &raftkvpb.RegionEpoch{ConfVer: 1, Version: 1},
		Peers: []*raftkvpb.Peer{{Id: 1, StoreId: 1}, {Id: 2, StoreId: 2}, {Id: 3, StoreId: 3}},
	}
}

// withLog returns region regionID's Storage holding ents the way etcd
// raft's tests fill a MemoryStorage: ents[0] is the truncated entry (its
// index and term are the truncated state) and ents[1:] are the log. The
// hard state's commit and the applied index are set to applied.
func (h *harness) withLog(regionID uint64, ents []*raftpb.Entry, applied uint64) *raftstorage.Storage {
	h.t.Helper()
	s := h.storage(regionID)
	h.update(s, func(u *raftstorage.Update) error {
		meta := &raftpb.SnapshotMetadata{Index: u64(ents[0].GetIndex()), Term: u64(ents[0].GetTerm()), ConfState: testConfState}
		if err := u.ApplySnapshot(meta, testRegion(regionID)); err != nil {
			return err
		}
		if err := u.Append(ents[1:]); err != nil {
			return err
		}
		last := ents[len(ents)-1].GetTerm()
		if err := u.SetHardState(&raftpb.HardState{Term: u64(last), Vote: u64(1), Commit: u64(applied)}); err != nil {
			return err
		}
		return u.SetApplied(applied)
	})
	return s
}

// forEach runs body once per engine. body gets a harness and a function
// `check` that runs its assertions on the live storages, then again after
// closing and reopening the engine and the storages.
func forEach(t *testing.T, body func(t *testing.T, h *harness)) {
	for _, name := range engineNames {
		t.Run("engine="+name, func(t *testing.T) {
			body(t, newHarness(t, name))
		})
	}
}

// checkBoth runs check on ss, then reopens and runs it on the reopened
// storages.
func (h *harness) checkBoth(t *testing.T, check func(t *testing.T, ss []*raftstorage.Storage), ss ...*raftstorage.Storage) {
	t.Helper()
	t.Run("live", func(t *testing.T) { check(t, ss) })
	ss = h.reopen(ss...)
	t.Run("reopened", func(t *testing.T) { check(t, ss) })
}

func entriesEqual(a, b []*raftpb.Entry) bool {
	if len(a) != len(b) {
		return false
	}
	for i := range a {
		if !proto.Equal(a[i], b[i]) {
			return false
		}
	}
	return true
}

// logKeys lists the raft log indexes of regionID present in the engine.
func logKeys(t testing.TB, eng kvs.Reader, regionID uint64) []uint64 {
	t.Helper()
	it, err := eng.NewIter(&kvs.IterOptions{LowerBound: raftstorage.EntryKey(regionID, 0), UpperBound: raftstorage.RaftStateKey(regionID)})
	if err != nil {
		t.Fatal(err)
	}
	var out []uint64
	for ok := it.First(); ok; ok = it.Next() {
		k := it.Key()
		out = append(out, uint64(k[len(k)-8])<<56|uint64(k[len(k)-7])<<48|uint64(k[len(k)-6])<<40|uint64(k[len(k)-5])<<32|
			uint64(k[len(k)-4])<<24|uint64(k[len(k)-3])<<16|uint64(k[len(k)-2])<<8|uint64(k[len(k)-1]))
	}
	if err := it.Close(); err != nil {
		t.Fatal(err)
	}
	return out
}
