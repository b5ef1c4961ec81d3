package main

import (
	"bufio"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net"
	"os"
	"os/exec"
	"os/signal"
	"path/filepath"
	"strconv"
	"strings"
	"syscall"
	"text/tabwriter"
	"time"

	"github.com/spf13/cobra"
)

// clusterFile is what `kvs cluster up` writes into --dir for `kvs cluster
// status` and for people: where each node listens and logs.
const clusterFile = "cluster.json"

// clusterNode is one node of a local cluster.
type clusterNode struct {
	ID       uint64 `json:"id"`
	Dir      string `json:"dir"`
	Addr     string `json:"addr"`      // Redis clients
	RaftAddr string `json:"raft_addr"` // raft traffic (gRPC)
	Log      string `json:"log"`
	PID      int    `json:"pid,omitempty"`
}

type clusterInfo struct {
	Engine string        `json:"engine"`
	Nodes  []clusterNode `json:"nodes"`
}

func newClusterCmd(g *globals) *cobra.Command {
	cmd := &cobra.Command{
		Use:   "cluster",
		Short: "Run a local raft-replicated cluster of kvs nodes",
	}
	cmd.AddCommand(newClusterUpCmd(g), newClusterStatusCmd(g))
	return cmd
}

func newClusterUpCmd(g *globals) *cobra.Command {
	var nodes, portBase, raftPortBase int
	cmd := &cobra.Command{
		Use:   "up",
		Short: "Start a local cluster of kvs node processes and wait",
		Long: `up starts --nodes kvs node processes on 127.0.0.1, each with its own
directory under --dir (node1, node2, ...), Redis port (--port-base + i - 1)
and raft port (--raft-port-base + i - 1), writes --dir/cluster.json, prints
how to reach the cluster, and waits. Ctrl-C (or SIGTERM) stops every node
gracefully. A node that exits is reported and not restarted; kill one
(kill -9 PID) to watch another take over as leader (kvs cluster status).
Running up again on the same --dir restarts the nodes on their data.
--port-base 0 picks free ports.`,
		Args: cobra.NoArgs,
		RunE: func(cmd *cobra.Command, args []string) error {
			return runClusterUp(cmd, g, nodes, portBase, raftPortBase)
		},
	}
	cmd.Flags().IntVar(&nodes, "nodes", 3, "how many nodes (stores) to start")
	cmd.Flags().IntVar(&portBase, "port-base", 6381, "Redis port of node 1 (node i gets port-base+i-1; 0 picks free ports)")
	cmd.Flags().IntVar(&raftPortBase, "raft-port-base", 7001, "raft port of node 1 (0 picks free ports)")
	return cmd
}

// pickPort returns base+i, or a free loopback port when base is 0.
func pickPort(base, i int) (int, error) {
	if base != 0 {
		return base + i, nil
	}
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		return 0, err
	}
	defer l.Close()
	return l.Addr().(*net.TCPAddr).Port, nil
}

