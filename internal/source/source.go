// Package source owns config/sources.yaml, the one file that names every
// upstream source of the stack, and everything done with it: parsing and
// validating it, locking the whole dependency graph of each Go module source
// (config/locks/NAME.mod and NAME.sum), fetching sources into the cache with
// their hashes verified before anything is published, verifying the cache
// offline, and updating sources to new releases while keeping the file's
// comments and order.
//
// Five kinds of source exist:
//
//   - gomod: a Go module at a version, pinned by its h1: module hash, with its
//     dependency graph pinned by a go.sum-style lock, fetched with the go
//     command's own proxy settings;
//   - deb: a Debian package at an exact version, pinned by the sha256 of its
//     .deb, fetched with apt-get download;
//   - debsrc: a Debian source package at an exact version, pinned by the
//     sha256 of its .dsc, whose Checksums-Sha256 pin every file it names;
//     fetched with apt-get source from the host's Debian archives;
//   - archive: a URL to a tarball, pinned by sha256;
//   - npm: an npm package at an exact version, pinned by the integrity
//     (sha512) the registry publishes for its tarball, fetched with npm pack.
//
// For gomod, deb, debsrc and npm the file pins what (name, version, hash), never where
// from: the machine's package clients decide that.
package source

import (
	"fmt"
	"os"
	"path/filepath"
)

// Kind is the kind of an upstream source.
type Kind string

// The kinds of source.
const (
	GoMod   Kind = "gomod"
	Deb     Kind = "deb"
	DebSrc  Kind = "debsrc"
	Archive Kind = "archive"
	Npm     Kind = "npm"
)

// Kinds lists the known kinds in the order they are documented.
var Kinds = []Kind{GoMod, Deb, DebSrc, Archive, Npm}

// Source is one entry of sources.yaml.
type Source struct {
	Name    string `json:"name"`
	Kind    Kind   `json:"kind"`
	Version string `json:"version"`
	// Hash pins the content: "h1:<base64>" for gomod, "sha512-<base64>" (the
	// registry's integrity) or "sha256:<hex>" for npm, "sha256:<hex>" otherwise.
	Hash string `json:"hash"`
	// Track, when set, is a version prefix that update stays within
	// (for example "v1.36." keeps Kubernetes on its 1.36 line).
	Track string `json:"track,omitempty"`

	// Module is the module path (gomod).
	Module string `json:"module,omitempty"`
	// Packages are the packages of the module that the stack builds
	// (gomod); the lock covers exactly what building them needs.
	Packages []string `json:"packages,omitempty"`
	// ReplaceLocal is the version given to every module that the source's
	// own go.mod replaces with a local directory (gomod). Kubernetes and etcd
	// replace their staging modules so; outside their repositories those
	// directories do not exist and the published versions stand in.
	ReplaceLocal string `json:"replaceLocal,omitempty"`

	// Package is the Debian package name (deb), the Debian source package
	// name (debsrc) or the npm package name (npm).
	Package string `json:"package,omitempty"`
	// Arch is the Debian architecture (deb); amd64 when not given.
	Arch string `json:"arch,omitempty"`

	// URL is where the archive is downloaded from (archive). It may contain
	// {version}, replaced by Version.
	URL string `json:"url,omitempty"`

	// Line is the line of the entry in the file.
	Line int `json:"-"`
	// fields maps each key of the entry to the line and column of its value,
	// so that update can rewrite values in place.
	fields map[string]pos
}

// pos is the position of a scalar value in the file; flow is true inside a
// flow mapping ({...}), where a plain value ends at a comma or brace.
type pos struct {
	line, col int
	flow      bool
}

// Ref returns what the source names upstream: module@version,
// package=version or the URL.
func (s *Source) Ref() string {
	switch s.Kind {
	case GoMod:
		return s.Module + "@" + s.Version
	case Deb, DebSrc:
		return s.Package + "=" + s.Version
	case Npm:
		return s.Package + "@" + s.Version
	default:
		return s.ArchiveURL()
	}
}

// ArchiveURL is the URL of an archive with {version} filled in.
func (s *Source) ArchiveURL() string {
	return expandVersion(s.URL, s.Version)
}

// Config is a parsed sources.yaml.
type Config struct {
	// Path is the file the config was read from.
	Path    string
	Sources []*Source
	data    []byte
}

// Get returns the source called name.
func (c *Config) Get(name string) (*Source, error) {
	for _, s := range c.Sources {
		if s.Name == name {
			return s, nil
		}
	}
	return nil, fmt.Errorf("%s: no source named %q: see `stack sources list`", c.Path, name)
}

// Select returns the named sources in the order given, or all of them when
// names is empty.
func (c *Config) Select(names []string) ([]*Source, error) {
	if len(names) == 0 {
		return c.Sources, nil
	}
	out := make([]*Source, 0, len(names))
	for _, n := range names {
		s, err := c.Get(n)
		if err != nil {
			return nil, err
		}
		out = append(out, s)
	}
	return out, nil
}

// Load reads and validates the sources file at path.
func Load(path string) (*Config, error) {
	data, err := os.ReadFile(path)
	if err != nil {
		return nil, err
	}
	return Parse(displayPath(path), data)
}

// displayPath shortens path to be relative to the working directory when
// that is shorter, so errors name the file as the user would.
func displayPath(path string) string {
	wd, err := os.Getwd()
	if err != nil {
		return path
	}
	if rel, err := filepath.Rel(wd, path); err == nil && len(rel) < len(path) {
		return rel
	}
	return path
}
