package source

import (
	"encoding/base64"
	"encoding/hex"
	"errors"
	"fmt"
	"net/url"
	"regexp"
	"strings"

	"go.yaml.in/yaml/v3"
	"golang.org/x/mod/module"
	"golang.org/x/mod/semver"

	"github.com/hashbang/stack/internal/yamlfile"
)

// ParseError is a problem at one line of the sources file, worded as every
// config file's problems are (package yamlfile).
type ParseError = yamlfile.Error

// Parse parses and validates the content of a sources file; file names it
// in errors. Every problem found is reported, one *ParseError per line of
// the joined error.
func Parse(file string, data []byte) (*Config, error) {
	return parse(file, data, true)
}

// parse is Parse; with requireHash false an entry may lack its hash (update
// fills it in).
func parse(file string, data []byte, requireHash bool) (*Config, error) {
	p := &parser{file: file}
	cfg := &Config{Path: file, data: data}
	top, err := yamlfile.Parse(file, data, yamlfile.Options{Empty: "it must hold a `sources:` list"})
	if err != nil {
		return nil, err
	}
	if top.Kind != yaml.MappingNode {
		return nil, &ParseError{File: file, Line: top.Line, Msg: "the file must be a mapping with one key, `sources:`"}
	}
	var list *yaml.Node
	for i := 0; i+1 < len(top.Content); i += 2 {
		k, v := top.Content[i], top.Content[i+1]
		if k.Value != "sources" {
			p.errs = append(p.errs, yamlfile.UnknownKey(file, k, "the top level", []string{"sources"}))
			continue
		}
		list = v
	}
	if list == nil {
		if err := p.err(); err != nil {
			return nil, err
		}
		return nil, &ParseError{File: file, Line: top.Line, Msg: "no `sources:` list"}
	}
	if list.Kind != yaml.SequenceNode {
		return nil, &ParseError{File: file, Line: list.Line, Msg: "`sources:` must be a list of entries"}
	}
	seen := map[string]int{}
	for _, n := range list.Content {
		s := p.entry(n)
		if s == nil {
			continue
		}
		if s.Name != "" {
			if first, dup := seen[s.Name]; dup {
				p.errorf(s.Line, "duplicate source name %q (first at line %d): give each source its own name", s.Name, first)
			} else {
				seen[s.Name] = s.Line
			}
		}
		p.validate(s, requireHash)
		cfg.Sources = append(cfg.Sources, s)
	}
	if err := p.err(); err != nil {
		return nil, err
	}
	return cfg, nil
}

type parser struct {
	file string
	errs []error
}

func (p *parser) errorf(line int, format string, args ...any) {
	p.errs = append(p.errs, &ParseError{File: p.file, Line: line, Msg: fmt.Sprintf(format, args...)})
}

func (p *parser) err() error { return errors.Join(p.errs...) }

// entry reads one list item into a Source, reporting unknown and mistyped
// keys. It returns nil when the item is not a mapping.
func (p *parser) entry(n *yaml.Node) *Source {
	if n.Kind != yaml.MappingNode {
		p.errorf(n.Line, "each source must be a mapping of keys (name, kind, version, hash, ...)")
		return nil
	}
	s := &Source{Line: n.Line, fields: map[string]pos{}}
	strs := map[string]*string{
		"name": &s.Name, "version": &s.Version, "hash": &s.Hash, "track": &s.Track,
		"module": &s.Module, "replace-local": &s.ReplaceLocal,
		"package": &s.Package, "arch": &s.Arch, "url": &s.URL,
	}
	var kind string
	strs["kind"] = &kind
	for i := 0; i+1 < len(n.Content); i += 2 {
		k, v := n.Content[i], n.Content[i+1]
		s.fields[k.Value] = pos{v.Line, v.Column, n.Style&yaml.FlowStyle != 0}
		if k.Value == "packages" {
			if v.Kind != yaml.SequenceNode {
				p.errorf(v.Line, "`packages` must be a list of import paths")
				continue
			}
			for _, e := range v.Content {
				if e.Kind != yaml.ScalarNode || e.Tag != "!!str" {
					p.errorf(e.Line, "`packages` entries must be import paths (strings)")
					continue
				}
				s.Packages = append(s.Packages, e.Value)
			}
			continue
		}
		dst, ok := strs[k.Value]
		if !ok {
			p.errs = append(p.errs, yamlfile.UnknownKey(p.file, k, entryContext(n), entryKeys(n)))
			continue
		}
		if v.Kind != yaml.ScalarNode || (v.Tag != "!!str" && v.Tag != "!!int" && v.Tag != "!!float") {
			p.errorf(v.Line, "`%s` must be a plain string", k.Value)
			continue
		}
		*dst = v.Value
	}
	s.Kind = Kind(kind)
	return s
}

