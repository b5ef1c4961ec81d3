package main

import (
	"errors"
	"fmt"
	"net"
	"sort"
	"strings"
	"time"

	"github.com/kvs-lab/kvs/raftkv/raftkvpb"
	"github.com/kvs-lab/kvs/raftkv/store"
	"github.com/kvs-lab/kvs/raftkv/transport/grpctransport"
	"github.com/kvs-lab/kvs/server"
	"github.com/spf13/cobra"
	"google.golang.org/grpc"
)

// nodeFlags are kvs node's own flags; the engine flags are the globals.
type nodeFlags struct {
	id          uint64
	peers       string
	raftAddr    string
	addr        string
	clientAddrs string
	clusterID   uint64
	tick        time.Duration
	http        string
	logFormat   string
}

// The region every node of a step-1 cluster bootstraps: the whole key
// space, one raft group. Peer ids are peerIDBase + store id.
const (
	firstRegionID = 1
	peerIDBase    = 100
)

func newNodeCmd(g *globals) *cobra.Command {
	f := &nodeFlags{}
	cmd := &cobra.Command{
		Use:   "node",
		Short: "Run one store of a raft-replicated kvs cluster, serving RESP",
		Long: `node runs one store of a replicated kvs cluster: the engine in --dir holds
the raft log and the data, raft traffic goes over gRPC on --raft-addr, and
Redis clients talk to --addr exactly as to kvs serve, except that every
command goes through raft.

Every node of a new cluster is started with the same --peers list
(store id = raft address, for all of them) and its own --id; the first
start of each bootstraps one region covering the whole key space, with one
raft peer per store. Restarts reuse the directory and ignore how --peers
was spelled then, as long as this store is in it.

A command sent to a follower is not executed: the reply is
"MOVED 0 host:port" naming the leader's RESP address (known from
--client-addrs) or "TRYAGAIN" while no leader is known. INFO raft shows the
store's raft state, term, commit and applied index.`,
		Args: cobra.NoArgs,
		RunE: func(cmd *cobra.Command, args []string) error { return runNode(cmd, g, f) },
	}
	fl := cmd.Flags()
	fl.Uint64Var(&f.id, "id", 0, "this store's id (non-zero, one of --peers)")
	fl.StringVar(&f.peers, "peers", "", "every store's raft address: 1=127.0.0.1:7001,2=127.0.0.1:7002,...")
	fl.StringVar(&f.raftAddr, "raft-addr", "", "address to listen on for raft traffic (default: this store's entry in --peers)")
	fl.StringVar(&f.addr, "addr", "127.0.0.1:6380", "address to listen on for Redis clients")
	fl.StringVar(&f.clientAddrs, "client-addrs", "", "every store's Redis address, for MOVED replies: 1=127.0.0.1:6381,...")
	fl.Uint64Var(&f.clusterID, "cluster-id", 1, "the cluster's id: stores of other clusters are refused")
	fl.DurationVar(&f.tick, "tick", 100*time.Millisecond, "raft tick (election timeout 10 ticks, heartbeat 2)")
	fl.StringVar(&f.http, "http", "", "address of the HTTP side port (/metrics, /debug/pprof/, status page)")
	fl.StringVar(&f.logFormat, "log-format", "text", "log format: text or json")
	return cmd
}

// parseAddrs reads "1=host:port,2=host:port" for the flag named flag.
func parseAddrs(flag, s string) (map[uint64]string, error) {
	out := map[uint64]string{}
	if s == "" {
		return out, nil
	}
	r, err := grpctransport.ParsePeers(s)
	if err != nil {
		return nil, usagef("--%s: %v", flag, err)
	}
	for id, a := range r {
		out[id] = a
	}
	return out, nil
}

