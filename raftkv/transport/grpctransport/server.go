package grpctransport

import (
	"context"
	"errors"
	"fmt"
	"io"
	"strconv"
	"sync"
	"sync/atomic"

	"github.com/kvs-lab/kvs/raftkv/raftkvpb"
	"github.com/kvs-lab/kvs/raftkv/transport"
	"google.golang.org/grpc"
	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/metadata"
	"google.golang.org/grpc/status"
	"google.golang.org/protobuf/proto"
)

// Metadata keys of the stream handshake. The opener of a stream sends
// all three; the server answers an accepted stream with a header carrying
// mdStore (its own id) and mdCluster, which the opener checks in turn.
const (
	mdCluster = "kvs-cluster-id"
	mdFrom    = "kvs-from-store"
	mdTo      = "kvs-to-store"
	mdStore   = "kvs-store-id"
)

// maxLogged bounds the set of (sender, reason) pairs a Server remembers
// having logged, so that garbage ids cannot grow it without end.
const maxLogged = 1024

// ServerStats counts what a Server received and refused.
type ServerStats struct {
	// Batches and Msgs count the raft batches (and the messages in them)
	// handed to the Handler.
	Batches, Msgs uint64
	// Snapshots counts snapshot streams the Handler accepted;
	// SnapshotsRejected those it, or the size bound, refused.
	Snapshots, SnapshotsRejected uint64
	// StreamsRefused counts streams refused at the handshake: another
	// cluster, an unknown sender, or a wrong destination.
	StreamsRefused uint64
}

// Server is the receiving side: the raftkvpb.Raft service, which checks
// every stream's handshake and hands what arrives to a transport.Handler.
// Register it on a grpc.Server built with ServerOptions.
type Server struct {
	raftkvpb.UnimplementedRaftServer
	cfg Config
	h   transport.Handler

	logMu  sync.Mutex
	logged map[string]bool

	batches, msgs, snapshots, snapshotsRejected, refused atomic.Uint64
}

// NewServer returns a Server of cfg's store that delivers to h.
func NewServer(cfg Config, h transport.Handler) (*Server, error) {
	c, err := cfg.withDefaults()
	if err != nil {
		return nil, err
	}
	if h == nil {
		return nil, errors.New("grpctransport: NewServer: nil Handler")
	}
	return &Server{cfg: c, h: h, logged: map[string]bool{}}, nil
}

// ServerOptions returns the grpc.Server options the Raft service needs:
// the message size bound of the Config and keepalive settings matching
// the Transport's (see the package comment). Pass them to grpc.NewServer.
func (s *Server) ServerOptions() []grpc.ServerOption { return s.cfg.serverOptions() }

// Register registers the Raft service on g.
func (s *Server) Register(g *grpc.Server) { raftkvpb.RegisterRaftServer(g, s) }

// Stats returns the Server's counters.
func (s *Server) Stats() ServerStats {
	return ServerStats{
		Batches: s.batches.Load(), Msgs: s.msgs.Load(),
		Snapshots: s.snapshots.Load(), SnapshotsRejected: s.snapshotsRejected.Load(),
		StreamsRefused: s.refused.Load(),
	}
}

// logOnce logs msg at warning level the first time sender from is refused
// for reason.
func (s *Server) logOnce(from uint64, reason, msg string) {
	key := strconv.FormatUint(from, 10) + "/" + reason
	s.logMu.Lock()
	first := !s.logged[key] && len(s.logged) < maxLogged
	if first {
		s.logged[key] = true
	}
	s.logMu.Unlock()
	if first {
		s.cfg.Logger.Warn(msg)
	}
}

// accept checks a new stream's handshake metadata and, if it passes,
// answers with this store's header. It returns the sender's store id, or
// a status error to end the stream with.
func (s *Server) accept(stream grpc.ServerStream) (uint64, error) {
	from, err := s.check(stream.Context())
	if err != nil {
		s.refused.Add(1)
		return 0, err
	}
	if err := stream.SendHeader(s.header()); err != nil {
		return 0, err
	}
	return from, nil
}

func (s *Server) header() metadata.MD {
	return metadata.Pairs(
		mdStore, strconv.FormatUint(s.cfg.StoreID, 10),
		mdCluster, strconv.FormatUint(s.cfg.ClusterID, 10))
}

