package source

import (
	"bufio"
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"os"
	"path/filepath"
	"strings"

	"github.com/opencontainers/go-digest"
	"golang.org/x/mod/semver"

	"github.com/hashbang/stack/internal/atomicfile"
	"github.com/hashbang/stack/internal/cache"
	"github.com/hashbang/stack/internal/ui"
	"github.com/hashbang/stack/internal/workspace"
)

// Change is one value update changed: a key of a source's entry in
// sources.yaml, or one file of its lock (Field is then the file's path in
// the repository, Old and New the sha256 of its content, Old empty when
// there was none).
type Change struct {
	Source string `json:"source"`
	Field  string `json:"field"`
	Old    string `json:"old"`
	New    string `json:"new"`
}

// Updater moves sources to new releases and relocks them.
type Updater struct {
	ws       *workspace.Workspace
	fetcher  *Fetcher
	progress *ui.Progress
}

// NewUpdater returns an Updater for the workspace.
func NewUpdater(ws *workspace.Workspace, p *ui.Progress) *Updater {
	f := NewFetcher(ws, p)
	f.goc.proxyFirst = "" // a new release is looked up upstream, never in the in-repo cache
	return &Updater{ws: ws, fetcher: f, progress: p}
}

// Update resolves, for each named source (all when none), the newest
// release within its track, or version when not empty (only with one name),
// computes its hash and lock, and rewrites sources.yaml and the locks. It
// writes nothing unless every source updated cleanly. Sources already at
// the newest release are relocked, so update also repairs a stale lock; a
// lock that comes out the same is not written, and one that does not is a
// Change, so "no changes" means the tree was left as it was.
func (u *Updater) Update(ctx context.Context, names []string, version string) ([]Change, error) {
	path := u.ws.Sources()
	data, err := os.ReadFile(path)
	if err != nil {
		return nil, err
	}
	cfg, err := parse(displayPath(path), data, false)
	if err != nil {
		return nil, err
	}
	srcs, err := cfg.Select(names)
	if err != nil {
		return nil, err
	}
	if version != "" && len(srcs) != 1 {
		return nil, errors.New("--version needs exactly one source name")
	}
	var (
		edits   []edit
		changes []Change
		locks   = map[string]*Lock{}
	)
	for _, s := range srcs {
		step := u.progress.Start("update %s", s.Name)
		next, lock, err := u.resolve(ctx, s, version)
		if err = step.Done(err); err != nil {
			return nil, fmt.Errorf("update %s: %w", s.Name, err)
		}
		for _, f := range []struct{ key, old, new string }{
			{"version", s.Version, next.Version},
			{"replace-local", s.ReplaceLocal, next.ReplaceLocal},
			{"hash", s.Hash, next.Hash},
		} {
			if f.old != f.new {
				edits = append(edits, edit{src: s, key: f.key, value: f.new})
				changes = append(changes, Change{Source: s.Name, Field: f.key, Old: f.old, New: f.new})
			}
		}
		if lock != nil {
			lc, err := u.lockChanges(s.Name, lock)
			if err != nil {
				return nil, err
			}
			if len(lc) > 0 {
				locks[s.Name] = lock
				changes = append(changes, lc...)
			}
		}
	}
	out, err := applyEdits(data, edits)
	if err != nil {
		return nil, err
	}
	if _, err := parse(cfg.Path, out, false); err != nil {
		return nil, fmt.Errorf("the updated file would not be valid, nothing was written: %w", err)
	}
	for name, l := range locks {
		if err := l.Write(u.ws.Locks(), name); err != nil {
			return nil, err
		}
	}
	if !bytes.Equal(out, data) {
		if err := atomicfile.WriteFile(path, out, 0o644); err != nil {
			return nil, err
		}
	}
	return changes, nil
}

