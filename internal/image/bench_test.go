package image

import (
	"context"
	"os"
	"path/filepath"
	"testing"

	"github.com/hashbang/stack/internal/build"
	"github.com/hashbang/stack/internal/workspace"
)

// benchWorkspace is a copy of this repository with a fresh cache that
// shares only the verified downloads of the shared test cache.
func benchWorkspace(b *testing.B) *workspace.Workspace {
	b.Helper()
	shared := os.Getenv("STACK_TEST_CACHE")
	if shared == "" {
		shared = filepath.Join(os.TempDir(), "stack-test-cache")
	}
	root, _ := filepath.Abs(filepath.Join("..", ".."))
	dst := filepath.Join(b.TempDir(), "repo")
	if err := copyTree(root, dst, shared); err != nil {
		b.Fatal(err)
	}
	cache := filepath.Join(b.TempDir(), "cache")
	os.MkdirAll(cache, 0o755)
	for _, s := range []string{"gomod", "blobs"} {
		os.MkdirAll(filepath.Join(shared, s), 0o755)
		os.Symlink(filepath.Join(shared, s), filepath.Join(cache, s))
	}
	ws, err := workspace.New(dst, cache)
	if err != nil {
		b.Fatal(err)
	}
	return ws
}

func buildHealth(b *testing.B, ws *workspace.Workspace, gocache string) *Result {
	bins, err := build.ForWorkspace(ws, nil)
	if err != nil {
		b.Fatal(err)
	}
	bins.GoCache = gocache
	res, err := NewBuilder(ws, bins, nil).Build(context.Background(), []string{"health"})
	if err != nil {
		b.Fatal(err)
	}
	return &res[0]
}

// BenchmarkBuildHealth reports the time of stack build health with cold
// caches (no binary, no image, an empty Go build cache: the standard
// library is compiled too) and warm (everything cached), and the image's
// compressed size.
func BenchmarkBuildHealth(b *testing.B) {
	b.Run("cold", func(b *testing.B) {
		var r *Result
		for b.Loop() {
			b.StopTimer()
			ws := benchWorkspace(b)
			gocache := filepath.Join(b.TempDir(), "gocache")
			b.StartTimer()
			r = buildHealth(b, ws, gocache)
		}
		b.ReportMetric(float64(r.Size)/(1<<20), "MiB")
	})
	b.Run("warm", func(b *testing.B) {
		ws := benchWorkspace(b)
		gocache := filepath.Join(b.TempDir(), "gocache")
		buildHealth(b, ws, gocache)
		for b.Loop() {
			if r := buildHealth(b, ws, gocache); !r.Cached {
				b.Fatal("warm build was not cached")
			}
		}
	})
}