func runNode(cmd *cobra.Command, g *globals, f *nodeFlags) error {
	level := g.logLevel
	if fl := cmd.Flags().Lookup("log-level"); fl == nil || !fl.Changed {
		level = "info"
	}
	logger, err := serveLogger(cmd.ErrOrStderr(), level, f.logFormat)
	if err != nil {
		return err
	}
	if f.id == 0 {
		return usagef("--id is required: this store's id, non-zero")
	}
	if f.clusterID == 0 {
		return usagef("--cluster-id: 0 is not a cluster id")
	}
	if f.tick <= 0 {
		return usagef("--tick: %v is not a positive duration", f.tick)
	}
	if f.peers == "" {
		return usagef("--peers is required: every store's raft address, e.g. 1=127.0.0.1:7001,2=127.0.0.1:7002,3=127.0.0.1:7003")
	}
	peers, err := grpctransport.ParsePeers(f.peers)
	if err != nil {
		return usagef("--peers: %v", err)
	}
	self, ok := peers[f.id]
	if !ok {
		ids := make([]string, 0, len(peers))
		for id := range peers {
			ids = append(ids, fmt.Sprint(id))
		}
		sort.Strings(ids)
		return usagef("--id %d is not in --peers (stores %s): a store must be one of the cluster's peers", f.id, strings.Join(ids, ", "))
	}
	if f.raftAddr == "" {
		f.raftAddr = self
	}
	clientAddrs, err := parseAddrs("client-addrs", f.clientAddrs)
	if err != nil {
		return err
	}
	cfg := server.Config{Addr: f.addr, HTTPAddr: f.http, Logger: logger}
	if err := cfg.Validate(); err != nil {
		return usageError{err}
	}

	o, err := g.options(cmd.ErrOrStderr())
	if err != nil {
		return err
	}
	o.Logger = logger.WithField("dir", g.dir)
	eng, name, err := g.openWith(o, true)
	if err != nil {
		return err
	}
	engOpen := true
	defer func() {
		if engOpen {
			eng.Close()
		}
	}()

	region := &raftkvpb.Region{Id: firstRegionID, Epoch: &raftkvpb.RegionEpoch{ConfVer: 1, Version: 1}}
	ids := make([]uint64, 0, len(peers))
	for id := range peers {
		ids = append(ids, id)
	}
	sort.Slice(ids, func(i, j int) bool { return ids[i] < ids[j] })
	for _, id := range ids {
		region.Peers = append(region.Peers, &raftkvpb.Peer{Id: peerIDBase + id, StoreId: id})
	}
	if err := store.Bootstrap(eng, region); err != nil {
		return fmt.Errorf("kvs node: bootstrap region %d in %s: %w", firstRegionID, g.dir, err)
	}

	// NB: reconnect within a second: a restarted store should not wait
	// out a long backoff before the leader's stream finds it again.
	tcfg := grpctransport.Config{StoreID: f.id, ClusterID: f.clusterID, Resolver: peers, BackoffMax: time.Second,
		Logger: logger.WithField("component", "transport")}
	tr, err := grpctransport.New(tcfg)
	if err != nil {
		return err
	}
	// NB: every write is stored in the raft log as one engine value, so a
	// write must leave room under the engine's value limit for the
	// entry's own fields.
	st, err := store.New(store.Config{StoreID: f.id, ClusterID: f.clusterID, Engine: eng, Transport: tr,
		TickInterval: f.tick, Logger: logger.WithField("component", "store"),
		MaxRequestBytes: max(o.EnsureDefaults().MaxValueSize-store.EntryOverheadBytes, 1)})
	if err != nil {
		tr.Close()
		return fmt.Errorf("kvs node: %w", err)
	}
	rsrv, err := grpctransport.NewServer(tcfg, st)
	if err != nil {
		st.Stop()
		tr.Close()
		return err
	}
	gs := grpc.NewServer(rsrv.ServerOptions()...)
	rsrv.Register(gs)
	lis, err := net.Listen("tcp", f.raftAddr)
	if err != nil {
		st.Stop()
		tr.Close()
		return fmt.Errorf("kvs node: raft address: %w", err)
	}
	go gs.Serve(lis)
	logger.WithField("raft_addr", f.raftAddr).WithField("store", f.id).WithField("peers", len(peers)).Info("raft store started")

	// Shutdown order: no more raft traffic in, stop the loop, stop
	// sending, close the engine (which syncs it).
	engOpen = false
	closeAll := func() error {
		gs.Stop()
		st.Stop()
		tr.Close()
		return errors.Join(st.Err(), eng.Close())
	}
	srv, err := server.New(newRaftBackend(name, st, eng, clientAddrs, closeAll), cfg)
	if err != nil {
		closeAll()
		return err
	}
	if err := serveUntilStopped(cmd, srv, logger, shutdownGrace); err != nil {
		return fmt.Errorf("kvs node: %w", err)
	}
	return nil
}
