package main

import (
	"bytes"
	"encoding/json"
	"io"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
)

func TestParseRange(t *testing.T) {
	tests := []struct{ in, from, to, err string }{
		{"HEAD", "", "HEAD", ""},
		{"a..b", "a", "b", ""},
		{"a...b", "", "", "not A...B"},
		{"..b", "", "", "both ends"},
		{"a..", "", "", "both ends"},
	}
	for _, tt := range tests {
		from, to, err := parseRange(tt.in)
		if from != tt.from || to != tt.to || (err == nil) != (tt.err == "") || err != nil && !strings.Contains(err.Error(), tt.err) {
			t.Errorf("parseRange(%q) = %q, %q, %v", tt.in, from, to, err)
		}
	}
}

// TestPolicyCommands runs stack policy verify and approve on a repository
// signed with ssh-keygen keys through git itself. It has config/ but no
// config/sources.yaml: the policy commands need only git.
func TestPolicyCommands(t *testing.T) {
	dir := t.TempDir()
	repo := filepath.Join(dir, "repo")
	env := append(os.Environ(), "GIT_CONFIG_GLOBAL=/dev/null", "GIT_CONFIG_NOSYSTEM=1",
		"GIT_AUTHOR_NAME=T", "GIT_AUTHOR_EMAIL=t@example.org", "GIT_COMMITTER_NAME=T", "GIT_COMMITTER_EMAIL=t@example.org")
	sh := func(d string, name string, args ...string) string {
		t.Helper()
		cmd := exec.Command(name, args...)
		cmd.Dir, cmd.Env = d, env
		out, err := cmd.CombinedOutput()
		if err != nil {
			t.Fatalf("%s %v: %v\n%s", name, args, err, out)
		}
		return strings.TrimSpace(string(out))
	}
	for _, k := range []string{"alice", "bob"} {
		sh(dir, "ssh-keygen", "-q", "-t", "ed25519", "-N", "", "-C", k, "-f", filepath.Join(dir, k))
	}
	pub := func(k string) string {
		b, err := os.ReadFile(filepath.Join(dir, k+".pub"))
		if err != nil {
			t.Fatal(err)
		}
		return k + " " + string(b)
	}
	sh(dir, "git", "init", "-q", "-b", "main", repo)
	write := func(p, s string) {
		os.MkdirAll(filepath.Dir(filepath.Join(repo, p)), 0o755)
		if err := os.WriteFile(filepath.Join(repo, p), []byte(s), 0o644); err != nil {
			t.Fatal(err)
		}
	}
	write("config/admins", pub("alice")+pub("bob"))
	write("config/policy.yaml", "environments:\n  staging:\n    quorum: 2\n")
	sh(repo, "git", "config", "gpg.format", "ssh")
	sh(repo, "git", "config", "user.signingKey", filepath.Join(dir, "alice"))
	sh(repo, "git", "add", "-A")
	sh(repo, "git", "commit", "-q", "-S", "-m", "introduce admins")
	root := sh(repo, "git", "rev-parse", "HEAD")
	write("f", "1")
	sh(repo, "git", "add", "f")
	sh(repo, "git", "commit", "-q", "-S", "-m", "change")
	sh(repo, "git", "config", "stack.policy.root", root)

	stack := func(args ...string) (string, error) {
		t.Helper()
		cmd := newRootCmd()
		var out, errOut bytes.Buffer
		cmd.SetOut(&out)
		cmd.SetErr(&errOut)
		cmd.SetArgs(append([]string{"-C", repo}, args...))
		err := cmd.Execute()
		return out.String(), err
	}
	out, err := stack("policy", "verify", "--env", "staging")
	if err == nil || !strings.Contains(err.Error(), "1 of 2 commits fail the staging policy") || !strings.Contains(out, "needs 2 distinct signers, has 1") {
		t.Fatalf("before approval: %v\n%s", err, out)
	}
	if code := exit(io.Discard, err); code != 2 {
		t.Errorf("a failing commit: exit status %d, want 2", code)
	}
	// From a directory inside the repository, as git would.
	os.MkdirAll(filepath.Join(repo, "config", "sub"), 0o755)
	if _, err := stack("-C", filepath.Join(repo, "config", "sub"), "policy", "verify", "--env", "staging"); exit(io.Discard, err) != 2 {
		t.Errorf("from a subdirectory: %v", err)
	}
	out, err = stack("policy", "verify")
	if err == nil || !strings.Contains(out, "software key") {
		t.Fatalf("production: %v\n%s", err, out)
	}
	if out, err := stack("policy", "approve", "HEAD", "--env", "staging", "--key", filepath.Join(dir, "bob")); err != nil {
		t.Fatalf("approve: %v\n%s", err, out)
	}
	out, err = stack("policy", "verify", "--env", "staging", "-o", "json", "--root", root)
	if err != nil {
		t.Fatalf("after approval: %v\n%s", err, out)
	}
	var rep struct {
		Verdicts []struct {
			OK        bool     `json:"ok"`
			Approvers []string `json:"approvers"`
		} `json:"verdicts"`
	}
	if err := json.Unmarshal([]byte(out), &rep); err != nil {
		t.Fatal(err)
	}
	if len(rep.Verdicts) != 2 || !rep.Verdicts[1].OK || strings.Join(rep.Verdicts[1].Approvers, ",") != "bob" {
		t.Errorf("json report: %s", out)
	}
	if _, err := stack("policy", "approve", "HEAD", "--env", "staging"); err == nil || !strings.Contains(err.Error(), "--key") {
		t.Errorf("approve without key: %v", err)
	}
	if _, err := stack("policy", "verify", "--root", "nope"); err == nil || !strings.Contains(err.Error(), `no commit "nope"`) || exit(io.Discard, err) != 1 {
		t.Errorf("bad root: %v, want exit status 1", err)
	}
	if _, err := stack("-C", t.TempDir(), "policy", "verify"); err == nil || !strings.Contains(err.Error(), "not a git repository") || exit(io.Discard, err) != 1 {
		t.Errorf("outside a git repository: %v", err)
	}
}
