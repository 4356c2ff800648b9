package image

import (
	"errors"
	"fmt"
	"io"
	"io/fs"
	"os"
	"path"
	"path/filepath"
	"sort"
	"strings"
)

// The from: chain: loading a definition with its bases, and the checks
// that hold along the whole chain.

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

// Load reads the definition name from imagesDir and the chain of its bases.
func Load(imagesDir, name string) (*Definition, error) {
	if !ValidName(name) {
		return nil, fmt.Errorf("%q is not a valid image name: use lower-case letters, digits, '.', '_' and '-'", name)
	}
	return load(imagesDir, name, map[string]*Definition{}, nil)
}

// Names lists the images defined in imagesDir (each directory holding an
// image.yaml), sorted, without reading their definitions.
func Names(imagesDir string) ([]string, error) {
	ents, err := os.ReadDir(imagesDir)
	if err != nil {
		return nil, fmt.Errorf("read image definitions: %w", err)
	}
	var names []string
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
		names = append(names, e.Name())
	}
	sort.Strings(names)
	return names, nil
}

// LoadAll reads every definition in imagesDir (Names), sorted by name.
func LoadAll(imagesDir string) ([]*Definition, error) {
	names, err := Names(imagesDir)
	if err != nil {
		return nil, err
	}
	loaded := map[string]*Definition{}
	var defs []*Definition
	for _, name := range names {
		d, err := load(imagesDir, name, loaded, nil)
		if err != nil {
			return nil, err
		}
		defs = append(defs, d)
	}
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
