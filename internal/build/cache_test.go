package build

import (
	"context"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"strings"
	"testing"

	"github.com/hashbang/stack/internal/source"
	"github.com/hashbang/stack/internal/workspace"
)

// repoWorkspace is this repository with its committed sources, and a cache
// shared by the tests of this package (STACK_TEST_CACHE moves it), so that
// the pinned toolchain is fetched once.
func repoWorkspace(t *testing.T) (*workspace.Workspace, *source.Config) {
	t.Helper()
	cache := os.Getenv("STACK_TEST_CACHE")
	if cache == "" {
		cache = filepath.Join(os.TempDir(), "stack-test-cache")
	}
	ws, err := workspace.New(filepath.Join("..", ".."), cache)
	if err != nil {
		t.Fatal(err)
	}
	cfg, err := source.Load(ws.Sources())
	if err != nil {
		t.Fatal(err)
	}
	return ws, cfg
}

// TestCacheBuildsOnce builds this repository's health program with the
// pinned toolchain, then finds it cached: the second call runs no go
// command, which the test proves by taking the toolchain away.
func TestCacheBuildsOnce(t *testing.T) {
	ws, cfg := repoWorkspace(t)
	ctx := context.Background()
	c := NewCache(ws, source.NewPreparer(ws, cfg, nil), nil)
	b := Binary{Package: "./cmd/health"}
	p1, err := c.Binary(ctx, b)
	if err != nil {
		t.Fatal(err)
	}
	goroot, _ := c.GoRoot(ctx)
	out, err := exec.Command(filepath.Join(goroot, "bin", "go"), "version", p1).Output()
	if err != nil {
		t.Fatal(err)
	}
	tc, _ := cfg.Get("toolchain")
	want := strings.TrimSuffix(strings.TrimPrefix(tc.Version, "v0.0.1-"), ".linux-amd64")
	if !strings.Contains(string(out), want) {
		t.Errorf("binary built by %q, want the pinned %s", out, want)
	}

	// Same inputs: the cached binary, without building.
	c2 := NewCache(ws, source.NewPreparer(ws, cfg, nil), nil)
	c2.GoCache = filepath.Join(t.TempDir(), "empty-gocache-proves-no-build")
	p2, err := c2.Binary(ctx, b)
	if err != nil || p2 != p1 {
		t.Fatalf("second build: %s %v, want cached %s", p2, err, p1)
	}
	if _, err := os.Stat(c2.GoCache); !os.IsNotExist(err) {
		t.Error("the go command ran for a cached binary")
	}

	// Other flags are other inputs.
	p3, err := c.Binary(ctx, Binary{Package: "./cmd/health", LDFlags: []string{"-X=main.unused=1"}})
	if err != nil || p3 == p1 {
		t.Errorf("build with other ldflags: %s %v", p3, err)
	}
}

// TestCacheSourceWithMain builds a program of a locked gomod source from a
// main written around its library entry point, with the network off.
func TestCacheSourceWithMain(t *testing.T) {
	if testing.Short() {
		t.Skip("builds the distribution registry from its lock")
	}
	ws, cfg := repoWorkspace(t)
	ctx := context.Background()
	prep := source.NewPreparer(ws, cfg, nil)
	if _, _, err := prep.Module(ctx, "distribution"); err != nil {
		t.Fatal(err) // fetches what the lock names, verified
	}
	t.Setenv("GOPROXY", "off") // the build itself must need nothing more
	c := NewCache(ws, prep, nil)
	p, err := c.Binary(ctx, Binary{
		Source:  "distribution",
		Package: "github.com/distribution/distribution/v3/version",
		Main:    "package main\n\nimport (\n\t\"fmt\"\n\n\t\"github.com/distribution/distribution/v3/version\"\n)\n\nfunc main() { fmt.Println(version.Package()) }\n",
	})
	if err != nil {
		t.Fatal(err)
	}
	out, err := exec.Command(p).Output()
	if err != nil || strings.TrimSpace(string(out)) != "github.com/distribution/distribution/v3" {
		t.Errorf("program printed %q, %v", out, err)
	}
}

// TestSelfStamped: the builder links the source tree's hash into stack
// itself and into nothing else, and the symbol it names is the one `stack
// version` reports (linked here with the go command of the tests, whose
// build cache already holds stack's packages).
func TestSelfStamped(t *testing.T) {
	c := &Cache{repoHash: "feedface"}
	for pkg, want := range map[string]bool{SelfPackage: true, "./cmd/health": false} {
		spec := Spec{LDFlags: []string{"-X", "main.x=1"}}
		c.stamp(Binary{Package: pkg}, &spec)
		got := strings.Join(spec.LDFlags, " ")
		if has := strings.Contains(got, "-X "+VersionSymbol+"=feedface"); has != want {
			t.Errorf("%s: ldflags %q", pkg, got)
		}
	}
	c.stamp(Binary{Source: "etcd", Package: SelfPackage}, &Spec{})
	if testing.Short() {
		t.Skip("links stack")
	}
	bin := filepath.Join(t.TempDir(), "stack")
	build := exec.Command("go", "build", "-ldflags=-X "+VersionSymbol+"=feedface", "-o", bin, SelfPackage)
	build.Dir = filepath.Join("..", "..")
	if out, err := build.CombinedOutput(); err != nil {
		t.Fatalf("go build: %v\n%s", err, out)
	}
	out, err := exec.Command(bin, "version").CombinedOutput()
	if err != nil || !regexp.MustCompile(`source tree +sha256:feedface `).Match(out) {
		t.Errorf("stack version: %v\n%s", err, out)
	}
}