// entryContext names a source entry in messages.
func entryContext(n *yaml.Node) string {
	if name := entryValue(n, "name"); name != "" {
		return fmt.Sprintf("source %q", name)
	}
	return "a source"
}

// entryKeys are the keys a source entry may have: the common ones, and
// those of its kind (of every kind when it has none yet).
func entryKeys(n *yaml.Node) []string {
	keys := []string{"name", "kind", "version", "hash", "track"}
	if k, ok := kindFields[Kind(entryValue(n, "kind"))]; ok {
		return append(keys, k...)
	}
	return append(keys, allKindKeys...)
}

// entryValue is the scalar value of key in mapping n, or "".
func entryValue(n *yaml.Node, key string) string {
	for i := 0; i+1 < len(n.Content); i += 2 {
		if n.Content[i].Value == key && n.Content[i+1].Kind == yaml.ScalarNode {
			return n.Content[i+1].Value
		}
	}
	return ""
}

var (
	nameRE      = regexp.MustCompile(`^[a-z0-9][a-z0-9-]*$`)
	debNameRE   = regexp.MustCompile(`^[a-z0-9][a-z0-9+.-]+$`)
	debVerRE    = regexp.MustCompile(`^([0-9]+:)?[0-9][A-Za-z0-9.+~-]*$`)
	debArchRE   = regexp.MustCompile(`^[a-z0-9-]+$`)
	floatingRE  = regexp.MustCompile(`^(?i:latest|stable|main|master|head|trunk|dev|develop|nightly|tip|current|unstable|testing|release)$`)
	hexRE       = regexp.MustCompile(`^[0-9a-f]*$`)
	kindFields  = map[Kind][]string{GoMod: {"module", "packages", "replace-local"}, Deb: {"package", "arch"}, DebSrc: {"package"}, Archive: {"url"}, Npm: {"package"}}
	allKindKeys = []string{"module", "packages", "replace-local", "package", "arch", "url"}
)

// validate checks one entry and reports every problem with its fix.
func (p *parser) validate(s *Source, requireHash bool) {
	at := func(key string) int {
		if q, ok := s.fields[key]; ok {
			return q.line
		}
		return s.Line
	}
	who := fmt.Sprintf("source %q", s.Name)
	switch {
	case s.Name == "":
		p.errorf(s.Line, "source without a name: add `name:` (lower-case letters, digits and dashes)")
		who = "source"
	case !nameRE.MatchString(s.Name):
		p.errorf(at("name"), "source name %q is not valid: use lower-case letters, digits and dashes, starting with a letter or digit", s.Name)
	case s.Name == "go":
		// Its lock would be config/locks/go.mod, which Go takes for a module.
		p.errorf(at("name"), "source name \"go\" is reserved (its lock would be a go.mod): call it toolchain or go-something")
	}
	if _, ok := kindFields[s.Kind]; !ok {
		if s.Kind == "" {
			p.errorf(s.Line, "%s has no kind: add `kind:` gomod, deb, debsrc, archive or npm", who)
		} else {
			p.errorf(at("kind"), "%s: unknown kind %q: use gomod, deb, debsrc, archive or npm", who, s.Kind)
		}
		return
	}
	for _, k := range allKindKeys {
		if _, given := s.fields[k]; given && !contains(kindFields[s.Kind], k) {
			p.errorf(at(k), "%s: `%s` does not apply to kind %s: remove it", who, k, s.Kind)
		}
	}
	if s.Version == "" {
		p.errorf(s.Line, "%s has no version: add `version:` with an exact release", who)
	} else if floatingRE.MatchString(s.Version) {
		p.errorf(at("version"), "%s: version %q names a moving target, not a release: pin an exact version (`stack sources update %s` finds the newest)", who, s.Version, s.Name)
	}
	switch s.Kind {
	case GoMod:
		p.validateGoMod(s, who, at)
	case Deb:
		p.validateDeb(s, who, at)
	case DebSrc:
		p.validateDebSrc(s, who, at)
	case Archive:
		p.validateArchive(s, who, at)
	case Npm:
		p.validateNpm(s, who, at)
	}
	if s.Hash == "" {
		if requireHash {
			p.errorf(s.Line, "%s has no hash: run `stack sources update %s` to compute and add it", who, s.Name)
		}
		return
	}
	if msg := checkHash(s.Kind, s.Hash); msg != "" {
		p.errorf(at("hash"), "%s: %s; `stack sources update %s --version %s` recomputes it", who, msg, s.Name, s.Version)
	}
}

