// Package raftkvpb holds the protobuf messages of kvs's replicated layer:
// region metadata (Peer, RegionEpoch, Region), the per-peer states kept in a
// store's engine (RaftLocalState, RaftApplyState, RegionLocalState), the
// store-to-store messages (RaftMessage, RaftMessageBatch, the SnapshotChunk
// stream), client writes as they travel through the raft log (Request, Op),
// the context of membership changes (ConfChangeContext) and the Raft gRPC
// service that carries the store-to-store messages.
//
// raftkv.proto is the source; raftkv.pb.go and raftkv_grpc.pb.go are
// generated from it by `make proto` (protoc with protoc-gen-go v1.36.12 and
// protoc-gen-go-grpc v1.6.2) and committed. Raft's own messages
// (raftpb.HardState, raftpb.ConfState, raftpb.Message) are imported from
// go.etcd.io/raft/v3/raftpb rather than copied, so a RaftMessage carries a
// raftpb.Message as is.
//
// The messages are plain generated protobuf types: not safe for concurrent
// mutation, compared with proto.Equal, copied with proto.Clone.
package raftkvpb
