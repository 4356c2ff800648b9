package release

import (
	"context"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"

	"github.com/hashbang/stack/internal/cluster"
	"github.com/hashbang/stack/internal/deploy"
	"github.com/hashbang/stack/internal/gitserve"
	"github.com/hashbang/stack/internal/policy"
	"github.com/hashbang/stack/internal/workspace"
)

// TestStateRepo: a cluster's state repo is the served repository
// state/CLUSTER under the data directory, created once, with HEAD on the
// branch deploy writes.
func TestStateRepo(t *testing.T) {
	data := t.TempDir()
	s, err := StateRepo(data, "dev")
	if err != nil {
		t.Fatal(err)
	}
	if s.Dir != filepath.Join(data, "git", "state", "dev.git") {
		t.Errorf("state repo at %s", s.Dir)
	}
	head, err := os.ReadFile(filepath.Join(s.Dir, "HEAD"))
	if err != nil || strings.TrimSpace(string(head)) != "ref: "+deploy.StateBranch {
		t.Errorf("HEAD %q (%v), want ref: %s", head, err, deploy.StateBranch)
	}
	if deploy.StateBranch != "refs/heads/"+gitserve.DefaultBranch {
		t.Errorf("deploy writes %s, served repositories start on %s", deploy.StateBranch, gitserve.DefaultBranch)
	}
	again, err := StateRepo(data, "dev")
	if err != nil || again.Dir != s.Dir {
		t.Errorf("second open: %v %v", again, err)
	}
	if _, err := StateRepo(data, "../x"); err == nil {
		t.Error("a cluster name that leaves the data directory was accepted")
	}
}

// TestRevision: a protected environment never deploys a work tree.
func TestRevision(t *testing.T) {
	ctx := context.Background()
	dir := t.TempDir()
	git := func(args ...string) {
		cmd := exec.Command("git", append([]string{"-C", dir, "-c", "user.name=t", "-c", "user.email=t@example.org"}, args...)...)
		if out, err := cmd.CombinedOutput(); err != nil {
			t.Fatalf("git %v: %v: %s", args, err, out)
		}
	}
	git("init", "-q", "-b", "main")
	git("commit", "-q", "--allow-empty", "-m", "one")
	ws, _ := workspace.New(dir, t.TempDir())
	dev := &cluster.Environment{Name: "development"}
	prod := &cluster.Environment{Name: "production", Protected: true, Ref: "refs/heads/production"}
	for _, tt := range []struct {
		env       *cluster.Environment
		rev, want string
	}{
		{dev, "", ""},
		{dev, "main", "main"},
		{prod, "", "HEAD"},
		{prod, "main", "main"},
	} {
		if got := Revision(ctx, ws, tt.env, tt.rev); got != tt.want {
			t.Errorf("Revision(%s, %q) = %q, want %q", tt.env.Name, tt.rev, got, tt.want)
		}
	}
	git("branch", "production")
	if got := Revision(ctx, ws, prod, ""); got != "refs/heads/production" {
		t.Errorf("with the ref: %q", got)
	}
	if _, err := Gate(ctx, ws, prod, policy.TrustRoot{}, nil); err == nil || !strings.Contains(err.Error(), "environment production is protected: name the trust root with --root COMMIT") {
		t.Errorf("gate without a root: %v", err)
	}
	// --root-key alone applies to the configured root (it used to be
	// ignored unless --root was given too).
	git("config", "stack.policy.root", "1234")
	tr, err := policy.ResolveRoot(ctx, dir, policy.TrustRoot{Key: "SHA256:abc"})
	if err != nil || tr.Commit != "1234" || tr.Key != "SHA256:abc" {
		t.Errorf("ResolveRoot with --root-key only: %+v %v", tr, err)
	}
}