func (p *parser) validateGoMod(s *Source, who string, at func(string) int) {
	if s.Module == "" {
		p.errorf(s.Line, "%s has no module: add `module:` with the Go module path", who)
	} else if err := module.CheckPath(s.Module); err != nil {
		p.errorf(at("module"), "%s: module path %q is not valid: %v", who, s.Module, err)
	}
	if s.Version != "" && !floatingRE.MatchString(s.Version) {
		if !semver.IsValid(s.Version) || semver.Canonical(s.Version) != s.Version && semver.Canonical(s.Version)+"+incompatible" != s.Version {
			p.errorf(at("version"), "%s: version %q is not an exact Go module version: use a tag like v1.2.3 or a pseudo-version, never a branch", who, s.Version)
		} else if s.Module != "" {
			if err := module.Check(s.Module, s.Version); err != nil {
				p.errorf(at("version"), "%s: %v", who, err)
			}
		}
	}
	if s.ReplaceLocal != "" && (!semver.IsValid(s.ReplaceLocal) || semver.Canonical(s.ReplaceLocal) != s.ReplaceLocal) {
		p.errorf(at("replace-local"), "%s: replace-local %q is not an exact module version like v0.36.3", who, s.ReplaceLocal)
	}
	for _, pkg := range s.Packages {
		if err := module.CheckImportPath(pkg); err != nil {
			p.errorf(at("packages"), "%s: package %q is not a valid import path: %v", who, pkg, err)
		} else if s.Module != "" && pkg != s.Module && !strings.HasPrefix(pkg, s.Module+"/") {
			p.errorf(at("packages"), "%s: package %q is not in module %s: list packages of the source's own module", who, pkg, s.Module)
		}
	}
}

func (p *parser) validateDeb(s *Source, who string, at func(string) int) {
	if s.Package == "" {
		p.errorf(s.Line, "%s has no package: add `package:` with the Debian package name", who)
	} else if !debNameRE.MatchString(s.Package) {
		p.errorf(at("package"), "%s: %q is not a Debian package name", who, s.Package)
	}
	if s.Version != "" && !floatingRE.MatchString(s.Version) && !debVerRE.MatchString(s.Version) {
		p.errorf(at("version"), "%s: %q is not an exact Debian version (like 1.1.5+ds1-1+deb12u1): `apt-cache policy %s` shows them", who, s.Version, s.Package)
	}
	if s.Arch != "" && !debArchRE.MatchString(s.Arch) {
		p.errorf(at("arch"), "%s: %q is not a Debian architecture (like amd64 or all)", who, s.Arch)
	}
}

func (p *parser) validateArchive(s *Source, who string, at func(string) int) {
	if s.URL == "" {
		p.errorf(s.Line, "%s has no url: add `url:` with the address of the tarball", who)
		return
	}
	u, err := url.Parse(s.ArchiveURL())
	switch {
	case err != nil:
		p.errorf(at("url"), "%s: url %q is not valid: %v", who, s.URL, err)
	case u.Scheme != "https" && u.Scheme != "http" || u.Host == "":
		p.errorf(at("url"), "%s: url %q must be an http or https address", who, s.URL)
	case u.User != nil:
		p.errorf(at("url"), "%s: url must not carry credentials: put them in the environment or a netrc, never in sources.yaml", who)
	}
}

// checkHash returns what is wrong with hash for a source of kind k, or "".
func checkHash(k Kind, hash string) string {
	if k == Npm {
		return checkIntegrity(hash)
	}
	if k == GoMod {
		b64, ok := strings.CutPrefix(hash, "h1:")
		if !ok {
			return fmt.Sprintf("hash %q must be a Go module hash starting with h1:", hash)
		}
		raw, err := base64.StdEncoding.DecodeString(b64)
		if err != nil {
			return fmt.Sprintf("hash %q is not valid base64", hash)
		}
		if len(raw) != 32 {
			return fmt.Sprintf("hash %q holds %d bytes, want 32 (44 base64 characters)", hash, len(raw))
		}
		return ""
	}
	h, ok := strings.CutPrefix(hash, "sha256:")
	if !ok {
		return fmt.Sprintf("hash %q must start with sha256:", hash)
	}
	if len(h) != 64 {
		return fmt.Sprintf("hash %q has %d hex digits, want 64", hash, len(h))
	}
	if !hexRE.MatchString(h) {
		return fmt.Sprintf("hash %q must be lower-case hex", hash)
	}
	if _, err := hex.DecodeString(h); err != nil {
		return fmt.Sprintf("hash %q is not hex", hash)
	}
	return ""
}

func contains(list []string, s string) bool {
	for _, e := range list {
		if e == s {
			return true
		}
	}
	return false
}

func expandVersion(s, version string) string {
	return strings.ReplaceAll(s, "{version}", version)
}
