package source

import (
	"bufio"
	"bytes"
	"context"
	"crypto/sha256"
	"encoding/hex"
	"errors"
	"fmt"
	"io"
	"os"
	"os/exec"
	"path/filepath"
	"strings"

	"github.com/opencontainers/go-digest"

	"github.com/hashbang/stack/internal/cache"
	"github.com/hashbang/stack/internal/workspace"
)

// A debsrc source is a Debian source package. Its pin is the sha256 of its
// .dsc; the .dsc's Checksums-Sha256 pin every file it names (the upstream
// tarball, Debian's tarball of packaging and patches). In the cache each is
// a blob named by its own sha256, the .dsc published last: a .dsc in the
// cache means its files were verified and stored before it.

func (p *parser) validateDebSrc(s *Source, who string, at func(string) int) {
	if s.Package == "" {
		p.errorf(s.Line, "%s has no package: add `package:` with the Debian source package name (`apt-cache showsrc BINARY` names it)", who)
	} else if !debNameRE.MatchString(s.Package) {
		p.errorf(at("package"), "%s: %q is not a Debian source package name", who, s.Package)
	}
	if s.Version != "" && !floatingRE.MatchString(s.Version) && !debVerRE.MatchString(s.Version) {
		p.errorf(at("version"), "%s: %q is not an exact Debian version (like 1:2.39.5-0+deb12u3): `stack sources update %s` finds the one apt has", who, s.Version, s.Name)
	}
}

// aptSrcDir is apt's private state for source packages: a deb-src copy of
// the host's apt sources, their indexes and apt's cache, all under the
// local cache, so that the host's apt configuration is never changed.
func aptSrcDir(ws *workspace.Workspace) string { return filepath.Join(ws.Cache, "apt-src") }

// aptSrc runs apt-get and apt-cache with the private deb-src state in dir.
type aptSrc struct{ dir string }

func (a aptSrc) opts() []string {
	return []string{
		"-o", "Dir::Etc::SourceList=/dev/null",
		"-o", "Dir::Etc::SourceParts=" + filepath.Join(a.dir, "sources.list.d"),
		"-o", "Dir::State::Lists=" + filepath.Join(a.dir, "lists"),
		"-o", "Dir::Cache=" + filepath.Join(a.dir, "cache"),
	}
}

// hostAptSources are where the host's apt sources are; the deb-src lists
// are derived from them, so that sources come from the same archives (or
// mirror, or snapshot) as the host's packages. No archive address is ever
// written into the repository.
var hostAptSources = []string{"/etc/apt/sources.list", "/etc/apt/sources.list.d"}

// setup writes the deb-src copies of the host's apt sources and updates
// their indexes.
func (a aptSrc) update(ctx context.Context) error {
	parts := filepath.Join(a.dir, "sources.list.d")
	for _, d := range []string{parts, filepath.Join(a.dir, "lists", "partial"), filepath.Join(a.dir, "cache", "archives", "partial")} {
		if err := os.MkdirAll(d, 0o755); err != nil {
			return err
		}
	}
	files := []string{hostAptSources[0]}
	more, _ := filepath.Glob(filepath.Join(hostAptSources[1], "*"))
	files = append(files, more...)
	n := 0
	for _, f := range files {
		ext := filepath.Ext(f)
		if ext != ".list" && ext != ".sources" {
			continue
		}
		data, err := os.ReadFile(f)
		if errors.Is(err, os.ErrNotExist) {
			continue
		}
		if err != nil {
			return err
		}
		out := debSrcLines(data, ext == ".sources")
		if len(out) == 0 {
			continue
		}
		n++
		if err := os.WriteFile(filepath.Join(parts, fmt.Sprintf("%02d-%s", n, filepath.Base(f))), out, 0o644); err != nil {
			return err
		}
	}
	if n == 0 {
		return errors.New("the host has no apt sources (/etc/apt/sources.list or /etc/apt/sources.list.d/*.sources): debsrc sources are fetched from the archives the host's apt uses")
	}
	args := append([]string{"-q"}, a.opts()...)
	out, err := command(ctx, "apt-get", append(args, "update")...).CombinedOutput()
	if err != nil {
		if errors.Is(err, exec.ErrNotFound) {
			return errors.New("apt-get is not installed: debsrc sources are fetched with Debian's apt")
		}
		return fmt.Errorf("apt-get update (deb-src indexes in %s): %s", a.dir, lastErrorLine(out))
	}
	return nil
}

