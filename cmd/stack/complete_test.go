package main

import (
	"os"
	"os/exec"
	"path/filepath"
	"slices"
	"strings"
	"testing"
)

// complete runs cobra's hidden __complete command, as the shell scripts of
// `stack completion` do, and returns the completions and the directive.
func complete(t *testing.T, args ...string) ([]string, string) {
	t.Helper()
	out, _, err := run(t, append([]string{"__complete"}, args...)...)
	if err != nil {
		t.Fatalf("__complete %q: %v", args, err)
	}
	lines := strings.Split(strings.TrimSuffix(out, "\n"), "\n")
	return lines[:len(lines)-1], lines[len(lines)-1]
}

func TestCompletion(t *testing.T) {
	repo := []string{"-C", repoRoot(t)}
	data := t.TempDir()
	ids := ciJobs(t, data)
	const noFiles, files = ":4", ":0"
	tests := []struct {
		name      string
		args      []string
		want      []string // exactly these, in this order (nil: none)
		directive string
	}{
		{"up: environments", append(repo, "up", ""), []string{"development", "next", "production", "staging"}, noFiles},
		{"deploy: by prefix", append(repo, "deploy", "prod"), []string{"production"}, noFiles},
		{"deploy takes one ENV", append(repo, "deploy", "staging", ""), nil, noFiles},
		{"overlays: the ones not given", append(repo, "overlays", "staging", ""), []string{"development", "next", "production"}, noFiles},
		{"infra apply", append(repo, "infra", "apply", "st"), []string{"staging"}, noFiles},
		{"doctor", append(repo, "doctor", "d"), []string{"development"}, noFiles},
		{"down", append(repo, "down", "n"), []string{"next"}, noFiles},
		{"build: images", append(repo, "build", ""), []string{"base", "coredns", "gitea", "health", "pause", "stack"}, noFiles},
		{"repro: the rest", append(repo, "repro", "health", "g"), []string{"gitea"}, noFiles},
		{"push", append(repo, "push", "pa"), []string{"pause"}, noFiles},
		{"audit: images and files", append(repo, "audit", "he"), []string{"health"}, files},
		{"sources fetch: names with kind and version", append(repo, "sources", "fetch", "kuber"), nil, noFiles},
		{"sources verify", append(repo, "sources", "verify", "zl"), nil, noFiles},
		{"sources update", append(repo, "sources", "update", "cni"), nil, noFiles},
		{"cache add", append(repo, "cache", "add", "run"), nil, noFiles},
		{"ci logs: job ids, newest first", []string{"ci", "--data", data, "logs", ""}, nil, noFiles},
		{"ci logs takes one JOB", []string{"ci", "--data", data, "logs", ids[0], ""}, nil, noFiles},
		{"repo trust: served repositories", []string{"repo", "--data", data, "trust", "de"}, []string{"demo"}, noFiles},
		{"outside a repository: nothing", []string{"-C", t.TempDir(), "deploy", ""}, nil, noFiles},
	}
	sourcesWant := map[string]string{
		"sources fetch: names with kind and version": "kubernetes\tgomod v",
		"sources verify": "zlib\tdebsrc ",
		"sources update": "cni-plugins\tdeb ",
		"cache add":      "runc\tdeb ",
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			got, directive := complete(t, tt.args...)
			if directive != tt.directive {
				t.Errorf("directive %s, want %s", directive, tt.directive)
			}
			switch prefix, ok := sourcesWant[tt.name]; {
			case ok:
				if len(got) != 1 || !strings.HasPrefix(got[0], prefix) {
					t.Errorf("got %q, want one %q…", got, prefix)
				}
			case tt.name == "ci logs: job ids, newest first":
				var names []string
				for _, g := range got {
					id, desc, _ := strings.Cut(g, "\t")
					names = append(names, id)
					if !strings.HasPrefix(desc, "test ") {
						t.Errorf("%q: want the pipeline and state as description", g)
					}
				}
				want := slices.Clone(ids)
				slices.Reverse(want)
				if !slices.Equal(names, want) {
					t.Errorf("got %q, want %q", names, want)
				}
			default:
				if !slices.Equal(got, tt.want) {
					t.Errorf("got %q, want %q", got, tt.want)
				}
			}
		})
	}
}

// ciJobs queues two jobs in data, from a bare repository holding one
// pipeline, and returns their ids, oldest first.
func ciJobs(t *testing.T, data string) []string {
	t.Helper()
	bare := filepath.Join(data, "git", "demo.git")
	work := t.TempDir()
	git := func(args ...string) {
		t.Helper()
		cmd := exec.Command("git", append([]string{"-c", "user.name=t", "-c", "user.email=t@t", "-c", "commit.gpgsign=false"}, args...)...)
		for _, kv := range os.Environ() {
			if !strings.HasPrefix(kv, "GIT_") {
				cmd.Env = append(cmd.Env, kv)
			}
		}
		if out, err := cmd.CombinedOutput(); err != nil {
			t.Fatalf("git %v: %v\n%s", args, err, out)
		}
	}
	git("init", "--quiet", "--bare", "--initial-branch=main", bare)
	git("init", "--quiet", "--initial-branch=main", work)
	os.MkdirAll(filepath.Join(work, "ci"), 0o755)
	os.WriteFile(filepath.Join(work, "ci", "pipelines.yaml"), []byte("pipelines:\n  test:\n    run: ci/test\n"), 0o644)
	os.WriteFile(filepath.Join(work, "ci", "test"), []byte("#!/bin/sh\necho ok\n"), 0o755)
	git("-C", work, "add", "-A")
	git("-C", work, "commit", "--quiet", "-m", "ci")
	git("-C", work, "push", "--quiet", bare, "HEAD:refs/heads/main")
	var ids []string
	for range 2 {
		out, errOut, err := run(t, "ci", "--data", data, "run", "test", "-o", "json")
		if err != nil {
			t.Fatalf("ci run: %v\n%s", err, errOut)
		}
		_, rest, _ := strings.Cut(out, `"id": "`)
		id, _, _ := strings.Cut(rest, `"`)
		ids = append(ids, id)
	}
	return ids
}
