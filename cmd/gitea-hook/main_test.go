package main

import (
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
)

func TestCommand(t *testing.T) {
	env := func(m map[string]string) func(string) string { return func(k string) string { return m[k] } }
	got, err := command([]string{"/usr/libexec/gitea-hooks/update", "refs/heads/main", "a", "b"}, env(nil))
	want := "/bin/gitea hook --config=/var/lib/gitea/app.ini update refs/heads/main a b"
	if err != nil || strings.Join(got, " ") != want {
		t.Errorf("command = %q, %v; want %q", got, err, want)
	}
	got, _ = command([]string{"pre-receive"}, env(map[string]string{"GITEA_HOOK_GITEA": "/g", "GITEA_HOOK_CONFIG": "/c.ini"}))
	if strings.Join(got, " ") != "/g hook --config=/c.ini pre-receive" {
		t.Errorf("with overrides: %q", got)
	}
	if _, err := command([]string{"/bin/gitea-hook"}, env(nil)); err == nil || !strings.Contains(err.Error(), "under a hook's name") {
		t.Errorf("under its own name: %v", err)
	}
}

// TestAsGitHook: a real git push runs the program as a hook through
// core.hooksPath, and it execs the configured program with the hook's
// arguments, standard input and environment.
func TestAsGitHook(t *testing.T) {
	dir := t.TempDir()
	bin := filepath.Join(dir, "gitea-hook")
	if out, err := exec.Command("go", "build", "-o", bin, ".").CombinedOutput(); err != nil {
		t.Fatalf("go build: %v\n%s", err, out)
	}
	hooks := filepath.Join(dir, "hooks")
	os.MkdirAll(hooks, 0o755)
	for _, h := range []string{"pre-receive", "update", "post-receive"} {
		if err := os.Link(bin, filepath.Join(hooks, h)); err != nil {
			t.Fatal(err)
		}
	}
	// A stand-in for gitea that records how it was called.
	record := filepath.Join(dir, "calls")
	fake := filepath.Join(dir, "gitea")
	os.WriteFile(fake, []byte("#!/bin/sh\necho \"$* stdin=$(cat) repo=$GITEA_REPO_ID\" >> "+record+"\n"), 0o755)

	git := func(d string, args ...string) {
		t.Helper()
		cmd := exec.Command("git", args...)
		cmd.Dir = d
		cmd.Env = append(os.Environ(), "GITEA_HOOK_GITEA="+fake, "GITEA_REPO_ID=42",
			"GIT_AUTHOR_NAME=t", "GIT_AUTHOR_EMAIL=t@example.com", "GIT_COMMITTER_NAME=t", "GIT_COMMITTER_EMAIL=t@example.com")
		if out, err := cmd.CombinedOutput(); err != nil {
			t.Fatalf("git %v: %v\n%s", args, err, out)
		}
	}
	bare := filepath.Join(dir, "bare.git")
	git(dir, "init", "-q", "--bare", bare)
	git(bare, "config", "core.hooksPath", hooks)
	work := filepath.Join(dir, "work")
	git(dir, "init", "-q", work)
	git(work, "commit", "-q", "--allow-empty", "-m", "one")
	git(work, "push", "-q", bare, "HEAD:refs/heads/main")

	out, err := os.ReadFile(record)
	if err != nil {
		t.Fatal(err)
	}
	calls := string(out)
	for _, want := range []string{
		"hook --config=/var/lib/gitea/app.ini pre-receive stdin=0000000000000000000000000000000000000000 ",
		"hook --config=/var/lib/gitea/app.ini update refs/heads/main 0000000000000000000000000000000000000000 ",
		"hook --config=/var/lib/gitea/app.ini post-receive stdin=",
		"repo=42",
	} {
		if !strings.Contains(calls, want) {
			t.Errorf("calls lack %q:\n%s", want, calls)
		}
	}
}
