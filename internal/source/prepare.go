package source

import (
	"context"
	"crypto/sha256"
	"encoding/hex"
	"fmt"
	"os"
	"path/filepath"
	"strings"

	"github.com/hashbang/stack/internal/ui"
	"github.com/hashbang/stack/internal/workspace"
)

// ToolchainModule is the module path under which the go command fetches
// Go toolchains; a gomod source of it pins the toolchain builds use.
const ToolchainModule = "golang.org/toolchain"

// Preparer hands out sources ready to build from: fetched when missing and
// verified against their pins before first use, at most once per process.
type Preparer struct {
	ws       *workspace.Workspace
	cfg      *Config
	fetcher  *Fetcher
	verified map[string]bool
}

// NewPreparer returns a Preparer for the sources of cfg, showing progress
// on p (which may be nil).
func NewPreparer(ws *workspace.Workspace, cfg *Config, p *ui.Progress) *Preparer {
	return &Preparer{ws: ws, cfg: cfg, fetcher: NewFetcher(ws, p), verified: map[string]bool{}}
}

// ready fetches s if it is not cached and verifies it. A damaged cache is
// an error naming what is damaged: a build never uses it.
func (p *Preparer) ready(ctx context.Context, s *Source) error {
	if p.verified[s.Name] {
		return nil
	}
	if !IsCached(p.ws, s) {
		if _, err := p.fetcher.Fetch(ctx, []*Source{s}); err != nil {
			return err
		}
	}
	st := verifyOne(ctx, p.ws, s)
	if len(st.Problems) > 0 {
		msgs := make([]string, len(st.Problems))
		for i, pr := range st.Problems {
			msgs[i] = pr.String()
		}
		return fmt.Errorf("%s is damaged in the cache, refusing to build from it: %s", s.Name, strings.Join(msgs, "; "))
	}
	p.verified[s.Name] = true
	return nil
}

// ToolchainSource returns the source that pins the Go toolchain, without
// fetching it.
func (p *Preparer) ToolchainSource() (*Source, error) {
	for _, s := range p.cfg.Sources {
		if s.Kind == GoMod && s.Module == ToolchainModule {
			return s, nil
		}
	}
	return nil, fmt.Errorf("%s pins no Go toolchain: add a gomod source of module %s", p.cfg.Path, ToolchainModule)
}

// Toolchain returns the pinned Go toolchain source and its GOROOT.
func (p *Preparer) Toolchain(ctx context.Context) (*Source, string, error) {
	tc, err := p.ToolchainSource()
	if err != nil {
		return nil, "", err
	}
	if err := p.ready(ctx, tc); err != nil {
		return nil, "", err
	}
	root := extractedPath(ModCache(p.ws), tc.Lock().Mod())
	// Module zips do not keep file modes: make the toolchain's programs
	// executable, as the go command does when it switches toolchains.
	progs, _ := filepath.Glob(filepath.Join(root, "bin", "*"))
	tools, _ := filepath.Glob(filepath.Join(root, "pkg", "tool", "*", "*"))
	for _, f := range append(progs, tools...) {
		if fi, err := os.Stat(f); err == nil && fi.Mode().IsRegular() && fi.Mode()&0o111 == 0 {
			if err := os.Chmod(f, fi.Mode()|0o555); err != nil {
				return nil, "", err
			}
		}
	}
	return tc, root, nil
}

// Module returns the directory of the consumer module of gomod source name,
// with its dependencies fetched and verified, for building its packages
// with the network off.
func (p *Preparer) Module(ctx context.Context, name string) (*Source, string, error) {
	s, err := p.cfg.Get(name)
	if err != nil {
		return nil, "", err
	}
	if s.Kind != GoMod {
		return nil, "", fmt.Errorf("source %s is a %s, not a Go module", name, s.Kind)
	}
	if err := p.ready(ctx, s); err != nil {
		return nil, "", err
	}
	lock, err := ReadLock(p.ws.Locks(), name)
	if err != nil {
		return nil, "", err
	}
	dir := p.ModuleDir(name, lock)
	if err := os.MkdirAll(dir, 0o755); err != nil {
		return nil, "", err
	}
	if err := lock.Materialize(dir); err != nil {
		return nil, "", err
	}
	return s, dir, nil
}

// ModuleDir is where Module puts the consumer module of source name
// locked by lock.
func (p *Preparer) ModuleDir(name string, lock *Lock) string {
	return filepath.Join(p.ws.Cache, "src", name+"-"+lock.Digest()[:16])
}

// Digest is the sha256 of the lock's two files, in hex.
func (l *Lock) Digest() string {
	h := sha256.New()
	fmt.Fprintf(h, "%d\n", len(l.Mod))
	h.Write(l.Mod)
	h.Write(l.Sum)
	return hex.EncodeToString(h.Sum(nil))
}

// Lock returns the module version of a gomod source as a go.sum line
// would name it.
func (s *Source) Lock() SumLine {
	return SumLine{Path: s.Module, Version: s.Version, Hash: s.Hash}
}
