// Package image owns the stack's container images: the in-tree definitions
// under images/<name>/image.yaml, their assembly into deterministic OCI
// images FROM scratch, the OCI image layout and tarballs they are written
// to and read from, the audit that checks an image keeps the stack's
// promises (static binaries only, no shell, non-root, nothing foreign), and
// the file-by-file diff that explains why two builds differ.
//
// A definition is small and strict:
//
//	from: base                  # another definition under images/ (optional)
//	binaries:
//	  - package: ./cmd/health   # a package of this repository, or
//	    path: /bin/health
//	  - source: kubernetes      # a gomod source of config/sources.yaml
//	    package: k8s.io/kubernetes/cmd/kubelet
//	    path: /bin/kubelet
//	    ldflags: [-X=k8s.io/component-base/version.gitVersion=v1.36.3]
//	    tags: [providerless]
//	  - source: gitea           # recipe: built by a recipe of package build
//	    package: code.gitea.io/gitea
//	    recipe: gitea
//	    path: /bin/gitea
//	  - source: git             # a debsrc source built by the git recipe
//	    package: git
//	    recipe: git
//	    path: /bin/git
//	    links:                  # hard links to the binary, for programs
//	      - /usr/libexec/git-core/git-upload-pack  # that act on their name
//	files:
//	  - path: /etc/passwd
//	    mode: 0644              # octal; default 0644
//	    content: |
//	      stack:x:65532:65532::/home/stack:/nonexistent
//	  - path: /etc/motd
//	    src: motd               # a file beside image.yaml
//	dirs:
//	  - path: /tmp
//	    mode: 1777              # default 0755
//	  - path: /var/lib/stack
//	    owner: 65532:65532      # default 0:0, for files too
//	user: 65532:65532           # numeric uid:gid, never 0
//	entrypoint: [/bin/health]
//	cmd: []
//	env: {PATH: /bin}
//	ports: [8080/tcp]
//	volumes: [/var/lib/stack]
//	workdir: /
//	labels: {org.opencontainers.image.source: https://example.org/stack}
//
// The file is read by the rules of every config file (package yamlfile:
// one document, no key twice, no anchors, aliases or custom tags); unknown
// fields and wrong types are errors naming the file and line too.
package image

import (
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"io/fs"
	"os"
	"path"
	"path/filepath"
	"regexp"
	"slices"
	"sort"
	"strconv"
	"strings"

	"go.yaml.in/yaml/v3"

	"github.com/hashbang/stack/internal/build"
	"github.com/hashbang/stack/internal/yamlfile"
)

// FileName is the name of a definition file inside images/<name>/.
const FileName = "image.yaml"

// maxSrcSize bounds a file taken into an image from beside its definition.
const maxSrcSize = 16 << 20

// Definition is one images/<name>/image.yaml, with its base resolved.
type Definition struct {
	Name string `json:"name"`
	// File is the definition file's path.
	File string `json:"-"`
	// From names the base definition; Base is it, loaded.
	From string      `json:"from,omitempty"`
	Base *Definition `json:"-"`

	Binaries   []Binary          `json:"binaries,omitempty"`
	Files      []File            `json:"files,omitempty"`
	Dirs       []Dir             `json:"dirs,omitempty"`
	User       *Owner            `json:"user,omitempty"`
	Entrypoint []string          `json:"entrypoint,omitempty"`
	Cmd        []string          `json:"cmd,omitempty"`
	Env        map[string]string `json:"env,omitempty"`
	Ports      []string          `json:"ports,omitempty"`
	Volumes    []string          `json:"volumes,omitempty"`
	Workdir    string            `json:"workdir,omitempty"`
	Labels     map[string]string `json:"labels,omitempty"`

	// Set says which of the optional scalar and list fields the file set,
	// so that an explicitly empty cmd overrides the base's.
	Set map[string]bool `json:"-"`
}

// Binary is a Go program built into the image.
type Binary struct {
	// Source is a gomod source of config/sources.yaml, or empty for a
	// package of this repository.
	Source string `json:"source,omitempty"`
	// Package is ./path inside this repository, or an import path inside
	// Source's module.
	Package string   `json:"package"`
	Path    string   `json:"path"`
	LDFlags []string `json:"ldflags,omitempty"`
	Tags    []string `json:"tags,omitempty"`
	// Recipe names a build recipe of package build (gitea) that makes the
	// program from Source instead of a plain go build.
	Recipe string `json:"recipe,omitempty"`
	// Links are further paths of the same program in the image, as hard
	// links to Path: for a program that acts on the name it is run by (git
	// runs as git-upload-pack).
	Links []string `json:"links,omitempty"`
	Line  int      `json:"-"`
}

