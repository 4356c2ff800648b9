package build

import (
	"bytes"
	"context"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/hashbang/stack/internal/source"
)

// TestGitRecipe builds the static git from the Debian source packages of
// zlib and git (about 2 minutes cold on 2 cores, twice: the second build,
// in another directory, must be byte-identical), then uses it to push to
// and clone from a local bare repository.
func TestGitRecipe(t *testing.T) {
	if testing.Short() || os.Getenv("STACK_SLOW_TESTS") == "" {
		t.Skip("builds git twice with musl-gcc: about 4 minutes on 2 cores; set STACK_SLOW_TESTS=1")
	}
	if _, err := exec.LookPath("musl-gcc"); err != nil {
		t.Skip("musl-gcc is not installed (apt-get install musl-tools)")
	}
	ws, cfg := repoWorkspace(t)
	ctx, cancel := context.WithTimeout(context.Background(), 20*time.Minute)
	defer cancel()
	c := NewCache(ws, source.NewPreparer(ws, cfg, nil), nil)
	b := Binary{Source: "git", Package: "git", Recipe: "git"}
	start := time.Now()
	p, err := c.Binary(ctx, b)
	if err != nil {
		t.Fatal(err)
	}
	t.Logf("git built (or found) in %s: %s", time.Since(start).Round(time.Second), p)

	checkStatic(t, p)

	// Byte-identical when built again elsewhere.
	start = time.Now()
	again := filepath.Join(t.TempDir(), "git")
	if err := buildGit(ctx, c, b, "", again); err != nil {
		t.Fatal(err)
	}
	t.Logf("second build in %s", time.Since(start).Round(time.Second))
	one, _ := os.ReadFile(p)
	two, _ := os.ReadFile(again)
	if !bytes.Equal(one, two) {
		t.Errorf("two builds differ: %s and %s", p, again)
	}

	// The links an image places in git's exec path.
	bin := t.TempDir()
	for _, name := range []string{"git", "git-upload-pack", "git-receive-pack", "git-upload-archive"} {
		if err := os.Symlink(p, filepath.Join(bin, name)); err != nil {
			t.Fatal(err)
		}
	}
	dir := t.TempDir()
	git := func(wd string, args ...string) string {
		t.Helper()
		cmd := exec.CommandContext(ctx, filepath.Join(bin, "git"), args...)
		cmd.Dir = wd
		cmd.Env = []string{"PATH=" + bin + ":/usr/bin:/bin", "HOME=" + dir, "GIT_EXEC_PATH=" + bin,
			"GIT_CONFIG_NOSYSTEM=1", "GIT_AUTHOR_NAME=t", "GIT_AUTHOR_EMAIL=t@example.invalid",
			"GIT_COMMITTER_NAME=t", "GIT_COMMITTER_EMAIL=t@example.invalid", "GIT_CEILING_DIRECTORIES=" + dir}
		out, err := cmd.CombinedOutput()
		if err != nil {
			t.Fatalf("git %s: %v\n%s", strings.Join(args, " "), err, out)
		}
		return string(out)
	}
	if v := git(dir, "--version"); v != "git version 2.39.5\n" {
		t.Errorf("git --version = %q", v)
	}
	git(dir, "init", "-q", "--bare", "-b", "main", "remote.git")
	git(dir, "init", "-q", "-b", "main", "work")
	work := filepath.Join(dir, "work")
	if err := os.WriteFile(filepath.Join(work, "hello"), []byte("hello\n"), 0o644); err != nil {
		t.Fatal(err)
	}
	git(work, "add", "hello")
	git(work, "commit", "-q", "-m", "first")
	git(work, "push", "-q", filepath.Join(dir, "remote.git"), "main")
	git(dir, "clone", "-q", "--no-local", filepath.Join(dir, "remote.git"), "clone")
	if data, err := os.ReadFile(filepath.Join(dir, "clone", "hello")); err != nil || string(data) != "hello\n" {
		t.Errorf("cloned file: %q %v", data, err)
	}
	git(dir, "archive", "--remote="+filepath.Join(dir, "remote.git"), "-o", "a.tar", "main")
}
