package deploy

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"sync"
	"testing"
	"time"

	apierrors "k8s.io/apimachinery/pkg/api/errors"
	"k8s.io/apimachinery/pkg/apis/meta/v1/unstructured"
	"k8s.io/apimachinery/pkg/types"
	"sigs.k8s.io/controller-runtime/pkg/client"
	sigsyaml "sigs.k8s.io/yaml"

	"github.com/hashbang/stack/internal/cluster"
	"github.com/hashbang/stack/internal/kubetest"
	"github.com/hashbang/stack/internal/policy"
	"github.com/hashbang/stack/internal/workspace"
)

// One control plane serves every test of the package; each test works in
// its own environment, cluster name (state repo) and namespaces.
var shared struct {
	once sync.Once
	cp   *kubetest.ControlPlane
	err  error
}

func controlPlane(t testing.TB) *kubetest.ControlPlane {
	t.Helper()
	if testing.Short() {
		t.Skip("starts etcd and kube-apiserver")
	}
	shared.once.Do(func() {
		ws, err := workspace.Find(".", kubetest.TestCache())
		if err != nil {
			shared.err = err
			return
		}
		ctx, cancel := context.WithTimeout(context.Background(), 30*time.Minute)
		defer cancel()
		bin, err := kubetest.Build(ctx, ws)
		if err != nil {
			shared.err = err
			return
		}
		dir, err := os.MkdirTemp("", "deploy-test-")
		if err != nil {
			shared.err = err
			return
		}
		shared.cp, shared.err = kubetest.StartWith(bin, dir)
	})
	if shared.err != nil {
		t.Fatal(shared.err)
	}
	return shared.cp
}

func TestMain(m *testing.M) {
	code := m.Run()
	if shared.cp != nil {
		shared.cp.Stop()
		os.RemoveAll(shared.cp.Dir)
	}
	os.Exit(code)
}

// fixture is a stack repository with one environment deployed to the
// shared control plane.
type fixture struct {
	t    testing.TB
	cp   *kubetest.ControlPlane
	repo string
	env  *cluster.Environment
	d    *Deployer
	out  *strings.Builder
}

func newFixture(t testing.TB, name string, files map[string]string) *fixture {
	t.Helper()
	cp := controlPlane(t)
	ctx := context.Background()
	c, err := Connect(ctx, cp.Config)
	if err != nil {
		t.Fatal(err)
	}
	state := newState(t)
	env := &cluster.Environment{Name: name, Backend: cluster.Kubeconfig, Cluster: name, Registry: "registry.localhost:5000"}
	out := &strings.Builder{}
	f := &fixture{t: t, cp: cp, repo: writeTree(t, files), env: env, out: out,
		d: &Deployer{Env: env, Cluster: c, State: state, By: Person{Name: "Test Admin", Email: "admin@example.org"}, Out: out}}
	return f
}

// write changes (or, with content "", removes) files of the repository.
func (f *fixture) write(files map[string]string) {
	f.t.Helper()
	for name, content := range files {
		p := filepath.Join(f.repo, filepath.FromSlash(name))
		if content == "" {
			os.Remove(p)
			continue
		}
		os.MkdirAll(filepath.Dir(p), 0o755)
		if err := os.WriteFile(p, []byte(content), 0o644); err != nil {
			f.t.Fatal(err)
		}
	}
}

func (f *fixture) render() *Rendered {
	f.t.Helper()
	r, err := Render(mustTree(f.t, f.repo), f.env)
	if err != nil {
		f.t.Fatal(err)
	}
	return r
}

func (f *fixture) deploy(opts Options) (*Result, error) {
	f.t.Helper()
	if opts.Timeout == 0 {
		opts.Timeout = 30 * time.Second
	}
	if opts.Interval == 0 {
		opts.Interval = 100 * time.Millisecond
	}
	return f.d.Deploy(context.Background(), f.render(), opts)
}

func (f *fixture) mustDeploy(opts Options) *Result {
	f.t.Helper()
	res, err := f.deploy(opts)
	if err != nil {
		f.t.Fatalf("deploy: %v\n%s", err, f.out)
	}
	return res
}

