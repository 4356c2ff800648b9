package source

import (
	"archive/zip"
	"context"
	"errors"
	"fmt"
	"io"
	"os"
	"path/filepath"
	"strings"
	"sync"

	"golang.org/x/mod/module"
	"golang.org/x/mod/sumdb/dirhash"

	"github.com/hashbang/stack/internal/cache"
	"github.com/hashbang/stack/internal/workspace"
)

// Problem is one thing verify found wrong.
type Problem struct {
	Source string `json:"source"`
	// Item is what is wrong within the source: a module version, a file.
	Item string `json:"item,omitempty"`
	Msg  string `json:"problem"`
}

func (p Problem) String() string {
	if p.Item == "" {
		return fmt.Sprintf("%s: %s", p.Source, p.Msg)
	}
	return fmt.Sprintf("%s: %s: %s", p.Source, p.Item, p.Msg)
}

// Status is what verify found for one source.
type Status struct {
	Name string `json:"name"`
	// Cached is true when every artifact of the source is in the cache.
	Cached bool `json:"cached"`
	// Artifacts counts the cached artifacts checked.
	Artifacts int       `json:"artifacts"`
	Problems  []Problem `json:"problems,omitempty"`
}

// Verify checks, offline, each source's lock against sources.yaml and every
// cached artifact of it (in the local cache and the in-repo cache) against
// its pinned hash. Artifacts not in the cache are not problems.
func Verify(ctx context.Context, ws *workspace.Workspace, srcs []*Source) []Status {
	out := make([]Status, len(srcs))
	var wg sync.WaitGroup
	sem := make(chan struct{}, 2)
	for i, s := range srcs {
		wg.Add(1)
		go func() {
			defer wg.Done()
			sem <- struct{}{}
			defer func() { <-sem }()
			out[i] = verifyOne(ctx, ws, s)
		}()
	}
	wg.Wait()
	return out
}

func verifyOne(ctx context.Context, ws *workspace.Workspace, s *Source) Status {
	st := Status{Name: s.Name}
	bad := func(item string, err error) {
		st.Problems = append(st.Problems, Problem{Source: s.Name, Item: item, Msg: err.Error()})
	}
	if ctx.Err() != nil {
		bad("", ctx.Err())
		return st
	}
	switch s.Kind {
	case Deb, Archive, Npm:
		d := s.Digest()
		for _, store := range []*cache.Store{{Dir: ws.Cache}, {Dir: ws.RepoCache()}} {
			err := store.Verify(ctx, d)
			if cache.IsNotExist(err) {
				continue
			}
			if ctx.Err() != nil {
				bad("", ctx.Err())
				return st
			}
			st.Artifacts++
			if err != nil {
				bad(store.Path(d), describeMismatch("cached file", err))
			}
		}
		st.Cached = (&cache.Store{Dir: ws.Cache}).Has(d)
	case DebSrc:
		d := s.Digest()
		for i, store := range []*cache.Store{{Dir: ws.Cache}, {Dir: ws.RepoCache()}} {
			n, complete, problems := verifyDebSrc(ctx, store, d)
			st.Artifacts += n
			if i == 0 {
				st.Cached = complete
			}
			for item, err := range problems {
				bad(item, err)
			}
		}
	case GoMod:
		lock, err := ReadLock(ws.Locks(), s.Name)
		if err == nil {
			err = lock.Check(s)
		}
		if err != nil {
			bad("", err)
			return st
		}
		lines, err := ParseSum(s.Name+".sum", lock.Sum)
		if err != nil {
			bad("", err)
			return st
		}
		st.Cached = true
		// The module cache holds downloads and extracted trees; the in-repo
		// cache holds downloads only, laid out as a GOPROXY.
		stores := []struct{ downloads, extracted string }{
			{filepath.Join(ModCache(ws), "cache", "download"), ModCache(ws)},
			{repoGoProxy(ws), ""},
		}
		for i, mc := range stores {
			for _, l := range lines {
				if ctx.Err() != nil {
					bad("", ctx.Err())
					return st
				}
				n, cached, err := verifyModule(ctx, mc.downloads, mc.extracted, l)
				st.Artifacts += n
				if i == 0 && !l.GoMod && !cached {
					st.Cached = false
				}
				if err != nil {
					bad(l.Path+"@"+l.Version, err)
				}
			}
		}
	}
	return st
}

// verifyModule checks what a GOPROXY-layout directory of downloads, and the
// directory of extracted trees if not empty, hold of one go.sum line: the
// go.mod file, or the zip and the extracted tree. It returns how many
// artifacts it checked and whether the zip is there.
//
// Every file is read as cache.Open reads it: a link, a FIFO or a device in
// the place of a file is found damaged, never followed nor read.
func verifyModule(ctx context.Context, downloads, extracted string, l SumLine) (int, bool, error) {
	m := l.Mod()
	if l.GoMod {
		p := downloadPath(downloads, m, ".mod")
		if !lexists(p) {
			return 0, false, nil
		}
		h, err := dirhash.Hash1([]string{"go.mod"}, func(string) (io.ReadCloser, error) { return openCached(ctx, p) })
		return 1, true, compareHash("cached go.mod", p, l.Hash, h, err)
	}
	n := 0
	var errs []error
	zip := downloadPath(downloads, m, ".zip")
	cached := lexists(zip)
	if cached {
		n++
		h, err := hashZip(ctx, zip)
		if err := compareHash("cached zip", zip, l.Hash, h, err); err != nil {
			errs = append(errs, err)
		}
	}
	if dir := extractedPath(extracted, m); extracted != "" {
		if fi, err := os.Lstat(dir); err == nil && fi.IsDir() {
			n++
			h, err := hashDir(ctx, dir, m.Path+"@"+m.Version)
			if err := compareHash("extracted tree", dir, l.Hash, h, err); err != nil {
				errs = append(errs, err)
			}
		}
	}
	return n, cached, errors.Join(errs...)
}

