package raftkvpb_test

import (
	"bytes"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"strings"
	"testing"

	"github.com/kvs-lab/kvs/raftkv/raftkvpb"
	"go.etcd.io/raft/v3/raftpb"
	"google.golang.org/protobuf/proto"
)

func u64(v uint64) *uint64 { return &v }

func sampleRegion() *raftkvpb.Region {
	return &raftkvpb.Region{
		Id:       7,
		StartKey: []byte("a"),
		EndKey:   []byte("m"),
		Epoch:    &raftkvpb.RegionEpoch{ConfVer: 3, Version: 2},
		Peers:    []*raftkvpb.Peer{{Id: 1, StoreId: 1}, {Id: 2, StoreId: 2}, {Id: 3, StoreId: 3}},
	}
}

// TestMessagesRoundTrip marshals and unmarshals one filled-in value of every
// message and checks nothing is lost, including the imported raftpb fields.
func TestMessagesRoundTrip(t *testing.T) {
	region := sampleRegion()
	msg := &raftkvpb.RaftMessage{
		RegionId:    7,
		FromPeer:    &raftkvpb.Peer{Id: 1, StoreId: 1},
		ToPeer:      &raftkvpb.Peer{Id: 2, StoreId: 2},
		RegionEpoch: &raftkvpb.RegionEpoch{ConfVer: 3, Version: 2},
		ClusterId:   42,
		Message: &raftpb.Message{
			Type: raftpb.MsgApp.Enum(), To: u64(2), From: u64(1), Term: u64(6), Index: u64(9), LogTerm: u64(5),
			Entries: []*raftpb.Entry{{Term: u64(6), Index: u64(10), Data: []byte("put a 1")}},
			Commit:  u64(9),
		},
	}
	applyState := &raftkvpb.RaftApplyState{
		AppliedIndex: 10, TruncatedIndex: 5, TruncatedTerm: 5,
		ConfState: &raftpb.ConfState{Voters: []uint64{1, 2, 3}},
	}
	msgs := []proto.Message{
		&raftkvpb.Peer{Id: 1, StoreId: 2},
		&raftkvpb.RegionEpoch{ConfVer: 1, Version: 1},
		region,
		&raftkvpb.RaftLocalState{HardState: &raftpb.HardState{Term: u64(6), Vote: u64(1), Commit: u64(9)}, LastIndex: 10, LastTerm: 6},
		applyState,
		&raftkvpb.RegionLocalState{Region: region, State: raftkvpb.PeerState_Tombstone},
		msg,
		&raftkvpb.RaftMessageBatch{Msgs: []*raftkvpb.RaftMessage{msg, msg}},
		&raftkvpb.SnapshotChunk{Chunk: &raftkvpb.SnapshotChunk_Header{Header: &raftkvpb.SnapshotHeader{Message: msg, Region: region, ApplyState: applyState}}},
		&raftkvpb.SnapshotChunk{Chunk: &raftkvpb.SnapshotChunk_Data{Data: &raftkvpb.SnapshotData{Pairs: []*raftkvpb.KeyValue{{Key: []byte("b"), Value: []byte("2")}, {Key: []byte("c")}}}}},
		&raftkvpb.SnapshotChunk{Chunk: &raftkvpb.SnapshotChunk_Footer{Footer: &raftkvpb.SnapshotFooter{Pairs: 2, Bytes: 4}}},
		&raftkvpb.Done{},
	}
	for _, m := range msgs {
		name := string(m.ProtoReflect().Descriptor().FullName())
		t.Run(name, func(t *testing.T) {
			data, err := proto.Marshal(m)
			if err != nil {
				t.Fatal(err)
			}
			got := m.ProtoReflect().New().Interface()
			if err := proto.Unmarshal(data, got); err != nil {
				t.Fatal(err)
			}
			if !proto.Equal(m, got) {
				t.Fatalf("round trip changed the message:\nwant %v\n got %v", m, got)
			}
		})
	}
}

// versionLine matches the generator version comments, which differ between
// protoc installations without changing the code.
var versionLine = regexp.MustCompile(`(?m)^//\s*(-\s*)?protoc\s+v?[0-9.]+.*$|^//\s*(-\s*)?protoc\s+\(unknown\)$`)

// TestGeneratedCodeIsCurrent regenerates the Go code into a temporary
// directory and compares it with the committed files. It needs protoc and
// the two plugins at the versions `make proto` pins; without protoc it
// skips (CI does not install it).
func TestGeneratedCodeIsCurrent(t *testing.T) {
	protoc, err := exec.LookPath("protoc")
	if err != nil {
		t.Skip("protoc not installed (apt-get install protobuf-compiler)")
	}
	root, err := filepath.Abs("../..")
	if err != nil {
		t.Fatal(err)
	}
	makefile, err := os.ReadFile(filepath.Join(root, "Makefile"))
	if err != nil {
		t.Fatal(err)
	}
	version := func(name string) string {
		m := regexp.MustCompile(`(?m)^` + name + ` = (\S+)$`).FindSubmatch(makefile)
		if m == nil {
			t.Fatalf("Makefile has no %s", name)
		}
		return string(m[1])
	}
	bin := t.TempDir()
	for _, pkg := range []string{
		"google.golang.org/protobuf/cmd/protoc-gen-go@" + version("PROTOC_GEN_GO_VERSION"),
		"google.golang.org/grpc/cmd/protoc-gen-go-grpc@" + version("PROTOC_GEN_GO_GRPC_VERSION"),
	} {
		cmd := exec.Command("go", "install", pkg)
		cmd.Env = append(os.Environ(), "GOBIN="+bin)
		if out, err := cmd.CombinedOutput(); err != nil {
			t.Skipf("cannot install %s (offline?): %v\n%s", pkg, err, out)
		}
	}
	raftDir, err := exec.Command("go", "list", "-m", "-f", "{{.Dir}}", "go.etcd.io/raft/v3").Output()
	if err != nil {
		t.Fatalf("locate go.etcd.io/raft/v3: %v", err)
	}
	out := t.TempDir()
	cmd := exec.Command(protoc,
		"-I", root, "-I", filepath.Join(strings.TrimSpace(string(raftDir)), "raftpb"),
		"--plugin=protoc-gen-go="+filepath.Join(bin, "protoc-gen-go"),
		"--plugin=protoc-gen-go-grpc="+filepath.Join(bin, "protoc-gen-go-grpc"),
		"--go_out="+out, "--go_opt=paths=source_relative",
		"--go-grpc_out="+out, "--go-grpc_opt=paths=source_relative",
		filepath.Join(root, "raftkv/raftkvpb/raftkv.proto"))
	if b, err := cmd.CombinedOutput(); err != nil {
		t.Fatalf("protoc: %v\n%s", err, b)
	}
	for _, name := range []string{"raftkv.pb.go", "raftkv_grpc.pb.go"} {
		want, err := os.ReadFile(filepath.Join(out, "raftkv/raftkvpb", name))
		if err != nil {
			t.Fatal(err)
		}
		got, err := os.ReadFile(name)
		if err != nil {
			t.Fatal(err)
		}
		want, got = versionLine.ReplaceAll(want, nil), versionLine.ReplaceAll(got, nil)
		if !bytes.Equal(want, got) {
			t.Errorf("%s is out of date with raftkv.proto: run make proto", name)
		}
	}
}