func (f *fixture) kubectl(args ...string) string {
	f.t.Helper()
	out, err := f.cp.Kubectl(args...).CombinedOutput()
	if err != nil {
		f.t.Fatalf("kubectl %s: %v\n%s", strings.Join(args, " "), err, out)
	}
	return string(out)
}

// live reads an object, or nil.
func (f *fixture) live(apiVersion, kind, ns, name string) *unstructured.Unstructured {
	f.t.Helper()
	u, err := f.d.Cluster.get(context.Background(), Key{APIVersion: apiVersion, Kind: kind, Namespace: ns, Name: name})
	if err != nil {
		f.t.Fatal(err)
	}
	return u
}

// stateEqualsLive checks that the state repo's head holds exactly the live
// objects of its inventory, and that the inventory is the cluster's.
func (f *fixture) stateEqualsLive() *Snapshot {
	f.t.Helper()
	ctx := context.Background()
	snap, err := f.d.State.Head(ctx)
	if err != nil || snap == nil {
		f.t.Fatalf("state head: %v %v", snap, err)
	}
	live, err := f.d.Cluster.liveFiles(ctx, snap.Inventory, nil)
	if err != nil {
		f.t.Fatal(err)
	}
	if len(live) != len(snap.Files) {
		f.t.Errorf("state repo holds %d objects, the cluster %d", len(snap.Files), len(live))
	}
	for p, data := range live {
		if string(snap.Files[p]) != string(data) {
			f.t.Errorf("state repo %s:\n%s\nlive:\n%s", p, snap.Files[p], data)
		}
	}
	inv, err := f.d.Cluster.readInventory(ctx, f.env.Name)
	if err != nil {
		f.t.Fatal(err)
	}
	if string(inv.Bytes()) != string(snap.Inventory.Bytes()) {
		f.t.Errorf("cluster inventory:\n%s\nstate repo inventory:\n%s", inv.Bytes(), snap.Inventory.Bytes())
	}
	return snap
}

// stateLog is the state repo's history: subject and Stack-Status of each
// commit, newest first.
func (f *fixture) stateLog() []string {
	f.t.Helper()
	out, err := git(context.Background(), f.d.State.Dir, nil, "log", "--format=%s|%(trailers:key=Stack-Status,valueonly,separator=)", StateBranch)
	if err != nil {
		return nil
	}
	return strings.Split(strings.TrimSpace(string(out)), "\n")
}

// fakeDeploymentController stands in for kube-controller-manager and the
// kubelet, which the test control plane lacks: it writes the status of
// every Deployment in namespace ns as if its pods had become ready.
func fakeDeploymentController(t testing.TB, c client.Client, ns string) {
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan struct{})
	t.Cleanup(func() { cancel(); <-done })
	go func() {
		defer close(done)
		for ctx.Err() == nil {
			list := &unstructured.UnstructuredList{}
			list.SetAPIVersion("apps/v1")
			list.SetKind("DeploymentList")
			if err := c.List(ctx, list, client.InNamespace(ns)); err == nil {
				for i := range list.Items {
					u := &list.Items[i]
					gen := u.GetGeneration()
					observed, _, _ := unstructured.NestedInt64(u.Object, "status", "observedGeneration")
					if observed == gen {
						continue
					}
					n, found, _ := unstructured.NestedInt64(u.Object, "spec", "replicas")
					if !found {
						n = 1
					}
					patch, _ := json.Marshal(map[string]any{"status": map[string]any{
						"observedGeneration": gen, "replicas": n, "updatedReplicas": n, "readyReplicas": n, "availableReplicas": n,
						"conditions": []any{
							map[string]any{"type": "Available", "status": "True", "reason": "MinimumReplicasAvailable"},
							map[string]any{"type": "Progressing", "status": "True", "reason": "NewReplicaSetAvailable"},
						},
					}})
					_ = c.Status().Patch(ctx, u, client.RawPatch(types.MergePatchType, patch))
				}
			}
			select {
			case <-ctx.Done():
			case <-time.After(50 * time.Millisecond):
			}
		}
	}()
}