// lexists reports whether anything, a link included, is at p.
func lexists(p string) bool {
	_, err := os.Lstat(p)
	return err == nil
}

// openCached opens a file of a cache as cache.Open does; reading it fails
// once ctx is done.
func openCached(ctx context.Context, p string) (io.ReadCloser, error) {
	f, err := cache.Open(p)
	if err != nil {
		return nil, err
	}
	return ctxReadCloser{cache.ContextReader(ctx, f), f}, nil
}

type ctxReadCloser struct {
	io.Reader
	io.Closer
}

// hashZip is dirhash.HashZip reading the zip as openCached does.
func hashZip(ctx context.Context, p string) (string, error) {
	f, err := cache.Open(p)
	if err != nil {
		return "", err
	}
	defer f.Close()
	fi, err := f.Stat()
	if err != nil {
		return "", err
	}
	z, err := zip.NewReader(f, fi.Size())
	if err != nil {
		return "", err
	}
	var files []string
	zfiles := make(map[string]*zip.File)
	for _, file := range z.File {
		files = append(files, file.Name)
		zfiles[file.Name] = file
	}
	return dirhash.Hash1(files, func(name string) (io.ReadCloser, error) {
		zf := zfiles[name]
		if zf == nil {
			return nil, fmt.Errorf("file %q not found in zip", name)
		}
		r, err := zf.Open()
		if err != nil {
			return nil, err
		}
		return ctxReadCloser{cache.ContextReader(ctx, r), r}, nil
	})
}

// hashDir is dirhash.HashDir reading each file as openCached does. The go
// command extracts no links, FIFOs or devices: one in the tree is damage.
func hashDir(ctx context.Context, dir, prefix string) (string, error) {
	files, err := dirhash.DirFiles(dir, prefix)
	if err != nil {
		return "", err
	}
	return dirhash.Hash1(files, func(name string) (io.ReadCloser, error) {
		return openCached(ctx, filepath.Join(dir, filepath.FromSlash(strings.TrimPrefix(name, prefix+"/"))))
	})
}

// compareHash turns the outcome of hashing a cached artifact at path (what
// it is) into an error saying what to do, or nil when got is want.
func compareHash(what, path, want, got string, err error) error {
	switch {
	case err != nil:
		return fmt.Errorf("%s is damaged (%v); delete %s and fetch again", what, err, path)
	case got != want:
		return fmt.Errorf("%s does not match the lock: expected %s, got %s; delete %s and fetch again", what, want, got, path)
	}
	return nil
}

// escaped returns m's path and version escaped as module caches and
// proxies name them on disk.
func escaped(m module.Version) (path, version string, ok bool) {
	p, err := module.EscapePath(m.Path)
	if err != nil {
		return "", "", false
	}
	v, err := module.EscapeVersion(m.Version)
	if err != nil {
		return "", "", false
	}
	return p, v, true
}

// downloadPath is where a GOPROXY-layout directory (a module cache's
// cache/download, or the in-repo cache) keeps the file of m ending in ext.
func downloadPath(root string, m module.Version, ext string) string {
	p, v, ok := escaped(m)
	if !ok {
		return ""
	}
	return filepath.Join(root, p, "@v", v+ext)
}

// extractedPath is where a module cache keeps the extracted tree of m.
func extractedPath(modCache string, m module.Version) string {
	p, v, ok := escaped(m)
	if !ok {
		return ""
	}
	return filepath.Join(modCache, p+"@"+v)
}

// zipPath is where the module cache keeps the zip of m.
func zipPath(modCache string, m module.Version) string {
	return downloadPath(filepath.Join(modCache, "cache", "download"), m, ".zip")
}

// IsCached reports, without hashing anything, whether every artifact of s
// is in the local cache. Verify says whether they are intact.
func IsCached(ws *workspace.Workspace, s *Source) bool {
	if s.Kind == DebSrc {
		return hasDebSrc(&cache.Store{Dir: ws.Cache}, s.Digest())
	}
	if s.Kind != GoMod {
		return (&cache.Store{Dir: ws.Cache}).Has(s.Digest())
	}
	lock, err := ReadLock(ws.Locks(), s.Name)
	if err != nil {
		return false
	}
	lines, err := ParseSum(s.Name+".sum", lock.Sum)
	if err != nil {
		return false
	}
	for _, l := range lines {
		if !l.GoMod && !fileExists(zipPath(ModCache(ws), l.Mod())) {
			return false
		}
	}
	return true
}
