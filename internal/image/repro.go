package image

import (
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"io"
	"io/fs"
	"os"
	"os/exec"
	"path/filepath"
	"strings"

	"github.com/opencontainers/go-digest"

	"github.com/hashbang/stack/internal/ui"
	"github.com/hashbang/stack/internal/workspace"
)

// A rebuild differs from the first build in everything that must not
// matter: where the repository is, the time zone, the umask, the clock,
// and every cache of build output. Only the verified source downloads are
// shared.
var rebuilds = []struct {
	dir, tz, umask string
}{
	{"a/src", "Asia/Kathmandu", "022"},
	{"b/elsewhere/deeper/stack-copy", "America/St_Johns", "077"},
}

// Rebuild is one of the two builds of a reproducibility check.
type Rebuild struct {
	Dir    string        `json:"dir"`
	TZ     string        `json:"tz"`
	Umask  string        `json:"umask"`
	Digest digest.Digest `json:"digest"`
}

// ReproResult is the outcome of a reproducibility check of one image.
type ReproResult struct {
	Name      string        `json:"name"`
	Builds    []Rebuild     `json:"builds"`
	Locked    digest.Digest `json:"locked,omitempty"`
	Same      bool          `json:"reproducible"`
	Diff      *Difference   `json:"diff,omitempty"`
	MatchLock bool          `json:"matchesLock"`
}

// Repro builds image name twice from copies of the workspace, by running
// the stack program exe in each, and compares the results file by file.
func Repro(ctx context.Context, ws *workspace.Workspace, exe, name string, p *ui.Progress) (*ReproResult, error) {
	tmp, err := os.MkdirTemp("", "stack-repro-")
	if err != nil {
		return nil, err
	}
	defer os.RemoveAll(tmp)
	res := &ReproResult{Name: name}
	var layouts []string
	for i, rb := range rebuilds {
		step := p.Start("repro %s: build %d of 2 (TZ=%s, umask %s)", name, i+1, rb.tz, rb.umask)
		src := filepath.Join(tmp, rb.dir)
		cache := filepath.Join(tmp, fmt.Sprintf("cache-%d", i))
		d, err := rebuild(ctx, ws, exe, name, src, cache, rb.tz, rb.umask)
		if err = step.Done(err); err != nil {
			return nil, fmt.Errorf("repro %s: %w", name, err)
		}
		res.Builds = append(res.Builds, Rebuild{Dir: src, TZ: rb.tz, Umask: rb.umask, Digest: d})
		layouts = append(layouts, workspace.OCI(cache))
	}
	res.Same = res.Builds[0].Digest == res.Builds[1].Digest
	if lock, err := ReadLock(ws.Path("images")); err == nil {
		res.Locked = lock[name]
		res.MatchLock = res.Locked == res.Builds[0].Digest
	}
	if !res.Same {
		a, err := Layout{Dir: layouts[0]}.Image(name)
		if err != nil {
			return nil, err
		}
		b, err := Layout{Dir: layouts[1]}.Image(name)
		if err != nil {
			return nil, err
		}
		if res.Diff, err = Diff(a, b); err != nil {
			return nil, err
		}
	}
	return res, nil
}

// rebuild copies the workspace to src and builds name there with a cache
// of its own that shares only the verified downloads of the workspace's
// (pnpm's store is content-addressed and checked against the lockfile's
// integrity hashes).
func rebuild(ctx context.Context, ws *workspace.Workspace, exe, name, src, cache, tz, umask string) (digest.Digest, error) {
	if err := copyTree(ws.Root, src, ws.Cache); err != nil {
		return "", err
	}
	if err := os.MkdirAll(cache, 0o755); err != nil {
		return "", err
	}
	for _, shared := range []string{"gomod", "blobs", "pnpm-store"} {
		if err := os.MkdirAll(filepath.Join(ws.Cache, shared), 0o755); err != nil {
			return "", err
		}
		if err := os.Symlink(filepath.Join(ws.Cache, shared), filepath.Join(cache, shared)); err != nil {
			return "", err
		}
	}
	cmd := exec.CommandContext(ctx, "/bin/sh", "-c", `umask "$0" && exec "$@"`, umask, exe, "-C", src, "--cache", cache, "build", name, "-o", "json")
	cmd.Dir = src
	cmd.Env = append(os.Environ(), "TZ="+tz, "GOCACHE="+filepath.Join(cache, "gocache"))
	var stdout, stderr bytes.Buffer
	cmd.Stdout, cmd.Stderr = &stdout, &stderr
	if err := cmd.Run(); err != nil {
		return "", fmt.Errorf("build in %s: %v: %s", src, err, strings.TrimSpace(stderr.String()))
	}
	var out []Result
	if err := json.Unmarshal(stdout.Bytes(), &out); err != nil || len(out) != 1 {
		return "", fmt.Errorf("build in %s printed %q, want one image as JSON", src, stdout.String())
	}
	return out[0].Digest, nil
}

// copyTree copies the files of the repository at root to dst, leaving out
// .git, build outputs and the cache.
func copyTree(root, dst, cacheDir string) error {
	return filepath.WalkDir(root, func(p string, d fs.DirEntry, err error) error {
		if err != nil {
			return err
		}
		rel, _ := filepath.Rel(root, p)
		if d.IsDir() && rel != "." && (p == cacheDir || d.Name() == ".git" || d.Name() == ".cache" || rel == "bin") {
			return filepath.SkipDir
		}
		target := filepath.Join(dst, rel)
		info, err := d.Info()
		if err != nil {
			return err
		}
		switch {
		case d.IsDir():
			return os.MkdirAll(target, 0o755)
		case info.Mode()&fs.ModeSymlink != 0:
			link, err := os.Readlink(p)
			if err != nil {
				return err
			}
			return os.Symlink(link, target)
		case info.Mode().IsRegular():
			return copyFile(p, target, info.Mode().Perm())
		}
		return nil
	})
}

func copyFile(src, dst string, mode fs.FileMode) error {
	in, err := os.Open(src)
	if err != nil {
		return err
	}
	defer in.Close()
	out, err := os.OpenFile(dst, os.O_CREATE|os.O_WRONLY|os.O_TRUNC, mode)
	if err != nil {
		return err
	}
	if _, err := io.Copy(out, in); err != nil {
		out.Close()
		return err
	}
	return out.Close()
}