// debSrcLines turns apt source entries for binary packages into the same
// entries for source packages: "deb ..." lines of a .list, "Types: deb"
// stanzas of a deb822 .sources file. It returns nil when none are left.
func debSrcLines(data []byte, deb822 bool) []byte {
	var out bytes.Buffer
	found := false
	sc := bufio.NewScanner(bytes.NewReader(data))
	for sc.Scan() {
		l := sc.Text()
		t := strings.TrimSpace(l)
		switch {
		case deb822 && strings.HasPrefix(t, "Types:"):
			types := strings.Fields(strings.TrimPrefix(t, "Types:"))
			if contains(types, "deb") || contains(types, "deb-src") {
				l, found = "Types: deb-src", true
			}
		case !deb822 && strings.HasPrefix(t, "deb "):
			l, found = "deb-src "+strings.TrimPrefix(t, "deb "), true
		case !deb822 && strings.HasPrefix(t, "deb-src "):
			found = true
		case !deb822:
			continue
		}
		out.WriteString(l + "\n")
	}
	if !found {
		return nil
	}
	return out.Bytes()
}

// download runs apt-get source --download-only for pkg=version in dir and
// returns the path of the .dsc.
func (a aptSrc) download(ctx context.Context, dir, pkg, version string) (string, error) {
	spec := pkg + "=" + version
	args := append(append([]string{"-q"}, a.opts()...), "source", "--download-only", spec)
	cmd := command(ctx, "apt-get", args...)
	cmd.Dir = dir
	out, err := cmd.CombinedOutput()
	if err != nil {
		return "", fmt.Errorf("apt-get source %s: %s (if Debian no longer has this version, `stack sources update` moves to the one it has)", spec, lastErrorLine(out))
	}
	dscs, _ := filepath.Glob(filepath.Join(dir, "*.dsc"))
	if len(dscs) != 1 {
		return "", fmt.Errorf("apt-get source %s: found %d .dsc files, want 1", spec, len(dscs))
	}
	return dscs[0], nil
}

// latest returns the newest version of source package pkg apt knows
// within track.
func (a aptSrc) latest(ctx context.Context, s *Source) (string, error) {
	args := append(a.opts(), "madison", s.Package)
	out, err := command(ctx, "apt-cache", args...).Output()
	if err != nil {
		return "", fmt.Errorf("apt-cache madison %s: %v", s.Package, err)
	}
	best := ""
	sc := bufio.NewScanner(bytes.NewReader(out))
	for sc.Scan() {
		f := strings.Split(sc.Text(), "|")
		if len(f) < 3 || strings.TrimSpace(f[0]) != s.Package || !strings.HasSuffix(strings.TrimSpace(f[2]), "Sources") {
			continue
		}
		v := strings.TrimSpace(f[1])
		if !strings.HasPrefix(v, s.Track) {
			continue
		}
		if best == "" || debNewer(ctx, v, best) {
			best = v
		}
	}
	if best == "" {
		return "", fmt.Errorf("apt knows no source package %s within track %q: check the name (`apt-cache showsrc %s` on the host names it)", s.Package, s.Track, s.Package)
	}
	return best, nil
}

// fetchDebSrc downloads the source package of s into a temporary
// directory, verifies the .dsc against d and every file against the .dsc,
// and only then publishes them into the local cache.
func (f *Fetcher) fetchDebSrc(ctx context.Context, s *Source, d digest.Digest) error {
	_, err := f.downloadDebSrc(ctx, s, s.Version, d)
	return err
}

// downloadDebSrc fetches pkg at version and publishes it; want, when not
// empty, is the pin the .dsc must match. It returns the .dsc's digest.
func (f *Fetcher) downloadDebSrc(ctx context.Context, s *Source, version string, want digest.Digest) (digest.Digest, error) {
	a := aptSrc{dir: aptSrcDir(f.ws)}
	if err := a.update(ctx); err != nil {
		return "", err
	}
	tmp, err := f.local.TempDir("debsrc-")
	if err != nil {
		return "", err
	}
	defer os.RemoveAll(tmp)
	dsc, err := a.download(ctx, tmp, s.Package, version)
	if err != nil {
		return "", err
	}
	return publishDebSrc(ctx, f.local, dsc, s.Package, version, want)
}

