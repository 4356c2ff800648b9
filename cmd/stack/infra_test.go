package main

import (
	"bytes"
	"context"
	"crypto/rand"
	"encoding/hex"
	"encoding/json"
	"errors"
	"io/fs"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
	"time"

	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/client-go/kubernetes"

	"github.com/hashbang/stack/internal/cluster"
	"github.com/hashbang/stack/internal/cluster/digitalocean"
	"github.com/hashbang/stack/internal/cluster/digitalocean/dofake"
	"github.com/hashbang/stack/internal/kubetest"
)

const stagingDO = `backend: digitalocean
cluster: staging
registry: localhost:5000
ref: refs/heads/staging
digitalocean:
  region: ams3
  version: 1.36.3-do.0
  maintenance: {day: sunday, start: "03:00"}
  tags: [hashbang]
  pools:
    - name: workers
      size: s-2vcpu-4gb
      count: 1
`

// TestInfraCommands provisions staging on a FAKE of the DigitalOcean API
// (dofake, driven by the real godo client through DIGITALOCEAN_API_URL),
// whose cluster is a real etcd and kube-apiserver, then deploys to it with
// the credentials infra apply fetched: plan on an empty account, apply, a
// no-op plan and apply, a deploy, scaling a pool through 429 and 500
// answers, a refused replacement, expired credentials renewed, a missing
// and a wrong token, destroy; and the token appears in no output and no
// file.
func TestInfraCommands(t *testing.T) {
	if testing.Short() {
		t.Skip("starts etcd and kube-apiserver")
	}
	bin := kubetest.BuildFor(t)
	secret := make([]byte, 16)
	rand.Read(secret)
	token := "dop_v1_" + hex.EncodeToString(secret)
	fake := dofake.Start(t, bin, token)
	fake.Delay = time.Second
	t.Setenv(digitalocean.TokenEnv, token)
	t.Setenv(digitalocean.TokenFileEnv, "")
	t.Setenv(digitalocean.APIURLEnv, fake.URL)

	repo, data := t.TempDir(), t.TempDir()
	files := map[string]string{
		"config/sources.yaml":              "sources: []\n",
		"images/images.lock":               "health sha256:" + strings.Repeat("1", 64) + "\n",
		"infra/staging/environment.yaml":   stagingDO,
		"infra/staging/kustomization.yaml": "resources: [../../pods/web]\n",
		"infra/prod/environment.yaml":      strings.NewReplacer("cluster: staging", "cluster: prod", "ref: refs/heads/staging", "protected: true\nref: refs/heads/prod").Replace(stagingDO),
		"infra/prod/kustomization.yaml":    "resources: [../../pods/web]\n",
		"pods/web/kustomization.yaml":      "namespace: web\nresources: [namespace.yaml, config.yaml]\n",
		"pods/web/namespace.yaml":          "apiVersion: v1\nkind: Namespace\nmetadata: {name: web}\n",
		"pods/web/config.yaml":             "apiVersion: v1\nkind: ConfigMap\nmetadata: {name: web}\ndata: {mode: calm}\n",
	}
	write := func(name, content string) {
		p := filepath.Join(repo, filepath.FromSlash(name))
		os.MkdirAll(filepath.Dir(p), 0o755)
		if err := os.WriteFile(p, []byte(content), 0o644); err != nil {
			t.Fatal(err)
		}
	}
	for name, content := range files {
		write(name, content)
	}
	git := func(args ...string) string {
		cmd := exec.Command("git", append([]string{"-C", repo, "-c", "user.name=Test", "-c", "user.email=test@example.org"}, args...)...)
		out, err := cmd.CombinedOutput()
		if err != nil {
			t.Fatalf("git %v: %v\n%s", args, err, out)
		}
		return strings.TrimSpace(string(out))
	}
	git("init", "-q", "-b", "main")
	git("add", ".")
	git("commit", "-q", "-m", "staging")

	var seen bytes.Buffer // every output, searched for the token at the end
	stack := func(args ...string) (string, string, error) {
		out, errOut, err := run(t, append([]string{"-C", repo, "--cache", filepath.Join(repo, ".cache"), "--data", data}, args...)...)
		seen.WriteString(out + errOut)
		if err != nil {
			seen.WriteString(err.Error())
		}
		return out, errOut, err
	}
	code := func(err error) int { return exit(&bytes.Buffer{}, err) }
	stateDir := filepath.Join(data, "git", "state", "staging.git")
	stateLog := func() []string {
		out, err := exec.Command("git", "--git-dir", stateDir, "log", "--format=%s").Output()
		if err != nil {
			return nil
		}
		return strings.Split(strings.TrimSpace(string(out)), "\n")
	}

	// Plan on an empty account: changes pending, exit status 2.
	out, _, err := stack("infra", "plan", "staging")
	if code(err) != 2 || out != "+ cluster (ams3 1.36.3-do.0, 1 pools)\ncluster staging: 1 to create, 0 to update, 0 to delete, 0 needing replacement\n" {
		t.Fatalf("plan, empty account: exit %d %v\n%s", code(err), err, out)
	}
	out, _, err = stack("infra", "plan", "staging", "-o", "json")
	var plan struct {
		Cluster string
		Changes []map[string]any
	}
	if code(err) != 2 || json.Unmarshal([]byte(out), &plan) != nil || plan.Cluster != "staging" || len(plan.Changes) != 1 || !strings.Contains(out, `"action": "create"`) {
		t.Errorf("plan -o json: %d %v\n%s", code(err), err, out)
	}

	// Apply: creates, waits, keeps the credentials, records.
	start := time.Now()
	out, errOut, err := stack("infra", "apply", "staging", "--poll", "100ms")
	applyTime := time.Since(start)
	t.Logf("infra apply (%s):\n%s%s", applyTime, out, errOut)
	if err != nil || !strings.Contains(errOut, "creating cluster staging") || !strings.Contains(errOut, "waiting for cluster staging: provisioning") ||
		!strings.Contains(out, "cluster staging (") || !strings.Contains(errOut, "recorded in state repo") {
		t.Fatalf("apply: %v\n%s%s", err, out, errOut)
	}
	credFile := cluster.CredentialsFile(data, "staging")
	if fi, err := os.Stat(credFile); err != nil || fi.Mode().Perm() != 0o600 {
		t.Errorf("credentials %s: %v %v", credFile, fi, err)
	}
	if log := stateLog(); len(log) != 1 || !strings.HasPrefix(log[0], "infra: cluster staging (") {
		t.Errorf("state repo after apply: %q", log)
	}

	// A second plan and apply change nothing.
	start = time.Now()
	out, _, err = stack("infra", "plan", "staging")
	t.Logf("no-op infra plan: %s", time.Since(start))
	if err != nil || out != "cluster staging: up to date\n" {
		t.Errorf("no-op plan: %v\n%s", err, out)
	}
	if _, errOut, err := stack("infra", "apply", "staging", "--poll", "100ms"); err != nil || !strings.Contains(errOut, "no change to record") || len(stateLog()) != 1 {
		t.Errorf("no-op apply: %v\n%s%q", err, errOut, stateLog())
	}

	// Deploy with the credentials infra apply kept.
	start = time.Now()
	out, errOut, err = stack("deploy", "staging", "--timeout", "30s")
	if err != nil || !strings.Contains(errOut, "deployed staging") {
		t.Fatalf("deploy: %v\n%s%s", err, out, errOut)
	}
	deployTime := time.Since(start)
	t.Logf("from an empty account: infra apply %s (of which the fake's simulated provisioning %s), deploy %s: %s without the simulated delay",
		applyTime.Round(time.Millisecond), fake.Delay, deployTime.Round(time.Millisecond), (applyTime + deployTime - fake.Delay).Round(time.Millisecond))
	cp := fake.Cluster("staging")
	if live, err := cp.Kubectl("-n", "web", "get", "configmap", "web", "-o", "jsonpath={.data.mode}").Output(); err != nil || string(live) != "calm" {
		t.Errorf("deployed ConfigMap: %q %v", live, err)
	}
	if tree, err := exec.Command("git", "--git-dir", stateDir, "ls-tree", "-r", "--name-only", "main").Output(); err != nil ||
		!strings.Contains(string(tree), "_stack/infra.yaml") || !strings.Contains(string(tree), "_stack/deploy.yaml") {
		t.Errorf("state repo tree: %s %v", tree, err)
	}

	// Scale the pool, through rate limits and server errors.
	write("infra/staging/environment.yaml", strings.Replace(stagingDO, "count: 1", "count: 3", 1))
	out, _, err = stack("infra", "plan", "staging")
	if code(err) != 2 || !strings.Contains(out, "~ pool workers nodes: 1 → 3") {
		t.Errorf("plan, scale: %d %v\n%s", code(err), err, out)
	}
	fake.Fail("PUT", "/v2/kubernetes/clusters/", 429, 1, "1")
	fake.Fail("GET", "/v2/kubernetes/clusters/", 500, 2, "")
	out, errOut, err = stack("infra", "apply", "staging", "--poll", "100ms")
	if err != nil || !strings.Contains(errOut, "updating pool workers") {
		t.Fatalf("apply, scale: %v\n%s%s", err, out, errOut)
	}
	reqs := strings.Join(fake.Requests(), "\n")
	if !strings.Contains(reqs, "/node_pools/") || !strings.Contains(reqs, " 429") || !strings.Contains(reqs, " 500") {
		t.Errorf("no 429 or 500 answered:\n%s", reqs)
	}
	if log := stateLog(); len(log) != 3 {
		t.Errorf("state repo after scaling: %q", log)
	}
	rec, _ := exec.Command("git", "--git-dir", stateDir, "show", "main:_stack/infra.yaml").Output()
	if !strings.Contains(string(rec), "nodes: 3") {
		t.Errorf("infra record after scaling:\n%s", rec)
	}

	// A replacement is refused without --replace, and nothing changes.
	write("infra/staging/environment.yaml", strings.Replace(strings.Replace(stagingDO, "count: 1", "count: 3", 1), "ams3", "fra1", 1))
	before := len(fake.Requests())
	_, _, err = stack("infra", "apply", "staging")
	if err == nil || !strings.Contains(err.Error(), "cluster staging: cluster region cannot change in place") || !strings.Contains(err.Error(), "pass --replace") {
		t.Errorf("replacement: %v", err)
	}
	for _, r := range fake.Requests()[before:] {
		if !strings.HasPrefix(r, "GET ") {
			t.Errorf("a refused replacement changed the account: %s", r)
		}
	}
	if len(stateLog()) != 3 {
		t.Errorf("a refused replacement was recorded: %q", stateLog())
	}
	write("infra/staging/environment.yaml", strings.Replace(stagingDO, "count: 1", "count: 3", 1))

	// Expired credentials: refused by the API server, renewed by stack.
	fake.CredentialTTL = 2 * time.Second
	if _, _, err := stack("infra", "apply", "staging", "--poll", "100ms"); err != nil {
		t.Fatal(err)
	}
	cr, err := digitalocean.LoadCredentials(credFile)
	if err != nil {
		t.Fatal(err)
	}
	time.Sleep(time.Until(cr.ExpiresAt) + time.Second)
	kc := kubernetes.NewForConfigOrDie(cr.RESTConfig())
	if _, err := kc.CoreV1().Namespaces().Get(context.Background(), "web", metav1.GetOptions{}); err == nil || !strings.Contains(err.Error(), "Unauthorized") {
		t.Errorf("expired credentials still work: %v", err)
	}
	if out, errOut, err := stack("diff", "staging"); err != nil {
		t.Errorf("diff with expired credentials: %v\n%s%s", err, out, errOut)
	}
	if renewed, err := digitalocean.LoadCredentials(credFile); err != nil || !renewed.ExpiresAt.After(cr.ExpiresAt) {
		t.Errorf("credentials not renewed: %v", err)
	}

	// A protected environment is provisioned only through the gate.
	if _, _, err := stack("infra", "apply", "prod"); err == nil || !strings.Contains(err.Error(), "environment prod is protected: name the trust root") {
		t.Errorf("protected without a trust root: %v", err)
	}
	if fake.Cluster("prod") != nil {
		t.Error("protected environment provisioned without the gate")
	}

	// Tokens: missing, wrong.
	t.Setenv(digitalocean.TokenEnv, "")
	if _, _, err := stack("infra", "plan", "staging"); err == nil || err.Error() != "environment staging: "+digitalocean.ErrNoToken.Error() {
		t.Errorf("missing token: %v", err)
	}
	t.Setenv(digitalocean.TokenEnv, "dop_v1_wrong")
	if _, _, err := stack("infra", "plan", "staging"); err == nil || !strings.Contains(err.Error(), "the DigitalOcean API refused the token (401") {
		t.Errorf("wrong token: %v", err)
	}
	t.Setenv(digitalocean.TokenEnv, token)

	// Destroy: only with --yes.
	if _, _, err := stack("infra", "destroy", "staging"); err == nil || !strings.Contains(err.Error(), "pass --yes") || fake.Cluster("staging") == nil {
		t.Errorf("destroy without --yes: %v", err)
	}
	if _, _, err := stack("infra", "destroy", "staging", "--yes", "--poll", "100ms"); err != nil || fake.Cluster("staging") != nil {
		t.Errorf("destroy: %v", err)
	}
	if _, err := os.Stat(credFile); !errors.Is(err, fs.ErrNotExist) {
		t.Errorf("credentials left after destroy: %v", err)
	}
	if log := stateLog(); len(log) != 4 || log[0] != "infra: destroyed cluster staging" {
		t.Errorf("state repo after destroy: %q", log)
	}

	// The token is in no output, no file of the repository or the data
	// directory, and no commit of the state repo.
	if strings.Contains(seen.String(), token) {
		t.Error("the token appears in the output")
	}
	for _, dir := range []string{repo, data} {
		filepath.WalkDir(dir, func(p string, d fs.DirEntry, err error) error {
			if err == nil && d.Type().IsRegular() {
				if b, _ := os.ReadFile(p); bytes.Contains(b, []byte(token)) {
					t.Errorf("the token is in %s", p)
				}
			}
			return nil
		})
	}
	if all, _ := exec.Command("git", "--git-dir", stateDir, "log", "-p", "--all").Output(); bytes.Contains(all, []byte(token)) || len(all) == 0 {
		t.Errorf("the token is in the state repo (or it is empty: %d bytes)", len(all))
	}
}