func runClusterUp(cmd *cobra.Command, g *globals, n, portBase, raftPortBase int) error {
	if g.dir == "" {
		return usagef("--dir is required: the directory that holds the nodes' directories")
	}
	if n < 1 || n > 9 {
		return usagef("--nodes: %d is not from 1 to 9", n)
	}
	if portBase < 0 || portBase > 65535-n || raftPortBase < 0 || raftPortBase > 65535-n {
		return usagef("--port-base and --raft-port-base must be ports from 1 to %d, or 0", 65535-n)
	}
	engine := g.engine
	if engine == "" {
		engine = "lsm"
	}
	if err := os.MkdirAll(g.dir, 0o755); err != nil {
		return fmt.Errorf("kvs cluster up: %w", err)
	}
	self, err := os.Executable()
	if err != nil {
		return fmt.Errorf("kvs cluster up: find the kvs binary: %w", err)
	}
	info := clusterInfo{Engine: engine}
	var peers, clients []string
	for i := range n {
		p, err := pickPort(portBase, i)
		if err != nil {
			return err
		}
		rp, err := pickPort(raftPortBase, i)
		if err != nil {
			return err
		}
		id := uint64(i + 1)
		nd := clusterNode{ID: id, Dir: filepath.Join(g.dir, fmt.Sprintf("node%d", id)),
			Addr: fmt.Sprintf("127.0.0.1:%d", p), RaftAddr: fmt.Sprintf("127.0.0.1:%d", rp),
			Log: filepath.Join(g.dir, fmt.Sprintf("node%d.log", id))}
		info.Nodes = append(info.Nodes, nd)
		peers = append(peers, fmt.Sprintf("%d=%s", id, nd.RaftAddr))
		clients = append(clients, fmt.Sprintf("%d=%s", id, nd.Addr))
	}

	ctx, stop := signal.NotifyContext(cmd.Context(), os.Interrupt, syscall.SIGTERM)
	defer stop()
	type proc struct {
		cmd  *exec.Cmd
		done chan error
	}
	procs := make([]proc, 0, n)
	stopAll := func() {
		for _, p := range procs {
			p.cmd.Process.Signal(syscall.SIGTERM)
		}
		for i, p := range procs {
			select {
			case <-p.done:
			case <-time.After(shutdownGrace):
				p.cmd.Process.Kill()
				<-p.done
				fmt.Fprintf(cmd.ErrOrStderr(), "node %d did not stop in %v: killed\n", i+1, shutdownGrace)
			}
		}
	}
	for i := range info.Nodes {
		nd := &info.Nodes[i]
		logf, err := os.OpenFile(nd.Log, os.O_CREATE|os.O_WRONLY|os.O_APPEND, 0o644)
		if err != nil {
			stopAll()
			return fmt.Errorf("kvs cluster up: %w", err)
		}
		// Nodes log at info (elections, leader changes) into their log
		// files unless --log-level says otherwise.
		level := "info"
		if fl := cmd.Flags().Lookup("log-level"); fl != nil && fl.Changed {
			level = g.logLevel
		}
		args := []string{"node", "--id", strconv.FormatUint(nd.ID, 10), "--dir", nd.Dir, "--engine", engine,
			"--peers", strings.Join(peers, ","), "--client-addrs", strings.Join(clients, ","),
			"--addr", nd.Addr, "--log-level", level}
		c := exec.Command(self, args...)
		c.Env = os.Environ()
		c.Stdout, c.Stderr = logf, logf
		if err := c.Start(); err != nil {
			logf.Close()
			stopAll()
			return fmt.Errorf("kvs cluster up: start node %d: %w", nd.ID, err)
		}
		logf.Close()
		nd.PID = c.Process.Pid
		p := proc{cmd: c, done: make(chan error, 1)}
		go func() { p.done <- c.Wait() }()
		procs = append(procs, p)
	}
	js, _ := json.MarshalIndent(info, "", "  ")
	if err := os.WriteFile(filepath.Join(g.dir, clusterFile), append(js, '\n'), 0o644); err != nil {
		stopAll()
		return fmt.Errorf("kvs cluster up: %w", err)
	}

	// Wait until every node answers, then say how to reach them.
	deadline := time.Now().Add(20 * time.Second)
	for _, nd := range info.Nodes {
		for {
			if _, err := respCommand(nd.Addr, "PING"); err == nil {
				break
			}
			if time.Now().After(deadline) {
				stopAll()
				return fmt.Errorf("kvs cluster up: node %d did not answer on %s within 20s; see %s", nd.ID, nd.Addr, nd.Log)
			}
			time.Sleep(50 * time.Millisecond)
		}
	}
	w := cmd.OutOrStdout()
	fmt.Fprintf(w, "kvs cluster of %d %s nodes is up (details in %s):\n\n", n, engine, filepath.Join(g.dir, clusterFile))
	tw := tabwriter.NewWriter(w, 0, 0, 2, ' ', 0)
	fmt.Fprintln(tw, "node\tredis\traft\tpid\tlog")
	for _, nd := range info.Nodes {
		fmt.Fprintf(tw, "%d\t%s\t%s\t%d\t%s\n", nd.ID, nd.Addr, nd.RaftAddr, nd.PID, nd.Log)
	}
	tw.Flush()
	_, port, _ := net.SplitHostPort(info.Nodes[0].Addr)
	fmt.Fprintf(w, "\nredis-cli -c -p %s set hello world    # -c follows MOVED to the leader\n", port)
	fmt.Fprintf(w, "kvs cluster status --dir %s           # leader, terms, applied indexes, log sizes\n", g.dir)
	fmt.Fprintln(w, "Ctrl-C stops the cluster.")

	// Wait for a signal; report nodes that exit meanwhile.
	for i, p := range procs {
		go func() {
			err := <-p.done
			p.done <- err
			if ctx.Err() == nil {
				fmt.Fprintf(cmd.ErrOrStderr(), "node %d exited: %v (its log: %s)\n", i+1, err, info.Nodes[i].Log)
			}
		}()
	}
	<-ctx.Done()
	stop()
	fmt.Fprintln(w, "stopping the cluster")
	stopAll()
	return nil
}

