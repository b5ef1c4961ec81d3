package store

import (
	"errors"
	"fmt"
	"testing"

	"github.com/kvs-lab/kvs"
	"github.com/kvs-lab/kvs/raftkv/raftkvpb"
	"github.com/kvs-lab/kvs/raftkv/raftstorage"
	"google.golang.org/protobuf/proto"
)

// These tests drive the state machine's request handling (apply.go)
// directly, one applyBatch at a time, the way apply does: a batch
// gathers the writes of several entries, and the engine sees them only
// when the batch is written.

func openTestEngine(t *testing.T) kvs.Engine {
	t.Helper()
	eng, err := kvs.Open("lsm", t.TempDir(), &kvs.Options{Logger: kvs.DiscardLogger()})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = eng.Close() })
	return eng
}

// applyAll applies reqs in one batch, writes the batch, and returns the
// Responses.
func applyAll(t *testing.T, eng kvs.Engine, reqs ...*raftkvpb.Request) []*raftkvpb.Response {
	t.Helper()
	wb := new(kvs.Batch)
	ab := newApplyBatch(eng, wb, 1)
	var out []*raftkvpb.Response
	for _, req := range reqs {
		resp, err := ab.applyRequest(req)
		if err != nil {
			t.Fatalf("apply client %d seq %d: %v", req.GetClientId(), req.GetSeq(), err)
		}
		out = append(out, resp)
	}
	if err := eng.Write(wb, kvs.NoSync); err != nil {
		t.Fatal(err)
	}
	return out
}

func req(client, seq uint64, ops ...*raftkvpb.Op) *raftkvpb.Request {
	return &raftkvpb.Request{ClientId: client, Seq: seq, Ops: ops}
}

func incr(key string, d int64) *raftkvpb.Op {
	return &raftkvpb.Op{Type: raftkvpb.Op_IncrBy, Key: []byte(key), Delta: d}
}

func put(key, v string) *raftkvpb.Op {
	return &raftkvpb.Op{Type: raftkvpb.Op_Put, Key: []byte(key), Value: []byte(v)}
}

// userValue reads key from the engine: its value, or "(absent)".
func userValue(t *testing.T, eng kvs.Engine, key string) string {
	t.Helper()
	v, err := eng.Get(raftstorage.DataKey([]byte(key)))
	if errors.Is(err, kvs.ErrNotFound) {
		return "(absent)"
	}
	if err != nil {
		t.Fatal(err)
	}
	return string(v)
}

// TestApplyReadsEarlierWritesOfTheBatch applies read-modify-writes whose
// inputs were written earlier in the same batch, by earlier entries and
// by earlier ops of the same request: none of them is in the engine yet,
// so each op must read the batch's overlay, or it would compute from a
// stale value (and two INCRs committed together would count once).
func TestApplyReadsEarlierWritesOfTheBatch(t *testing.T) {
	eng := openTestEngine(t)
	applyAll(t, eng, req(1, 1, put("n", "5"), put("gone", "x")))

	resps := applyAll(t, eng,
		req(1, 2, incr("n", 1)),  // engine: 5 -> 6
		req(2, 1, incr("n", 10)), // overlay of the entry before: 6 -> 16
		req(3, 1,
			&raftkvpb.Op{Type: raftkvpb.Op_Append, Key: []byte("s"), Value: []byte("ab")},
			&raftkvpb.Op{Type: raftkvpb.Op_Append, Key: []byte("s"), Value: []byte("c")}, // the op before: "ab" -> "abc"
			&raftkvpb.Op{Type: raftkvpb.Op_Delete, Key: []byte("gone")},
			incr("gone", 3), // deleted just before: reads as absent, 0 -> 3
		),
		req(4, 1,
			&raftkvpb.Op{Type: raftkvpb.Op_Put, Key: []byte("s"), Value: []byte("nx"), Condition: raftkvpb.Op_IfAbsent},
			&raftkvpb.Op{Type: raftkvpb.Op_Put, Key: []byte("new"), Value: []byte("xx"), Condition: raftkvpb.Op_IfPresent},
			&raftkvpb.Op{Type: raftkvpb.Op_Put, Key: []byte("n"), Value: []byte("swapped"), ReturnOld: true},
		),
	)
	want := []*raftkvpb.Response{
		{Results: []*raftkvpb.OpResult{{Applied: true, Existed: true, Int: 6}}},
		{Results: []*raftkvpb.OpResult{{Applied: true, Existed: true, Int: 16}}},
		{Results: []*raftkvpb.OpResult{
			{Applied: true, Length: 2},
			{Applied: true, Existed: true, Length: 3},
			{Applied: true},
			{Applied: true, Int: 3},
		}},
		{Results: []*raftkvpb.OpResult{
			{Existed: true},  // s exists (written this batch): NX does not apply
			{Existed: false}, // new is absent: XX does not apply
			{Applied: true, Existed: true, Old: []byte("16")},
		}},
	}
	for i := range want {
		if !proto.Equal(resps[i], want[i]) {
			t.Errorf("request %d: response %v, want %v", i, resps[i], want[i])
		}
	}
	for key, v := range map[string]string{"n": "swapped", "s": "abc", "gone": "3", "new": "(absent)"} {
		if got := userValue(t, eng, key); got != v {
			t.Errorf("%s = %q, want %q", key, got, v)
		}
	}
}

