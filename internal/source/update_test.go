package source

import (
	"context"
	"io/fs"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"
)

// bigModules are a module that replaces its sibling with a directory of
// its repository, and guards against another module with a directory that
// stands for no release (as etcd's server does), and the sibling.
func bigModules() []testModule {
	return []testModule{
		{"example.com/lib", "v1.0.0", map[string]string{
			"go.mod": "module example.com/lib\n\ngo 1.21\n",
			"lib.go": "package lib\n\nconst Name = \"lib\"\n",
		}},
		{"example.com/big", "v1.0.0", map[string]string{
			"go.mod": "module example.com/big\n\ngo 1.21\n\nrequire example.com/lib v1.0.0\n\n" +
				"replace example.com/lib => ../lib\n\n" +
				"// Bad imports are sometimes causing attempts to pull that code.\n" +
				"replace example.com/tests => ./FORBIDDEN_DEPENDENCY\n",
			"cmd/big/main.go": "package main\n\nimport \"example.com/lib\"\n\nfunc main() { println(lib.Name) }\n",
		}},
	}
}

const bigSources = `sources:
  - name: big
    kind: gomod
    module: example.com/big
    version: v1.0.0
    track: v1.
    replace-local: v1.0.0
    packages:
      - example.com/big/cmd/big
`

// tree is every file under root (but the cache) with its content and
// modification time.
func tree(t *testing.T, root string) map[string]string {
	t.Helper()
	out := map[string]string{}
	err := filepath.WalkDir(root, func(p string, d fs.DirEntry, err error) error {
		if err != nil || d.IsDir() {
			return err
		}
		data, err := os.ReadFile(p)
		if err != nil {
			return err
		}
		fi, err := d.Info()
		if err != nil {
			return err
		}
		out[p] = fi.ModTime().Format(time.RFC3339Nano) + "\n" + string(data)
		return nil
	})
	if err != nil {
		t.Fatal(err)
	}
	return out
}

// TestUpdateRelock: updating a source already at its newest release
// regenerates exactly the committed lock and leaves the tree as it was,
// files untouched; a stale lock is regenerated and reported as changed,
// never with "no changes".
func TestUpdateRelock(t *testing.T) {
	url, _ := testProxy(t, bigModules()...)
	useProxy(t, url)
	ws := newWorkspace(t, bigSources)
	ctx := context.Background()
	modPath, sumPath := LockFiles(ws.Locks(), "big")

	changes, err := NewUpdater(ws, nil).Update(ctx, nil, "")
	if err != nil {
		t.Fatal(err)
	}
	fields := []string{}
	for _, c := range changes {
		fields = append(fields, c.Field)
		if strings.HasPrefix(c.Field, "config/locks/") && (c.Old != "" || !strings.HasPrefix(c.New, "sha256:")) {
			t.Errorf("new lock file: %+v", c)
		}
	}
	if got := strings.Join(fields, " "); got != "hash config/locks/big.mod config/locks/big.sum" {
		t.Errorf("first update changed %q", got)
	}
	mod, err := os.ReadFile(modPath)
	if err != nil {
		t.Fatal(err)
	}
	if !strings.Contains(string(mod), "replace example.com/lib => example.com/lib v1.0.0\n") || strings.Contains(string(mod), "example.com/tests") {
		t.Errorf("lock:\n%s\nwant the sibling replaced by its release, and no replace of the guarded module", mod)
	}

	before := tree(t, ws.Root)
	for i := 0; i < 2; i++ {
		changes, err := NewUpdater(ws, nil).Update(ctx, []string{"big"}, "")
		if err != nil || len(changes) != 0 {
			t.Fatalf("update at the newest release: %+v, %v; want no changes", changes, err)
		}
		after := tree(t, ws.Root)
		for p, b := range before {
			if after[p] != b {
				t.Errorf("a no-op update changed %s:\n%s\nwas\n%s", p, after[p], b)
			}
		}
		if len(after) != len(before) {
			t.Errorf("a no-op update made files: %d, were %d", len(after), len(before))
		}
	}

	// A committed lock that misses a line the lock has (as etcd's did).
	stale := strings.Replace(string(mod), "replace example.com/lib => example.com/lib v1.0.0\n", "", 1)
	if err := os.WriteFile(modPath, []byte(stale), 0o644); err != nil {
		t.Fatal(err)
	}
	changes, err = NewUpdater(ws, nil).Update(ctx, []string{"big"}, "")
	if err != nil {
		t.Fatal(err)
	}
	if len(changes) != 1 || changes[0].Field != "config/locks/big.mod" || changes[0].Old == changes[0].New || changes[0].Old == "" {
		t.Errorf("relock of a stale lock: changes %+v, want the lock's .mod", changes)
	}
	if got, _ := os.ReadFile(modPath); string(got) != string(mod) {
		t.Errorf("relocked:\n%s\nwant\n%s", got, mod)
	}
	if _, err := os.Stat(sumPath); err != nil {
		t.Error(err)
	}
}
