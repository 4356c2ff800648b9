package devenv

import (
	"context"
	"io"
	"net/http"
	"strings"
	"syscall"
	"testing"
	"time"
)

// healBound is how long a node may take, after one of its components is
// killed with SIGKILL, to be Ready again with health answering.
const healBound = 90 * time.Second

// TestNodeHeals kills each component of the running development node in
// turn with SIGKILL, as an unlucky operator does, and checks that the
// supervisor brings it back: a new process, the node Ready, and health
// answering on http://localhost:2321 within healBound. It runs after
// `stack up` (STACK_E2E=CACHE).
func TestNodeHeals(t *testing.T) {
	_, _, n := runningNode(t)
	ctx := context.Background()
	st, err := n.ReadState()
	if err != nil {
		t.Fatal(err)
	}
	if st.Supervisor == nil || !st.Supervisor.Alive() {
		t.Fatalf("no supervisor runs for the node: %+v", st.Supervisor)
	}
	healthy := func() bool {
		c := http.Client{Timeout: 2 * time.Second}
		resp, err := c.Get("http://localhost:2321")
		if err != nil {
			return false
		}
		body, _ := io.ReadAll(resp.Body)
		resp.Body.Close()
		if strings.TrimSpace(string(body)) != "healthy" {
			return false
		}
		ready, err := n.Kubectl(ctx, nil, "get", "node", n.Name, "-o", `jsonpath={.status.conditions[?(@.type=="Ready")].status}`)
		return err == nil && ready == "True"
	}
	for _, name := range []string{"etcd", "kube-apiserver", "kube-controller-manager", "kube-scheduler", "containerd", "kubelet", "kube-proxy"} {
		st, err := n.ReadState()
		if err != nil {
			t.Fatal(err)
		}
		p, ok := st.Proc(name)
		if !ok || !p.Alive() {
			t.Fatalf("%s does not run before the kill: %+v", name, p)
		}
		killed := time.Now()
		if err := syscall.Kill(p.PID, syscall.SIGKILL); err != nil {
			t.Fatal(err)
		}
		for {
			st, _ := n.ReadState()
			q, _ := st.Proc(name)
			if q.PID != p.PID && q.Alive() && healthy() {
				t.Logf("%s: killed pid %d, back as pid %d and the node healthy after %s", name, p.PID, q.PID, time.Since(killed).Round(100*time.Millisecond))
				break
			}
			if time.Since(killed) > healBound {
				t.Fatalf("%s: not back within %s after kill -9 (now %+v)", name, healBound, q)
			}
			time.Sleep(200 * time.Millisecond)
		}
	}
}
