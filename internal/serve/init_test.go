package serve

import (
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/hashbang/stack/internal/ci"
)

// TestServeAsPID1 runs stack serve as PID 1 of a new PID namespace (as in
// the stack image): a CI job leaves a process behind, which its sandbox's
// init kills (or, where jobs run unsandboxed, the kernel hands to PID 1 and
// the runner kills); no zombie may stay under PID 1. SIGTERM to PID 1 stops
// the daemon cleanly.
func TestServeAsPID1(t *testing.T) {
	if os.Getuid() != 0 {
		t.Skip("needs root for a PID namespace")
	}
	if out, err := exec.Command("unshare", "--pid", "--fork", "true").CombinedOutput(); err != nil {
		t.Skipf("no PID namespaces here: %v %s", err, out)
	}
	d := newDaemon(t)
	d.wrap = []string{"unshare", "--pid", "--fork", "--kill-child"}
	work := ciRepo(t, d, "pipelines:\n  orphan:\n    run: ci/orphan\n    on:\n      push: [\"refs/heads/*\"]\n",
		map[string]string{"orphan": "sleep 300 &\necho left $!\n"})
	d.start()
	initPID := children(t, d.cmd.Process.Pid)
	if len(initPID) != 1 {
		t.Fatalf("unshare has children %v", initPID)
	}
	pid1 := initPID[0]
	if ns := nsPID(t, pid1); ns != "1" {
		t.Fatalf("stack runs as pid %s in its namespace, want 1", ns)
	}
	if kids := children(t, pid1); len(kids) != 1 {
		t.Fatalf("PID 1 has children %v, want the daemon alone", kids)
	}

	d.git(work, "push", "-q", "origin", "HEAD:refs/heads/main")
	d.waitJobs("the job to end", 60*time.Second, func(jobs []*ci.Job) bool {
		return len(jobs) == 1 && jobs[0].State.Final()
	})
	// The orphan was handed to PID 1 and killed: no zombie may stay.
	deadline := time.Now().Add(10 * time.Second)
	for {
		var zombies []int
		for _, c := range children(t, pid1) {
			if !alive(c) {
				zombies = append(zombies, c)
			}
		}
		if len(zombies) == 0 {
			break
		}
		if time.Now().After(deadline) {
			t.Fatalf("zombies left under PID 1: %v", zombies)
		}
		time.Sleep(50 * time.Millisecond)
	}

	syscall.Kill(pid1, syscall.SIGTERM)
	select {
	case <-d.done:
	case <-time.After(30 * time.Second):
		t.Fatal("stack serve as PID 1 did not stop on SIGTERM")
	}
	if !d.cmd.ProcessState.Success() {
		t.Errorf("exit status %v", d.cmd.ProcessState)
	}
	if !strings.Contains(d.out.String(), "stack serve stopped") {
		t.Errorf("the daemon did not stop cleanly:\n%s", d.out.String())
	}
}

// children lists the child processes of pid.
func children(t *testing.T, pid int) []int {
	t.Helper()
	tasks, err := filepath.Glob(fmt.Sprintf("/proc/%d/task/*/children", pid))
	if err != nil {
		t.Fatal(err)
	}
	var out []int
	for _, f := range tasks {
		b, err := os.ReadFile(f)
		if err != nil {
			continue
		}
		for _, s := range strings.Fields(string(b)) {
			if n, err := strconv.Atoi(s); err == nil {
				out = append(out, n)
			}
		}
	}
	return out
}

// nsPID is pid's process id in its own (innermost) PID namespace.
func nsPID(t *testing.T, pid int) string {
	t.Helper()
	b, err := os.ReadFile(fmt.Sprintf("/proc/%d/status", pid))
	if err != nil {
		t.Fatal(err)
	}
	for _, line := range strings.Split(string(b), "\n") {
		if v, ok := strings.CutPrefix(line, "NSpid:"); ok {
			f := strings.Fields(v)
			return f[len(f)-1]
		}
	}
	t.Fatal("no NSpid in /proc status")
	return ""
}
