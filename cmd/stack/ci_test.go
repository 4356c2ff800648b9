package main

import (
	"context"
	"encoding/json"
	"io"
	"log/slog"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/hashbang/stack/internal/ci"
)

// TestCICommands drives stack ci run, list and logs against a data
// directory with a real bare repository and a real runner.
func TestCICommands(t *testing.T) {
	data := t.TempDir()
	bare := filepath.Join(data, "git", "demo.git")
	work := t.TempDir()
	git := func(args ...string) string {
		t.Helper()
		cmd := exec.Command("git", append([]string{"-c", "user.name=t", "-c", "user.email=t@t", "-c", "commit.gpgsign=false"}, args...)...)
		for _, kv := range os.Environ() { // not the GIT_DIR or GIT_INDEX_FILE of a surrounding git
			if !strings.HasPrefix(kv, "GIT_") {
				cmd.Env = append(cmd.Env, kv)
			}
		}
		out, err := cmd.CombinedOutput()
		if err != nil {
			t.Fatalf("git %v: %v\n%s", args, err, out)
		}
		return strings.TrimSpace(string(out))
	}
	git("init", "--quiet", "--bare", "--initial-branch=main", bare)
	git("init", "--quiet", "--initial-branch=main", work)
	if err := os.MkdirAll(filepath.Join(work, "ci"), 0o755); err != nil {
		t.Fatal(err)
	}
	os.WriteFile(filepath.Join(work, "ci", "pipelines.yaml"), []byte("pipelines:\n  test:\n    run: ci/test\n"), 0o644)
	os.WriteFile(filepath.Join(work, "ci", "test"), []byte("#!/bin/sh\necho \"testing $STACK_CI_COMMIT\"\n"), 0o755)
	git("-C", work, "add", "-A")
	git("-C", work, "commit", "--quiet", "-m", "ci")
	git("-C", work, "push", "--quiet", bare, "HEAD:refs/heads/main")
	commit := git("-C", work, "rev-parse", "HEAD")

	out, errOut, err := run(t, "ci", "--data", data, "run", "test", "-o", "json")
	if err != nil {
		t.Fatalf("ci run: %v\n%s", err, errOut)
	}
	var queued ci.Job
	if err := json.Unmarshal([]byte(out), &queued); err != nil {
		t.Fatalf("%v\n%s", err, out)
	}
	if queued.State != ci.Queued || queued.Commit != commit || queued.Ref != "refs/heads/main" || queued.Trigger != ci.Manual || queued.Repo != "demo" {
		t.Errorf("queued %+v", queued)
	}
	if !strings.Contains(errOut, "no runner is alive") {
		t.Errorf("no hint that nothing runs the job: %q", errOut)
	}

	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan error, 1)
	go func() {
		r := &ci.Runner{DataDir: data, Poll: 20 * time.Millisecond, Logger: slog.New(slog.NewTextHandler(io.Discard, nil))}
		done <- r.Run(ctx)
	}()
	defer func() {
		cancel()
		if err := <-done; err != nil {
			t.Errorf("runner: %v", err)
		}
	}()

	out, _, err = run(t, "ci", "--data", data, "logs", "-f", "1")
	if err != nil {
		t.Fatalf("ci logs -f: %v", err)
	}
	if !strings.Contains(out, "testing "+commit+"\n") || !strings.Contains(out, "==> succeeded") {
		t.Errorf("logs -f printed:\n%s", out)
	}

	out, _, err = run(t, "ci", "--data", data, "list")
	if err != nil {
		t.Fatal(err)
	}
	lines := strings.Split(strings.TrimSpace(out), "\n")
	if len(lines) != 2 || !strings.HasPrefix(lines[0], "ID") {
		t.Fatalf("list:\n%s", out)
	}
	for _, want := range []string{queued.ID, "test", "demo", "main", commit[:12], "succeeded"} {
		if !strings.Contains(lines[1], want) {
			t.Errorf("list row %q lacks %q", lines[1], want)
		}
	}

	for _, tc := range []struct {
		args []string
		want string
	}{
		{[]string{"run", "nope"}, `no pipeline "nope"`},
		{[]string{"run", "test", "nobranch"}, `"nobranch" is not a branch or tag`},
		{[]string{"run", "test", "--repo-name", "other"}, `no repository "other"`},
		{[]string{"logs", "../x"}, "is not a job id"},
		{[]string{"logs", "7"}, "no job number 7"},
		{[]string{"list", "--state", "done"}, `unknown state "done"`},
	} {
		_, _, err := run(t, append([]string{"ci", "--data", data}, tc.args...)...)
		if err == nil || !strings.Contains(err.Error(), tc.want) {
			t.Errorf("ci %v: %v, want an error with %q", tc.args, err, tc.want)
		}
	}
}
