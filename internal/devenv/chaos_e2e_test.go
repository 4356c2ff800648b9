package devenv

import (
	"context"
	"io"
	"net/http"
	"os/exec"
	"path/filepath"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/hashbang/stack/internal/node"
	"github.com/hashbang/stack/internal/registry"
)

// healBound is how long a node may take, after one of its components is
// killed with SIGKILL, to be Ready again with health answering.
const healBound = 90 * time.Second

// TestNodeHeals kills each component of the running development node in
// turn with SIGKILL, as an unlucky operator does, and the `stack serve`
// that stack up started, and checks that the supervisor brings each back:
// a new process, the node Ready, health answering on
// http://localhost:2321 and the registry on 127.0.0.1:5000 within
// healBound; the deploy made before the kills is still the state repo's
// head. It runs after `stack up` (STACK_E2E=CACHE).
func TestNodeHeals(t *testing.T) {
	ws, env, n := runningNode(t)
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
		return err == nil && ready == "True" && registryUp(ctx, registry.DefaultAddr)
	}
	data, _ := ws.DataDir()
	state := filepath.Join(data, "git", "state", env.Cluster+".git")
	head := func() string {
		out, _ := exec.Command("git", "--git-dir", state, "rev-parse", "main").Output()
		return strings.TrimSpace(string(out))
	}
	deployed := head()
	if deployed == "" {
		t.Fatalf("no deploy recorded in %s", state)
	}
	lookup := func(st *node.State, name string) (node.Proc, bool) {
		if name == serveService {
			return st.Service(name)
		}
		return st.Proc(name)
	}
	for _, name := range []string{"etcd", "kube-apiserver", "kube-controller-manager", "kube-scheduler", "containerd", "kubelet", "kube-proxy", serveService} {
		st, err := n.ReadState()
		if err != nil {
			t.Fatal(err)
		}
		p, ok := lookup(st, name)
		if !ok || !p.Alive() {
			t.Fatalf("%s does not run before the kill: %+v", name, p)
		}
		killed := time.Now()
		if err := syscall.Kill(p.PID, syscall.SIGKILL); err != nil {
			t.Fatal(err)
		}
		for {
			st, _ := n.ReadState()
			q, _ := lookup(st, name)
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
	if h := head(); h != deployed {
		t.Errorf("the state repo's head moved from %.12s to %.12s during the kills", deployed, h)
	}
}

// TestUpConverges stops two components at once and scales health behind
// stack's back with kubectl, then runs `stack up` (bin/stack of this
// checkout): both components run again, the scale is recorded as drift in
// the state repo and taken back, and health answers.
func TestUpConverges(t *testing.T) {
	ws, env, n := runningNode(t)
	ctx := context.Background()
	st, err := n.ReadState()
	if err != nil {
		t.Fatal(err)
	}
	// The supervisor would restart them first: take it away for this test
	// (stack up starts it again).
	if st.Supervisor != nil {
		st.Supervisor.Stop(5 * time.Second)
	}
	for _, name := range []string{"kube-scheduler", "kube-proxy"} {
		p, _ := st.Proc(name)
		p.Stop(10 * time.Second)
	}
	if out, err := n.Kubectl(ctx, nil, "-n", "health", "scale", "deployment", "health", "--replicas=2"); err != nil {
		t.Fatalf("kubectl scale: %v %s", err, out)
	}
	stack := filepath.Join(ws.Root, "bin", "stack")
	start := time.Now()
	out, err := exec.Command(stack, "--repo", ws.Root, "--cache", ws.Cache, "up").CombinedOutput()
	t.Logf("stack up after two components stopped and a kubectl scale (%s):\n%s", time.Since(start).Round(100*time.Millisecond), out)
	if err != nil {
		t.Fatalf("stack up: %v", err)
	}
	// The drift is recorded by stack up, or, if its timer came first, by
	// stack serve's (--drift): the state repo's check below holds either.
	for _, want := range []string{"start kube-scheduler (it had stopped)", "start kube-proxy (it had stopped)", "took over .spec.replicas is owned by kubectl"} {
		if !strings.Contains(string(out), want) {
			t.Errorf("stack up did not say %q", want)
		}
	}
	replicas, err := n.Kubectl(ctx, nil, "-n", "health", "get", "deployment", "health", "-o", "jsonpath={.spec.replicas}")
	if err != nil || replicas != "1" {
		t.Errorf("replicas after stack up: %q %v", replicas, err)
	}
	data, _ := ws.DataDir()
	// The drift commit (before the deploy that took the field back)
	// holds the scaled Deployment.
	state := filepath.Join(data, "git", "state", env.Cluster+".git")
	log, err := exec.Command("git", "--git-dir", state, "log", "-1", "--format=%s", "main~1").Output()
	if err != nil || !strings.Contains(string(log), "drift in "+env.Name) {
		t.Errorf("state repo: main~1 is %q (%v), want the drift commit", log, err)
	}
	if show, err := exec.Command("git", "--git-dir", state, "show", "main~1:health/deployment.apps/health.yaml").Output(); err != nil || !strings.Contains(string(show), "replicas: 2") {
		t.Errorf("the drift commit does not hold replicas: 2: %v\n%s", err, show)
	}
	st, _ = n.ReadState()
	if st.Supervisor == nil || !st.Supervisor.Alive() {
		t.Error("stack up did not start the supervisor again")
	}
}