// appFiles is a small stack: pods/app with a namespace, a ConfigMap, a
// Service and a Deployment, and infra/ENV over it.
func appFiles(env, ns string) map[string]string {
	return map[string]string{
		"images/images.lock":          "health " + testDigest + "\n",
		"pods/app/kustomization.yaml": "namespace: " + ns + "\nresources: [namespace.yaml, config.yaml, service.yaml, deployment.yaml]\n",
		"pods/app/namespace.yaml":     "apiVersion: v1\nkind: Namespace\nmetadata: {name: " + ns + "}\n",
		"pods/app/config.yaml":        "apiVersion: v1\nkind: ConfigMap\nmetadata: {name: app}\ndata: {greeting: hello}\n",
		"pods/app/service.yaml":       "apiVersion: v1\nkind: Service\nmetadata: {name: app}\nspec:\n  selector: {app: app}\n  ports: [{name: http, port: 80, targetPort: 8080}]\n",
		"pods/app/deployment.yaml": `apiVersion: apps/v1
kind: Deployment
metadata: {name: app}
spec:
  selector: {matchLabels: {app: app}}
  template:
    metadata: {labels: {app: app}}
    spec:
      containers:
      - name: app
        image: health
        ports: [{name: http, containerPort: 8080}]
`,
		"infra/" + env + "/kustomization.yaml": "resources: [../../pods/app]\n",
	}
}

func actions(res *Result) map[string]string {
	m := map[string]string{}
	for _, o := range res.Objects {
		m[o.Object] = o.Action
	}
	return m
}