// publishDebSrc verifies the .dsc at path (against want when not empty, and
// its source name and version) and every file it names, found beside it,
// against its Checksums-Sha256; then stores the files and last the .dsc in
// store. Nothing is stored unless everything matches.
func publishDebSrc(ctx context.Context, store *cache.Store, path, pkg, version string, want digest.Digest) (digest.Digest, error) {
	data, err := readSmall(cache.OpenRegular(path))
	if err != nil {
		return "", err
	}
	got := digest.FromBytes(data)
	if want != "" && got != want {
		return "", describeMismatch(filepath.Base(path), &cache.MismatchError{Want: want, Got: got})
	}
	d, err := ParseDsc(data)
	if err != nil {
		return "", fmt.Errorf("%s: %w", filepath.Base(path), err)
	}
	if d.Source != pkg || d.Version != version {
		return "", fmt.Errorf("%s describes %s=%s, not %s=%s; nothing was stored in the cache", filepath.Base(path), d.Source, d.Version, pkg, version)
	}
	dir := filepath.Dir(path)
	for _, fl := range d.Files {
		if err := checkDscFile(ctx, filepath.Join(dir, fl.Name), fl); err != nil {
			return "", fmt.Errorf("%s; nothing was stored in the cache", err)
		}
	}
	for _, fl := range d.Files {
		if err := store.PutFile(ctx, filepath.Join(dir, fl.Name), fl.digest()); err != nil {
			return "", describeMismatch(fl.Name, err)
		}
	}
	return got, store.PutFile(ctx, path, got)
}

func (fl DscFile) digest() digest.Digest {
	return digest.NewDigestFromEncoded(digest.SHA256, fl.SHA256)
}

// checkDscFile hashes the file at path and compares it with what the .dsc
// says of it.
func checkDscFile(ctx context.Context, path string, fl DscFile) error {
	f, err := cache.OpenRegular(path)
	if err != nil {
		return fmt.Errorf("%s, named by the .dsc: %w", fl.Name, err)
	}
	defer f.Close()
	h := sha256.New()
	n, err := io.Copy(h, cache.ContextReader(ctx, f))
	if err != nil {
		return fmt.Errorf("%s: %w", fl.Name, err)
	}
	if sum := hex.EncodeToString(h.Sum(nil)); sum != fl.SHA256 || n != fl.Size {
		return fmt.Errorf("%s does not match the .dsc's Checksums-Sha256: expected sha256:%s (%d bytes), got sha256:%s (%d bytes)", fl.Name, fl.SHA256, fl.Size, sum, n)
	}
	return nil
}

// maxDsc bounds the size of a .dsc (a few kilobytes, even for a package of
// many files).
const maxDsc = 1 << 20

// readSmall reads the whole of the file f opened (closing it), if it holds
// at most maxDsc bytes.
func readSmall(f *os.File, err error) ([]byte, error) {
	if err != nil {
		return nil, err
	}
	defer f.Close()
	data, err := io.ReadAll(io.LimitReader(f, maxDsc+1))
	if err != nil {
		return nil, err
	}
	if len(data) > maxDsc {
		return nil, fmt.Errorf("%s: larger than %d bytes, too large for a .dsc", f.Name(), maxDsc)
	}
	return data, nil
}

// readDsc reads and parses the cached .dsc d of store, verifying it first.
func readDsc(store *cache.Store, d digest.Digest) (*Dsc, error) {
	data, err := readSmall(store.OpenBlob(d))
	if err != nil {
		return nil, err
	}
	if got := digest.FromBytes(data); got != d {
		return nil, &cache.MismatchError{Want: d, Got: got}
	}
	return ParseDsc(data)
}

// verifyDebSrc checks the .dsc d and every file it names in store. It
// returns how many artifacts it checked, whether the .dsc and all its files
// are there, and what is wrong, keyed by the file.
func verifyDebSrc(ctx context.Context, store *cache.Store, d digest.Digest) (int, bool, map[string]error) {
	dsc, err := readDsc(store, d)
	if cache.IsNotExist(err) {
		return 0, false, nil
	}
	if err != nil {
		return 1, false, map[string]error{store.Path(d): describeMismatch("cached .dsc", err)}
	}
	n, complete, bad := 1, true, map[string]error{}
	for _, fl := range dsc.Files {
		err := store.Verify(ctx, fl.digest())
		switch {
		case ctx.Err() != nil:
			return n, false, map[string]error{"": ctx.Err()}
		case cache.IsNotExist(err):
			complete = false
			bad[fl.Name] = fmt.Errorf("named by the cached .dsc but missing from %s: run `stack sources fetch`", store.Dir)
		case err != nil:
			n++
			bad[store.Path(fl.digest())] = describeMismatch("cached "+fl.Name, err)
		default:
			n++
		}
	}
	return n, complete && len(bad) == 0, bad
}

// hasDebSrc reports, without hashing, whether the .dsc d and every file it
// names are in store.
func hasDebSrc(store *cache.Store, d digest.Digest) bool {
	data, err := readSmall(store.OpenBlob(d))
	if err != nil {
		return false
	}
	dsc, err := ParseDsc(data)
	if err != nil {
		return false
	}
	for _, fl := range dsc.Files {
		if !store.Has(fl.digest()) {
			return false
		}
	}
	return true
}

