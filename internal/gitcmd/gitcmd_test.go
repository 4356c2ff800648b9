package gitcmd

import (
	"context"
	"errors"
	"strings"
	"testing"
)

func TestRun(t *testing.T) {
	ctx := context.Background()
	dir := t.TempDir()
	if _, err := Run(ctx, dir, "init", "-q"); err != nil {
		t.Fatal(err)
	}
	out, err := Cmd{Dir: dir, Stdin: strings.NewReader("hello\n")}.Run(ctx, "hash-object", "--stdin")
	if err != nil || strings.TrimSpace(string(out)) != "ce013625030ba8dba906f756967f9e9ca394464a" {
		t.Fatalf("hash-object: %q %v", out, err)
	}
	_, err = Run(ctx, dir, "rev-parse", "--verify", "no-such-ref")
	var ge *Error
	if !errors.As(err, &ge) || ge.ExitCode() != 128 || !strings.HasPrefix(err.Error(), "git rev-parse: fatal:") {
		t.Fatalf("failing command: %v", err)
	}
}

// TestIsolatedGitDir runs git as CI does from a hook: on a named
// repository, with the hook's GIT_DIR left out.
func TestIsolatedGitDir(t *testing.T) {
	ctx := context.Background()
	repo, other := t.TempDir(), t.TempDir()
	for _, d := range []string{repo, other} {
		if _, err := Run(ctx, d, "init", "-q", "--bare"); err != nil {
			t.Fatal(err)
		}
	}
	if _, err := (Cmd{GitDir: repo}).Run(ctx, "config", "stack.test", "repo"); err != nil {
		t.Fatal(err)
	}
	t.Setenv("GIT_DIR", other) // as a hook of other would have it
	get := Cmd{Dir: t.TempDir(), Isolated: true, Env: []string{"GIT_CONFIG_NOSYSTEM=1"}}
	if env := strings.Join(get.Environ(), "\n"); strings.Contains(env, "GIT_DIR=") || !strings.Contains(env, "GIT_CONFIG_NOSYSTEM=1") {
		t.Errorf("isolated environment:\n%s", env)
	}
	get.GitDir = repo
	if out, err := get.Run(ctx, "config", "--get", "stack.test"); err != nil || strings.TrimSpace(string(out)) != "repo" {
		t.Errorf("isolated config --get: %q %v", out, err)
	}
	// Not isolated, GIT_DIR wins over the working directory.
	if _, err := (Cmd{Dir: repo}).Run(ctx, "config", "--get", "stack.test"); err == nil {
		t.Error("GIT_DIR of the environment was not used")
	}
	var stderr strings.Builder
	get.Stderr = &stderr
	_, err := get.Run(ctx, "rev-parse", "--verify", "no-such-ref")
	var ge *Error
	if !errors.As(err, &ge) || !strings.HasPrefix(err.Error(), "git rev-parse in "+repo+": fatal:") || !strings.Contains(stderr.String(), "fatal:") {
		t.Errorf("failing command: %v; stderr %q", err, stderr.String())
	}
}