// File is a file put into the image from the definition.
type File struct {
	Path  string `json:"path"`
	Mode  Mode   `json:"mode"`
	Owner Owner  `json:"owner"`
	// Data is the content, inline or read from Src at load time.
	Data []byte `json:"data"`
	Src  string `json:"src,omitempty"`
	Line int    `json:"-"`
}

// Dir is a directory the image holds, with its mode and owner.
type Dir struct {
	Path  string `json:"path"`
	Mode  Mode   `json:"mode"`
	Owner Owner  `json:"owner"`
	Line  int    `json:"-"`
}

// Mode is a permission mode, including the setuid, setgid and sticky bits,
// as tar stores it (0o1777 for a sticky, world-writable directory).
type Mode uint32

func (m Mode) String() string { return fmt.Sprintf("%04o", uint32(m)) }

// Owner is a numeric uid and gid.
type Owner struct {
	UID int `json:"uid"`
	GID int `json:"gid"`
}

func (o Owner) String() string { return fmt.Sprintf("%d:%d", o.UID, o.GID) }

var (
	nameRE  = regexp.MustCompile(`^[a-z0-9][a-z0-9._-]{0,62}$`)
	pathRE  = regexp.MustCompile(`^(/[A-Za-z0-9._@+=,-]+)+$`)
	envRE   = regexp.MustCompile(`^[A-Za-z_][A-Za-z0-9_]*$`)
	labelRE = regexp.MustCompile(`^[A-Za-z0-9][A-Za-z0-9._/-]*$`)
	// An import path inside a module, or ./dir inside this repository.
	importRE = regexp.MustCompile(`^[A-Za-z0-9][A-Za-z0-9._~-]*(/[A-Za-z0-9._~-]+)*$`)
	localRE  = regexp.MustCompile(`^\.(/[A-Za-z0-9._~-]+)*$`)
)

// ValidName reports whether name can name an image: lower-case letters,
// digits, '.', '_' and '-', starting with a letter or digit.
func ValidName(name string) bool { return nameRE.MatchString(name) }

// Parse reads one definition file's content. file is used in errors only;
// name is the definition's name (its directory). Files given by src are not
// read: Load does that.
func Parse(file, name string, data []byte) (*Definition, error) {
	if !ValidName(name) {
		return nil, fmt.Errorf("%s: %q is not a valid image name: use lower-case letters, digits, '.', '_' and '-'", file, name)
	}
	d := &decoder{file: file}
	root, err := yamlfile.Parse(file, data, yamlfile.Options{Empty: "write at least one field of the definition"})
	if err != nil {
		// A definition reports its first problem only, as the checks below.
		return nil, yamlfile.First(err)
	}
	def := &Definition{Name: name, File: file, Set: map[string]bool{}}
	err = d.mapping(root, "definition", map[string]func(*yaml.Node) error{
		"from": func(n *yaml.Node) (err error) {
			if def.From, err = d.str(n, "from"); err != nil {
				return err
			}
			if !ValidName(def.From) {
				return d.errf(n, "from: %q is not an image name", def.From)
			}
			if def.From == name {
				return d.errf(n, "from: %s cannot be its own base", name)
			}
			return nil
		},
		"binaries": func(n *yaml.Node) error {
			return d.seq(n, "binaries", func(n *yaml.Node) error { return d.binaryEntry(def, n) })
		},
		"files": func(n *yaml.Node) error {
			return d.seq(n, "files", func(n *yaml.Node) error { return d.fileEntry(def, n) })
		},
		"dirs": func(n *yaml.Node) error {
			return d.seq(n, "dirs", func(n *yaml.Node) error { return d.dirEntry(def, n) })
		},
		"user": func(n *yaml.Node) error {
			o, err := d.owner(n, "user")
			if err != nil {
				return err
			}
			if o.UID == 0 || o.GID == 0 {
				return d.errf(n, "user: %s is root; images run as an unprivileged uid:gid such as 65532:65532", o)
			}
			def.User = &o
			return nil
		},
		"entrypoint": func(n *yaml.Node) (err error) {
			def.Set["entrypoint"] = true
			def.Entrypoint, err = d.strs(n, "entrypoint")
			return err
		},
		"cmd": func(n *yaml.Node) (err error) {
			def.Set["cmd"] = true
			def.Cmd, err = d.strs(n, "cmd")
			return err
		},
		"env": func(n *yaml.Node) (err error) {
			if def.Env, err = d.strMap(n, "env"); err != nil {
				return err
			}
			for k, v := range def.Env {
				if !envRE.MatchString(k) {
					return d.errf(n, "env: %q is not a variable name (letters, digits, _)", k)
				}
				if strings.ContainsRune(v, 0) {
					return d.errf(n, "env: %s holds a NUL byte", k)
				}
			}
			return nil
		},
		"ports": func(n *yaml.Node) error {
			return d.seq(n, "ports", func(n *yaml.Node) error {
				p, err := d.port(n)
				if err != nil {
					return err
				}
				if contains(def.Ports, p) {
					return d.errf(n, "ports: %s listed twice", p)
				}
				def.Ports = append(def.Ports, p)
				return nil
			})
		},
		"volumes": func(n *yaml.Node) error {
			return d.seq(n, "volumes", func(n *yaml.Node) error {
				p, err := d.path(n, "volumes")
				if err != nil {
					return err
				}
				if contains(def.Volumes, p) {
					return d.errf(n, "volumes: %s listed twice", p)
				}
				def.Volumes = append(def.Volumes, p)
				return nil
			})
		},
		"workdir": func(n *yaml.Node) (err error) {
			def.Workdir, err = d.path(n, "workdir")
			return err
		},
		"labels": func(n *yaml.Node) (err error) {
			if def.Labels, err = d.strMap(n, "labels"); err != nil {
				return err
			}
			for k := range def.Labels {
				if !labelRE.MatchString(k) {
					return d.errf(n, "labels: %q is not a label key", k)
				}
			}
			return nil
		},
	})
	if err != nil {
		return nil, err
	}
	// Paths are unique within the definition; across the chain, resolve
	// checks again.
	seen := map[string]int{}
	for _, p := range def.paths() {
		if line, ok := seen[p.path]; ok {
			return nil, fmt.Errorf("%s:%d: %s is already declared at line %d", file, p.line, p.path, line)
		}
		seen[p.path] = p.line
	}
	return def, nil
}

