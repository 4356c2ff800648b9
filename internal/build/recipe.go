package build

import (
	"context"
	"errors"
	"fmt"
	"io"
	"io/fs"
	"os"
	"os/exec"
	"path/filepath"
	"sort"
	"strings"

	"github.com/hashbang/stack/internal/source"
)

// A recipe builds a program that a plain go build of a locked package does
// not make. Its output is cached input-addressed like every other binary:
// the key covers the toolchain, the sources' pins and locks, the C
// toolchain when cgo is used, and the binary's flags.
type recipe struct {
	// sources are the sources of config/sources.yaml the recipe builds
	// from, besides the toolchain and the binary's own source.
	sources []string
	// cc is true when the recipe links C code with the musl toolchain.
	cc bool
	// inputs, when set, are further inputs of the recipe's cache key.
	inputs func(c *Cache) []string
	// build makes the binary at out.
	build func(ctx context.Context, c *Cache, b Binary, goroot, out string) error
}

// Recipes lists the known build recipes by name.
func Recipes() []string {
	names := make([]string, 0, len(recipes))
	for n := range recipes {
		names = append(names, n)
	}
	sort.Strings(names)
	return names
}

var recipes = map[string]recipe{
	"gitea": {sources: []string{"node", "pnpm"}, cc: true, build: buildGitea},
	"git": {sources: []string{"zlib"}, cc: true, build: buildGit, inputs: func(c *Cache) []string {
		return []string{"make " + strings.Join(gitMakeFlags, " "), "epoch " + sourceDateEpoch(c)}
	}},
}

// recipeVersion changes when a recipe's steps change.
const recipeVersion = "stack-recipe-1"

func (c *Cache) recipe(ctx context.Context, b Binary) (string, error) {
	r, ok := recipes[b.Recipe]
	if !ok {
		return "", fmt.Errorf("build %s: unknown recipe %q: known recipes are %s", b.Package, b.Recipe, strings.Join(Recipes(), ", "))
	}
	if b.Source == "" {
		return "", fmt.Errorf("build %s: recipe %s needs the source it builds (source: NAME)", b.Package, b.Recipe)
	}
	tc, err := c.prep.ToolchainSource()
	if err != nil {
		return "", err
	}
	own, err := c.prep.Source(b.Source)
	if err != nil {
		return "", fmt.Errorf("build %s: %w", b.Package, err)
	}
	pin := own.Hash
	if own.Kind == source.GoMod {
		lock, err := source.ReadLock(c.ws.Locks(), b.Source)
		if err != nil {
			return "", err
		}
		pin = lock.Digest()
	}
	parts := []string{recipeVersion, b.Recipe, tc.Hash, GOOS, GOARCH, "source " + b.Source + " " + pin}
	for _, name := range r.sources {
		s, err := c.prep.Source(name)
		if err != nil {
			return "", fmt.Errorf("recipe %s: %w", b.Recipe, err)
		}
		parts = append(parts, name+" "+string(s.Kind)+" "+s.Ref()+" "+s.Hash)
	}
	if r.cc {
		id, err := muslIdentity(ctx)
		if err != nil {
			return "", fmt.Errorf("build %s: %w", b.Package, err)
		}
		parts = append(parts, id)
	}
	if r.inputs != nil {
		parts = append(parts, r.inputs(c)...)
	}
	parts = append(parts, b.Package, strings.Join(b.LDFlags, "\x00"), strings.Join(b.Tags, ","))
	key := keyOf(parts...)
	out := filepath.Join(c.Dir(), key[:32], b.Name())
	if _, err := os.Stat(out); err == nil {
		return out, nil
	}
	_, goroot, err := c.prep.Toolchain(ctx)
	if err != nil {
		return "", err
	}
	step := c.progress.Start("build %s (recipe %s)", b.Package, b.Recipe)
	return out, step.Done(r.build(ctx, c, b, goroot, out))
}

// muslIdentity names the C toolchain cgo builds use: Debian's musl-tools
// (musl-gcc over the host gcc) with the versions of both, so that a new C
// toolchain changes the cache key.
func muslIdentity(ctx context.Context) (string, error) {
	if _, err := exec.LookPath("musl-gcc"); err != nil {
		return "", errors.New("musl-gcc is not installed: static cgo builds need Debian's musl-tools (apt-get install musl-tools)")
	}
	out, err := exec.CommandContext(ctx, "dpkg-query", "-W", "-f", "${Package}=${Version}\n", "musl-tools", "musl-dev", "gcc", "binutils").Output()
	if err != nil {
		return "", fmt.Errorf("dpkg-query musl-tools gcc binutils: %v", err)
	}
	gcc, err := exec.CommandContext(ctx, "gcc", "-dumpfullversion").Output()
	if err != nil {
		return "", fmt.Errorf("gcc -dumpfullversion: %v", err)
	}
	return "cc " + strings.TrimSpace(string(out)) + " gcc " + strings.TrimSpace(string(gcc)), nil
}

// muslEnv is the environment of a static cgo build with musl: C sources
// compiled without debug information or build paths, linked statically.
func muslEnv(goroot, buildDir, cflags string) []string {
	return []string{
		"PATH=" + filepath.Join(goroot, "bin") + ":/usr/bin:/bin",
		"CGO_ENABLED=1",
		"CC=musl-gcc",
		"CGO_CFLAGS=-O2 -g0 -ffile-prefix-map=" + buildDir + "=/build " + cflags,
		"CGO_LDFLAGS=-static",
		"SOURCE_DATE_EPOCH=0",
	}
}

// copyModuleTree copies the regular files and directories of src into dst (which
// must not exist), writable by the owner: module trees in the module cache
// are read-only, and a recipe builds in its copy.
func copyModuleTree(dst, src string) error {
	return filepath.WalkDir(src, func(p string, d fs.DirEntry, err error) error {
		if err != nil {
			return err
		}
		rel, _ := filepath.Rel(src, p)
		to := filepath.Join(dst, rel)
		switch {
		case d.IsDir():
			return os.MkdirAll(to, 0o755)
		case d.Type().IsRegular():
			in, err := os.Open(p)
			if err != nil {
				return err
			}
			defer in.Close()
			o, err := os.OpenFile(to, os.O_CREATE|os.O_EXCL|os.O_WRONLY, 0o644)
			if err != nil {
				return err
			}
			if _, err := io.Copy(o, in); err != nil {
				o.Close()
				return err
			}
			return o.Close()
		}
		return fmt.Errorf("%s: not a regular file or directory", p)
	})
}

// run runs a build step, reporting its output on failure.
func run(ctx context.Context, dir string, env []string, name string, args ...string) error {
	cmd := exec.CommandContext(ctx, name, args...)
	cmd.Dir = dir
	cmd.Env = env
	out, err := cmd.CombinedOutput()
	if err != nil {
		msg := strings.TrimSpace(string(out))
		if len(msg) > 4000 {
			msg = "..." + msg[len(msg)-4000:]
		}
		return fmt.Errorf("%s %s: %w:\n%s", filepath.Base(name), strings.Join(args, " "), err, msg)
	}
	return nil
}
