package grpctransport

import (
	"errors"
	"fmt"
	"sort"
	"strconv"
	"strings"
	"time"

	"github.com/kvs-lab/kvs"
	"github.com/sirupsen/logrus"
	"google.golang.org/grpc"
	"google.golang.org/grpc/backoff"
	"google.golang.org/grpc/credentials/insecure"
	"google.golang.org/grpc/keepalive"
)

// ErrUnknownStore is returned (wrapped) by a Resolver for a store id it
// has no address for; the transport refuses to send to such a store and
// the server refuses streams from it.
var ErrUnknownStore = errors.New("grpctransport: unknown store")

// Resolver maps a store id to the address (host:port) of its raft
// server. The transport resolves a destination when it first connects
// and again before every reconnect, so an address may change while the
// cluster runs. The server asks it whether a sender is a member at all,
// on every new stream. Implementations must be safe for concurrent use
// and should answer quickly (from a cache, if addresses come from the
// scheduler): the first Send to a store resolves it under a lock.
type Resolver interface {
	// Resolve returns store id's address, or an error wrapping
	// ErrUnknownStore if id is not a store of the cluster.
	Resolve(id uint64) (string, error)
}

// StaticResolver is a fixed map from store id to address, as given by
// `kvs node --peers`. It must not be changed once in use.
type StaticResolver map[uint64]string

// Resolve implements Resolver.
func (r StaticResolver) Resolve(id uint64) (string, error) {
	if a, ok := r[id]; ok {
		return a, nil
	}
	return "", fmt.Errorf("store %d: %w", id, ErrUnknownStore)
}

// ParsePeers parses a peer list "1=host:port,2=host:port,..." (the
// --peers flag). Ids must be non-zero and distinct, addresses non-empty.
func ParsePeers(s string) (StaticResolver, error) {
	r := StaticResolver{}
	for _, part := range strings.Split(s, ",") {
		part = strings.TrimSpace(part)
		if part == "" {
			continue
		}
		idStr, addr, ok := strings.Cut(part, "=")
		if !ok || addr == "" {
			return nil, fmt.Errorf("grpctransport: peer %q: want id=host:port", part)
		}
		id, err := strconv.ParseUint(idStr, 10, 64)
		if err != nil || id == 0 {
			return nil, fmt.Errorf("grpctransport: peer %q: store id must be a positive integer", part)
		}
		if _, dup := r[id]; dup {
			return nil, fmt.Errorf("grpctransport: peer list names store %d twice", id)
		}
		r[id] = addr
	}
	if len(r) == 0 {
		return nil, errors.New("grpctransport: empty peer list")
	}
	return r, nil
}

// String formats r as ParsePeers reads it, by store id order.
func (r StaticResolver) String() string {
	ids := make([]uint64, 0, len(r))
	for id := range r {
		ids = append(ids, id)
	}
	sort.Slice(ids, func(i, j int) bool { return ids[i] < ids[j] })
	parts := make([]string, len(ids))
	for i, id := range ids {
		parts[i] = fmt.Sprintf("%d=%s", id, r[id])
	}
	return strings.Join(parts, ",")
}

// Config configures both sides of the transport: a Transport (what this
// store sends) and a Server (what it receives). Zero fields take the
// defaults named below.
type Config struct {
	// StoreID is this store's id (non-zero). It is sent with every stream
	// and checked by the receiver against its Resolver.
	StoreID uint64
	// ClusterID is the cluster's id. A stream from another cluster is
	// refused, in both directions.
	ClusterID uint64
	// Resolver maps store ids to addresses; it also defines which stores
	// may send to this one.
	Resolver Resolver

	// QueueLen is the number of batches waiting per destination store
	// (default 1024); a batch that finds the queue full is dropped.
	QueueLen int
	// MaxMsgBytes bounds one gRPC message in either direction: a raft
	// batch (split when larger; one raft message larger than this is
	// dropped) or a snapshot chunk (default 64 MiB, comfortably above
	// raft's MaxSizePerMsg of 1 MiB and the 1 MiB snapshot chunks).
	MaxMsgBytes int
	// MaxSnapshotBytes bounds a whole snapshot stream as the server
	// collects it before handing it over (default kvs.MaxBatchSize, as the
	// receiver applies it in one engine batch).
	MaxSnapshotBytes int64

	// BackoffBase is the wait after the first failed connection attempt
	// to a store; it doubles (with ±20% jitter) after each further failure
	// up to BackoffMax (defaults 100 ms and 5 s).
	BackoffBase, BackoffMax time.Duration
	// HandshakeTimeout bounds connecting to a store and its answer to a
	// new stream (default 5 s).
	HandshakeTimeout time.Duration
	// KeepaliveTime is how long a connection may stay silent before a
	// ping checks that the other side lives; KeepaliveTimeout is how long
	// the ping's answer may take before the connection is declared dead
	// (defaults 10 s, gRPC's minimum, and 5 s).
	KeepaliveTime, KeepaliveTimeout time.Duration

	// Logger receives the transport's logs (default: warnings to stderr).
	Logger *logrus.Entry
}