// lockChanges compares the lock of source name in the repository with
// lock, file by file.
func (u *Updater) lockChanges(name string, lock *Lock) ([]Change, error) {
	modPath, sumPath := LockFiles(u.ws.Locks(), name)
	var out []Change
	for _, f := range []struct {
		path string
		data []byte
	}{{modPath, lock.Mod}, {sumPath, lock.Sum}} {
		old, err := os.ReadFile(f.path)
		if err != nil && !errors.Is(err, os.ErrNotExist) {
			return nil, err
		}
		if err == nil && bytes.Equal(old, f.data) {
			continue
		}
		c := Change{Source: name, Field: u.ws.Rel(f.path), New: digest.FromBytes(f.data).String()}
		if err == nil {
			c.Old = digest.FromBytes(old).String()
		}
		out = append(out, c)
	}
	return out, nil
}

// resolve returns s as it should be: at the chosen version, with its hash,
// and for gomod its new lock.
func (u *Updater) resolve(ctx context.Context, s *Source, version string) (*Source, *Lock, error) {
	next := *s
	if version != "" {
		next.Version = version
	}
	tmp, err := (&cache.Store{Dir: u.ws.Cache}).TempDir("update-")
	if err != nil {
		return nil, nil, err
	}
	defer os.RemoveAll(tmp)
	switch s.Kind {
	case GoMod:
		if version == "" {
			if next.Version, err = u.latestModule(ctx, tmp, s); err != nil {
				return nil, nil, err
			}
		}
		if next.ReplaceLocal, err = followVersion(s.ReplaceLocal, s.Version, next.Version); err != nil {
			return nil, nil, fmt.Errorf("replace-local: %w", err)
		}
		lock, sum, err := lockGoMod(ctx, u.fetcher.goc, tmp, &next)
		if err != nil {
			return nil, nil, err
		}
		next.Hash = sum
		return &next, lock, nil
	case Deb:
		if version == "" {
			if next.Version, err = latestDeb(ctx, s); err != nil {
				return nil, nil, err
			}
		}
		file, err := aptDownload(ctx, tmp, s.Package, s.arch(), next.Version)
		if err != nil {
			return nil, nil, err
		}
		return &next, nil, u.pin(ctx, &next, file)
	case DebSrc:
		a := aptSrc{dir: aptSrcDir(u.ws)}
		if err := a.update(ctx); err != nil {
			return nil, nil, err
		}
		if version == "" {
			if next.Version, err = a.latest(ctx, s); err != nil {
				return nil, nil, err
			}
		}
		dsc, err := a.download(ctx, tmp, s.Package, next.Version)
		if err != nil {
			return nil, nil, err
		}
		d, err := publishDebSrc(ctx, u.fetcher.local, dsc, s.Package, next.Version, "")
		if err != nil {
			return nil, nil, err
		}
		next.Hash = d.String()
		return &next, nil, nil
	case Npm:
		if version == "" {
			if next.Version, err = latestNpm(ctx, s); err != nil {
				return nil, nil, err
			}
		}
		return &next, nil, u.pinNpm(ctx, tmp, &next)
	case Archive:
		if version == "" && !strings.Contains(s.URL, "{version}") && s.Hash != "" {
			return nil, nil, fmt.Errorf("an archive has no release feed: pass --version, with {version} in its url")
		}
		if version != "" && !strings.Contains(s.URL, "{version}") {
			return nil, nil, fmt.Errorf("--version needs {version} in the url of %s, so that the url follows the version", s.Name)
		}
		d, err := u.download(ctx, &next)
		if err != nil {
			return nil, nil, err
		}
		next.Hash = d.String()
		return &next, nil, nil
	}
	return nil, nil, fmt.Errorf("unknown kind %q", s.Kind)
}

// pin hashes file, sets it as the pin of s and stores it in the cache.
func (u *Updater) pin(ctx context.Context, s *Source, file string) error {
	f, err := cache.OpenRegular(file)
	if err != nil {
		return err
	}
	d, err := digest.SHA256.FromReader(cache.ContextReader(ctx, f))
	f.Close()
	if err != nil {
		return err
	}
	s.Hash = d.String()
	return u.fetcher.local.PutFile(ctx, file, d)
}

