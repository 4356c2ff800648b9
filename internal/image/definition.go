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
	"fmt"
	"regexp"
	"sort"
	"strings"

	"go.yaml.in/yaml/v3"

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
