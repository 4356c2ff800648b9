package source

import (
	"bufio"
	"bytes"
	"context"
	"fmt"
	"os"
	"path/filepath"
	"runtime"
	"strings"

	"golang.org/x/mod/modfile"
	"golang.org/x/mod/module"
	"golang.org/x/mod/semver"

	"github.com/hashbang/stack/internal/atomicfile"
)

// A gomod source is built from a small consumer module that requires it:
// its go.mod carries the source's own replace, exclude and godebug lines
// (which Go ignores in a dependency), the source's packages as tool lines,
// and its go.sum pins every module the build needs. Both files are the
// source's lock, committed as config/locks/NAME.mod and NAME.sum.

// consumerPath is the module path of the consumer module of source name.
func consumerPath(name string) string { return "stack.local/source/" + name }

// Lock is the dependency lock of a gomod source.
type Lock struct {
	// Mod is the consumer module's go.mod.
	Mod []byte
	// Sum is its go.sum.
	Sum []byte
}

// LockFiles returns the paths of the lock of source name in dir.
func LockFiles(dir, name string) (mod, sum string) {
	return filepath.Join(dir, name+".mod"), filepath.Join(dir, name+".sum")
}

// ReadLock reads the lock of source name from dir.
func ReadLock(dir, name string) (*Lock, error) {
	modPath, sumPath := LockFiles(dir, name)
	mod, err := os.ReadFile(modPath)
	if err != nil {
		return nil, fmt.Errorf("lock of %s: %w (run `stack sources update %s` to create it)", name, err, name)
	}
	sum, err := os.ReadFile(sumPath)
	if err != nil {
		return nil, fmt.Errorf("lock of %s: %w (run `stack sources update %s` to create it)", name, err, name)
	}
	return &Lock{Mod: mod, Sum: sum}, nil
}

// Write writes the lock of source name into dir, each file atomically.
func (l *Lock) Write(dir, name string) error {
	modPath, sumPath := LockFiles(dir, name)
	if err := os.MkdirAll(dir, 0o755); err != nil {
		return err
	}
	if err := atomicfile.WriteFile(modPath, l.Mod, 0o644); err != nil {
		return err
	}
	return atomicfile.WriteFile(sumPath, l.Sum, 0o644)
}

// Materialize writes the consumer module into dir, ready for go commands.
func (l *Lock) Materialize(dir string) error {
	if err := os.WriteFile(filepath.Join(dir, "go.mod"), l.Mod, 0o644); err != nil {
		return err
	}
	return os.WriteFile(filepath.Join(dir, "go.sum"), l.Sum, 0o644)
}

// SumLine is one line of a go.sum.
type SumLine struct {
	Path, Version string
	// GoMod is true for a line pinning only the module's go.mod.
	GoMod bool
	Hash  string
}

// Mod returns the module version the line is about.
func (l SumLine) Mod() module.Version { return module.Version{Path: l.Path, Version: l.Version} }

// ParseSum parses go.sum content. file names it in errors.
func ParseSum(file string, data []byte) ([]SumLine, error) {
	var out []SumLine
	sc := bufio.NewScanner(bytes.NewReader(data))
	sc.Buffer(make([]byte, 0, 64*1024), 1<<20)
	for n := 1; sc.Scan(); n++ {
		line := strings.TrimSpace(sc.Text())
		if line == "" {
			continue
		}
		f := strings.Fields(line)
		if len(f) != 3 {
			return nil, &ParseError{File: file, Line: n, Msg: "want `module version hash`; regenerate the lock with `stack sources update`"}
		}
		l := SumLine{Path: f[0], Version: f[1], Hash: f[2]}
		if v, ok := strings.CutSuffix(l.Version, "/go.mod"); ok {
			l.Version, l.GoMod = v, true
		}
		if err := module.Check(l.Path, l.Version); err != nil {
			return nil, &ParseError{File: file, Line: n, Msg: err.Error()}
		}
		if msg := checkHash(GoMod, l.Hash); msg != "" {
			return nil, &ParseError{File: file, Line: n, Msg: msg}
		}
		out = append(out, l)
	}
	return out, sc.Err()
}

// Check reports whether the lock belongs to s: its consumer module requires
// exactly s.Module at s.Version, lists s.Packages as tools, and its go.sum
// pins the module to s.Hash.
func (l *Lock) Check(s *Source) error {
	modPath, sumPath := s.Name+".mod", s.Name+".sum"
	f, err := modfile.Parse(modPath, l.Mod, nil)
	if err != nil {
		return fmt.Errorf("lock of %s: %w", s.Name, err)
	}
	stale := fmt.Sprintf("run `stack sources update %s --version %s` to relock", s.Name, s.Version)
	if f.Module == nil || f.Module.Mod.Path != consumerPath(s.Name) {
		return fmt.Errorf("lock of %s: %s is not the lock of this source; %s", s.Name, modPath, stale)
	}
	found := false
	for _, r := range f.Require {
		if r.Mod.Path == s.Module {
			if r.Mod.Version != s.Version {
				return fmt.Errorf("lock of %s: locks %s@%s but sources.yaml says %s; %s", s.Name, s.Module, r.Mod.Version, s.Version, stale)
			}
			found = true
		}
	}
	if !found {
		return fmt.Errorf("lock of %s: does not require %s; %s", s.Name, s.Module, stale)
	}
	tools := map[string]bool{}
	for _, t := range f.Tool {
		tools[t.Path] = true
	}
	for _, p := range s.Packages {
		if !tools[p] {
			return fmt.Errorf("lock of %s: does not cover package %s; %s", s.Name, p, stale)
		}
	}
	if len(tools) != len(s.Packages) {
		return fmt.Errorf("lock of %s: covers packages sources.yaml does not list; %s", s.Name, stale)
	}
	lines, err := ParseSum(sumPath, l.Sum)
	if err != nil {
		return fmt.Errorf("lock of %s: %w", s.Name, err)
	}
	for _, sl := range lines {
		if sl.Path == s.Module && sl.Version == s.Version && !sl.GoMod {
			if sl.Hash != s.Hash {
				return fmt.Errorf("lock of %s: %s pins %s@%s to %s but sources.yaml says %s; %s", s.Name, sumPath, s.Module, s.Version, sl.Hash, s.Hash, stale)
			}
			return nil
		}
	}
	return fmt.Errorf("lock of %s: %s does not pin %s@%s; %s", s.Name, sumPath, s.Module, s.Version, stale)
}

