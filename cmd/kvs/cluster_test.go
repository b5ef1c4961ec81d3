package main

import (
	"bufio"
	"encoding/json"
	"errors"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"syscall"
	"testing"
	"time"
)

// statusRow is one row of `kvs cluster status --json`.
type statusRow struct {
	Node   uint64            `json:"node"`
	Addr   string            `json:"addr"`
	Up     bool              `json:"up"`
	Fields map[string]string `json:"raft"`
}

func clusterStatus(t *testing.T, dir string) []statusRow {
	t.Helper()
	var rows []statusRow
	if err := json.Unmarshal([]byte(mustRun(t, "cluster", "status", "--dir", dir, "--json")), &rows); err != nil {
		t.Fatal(err)
	}
	return rows
}

// waitLeader polls cluster status until one node that is up leads.
func waitLeader(t *testing.T, dir string, d time.Duration) statusRow {
	t.Helper()
	deadline := time.Now().Add(d)
	for {
		for _, r := range clusterStatus(t, dir) {
			if r.Up && r.Fields["raft_state"] == "leader" {
				return r
			}
		}
		if time.Now().After(deadline) {
			t.Fatalf("no leader in kvs cluster status within %v", d)
		}
		time.Sleep(100 * time.Millisecond)
	}
}

// TestClusterUpAndStatus runs `kvs cluster up` (the real binary, built
// here, since it starts itself as node processes), reads `kvs cluster
// status`, kills the leader's process and watches another node lead with
// the data, then stops the cluster with SIGTERM: every node exits.
func TestClusterUpAndStatus(t *testing.T) {
	tmp := t.TempDir()
	bin := filepath.Join(tmp, "kvs")
	build := []string{"build", "-o", bin}
	if raceEnabled {
		build = append(build, "-race") // reuse the packages this test binary was built from
	}
	if out, err := exec.Command("go", append(build, ".")...).CombinedOutput(); err != nil {
		t.Fatalf("go build: %v\n%s", err, out)
	}
	dir := filepath.Join(tmp, "cluster")
	up := exec.Command(bin, "cluster", "up", "--nodes", "3", "--engine", "bitcask", "--dir", dir,
		"--port-base", "0", "--raft-port-base", "0", "--log-level", "warn")
	stdout, err := up.StdoutPipe()
	if err != nil {
		t.Fatal(err)
	}
	var stderr strings.Builder
	up.Stderr = &stderr
	if err := up.Start(); err != nil {
		t.Fatal(err)
	}
	exited := make(chan error, 1)
	t.Cleanup(func() {
		up.Process.Signal(syscall.SIGTERM)
		select {
		case <-exited:
		case <-time.After(40 * time.Second):
			up.Process.Kill()
		}
	})
	lines := make(chan string, 100)
	go func() {
		sc := bufio.NewScanner(stdout)
		for sc.Scan() {
			lines <- sc.Text()
		}
		close(lines)
		exited <- up.Wait()
	}()
	var printed []string
	for ready := false; !ready; {
		select {
		case l, ok := <-lines:
			if !ok {
				t.Fatalf("kvs cluster up ended before the cluster was up:\n%s\n%s", strings.Join(printed, "\n"), stderr.String())
			}
			printed = append(printed, l)
			ready = strings.Contains(l, "Ctrl-C stops the cluster")
		case <-time.After(60 * time.Second):
			t.Fatalf("kvs cluster up printed no ready line in 60s:\n%s", strings.Join(printed, "\n"))
		}
	}
	if !strings.Contains(strings.Join(printed, "\n"), "redis-cli -c -p") {
		t.Errorf("kvs cluster up does not say how to reach the cluster:\n%s", strings.Join(printed, "\n"))
	}
	var info clusterInfo
	b, err := os.ReadFile(filepath.Join(dir, clusterFile))
	if err != nil || json.Unmarshal(b, &info) != nil || len(info.Nodes) != 3 {
		t.Fatalf("%s: %v\n%s", clusterFile, err, b)
	}

	leader := waitLeader(t, dir, 15*time.Second)
	rows := clusterStatus(t, dir)
	leaders := 0
	for _, r := range rows {
		if !r.Up || r.Fields["term"] == "" || r.Fields["applied_index"] == "" {
			t.Errorf("node %d: status %+v; want up with term and applied index", r.Node, r)
		}
		if r.Fields["raft_state"] == "leader" {
			leaders++
		}
	}
	if leaders != 1 {
		t.Errorf("%d leaders in %+v", leaders, rows)
	}
	if got, err := respCommand(leader.Addr, "SET", "hello", "world"); err != nil || got != "OK" {
		t.Fatalf("SET on the leader: %q, %v", got, err)
	}

	// Kill the leader's process: another node leads, with the data.
	var pid int
	for _, nd := range info.Nodes {
		if nd.ID == leader.Node {
			pid = nd.PID
		}
	}
	if err := syscall.Kill(pid, syscall.SIGKILL); err != nil {
		t.Fatalf("kill node %d (pid %d): %v", leader.Node, pid, err)
	}
	deadline := time.Now().Add(15 * time.Second)
	var next statusRow
	for next.Node == 0 || next.Node == leader.Node {
		if time.Now().After(deadline) {
			t.Fatalf("no new leader after killing node %d", leader.Node)
		}
		time.Sleep(100 * time.Millisecond)
		next = waitLeader(t, dir, 15*time.Second)
	}
	if got, err := respCommand(next.Addr, "GET", "hello"); err != nil || got != "world" {
		t.Fatalf("GET on the new leader %d: %q, %v", next.Node, got, err)
	}
	for _, r := range clusterStatus(t, dir) {
		if r.Node == leader.Node && r.Up {
			t.Errorf("killed node %d shows as up", r.Node)
		}
	}

	// SIGTERM stops kvs cluster up and every node.
	up.Process.Signal(syscall.SIGTERM)
	select {
	case err := <-exited:
		exited <- err
		if err != nil {
			t.Fatalf("kvs cluster up after SIGTERM: %v\n%s", err, stderr.String())
		}
	case <-time.After(40 * time.Second):
		t.Fatal("kvs cluster up still running 40s after SIGTERM")
	}
	for _, nd := range info.Nodes {
		if err := syscall.Kill(nd.PID, 0); !errors.Is(err, syscall.ESRCH) {
			t.Errorf("node %d (pid %d) still running after kvs cluster up stopped: %v", nd.ID, nd.PID, err)
		}
	}
}
