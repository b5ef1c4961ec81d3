package main

import (
	"bufio"
	"os"
	"os/exec"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/kvs-lab/kvs"
)

// holdLockEnv names the directory a child test process opens and holds.
const holdLockEnv = "KVS_TEST_HOLD_DIR"

// TestHoldEngineChild is not a test on its own: TestOtherProcessHoldingTheDirectory
// runs the test binary again with holdLockEnv set, and this function then
// opens the engine, says "ready" and waits to be killed.
func TestHoldEngineChild(t *testing.T) {
	dir := os.Getenv(holdLockEnv)
	if dir == "" {
		t.Skip("runs only as the child of TestOtherProcessHoldingTheDirectory")
	}
	e, err := kvs.Open("bitcask", dir, &kvs.Options{Logger: kvs.DiscardLogger()})
	if err != nil {
		os.Stdout.WriteString("error " + err.Error() + "\n")
		os.Exit(3)
	}
	e.Put([]byte("held"), []byte("by child"), kvs.Sync)
	os.Stdout.WriteString("ready\n")
	time.Sleep(time.Minute)
	os.Exit(4) // not reached: the parent kills us
}

func TestOtherProcessHoldingTheDirectory(t *testing.T) {
	dir := t.TempDir()
	child := exec.Command(os.Args[0], "-test.run", "^TestHoldEngineChild$")
	child.Env = append(os.Environ(), holdLockEnv+"="+dir)
	out, err := child.StdoutPipe()
	if err != nil {
		t.Fatal(err)
	}
	if err := child.Start(); err != nil {
		t.Fatal(err)
	}
	defer child.Process.Kill()
	line, err := bufio.NewReader(out).ReadString('\n')
	if err != nil || line != "ready\n" {
		t.Fatalf("child did not open the engine: %q, %v", line, err)
	}

	_, errs, code := kvsRun(t, "", "put", "--dir", dir, "k", "v")
	if code != 1 || !strings.Contains(errs, "locked") || !strings.Contains(errs, dir) {
		t.Fatalf("put while another process holds %s: exit %d, stderr %q; want a lock error naming the directory", dir, code, errs)
	}

	// kill -9 releases the lock with the process: no stale LOCK file
	// keeps the directory closed, and the child's synced write is there.
	child.Process.Signal(syscall.SIGKILL)
	child.Wait()
	mustRun(t, "put", "--dir", dir, "k", "v")
	if got := mustRun(t, "get", "--dir", dir, "held"); got != "by child\n" {
		t.Fatalf("child's synced write after kill -9: %q", got)
	}
}
