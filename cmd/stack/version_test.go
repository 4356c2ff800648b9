package main

import (
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"

	"github.com/hashbang/stack/internal/version"
)

// gitEnv is the environment for git and go commands of tests: no
// GIT_DIR or GIT_INDEX_FILE of a surrounding git, no user configuration.
func gitEnv() []string {
	var env []string
	for _, kv := range os.Environ() {
		if !strings.HasPrefix(kv, "GIT_") {
			env = append(env, kv)
		}
	}
	return append(env, "GIT_CONFIG_GLOBAL=/dev/null", "GIT_CONFIG_NOSYSTEM=1",
		"GIT_AUTHOR_NAME=T", "GIT_AUTHOR_EMAIL=t@example.org", "GIT_COMMITTER_NAME=T", "GIT_COMMITTER_EMAIL=t@example.org")
}

func sh(t *testing.T, dir, name string, args ...string) string {
	t.Helper()
	cmd := exec.Command(name, args...)
	cmd.Dir, cmd.Env = dir, gitEnv()
	out, err := cmd.CombinedOutput()
	if err != nil {
		t.Fatalf("%s %v: %v\n%s", name, args, err, out)
	}
	return strings.TrimSpace(string(out))
}

// TestVersionOfBuiltBinary builds stack with `go build` in a git checkout
// of this work tree (its files as they are now, committed): the binary
// names that commit as clean; after a change to a tracked file, a new
// build says dirty. Outside a repository it prints no pins.
func TestVersionOfBuiltBinary(t *testing.T) {
	if testing.Short() {
		t.Skip("builds the stack program twice")
	}
	checkout := t.TempDir()
	files := sh(t, repoRoot(t), "git", "ls-files", "--cached", "--others", "--exclude-standard", "-z")
	for _, f := range strings.Split(strings.TrimRight(files, "\x00"), "\x00") {
		data, err := os.ReadFile(filepath.Join(repoRoot(t), f))
		if os.IsNotExist(err) {
			continue // deleted in the work tree
		}
		if err != nil {
			t.Fatal(err)
		}
		p := filepath.Join(checkout, f)
		os.MkdirAll(filepath.Dir(p), 0o755)
		if err := os.WriteFile(p, data, 0o644); err != nil {
			t.Fatal(err)
		}
	}
	sh(t, checkout, "git", "init", "-q", "-b", "main")
	sh(t, checkout, "git", "add", "-A")
	sh(t, checkout, "git", "commit", "-q", "--no-gpg-sign", "-m", "snapshot")
	head := sh(t, checkout, "git", "rev-parse", "HEAD")

	build := func() string {
		t.Helper()
		bin := filepath.Join(t.TempDir(), "stack")
		// -buildvcs=true: a GOFLAGS=-buildvcs=false of the machine's go env
		// must not hide what this test is about.
		sh(t, checkout, "go", "build", "-buildvcs=true", "-o", bin, "./cmd/stack")
		return bin
	}
	stack := func(bin, dir string, args ...string) string {
		t.Helper()
		cmd := exec.Command(bin, args...)
		cmd.Dir = dir
		out, err := cmd.Output()
		if err != nil {
			t.Fatalf("stack %v: %v\n%s", args, err, out)
		}
		return string(out)
	}
	info := func(bin, dir string, args ...string) version.Info {
		t.Helper()
		var i version.Info
		out := stack(bin, dir, append(args, "-o", "json")...)
		if err := json.Unmarshal([]byte(out), &i); err != nil {
			t.Fatalf("%v\n%s", err, out)
		}
		return i
	}
	sum := func(f string) string {
		data, err := os.ReadFile(filepath.Join(checkout, f))
		if err != nil {
			t.Fatal(err)
		}
		h := sha256.Sum256(data)
		return "sha256:" + hex.EncodeToString(h[:])
	}

	clean := build()
	i := info(clean, checkout, "version")
	if i.Commit != head || i.Dirty == nil || *i.Dirty || i.CommitTime == "" || strings.HasSuffix(i.Version, "+dirty") ||
		i.Module != "github.com/hashbang/stack" || !strings.HasPrefix(i.Go, "go1.") {
		t.Errorf("clean build: %+v, want commit %s, not dirty", i, head)
	}
	want := []version.File{{Path: "config/sources.yaml", SHA256: sum("config/sources.yaml")}, {Path: "images/images.lock", SHA256: sum("images/images.lock")}}
	if i.Repository == nil || i.Repository.Root != checkout || len(i.Repository.Files) != 2 || i.Repository.Files[0] != want[0] || i.Repository.Files[1] != want[1] {
		t.Errorf("repository %+v, want %s with %+v", i.Repository, checkout, want)
	}
	text := stack(clean, filepath.Join(checkout, "internal"), "version")
	if text != stack(clean, checkout, "--version") {
		t.Errorf("stack --version differs from stack version:\n%s", text)
	}
	for _, w := range []string{"commit               " + head + " (clean)\n", "config/sources.yaml  " + want[0].SHA256 + "\n"} {
		if !strings.Contains(text, w) {
			t.Errorf("text lacks %q:\n%s", w, text)
		}
	}
	if i := info(clean, t.TempDir(), "version"); i.Repository != nil || i.Commit != head {
		t.Errorf("outside a repository: %+v", i)
	}

	readme := filepath.Join(checkout, "README.md")
	data, _ := os.ReadFile(readme)
	os.WriteFile(readme, append(data, "changed\n"...), 0o644)
	dirty := build()
	if i := info(dirty, checkout, "--version"); i.Commit != head || i.Dirty == nil || !*i.Dirty || !strings.HasSuffix(i.Version, "+dirty") {
		t.Errorf("dirty build: %+v, want commit %s, dirty", i, head)
	}
	if text := stack(dirty, checkout, "version"); !strings.Contains(text, head+" (dirty: built with uncommitted changes)") {
		t.Errorf("dirty build's text:\n%s", text)
	}
}

// TestVersionCommand runs stack version in-process: a test binary carries
// no commit, and says so; the pins are those of the repository named.
func TestVersionCommand(t *testing.T) {
	out, _, err := run(t, "-C", repoRoot(t), "version", "-o", "yaml")
	if err != nil {
		t.Fatal(err)
	}
	for _, w := range []string{"commit: unknown\n", "dirty: null\n", "  root: " + repoRoot(t) + "\n", "    - path: config/sources.yaml\n      sha256: sha256:"} {
		if !strings.Contains(out, w) {
			t.Errorf("yaml lacks %q:\n%s", w, out)
		}
	}
	out, _, err = run(t, "-C", t.TempDir(), "version")
	if err != nil || !strings.Contains(out, "commit  unknown (no commit in the build information") || strings.Contains(out, "repository") {
		t.Errorf("outside a repository: %v\n%s", err, out)
	}
	if _, _, err := run(t, "version", "-o", "xml"); err == nil || !strings.Contains(err.Error(), "use text, json or yaml") {
		t.Errorf("-o xml: %v", err)
	}
}
