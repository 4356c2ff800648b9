// Package build owns turning source into binaries: it runs the Go toolchain
// so that the same source and toolchain give byte-identical, statically
// linked binaries, whatever the caller's environment, directory, time zone
// or umask. The go command runs with a clean environment that holds only
// what this package sets; nothing from the user's shell leaks in.
package build

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"runtime"
	"strings"
)

// Go is a pinned Go toolchain and the caches it builds with.
type Go struct {
	// GoRoot is the toolchain's GOROOT; empty means the toolchain this
	// program was built with (runtime.GOROOT()).
	GoRoot string
	// GoCache is the build cache (GOCACHE). Empty means a fresh temporary
	// cache, removed after the build: slow, but nothing is reused.
	GoCache string
	// GoModCache is the module cache (GOMODCACHE) that dependencies are read
	// from. Empty means a fresh, empty temporary one, enough only for
	// modules without dependencies.
	GoModCache string
	// GoProxy is GOPROXY; empty means "off", so a build never downloads.
	GoProxy string
}

// Spec says what to build.
type Spec struct {
	// Dir is the module directory the build runs in.
	Dir string
	// Package is the package to build, as the go command takes it
	// (./cmd/health, or an import path of a module in the module cache).
	Package string
	// Output is the file the binary is written to.
	Output string
	// LDFlags are extra linker flags, such as -X main.version=v1.
	LDFlags []string
	// Tags are build tags.
	Tags []string
	// Env are KEY=value settings over the clean environment, for builds that
	// need cgo (CGO_ENABLED=1, CC, CGO_CFLAGS): a later setting of a key
	// wins over the default.
	Env []string
}

// Platform is the only target for now.
const (
	GOOS   = "linux"
	GOARCH = "amd64"
)

func (g Go) goroot() string {
	if g.GoRoot != "" {
		return g.GoRoot
	}
	return runtime.GOROOT()
}

// Env returns the complete environment the go command runs with, given the
// temporary home directory and the caches to use.
func (g Go) Env(home, gocache, gomodcache string) []string {
	proxy := g.GoProxy
	if proxy == "" {
		proxy = "off"
	}
	goroot := g.goroot()
	return []string{
		"PATH=" + filepath.Join(goroot, "bin"),
		"HOME=" + home,
		"XDG_CONFIG_HOME=" + filepath.Join(home, "config"),
		"TMPDIR=" + filepath.Join(home, "tmp"),
		"GOPATH=" + filepath.Join(home, "gopath"),
		"GOROOT=" + goroot,
		"GOCACHE=" + gocache,
		"GOMODCACHE=" + gomodcache,
		"GOPROXY=" + proxy,
		// go.sum is still checked; GOSUMDB would only be asked about
		// modules missing from it, which -mod=readonly refuses anyway.
		"GOSUMDB=off",
		"GOFLAGS=-mod=readonly",
		"GOTOOLCHAIN=local",
		"GOENV=off",
		"GOWORK=off",
		"GOOS=" + GOOS,
		"GOARCH=" + GOARCH,
		"GOAMD64=v1",
		"CGO_ENABLED=0",
		"TZ=UTC",
		"LANG=C",
		"LC_ALL=C",
	}
}

// Args returns the go command's arguments for spec, output path included.
func Args(spec Spec, output string) []string {
	ld := append([]string{"-buildid=", "-s", "-w"}, spec.LDFlags...)
	args := []string{"build", "-trimpath", "-buildvcs=false", "-ldflags=" + strings.Join(ld, " ")}
	if len(spec.Tags) > 0 {
		args = append(args, "-tags="+strings.Join(spec.Tags, ","))
	}
	return append(args, "-o", output, spec.Package)
}