func (c *Config) withDefaults() (Config, error) {
	out := *c
	if out.StoreID == 0 {
		return out, errors.New("grpctransport: config: StoreID must be set")
	}
	if out.Resolver == nil {
		return out, errors.New("grpctransport: config: Resolver must be set")
	}
	if out.QueueLen <= 0 {
		out.QueueLen = 1024
	}
	if out.MaxMsgBytes <= 0 {
		out.MaxMsgBytes = 64 << 20
	}
	if out.MaxSnapshotBytes <= 0 {
		out.MaxSnapshotBytes = kvs.MaxBatchSize
	}
	if out.BackoffBase <= 0 {
		out.BackoffBase = 100 * time.Millisecond
	}
	if out.BackoffMax <= 0 {
		out.BackoffMax = 5 * time.Second
	}
	if out.BackoffMax < out.BackoffBase {
		out.BackoffMax = out.BackoffBase
	}
	if out.HandshakeTimeout <= 0 {
		out.HandshakeTimeout = 5 * time.Second
	}
	if out.KeepaliveTime <= 0 {
		out.KeepaliveTime = 10 * time.Second
	}
	if out.KeepaliveTimeout <= 0 {
		out.KeepaliveTimeout = 5 * time.Second
	}
	if out.Logger == nil {
		l := logrus.New()
		l.SetLevel(logrus.WarnLevel)
		out.Logger = logrus.NewEntry(l)
	}
	out.Logger = out.Logger.WithField("store", out.StoreID)
	return out, nil
}

// dialOptions are the options of every client connection: plaintext,
// the message size bound, keepalive pings, and gRPC's own reconnect
// backoff set to ours (its default waits up to two minutes).
func (c *Config) dialOptions() []grpc.DialOption {
	return []grpc.DialOption{
		grpc.WithTransportCredentials(insecure.NewCredentials()),
		grpc.WithDefaultCallOptions(grpc.MaxCallRecvMsgSize(c.MaxMsgBytes), grpc.MaxCallSendMsgSize(c.MaxMsgBytes)),
		grpc.WithKeepaliveParams(keepalive.ClientParameters{
			Time: c.KeepaliveTime, Timeout: c.KeepaliveTimeout, PermitWithoutStream: true,
		}),
		grpc.WithConnectParams(grpc.ConnectParams{
			Backoff: backoff.Config{
				BaseDelay: c.BackoffBase, Multiplier: 2, Jitter: 0.2, MaxDelay: c.BackoffMax,
			},
			MinConnectTimeout: c.HandshakeTimeout,
		}),
	}
}

// serverOptions are the grpc.Server options matching dialOptions.
func (c *Config) serverOptions() []grpc.ServerOption {
	minPing := c.KeepaliveTime / 2
	return []grpc.ServerOption{
		grpc.MaxRecvMsgSize(c.MaxMsgBytes),
		grpc.MaxSendMsgSize(c.MaxMsgBytes),
		// Ping clients too, so that the streams of a dead store end.
		grpc.KeepaliveParams(keepalive.ServerParameters{Time: c.KeepaliveTime, Timeout: c.KeepaliveTimeout}),
		// Accept the clients' pings: gRPC closes connections that ping
		// more often than MinTime ("too_many_pings").
		grpc.KeepaliveEnforcementPolicy(keepalive.EnforcementPolicy{MinTime: minPing, PermitWithoutStream: true}),
	}
}
