package source

import (
	"context"
	"errors"
	"fmt"
	"io"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"strings"

	"github.com/opencontainers/go-digest"

	"github.com/hashbang/stack/internal/cache"
	"github.com/hashbang/stack/internal/ui"
	"github.com/hashbang/stack/internal/workspace"
)

// Fetcher brings sources into the local cache, verified.
type Fetcher struct {
	ws       *workspace.Workspace
	local    *cache.Store
	repo     *cache.Store
	goc      *goCmd
	progress *ui.Progress
	// Net bounds the downloads of archives in time.
	Net Network
	// Client, if not nil, downloads archives instead of a client made
	// from Net (whose Answer and Stall bounds apply to it too).
	Client *http.Client
}

// NewFetcher returns a Fetcher for the workspace, showing progress on p
// (which may be nil).
func NewFetcher(ws *workspace.Workspace, p *ui.Progress) *Fetcher {
	f := &Fetcher{
		ws:       ws,
		local:    &cache.Store{Dir: ws.Cache},
		repo:     &cache.Store{Dir: ws.RepoCache()},
		goc:      &goCmd{modCache: ModCache(ws)},
		progress: p,
		Net:      DefaultNetwork,
	}
	if fi, err := os.Stat(repoGoProxy(ws)); err == nil && fi.IsDir() {
		f.goc.proxyFirst = "file://" + repoGoProxy(ws)
	}
	return f
}

// ModCache is the Go module cache (GOMODCACHE) holding locked gomod sources.
func ModCache(ws *workspace.Workspace) string { return filepath.Join(ws.Cache, "gomod") }

// repoGoProxy is the in-repo cache of Go modules, laid out as a GOPROXY.
func repoGoProxy(ws *workspace.Workspace) string { return filepath.Join(ws.RepoCache(), "gomod") }

// Result says what a fetch did for one source.
type Result struct {
	Name   string `json:"name"`
	Status string `json:"status"`
}

// Fetch statuses.
const (
	Fetched  = "fetched"
	Cached   = "cached"
	FromRepo = "copied from the in-repo cache"
)

// Fetch fetches each source in turn and stops at the first failure, which
// leaves the cache as it was before that source, or when ctx is done.
func (f *Fetcher) Fetch(ctx context.Context, srcs []*Source) ([]Result, error) {
	var out []Result
	for _, s := range srcs {
		if err := ctx.Err(); err != nil {
			return out, fmt.Errorf("fetch %s: %w", s.Name, err)
		}
		step := f.progress.Start("fetch %s (%s %s)", s.Name, s.Kind, s.Ref())
		status, err := f.fetch(ctx, s, step)
		if err = step.Done(err); err != nil {
			return out, fmt.Errorf("fetch %s: %w", s.Name, err)
		}
		out = append(out, Result{Name: s.Name, Status: status})
	}
	return out, nil
}

func (f *Fetcher) fetch(ctx context.Context, s *Source, step *ui.Step) (string, error) {
	switch s.Kind {
	case GoMod:
		return f.fetchGoMod(ctx, s)
	case DebSrc:
		return f.fetchDebSrcCached(ctx, s)
	case Deb, Archive, Npm:
		d := s.Digest()
		if err := f.local.Verify(ctx, d); err == nil {
			return Cached, nil
		} else if ctx.Err() != nil {
			return "", ctx.Err()
		} else if !cache.IsNotExist(err) {
			// A damaged copy, or something else than a file in its
			// place, is never used: drop it (a link, not what it points
			// to) and fetch anew.
			if err := os.Remove(f.local.Path(d)); err != nil {
				return "", err
			}
		}
		// Whatever is in the in-repo cache's place is taken or refused:
		// a link or a FIFO there fails the fetch, naming it.
		if _, err := os.Lstat(f.repo.Path(d)); err == nil {
			if err := f.local.CopyFrom(ctx, f.repo, d); err != nil {
				return "", fmt.Errorf("in-repo cache: %w", err)
			}
			return FromRepo, nil
		}
		switch s.Kind {
		case Deb:
			return Fetched, f.fetchDeb(ctx, s, d)
		case Npm:
			return Fetched, f.fetchNpm(ctx, s, d)
		}
		return Fetched, f.fetchArchive(ctx, s, d, step)
	}
	return "", fmt.Errorf("unknown kind %q", s.Kind)
}

// fetchArchive downloads an archive and stores it if it matches d.
func (f *Fetcher) fetchArchive(ctx context.Context, s *Source, d digest.Digest, step *ui.Step) error {
	u := s.ArchiveURL()
	err := f.get(ctx, u, func(body io.Reader, size int64) error {
		return f.local.Put(body, d, func(n int64) { step.Bytes(n, size) })
	})
	return describeMismatch(u, err)
}

// fetchDeb downloads a Debian package with apt-get and stores it if it
// matches d.
func (f *Fetcher) fetchDeb(ctx context.Context, s *Source, d digest.Digest) error {
	tmp, err := f.local.TempDir("deb-")
	if err != nil {
		return err
	}
	defer os.RemoveAll(tmp)
	file, err := aptDownload(ctx, tmp, s.Package, s.arch(), s.Version)
	if err != nil {
		return err
	}
	return describeMismatch(filepath.Base(file), f.local.PutFile(ctx, file, d))
}