// TestDeployLifecycle deploys, changes an overlay and redeploys (unchanged
// objects untouched), removes a Service and sees it pruned, and checks
// after every deploy that the state repo's head equals what is live.
func TestDeployLifecycle(t *testing.T) {
	f := newFixture(t, "life", appFiles("life", "life"))
	fakeDeploymentController(t, f.d.Cluster.Client, "life")

	res := f.mustDeploy(Options{})
	want := map[string]string{"Namespace life": "created", "ConfigMap life/app": "created", "Service life/app": "created", "Deployment.apps life/app": "created"}
	if got := actions(res); fmt.Sprint(got) != fmt.Sprint(want) {
		t.Errorf("first deploy: %v, want %v", got, want)
	}
	for _, o := range res.Objects {
		if o.Status != "Current" {
			t.Errorf("%s: status %s %s", o.Object, o.Status, o.Message)
		}
	}
	if res.Status != StatusDeployed || res.StateCommit == "" {
		t.Errorf("result %+v", res)
	}
	snap := f.stateEqualsLive()
	for _, p := range []string{"_cluster/namespace/life.yaml", "life/configmap/app.yaml", "life/service/app.yaml", "life/deployment.apps/app.yaml"} {
		if _, ok := snap.Files[p]; !ok {
			t.Errorf("state repo lacks %s (has %v)", p, keysOf(snap.Files))
		}
	}
	if snap.Record.Images["health"] != "registry.localhost:5000/health@"+testDigest {
		t.Errorf("record %+v", snap.Record)
	}
	if img := f.live("apps/v1", "Deployment", "life", "app"); img == nil || !strings.Contains(fmt.Sprint(img.Object["spec"]), "health@"+testDigest) {
		t.Errorf("live deployment does not run the pinned image")
	}
	rv := map[string]string{}
	for _, k := range []Key{{"v1", "Service", "life", "app"}, {"apps/v1", "Deployment", "life", "app"}, {"v1", "Namespace", "", "life"}} {
		rv[k.String()] = f.live(k.APIVersion, k.Kind, k.Namespace, k.Name).GetResourceVersion()
	}

	// Change the overlay: only the ConfigMap changes.
	f.write(map[string]string{"infra/life/kustomization.yaml": `resources: [../../pods/app]
patches:
- target: {kind: ConfigMap, name: app}
  patch: '[{"op": "replace", "path": "/data/greeting", "value": "bonjour"}]'
`})
	res = f.mustDeploy(Options{})
	want["ConfigMap life/app"], want["Service life/app"], want["Deployment.apps life/app"], want["Namespace life"] = "configured", "unchanged", "unchanged", "unchanged"
	if got := actions(res); fmt.Sprint(got) != fmt.Sprint(want) {
		t.Errorf("redeploy: %v, want %v", got, want)
	}
	for k, v := range rv {
		kk := map[string]Key{"Service life/app": {"v1", "Service", "life", "app"}, "Deployment.apps life/app": {"apps/v1", "Deployment", "life", "app"}, "Namespace life": {"v1", "Namespace", "", "life"}}[k]
		if got := f.live(kk.APIVersion, kk.Kind, kk.Namespace, kk.Name).GetResourceVersion(); got != v {
			t.Errorf("unchanged %s: resourceVersion %s → %s", k, v, got)
		}
	}
	if g, _, _ := unstructured.NestedString(f.live("v1", "ConfigMap", "life", "app").Object, "data", "greeting"); g != "bonjour" {
		t.Errorf("greeting %q", g)
	}
	f.stateEqualsLive()

	// Remove the Service: it is pruned, from the cluster, the inventory
	// and the state repo.
	f.write(map[string]string{"pods/app/kustomization.yaml": "namespace: life\nresources: [namespace.yaml, config.yaml, deployment.yaml]\n"})
	res = f.mustDeploy(Options{})
	if got := actions(res)["Service life/app"]; got != "pruned" {
		t.Errorf("service: %s, want pruned", got)
	}
	if f.live("v1", "Service", "life", "app") != nil {
		t.Error("service still live")
	}
	snap = f.stateEqualsLive()
	if _, ok := snap.Files["life/service/app.yaml"]; ok || strings.Contains(string(snap.Inventory.Bytes()), "Service") {
		t.Error("state repo still records the pruned service")
	}
	log := f.stateLog()
	if len(log) != 3 || !strings.HasSuffix(log[0], "|deployed") || !strings.Contains(log[0], "1 pruned") {
		t.Errorf("state log %q", log)
	}

	// Someone edits the ConfigMap behind stack's back: diff names the field
	// against the state repo and against the render.
	f.kubectl("-n", "life", "patch", "configmap", "app", "--type=merge", "-p", `{"data":{"greeting":"hacked"}}`)
	drift, err := f.d.Diff(context.Background(), f.render())
	if err != nil {
		t.Fatal(err)
	}
	if drift.Drifted() != 1 || len(drift.Objects) != 1 {
		t.Fatalf("drift %+v", drift)
	}
	o := drift.Objects[0]
	if o.Object != "ConfigMap life/app" || len(o.StateToLive) != 1 || o.StateToLive[0].String() != `data.greeting: "bonjour" → "hacked"` ||
		len(o.LiveToRender) != 1 || o.LiveToRender[0].String() != `data.greeting: "hacked" → "bonjour"` {
		t.Errorf("drift %+v", o)
	}
	// A deploy does not silently take the field back.
	_, err = f.deploy(Options{})
	if err == nil || !strings.Contains(err.Error(), `.data.greeting is owned by kubectl-patch`) || !strings.Contains(err.Error(), "--force-conflicts") {
		t.Errorf("deploy over a conflict: %v", err)
	}
	if len(f.stateLog()) != 3 {
		t.Error("refused deploy committed to the state repo")
	}
	// The drift check records it, as its own commit.
	id, err := f.d.RecordDrift(context.Background(), drift)
	if err != nil || id == "" {
		t.Fatalf("record drift: %s %v", id, err)
	}
	if log := f.stateLog(); len(log) != 4 || !strings.HasSuffix(log[0], "|drift") {
		t.Errorf("state log %q", log)
	}
	f.stateEqualsLive()
	if again, err := f.d.Diff(context.Background(), nil); err != nil || again.Drifted() != 0 {
		t.Errorf("after recording: %+v %v", again, err)
	}
	// --force-conflicts takes the field back.
	res = f.mustDeploy(Options{ForceConflicts: true})
	if got := actions(res)["ConfigMap life/app"]; got != "configured" || len(res.Objects[1].TakenOver) == 0 {
		t.Errorf("force-conflicts: %+v", res.Objects)
	}
	f.stateEqualsLive()
}

