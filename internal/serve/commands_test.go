package serve

import (
	"context"
	"net"
	"os/exec"
	"path/filepath"
	"strings"
	"sync/atomic"
	"testing"
	"time"

	"github.com/hashbang/stack/internal/ci"
	"github.com/hashbang/stack/internal/deploy"
)

// sshRun runs `ssh git@HOST words...` against the daemon with key and
// returns the output and exit status.
func (d *daemon) sshRun(key string, words ...string) (string, int) {
	d.t.Helper()
	host, port, _ := net.SplitHostPort(d.sshAddr)
	args := []string{"-F", "/dev/null", "-i", filepath.Join(d.keys, key),
		"-o", "IdentitiesOnly=yes", "-o", "IdentityAgent=none", "-o", "BatchMode=yes",
		"-o", "UserKnownHostsFile=" + filepath.Join(d.dir, "known_hosts"), "-o", "StrictHostKeyChecking=yes",
		"-p", port, "git@" + host}
	out, err := d.run(key, d.dir, "ssh", append(args, words...)...)
	if ee, ok := err.(*exec.ExitError); ok {
		return out, ee.ExitCode()
	} else if err != nil {
		d.t.Fatal(err)
	}
	return out, 0
}

// TestServeCommands: over SSH, a key lists the repositories and CI jobs it
// may read and reads their logs; another repository's job is as if it did
// not exist; a bad command line gets its usage.
func TestServeCommands(t *testing.T) {
	d := newDaemon(t)
	writeFile(t, filepath.Join(d.repo, "config", "git.yaml"), "repos:\n  \"*\":\n    read: [\"@developers\", \"@admins\"]\n    write: [\"@admins\"]\n  secret:\n    read: [\"@admins\"]\n    write: [\"@admins\"]\n")
	work := ciRepo(t, d, "pipelines:\n  test:\n    run: ci/test\n    on:\n      push: [\"refs/heads/*\"]\n",
		map[string]string{"test": "echo \"hello from $STACK_CI_REPO\"\n"})
	d.createRepo("secret")
	d.start()
	d.git(work, "push", "-q", "origin", "HEAD:refs/heads/main")
	d.git(work, "push", "-q", d.url("secret"), "HEAD:refs/heads/main")
	jobs := d.waitJobs("both jobs to end", 60*time.Second, func(jobs []*ci.Job) bool {
		return len(jobs) == 2 && jobs[0].State.Final() && jobs[1].State.Final()
	})
	ids := map[string]string{}
	for _, j := range jobs {
		ids[j.Repo] = j.ID
	}

	out, code := d.sshRun("dev", "repo", "list")
	if code != 0 || !strings.Contains(out, "stack ") || strings.Contains(out, "secret") {
		t.Errorf("dev's repo list (exit %d):\n%s", code, out)
	}
	out, code = d.sshRun("dev", "ci", "list")
	if code != 0 || !strings.Contains(out, ids["stack"]) || strings.Contains(out, ids["secret"]) || !strings.Contains(out, "succeeded") {
		t.Errorf("dev's ci list (exit %d):\n%s", code, out)
	}
	if out, code = d.sshRun("admin", "ci", "list", "-n", "5"); code != 0 || !strings.Contains(out, ids["secret"]) {
		t.Errorf("admin's ci list (exit %d):\n%s", code, out)
	}
	if out, code = d.sshRun("dev", "ci", "logs", ids["stack"]); code != 0 || !strings.Contains(out, "hello from stack") {
		t.Errorf("dev's ci logs of a stack job (exit %d):\n%s", code, out)
	}
	if out, code = d.sshRun("dev", "ci", "logs", "-f", ids["secret"]); code != 1 || !strings.Contains(out, "no job "+ids["secret"]+" that you may read") || strings.Contains(out, "hello") {
		t.Errorf("dev's ci logs of a secret job (exit %d):\n%s", code, out)
	}
	if out, code = d.sshRun("dev", "ci", "remove", "all"); code != 2 || !strings.Contains(out, "usage: ci list") {
		t.Errorf("bad ci command (exit %d):\n%s", code, out)
	}
	if out, code = d.sshRun("stranger", "repo", "list"); code == 0 {
		t.Errorf("a stranger's key got in:\n%s", out)
	}

	// status ENV: from the environment's state repo.
	writeFile(t, filepath.Join(d.repo, "infra", "dev", "environment.yaml"), "backend: kubeconfig\ncluster: dev\nregistry: r:5000\nkubeconfig: k\n")
	d.createRepo("state/dev")
	state, err := deploy.OpenState(filepath.Join(d.data, "git", "state", "dev.git"))
	if err != nil {
		t.Fatal(err)
	}
	commit := strings.Repeat("c", 40)
	if _, err := state.Write(context.Background(), "", &deploy.Commit{
		Record:  &deploy.Record{Environment: "dev", Cluster: "dev", Commit: commit, Images: map[string]string{"health": "sha256:" + strings.Repeat("1", 64)}},
		Subject: "deploy dev", Status: deploy.StatusDeployed, By: deploy.Person{Name: "Ada", Email: "ada@example.org"},
	}); err != nil {
		t.Fatal(err)
	}
	out, code = d.sshRun("dev", "status", "dev")
	for _, want := range []string{"environment dev (cluster dev)", "deployed:  " + commit, "by:        Ada <ada@example.org>", "image:     health sha256:111", "deployed 20"} {
		if code != 0 || !strings.Contains(out, want) {
			t.Errorf("status dev (exit %d) does not say %q:\n%s", code, want, out)
		}
	}
	if out, code = d.sshRun("dev", "status", "nope"); code != 1 || !strings.Contains(out, `no environment "nope"`) {
		t.Errorf("status of an unknown environment (exit %d):\n%s", code, out)
	}
}

// TestDriftTimer: the daemon runs its drift check on its timer, in
// process, until it stops.
func TestDriftTimer(t *testing.T) {
	d := newDaemon(t)
	var calls atomic.Int32
	srv, err := New(Config{
		DataDir: d.data, ConfigDir: filepath.Join(d.repo, "config"),
		RegistryAddr: d.regAddr, SSHAddr: d.sshAddr, WebAddr: "off",
		Drift:      func(context.Context) error { calls.Add(1); return nil },
		DriftEvery: 50 * time.Millisecond,
	})
	if err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithTimeout(context.Background(), 2*time.Second)
	defer cancel()
	if err := srv.Run(ctx); err != nil {
		t.Fatal(err)
	}
	if n := calls.Load(); n < 5 {
		t.Errorf("the drift check ran %d times in 2s at a 50ms interval", n)
	}
}
