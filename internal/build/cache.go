package build

import (
	"context"
	"crypto/sha256"
	"encoding/hex"
	"fmt"
	"io"
	"io/fs"
	"os"
	"path"
	"path/filepath"
	"slices"
	"sort"
	"strings"
	"sync"

	"github.com/hashbang/stack/internal/source"
	"github.com/hashbang/stack/internal/ui"
	"github.com/hashbang/stack/internal/workspace"
)

// SelfPackage is the stack command's own main package, and VersionSymbol
// the variable of internal/version its builds carry their source tree's
// hash in.
const (
	SelfPackage   = "./cmd/stack"
	VersionSymbol = "github.com/hashbang/stack/internal/version.sourceTree"
)

// cacheVersion changes when the way binaries are built changes, so that
// binaries built the old way are not reused.
const cacheVersion = "stack-build-1"

// Binary names a Go program to build.
type Binary struct {
	// Source is the gomod source of config/sources.yaml the program comes
	// from, built offline from its lock; empty means this repository.
	Source string
	// Package is the main package: ./path in this repository, or an import
	// path in the source's module.
	Package string
	// Main, when set, is the Go source of a main package built instead of
	// Package, for programs whose entry point is a library function (etcd's
	// etcdmain.Main); it may import only what Package's lock covers.
	Main    string
	LDFlags []string
	Tags    []string
	// Recipe, when set, names a build recipe (see Recipes) that makes the
	// program from Source instead of a plain go build: gitea, whose web
	// assets are built first and whose sqlite driver needs cgo.
	Recipe string
}

// Name is the file name the binary is built as.
func (b Binary) Name() string { return path.Base(b.Package) }

// Cache builds binaries into an input-addressed cache: a binary is built
// only when no binary of the same inputs (toolchain, source code or lock,
// package, flags) is in <cache>/bin, so an unchanged program is never
// rebuilt.
type Cache struct {
	ws       *workspace.Workspace
	prep     *source.Preparer
	progress *ui.Progress
	// GoCache is the Go build cache used; empty means the user's (go env
	// GOCACHE). Reuse across builds is safe: the go command keys it by
	// content.
	GoCache string

	mu       sync.Mutex
	repoHash string
}

// NewCache returns a Cache for the workspace, taking the toolchain and
// gomod sources from prep.
func NewCache(ws *workspace.Workspace, prep *source.Preparer, p *ui.Progress) *Cache {
	return &Cache{ws: ws, prep: prep, progress: p}
}

// Dir is where the cache keeps its binaries.
func (c *Cache) Dir() string { return filepath.Join(c.ws.Cache, "bin") }

// Binary returns the path of the built binary b, building it if needed.
func (c *Cache) Binary(ctx context.Context, b Binary) (string, error) {
	c.mu.Lock()
	defer c.mu.Unlock()
	if b.Recipe != "" {
		return c.recipe(ctx, b)
	}
	// The key is made from pins and locks alone, so that a cached binary is
	// found without fetching or hashing its sources; they are fetched and
	// verified only when the binary has to be built.
	tc, err := c.prep.ToolchainSource()
	if err != nil {
		return "", err
	}
	var inputs string
	if b.Source == "" {
		if c.repoHash == "" {
			if c.repoHash, err = treeHash(c.ws.Root); err != nil {
				return "", err
			}
		}
		inputs = "repo " + c.repoHash
		if b.Package == SelfPackage {
			inputs += " stamped" // with VersionSymbol
		}
	} else {
		lock, err := source.ReadLock(c.ws.Locks(), b.Source)
		if err != nil {
			return "", err
		}
		inputs = "source " + b.Source + " " + lock.Digest()
	}
	key := keyOf(cacheVersion, tc.Hash, GOOS, GOARCH, inputs, b.Package, b.Main, strings.Join(b.LDFlags, "\x00"), strings.Join(b.Tags, ","))
	out := filepath.Join(c.Dir(), key[:32], b.Name())
	if _, err := os.Stat(out); err == nil {
		return out, nil
	}
	_, goroot, err := c.prep.Toolchain(ctx)
	if err != nil {
		return "", err
	}
	dir, modCache, proxy := c.ws.Root, source.GoEnv("GOMODCACHE"), source.GoEnv("GOPROXY")
	if b.Source != "" {
		// Programs of sources build offline from their locks.
		if _, dir, err = c.prep.Module(ctx, b.Source); err != nil {
			return "", err
		}
		modCache, proxy = source.ModCache(c.ws), ""
	}
	step := c.progress.Start("build %s", b.Package)
	spec := Spec{Dir: dir, Package: b.Package, Output: out, LDFlags: b.LDFlags, Tags: b.Tags}
	c.stamp(b, &spec)
	if b.Main != "" {
		shim := filepath.Join(dir, "stackmain", key[:16])
		if err := os.MkdirAll(shim, 0o755); err != nil {
			return "", step.Done(err)
		}
		if err := os.WriteFile(filepath.Join(shim, "main.go"), []byte(b.Main), 0o644); err != nil {
			return "", step.Done(err)
		}
		spec.Package = "./stackmain/" + key[:16]
	}
	g := Go{GoRoot: goroot, GoCache: c.goCache(), GoModCache: modCache, GoProxy: proxy}
	if err := step.Done(g.Build(ctx, spec)); err != nil {
		return "", err
	}
	return out, nil
}

