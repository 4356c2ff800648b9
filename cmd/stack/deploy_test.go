package main

import (
	"io"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"

	"github.com/hashbang/stack/internal/kubetest"
)

// TestDeployCommands runs stack render, deploy, diff and diff --record
// against a real kube-apiserver, with a kubectl edit behind stack's back.
func TestDeployCommands(t *testing.T) {
	if testing.Short() {
		t.Skip("starts etcd and kube-apiserver")
	}
	cp := kubetest.Start(t)
	repo, data := t.TempDir(), t.TempDir()
	for name, content := range map[string]string{
		"config/sources.yaml":            "sources: []\n",
		"images/images.lock":             "health sha256:" + strings.Repeat("1", 64) + "\n",
		"infra/e2e/environment.yaml":     "backend: kubeconfig\ncluster: e2e\nregistry: registry.localhost:5000\nkubeconfig: " + cp.Kubeconfig + "\n",
		"infra/e2e/kustomization.yaml":   "resources: [../../pods/web]\n",
		"pods/web/kustomization.yaml":    "namespace: web\nresources: [namespace.yaml, config.yaml]\n",
		"pods/web/namespace.yaml":        "apiVersion: v1\nkind: Namespace\nmetadata: {name: web}\n",
		"pods/web/config.yaml":           "apiVersion: v1\nkind: ConfigMap\nmetadata: {name: web}\ndata: {mode: calm}\n",
		"infra/other/environment.yaml":   strings.Replace(stagingDO, "cluster: staging", "cluster: other", 1),
		"infra/other/kustomization.yaml": "resources: [../../pods/web]\n",
	} {
		p := filepath.Join(repo, filepath.FromSlash(name))
		os.MkdirAll(filepath.Dir(p), 0o755)
		if err := os.WriteFile(p, []byte(content), 0o644); err != nil {
			t.Fatal(err)
		}
	}
	stack := func(args ...string) (string, string, error) {
		return run(t, append([]string{"-C", repo, "--cache", filepath.Join(repo, ".cache")}, args...)...)
	}
	out, _, err := stack("render", "e2e")
	if err != nil || !strings.Contains(out, "mode: calm") {
		t.Fatalf("render: %v\n%s", err, out)
	}
	out, errOut, err := stack("deploy", "e2e", "--data", data, "--timeout", "30s")
	t.Logf("deploy:\n%s%s", out, errOut)
	if err != nil || !strings.Contains(out, "ConfigMap web/web") || !strings.Contains(errOut, "deployed e2e") {
		t.Fatalf("deploy: %v\n%s\n%s", err, out, errOut)
	}
	if _, err := os.Stat(filepath.Join(data, "git", "state", "e2e.git", "HEAD")); err != nil {
		t.Errorf("no state repo: %v", err)
	}
	if out, _, err := stack("diff", "e2e", "--data", data); err != nil {
		t.Errorf("diff after deploy: %v\n%s", err, out)
	}
	if out, err := cp.Kubectl("-n", "web", "patch", "configmap", "web", "--type=merge", "-p", `{"data":{"mode":"wild"}}`).CombinedOutput(); err != nil {
		t.Fatalf("kubectl: %v\n%s", err, out)
	}
	out, _, err = stack("diff", "e2e", "--data", data)
	if err == nil || err.Error() != "1 object differs" || exit(io.Discard, err) != 2 ||
		!strings.Contains(out, `state → live:   data.mode: "calm" → "wild"`) || !strings.Contains(out, `live → render:  data.mode: "wild" → "calm"`) {
		t.Errorf("diff after kubectl patch: %v\n%s", err, out)
	}
	out, errOut, err = stack("diff", "e2e", "--data", data, "--record")
	if err != nil || !strings.Contains(errOut, "recorded drift of 1 objects") {
		t.Errorf("diff --record: %v\n%s\n%s", err, out, errOut)
	}
	out, _, err = stack("deploy", "e2e", "--data", data, "--dry-run")
	if err == nil || !strings.Contains(err.Error(), ".data.mode is owned by kubectl-patch") {
		t.Errorf("deploy --dry-run over a conflict: %v\n%s", err, out)
	}
	out, _, err = stack("deploy", "e2e", "--data", data, "--dry-run", "--force-conflicts")
	if err != nil || !strings.Contains(out, `~ ConfigMap web/web data.mode: "wild" → "calm"`) {
		t.Errorf("deploy --dry-run --force-conflicts: %v\n%s", err, out)
	}
	// kubectl's own edits (here as kubectl edit's field manager) in an
	// unprotected environment: the deploy records the drift, then takes
	// the fields back; kubectl patch's field (above) still stops it.
	out, errOut, err = stack("deploy", "e2e", "--data", data, "--timeout", "30s")
	if err == nil || !strings.Contains(err.Error(), ".data.mode is owned by kubectl-patch: take them over with `stack deploy e2e --force-conflicts`") {
		t.Errorf("deploy over kubectl patch's field: %v\n%s%s", err, out, errOut)
	}
	if out, errOut, err = stack("deploy", "e2e", "--data", data, "--timeout", "30s", "--force-conflicts"); err != nil {
		t.Fatalf("deploy --force-conflicts: %v\n%s%s", err, out, errOut)
	}
	if out, err := cp.Kubectl("-n", "web", "patch", "configmap", "web", "--field-manager=kubectl-edit", "--type=merge", "-p", `{"data":{"mode":"edited"}}`).CombinedOutput(); err != nil {
		t.Fatalf("kubectl: %v\n%s", err, out)
	}
	out, errOut, err = stack("deploy", "e2e", "--data", data, "--timeout", "30s")
	if err != nil || !strings.Contains(errOut, "recorded drift of 1 objects") || !strings.Contains(out, "took over .data.mode is owned by kubectl-edit") {
		t.Errorf("deploy over kubectl edit: %v\n%s%s", err, out, errOut)
	}
	if live, err := cp.Kubectl("-n", "web", "get", "configmap", "web", "-o", "jsonpath={.data.mode}").Output(); err != nil || string(live) != "calm" {
		t.Errorf("after taking the field back: %q %v", live, err)
	}
	if log, err := exec.Command("git", "--git-dir", filepath.Join(data, "git", "state", "e2e.git"), "log", "-3", "--format=%s").Output(); err != nil || !strings.Contains(string(log), "drift in e2e") {
		t.Errorf("state repo log:\n%s %v", log, err)
	}
	if _, _, err := stack("deploy", "other", "--data", data); err == nil || !strings.Contains(err.Error(), "no credentials of cluster other") || !strings.Contains(err.Error(), "run `stack infra apply other` first") {
		t.Errorf("digitalocean before infra apply: %v", err)
	}
	if _, _, err := stack("deploy", "e2e", "--data", data, "--kubeconfig", filepath.Join(repo, "nope")); err == nil || !strings.Contains(err.Error(), "kubeconfig") {
		t.Errorf("missing kubeconfig: %v", err)
	}
	down := filepath.Join(repo, "down.kubeconfig")
	os.WriteFile(down, []byte("apiVersion: v1\nkind: Config\nclusters: [{name: c, cluster: {server: \"https://127.0.0.1:1\"}}]\ncontexts: [{name: c, context: {cluster: c}}]\ncurrent-context: c\n"), 0o600)
	_, _, err = stack("deploy", "e2e", "--data", data, "--kubeconfig", down)
	if err == nil || !strings.Contains(err.Error(), "cluster https://127.0.0.1:1 is unreachable") || strings.Contains(err.Error(), "\n") {
		t.Errorf("unreachable cluster: %v", err)
	}
	if _, _, err := stack("diff", "e2e", "--data", data, "--kubeconfig", down); exit(io.Discard, err) != 1 {
		t.Errorf("diff of an unreachable cluster: %v, want exit status 1 (an error, not a difference)", err)
	}
	t.Log(err)
}
