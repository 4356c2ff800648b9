package gitserve

import (
	"bytes"
	"errors"
	"fmt"
	"io/fs"
	"os"
	"os/exec"
	"path/filepath"
	"slices"
	"sort"
	"strconv"
	"strings"
)

// Repo is one bare repository served under DATA/git/.
type Repo struct {
	// Name is the repository's name: NAME or GROUP/NAME, without ".git".
	Name string `json:"name"`
	// Path is the absolute path of the bare repository.
	Path string `json:"path"`
	// Branch is the branch HEAD points to.
	Branch string `json:"branch"`
	// Commit is the commit HEAD points to; empty for a repository nothing was
	// pushed to yet.
	Commit string `json:"commit,omitempty"`
}

// RepoRoot is the directory holding the repositories of a data directory.
func RepoRoot(dataDir string) string { return filepath.Join(dataDir, "git") }

// DefaultBranch is the branch HEAD of a new repository points to.
const DefaultBranch = "main"

const nameSyntax = "names are NAME or GROUP/NAME, each [a-z0-9][a-z0-9._-]* and at most 100 characters"

// ValidName checks a repository name: NAME or GROUP/NAME, each part
// [a-z0-9][a-z0-9._-]*, at most 100 characters, not ending in ".git" or
// ".lock" and without "..".
func ValidName(name string) error {
	parts := strings.Split(name, "/")
	if len(parts) > 2 {
		return fmt.Errorf("invalid repository name %q: %s", name, nameSyntax)
	}
	for _, p := range parts {
		if err := validPart(p); err != nil {
			return fmt.Errorf("invalid repository name %q: %w", name, err)
		}
	}
	return nil
}

func validPart(p string) error {
	if p == "" || len(p) > 100 {
		return errors.New(nameSyntax)
	}
	for i := 0; i < len(p); i++ {
		c := p[i]
		switch {
		case c >= 'a' && c <= 'z', c >= '0' && c <= '9':
		case i > 0 && (c == '.' || c == '_' || c == '-'):
		default:
			return errors.New(nameSyntax)
		}
	}
	if strings.Contains(p, "..") || strings.HasSuffix(p, ".git") || strings.HasSuffix(p, ".lock") {
		return fmt.Errorf("%q: no \"..\", no .git or .lock ending (%s)", p, nameSyntax)
	}
	return nil
}

// Create makes an empty bare repository name under DATA/git/ with HEAD on
// DefaultBranch and the stack hooks installed, pointing at this executable.
// A trailing ".git" on name is dropped. It fails if the repository exists.
func Create(dataDir, name string) (Repo, error) {
	exe, err := os.Executable()
	if err != nil {
		return Repo{}, fmt.Errorf("find the stack executable for the hooks: %w", err)
	}
	return create(dataDir, name, exe)
}

func create(dataDir, name, exe string) (Repo, error) {
	name = strings.TrimSuffix(name, ".git")
	if err := ValidName(name); err != nil {
		return Repo{}, err
	}
	git, err := exec.LookPath("git")
	if err != nil {
		return Repo{}, errors.New("git not found in PATH: install git")
	}
	root := RepoRoot(dataDir)
	path := filepath.Join(root, filepath.FromSlash(name)+".git")
	if _, err := os.Lstat(path); err == nil {
		return Repo{}, fmt.Errorf("repository %s already exists at %s", name, path)
	}
	parent := filepath.Dir(path)
	// The data directory and git/ are the server's alone (CI jobs run as
	// other users); what is inside may be as git makes it.
	if err := os.MkdirAll(root, 0o700); err != nil {
		return Repo{}, fmt.Errorf("create repository %s: %w", name, err)
	}
	if err := os.MkdirAll(parent, 0o755); err != nil {
		return Repo{}, fmt.Errorf("create repository %s: %w", name, err)
	}
	if parent != root {
		if err := insideRoot(root, parent); err != nil {
			return Repo{}, fmt.Errorf("create repository %s: %w", name, err)
		}
	}
	// Build it beside its final place and rename, so that a failure leaves
	// nothing half-made under a valid name.
	tmp, err := os.MkdirTemp(parent, ".new-")
	if err != nil {
		return Repo{}, fmt.Errorf("create repository %s: %w", name, err)
	}
	defer os.RemoveAll(tmp)
	steps := [][]string{
		{"init", "--quiet", "--bare", "--template=", "--initial-branch=" + DefaultBranch, tmp},
		{"--git-dir", tmp, "config", "receive.fsckObjects", "true"},
	}
	for _, args := range steps {
		if out, err := gitCmd(git, dataDir, args...).CombinedOutput(); err != nil {
			return Repo{}, fmt.Errorf("create repository %s: git %s: %v: %s", name, args[0], err, bytes.TrimSpace(out))
		}
	}
	if err := InstallHooks(tmp, exe); err != nil {
		return Repo{}, fmt.Errorf("create repository %s: %w", name, err)
	}
	if err := os.Rename(tmp, path); err != nil {
		return Repo{}, fmt.Errorf("create repository %s: %w", name, err)
	}
	return describe(git, dataDir, name, path), nil
}