// stamp makes stack itself say which source tree it is (stack version);
// the tree hash is already part of its key. Only stack: the flag is
// recorded in a binary's build information, and a program whose bytes
// changed with every commit would change its image's digest with it.
func (c *Cache) stamp(b Binary, spec *Spec) {
	if b.Source == "" && b.Package == SelfPackage {
		spec.LDFlags = append(slices.Clip(spec.LDFlags), "-X", VersionSymbol+"="+c.repoHash)
	}
}

func (c *Cache) goCache() string {
	if c.GoCache != "" {
		return c.GoCache
	}
	return source.GoEnv("GOCACHE")
}

// GoRoot returns the pinned toolchain's GOROOT, fetched and verified.
func (c *Cache) GoRoot(ctx context.Context) (string, error) {
	_, goroot, err := c.prep.Toolchain(ctx)
	return goroot, err
}

// keyOf hashes its parts, each length-prefixed, into a hex key.
func keyOf(parts ...string) string {
	h := sha256.New()
	for _, p := range parts {
		fmt.Fprintf(h, "%d:%s\n", len(p), p)
	}
	return hex.EncodeToString(h.Sum(nil))
}

// treeHash hashes what the repository's Go programs are built from: go.mod,
// go.sum and every non-test .go file, outside hidden directories, caches and
// testdata.
func treeHash(root string) (string, error) {
	var files []string
	err := filepath.WalkDir(root, func(p string, d fs.DirEntry, err error) error {
		if err != nil {
			return err
		}
		rel, _ := filepath.Rel(root, p)
		name := d.Name()
		if d.IsDir() {
			if rel != "." && (strings.HasPrefix(name, ".") || name == "testdata" || name == "node_modules" || rel == "cache") {
				return filepath.SkipDir
			}
			return nil
		}
		if rel == "go.mod" || rel == "go.sum" || strings.HasSuffix(name, ".go") && !strings.HasSuffix(name, "_test.go") {
			files = append(files, rel)
		}
		return nil
	})
	if err != nil {
		return "", err
	}
	sort.Strings(files)
	h := sha256.New()
	for _, f := range files {
		fh, err := fileHash(filepath.Join(root, f))
		if err != nil {
			return "", err
		}
		fmt.Fprintf(h, "%s %s\n", fh, filepath.ToSlash(f))
	}
	return hex.EncodeToString(h.Sum(nil)), nil
}

func fileHash(p string) (string, error) {
	f, err := os.Open(p)
	if err != nil {
		return "", err
	}
	defer f.Close()
	h := sha256.New()
	if _, err := io.Copy(h, f); err != nil {
		return "", err
	}
	return hex.EncodeToString(h.Sum(nil)), nil
}

// ForWorkspace returns the binary cache of the workspace, its sources read
// from config/sources.yaml.
func ForWorkspace(ws *workspace.Workspace, p *ui.Progress) (*Cache, error) {
	cfg, err := source.Load(ws.Sources())
	if err != nil {
		return nil, err
	}
	return NewCache(ws, source.NewPreparer(ws, cfg, p), p), nil
}
