package build

import (
	"bytes"
	"context"
	"debug/elf"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"syscall"
	"testing"
	"time"
)

// repoRoot is the module this package lives in.
func repoRoot(t testing.TB) string {
	t.Helper()
	root, err := filepath.Abs("../..")
	if err != nil {
		t.Fatal(err)
	}
	if _, err := os.Stat(filepath.Join(root, "go.mod")); err != nil {
		t.Fatalf("no go.mod at %s: %v", root, err)
	}
	return root
}

// hostGoCache is the build cache of the go command running the tests, so
// that tests reuse already compiled packages.
func hostGoCache(t testing.TB) string {
	t.Helper()
	out, err := exec.Command("go", "env", "GOCACHE").Output()
	if err != nil || len(bytes.TrimSpace(out)) == 0 {
		return t.TempDir()
	}
	return string(bytes.TrimSpace(out))
}

// copyTree copies the files of src into dst (no symlinks expected).
func copyTree(t testing.TB, src, dst string, keep func(rel string) bool) {
	t.Helper()
	err := filepath.WalkDir(src, func(p string, d os.DirEntry, err error) error {
		if err != nil {
			return err
		}
		rel, _ := filepath.Rel(src, p)
		if rel != "." && !keep(rel) {
			if d.IsDir() {
				return filepath.SkipDir
			}
			return nil
		}
		if d.IsDir() {
			return os.MkdirAll(filepath.Join(dst, rel), 0o755)
		}
		b, err := os.ReadFile(p)
		if err != nil {
			return err
		}
		return os.WriteFile(filepath.Join(dst, rel), b, 0o644)
	})
	if err != nil {
		t.Fatal(err)
	}
}

func TestBuildIsReproducibleAndStatic(t *testing.T) {
	root := repoRoot(t)
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Minute)
	defer cancel()

	// Two copies of the module at different paths; the second is built
	// with another time zone, umask, and a hostile environment.
	keep := func(rel string) bool {
		return rel == "go.mod" || rel == "go.sum" || rel == "cmd" || strings.HasPrefix(rel, "cmd/health")
	}
	a, b := t.TempDir(), filepath.Join(t.TempDir(), "elsewhere", "deeper")
	copyTree(t, root, a, keep)
	copyTree(t, root, b, keep)

	g := Go{GoCache: hostGoCache(t)}
	outA := filepath.Join(t.TempDir(), "health")
	if err := g.Build(ctx, Spec{Dir: a, Package: "./cmd/health", Output: outA}); err != nil {
		t.Fatal(err)
	}

	t.Setenv("TZ", "Pacific/Kiritimati")
	t.Setenv("GOFLAGS", "-race -buildvcs=true")
	t.Setenv("CGO_ENABLED", "1")
	t.Setenv("GOARCH", "arm64")
	t.Setenv("GOAMD64", "v3")
	old := syscall.Umask(0o077)
	defer syscall.Umask(old)
	outB := filepath.Join(t.TempDir(), "sub", "health")
	// With STACK_SLOW_TESTS=1 the second build uses a separate, cold build
	// cache (about 40 s on 2 cores): nothing is shared with the first. By
	// default the cache is shared, which still fails if the directory, the
	// environment or the time zone reach the build's action IDs.
	g2 := g
	if os.Getenv("STACK_SLOW_TESTS") != "" {
		g2.GoCache = t.TempDir()
	}
	if err := g2.Build(ctx, Spec{Dir: b, Package: "./cmd/health", Output: outB}); err != nil {
		t.Fatal(err)
	}

	ba, err := os.ReadFile(outA)
	if err != nil {
		t.Fatal(err)
	}
	bb, err := os.ReadFile(outB)
	if err != nil {
		t.Fatal(err)
	}
	if !bytes.Equal(ba, bb) {
		t.Fatalf("builds differ: %d bytes vs %d bytes", len(ba), len(bb))
	}
	if bytes.Contains(ba, []byte(a)) || bytes.Contains(ba, []byte(t.TempDir())) {
		t.Errorf("binary holds a build path")
	}
	checkStatic(t, outA)
	fi, err := os.Stat(outB)
	if err != nil {
		t.Fatal(err)
	}
	if fi.Mode().Perm() != 0o755 {
		t.Errorf("output mode = %v, want 0755", fi.Mode().Perm())
	}
}