// gitCmd is git run for the server's own bookkeeping, with a clean
// environment so that nothing from a hook or a user's config leaks in.
func gitCmd(git, dataDir string, args ...string) *exec.Cmd {
	cmd := exec.Command(git, args...)
	cmd.Env = baseEnv(git, dataDir)
	return cmd
}

// baseEnv is the environment every git program started by the server gets.
func baseEnv(git, dataDir string) []string {
	return []string{
		"PATH=" + filepath.Dir(git) + ":/usr/local/bin:/usr/bin:/bin",
		"HOME=" + dataDir,
		"GIT_CONFIG_NOSYSTEM=1",
		"LC_ALL=C",
	}
}

// List returns the repositories under DATA/git/, sorted by name. A data
// directory without repositories gives an empty list.
func List(dataDir string) ([]Repo, error) {
	git, err := exec.LookPath("git")
	if err != nil {
		return nil, errors.New("git not found in PATH: install git")
	}
	paths, err := repoPaths(dataDir)
	if err != nil {
		return nil, err
	}
	out := make([]Repo, 0, len(paths))
	for _, p := range paths {
		out = append(out, describe(git, dataDir, p.name, p.path))
	}
	return out, nil
}

// Paths lists the repositories under DATA/git/ as List does, with only
// Name and Path set: it reads none of them, so it suits callers that look
// often (the CI runner's timers).
func Paths(dataDir string) ([]Repo, error) {
	paths, err := repoPaths(dataDir)
	if err != nil {
		return nil, err
	}
	out := make([]Repo, len(paths))
	for i, p := range paths {
		out[i] = Repo{Name: p.name, Path: p.path}
	}
	return out, nil
}

type repoPath struct{ name, path string }

// repoPaths finds the bare repositories NAME.git and GROUP/NAME.git with
// valid names: what Resolve accepts.
func repoPaths(dataDir string) ([]repoPath, error) {
	root := RepoRoot(dataDir)
	var out []repoPath
	top, err := os.ReadDir(root)
	if errors.Is(err, fs.ErrNotExist) {
		return nil, nil
	}
	if err != nil {
		return nil, fmt.Errorf("list repositories: %w", err)
	}
	for _, e := range top {
		if !e.IsDir() {
			continue
		}
		if n, ok := strings.CutSuffix(e.Name(), ".git"); ok {
			if p := filepath.Join(root, e.Name()); ValidName(n) == nil && isBareRepo(p) {
				out = append(out, repoPath{n, p})
			}
			continue
		}
		if validPart(e.Name()) != nil {
			continue
		}
		sub, err := os.ReadDir(filepath.Join(root, e.Name()))
		if err != nil {
			return nil, fmt.Errorf("list repositories: %w", err)
		}
		for _, s := range sub {
			n, ok := strings.CutSuffix(s.Name(), ".git")
			p := filepath.Join(root, e.Name(), s.Name())
			if !s.IsDir() || !ok || validPart(n) != nil || !isBareRepo(p) {
				continue
			}
			out = append(out, repoPath{e.Name() + "/" + n, p})
		}
	}
	sort.Slice(out, func(i, j int) bool { return out[i].name < out[j].name })
	return out, nil
}