// TestDeployRejectedLeavesNothing: a manifest the API server rejects stops
// the deploy before its first write, in an existing namespace and in one
// the deploy would create.
func TestDeployRejectedLeavesNothing(t *testing.T) {
	f := newFixture(t, "reject", appFiles("reject", "reject"))
	fakeDeploymentController(t, f.d.Cluster.Client, "reject")
	f.mustDeploy(Options{})
	before := f.stateLog()
	cmRV := f.live("v1", "ConfigMap", "reject", "app").GetResourceVersion()

	f.write(map[string]string{
		"pods/app/config.yaml":  "apiVersion: v1\nkind: ConfigMap\nmetadata: {name: app}\ndata: {greeting: changed}\n",
		"pods/app/service.yaml": "apiVersion: v1\nkind: Service\nmetadata: {name: app}\nspec:\n  ports: [{name: http, port: 99999}]\n",
	})
	_, err := f.deploy(Options{})
	if err == nil || !strings.Contains(err.Error(), "nothing applied") || !strings.Contains(err.Error(), "Service reject/app") || !strings.Contains(err.Error(), "99999") {
		t.Errorf("error %v", err)
	}
	if rv := f.live("v1", "ConfigMap", "reject", "app").GetResourceVersion(); rv != cmRV {
		t.Error("the valid ConfigMap was applied before the invalid Service was refused")
	}
	if after := f.stateLog(); fmt.Sprint(after) != fmt.Sprint(before) {
		t.Errorf("state log %q → %q", before, after)
	}
	f.stateEqualsLive()

	// In a namespace the deploy creates: the namespace is rolled back.
	g := newFixture(t, "reject-new", appFiles("reject-new", "reject-new"))
	g.write(map[string]string{"pods/app/service.yaml": "apiVersion: v1\nkind: Service\nmetadata: {name: app}\nspec:\n  ports: [{name: http, port: 99999}]\n"})
	_, err = g.deploy(Options{})
	if err == nil || !strings.Contains(err.Error(), "99999") || !strings.Contains(err.Error(), "rolled back") {
		t.Errorf("error %v", err)
	}
	if ns := g.live("v1", "Namespace", "", "reject-new"); ns != nil && ns.GetDeletionTimestamp() == nil {
		t.Error("namespace left behind")
	}
	if log := g.stateLog(); log != nil {
		t.Errorf("state repo written: %q", log)
	}
	if inv, _ := g.d.Cluster.readInventory(context.Background(), "reject-new"); len(inv) != 0 {
		t.Errorf("inventory left: %s", inv.Bytes())
	}
}

// TestDeployTimeout: objects that never become ready fail the deploy after
// the timeout, with their status, and the state repo records what is live
// as a failed deploy.
func TestDeployTimeout(t *testing.T) {
	f := newFixture(t, "slow", appFiles("slow", "slow")) // no fake controller
	res, err := f.deploy(Options{Timeout: 2 * time.Second})
	if err == nil || !strings.Contains(err.Error(), "not ready after 2s") || !strings.Contains(err.Error(), "Deployment.apps slow/app") {
		t.Fatalf("error %v", err)
	}
	if !strings.Contains(f.out.String(), "not ready  Deployment.apps slow/app: InProgress") {
		t.Errorf("output:\n%s", f.out)
	}
	if res.Status != StatusFailed {
		t.Errorf("status %s", res.Status)
	}
	f.stateEqualsLive()
	if log := f.stateLog(); len(log) != 1 || !strings.HasPrefix(log[0], "FAILED deploy slow") || !strings.HasSuffix(log[0], "|failed") {
		t.Errorf("state log %q", log)
	}
}