// Build builds spec.Package into spec.Output. The output appears only when
// the build succeeded. A failure returns the go command's stderr.
func (g Go) Build(ctx context.Context, spec Spec) error {
	if spec.Dir == "" || spec.Package == "" || spec.Output == "" {
		return errors.New("build: Dir, Package and Output must all be set")
	}
	for _, f := range spec.LDFlags {
		if strings.ContainsAny(f, " \t\n'\"") {
			return fmt.Errorf("build %s: ldflag %q holds a space or quote, which the go command would split: pass one flag per element without spaces", spec.Package, f)
		}
	}
	dir, err := filepath.Abs(spec.Dir)
	if err != nil {
		return err
	}
	out, err := filepath.Abs(spec.Output)
	if err != nil {
		return err
	}
	gobin := filepath.Join(g.goroot(), "bin", "go")
	if _, err := os.Stat(gobin); err != nil {
		return fmt.Errorf("build %s: no go command in GOROOT %s: %w", spec.Package, g.goroot(), err)
	}

	home, err := newHome()
	if err != nil {
		return err
	}
	defer removeAll(home)
	gocache, gomodcache := g.GoCache, g.GoModCache
	if gocache == "" {
		gocache = filepath.Join(home, "gocache")
	}
	if gomodcache == "" {
		gomodcache = filepath.Join(home, "gomodcache")
	}
	if gocache, err = filepath.Abs(gocache); err != nil {
		return err
	}
	if gomodcache, err = filepath.Abs(gomodcache); err != nil {
		return err
	}

	// Build next to the output and rename into place, so a failed build
	// never leaves a half-written binary behind.
	if err := os.MkdirAll(filepath.Dir(out), 0o755); err != nil {
		return fmt.Errorf("build %s: %w", spec.Package, err)
	}
	tmp, err := os.CreateTemp(filepath.Dir(out), "."+filepath.Base(out)+".tmp-")
	if err != nil {
		return fmt.Errorf("build %s: %w", spec.Package, err)
	}
	tmp.Close()
	defer os.Remove(tmp.Name())

	cmd := exec.CommandContext(ctx, gobin, Args(spec, tmp.Name())...)
	cmd.Dir = dir
	cmd.Env = append(g.Env(home, gocache, gomodcache), spec.Env...)
	var stderr bytes.Buffer
	cmd.Stdout = &stderr
	cmd.Stderr = &stderr
	if err := cmd.Run(); err != nil {
		msg := strings.TrimSpace(stderr.String())
		if msg == "" {
			return fmt.Errorf("build %s: %w", spec.Package, err)
		}
		return fmt.Errorf("build %s: %w:\n%s", spec.Package, err, msg)
	}
	if err := os.Chmod(tmp.Name(), 0o755); err != nil {
		return err
	}
	if err := os.Rename(tmp.Name(), out); err != nil {
		return fmt.Errorf("build %s: %w", spec.Package, err)
	}
	return nil
}

// Version returns the toolchain's version, as `go env GOVERSION` prints it
// (go1.26.8).
func (g Go) Version(ctx context.Context) (string, error) {
	home, err := newHome()
	if err != nil {
		return "", err
	}
	defer removeAll(home)
	cmd := exec.CommandContext(ctx, filepath.Join(g.goroot(), "bin", "go"), "env", "GOVERSION")
	cmd.Dir = home
	cmd.Env = g.Env(home, filepath.Join(home, "gocache"), filepath.Join(home, "gomodcache"))
	out, err := cmd.Output()
	if err != nil {
		var ee *exec.ExitError
		if errors.As(err, &ee) {
			return "", fmt.Errorf("go env GOVERSION in %s: %w: %s", g.goroot(), err, bytes.TrimSpace(ee.Stderr))
		}
		return "", fmt.Errorf("go env GOVERSION in %s: %w", g.goroot(), err)
	}
	return strings.TrimSpace(string(out)), nil
}

// newHome makes the temporary home directory the go command runs with. Go
// telemetry is switched off in it: GOTELEMETRY cannot be set from the
// environment, and in its default mode the go command writes counters and
// may start a detached upload process that outlives the build.
func newHome() (string, error) {
	home, err := os.MkdirTemp("", "stack-build-")
	if err != nil {
		return "", err
	}
	tele := filepath.Join(home, "config", "go", "telemetry")
	if err := os.MkdirAll(tele, 0o700); err != nil {
		removeAll(home)
		return "", err
	}
	if err := os.WriteFile(filepath.Join(tele, "mode"), []byte("off"), 0o600); err != nil {
		removeAll(home)
		return "", err
	}
	if err := os.Mkdir(filepath.Join(home, "tmp"), 0o700); err != nil {
		removeAll(home)
		return "", err
	}
	return home, nil
}

// removeAll removes a temporary directory, making read-only module cache
// directories writable first so that they can go.
func removeAll(dir string) {
	filepath.WalkDir(dir, func(p string, d os.DirEntry, err error) error {
		if err == nil && d.IsDir() {
			os.Chmod(p, 0o755)
		}
		return nil
	})
	os.RemoveAll(dir)
}
