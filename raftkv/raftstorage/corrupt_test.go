package raftstorage_test

import (
	"errors"
	"fmt"
	"math"
	"strings"
	"testing"

	"github.com/kvs-lab/kvs"
	"github.com/kvs-lab/kvs/raftkv/raftkvpb"
	"github.com/kvs-lab/kvs/raftkv/raftstorage"
	"go.etcd.io/raft/v3/raftpb"
	"google.golang.org/protobuf/proto"
)

func marshal(t testing.TB, m proto.Message) []byte {
	t.Helper()
	b, err := proto.Marshal(m)
	if err != nil {
		t.Fatal(err)
	}
	return b
}

// TestOpenRejectsCorruptState damages one stored value at a time and
// checks that Open returns an error naming the region and the key, and
// matching kvs.ErrCorruption, without panicking.
func TestOpenRejectsCorruptState(t *testing.T) {
	const id = 1
	garbage := []byte{0xff, 0xff, 0xff}
	tests := []struct {
		name   string
		key    []byte
		damage func(t testing.TB, eng kvs.Engine) error
	}{
		{"undecodable raft state", raftstorage.RaftStateKey(id), func(t testing.TB, e kvs.Engine) error {
			return e.Put(raftstorage.RaftStateKey(id), garbage, kvs.Sync)
		}},
		{"undecodable apply state", raftstorage.ApplyStateKey(id), func(t testing.TB, e kvs.Engine) error {
			return e.Put(raftstorage.ApplyStateKey(id), garbage, kvs.Sync)
		}},
		{"undecodable region state", raftstorage.RegionStateKey(id), func(t testing.TB, e kvs.Engine) error {
			return e.Put(raftstorage.RegionStateKey(id), garbage, kvs.Sync)
		}},
		{"undecodable entry", raftstorage.EntryKey(id, 5), func(t testing.TB, e kvs.Engine) error {
			return e.Put(raftstorage.EntryKey(id, 5), garbage, kvs.Sync)
		}},
		{"hole in the log", raftstorage.EntryKey(id, 5), func(t testing.TB, e kvs.Engine) error {
			return e.Delete(raftstorage.EntryKey(id, 5), kvs.Sync)
		}},
		{"missing last entry", raftstorage.EntryKey(id, 6), func(t testing.TB, e kvs.Engine) error {
			return e.Delete(raftstorage.EntryKey(id, 6), kvs.Sync)
		}},
		{"entry under the wrong index", raftstorage.EntryKey(id, 5), func(t testing.TB, e kvs.Engine) error {
			return e.Put(raftstorage.EntryKey(id, 5), marshal(t, &raftpb.Entry{Index: u64(9), Term: u64(5)}), kvs.Sync)
		}},
		{"last term disagrees", raftstorage.EntryKey(id, 6), func(t testing.TB, e kvs.Engine) error {
			return e.Put(raftstorage.EntryKey(id, 6), marshal(t, &raftpb.Entry{Index: u64(6), Term: u64(2)}), kvs.Sync)
		}},
		{"commit beyond last index", raftstorage.RaftStateKey(id), func(t testing.TB, e kvs.Engine) error {
			return e.Put(raftstorage.RaftStateKey(id), marshal(t, &raftkvpb.RaftLocalState{
				HardState: &raftpb.HardState{Term: u64(6), Commit: u64(10)}, LastIndex: 6, LastTerm: 6}), kvs.Sync)
		}},
		{"applied beyond commit", raftstorage.ApplyStateKey(id), func(t testing.TB, e kvs.Engine) error {
			return e.Put(raftstorage.ApplyStateKey(id), marshal(t, &raftkvpb.RaftApplyState{
				AppliedIndex: 6, TruncatedIndex: 3, TruncatedTerm: 3}), kvs.Sync)
		}},
		{"region state of another region", raftstorage.RegionStateKey(id), func(t testing.TB, e kvs.Engine) error {
			return e.Put(raftstorage.RegionStateKey(id), marshal(t, &raftkvpb.RegionLocalState{Region: testRegion(2)}), kvs.Sync)
		}},
		{"raft state missing", raftstorage.RaftStateKey(id), func(t testing.TB, e kvs.Engine) error {
			return e.Delete(raftstorage.RaftStateKey(id), kvs.Sync)
		}},
		{"apply state missing", raftstorage.ApplyStateKey(id), func(t testing.TB, e kvs.Engine) error {
			return e.Delete(raftstorage.ApplyStateKey(id), kvs.Sync)
		}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			forEach(t, func(t *testing.T, h *harness) {
				s := h.withLog(id, index(3).terms(3, 4, 5, 6), 5)
				_ = s.Close()
				if err := tt.damage(t, h.eng); err != nil {
					t.Fatal(err)
				}
				_, err := raftstorage.Open(h.eng, id)
				if err == nil {
					t.Fatal("Open succeeded on a damaged state")
				}
				if !errors.Is(err, kvs.ErrCorruption) {
					t.Errorf("error %v does not match kvs.ErrCorruption", err)
				}
				msg := err.Error()
				if !strings.Contains(msg, "region 1") || !strings.Contains(msg, fmt.Sprintf("%x", tt.key)) {
					t.Errorf("error %q does not name region 1 and key %x", msg, tt.key)
				}
			})
		})
	}
}

// TestReadsReportLogDamage removes an entry under an open Storage: Term
// and Entries return a corruption error instead of panicking or returning
// a short log. The Storage is a reopened one, whose entry cache is empty:
// entries a Storage appended itself are served from its cache while they
// are cached, and damage to their copies on disk shows at the next Open.
func TestReadsReportLogDamage(t *testing.T) {
	forEach(t, func(t *testing.T, h *harness) {
		_ = h.withLog(1, index(3).terms(3, 4, 5, 6), 3).Close()
		s, err := raftstorage.Open(h.eng, 1)
		if err != nil {
			t.Fatal(err)
		}
		defer s.Close()
		if err := h.eng.Delete(raftstorage.EntryKey(1, 5), kvs.Sync); err != nil {
			t.Fatal(err)
		}
		if _, err := s.Term(5); !errors.Is(err, kvs.ErrCorruption) {
			t.Errorf("Term(5) = %v, want corruption", err)
		}
		if _, err := s.Entries(4, 7, math.MaxUint64); !errors.Is(err, kvs.ErrCorruption) {
			t.Errorf("Entries(4, 7) = %v, want corruption", err)
		}
		if err := h.eng.Delete(raftstorage.EntryKey(1, 6), kvs.Sync); err != nil {
			t.Fatal(err)
		}
		if _, err := s.Entries(4, 5, math.MaxUint64); err != nil {
			t.Errorf("Entries(4, 5) of the intact part = %v", err)
		}
	})
}

// TestOpenTombstone opens a destroyed peer that kept only its tombstone
// region state: not an error, and the peer reports the tombstone.
func TestOpenTombstone(t *testing.T) {
	forEach(t, func(t *testing.T, h *harness) {
		err := h.eng.Put(raftstorage.RegionStateKey(1), marshal(t, &raftkvpb.RegionLocalState{Region: testRegion(1), State: raftkvpb.PeerState_Tombstone}), kvs.Sync)
		if err != nil {
			t.Fatal(err)
		}
		s, err := raftstorage.Open(h.eng, 1)
		if err != nil {
			t.Fatal(err)
		}
		if s.RegionState().GetState() != raftkvpb.PeerState_Tombstone {
			t.Errorf("region state %v", s.RegionState())
		}
	})
}