// TestDeployImmutable: a change to an immutable field is an error naming
// the fix; --force recreates the object.
func TestDeployImmutable(t *testing.T) {
	f := newFixture(t, "immut", appFiles("immut", "immut"))
	fakeDeploymentController(t, f.d.Cluster.Client, "immut")
	f.mustDeploy(Options{})
	uid := f.live("apps/v1", "Deployment", "immut", "app").GetUID()
	dep := strings.ReplaceAll(appFiles("immut", "immut")["pods/app/deployment.yaml"], "app: app}", "app: app2}")
	f.write(map[string]string{"pods/app/deployment.yaml": dep})
	_, err := f.deploy(Options{})
	if err == nil || !strings.Contains(err.Error(), "immutable") || !strings.Contains(err.Error(), "--force") {
		t.Fatalf("error %v", err)
	}
	res := f.mustDeploy(Options{Force: true})
	if got := actions(res)["Deployment.apps immut/app"]; got != "recreated" {
		t.Errorf("action %s", got)
	}
	if f.live("apps/v1", "Deployment", "immut", "app").GetUID() == uid {
		t.Error("deployment not recreated")
	}
	f.stateEqualsLive()
}

// TestDeployDryRun shows changes and writes nothing.
func TestDeployDryRun(t *testing.T) {
	f := newFixture(t, "dry", appFiles("dry", "dry"))
	fakeDeploymentController(t, f.d.Cluster.Client, "dry")
	res := f.mustDeploy(Options{DryRun: true})
	if res.Status != "dry-run" || actions(res)["ConfigMap dry/app"] != "created" || f.live("v1", "Namespace", "", "dry") != nil || f.stateLog() != nil {
		t.Fatalf("dry run of a first deploy: %+v", res)
	}
	f.mustDeploy(Options{})
	f.write(map[string]string{"pods/app/config.yaml": "apiVersion: v1\nkind: ConfigMap\nmetadata: {name: app}\ndata: {greeting: hi}\n"})
	res = f.mustDeploy(Options{DryRun: true})
	for _, o := range res.Objects {
		if o.Object == "ConfigMap dry/app" && (o.Action != "configured" || len(o.Changes) != 1 || o.Changes[0].String() != `data.greeting: "hello" → "hi"`) {
			t.Errorf("dry run: %+v", o)
		}
	}
	if g, _, _ := unstructured.NestedString(f.live("v1", "ConfigMap", "dry", "app").Object, "data", "greeting"); g != "hello" {
		t.Error("dry run changed the cluster")
	}
}

// TestDeployProtectedRefusesUnsigned: a protected environment runs the
// signature policy on the source commit before anything is applied.
func TestDeployProtectedRefusesUnsigned(t *testing.T) {
	f := newFixture(t, "prot", appFiles("prot", "prot"))
	f.env.Protected = true
	// Trust starts at a root commit signed by an admin listed in its own
	// config/admins; the deployed commit on top of it is unsigned.
	key := filepath.Join(t.TempDir(), "admin")
	if out, err := exec.Command("ssh-keygen", "-q", "-t", "ed25519", "-N", "", "-C", "admin", "-f", key).CombinedOutput(); err != nil {
		t.Fatalf("ssh-keygen: %v\n%s", err, out)
	}
	pub, err := os.ReadFile(key + ".pub")
	if err != nil {
		t.Fatal(err)
	}
	f.write(map[string]string{"config/admins": "admin@example.org " + string(pub)})
	gitRun(t, f.repo, "init", "-q")
	gitRun(t, f.repo, "config", "gpg.format", "ssh")
	gitRun(t, f.repo, "config", "user.signingkey", key)
	gitRun(t, f.repo, "add", "config/admins")
	gitRun(t, f.repo, "commit", "-q", "-S", "-m", "root of trust")
	root := gitRun(t, f.repo, "rev-parse", "HEAD")
	gitRun(t, f.repo, "add", ".")
	gitRun(t, f.repo, "commit", "-q", "--no-gpg-sign", "-m", "unsigned")
	v := &policy.Verifier{Dir: f.repo, Root: policy.TrustRoot{Commit: root}}
	f.d.Gate = func(ctx context.Context, commit, last string) error {
		_, err := v.CheckDeploy(ctx, "production", commit, last)
		return err
	}
	tree, err := TreeFromCommit(context.Background(), f.repo, "HEAD")
	if err != nil {
		t.Fatal(err)
	}
	r, err := Render(tree, f.env)
	if err != nil {
		t.Fatal(err)
	}
	_, err = f.d.Deploy(context.Background(), r, Options{Timeout: time.Second})
	if !errors.Is(err, policy.ErrRefused) {
		t.Errorf("unsigned commit: %v", err)
	}
	if f.live("v1", "Namespace", "", "prot") != nil || f.stateLog() != nil {
		t.Error("a refused deploy changed the cluster or the state repo")
	}
	// A work tree with changes is refused before the gate.
	f.write(map[string]string{"pods/app/config.yaml": "apiVersion: v1\nkind: ConfigMap\nmetadata: {name: app}\n"})
	if _, err := f.deploy(Options{}); err == nil || !strings.Contains(err.Error(), "is protected: deploy a signed commit") {
		t.Errorf("dirty work tree: %v", err)
	}
}

