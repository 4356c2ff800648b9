package deploy

import (
	"bufio"
	"bytes"
	"context"
	"errors"
	"fmt"
	"io"
	"io/fs"
	"os"
	"path"
	"path/filepath"
	"strconv"
	"strings"

	"github.com/hashbang/stack/internal/gitcmd"

	"sigs.k8s.io/kustomize/kyaml/filesys"

	"github.com/hashbang/stack/internal/image"
)

// TreeDirs are the directories of a stack repository that a render reads
// (config/ for the stack serve of a cluster, which is given its config).
// Nothing outside them is visible to kustomize.
var TreeDirs = []string{"pods", "infra", "config"}

// lockPath is the images lock, relative to the repository root.
var lockPath = path.Join("images", image.LockFile)

// Tree is what a render reads: pods/, infra/, config/ and the images lock, taken
// from a work tree or from a commit, held in memory.
type Tree struct {
	// Commit is the commit the tree was read from; for a work tree, the
	// commit checked out (empty outside git).
	Commit string
	// Dirty is true when the tree is a work tree whose pods/, infra/, config/ or
	// images lock differ from Commit.
	Dirty bool
	// Lock is images/images.lock.
	Lock image.Lock

	fs filesys.FileSystem
}

// TreeFromDir reads pods/, infra/, config/ and images/images.lock of the work tree
// at root. Symbolic links are refused, so nothing outside those
// directories can be reached through them.
func TreeFromDir(ctx context.Context, root string) (*Tree, error) {
	t := &Tree{fs: filesys.MakeFsInMemory()}
	for _, dir := range TreeDirs {
		err := filepath.WalkDir(filepath.Join(root, dir), func(p string, d fs.DirEntry, err error) error {
			if err != nil {
				if errors.Is(err, fs.ErrNotExist) && p == filepath.Join(root, dir) {
					return nil
				}
				return err
			}
			rel, _ := filepath.Rel(root, p)
			rel = filepath.ToSlash(rel)
			switch {
			case d.Type()&fs.ModeSymlink != 0:
				return fmt.Errorf("%s is a symbolic link: manifests must be plain files inside %s", rel, strings.Join(TreeDirs, "/ and "))
			case d.IsDir():
				return t.fs.MkdirAll("/" + rel)
			case !d.Type().IsRegular():
				return nil
			}
			data, err := os.ReadFile(p)
			if err != nil {
				return err
			}
			return t.fs.WriteFile("/"+rel, data)
		})
		if err != nil {
			return nil, fmt.Errorf("read %s: %w", dir, err)
		}
	}
	lock, err := image.ReadLock(filepath.Join(root, "images"))
	if err != nil {
		return nil, err
	}
	t.Lock = lock
	if head, err := git(ctx, root, nil, "rev-parse", "--verify", "-q", "HEAD^{commit}"); err == nil {
		t.Commit = strings.TrimSpace(string(head))
		st, err := git(ctx, root, nil, append([]string{"status", "--porcelain", "--untracked-files=all", "--"}, append(TreeDirs, lockPath)...)...)
		if err != nil {
			return nil, err
		}
		t.Dirty = len(bytes.TrimSpace(st)) > 0
	}
	return t, nil
}

// TreeFromCommit reads pods/, infra/, config/ and images/images.lock as they are in
// commit rev of the git repository at dir, whatever its work tree holds.
func TreeFromCommit(ctx context.Context, dir, rev string) (*Tree, error) {
	out, err := git(ctx, dir, nil, "rev-parse", "--verify", "-q", rev+"^{commit}")
	if err != nil {
		return nil, fmt.Errorf("%q names no commit in %s", rev, dir)
	}
	t := &Tree{Commit: strings.TrimSpace(string(out)), fs: filesys.MakeFsInMemory(), Lock: image.Lock{}}
	files, err := gitFiles(ctx, dir, t.Commit, append(TreeDirs, lockPath)...)
	if err != nil {
		return nil, err
	}
	for name, data := range files {
		if name == lockPath {
			if t.Lock, err = image.ParseLock(name, data); err != nil {
				return nil, err
			}
			continue
		}
		if err := t.fs.MkdirAll("/" + path.Dir(name)); err != nil {
			return nil, err
		}
		if err := t.fs.WriteFile("/"+name, data); err != nil {
			return nil, err
		}
	}
	return t, nil
}

// gitFiles returns the regular files under paths in commit, by path. A
// symbolic link or submodule is an error.
func gitFiles(ctx context.Context, dir, commit string, paths ...string) (map[string][]byte, error) {
	ls, err := git(ctx, dir, nil, append([]string{"ls-tree", "-r", "-z", "--full-tree", commit, "--"}, paths...)...)
	if err != nil {
		return nil, err
	}
	var names, ids []string
	for _, rec := range strings.Split(string(ls), "\x00") {
		if rec == "" {
			continue
		}
		meta, name, ok := strings.Cut(rec, "\t")
		f := strings.Fields(meta)
		if !ok || len(f) != 3 {
			return nil, fmt.Errorf("git ls-tree: unexpected line %q", rec)
		}
		if f[1] != "blob" || f[0] == "120000" {
			return nil, fmt.Errorf("%s in commit %.12s is a %s, not a file: manifests must be plain files", name, commit, map[bool]string{true: "symbolic link", false: f[1]}[f[0] == "120000"])
		}
		names, ids = append(names, name), append(ids, f[2])
	}
	blobs, err := catBlobs(ctx, dir, ids)
	if err != nil {
		return nil, err
	}
	files := make(map[string][]byte, len(names))
	for i, n := range names {
		files[n] = blobs[i]
	}
	return files, nil
}

// catBlobs reads objects through one git cat-file --batch.
func catBlobs(ctx context.Context, dir string, ids []string) ([][]byte, error) {
	if len(ids) == 0 {
		return nil, nil
	}
	in := strings.Join(ids, "\n") + "\n"
	out, err := git(ctx, dir, strings.NewReader(in), "cat-file", "--batch")
	if err != nil {
		return nil, err
	}
	r := bufio.NewReader(bytes.NewReader(out))
	blobs := make([][]byte, 0, len(ids))
	for range ids {
		header, err := r.ReadString('\n')
		if err != nil {
			return nil, fmt.Errorf("git cat-file: %w", err)
		}
		f := strings.Fields(header)
		if len(f) != 3 {
			return nil, fmt.Errorf("git cat-file: %s", strings.TrimSpace(header))
		}
		n, err := strconv.Atoi(f[2])
		if err != nil {
			return nil, fmt.Errorf("git cat-file: %s", strings.TrimSpace(header))
		}
		b := make([]byte, n+1)
		if _, err := io.ReadFull(r, b); err != nil {
			return nil, fmt.Errorf("git cat-file: %w", err)
		}
		blobs = append(blobs, b[:n])
	}
	return blobs, nil
}

// git runs git in dir and returns its standard output; its standard error
// becomes the error.
func git(ctx context.Context, dir string, stdin io.Reader, args ...string) ([]byte, error) {
	return gitEnv(ctx, dir, nil, stdin, args...)
}

func gitEnv(ctx context.Context, dir string, env []string, stdin io.Reader, args ...string) ([]byte, error) {
	return gitcmd.Cmd{Dir: dir, Env: env, Stdin: stdin}.Run(ctx, args...)
}

// ReadFile reads the file at path (slash-separated, relative to the
// repository root) of the tree.
func (t *Tree) ReadFile(path string) ([]byte, error) {
	return t.fs.ReadFile("/" + strings.TrimPrefix(path, "/"))
}