func (s *Source) arch() string {
	if s.Arch == "" {
		return "amd64"
	}
	return s.Arch
}

// aptDownload runs apt-get download for pkg:arch=version in dir and returns
// the path of the .deb.
func aptDownload(ctx context.Context, dir, pkg, arch, version string) (string, error) {
	spec := pkg + ":" + arch + "=" + version
	cmd := command(ctx, "apt-get", "download", "-q", spec)
	cmd.Dir = dir
	out, err := cmd.CombinedOutput()
	if err != nil {
		if errors.Is(err, exec.ErrNotFound) {
			return "", fmt.Errorf("apt-get is not installed: deb sources are fetched with Debian's apt")
		}
		return "", fmt.Errorf("apt-get download %s: %s (run apt-get update; if Debian no longer has this version, `stack sources update` moves to the one it has)", spec, lastErrorLine(out))
	}
	debs, _ := filepath.Glob(filepath.Join(dir, "*.deb"))
	if len(debs) != 1 {
		return "", fmt.Errorf("apt-get download %s: found %d .deb files, want 1", spec, len(debs))
	}
	return debs[0], nil
}

// lastErrorLine returns the most telling line of a command's output: the
// last one starting with "E:", else the last non-empty one.
func lastErrorLine(out []byte) string {
	lines := strings.Split(strings.TrimSpace(string(out)), "\n")
	for i := len(lines) - 1; i >= 0; i-- {
		if strings.HasPrefix(lines[i], "E:") {
			return strings.TrimSpace(lines[i])
		}
	}
	return strings.TrimSpace(lines[len(lines)-1])
}

// describeMismatch turns a cache mismatch into an error naming what was
// downloaded and saying the cache is unchanged.
func describeMismatch(what string, err error) error {
	var m *cache.MismatchError
	if errors.As(err, &m) {
		return fmt.Errorf("%s: downloaded content does not match sources.yaml: expected %s, got %s; nothing was stored in the cache", what, m.Want, m.Got)
	}
	return err
}

// fetchGoMod downloads every module of the source's lock into the module
// cache. The go command checks each download against the lock's go.sum
// before it is placed in the cache.
func (f *Fetcher) fetchGoMod(ctx context.Context, s *Source) (string, error) {
	lock, err := ReadLock(f.ws.Locks(), s.Name)
	if err != nil {
		return "", err
	}
	if err := lock.Check(s); err != nil {
		return "", err
	}
	lines, err := ParseSum(s.Name+".sum", lock.Sum)
	if err != nil {
		return "", err
	}
	var mods []string
	missing := false
	for _, l := range lines {
		if !l.GoMod {
			mods = append(mods, l.Path+"@"+l.Version)
			if !fileExists(zipPath(ModCache(f.ws), l.Mod())) {
				missing = true
			}
		}
	}
	if !missing {
		return Cached, nil
	}
	tmp, err := (&cache.Store{Dir: f.ws.Cache}).TempDir("gomod-")
	if err != nil {
		return "", err
	}
	defer os.RemoveAll(tmp)
	if err := lock.Materialize(tmp); err != nil {
		return "", err
	}
	res, err := f.goc.download(ctx, tmp, "readonly", mods...)
	if err != nil {
		if m := verifyFailRE.FindStringSubmatch(err.Error()); m != nil {
			return "", fmt.Errorf("%s: %s", m[1], goDownloadError(err.Error()))
		}
		return "", err
	}
	var errs []error
	for _, r := range res {
		if r.Error != "" {
			errs = append(errs, fmt.Errorf("%s@%s: %s", r.Path, r.Version, goDownloadError(r.Error)))
		}
	}
	if len(errs) > 0 {
		return "", errors.Join(errs...)
	}
	return Fetched, nil
}

var verifyFailRE = regexp.MustCompile(`verifying (\S+@\S+?):? checksum mismatch`)

var sumMismatchRE = regexp.MustCompile(`(?s)downloaded:\s*(h1:\S+).*go\.sum:\s*(h1:\S+)`)

// goDownloadError rewords the go command's checksum mismatch report.
func goDownloadError(msg string) string {
	if m := sumMismatchRE.FindStringSubmatch(msg); m != nil {
		return fmt.Sprintf("downloaded content does not match the lock: expected %s, got %s; nothing was stored in the cache", m[2], m[1])
	}
	return strings.Join(strings.Fields(msg), " ")
}

func fileExists(p string) bool {
	_, err := os.Stat(p)
	return err == nil
}

// copyFile copies src, a regular file of a cache, to dst through a
// temporary file.
func copyFile(ctx context.Context, dst, src string) error {
	in, err := cache.Open(src)
	if err != nil {
		return err
	}
	defer in.Close()
	if err := os.MkdirAll(filepath.Dir(dst), 0o755); err != nil {
		return err
	}
	tmp, err := os.CreateTemp(filepath.Dir(dst), "."+filepath.Base(dst)+".*")
	if err != nil {
		return err
	}
	defer os.Remove(tmp.Name())
	if _, err := io.Copy(tmp, cache.ContextReader(ctx, in)); err != nil {
		tmp.Close()
		return err
	}
	if err := tmp.Close(); err != nil {
		return err
	}
	return os.Rename(tmp.Name(), dst)
}