// download fetches an archive, stores it and returns its digest.
func (u *Updater) download(ctx context.Context, s *Source) (digest.Digest, error) {
	tmp, err := u.fetcher.local.TempDir("archive-")
	if err != nil {
		return "", err
	}
	defer os.RemoveAll(tmp)
	file := filepath.Join(tmp, "archive")
	err = u.fetcher.get(ctx, s.ArchiveURL(), func(body io.Reader, _ int64) error {
		// Each attempt starts the file over.
		f, err := os.Create(file)
		if err != nil {
			return err
		}
		_, err = io.Copy(f, body)
		if cerr := f.Close(); err == nil {
			err = cerr
		}
		return err
	})
	if err != nil {
		return "", err
	}
	if err := u.pin(ctx, s, file); err != nil {
		return "", err
	}
	return digest.Digest(s.Hash), nil
}

// latestModule returns the newest release of the module of s within its
// track. A source on a prerelease may move to prereleases; the Go
// toolchain keeps its platform.
func (u *Updater) latestModule(ctx context.Context, tmp string, s *Source) (string, error) {
	out, err := u.fetcher.goc.run(ctx, tmp, "mod", "list", "-m", "-json", "-versions", s.Module)
	if err != nil {
		return "", err
	}
	var info struct{ Versions []string }
	if err := json.Unmarshal(out, &info); err != nil {
		return "", fmt.Errorf("go list: %w", err)
	}
	best := ""
	for _, v := range info.Versions {
		if !strings.HasPrefix(v, s.Track) || semver.Prerelease(v) != "" && semver.Prerelease(s.Version) == "" {
			continue
		}
		if s.Module == "golang.org/toolchain" && platform(v) != platform(s.Version) {
			continue
		}
		if best == "" || semver.Compare(v, best) > 0 {
			best = v
		}
	}
	if best == "" {
		return "", fmt.Errorf("no release of %s matches track %q", s.Module, s.Track)
	}
	return best, nil
}

// platform is the GOOS-GOARCH suffix of a golang.org/toolchain version.
func platform(v string) string {
	return v[strings.LastIndex(v, ".")+1:]
}

// latestDeb returns the newest version of the package apt knows within the
// source's track.
func latestDeb(ctx context.Context, s *Source) (string, error) {
	out, err := command(ctx, "apt-cache", "madison", s.Package).Output()
	if err != nil {
		return "", fmt.Errorf("apt-cache madison %s: %v", s.Package, err)
	}
	best := ""
	sc := bufio.NewScanner(bytes.NewReader(out))
	for sc.Scan() {
		f := strings.Split(sc.Text(), "|")
		if len(f) < 3 {
			continue
		}
		v, where := strings.TrimSpace(f[1]), f[2]
		// Architecture-independent packages are listed under the host's
		// architecture.
		if !strings.HasSuffix(strings.TrimSpace(where), "Packages") || s.arch() != "all" && !strings.Contains(where, " "+s.arch()+" ") {
			continue
		}
		if !strings.HasPrefix(v, s.Track) {
			continue
		}
		if best == "" || debNewer(ctx, v, best) {
			best = v
		}
	}
	if best == "" {
		return "", fmt.Errorf("apt knows no version of %s for %s within track %q: run apt-get update", s.Package, s.arch(), s.Track)
	}
	return best, nil
}

// debNewer reports whether Debian version a is newer than b, as dpkg orders them.
func debNewer(ctx context.Context, a, b string) bool {
	return command(ctx, "dpkg", "--compare-versions", a, "gt", b).Run() == nil
}

// followVersion moves replace-local along with its source's version. The
// modules a source replaces locally are released with it, under the same
// version (etcd: v3.6.16 with v3.6.16) or the same minor and patch at v0
// (Kubernetes: v1.36.3 with v0.36.3).
func followVersion(local, old, next string) (string, error) {
	switch {
	case local == "" || old == next:
		return local, nil
	case local == old:
		return next, nil
	case semver.Major(local) == "v0" && strings.TrimPrefix(local, "v0") == strings.TrimPrefix(old, semver.Major(old)):
		return "v0" + strings.TrimPrefix(next, semver.Major(next)), nil
	}
	return "", fmt.Errorf("%s does not follow version %s as the same version or its v0 twin: set it by hand", local, old)
}
