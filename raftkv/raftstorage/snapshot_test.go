package raftstorage_test

import (
	"bytes"
	"fmt"
	"io"
	"testing"

	"github.com/kvs-lab/kvs"
	"github.com/kvs-lab/kvs/raftkv/raftkvpb"
	"github.com/kvs-lab/kvs/raftkv/raftstorage"
	"go.etcd.io/raft/v3/raftpb"
	"google.golang.org/protobuf/proto"
)

func TestDataKeys(t *testing.T) {
	k := raftstorage.DataKey([]byte("abc"))
	if string(k) != "zabc" {
		t.Fatalf("DataKey = %q", k)
	}
	if u, ok := raftstorage.UserKey(k); !ok || string(u) != "abc" {
		t.Fatalf("UserKey = %q, %v", u, ok)
	}
	if _, ok := raftstorage.UserKey(raftstorage.RaftStateKey(1)); ok {
		t.Fatal("UserKey accepted a local key")
	}
	lo, hi := raftstorage.DataRange([]byte("b"), nil)
	if string(lo) != "zb" || string(hi) != "{" {
		t.Fatalf("DataRange(b, inf) = %q, %q", lo, hi)
	}
	// Every local key sorts before every data key.
	for _, local := range [][]byte{raftstorage.EntryKey(math64, math64), raftstorage.RaftStateKey(math64), raftstorage.ApplyStateKey(math64), raftstorage.RegionStateKey(math64)} {
		if bytes.Compare(local, raftstorage.DataKey(nil)) >= 0 {
			t.Errorf("local key %x sorts after data keys", local)
		}
	}
	// Entry keys of a region sort by index and before its state keys.
	if bytes.Compare(raftstorage.EntryKey(1, 255), raftstorage.EntryKey(1, 256)) >= 0 ||
		bytes.Compare(raftstorage.EntryKey(1, math64), raftstorage.RaftStateKey(1)) >= 0 ||
		bytes.Compare(raftstorage.ApplyStateKey(1), raftstorage.EntryKey(2, 0)) >= 0 {
		t.Error("raft keys out of order")
	}
}

const math64 = ^uint64(0)

func putData(t testing.TB, eng kvs.Engine, kv ...string) {
	t.Helper()
	var wb kvs.Batch
	for i := 0; i < len(kv); i += 2 {
		wb.Put(raftstorage.DataKey([]byte(kv[i])), []byte(kv[i+1]))
	}
	if err := eng.Write(&wb, kvs.Sync); err != nil {
		t.Fatal(err)
	}
}

func dataOf(t testing.TB, eng kvs.Reader) map[string]string {
	t.Helper()
	lo, hi := raftstorage.DataRange(nil, nil)
	it, err := eng.NewIter(&kvs.IterOptions{LowerBound: lo, UpperBound: hi})
	if err != nil {
		t.Fatal(err)
	}
	m := map[string]string{}
	for ok := it.First(); ok; ok = it.Next() {
		u, _ := raftstorage.UserKey(it.Key())
		m[string(u)] = string(it.Value())
	}
	if err := it.Close(); err != nil {
		t.Fatal(err)
	}
	return m
}

