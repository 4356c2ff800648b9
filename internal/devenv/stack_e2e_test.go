package devenv

import (
	"context"
	"crypto/ed25519"
	"crypto/rand"
	"encoding/base64"
	"encoding/pem"
	"fmt"
	"io"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/google/go-containerregistry/pkg/authn"
	"github.com/google/go-containerregistry/pkg/name"
	"github.com/google/go-containerregistry/pkg/v1/remote"
	"golang.org/x/crypto/ssh"

	"github.com/hashbang/stack/internal/image"
	"github.com/hashbang/stack/internal/node"
	"github.com/hashbang/stack/internal/registry"
)

// TestStackInCluster checks the development cluster's own stack serve
// (pods/stack) that `stack up` deployed (STACK_E2E, as TestUpEndToEnd):
// it runs from our image, non-root with a read-only root; its SSH host key
// is the generated Secret's; with the operator key of that Secret, the real
// git client pushes a new repository over the SSH host port (2223) and
// clones it back, while a key nobody listed is refused; and a pod on the
// node pulls an image pushed to the cluster's registry through the node's
// registry proxy (127.0.0.1:5001 in development), which refuses pushes.
func TestStackInCluster(t *testing.T) {
	ws, env, n := runningNode(t)
	ctx := context.Background()
	kubectl := func(stdin string, args ...string) string {
		t.Helper()
		var in io.Reader
		if stdin != "" {
			in = strings.NewReader(stdin)
		}
		out, err := n.Kubectl(ctx, in, args...)
		if err != nil {
			t.Fatalf("kubectl %s: %v", strings.Join(args, " "), err)
		}
		return out
	}
	secret := func(key string) []byte {
		t.Helper()
		v := kubectl("", "-n", "stack", "get", "secret", "stack-keys", "-o", "jsonpath={.data."+strings.ReplaceAll(key, ".", `\.`)+"}")
		b, err := base64.StdEncoding.DecodeString(v)
		if err != nil || len(b) == 0 {
			t.Fatalf("Secret stack/stack-keys key %s: %q %v", key, v, err)
		}
		return b
	}

	// Our image, least privilege.
	spec := kubectl("", "-n", "stack", "get", "deploy", "stack", "-o",
		`jsonpath={.spec.template.spec.containers[0].image} {.spec.template.spec.securityContext.runAsNonRoot} {.spec.template.spec.containers[0].securityContext.readOnlyRootFilesystem} {.spec.template.spec.containers[0].securityContext.capabilities.drop}`)
	if !strings.HasPrefix(spec, env.Registry+"/stack@sha256:") || !strings.Contains(spec, " true true [\"ALL\"]") {
		t.Errorf("stack's pod: %s", spec)
	}

	dir := t.TempDir()
	opKey := filepath.Join(dir, "operator")
	if err := os.WriteFile(opKey, secret("operator-key"), 0o600); err != nil {
		t.Fatal(err)
	}
	knownHosts := filepath.Join(dir, "known_hosts")
	if err := os.WriteFile(knownHosts, append([]byte("[127.0.0.1]:2223 "), secret("host-key.pub")...), 0o600); err != nil {
		t.Fatal(err)
	}
	stranger := filepath.Join(dir, "stranger")
	_, priv, _ := ed25519.GenerateKey(rand.Reader)
	block, err := ssh.MarshalPrivateKey(priv, "")
	if err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(stranger, pem.EncodeToMemory(block), 0o600); err != nil {
		t.Fatal(err)
	}
	git := func(key, wd string, args ...string) (string, error) {
		cmd := exec.Command("git", args...)
		cmd.Dir = wd
		// StrictHostKeyChecking: the host key must be the Secret's.
		cmd.Env = append(os.Environ(), "GIT_SSH_COMMAND=ssh -i "+key+" -o IdentitiesOnly=yes -o IdentityAgent=none -o BatchMode=yes -o StrictHostKeyChecking=yes -o UserKnownHostsFile="+knownHosts,
			"GIT_AUTHOR_NAME=e2e", "GIT_AUTHOR_EMAIL=e2e@localhost", "GIT_COMMITTER_NAME=e2e", "GIT_COMMITTER_EMAIL=e2e@localhost", "GIT_CONFIG_GLOBAL=/dev/null")
		out, err := cmd.CombinedOutput()
		return string(out), err
	}

	// A repository made the way the README says, a commit pushed, cloned
	// back.
	repo := "e2e-" + randomHex(t, 4)
	kubectl("", "-n", "stack", "exec", "deploy/stack", "-c", "stack", "--", "/bin/stack", "repo", "create", repo)
	work := filepath.Join(dir, "work")
	mark := "pushed to the cluster's stack serve " + randomHex(t, 8)
	for _, args := range [][]string{{"init", "-q", "-b", "main", work}, {"-C", work, "commit", "-q", "--allow-empty", "-m", mark}} {
		if out, err := git(opKey, dir, args...); err != nil {
			t.Fatalf("git %v: %v\n%s", args, err, out)
		}
	}
	url := "ssh://git@127.0.0.1:2223/" + repo
	start := time.Now()
	if out, err := git(opKey, work, "push", url, "main"); err != nil {
		t.Fatalf("git push %s: %v\n%s", url, err, out)
	}
	t.Logf("git push over the cluster's SSH port: %v", time.Since(start).Round(time.Millisecond))
	if out, err := git(opKey, dir, "clone", "-q", url, filepath.Join(dir, "clone")); err != nil {
		t.Fatalf("git clone %s: %v\n%s", url, err, out)
	}
	if out, _ := git(opKey, filepath.Join(dir, "clone"), "log", "-1", "--format=%s"); strings.TrimSpace(out) != mark {
		t.Errorf("the clone's head says %q, want %q", out, mark)
	}
	if out, err := git(stranger, dir, "ls-remote", url); err == nil || !strings.Contains(out, "Permission denied") {
		t.Errorf("a key nobody listed: %v\n%s", err, out)
	}

	// The registry: an image pushed to the cluster's registry (its Service,
	// with the Secret's password) is pulled by a pod through the node's
	// proxy, which has the password and refuses a push.
	lock, err := image.ReadLock(ws.Path("images"))
	if err != nil {
		t.Fatal(err)
	}
	digest := string(lock["pause"])
	src, err := name.ParseReference("127.0.0.1:5000/pause@"+digest, name.Insecure)
	if err != nil {
		t.Fatal(err)
	}
	img, err := remote.Image(src)
	if err != nil {
		t.Fatalf("pause from the host's registry: %v", err)
	}
	ip := kubectl("", "-n", "stack", "get", "svc", "stack", "-o", "jsonpath={.spec.clusterIP}")
	auth := &authn.Basic{Username: registry.User, Password: string(secret("push-password"))}
	dst, err := name.ParseReference(ip+":5000/e2e/pause:e2e", name.Insecure)
	if err != nil {
		t.Fatal(err)
	}
	if err := remote.Write(dst, img, remote.WithAuth(authn.Anonymous)); err == nil {
		t.Error("the cluster's registry took an anonymous push")
	}
	if err := remote.Write(dst, img, remote.WithAuth(auth)); err != nil {
		t.Fatalf("push to the cluster's registry at %s: %v", ip, err)
	}
	proxyRef, _ := name.ParseReference("127.0.0.1:5001/e2e/evil:x", name.Insecure)
	if err := remote.Write(proxyRef, img, remote.WithAuth(auth)); err == nil || !strings.Contains(err.Error(), "405") {
		t.Errorf("push through the node's proxy: %v, want 405", err)
	}
	ns := "e2e-pull-" + randomHex(t, 3)
	pulled := "localhost:5001/e2e/pause@" + digest
	t.Cleanup(func() {
		n.Kubectl(context.Background(), nil, "delete", "namespace", ns, "--wait=true", "--timeout=60s")
		removeProxied(t, ws.Cache, n)
	})
	kubectl(fmt.Sprintf(`apiVersion: v1
kind: Namespace
metadata: {name: %[1]s}
---
apiVersion: v1
kind: Pod
metadata: {name: pull, namespace: %[1]s}
spec:
  automountServiceAccountToken: false
  securityContext: {runAsNonRoot: true, runAsUser: 65532, seccompProfile: {type: RuntimeDefault}}
  containers:
    - name: pause
      image: %[2]s
      securityContext: {allowPrivilegeEscalation: false, readOnlyRootFilesystem: true, capabilities: {drop: [ALL]}}
`, ns, pulled), "apply", "-f", "-")
	start = time.Now()
	if _, err := n.Kubectl(ctx, nil, "-n", ns, "wait", "--for=condition=Ready", "pod/pull", "--timeout=90s"); err != nil {
		ev, _ := n.Kubectl(ctx, nil, "-n", ns, "get", "events")
		t.Fatalf("a pod of %s: %v\n%s", pulled, err, ev)
	}
	t.Logf("pod Ready from %s in %v", pulled, time.Since(start).Round(time.Millisecond))
}

// removeProxied deletes the images pulled through the node's proxy from
// its containerd, so that the other end-to-end tests find only images of
// the environment's registry there.
func removeProxied(t *testing.T, cacheDir string, n *node.Node) {
	ctr := filepath.Join(toolDir(t, cacheDir, "containerd"), "usr/bin/ctr")
	sock := filepath.Join(n.Dir, "containerd", "containerd.sock")
	out, _ := exec.Command(ctr, "--address", sock, "-n", "k8s.io", "images", "ls", "-q").Output()
	for _, r := range strings.Fields(string(out)) {
		if strings.HasPrefix(r, "localhost:5001/") {
			exec.Command(ctr, "--address", sock, "-n", "k8s.io", "images", "rm", r).Run()
		}
	}
}
