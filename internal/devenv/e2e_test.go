package devenv

import (
	"context"
	"io"
	"net"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/hashbang/stack/internal/cluster"
	"github.com/hashbang/stack/internal/node"
	"github.com/hashbang/stack/internal/workspace"
)

// TestUpEndToEnd checks a development environment that `stack up` brought
// up (it runs only when STACK_E2E names the cache directory stack up used,
// as .ci/run does after make up): health answers on the host, its pod runs
// on a Ready node, a pod resolves and reaches the health Service by its DNS
// name, and every image in the cluster came from our registry.
func TestUpEndToEnd(t *testing.T) {
	ws, env, n := runningNode(t)
	ctx := context.Background()

	resp, err := http.Get("http://localhost:2321")
	if err != nil {
		t.Fatal(err)
	}
	body, _ := io.ReadAll(resp.Body)
	resp.Body.Close()
	if strings.TrimSpace(string(body)) != "healthy" {
		t.Errorf("http://localhost:2321 answered %q", body)
	}

	ready, err := n.Kubectl(ctx, nil, "get", "node", n.Name, "-o", `jsonpath={.status.conditions[?(@.type=="Ready")].status}`)
	if err != nil || ready != "True" {
		t.Errorf("node %s Ready=%q %v", n.Name, ready, err)
	}
	pods, err := n.Kubectl(ctx, nil, "get", "pods", "-A", "--no-headers")
	if err != nil {
		t.Fatal(err)
	}
	t.Logf("kubectl get pods -A:\n%s", pods)
	if !strings.Contains(pods, "health") || !strings.Contains(pods, "Running") {
		t.Errorf("no Running health pod:\n%s", pods)
	}

	// Every image of every pod names our registry, and containerd holds no
	// image from anywhere else.
	images, _ := n.Kubectl(ctx, nil, "get", "pods", "-A", "-o", "jsonpath={range .items[*]}{range .spec.containers[*]}{.image}{\"\\n\"}{end}{end}")
	for _, img := range strings.Fields(images) {
		if !strings.HasPrefix(img, env.Registry+"/") || !strings.Contains(img, "@sha256:") {
			t.Errorf("pod image %s is not pinned from %s", img, env.Registry)
		}
	}
	ctr := filepath.Join(toolDir(t, ws.Cache, "containerd"), "usr/bin/ctr")
	out, err := exec.Command(ctr, "--address", filepath.Join(n.Dir, "containerd", "containerd.sock"), "-n", "k8s.io", "images", "ls", "-q").Output()
	if err != nil {
		t.Fatal(err)
	}
	for _, ref := range strings.Fields(string(out)) {
		if !strings.HasPrefix(ref, env.Registry+"/") && !strings.HasPrefix(ref, "sha256:") {
			t.Errorf("containerd holds %s, not from %s", ref, env.Registry)
		}
	}

	// From inside the health pod's network namespace, with the resolver
	// configuration the kubelet gave the pod.
	pid := podPID(t, n, "health")
	cmd := exec.Command("nsenter", "--net=/proc/"+pid+"/ns/net", "--", os.Args[0], "-test.run=^TestInPod$", "-test.v")
	cmd.Env = append(os.Environ(), "STACK_E2E_POD_RESOLV=/proc/"+pid+"/root/etc/resolv.conf")
	res, err := cmd.CombinedOutput()
	if err != nil {
		t.Fatalf("from the health pod: %v\n%s", err, res)
	}
	t.Logf("from the health pod:\n%s", res)
}

// TestInPod runs inside a pod's network namespace (see TestUpEndToEnd): it
// resolves the health Service through the pod's nameserver and gets it.
func TestInPod(t *testing.T) {
	conf := os.Getenv("STACK_E2E_POD_RESOLV")
	if conf == "" {
		t.Skip("run by TestUpEndToEnd")
	}
	data, err := os.ReadFile(conf)
	if err != nil {
		t.Fatal(err)
	}
	var ns string
	for _, l := range strings.Split(string(data), "\n") {
		if f := strings.Fields(l); len(f) == 2 && f[0] == "nameserver" {
			ns = f[1]
			break
		}
	}
	if ns == "" {
		t.Fatalf("no nameserver in the pod's resolv.conf:\n%s", data)
	}
	r := &net.Resolver{PreferGo: true, Dial: func(ctx context.Context, network, _ string) (net.Conn, error) {
		var d net.Dialer
		return d.DialContext(ctx, network, net.JoinHostPort(ns, "53"))
	}}
	ctx, cancel := context.WithTimeout(context.Background(), 20*time.Second)
	defer cancel()
	name := "health.health.svc.cluster.local"
	addrs, err := r.LookupHost(ctx, name)
	if err != nil || len(addrs) == 0 {
		t.Fatalf("resolve %s via %s: %v", name, ns, err)
	}
	t.Logf("%s -> %v (nameserver %s)", name, addrs, ns)
	resp, err := http.Get("http://" + addrs[0] + "/")
	if err != nil {
		t.Fatal(err)
	}
	body, _ := io.ReadAll(resp.Body)
	resp.Body.Close()
	if strings.TrimSpace(string(body)) != "healthy" {
		t.Fatalf("http://%s/ answered %q", name, body)
	}
	t.Logf("GET http://%s/ -> %s", name, strings.TrimSpace(string(body)))
}

// podPID is the host PID of the first container of the first pod in ns.
func podPID(t *testing.T, n *node.Node, ns string) string {
	t.Helper()
	id, err := n.Kubectl(context.Background(), nil, "-n", ns, "get", "pods", "-o", "jsonpath={.items[0].status.containerStatuses[0].containerID}")
	if err != nil {
		t.Fatal(err)
	}
	id = strings.TrimPrefix(id, "containerd://")
	pid, err := os.ReadFile(filepath.Join(n.Dir, "containerd", "state", "io.containerd.runtime.v2.task", "k8s.io", id, "init.pid"))
	if err != nil {
		t.Fatal(err)
	}
	return strings.TrimSpace(string(pid))
}

func findKubectl(t *testing.T, cacheDir string) string {
	t.Helper()
	m, _ := filepath.Glob(filepath.Join(cacheDir, "bin", "*", "kubectl"))
	if len(m) == 0 {
		t.Fatalf("no kubectl built under %s/bin", cacheDir)
	}
	return m[0]
}

func toolDir(t *testing.T, cacheDir, name string) string {
	t.Helper()
	m, _ := filepath.Glob(filepath.Join(cacheDir, "tools", name+"-*"))
	if len(m) == 0 {
		t.Fatalf("no %s extracted under %s/tools", name, cacheDir)
	}
	return m[0]
}

// runningNode is the development environment that `stack up` brought up
// with the cache STACK_E2E names, and its node; without STACK_E2E the test
// is skipped.
func runningNode(t *testing.T) (*workspace.Workspace, *cluster.Environment, *node.Node) {
	t.Helper()
	cacheDir := os.Getenv("STACK_E2E")
	if cacheDir == "" {
		t.Skip("set STACK_E2E=CACHE after `stack up` to check the running development environment")
	}
	root, _ := filepath.Abs(filepath.Join("..", ".."))
	ws, err := workspace.New(root, cacheDir)
	if err != nil {
		t.Fatal(err)
	}
	env, err := cluster.Load(ws, "development")
	if err != nil {
		t.Fatal(err)
	}
	n := node.New(env.NodeDir, env.Cluster)
	n.Bins = map[string]string{"kubectl": findKubectl(t, ws.Cache)}
	return ws, env, n
}