func newClusterStatusCmd(g *globals) *cobra.Command {
	return &cobra.Command{
		Use:   "status",
		Short: "Show each node's raft state: leader, term, commit and applied index, log size",
		Args:  cobra.NoArgs,
		RunE: func(cmd *cobra.Command, args []string) error {
			if g.dir == "" {
				return usagef("--dir is required: the directory kvs cluster up was given")
			}
			b, err := os.ReadFile(filepath.Join(g.dir, clusterFile))
			if err != nil {
				return fmt.Errorf("kvs cluster status: %w (was kvs cluster up run with this --dir?)", err)
			}
			var info clusterInfo
			if err := json.Unmarshal(b, &info); err != nil {
				return fmt.Errorf("kvs cluster status: %s: %w", filepath.Join(g.dir, clusterFile), err)
			}
			type row struct {
				Node   uint64            `json:"node"`
				Addr   string            `json:"addr"`
				Up     bool              `json:"up"`
				Fields map[string]string `json:"raft,omitempty"`
			}
			var rows []row
			for _, nd := range info.Nodes {
				r := row{Node: nd.ID, Addr: nd.Addr}
				if txt, err := respCommand(nd.Addr, "INFO", "raft"); err == nil {
					r.Up, r.Fields = true, parseInfo(txt)
				}
				rows = append(rows, r)
			}
			if g.json {
				return printJSON(cmd.OutOrStdout(), rows)
			}
			tw := tabwriter.NewWriter(cmd.OutOrStdout(), 0, 0, 2, ' ', tabwriter.AlignRight)
			fmt.Fprintln(tw, "node\tredis\tstate\tterm\tcommit\tapplied\tlog entries\tsnapshots\t")
			for _, r := range rows {
				if !r.Up {
					fmt.Fprintf(tw, "%d\t%s\tdown\t-\t-\t-\t-\t-\t\n", r.Node, r.Addr)
					continue
				}
				f := r.Fields
				first, _ := strconv.ParseUint(f["first_log_index"], 10, 64)
				last, _ := strconv.ParseUint(f["last_log_index"], 10, 64)
				entries := uint64(0)
				if last >= first {
					entries = last - first + 1
				}
				fmt.Fprintf(tw, "%d\t%s\t%s\t%s\t%s\t%s\t%d\t%s\t\n", r.Node, r.Addr, f["raft_state"], f["term"],
					f["commit_index"], f["applied_index"], entries, f["snapshots_applied"])
			}
			return tw.Flush()
		},
	}
}

// parseInfo reads INFO's "key:value" lines.
func parseInfo(txt string) map[string]string {
	m := map[string]string{}
	for _, line := range strings.Split(txt, "\n") {
		if k, v, ok := strings.Cut(strings.TrimRight(line, "\r"), ":"); ok && !strings.HasPrefix(k, "#") {
			m[k] = v
		}
	}
	return m
}

// respCommand sends one command to a RESP server and returns its reply: a
// simple string, an integer or a bulk string as text, an error reply as an
// error.
func respCommand(addr string, args ...string) (string, error) {
	c, err := net.DialTimeout("tcp", addr, time.Second)
	if err != nil {
		return "", err
	}
	defer c.Close()
	c.SetDeadline(time.Now().Add(5 * time.Second))
	var b strings.Builder
	fmt.Fprintf(&b, "*%d\r\n", len(args))
	for _, a := range args {
		fmt.Fprintf(&b, "$%d\r\n%s\r\n", len(a), a)
	}
	if _, err := io.WriteString(c, b.String()); err != nil {
		return "", err
	}
	r := bufio.NewReader(c)
	line, err := r.ReadString('\n')
	if err != nil {
		return "", err
	}
	line = strings.TrimRight(line, "\r\n")
	switch {
	case strings.HasPrefix(line, "-"):
		return "", errors.New(line[1:])
	case strings.HasPrefix(line, "$"):
		n, err := strconv.Atoi(line[1:])
		if err != nil || n < 0 {
			return "", fmt.Errorf("bad reply %q", line)
		}
		buf := make([]byte, n+2)
		if _, err := io.ReadFull(r, buf); err != nil {
			return "", err
		}
		return string(buf[:n]), nil
	case len(line) > 0:
		return line[1:], nil
	}
	return "", fmt.Errorf("empty reply")
}
