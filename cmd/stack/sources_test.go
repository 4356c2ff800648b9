package main

import (
	"bytes"
	"encoding/json"
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"testing"
)

// run runs the stack command line in-process and returns what it printed.
func run(t *testing.T, args ...string) (string, string, error) {
	t.Helper()
	var out, errOut bytes.Buffer
	cmd := newRootCmd()
	cmd.SetArgs(args)
	cmd.SetOut(&out)
	cmd.SetErr(&errOut)
	err := cmd.Execute()
	return out.String(), errOut.String(), err
}

func repoRoot(t *testing.T) string {
	root, err := filepath.Abs(filepath.Join("..", ".."))
	if err != nil {
		t.Fatal(err)
	}
	return root
}

func TestSourcesVerifyCommittedTree(t *testing.T) {
	out, _, err := run(t, "-C", repoRoot(t), "--cache", t.TempDir(), "sources", "verify")
	if err != nil {
		t.Fatalf("verify of the committed tree: %v\n%s", err, out)
	}
	if !strings.HasPrefix(out, "ok: ") {
		t.Errorf("output %q", out)
	}
}

func TestSourcesListJSON(t *testing.T) {
	out, _, err := run(t, "-C", repoRoot(t), "--cache", t.TempDir(), "sources", "list", "-o", "json")
	if err != nil {
		t.Fatal(err)
	}
	var rows []struct {
		Name, Kind, Version, Hash, Ref string
		Cached                         bool
	}
	if err := json.Unmarshal([]byte(out), &rows); err != nil {
		t.Fatalf("%v\n%s", err, out)
	}
	if len(rows) < 9 || rows[0].Name == "" || rows[0].Hash == "" || rows[0].Cached {
		t.Errorf("rows %+v", rows)
	}
}

// TestSourcesBadInput: a damaged sources.yaml or lock is named with its
// line, nothing is fetched, and the command fails.
func TestSourcesBadInput(t *testing.T) {
	committed, err := os.ReadFile(filepath.Join(repoRoot(t), "config", "sources.yaml"))
	if err != nil {
		t.Fatal(err)
	}
	tests := []struct {
		name, from, to, want, fetch string
	}{
		{"hash one character off", "h1:qDQdoMiluAE2", "h1:qDQdoMiluAE3", "kubernetes: lock of kubernetes: kubernetes.sum pins k8s.io/kubernetes@v1.36.3 to h1:qDQdoMiluAE2", "kubernetes"},
		{"branch", "version: v3.6.16", "version: main", fmt.Sprintf("config/sources.yaml:%d: source \"etcd\": version \"main\" names a moving target", lineOf(committed, "version: v3.6.16")), "runc"},
		{"unknown kind", "kind: deb\n    package: runc", "kind: rpm\n    package: runc", "unknown kind \"rpm\"", "runc"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			root := t.TempDir()
			os.MkdirAll(filepath.Join(root, "config", "locks"), 0o755)
			changed := strings.Replace(string(committed), tt.from, tt.to, 1)
			if changed == string(committed) {
				t.Fatalf("%q is not in sources.yaml", tt.from)
			}
			os.WriteFile(filepath.Join(root, "config", "sources.yaml"), []byte(changed), 0o644)
			locks, _ := filepath.Glob(filepath.Join(repoRoot(t), "config", "locks", "*"))
			for _, l := range locks {
				b, _ := os.ReadFile(l)
				os.WriteFile(filepath.Join(root, "config", "locks", filepath.Base(l)), b, 0o644)
			}
			cache := filepath.Join(t.TempDir(), "cache")
			out, _, err := run(t, "-C", root, "--cache", cache, "sources", "verify")
			if err == nil || !strings.Contains(out+err.Error(), tt.want) {
				t.Fatalf("verify: %v\n%s\nwant %q", err, out, tt.want)
			}
			if _, _, err := run(t, "-C", root, "--cache", cache, "sources", "fetch", tt.fetch); err == nil {
				t.Error("fetch succeeded with a broken sources.yaml")
			}
			if _, err := os.Stat(filepath.Join(cache, "blobs")); !os.IsNotExist(err) || fileCount(t, cache) != 0 {
				t.Error("something was fetched")
			}
		})
	}
}

func fileCount(t *testing.T, dir string) int {
	n := 0
	filepath.Walk(dir, func(_ string, fi os.FileInfo, err error) error {
		if err == nil && !fi.IsDir() {
			n++
		}
		return nil
	})
	return n
}

// lineOf is the 1-based line of the first occurrence of s in data.
func lineOf(data []byte, s string) int {
	return bytes.Count(data[:bytes.Index(data, []byte(s))], []byte("\n")) + 1
}

func TestShortHash(t *testing.T) {
	tests := []struct{ in, want string }{
		{"sha256:a00351f8c0318de0b424ecf5cd0fdb69880a89f3511cae4f6fff7de3e57881c5", "sha256:a00351f8c031…"},
		{"h1:qDQdoMiluAE2Eab6Fa52YV+WjiGz9mZFFoagEA6cI+o=", "h1:qDQdoMiluAE2…"},
		{"sha512-qHnz5tFsHoj/WM+uRENVjWONi5hVvmwrgq8A4V76KpuVNAc4+jwK8x4gwbobE9BtHNg/AKR2583eYorLF/c7ng==", "sha512-qHnz5tFsHoj/…"},
		{"sha256:00", "sha256:00"},
		{"", "-"},
	}
	for _, tt := range tests {
		if got := shortHash(tt.in); got != tt.want {
			t.Errorf("shortHash(%q) = %q, want %q", tt.in, got, tt.want)
		}
	}
}

// TestSourcesListText: every hash of the committed sources, npm's
// integrity included, is shortened the same way, so the table stays narrow.
func TestSourcesListText(t *testing.T) {
	out, _, err := run(t, "-C", repoRoot(t), "--cache", t.TempDir(), "sources", "list")
	if err != nil {
		t.Fatal(err)
	}
	lines := strings.Split(strings.TrimSuffix(out, "\n"), "\n")
	npm := 0
	for _, l := range lines[1:] {
		if n := len([]rune(l)); n > 100 {
			t.Errorf("%d columns: %s", n, l)
		}
		f := strings.Fields(l)
		if len(f) != 5 || !strings.HasSuffix(f[3], "…") || strings.HasSuffix(f[3], ":") || strings.Contains(f[3], "…:") {
			t.Errorf("row %q: want NAME KIND VERSION HASH… CACHED", l)
		}
		if f[1] == "npm" {
			npm++
			if !strings.HasPrefix(f[3], "sha512-") || len([]rune(f[3])) != len("sha512-")+13 {
				t.Errorf("npm hash %q", f[3])
			}
		}
	}
	if npm == 0 {
		t.Errorf("no npm source listed:\n%s", out)
	}
}
