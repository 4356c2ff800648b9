package main

import (
	"encoding/json"
	"io"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"go.yaml.in/yaml/v3"
)

// sameMeaning fails unless a JSON and a YAML document hold the same data.
func sameMeaning(t *testing.T, j, y string) {
	t.Helper()
	var fromJSON, fromYAML any
	if err := json.Unmarshal([]byte(j), &fromJSON); err != nil {
		t.Fatalf("json: %v\n%s", err, j)
	}
	if err := yaml.Unmarshal([]byte(y), &fromYAML); err != nil {
		t.Fatalf("yaml: %v\n%s", err, y)
	}
	a, _ := json.Marshal(fromJSON)
	b, err := json.Marshal(fromYAML)
	if err != nil {
		t.Fatal(err)
	}
	if string(a) != string(b) {
		t.Errorf("yaml holds %s\njson holds %s", b, a)
	}
}

// TestOutputFormats: every command that prints -o json prints the same
// data with -o yaml; lists that are empty are [] in both, with exit 0.
func TestOutputFormats(t *testing.T) {
	data := t.TempDir() // a data directory without repositories or jobs
	empty := t.TempDir()
	os.MkdirAll(filepath.Join(empty, "config"), 0o755)
	os.WriteFile(filepath.Join(empty, "config", "sources.yaml"), []byte("sources: []\n"), 0o644)
	cache, _ := auditFixture(t)
	repo := []string{"-C", repoRoot(t), "--cache", t.TempDir()}
	tests := []struct {
		name  string
		args  []string
		empty bool
	}{
		{"sources list", append(repo, "sources", "list"), false},
		{"sources list of no sources", []string{"-C", empty, "sources", "list"}, true},
		{"sources verify of no sources", []string{"-C", empty, "sources", "verify"}, true},
		{"ci list without jobs", []string{"ci", "list", "--data", data}, true},
		{"ci list --state failed", []string{"ci", "list", "--data", data, "--state", "failed"}, true},
		{"repo list without repositories", []string{"repo", "list", "--data", data}, true},
		{"status", append(repo, "status"), false},
		{"audit", []string{"audit", filepath.Join(cache, "oci") + ":good"}, false},
		{"version", append(repo, "version"), false},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			j, _, err := run(t, append(tt.args, "-o", "json")...)
			if err != nil {
				t.Fatalf("-o json: %v", err)
			}
			y, _, err := run(t, append(tt.args, "-o", "yaml")...)
			if err != nil {
				t.Fatalf("-o yaml: %v", err)
			}
			if tt.empty && (j != "[]\n" || y != "[]\n") {
				t.Errorf("an empty list printed json %q, yaml %q; want []", j, y)
			}
			if !tt.empty && (j == "[]\n" || strings.HasPrefix(y, "{") || strings.HasPrefix(y, "[")) {
				t.Errorf("json %q, yaml %q", j, y)
			}
			sameMeaning(t, j, y)
		})
	}
}

// TestExitStatus: 0 ok, 1 error, 2 differences found, for build --check
// and the errors around it (policy verify: TestPolicyCommands; diff:
// TestDeployCommands).
func TestExitStatus(t *testing.T) {
	repo := t.TempDir()
	for name, content := range map[string]string{
		"config/sources.yaml":      "sources: []\n",
		"images/SOURCE_DATE_EPOCH": "1700000000\n",
		"images/one/image.yaml":    "files:\n  - path: /etc/motd\n    content: hi\nuser: 65532:65532\n",
	} {
		p := filepath.Join(repo, filepath.FromSlash(name))
		os.MkdirAll(filepath.Dir(p), 0o755)
		if err := os.WriteFile(p, []byte(content), 0o644); err != nil {
			t.Fatal(err)
		}
	}
	stack := func(args ...string) (int, string, error) {
		t.Helper()
		out, _, err := run(t, append([]string{"-C", repo, "--cache", filepath.Join(repo, ".cache")}, args...)...)
		return exit(io.Discard, err), out, err
	}
	if code, out, err := stack("build", "one"); code != 0 {
		t.Fatalf("build: %d %v\n%s", code, err, out)
	}
	lockFile := filepath.Join(repo, "images", "images.lock")
	lock, err := os.ReadFile(lockFile)
	if err != nil {
		t.Fatal(err)
	}
	if code, _, err := stack("build", "one", "--check"); code != 0 {
		t.Errorf("build --check of an unchanged image: exit %d, %v", code, err)
	}
	i := strings.Index(string(lock), "one sha256:") + len("one sha256:")
	other := string(lock[:i]) + strings.Repeat("0", 64) + string(lock[i+64:])
	os.WriteFile(lockFile, []byte(other), 0o644)
	if code, _, err := stack("build", "one", "--check"); code != 2 || !strings.Contains(err.Error(), "one: built sha256:") {
		t.Errorf("build --check of a changed digest: exit %d, %v; want 2", code, err)
	}
	for _, args := range [][]string{
		{"build", "nosuchimage", "--check"},
		{"build", "--no-such-flag"},
		{"sources", "list", "-o", "xml"},
	} {
		if code, _, err := stack(args...); code != 1 {
			t.Errorf("stack %v: exit %d, %v; want 1", args, code, err)
		}
	}
}
