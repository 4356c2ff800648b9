package source

import (
	"context"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"

	"github.com/opencontainers/go-digest"

	"github.com/hashbang/stack/internal/cache"

	"github.com/hashbang/stack/internal/workspace"
)

// TestDebFetch fetches a real Debian package pinned in the committed
// sources.yaml with apt-get download, and checks that a wrong pin is refused
// without touching the cache.
func TestDebFetch(t *testing.T) {
	ws, s := committedSource(t, "ca-certificates", "apt-get")
	ctx := context.Background()
	res, err := NewFetcher(ws, nil).Fetch(ctx, []*Source{s})
	if err != nil {
		if strings.Contains(err.Error(), "was not found") || strings.Contains(err.Error(), "Unable to locate") {
			t.Skipf("apt does not know %s (run apt-get update): %v", s.Ref(), err)
		}
		t.Fatal(err)
	}
	if res[0].Status != Fetched {
		t.Errorf("status %q", res[0].Status)
	}
	if err := (&cache.Store{Dir: ws.Cache}).Verify(context.Background(), digest.Digest(s.Hash)); err != nil {
		t.Fatal(err)
	}

	wrong := *s
	wrong.Hash = "sha256:" + strings.Repeat("0", 64)
	empty, _ := workspace.New(ws.Root, t.TempDir())
	before := listFiles(t, empty.Cache)
	_, err = NewFetcher(empty, nil).Fetch(ctx, []*Source{&wrong})
	if err == nil || !strings.Contains(err.Error(), "does not match sources.yaml: expected "+wrong.Hash+", got "+s.Hash) {
		t.Fatalf("fetch with a wrong pin: %v", err)
	}
	if after := listFiles(t, empty.Cache); after != before {
		t.Errorf("a refused .deb changed the cache:\n%s", after)
	}

	// update finds the version apt would install.
	v, err := latestDeb(ctx, s)
	if err != nil {
		t.Fatal(err)
	}
	out, _ := exec.Command("apt-cache", "policy", s.Package).Output()
	if !strings.Contains(string(out), "Candidate: "+v) {
		t.Errorf("latestDeb = %s, apt-cache policy says:\n%s", v, out)
	}
}

// committedSource returns this repository's source name, from the committed
// sources.yaml, with a fresh cache; the test is skipped when client, the
// program that fetches that kind, is not installed.
func committedSource(t *testing.T, name, client string) (*workspace.Workspace, *Source) {
	t.Helper()
	if _, err := exec.LookPath(client); err != nil {
		t.Skipf("%s is not installed: it fetches the %s source", client, name)
	}
	root, _ := filepath.Abs(filepath.Join("..", ".."))
	ws, err := workspace.New(root, t.TempDir())
	if err != nil {
		t.Fatal(err)
	}
	cfg, err := Load(ws.Sources())
	if err != nil {
		t.Fatal(err)
	}
	s, err := cfg.Get(name)
	if err != nil {
		t.Fatal(err)
	}
	return ws, s
}
