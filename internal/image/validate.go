package image

import (
	"errors"
	"fmt"
	"path"
	"path/filepath"
	"slices"
	"strconv"
	"strings"

	"go.yaml.in/yaml/v3"

	"github.com/hashbang/stack/internal/build"
	"github.com/hashbang/stack/internal/yamlfile"
)

// decoder turns the checked YAML nodes of a definition (yamlfile.Parse:
// no duplicate keys, anchors, aliases or custom tags) into its fields,
// strictly.
type decoder struct{ file string }

func (d *decoder) errf(n *yaml.Node, format string, args ...any) error {
	return yamlfile.Errorf(d.file, n, format, args...)
}

func (d *decoder) mapping(n *yaml.Node, what string, fields map[string]func(*yaml.Node) error) error {
	if n.Kind != yaml.MappingNode {
		return d.errf(n, "%s must be a mapping of fields", what)
	}
	for i := 0; i+1 < len(n.Content); i += 2 {
		k, v := n.Content[i], n.Content[i+1]
		set, ok := fields[k.Value]
		if !ok {
			return yamlfile.UnknownKey(d.file, k, what, keys(fields))
		}
		if err := set(v); err != nil {
			return err
		}
	}
	return nil
}

func (d *decoder) seq(n *yaml.Node, what string, each func(*yaml.Node) error) error {
	if n.Kind != yaml.SequenceNode {
		return d.errf(n, "%s must be a list", what)
	}
	for _, c := range n.Content {
		if err := each(c); err != nil {
			return err
		}
	}
	return nil
}

// scalar returns a scalar's text, whatever its YAML type.
func (d *decoder) scalar(n *yaml.Node, what string) (string, error) {
	if n.Kind != yaml.ScalarNode || n.Tag == "!!null" {
		return "", d.errf(n, "%s must be a single value", what)
	}
	return n.Value, nil
}

// str returns a string scalar; a number or boolean must be quoted.
func (d *decoder) str(n *yaml.Node, what string) (string, error) {
	s, err := d.scalar(n, what)
	if err != nil {
		return "", d.errf(n, "%s must be a string", what)
	}
	if n.Tag != "!!str" {
		return "", d.errf(n, "%s must be a string, not %s: quote it", what, strings.TrimPrefix(n.Tag, "!!"))
	}
	return s, nil
}

func (d *decoder) strs(n *yaml.Node, what string) ([]string, error) {
	out := []string{}
	err := d.seq(n, what, func(c *yaml.Node) error {
		s, err := d.str(c, what+" item")
		out = append(out, s)
		return err
	})
	return out, err
}

func (d *decoder) strMap(n *yaml.Node, what string) (map[string]string, error) {
	if n.Kind != yaml.MappingNode {
		return nil, d.errf(n, "%s must be a mapping of names to strings", what)
	}
	m := map[string]string{}
	for i := 0; i+1 < len(n.Content); i += 2 {
		k, v := n.Content[i], n.Content[i+1]
		ks, err := d.scalar(k, what+" name")
		if err != nil {
			return nil, err
		}
		vs, err := d.str(v, what+" "+ks)
		if err != nil {
			return nil, err
		}
		m[ks] = vs
	}
	return m, nil
}

// path returns an absolute, clean path of safe characters.
func (d *decoder) path(n *yaml.Node, what string) (string, error) {
	p, err := d.str(n, what)
	if err != nil {
		return "", err
	}
	if err := checkPath(p); err != nil {
		return "", d.errf(n, "%s: %v", what, err)
	}
	return p, nil
}

func checkPath(p string) error {
	switch {
	case !strings.HasPrefix(p, "/"):
		return fmt.Errorf("%q must be an absolute path", p)
	case p == "/":
		return errors.New("/ itself cannot be declared")
	case path.Clean(p) != p:
		return fmt.Errorf("%q is not clean: write %s", p, path.Clean(p))
	case !pathRE.MatchString(p):
		return fmt.Errorf("%q holds characters other than letters, digits and ._@+=,-", p)
	case len(p) > 200:
		return fmt.Errorf("%q is longer than 200 bytes", p)
	}
	for _, e := range strings.Split(p[1:], "/") {
		if e == "." || e == ".." || strings.HasPrefix(e, ".wh.") {
			return fmt.Errorf("%q holds a reserved name %q", p, e)
		}
	}
	return nil
}

func (d *decoder) mode(n *yaml.Node, what string) (Mode, error) {
	s, err := d.scalar(n, what)
	if err != nil {
		return 0, err
	}
	s = strings.TrimPrefix(s, "0o")
	v, err := strconv.ParseUint(s, 8, 32)
	if err != nil || v > 0o7777 {
		return 0, d.errf(n, "%s: %q is not an octal mode such as 0644 or 1777", what, n.Value)
	}
	return Mode(v), nil
}

// owner reads uid:gid, both numeric.
func (d *decoder) owner(n *yaml.Node, what string) (Owner, error) {
	s, err := d.scalar(n, what)
	if err != nil {
		return Owner{}, err
	}
	u, g, ok := strings.Cut(s, ":")
	uid, err1 := strconv.ParseUint(u, 10, 31)
	gid, err2 := strconv.ParseUint(g, 10, 31)
	if !ok || err1 != nil || err2 != nil || uid > 1<<21-1 || gid > 1<<21-1 {
		return Owner{}, d.errf(n, "%s: %q is not a numeric uid:gid such as 65532:65532", what, s)
	}
	return Owner{UID: int(uid), GID: int(gid)}, nil
}

