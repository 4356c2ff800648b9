package source

import (
	"context"
	"fmt"
	"path/filepath"

	"github.com/hashbang/stack/internal/atomicfile"
	"github.com/hashbang/stack/internal/cache"
	"github.com/hashbang/stack/internal/workspace"
)

// Save copies the cached artifacts of each source into the in-repo cache
// (cache/, tracked by git-lfs), after checking them against their pins, so
// that a clone of the repository can build without fetching them. It
// returns how many files it copied.
func Save(ctx context.Context, ws *workspace.Workspace, srcs []*Source) (int, error) {
	n := 0
	local, repo := &cache.Store{Dir: ws.Cache}, &cache.Store{Dir: ws.RepoCache()}
	for _, s := range srcs {
		if ctx.Err() != nil {
			return n, ctx.Err()
		}
		if s.Kind != GoMod {
			d := s.Digest()
			if !local.Has(d) {
				return n, fmt.Errorf("save %s: not in the cache: run `stack sources fetch %s` first", s.Name, s.Name)
			}
			if repo.Has(d) {
				continue
			}
			if err := repo.CopyFrom(ctx, local, d); err != nil {
				return n, fmt.Errorf("save %s: %w", s.Name, describeMismatch("cached file", err))
			}
			n++
			continue
		}
		st := verifyOne(ctx, ws, s)
		if len(st.Problems) > 0 {
			return n, fmt.Errorf("save %s: %s", s.Name, st.Problems[0])
		}
		if !st.Cached {
			return n, fmt.Errorf("save %s: not in the cache: run `stack sources fetch %s` first", s.Name, s.Name)
		}
		lock, err := ReadLock(ws.Locks(), s.Name)
		if err != nil {
			return n, err
		}
		lines, err := ParseSum(s.Name+".sum", lock.Sum)
		if err != nil {
			return n, err
		}
		downloads := filepath.Join(ModCache(ws), "cache", "download")
		for _, l := range lines {
			exts := []string{".mod"}
			if !l.GoMod {
				exts = []string{".zip", ".info"}
			}
			for _, ext := range exts {
				src, dst := downloadPath(downloads, l.Mod(), ext), downloadPath(repoGoProxy(ws), l.Mod(), ext)
				if fileExists(dst) {
					continue
				}
				var err error
				switch {
				case fileExists(src):
					err = copyFile(ctx, dst, src)
				case ext == ".info":
					// The go command asks a proxy for .info before the zip;
					// the module cache lacks it for modules it resolved
					// through go.mod files alone.
					err = atomicfile.WriteFile(dst, fmt.Appendf(nil, "{\"Version\":%q}\n", l.Version), 0o644)
				default:
					continue
				}
				if err != nil {
					return n, fmt.Errorf("save %s: %w", s.Name, err)
				}
				n++
			}
		}
	}
	return n, nil
}