func describe(git, dataDir, name, path string) Repo {
	r := Repo{Name: name, Path: path}
	if out, err := gitCmd(git, dataDir, "--git-dir", path, "symbolic-ref", "--short", "-q", "HEAD").Output(); err == nil {
		r.Branch = strings.TrimSpace(string(out))
	}
	if out, err := gitCmd(git, dataDir, "--git-dir", path, "rev-parse", "-q", "--verify", "HEAD^{commit}").Output(); err == nil {
		r.Commit = strings.TrimSpace(string(out))
	}
	return r
}

// Resolve returns the path of the existing bare repository name under
// DATA/git/, refusing any path that leaves that directory through a symbolic
// link. A repository that does not exist is an error that is
// fs.ErrNotExist.
func Resolve(dataDir, name string) (string, error) {
	if err := ValidName(name); err != nil {
		return "", err
	}
	root := RepoRoot(dataDir)
	path := filepath.Join(root, filepath.FromSlash(name)+".git")
	fi, err := os.Stat(path)
	if err != nil || !fi.IsDir() {
		return "", noRepoError(name)
	}
	if err := insideRoot(root, path); err != nil {
		return "", fmt.Errorf("repository %s: %w", name, err)
	}
	if !isBareRepo(path) {
		return "", fmt.Errorf("repository %s: %s is not a bare git repository", name, path)
	}
	return path, nil
}

// noRepoError is Resolve's error for a repository that does not exist; it
// is an fs.ErrNotExist.
type noRepoError string

func (e noRepoError) Error() string {
	return fmt.Sprintf("repository %s does not exist: create it with `stack repo create %s`", string(e), string(e))
}

func (noRepoError) Is(target error) bool { return target == fs.ErrNotExist }

// isBareRepo reports whether path looks like a bare git repository: HEAD,
// objects and refs.
func isBareRepo(path string) bool {
	for _, p := range []string{"HEAD", "objects", "refs"} {
		if _, err := os.Stat(filepath.Join(path, p)); err != nil {
			return false
		}
	}
	return true
}

// insideRoot checks that path, with symbolic links resolved, stays inside
// root (also resolved).
func insideRoot(root, path string) error {
	r, err := filepath.EvalSymlinks(root)
	if err != nil {
		return err
	}
	p, err := filepath.EvalSymlinks(path)
	if err != nil {
		return err
	}
	rel, err := filepath.Rel(r, p)
	if err != nil || rel == "." || rel == ".." || strings.HasPrefix(rel, "../") {
		return fmt.Errorf("%s leads outside %s through a symbolic link", path, root)
	}
	return nil
}

// HookNames are the git hooks stack installs in every repository.
var HookNames = []string{"pre-receive", "post-receive"}

// InstallHooks writes the hooks of the bare repository at path: symbolic
// links named for each hook to EXE, the stack executable, which runs the
// hook its name says (HookArgs). Unchanged hooks are left alone; changed
// ones (an older stack's shell scripts among them) are replaced
// atomically.
func InstallHooks(path, exe string) error {
	if !filepath.IsAbs(exe) {
		return fmt.Errorf("hook executable %q is not an absolute path", exe)
	}
	dir := filepath.Join(path, "hooks")
	if err := os.MkdirAll(dir, 0o755); err != nil {
		return fmt.Errorf("install hooks: %w", err)
	}
	for _, name := range HookNames {
		file := filepath.Join(dir, name)
		if old, err := os.Readlink(file); err == nil && old == exe {
			continue
		}
		tmp := filepath.Join(dir, "."+name+"-"+strconv.Itoa(os.Getpid()))
		os.Remove(tmp)
		if err := os.Symlink(exe, tmp); err != nil {
			return fmt.Errorf("install hook %s: %w", name, err)
		}
		if err := os.Rename(tmp, file); err != nil {
			os.Remove(tmp)
			return fmt.Errorf("install hook %s: %w", name, err)
		}
	}
	return nil
}

// HookArgs reports which hook a stack process runs as, from its
// arguments: a hook is a symbolic link to the stack executable named for
// the hook (git runs it as hooks/NAME, with no shell: the stack image has
// none), or, by hand, `stack hook NAME`.
func HookArgs(args []string) (name string, ok bool) {
	if len(args) == 0 {
		return "", false
	}
	if base := filepath.Base(args[0]); slices.Contains(HookNames, base) {
		return base, true
	}
	if len(args) == 3 && args[1] == "hook" {
		return args[2], true
	}
	return "", false
}
