package source

import (
	"context"
	"fmt"

	"golang.org/x/mod/module"
)

// ModuleTree returns the extracted tree of the gomod source name's own
// module (not its consumer module), fetched and verified against its pin:
// the source code a recipe copies and builds from, with the module's own
// go.mod and go.sum.
func (p *Preparer) ModuleTree(ctx context.Context, name string) (*Source, string, error) {
	s, _, err := p.Module(ctx, name)
	if err != nil {
		return nil, "", err
	}
	dir := extractedPath(ModCache(p.ws), module.Version{Path: s.Module, Version: s.Version})
	if !fileExists(dir) {
		return nil, "", fmt.Errorf("source %s: %s@%s is locked but not extracted in %s: run `stack sources fetch %s`", name, s.Module, s.Version, ModCache(p.ws), name)
	}
	return s, dir, nil
}

// Tool returns the directory the deb, debsrc or npm source name is unpacked in,
// fetched when missing and verified against its pin before first use.
func (p *Preparer) Tool(ctx context.Context, name string) (*Source, string, error) {
	s, err := p.cfg.Get(name)
	if err != nil {
		return nil, "", err
	}
	if s.Kind != Deb && s.Kind != Npm && s.Kind != DebSrc {
		return nil, "", fmt.Errorf("source %s is a %s, not a deb, debsrc or npm package", name, s.Kind)
	}
	if err := p.ready(ctx, s); err != nil {
		return nil, "", err
	}
	dir, err := Extract(ctx, p.ws, s)
	return s, dir, err
}

// Source returns the source called name, without fetching it.
func (p *Preparer) Source(name string) (*Source, error) { return p.cfg.Get(name) }