func gitRun(t testing.TB, dir string, args ...string) string {
	t.Helper()
	cmd := exec.Command("git", args...)
	cmd.Dir = dir
	cmd.Env = append(os.Environ(), "GIT_AUTHOR_NAME=t", "GIT_AUTHOR_EMAIL=t@example.org", "GIT_COMMITTER_NAME=t", "GIT_COMMITTER_EMAIL=t@example.org", "GIT_CONFIG_GLOBAL=/dev/null")
	out, err := cmd.CombinedOutput()
	if err != nil {
		t.Fatalf("git %v: %v\n%s", args, err, out)
	}
	return strings.TrimSpace(string(out))
}

func keysOf(m map[string][]byte) []string {
	var out []string
	for k := range m {
		out = append(out, k)
	}
	return out
}

var (
	_ = apierrors.IsNotFound
	_ = sigsyaml.Marshal
)

// TestDeployCRD deploys a CustomResourceDefinition and an object of its
// kind in one go: the CRD is applied and established first.
func TestDeployCRD(t *testing.T) {
	files := map[string]string{
		"images/images.lock":              "health " + testDigest + "\n",
		"pods/widgets/kustomization.yaml": "resources: [crd.yaml, namespace.yaml, widget.yaml]\n",
		"pods/widgets/crd.yaml": `apiVersion: apiextensions.k8s.io/v1
kind: CustomResourceDefinition
metadata: {name: widgets.example.org}
spec:
  group: example.org
  scope: Namespaced
  names: {kind: Widget, plural: widgets, singular: widget, listKind: WidgetList}
  versions:
  - name: v1
    served: true
    storage: true
    schema:
      openAPIV3Schema:
        type: object
        properties:
          spec:
            type: object
            properties:
              size: {type: integer}
`,
		"pods/widgets/namespace.yaml":  "apiVersion: v1\nkind: Namespace\nmetadata: {name: crd}\n",
		"pods/widgets/widget.yaml":     "apiVersion: example.org/v1\nkind: Widget\nmetadata: {name: w, namespace: crd}\nspec: {size: 3}\n",
		"infra/crd/kustomization.yaml": "resources: [../../pods/widgets]\n",
	}
	f := newFixture(t, "crd", files)
	res := f.mustDeploy(Options{})
	want := map[string]string{"CustomResourceDefinition.apiextensions.k8s.io widgets.example.org": "created", "Namespace crd": "created", "Widget.example.org crd/w": "created"}
	if got := actions(res); fmt.Sprint(got) != fmt.Sprint(want) {
		t.Errorf("deploy: %v, want %v", got, want)
	}
	snap := f.stateEqualsLive()
	if _, ok := snap.Files["crd/widget.example.org/w.yaml"]; !ok {
		t.Errorf("state repo lacks the widget: %v", keysOf(snap.Files))
	}
	// An invalid custom object is refused by the API server's schema.
	f.write(map[string]string{"pods/widgets/widget.yaml": "apiVersion: example.org/v1\nkind: Widget\nmetadata: {name: w, namespace: crd}\nspec: {size: big}\n"})
	if _, err := f.deploy(Options{}); err == nil || !strings.Contains(err.Error(), "Widget.example.org crd/w") || !strings.Contains(err.Error(), "spec.size") {
		t.Errorf("invalid widget: %v", err)
	}
}