type declared struct {
	path string
	line int
	dir  bool
	def  *Definition
}

// paths lists every path the definition itself declares.
func (def *Definition) paths() []declared {
	var ps []declared
	for _, b := range def.Binaries {
		ps = append(ps, declared{b.Path, b.Line, false, def})
		for _, l := range b.Links {
			ps = append(ps, declared{l, b.Line, false, def})
		}
	}
	for _, f := range def.Files {
		ps = append(ps, declared{f.Path, f.Line, false, def})
	}
	for _, d := range def.Dirs {
		ps = append(ps, declared{d.Path, d.Line, true, def})
	}
	return ps
}

// Chain returns the definition and its bases, the root base first.
func (def *Definition) Chain() []*Definition {
	var c []*Definition
	for d := def; d != nil; d = d.Base {
		c = append([]*Definition{d}, c...)
	}
	return c
}

// AllBinaries returns the binaries of the whole chain, base first.
func (def *Definition) AllBinaries() []Binary {
	var bs []Binary
	for _, d := range def.Chain() {
		bs = append(bs, d.Binaries...)
	}
	return bs
}

// Digest is a sha256 over everything the definition chain puts into an
// image (file contents included, binaries by package only), in a canonical
// encoding: a part of an input-addressed cache key.
func (def *Definition) Digest() string {
	h := sha256.New()
	for _, d := range def.Chain() {
		b, err := json.Marshal(d)
		if err != nil {
			panic(err) // plain data: cannot fail
		}
		h.Write(b)
		h.Write([]byte{'\n'})
	}
	return "sha256:" + hex.EncodeToString(h.Sum(nil))
}

// Load reads the definition name from imagesDir and the chain of its bases.
func Load(imagesDir, name string) (*Definition, error) {
	if !ValidName(name) {
		return nil, fmt.Errorf("%q is not a valid image name: use lower-case letters, digits, '.', '_' and '-'", name)
	}
	return load(imagesDir, name, map[string]*Definition{}, nil)
}