// lockGoMod resolves the whole dependency graph of s (whose Version is
// already set) and returns its lock and the module's own h1: hash. It needs
// the network (through the user's go proxy settings) unless everything is
// in the module cache already.
func lockGoMod(ctx context.Context, g *goCmd, tmp string, s *Source) (*Lock, string, error) {
	res, err := g.download(ctx, tmp, "mod", s.Module+"@"+s.Version)
	if err != nil {
		return nil, "", err
	}
	if len(res) != 1 || res[0].Error != "" {
		msg := "no result"
		if len(res) == 1 {
			msg = res[0].Error
		}
		return nil, "", fmt.Errorf("download %s@%s: %s", s.Module, s.Version, msg)
	}
	dl := res[0]
	upstream, err := os.ReadFile(dl.GoMod)
	if err != nil {
		return nil, "", err
	}
	mod, err := consumerModule(s, upstream)
	if err != nil {
		return nil, "", err
	}
	wd := filepath.Join(tmp, "consumer")
	if err := os.MkdirAll(wd, 0o755); err != nil {
		return nil, "", err
	}
	if err := os.WriteFile(filepath.Join(wd, "go.mod"), mod, 0o644); err != nil {
		return nil, "", err
	}
	var sum []byte
	if len(s.Packages) == 0 {
		// Nothing is built from the module (the Go toolchain, say): the lock
		// pins the module itself.
		sum = fmt.Appendf(nil, "%s %s %s\n%s %s/go.mod %s\n", s.Module, s.Version, dl.Sum, s.Module, s.Version, dl.GoModSum)
	} else {
		if _, err := g.run(ctx, wd, "mod", "mod", "tidy"); err != nil {
			return nil, "", err
		}
		if mod, err = os.ReadFile(filepath.Join(wd, "go.mod")); err != nil {
			return nil, "", err
		}
		if sum, err = os.ReadFile(filepath.Join(wd, "go.sum")); err != nil {
			return nil, "", err
		}
	}
	return &Lock{Mod: mod, Sum: sum}, dl.Sum, nil
}

// consumerModule writes the go.mod of the consumer module of s, given the
// source module's own go.mod.
func consumerModule(s *Source, upstream []byte) ([]byte, error) {
	up, err := modfile.Parse(s.Module+"@"+s.Version+"/go.mod", upstream, nil)
	if err != nil {
		return nil, err
	}
	f := new(modfile.File)
	if err := f.AddModuleStmt(consumerPath(s.Name)); err != nil {
		return nil, err
	}
	goVersion := "1.21"
	if up.Go != nil {
		goVersion = up.Go.Version
	}
	if local := strings.TrimPrefix(runtime.Version(), "go"); semver.Compare("v"+goVersion, "v"+local) > 0 {
		return nil, fmt.Errorf("%s@%s needs Go %s but this is Go %s: pick a version of %s whose go.mod asks for Go %s or older", s.Module, s.Version, goVersion, local, s.Module, local)
	}
	if err := f.AddGoStmt(goVersion); err != nil {
		return nil, err
	}
	if err := f.AddRequire(s.Module, s.Version); err != nil {
		return nil, err
	}
	required := map[string]bool{}
	for _, r := range up.Require {
		required[r.Mod.Path] = true
	}
	for _, r := range up.Replace {
		newPath, newVersion := r.New.Path, r.New.Version
		if modfile.IsDirectoryPath(newPath) {
			if !required[r.Old.Path] {
				// Only the modules the source requires are in its build
				// (its go.mod lists every one since Go 1.17). A directory
				// standing in for another is a guard against its use
				// (etcd's ./FORBIDDEN_DEPENDENCY) or a module of the
				// repository the source does not build from (Kubernetes'
				// samples): nothing to replace.
				continue
			}
			if s.ReplaceLocal == "" {
				return nil, fmt.Errorf("%s@%s replaces %s with the directory %s, which only exists in its repository: set `replace-local:` in sources.yaml to the published version to use instead", s.Module, s.Version, r.Old.Path, newPath)
			}
			if err := module.Check(r.Old.Path, s.ReplaceLocal); err != nil {
				return nil, fmt.Errorf("%s@%s replaces %s with the directory %s, and replace-local %s cannot stand for it: %v", s.Module, s.Version, r.Old.Path, newPath, s.ReplaceLocal, err)
			}
			newPath, newVersion = r.Old.Path, s.ReplaceLocal
		}
		if err := f.AddReplace(r.Old.Path, r.Old.Version, newPath, newVersion); err != nil {
			return nil, err
		}
	}
	for _, e := range up.Exclude {
		if err := f.AddExclude(e.Mod.Path, e.Mod.Version); err != nil {
			return nil, err
		}
	}
	for _, d := range up.Godebug {
		if err := f.AddGodebug(d.Key, d.Value); err != nil {
			return nil, err
		}
	}
	for _, p := range s.Packages {
		if err := f.AddTool(p); err != nil {
			return nil, err
		}
	}
	f.Cleanup()
	return f.Format()
}