// copyDebSrc copies the .dsc d and its files from the store from into to,
// verifying each on the way, the .dsc last.
func copyDebSrc(ctx context.Context, to, from *cache.Store, d digest.Digest) error {
	dsc, err := readDsc(from, d)
	if err != nil {
		return err
	}
	for _, fl := range dsc.Files {
		if err := to.CopyFrom(ctx, from, fl.digest()); err != nil {
			return fmt.Errorf("%s: %w", fl.Name, err)
		}
	}
	return to.CopyFrom(ctx, from, d)
}

// fetchDebSrcCached is fetch for a debsrc source: cached when the local
// cache holds it intact, else from the in-repo cache, else downloaded.
func (f *Fetcher) fetchDebSrcCached(ctx context.Context, s *Source) (string, error) {
	d := s.Digest()
	if _, ok, bad := verifyDebSrc(ctx, f.local, d); ok {
		return Cached, nil
	} else {
		// A damaged copy is never used: drop what is damaged and fetch anew.
		for p := range bad {
			if filepath.IsAbs(p) {
				if err := os.Remove(p); err != nil && !os.IsNotExist(err) {
					return "", err
				}
			}
		}
	}
	if ctx.Err() != nil {
		return "", ctx.Err()
	}
	if _, ok, _ := verifyDebSrc(ctx, f.repo, d); ok {
		if err := copyDebSrc(ctx, f.local, f.repo, d); err != nil {
			return "", fmt.Errorf("in-repo cache: %w", err)
		}
		return FromRepo, nil
	}
	return Fetched, f.fetchDebSrc(ctx, s, d)
}

// extractDebSrc unpacks the cached, verified source package of s with
// dpkg-source (Debian's dpkg-dev): the upstream tarball, then Debian's
// packaging with its patches applied, into dst, which must not exist.
func extractDebSrc(ctx context.Context, store *cache.Store, s *Source, work, dst string) error {
	d := s.Digest()
	if _, ok, bad := verifyDebSrc(ctx, store, d); !ok {
		if ctx.Err() != nil {
			return ctx.Err()
		}
		for item, err := range bad {
			return fmt.Errorf("%s: %w (run `stack sources fetch %s` to fetch it again)", item, err, s.Name)
		}
		return fmt.Errorf("not in the cache: run `stack sources fetch %s`", s.Name)
	}
	dsc, err := readDsc(store, d)
	if err != nil {
		return err
	}
	in := filepath.Join(work, "in")
	if err := os.MkdirAll(in, 0o755); err != nil {
		return err
	}
	for _, fl := range dsc.Files {
		if err := os.Symlink(store.Path(fl.digest()), filepath.Join(in, fl.Name)); err != nil {
			return err
		}
	}
	name := filepath.Join(in, dsc.Source+".dsc")
	if err := os.Symlink(store.Path(d), name); err != nil {
		return err
	}
	if _, err := exec.LookPath("dpkg-source"); err != nil {
		return errors.New("dpkg-source is not installed: Debian source packages are unpacked with Debian's dpkg-dev (apt-get install dpkg-dev)")
	}
	cmd := command(ctx, "dpkg-source", "--no-check", "--no-copy", "-x", name, dst)
	cmd.Dir = work
	cmd.Env = []string{"PATH=/usr/bin:/bin", "LC_ALL=C", "TZ=UTC", "HOME=" + work}
	if out, err := cmd.CombinedOutput(); err != nil {
		return fmt.Errorf("dpkg-source -x: %v: %s", err, lastErrorLine(out))
	}
	return nil
}

// extractDebSrcInto is Extract for a debsrc source: unpacked in a
// temporary directory beside dir and renamed into place when complete.
func extractDebSrcInto(ctx context.Context, ws *workspace.Workspace, store *cache.Store, s *Source, dir string) (string, error) {
	if err := os.MkdirAll(ToolsDir(ws), 0o755); err != nil {
		return "", fmt.Errorf("extract %s: %w", s.Name, err)
	}
	tmp, err := os.MkdirTemp(ToolsDir(ws), ".extract-"+s.Name+"-")
	if err != nil {
		return "", fmt.Errorf("extract %s: %w", s.Name, err)
	}
	defer os.RemoveAll(tmp)
	tree := filepath.Join(tmp, "tree")
	if err := extractDebSrc(ctx, store, s, tmp, tree); err != nil {
		return "", fmt.Errorf("extract %s: %w", s.Name, err)
	}
	if err := os.Rename(tree, dir); err != nil {
		// Another stack extracted it at the same time: theirs is as good.
		if fi, serr := os.Stat(dir); serr == nil && fi.IsDir() {
			return dir, nil
		}
		return "", fmt.Errorf("extract %s: %w", s.Name, err)
	}
	return dir, nil
}