// port reads 8080, 8080/tcp or 53/udp and returns the 8080/tcp form.
func (d *decoder) port(n *yaml.Node) (string, error) {
	s, err := d.scalar(n, "ports")
	if err != nil {
		return "", err
	}
	num, proto, ok := strings.Cut(s, "/")
	if !ok {
		proto = "tcp"
	}
	p, err := strconv.ParseUint(num, 10, 16)
	if err != nil || p == 0 || (proto != "tcp" && proto != "udp" && proto != "sctp") || num != strconv.FormatUint(p, 10) {
		return "", d.errf(n, "ports: %q is not a port such as 8080 or 53/udp", s)
	}
	return fmt.Sprintf("%d/%s", p, proto), nil
}

func (d *decoder) binaryEntry(def *Definition, n *yaml.Node) error {
	b := Binary{Line: n.Line}
	err := d.mapping(n, "binary", map[string]func(*yaml.Node) error{
		"source":  func(n *yaml.Node) (err error) { b.Source, err = d.str(n, "source"); return err },
		"package": func(n *yaml.Node) (err error) { b.Package, err = d.str(n, "package"); return err },
		"path":    func(n *yaml.Node) (err error) { b.Path, err = d.path(n, "path"); return err },
		"ldflags": func(n *yaml.Node) (err error) { b.LDFlags, err = d.strs(n, "ldflags"); return err },
		"tags":    func(n *yaml.Node) (err error) { b.Tags, err = d.strs(n, "tags"); return err },
		"recipe":  func(n *yaml.Node) (err error) { b.Recipe, err = d.str(n, "recipe"); return err },
		"links": func(n *yaml.Node) error {
			return d.seq(n, "links", func(c *yaml.Node) error {
				l, err := d.path(c, "links item")
				b.Links = append(b.Links, l)
				return err
			})
		},
	})
	if err != nil {
		return err
	}
	switch {
	case b.Package == "":
		return d.errf(n, "binary needs a package (./cmd/x of this repository, or an import path with source)")
	case b.Path == "":
		return d.errf(n, "binary %s needs a path in the image, such as /bin/%s", b.Package, path.Base(b.Package))
	case b.Source == "" && !localRE.MatchString(b.Package):
		return d.errf(n, "binary package %q: without source, package must be ./path inside this repository", b.Package)
	case b.Source != "" && !nameRE.MatchString(b.Source):
		return d.errf(n, "binary source %q is not a source name", b.Source)
	case b.Recipe != "" && !slices.Contains(build.Recipes(), b.Recipe):
		return d.errf(n, "binary recipe %q is not known: use one of %s, or remove it for a plain go build", b.Recipe, strings.Join(build.Recipes(), ", "))
	case b.Recipe != "" && b.Source == "":
		return d.errf(n, "binary recipe %s needs the source it builds (source: NAME)", b.Recipe)
	case b.Source != "" && !importRE.MatchString(b.Package):
		return d.errf(n, "binary package %q: with source, package must be an import path inside that module", b.Package)
	}
	for i, l := range b.Links {
		if l == b.Path || slices.Contains(b.Links[:i], l) {
			return d.errf(n, "links: %s is listed twice (or is the binary's own path): list each other path once", l)
		}
	}
	for _, f := range b.LDFlags {
		if !strings.HasPrefix(f, "-") || strings.ContainsAny(f, " \t\n'\"\\") {
			return d.errf(n, "ldflags: %q must be one flag without spaces or quotes, such as -X=main.version=v1", f)
		}
	}
	for _, t := range b.Tags {
		if !envRE.MatchString(strings.ReplaceAll(t, ".", "_")) {
			return d.errf(n, "tags: %q is not a build tag", t)
		}
	}
	def.Binaries = append(def.Binaries, b)
	return nil
}

func (d *decoder) fileEntry(def *Definition, n *yaml.Node) error {
	f := File{Mode: 0o644, Line: n.Line}
	var content *string
	err := d.mapping(n, "file", map[string]func(*yaml.Node) error{
		"path":  func(n *yaml.Node) (err error) { f.Path, err = d.path(n, "path"); return err },
		"mode":  func(n *yaml.Node) (err error) { f.Mode, err = d.mode(n, "mode"); return err },
		"owner": func(n *yaml.Node) (err error) { f.Owner, err = d.owner(n, "owner"); return err },
		"src":   func(n *yaml.Node) (err error) { f.Src, err = d.str(n, "src"); return err },
		"content": func(n *yaml.Node) error {
			s, err := d.str(n, "content")
			content = &s
			return err
		},
	})
	if err != nil {
		return err
	}
	switch {
	case f.Path == "":
		return d.errf(n, "file needs a path")
	case content == nil && f.Src == "":
		return d.errf(n, "file %s needs content or src", f.Path)
	case content != nil && f.Src != "":
		return d.errf(n, "file %s has both content and src: keep one", f.Path)
	case f.Src != "" && (!filepath.IsLocal(f.Src) || strings.Contains(f.Src, `\`)):
		return d.errf(n, "file %s: src %q must be a path inside the definition's directory", f.Path, f.Src)
	}
	if content != nil {
		f.Data = []byte(*content)
	}
	def.Files = append(def.Files, f)
	return nil
}

func (d *decoder) dirEntry(def *Definition, n *yaml.Node) error {
	dir := Dir{Mode: 0o755, Line: n.Line}
	err := d.mapping(n, "dir", map[string]func(*yaml.Node) error{
		"path":  func(n *yaml.Node) (err error) { dir.Path, err = d.path(n, "path"); return err },
		"mode":  func(n *yaml.Node) (err error) { dir.Mode, err = d.mode(n, "mode"); return err },
		"owner": func(n *yaml.Node) (err error) { dir.Owner, err = d.owner(n, "owner"); return err },
	})
	if err != nil {
		return err
	}
	if dir.Path == "" {
		return d.errf(n, "dir needs a path")
	}
	def.Dirs = append(def.Dirs, dir)
	return nil
}