// LoadAll reads every definition in imagesDir (each directory holding an
// image.yaml), sorted by name.
func LoadAll(imagesDir string) ([]*Definition, error) {
	ents, err := os.ReadDir(imagesDir)
	if err != nil {
		return nil, fmt.Errorf("read image definitions: %w", err)
	}
	loaded := map[string]*Definition{}
	var defs []*Definition
	for _, e := range ents {
		if !e.IsDir() || strings.HasPrefix(e.Name(), ".") {
			continue
		}
		if _, err := os.Stat(filepath.Join(imagesDir, e.Name(), FileName)); errors.Is(err, fs.ErrNotExist) {
			return nil, fmt.Errorf("%s has no %s: add one or move the directory out of images/", filepath.Join(imagesDir, e.Name()), FileName)
		}
		if !ValidName(e.Name()) {
			return nil, fmt.Errorf("%s: %q is not a valid image name: use lower-case letters, digits, '.', '_' and '-'", filepath.Join(imagesDir, e.Name()), e.Name())
		}
		d, err := load(imagesDir, e.Name(), loaded, nil)
		if err != nil {
			return nil, err
		}
		defs = append(defs, d)
	}
	sort.Slice(defs, func(i, j int) bool { return defs[i].Name < defs[j].Name })
	return defs, nil
}

func load(imagesDir, name string, loaded map[string]*Definition, stack []string) (*Definition, error) {
	if d, ok := loaded[name]; ok {
		return d, nil
	}
	if contains(stack, name) {
		return nil, fmt.Errorf("image %s: base cycle %s -> %s: a definition cannot be its own base", stack[0], strings.Join(stack, " -> "), name)
	}
	dir := filepath.Join(imagesDir, name)
	file := filepath.Join(dir, FileName)
	data, err := os.ReadFile(file)
	if err != nil {
		if errors.Is(err, fs.ErrNotExist) {
			if len(stack) > 0 {
				return nil, fmt.Errorf("image %s: base %q is not defined: no %s", stack[len(stack)-1], name, file)
			}
			return nil, fmt.Errorf("image %s is not defined: no %s", name, file)
		}
		return nil, err
	}
	def, err := Parse(file, name, data)
	if err != nil {
		return nil, err
	}
	if err := def.readSrcs(dir); err != nil {
		return nil, err
	}
	if def.From != "" {
		base, err := load(imagesDir, def.From, loaded, append(stack, name))
		if err != nil {
			return nil, err
		}
		def.Base = base
	}
	if err := def.checkChain(); err != nil {
		return nil, err
	}
	loaded[name] = def
	return def, nil
}

// readSrcs reads the files given by src, confined to the definition's
// directory (no .., no symlinks leading out).
func (def *Definition) readSrcs(dir string) error {
	var root *os.Root
	for i := range def.Files {
		f := &def.Files[i]
		if f.Src == "" {
			continue
		}
		if root == nil {
			var err error
			if root, err = os.OpenRoot(dir); err != nil {
				return err
			}
			defer root.Close()
		}
		r, err := root.Open(filepath.FromSlash(f.Src))
		if err != nil {
			return fmt.Errorf("%s:%d: src %s: %w", def.File, f.Line, f.Src, err)
		}
		fi, err := r.Stat()
		if err == nil && !fi.Mode().IsRegular() {
			err = errors.New("not a regular file")
		}
		if err == nil && fi.Size() > maxSrcSize {
			err = fmt.Errorf("larger than %d bytes", maxSrcSize)
		}
		if err == nil {
			f.Data, err = io.ReadAll(io.LimitReader(r, maxSrcSize+1))
		}
		r.Close()
		if err != nil {
			return fmt.Errorf("%s:%d: src %s: %w", def.File, f.Line, f.Src, err)
		}
	}
	return nil
}

// checkChain refuses a path declared twice along the chain, and a path
// below a file.
func (def *Definition) checkChain() error {
	all := map[string]declared{}
	for _, d := range def.Chain() {
		for _, p := range d.paths() {
			if prev, ok := all[p.path]; ok {
				return fmt.Errorf("%s:%d: %s is already declared by %s at %s:%d: declare it once", d.File, p.line, p.path, prev.def.Name, prev.def.File, prev.line)
			}
			all[p.path] = p
		}
	}
	for _, p := range all {
		for dir := path.Dir(p.path); dir != "/"; dir = path.Dir(dir) {
			if q, ok := all[dir]; ok && !q.dir {
				return fmt.Errorf("%s:%d: %s is below %s, which %s declares as a file", p.def.File, p.line, p.path, dir, q.def.Name)
			}
		}
	}
	return nil
}

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

func keys[V any](m map[string]V) []string {
	ks := make([]string, 0, len(m))
	for k := range m {
		ks = append(ks, k)
	}
	sort.Strings(ks)
	return ks
}

func contains(list []string, s string) bool {
	for _, x := range list {
		if x == s {
			return true
		}
	}
	return false
}