func checkStatic(t *testing.T, path string) {
	t.Helper()
	f, err := elf.Open(path)
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	if f.Machine != elf.EM_X86_64 {
		t.Errorf("machine = %v, want x86-64", f.Machine)
	}
	for _, p := range f.Progs {
		if p.Type == elf.PT_INTERP || p.Type == elf.PT_DYNAMIC {
			t.Errorf("%s has a %s program header: not static", path, p.Type)
		}
	}
	libs, err := f.ImportedLibraries()
	if err != nil {
		t.Fatal(err)
	}
	if len(libs) > 0 {
		t.Errorf("%s needs %v", path, libs)
	}
	if f.Section(".symtab") != nil {
		t.Errorf("%s is not stripped", path)
	}
}

func TestBuildLDFlags(t *testing.T) {
	dir := t.TempDir()
	os.WriteFile(filepath.Join(dir, "go.mod"), []byte("module example.com/x\n\ngo 1.22\n"), 0o644)
	os.WriteFile(filepath.Join(dir, "main.go"), []byte("package main\n\nvar version = \"dev\"\n\nfunc main() { println(version) }\n"), 0o644)
	out := filepath.Join(t.TempDir(), "x")
	g := Go{GoCache: hostGoCache(t)}
	err := g.Build(context.Background(), Spec{Dir: dir, Package: ".", Output: out, LDFlags: []string{"-X=main.version=v1.2.3"}, Tags: []string{"netgo", "osusergo"}})
	if err != nil {
		t.Fatal(err)
	}
	got, err := exec.Command(out).CombinedOutput()
	if err != nil {
		t.Fatal(err)
	}
	if strings.TrimSpace(string(got)) != "v1.2.3" {
		t.Errorf("binary printed %q, want v1.2.3", got)
	}
}

func TestBuildErrors(t *testing.T) {
	dir := t.TempDir()
	os.WriteFile(filepath.Join(dir, "go.mod"), []byte("module example.com/x\n\ngo 1.22\n\nrequire example.com/missing v1.0.0\n"), 0o644)
	os.WriteFile(filepath.Join(dir, "main.go"), []byte("package main\n\nimport _ \"example.com/missing\"\n\nfunc main() {}\n"), 0o644)
	out := filepath.Join(t.TempDir(), "x")
	g := Go{GoCache: hostGoCache(t)}
	ctx := context.Background()

	err := g.Build(ctx, Spec{Dir: dir, Package: ".", Output: out})
	if err == nil {
		t.Fatal("build with a missing module succeeded")
	}
	// The module must not be downloaded (GOPROXY=off) and stderr is shown.
	if !strings.Contains(err.Error(), "example.com/missing") {
		t.Errorf("error lacks the go command's message: %v", err)
	}
	if _, serr := os.Stat(out); serr == nil {
		t.Errorf("failed build left %s", out)
	}
	if ents, _ := os.ReadDir(filepath.Dir(out)); len(ents) != 0 {
		t.Errorf("failed build left files: %v", ents)
	}

	for _, spec := range []Spec{
		{Package: ".", Output: out},
		{Dir: dir, Package: ".", Output: out, LDFlags: []string{"-X main.v=1"}},
	} {
		if err := g.Build(ctx, spec); err == nil {
			t.Errorf("Build(%+v) succeeded", spec)
		}
	}
	bad := Go{GoRoot: t.TempDir()}
	if err := bad.Build(ctx, Spec{Dir: dir, Package: ".", Output: out}); err == nil || !strings.Contains(err.Error(), "no go command") {
		t.Errorf("Build with empty GOROOT: %v", err)
	}
}

func TestVersion(t *testing.T) {
	v, err := Go{}.Version(context.Background())
	if err != nil {
		t.Fatal(err)
	}
	if !strings.HasPrefix(v, "go1.") {
		t.Errorf("Version = %q", v)
	}
}

// TestTelemetryOff: the go command must not count or upload telemetry, which
// would write outside the build and start a process that outlives it.
func TestTelemetryOff(t *testing.T) {
	home, err := newHome()
	if err != nil {
		t.Fatal(err)
	}
	defer removeAll(home)
	g := Go{}
	cmd := exec.Command(filepath.Join(g.goroot(), "bin", "go"), "env", "GOTELEMETRY")
	cmd.Dir = home
	cmd.Env = g.Env(home, filepath.Join(home, "gocache"), filepath.Join(home, "gomodcache"))
	out, err := cmd.Output()
	if err != nil {
		t.Fatal(err)
	}
	if got := strings.TrimSpace(string(out)); got != "off" {
		t.Errorf("GOTELEMETRY = %q, want off", got)
	}
}
