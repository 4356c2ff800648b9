package build

import (
	"context"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/hashbang/stack/internal/source"
)

func TestRecipeErrors(t *testing.T) {
	ws, cfg := repoWorkspace(t)
	c := NewCache(ws, source.NewPreparer(ws, cfg, nil), nil)
	ctx := context.Background()
	tests := []struct {
		b    Binary
		want string
	}{
		{Binary{Source: "gitea", Package: "code.gitea.io/gitea", Recipe: "nope"}, `unknown recipe "nope": known recipes are git, gitea`},
		{Binary{Package: "./cmd/health", Recipe: "gitea"}, "needs the source it builds"},
	}
	for _, tc := range tests {
		if _, err := c.Binary(ctx, tc.b); err == nil || !strings.Contains(err.Error(), tc.want) {
			t.Errorf("%+v: %v, want %q", tc.b, err, tc.want)
		}
	}
}

// TestGiteaRecipe builds gitea from its locked module: web assets with the
// pinned Node.js and pnpm (the npm registry, once; pnpm's store is kept in
// the shared test cache), then a static cgo build against musl. Cold, it
// takes many minutes on 2 cores; cached, it is a lookup, which the test
// checks by taking the toolchain away.
func TestGiteaRecipe(t *testing.T) {
	if testing.Short() || os.Getenv("STACK_SLOW_TESTS") == "" {
		t.Skip("builds gitea: long (minutes, cold), and downloads its web dependencies once; set STACK_SLOW_TESTS=1")
	}
	if _, err := exec.LookPath("musl-gcc"); err != nil {
		t.Skip("musl-gcc is not installed (apt-get install musl-tools)")
	}
	ws, cfg := repoWorkspace(t)
	ctx, cancel := context.WithTimeout(context.Background(), 40*time.Minute)
	defer cancel()
	c := NewCache(ws, source.NewPreparer(ws, cfg, nil), nil)
	c.GoCache = filepath.Join(ws.Cache, "gocache")
	b := Binary{Source: "gitea", Package: "code.gitea.io/gitea", Recipe: "gitea"}
	start := time.Now()
	p, err := c.Binary(ctx, b)
	if err != nil {
		t.Fatal(err)
	}
	t.Logf("gitea built (or found) in %s: %s", time.Since(start).Round(time.Second), p)

	checkStatic(t, p)
	out, err := exec.Command(p, "--version").CombinedOutput()
	if err != nil || !strings.Contains(string(out), "1.26.0") || !strings.Contains(string(out), "sqlite") {
		t.Errorf("gitea --version: %s %v", out, err)
	}

	// Cached: found without the toolchain, the C compiler or the network.
	c2 := NewCache(ws, source.NewPreparer(ws, cfg, nil), nil)
	c2.GoCache = filepath.Join(t.TempDir(), "empty-gocache-proves-no-build")
	p2, err := c2.Binary(ctx, b)
	if err != nil || p2 != p {
		t.Fatalf("second build: %s %v, want the cached %s", p2, err, p)
	}
	if _, err := os.Stat(filepath.Join(filepath.Dir(p), "..", "..", "tmp")); err != nil {
		t.Log(err)
	}
}
