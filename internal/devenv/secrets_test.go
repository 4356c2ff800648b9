package devenv

import (
	"context"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"k8s.io/apimachinery/pkg/apis/meta/v1/unstructured"
	sigsyaml "sigs.k8s.io/yaml"

	"github.com/hashbang/stack/internal/deploy"
	"github.com/hashbang/stack/internal/kubetest"
	"github.com/hashbang/stack/internal/node"
	"github.com/hashbang/stack/internal/workspace"
)

// testEnv is an Env whose node is a real control plane (etcd and
// kube-apiserver, no kubelet), with its kubeconfig where the node's would
// be and the control plane's kubectl.
func testEnv(t *testing.T) (*Env, *deploy.Cluster, *kubetest.ControlPlane) {
	t.Helper()
	if testing.Short() {
		t.Skip("starts etcd and kube-apiserver")
	}
	ws, err := workspace.Find(".", kubetest.TestCache())
	if err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Minute)
	defer cancel()
	bin, err := kubetest.Build(ctx, ws)
	if err != nil {
		t.Fatal(err)
	}
	cp, err := kubetest.StartWith(bin, t.TempDir())
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(cp.Stop)
	n := node.New(t.TempDir(), "test")
	n.Bins = map[string]string{"kubectl": bin.Kubectl}
	kc, err := os.ReadFile(cp.Kubeconfig)
	if err != nil {
		t.Fatal(err)
	}
	if err := os.MkdirAll(filepath.Dir(n.Kubeconfig()), 0o755); err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(n.Kubeconfig(), kc, 0o600); err != nil {
		t.Fatal(err)
	}
	e := &Env{Node: n}
	c, err := deploy.Connect(ctx, cp.Config)
	if err != nil {
		t.Fatal(err)
	}
	return e, c, cp
}

// TestShowOnce: a show-once line is printed by the run that made one of
// its values, with how to read it again, and by no later run.
func TestShowOnce(t *testing.T) {
	e, c, cp := testEnv(t)
	ctx := context.Background()
	kubectl := func(args ...string) {
		t.Helper()
		if out, err := cp.Kubectl(args...).CombinedOutput(); err != nil {
			t.Fatalf("kubectl %v: %v\n%s", args, err, out)
		}
	}
	manifest := `apiVersion: v1
kind: Secret
metadata:
  name: admin
  namespace: app
  annotations:
    stack.hashbang.sh/generate: "host=ssh-ed25519"
    stack.hashbang.sh/show-once: "app admin: {user} / {password}, host key {host.pub}"
    stack.hashbang.sh/capture: |
      key: password
      workload: deployment/app
      container: app
      command: [/bin/app, create-admin]
      match: "password: (.+)"
data:
  user: cm9vdA==
`
	u := &unstructured.Unstructured{}
	if err := sigsyaml.Unmarshal([]byte(manifest), &u.Object); err != nil {
		t.Fatal(err)
	}
	d, err := deploy.DeclOf(u)
	if err != nil {
		t.Fatal(err)
	}
	decls := []*deploy.SecretDecl{d}
	kubectl("create", "namespace", "app")
	kubectl("-n", "app", "create", "secret", "generic", "admin", "--from-literal=user=root", "--from-literal=host.pub=ssh-ed25519 AAAA")

	before, err := showOnceBefore(ctx, c, decls)
	if err != nil {
		t.Fatal(err)
	}
	if notes, err := e.showOnce(ctx, c, decls, before); err != nil || len(notes) != 0 {
		t.Errorf("nothing made yet: %q %v", notes, err)
	}
	// The capture step needs a ready pod; with none, it says so.
	if err := e.capture(ctx, c, decls); err == nil || !strings.Contains(err.Error(), "Secret app/admin: capture password: read deployment app/app") {
		t.Errorf("capture without a workload: %v", err)
	}
	kubectl("-n", "app", "patch", "secret", "admin", "-p", `{"stringData":{"password":"s3cret"}}`)
	notes, err := e.showOnce(ctx, c, decls, before)
	want := "app admin: root / s3cret, host key ssh-ed25519 AAAA (shown once; kubectl --kubeconfig " + e.Node.Kubeconfig() +
		" -n app get secret admin -o jsonpath='{.data.password}' | base64 -d)"
	if err != nil || len(notes) != 1 || notes[0] != want {
		t.Errorf("notes %q %v\nwant %q", notes, err, want)
	}
	// The next run has nothing to show.
	if before, err = showOnceBefore(ctx, c, decls); err != nil {
		t.Fatal(err)
	}
	if notes, err := e.showOnce(ctx, c, decls, before); err != nil || len(notes) != 0 {
		t.Errorf("second run: %q %v", notes, err)
	}
}
