package store

import (
	"errors"
	"time"

	"github.com/kvs-lab/kvs"
	"github.com/kvs-lab/kvs/raftkv/transport"
	"github.com/sirupsen/logrus"
)

// Config configures a Store. Zero fields take the defaults named below.
type Config struct {
	// StoreID identifies the store in the cluster; it must be non-zero
	// and is never reused. New refuses an engine recorded for another
	// store.
	StoreID uint64
	// ClusterID is stamped on every raft message; messages of another
	// cluster are dropped. It must be non-zero; the engine records it
	// with StoreID at the store's first start (see New).
	ClusterID uint64
	// Engine holds every peer's raft log and state and the user data. The
	// caller opens it (kvs.Open with an engine name) and closes it after
	// Store.Stop.
	Engine kvs.Engine
	// Transport carries raft messages and snapshots to other stores.
	Transport transport.Transport

	// TickInterval is the length of one raft tick. Zero means the Store
	// has no ticker and the caller calls Tick (tests do, so time is under
	// their control).
	TickInterval time.Duration
	// ElectionTick is raft's election timeout in ticks (default 10).
	ElectionTick int
	// HeartbeatTick is the leader's heartbeat interval in ticks (default 2).
	HeartbeatTick int
	// MaxSizePerMsg bounds the entries of one append message (default 1 MiB).
	MaxSizePerMsg uint64
	// MaxInflightMsgs bounds the append messages in flight to a follower
	// (default 256).
	MaxInflightMsgs int

	// RaftLogGCThreshold is how many applied entries a peer keeps in its
	// log before it truncates it (default 1024). See the package comment
	// for where the log is cut.
	RaftLogGCThreshold uint64
	// SnapshotChunkBytes is the size of a snapshot's data chunks (default
	// raftstorage.DefaultChunkBytes).
	SnapshotChunkBytes int
	// MaxRequestBytes bounds the encoded size of one client write; Write
	// refuses a larger one before proposing it. Each write becomes one
	// raft log entry, stored as one engine value, so the bound must leave
	// room under the engine's MaxValueSize for the entry's own fields: an
	// entry the engine refused would stop the store. Default
	// DefaultMaxRequestBytes, which fits an engine with the default
	// kvs.DefaultMaxValueSize.
	MaxRequestBytes int

	// Logger receives the store's and raft's logs (default: warnings to
	// stderr).
	Logger *logrus.Entry
}

// EntryOverheadBytes is room for a raft entry's fields besides its
// request (term, index, type, framing), with a wide margin.
const EntryOverheadBytes = 4 << 10

// DefaultMaxRequestBytes is Config.MaxRequestBytes when left zero: what an
// engine with kvs.DefaultMaxValueSize can store as one entry.
const DefaultMaxRequestBytes = kvs.DefaultMaxValueSize - EntryOverheadBytes

func (c *Config) withDefaults() (Config, error) {
	out := *c
	if out.StoreID == 0 {
		return out, errors.New("store: config: StoreID must be set")
	}
	if out.Engine == nil {
		return out, errors.New("store: config: Engine must be set")
	}
	if out.Transport == nil {
		return out, errors.New("store: config: Transport must be set")
	}
	if out.ElectionTick == 0 {
		out.ElectionTick = 10
	}
	if out.HeartbeatTick == 0 {
		out.HeartbeatTick = 2
	}
	if out.HeartbeatTick >= out.ElectionTick {
		return out, errors.New("store: config: HeartbeatTick must be below ElectionTick")
	}
	if out.MaxSizePerMsg == 0 {
		out.MaxSizePerMsg = 1 << 20
	}
	if out.MaxInflightMsgs == 0 {
		out.MaxInflightMsgs = 256
	}
	if out.MaxRequestBytes == 0 {
		out.MaxRequestBytes = DefaultMaxRequestBytes
	}
	if out.RaftLogGCThreshold == 0 {
		out.RaftLogGCThreshold = 1024
	}
	if out.Logger == nil {
		l := logrus.New()
		l.SetLevel(logrus.WarnLevel)
		out.Logger = logrus.NewEntry(l)
	}
	out.Logger = out.Logger.WithField("store", out.StoreID)
	return out, nil
}