// TestApplyIncrErrorsChangeNothing runs IncrBy on values Redis refuses,
// and on sums past int64, each after a Put of another key in the same
// request: the request fails with Redis's error (as Response.Error, the
// same on every replica), writes nothing of its ops, and records its
// failure in the session, so a retry fails the same way even if the
// value has become a number since.
func TestApplyIncrErrorsChangeNothing(t *testing.T) {
	cases := []struct {
		value string
		delta int64
		want  raftkvpb.Response_Error
	}{
		{"abc", 1, raftkvpb.Response_NotInteger},
		{"", 1, raftkvpb.Response_NotInteger},
		{" 1", 1, raftkvpb.Response_NotInteger},
		{"1 ", 1, raftkvpb.Response_NotInteger},
		{"+1", 1, raftkvpb.Response_NotInteger},
		{"01", 1, raftkvpb.Response_NotInteger},
		{"-0", 1, raftkvpb.Response_NotInteger},
		{"1.5", 1, raftkvpb.Response_NotInteger},
		{"9223372036854775808", -1, raftkvpb.Response_NotInteger}, // past int64 already
		{"99999999999999999999", 1, raftkvpb.Response_NotInteger}, // 20 digits: must not wrap
		{"9223372036854775807", 1, raftkvpb.Response_Overflow},
		{"-9223372036854775808", -1, raftkvpb.Response_Overflow},
		{"1", 1<<63 - 1, raftkvpb.Response_Overflow},
		{"-2", -1 << 63, raftkvpb.Response_Overflow},
	}
	for i, tc := range cases {
		t.Run(fmt.Sprintf("%q%+d", tc.value, tc.delta), func(t *testing.T) {
			eng := openTestEngine(t)
			client := uint64(100 + i)
			applyAll(t, eng, req(client, 1, put("k", tc.value)))
			failing := req(client, 2, put("other", "written?"), incr("k", tc.delta))
			resps := applyAll(t, eng, failing)
			want := &raftkvpb.Response{Error: tc.want, FailedOp: 1}
			if !proto.Equal(resps[0], want) {
				t.Fatalf("response %v, want %v", resps[0], want)
			}
			if got := userValue(t, eng, "k"); got != tc.value {
				t.Errorf("k = %q after a failed IncrBy, want %q unchanged", got, tc.value)
			}
			if got := userValue(t, eng, "other"); got != "(absent)" {
				t.Errorf("other = %q: the failed request's first op was written", got)
			}
			// Another client makes k a number; the retry still fails as
			// the first application did, and does not increment.
			resps = applyAll(t, eng, req(client+1000, 1, put("k", "7")), failing)
			if !proto.Equal(resps[1], want) {
				t.Errorf("retry: response %v, want the recorded %v", resps[1], want)
			}
			if got := userValue(t, eng, "k"); got != "7" {
				t.Errorf("k = %q after the retry, want 7", got)
			}
		})
	}
}