// TestSnapshotDataTransfer generates a region snapshot on one engine,
// streams it in small chunks to a peer with no region on another engine
// and applies it there: the receiver's data range then holds exactly the
// sender's data as of the snapshot (not writes made after it), keys
// outside the region are untouched, and the peer's states follow.
func TestSnapshotDataTransfer(t *testing.T) {
	for _, from := range engineNames {
		for _, to := range engineNames {
			t.Run(from+"->"+to, func(t *testing.T) {
				src, dst := newHarness(t, from), newHarness(t, to)
				region := testRegion(1)
				region.StartKey, region.EndKey = []byte("b"), []byte("m")
				s := src.storage(1)
				src.update(s, func(u *raftstorage.Update) error { return u.Bootstrap(region) })
				src.update(s, func(u *raftstorage.Update) error {
					if err := u.Append(index(6).terms(6, 6)); err != nil {
						return err
					}
					return u.SetHardState(&raftpb.HardState{Term: u64(6), Commit: u64(7)})
				})
				// Apply entries 6 and 7: data and applied index in one batch.
				var wb kvs.Batch
				want := map[string]string{}
				for i := range 300 {
					k, v := fmt.Sprintf("c%04d", i), fmt.Sprintf("value-%d", i)
					wb.Put(raftstorage.DataKey([]byte(k)), []byte(v))
					want[k] = v
				}
				wb.Put(raftstorage.DataKey([]byte("a-outside")), []byte("x"))
				u := s.NewUpdate(&wb)
				if err := u.SetApplied(7); err != nil {
					t.Fatal(err)
				}
				if err := src.eng.Write(&wb, kvs.Sync); err != nil {
					t.Fatal(err)
				}
				if err := u.Commit(); err != nil {
					t.Fatal(err)
				}

				snap, err := s.Snapshot()
				if err != nil {
					t.Fatal(err)
				}
				if snap.GetMetadata().GetIndex() != 7 || snap.GetMetadata().GetTerm() != 6 {
					t.Fatalf("snapshot metadata %v", snap.GetMetadata())
				}
				// A write after the snapshot must not travel with it.
				putData(t, src.eng, "c0000", "changed", "d-new", "new")
				rs, err := s.AcquireSnapshot(7)
				if err != nil {
					t.Fatal(err)
				}
				defer rs.Release()
				var chunks []*raftkvpb.SnapshotChunk
				msg := &raftkvpb.RaftMessage{RegionId: 1, Message: &raftpb.Message{Type: raftpb.MsgSnap.Enum(), Snapshot: snap}}
				if err := rs.WriteChunks(msg, 512, func(c *raftkvpb.SnapshotChunk) error {
					chunks = append(chunks, c)
					return nil
				}); err != nil {
					t.Fatal(err)
				}
				if len(chunks) < 4 {
					t.Fatalf("%d chunks: want several data chunks of 512 bytes", len(chunks))
				}

				// The receiver holds stale data in the range and other data
				// outside it.
				putData(t, dst.eng, "c0001", "stale", "c9999", "stale-extra", "a", "keep", "x", "keep")
				d := dst.storage(1)
				apply := func(chunks []*raftkvpb.SnapshotChunk) (*kvs.Batch, *raftstorage.Update, error) {
					i := 0
					next := func() (*raftkvpb.SnapshotChunk, error) {
						if i == len(chunks) {
							return nil, io.EOF
						}
						i++
						return chunks[i-1], nil
					}
					wb := new(kvs.Batch)
					hdr, err := raftstorage.ApplySnapshotData(dst.eng, wb, next)
					if err != nil {
						return wb, nil, err
					}
					if !proto.Equal(hdr.GetMessage(), msg) {
						t.Errorf("header message %v", hdr.GetMessage())
					}
					u := d.NewUpdate(wb)
					return wb, u, u.ApplySnapshot(hdr.GetMessage().GetMessage().GetSnapshot().GetMetadata(), hdr.GetRegion())
				}
				// A cut stream is refused and adds nothing to the batch.
				if wb, _, err := apply(chunks[:len(chunks)-1]); err == nil || !wb.Empty() {
					t.Errorf("cut stream: err %v, batch of %d", err, wb.Count())
				}
				wb2, u2, err := apply(chunks)
				if err != nil {
					t.Fatal(err)
				}
				if err := dst.eng.Write(wb2, kvs.Sync); err != nil {
					t.Fatal(err)
				}
				if err := u2.Commit(); err != nil {
					t.Fatal(err)
				}
				want["a"], want["x"] = "keep", "keep"
				dst.checkBoth(t, func(t *testing.T, ss []*raftstorage.Storage) {
					got := dataOf(t, dst.eng)
					if len(got) != len(want) {
						t.Errorf("receiver has %d keys, want %d", len(got), len(want))
					}
					for k, v := range want {
						if got[k] != v {
							t.Errorf("receiver %q = %q, want %q", k, got[k], v)
						}
					}
					d := ss[0]
					first, _ := d.FirstIndex()
					last, _ := d.LastIndex()
					_, cs, _ := d.InitialState()
					if first != 8 || last != 7 || d.AppliedIndex() != 7 || !proto.Equal(cs, testConfState) ||
						!bytes.Equal(d.RegionState().GetRegion().GetEndKey(), []byte("m")) {
						t.Errorf("receiver state: first %d last %d applied %d cs %v region %v", first, last, d.AppliedIndex(), cs, d.RegionState())
					}
				}, d)
				_ = s.Close()
			})
		}
	}
}

func TestApplySnapshotDataRejectsBadStreams(t *testing.T) {
	h := newHarness(t, "lsm")
	region := testRegion(1)
	region.StartKey, region.EndKey = []byte("b"), []byte("m")
	header := &raftkvpb.SnapshotChunk{Chunk: &raftkvpb.SnapshotChunk_Header{Header: &raftkvpb.SnapshotHeader{Region: region}}}
	data := func(keys ...string) *raftkvpb.SnapshotChunk {
		d := &raftkvpb.SnapshotData{}
		for _, k := range keys {
			d.Pairs = append(d.Pairs, &raftkvpb.KeyValue{Key: []byte(k), Value: []byte("v")})
		}
		return &raftkvpb.SnapshotChunk{Chunk: &raftkvpb.SnapshotChunk_Data{Data: d}}
	}
	footer := func(n, b uint64) *raftkvpb.SnapshotChunk {
		return &raftkvpb.SnapshotChunk{Chunk: &raftkvpb.SnapshotChunk_Footer{Footer: &raftkvpb.SnapshotFooter{Pairs: n, Bytes: b}}}
	}
	tests := map[string][]*raftkvpb.SnapshotChunk{
		"no header":         {data("c"), footer(1, 2)},
		"key below region":  {header, data("a"), footer(1, 2)},
		"key at region end": {header, data("m"), footer(1, 2)},
		"keys out of order": {header, data("d", "c"), footer(2, 4)},
		"wrong footer":      {header, data("c", "d"), footer(3, 6)},
		"no footer":         {header, data("c")},
	}
	for name, chunks := range tests {
		t.Run(name, func(t *testing.T) {
			i := 0
			wb := new(kvs.Batch)
			_, err := raftstorage.ApplySnapshotData(h.eng, wb, func() (*raftkvpb.SnapshotChunk, error) {
				if i == len(chunks) {
					return nil, io.EOF
				}
				i++
				return chunks[i-1], nil
			})
			if err == nil || !wb.Empty() {
				t.Errorf("err %v, batch of %d", err, wb.Count())
			}
		})
	}
}