func (s *Server) check(ctx context.Context) (uint64, error) {
	md, _ := metadata.FromIncomingContext(ctx)
	cluster, okC := mdUint(md, mdCluster)
	from, okF := mdUint(md, mdFrom)
	to, okT := mdUint(md, mdTo)
	if !okC || !okF || !okT || from == 0 {
		s.logOnce(0, "handshake", "refused a raft stream without kvs handshake metadata")
		return 0, status.Errorf(codes.InvalidArgument,
			"grpctransport: store %d: stream lacks the %s, %s and %s metadata", s.cfg.StoreID, mdCluster, mdFrom, mdTo)
	}
	if cluster != s.cfg.ClusterID {
		msg := fmt.Sprintf("grpctransport: store %d of cluster %d refuses store %d of cluster %d: no data from another cluster accepted",
			s.cfg.StoreID, s.cfg.ClusterID, from, cluster)
		s.logOnce(from, "cluster", msg)
		return 0, status.Error(codes.FailedPrecondition, msg)
	}
	if to != s.cfg.StoreID {
		msg := fmt.Sprintf("grpctransport: store %d got a stream meant for store %d (from store %d): wrong address in its peer list?",
			s.cfg.StoreID, to, from)
		s.logOnce(from, "to", msg)
		return 0, status.Error(codes.FailedPrecondition, msg)
	}
	if _, err := s.cfg.Resolver.Resolve(from); err != nil {
		msg := fmt.Sprintf("grpctransport: store %d refuses store %d, not in its peer list: %v", s.cfg.StoreID, from, err)
		s.logOnce(from, "unknown", msg)
		return 0, status.Error(codes.PermissionDenied, msg)
	}
	return from, nil
}

func mdUint(md metadata.MD, key string) (uint64, bool) {
	v := md.Get(key)
	if len(v) != 1 {
		return 0, false
	}
	n, err := strconv.ParseUint(v[0], 10, 64)
	return n, err == nil
}

// Send implements raftkvpb.RaftServer: it hands every batch of the
// stream to the Handler until the sender closes the stream.
func (s *Server) Send(stream grpc.ClientStreamingServer[raftkvpb.RaftMessageBatch, raftkvpb.Done]) error {
	if _, err := s.accept(stream); err != nil {
		return err
	}
	for {
		b, err := stream.Recv()
		if err == io.EOF {
			return stream.SendAndClose(&raftkvpb.Done{})
		}
		if err != nil {
			return err
		}
		s.batches.Add(1)
		s.msgs.Add(uint64(len(b.GetMsgs())))
		s.h.HandleRaft(b)
	}
}

// Snapshot implements raftkvpb.RaftServer: it collects one snapshot
// stream, up to MaxSnapshotBytes, and hands it to the Handler, whose
// verdict becomes the reply.
func (s *Server) Snapshot(stream grpc.ClientStreamingServer[raftkvpb.SnapshotChunk, raftkvpb.Done]) error {
	from, err := s.accept(stream)
	if err != nil {
		return err
	}
	var chunks []*raftkvpb.SnapshotChunk
	var total int64
	for {
		c, err := stream.Recv()
		if err == io.EOF {
			break
		}
		if err != nil {
			s.snapshotsRejected.Add(1)
			return err
		}
		total += int64(proto.Size(c))
		if total > s.cfg.MaxSnapshotBytes {
			s.snapshotsRejected.Add(1)
			msg := fmt.Sprintf("grpctransport: store %d: snapshot stream from store %d exceeds %d bytes", s.cfg.StoreID, from, s.cfg.MaxSnapshotBytes)
			s.logOnce(from, "snapsize", msg)
			return status.Error(codes.ResourceExhausted, msg)
		}
		chunks = append(chunks, c)
	}
	if err := s.h.HandleSnapshot(chunks); err != nil {
		s.snapshotsRejected.Add(1)
		return status.Errorf(codes.Aborted, "grpctransport: store %d rejected the snapshot from store %d: %v", s.cfg.StoreID, from, err)
	}
	s.snapshots.Add(1)
	return stream.SendAndClose(&raftkvpb.Done{})
}