// TestApplyDuplicateReturnsRecordedResult applies an IncrBy, then the
// same request (same client and seq) again: in the same batch, in a
// later batch (the session read back from the engine), and after a
// later request of the same client. The first two return the recorded
// Response and increment nothing; the last applies nothing and reports
// an unknown outcome, as its Response is no longer kept (Raft
// dissertation §6.3).
func TestApplyDuplicateReturnsRecordedResult(t *testing.T) {
	eng := openTestEngine(t)
	first := req(7, 1, incr("n", 5))
	resps := applyAll(t, eng, first, first)
	want := &raftkvpb.Response{Results: []*raftkvpb.OpResult{{Applied: true, Int: 5}}}
	for i, r := range resps {
		if !proto.Equal(r, want) {
			t.Errorf("application %d in one batch: %v, want %v", i, r, want)
		}
	}
	resps = applyAll(t, eng, first)
	if !proto.Equal(resps[0], want) {
		t.Errorf("in a later batch: %v, want %v", resps[0], want)
	}
	if got := userValue(t, eng, "n"); got != "5" {
		t.Fatalf("n = %q, want 5: a duplicate applied", got)
	}

	applyAll(t, eng, req(7, 2, incr("n", 1)))
	wb := new(kvs.Batch)
	if _, err := newApplyBatch(eng, wb, 1).applyRequest(first); !errors.Is(err, errSessionMovedOn) {
		t.Errorf("replay of seq 1 after seq 2: %v, want errSessionMovedOn", err)
	}
	if !wb.Empty() {
		t.Error("the replay of an old seq wrote something")
	}
	if got := userValue(t, eng, "n"); got != "6" {
		t.Errorf("n = %q, want 6", got)
	}
}

// TestSessionFormat checks the session value: 8 bytes of big-endian seq,
// then the Response. A session of the first format (the seq alone) still
// reads, as a session without a recorded Response: a retry of its last
// request gets an empty Response and applies nothing.
func TestSessionFormat(t *testing.T) {
	resp := &raftkvpb.Response{Results: []*raftkvpb.OpResult{{Applied: true, Int: -3}}}
	v, err := encodeSession(session{seq: 0x0102, resp: resp})
	if err != nil {
		t.Fatal(err)
	}
	if string(v[:8]) != "\x00\x00\x00\x00\x00\x00\x01\x02" {
		t.Errorf("seq bytes % x", v[:8])
	}
	got, err := decodeSession(v)
	if err != nil || got.seq != 0x0102 || !proto.Equal(got.resp, resp) {
		t.Errorf("round trip: %+v, %v", got, err)
	}
	if _, err := decodeSession(v[:7]); err == nil {
		t.Error("a 7-byte session decoded")
	}

	eng := openTestEngine(t)
	if err := eng.Put(raftstorage.DataKey(sessionKey(9)), []byte{0, 0, 0, 0, 0, 0, 0, 4}, kvs.NoSync); err != nil {
		t.Fatal(err)
	}
	resps := applyAll(t, eng, req(9, 4, put("k", "v")))
	if len(resps[0].GetResults()) != 0 || resps[0].GetError() != raftkvpb.Response_None {
		t.Errorf("retry of a first-format session's request: %v, want an empty Response", resps[0])
	}
	if got := userValue(t, eng, "k"); got != "(absent)" {
		t.Errorf("k = %q: the retry applied", got)
	}
	if resps = applyAll(t, eng, req(9, 5, incr("k", 2))); resps[0].GetResults()[0].GetInt() != 2 {
		t.Errorf("next request: %v", resps[0])
	}
}
