package build

import (
	"context"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"strings"

	"github.com/hashbang/stack/internal/source"
)

// giteaTags are the build tags of gitea's release builds: assets embedded,
// sqlite with unlock notification.
var giteaTags = []string{"bindata", "sqlite", "sqlite_unlock_notify"}

// giteaBindata are the packages whose embedded assets go generate writes.
var giteaBindata = []string{"./modules/migration", "./modules/options", "./modules/public", "./modules/templates"}

// buildGitea builds gitea as its Makefile does for a static release
// (`make frontend` then `TAGS="bindata sqlite sqlite_unlock_notify"
// STATIC=true make backend`), from the verified module tree of the gitea
// source: the web assets with the pinned Node.js and pnpm from the module's
// own package.json and frozen lockfile (whose integrity hashes pin every
// package), then the Go program, offline from the module's go.sum, with
// cgo for sqlite linked statically against musl.
func buildGitea(ctx context.Context, c *Cache, b Binary, goroot, out string) error {
	s, tree, err := c.prep.ModuleTree(ctx, b.Source)
	if err != nil {
		return err
	}
	_, node, err := c.prep.Tool(ctx, "node")
	if err != nil {
		return err
	}
	_, pnpm, err := c.prep.Tool(ctx, "pnpm")
	if err != nil {
		return err
	}
	if err := os.MkdirAll(filepath.Join(c.ws.Cache, "tmp"), 0o755); err != nil {
		return err
	}
	work, err := os.MkdirTemp(filepath.Join(c.ws.Cache, "tmp"), "gitea-")
	if err != nil {
		return err
	}
	defer removeAll(work)
	src := filepath.Join(work, "src")
	if err := copyModuleTree(src, tree); err != nil {
		return fmt.Errorf("copy %s: %w", tree, err)
	}
	home := filepath.Join(work, "home")
	if err := os.MkdirAll(filepath.Join(home, "tmp"), 0o700); err != nil {
		return err
	}

	// Web assets.
	env, err := nodeEnv(ctx, node, home, filepath.Join(c.ws.Cache, "pnpm-store"))
	if err != nil {
		return err
	}
	nodeBin := filepath.Join(node, "bin", "node")
	if err := os.Chmod(nodeBin, 0o755); err != nil {
		return err
	}
	pnpmJS := filepath.Join(pnpm, "bin", "pnpm.cjs")
	if err := run(ctx, src, env, nodeBin, pnpmJS, "install", "--frozen-lockfile"); err != nil {
		return fmt.Errorf("gitea web assets: %w", err)
	}
	if err := run(ctx, src, env, nodeBin, pnpmJS, "exec", "vite", "build"); err != nil {
		return fmt.Errorf("gitea web assets: %w", err)
	}
	if err := os.RemoveAll(filepath.Join(src, "node_modules")); err != nil {
		return err
	}

	// Embedded assets, then the program.
	gocache, gomodcache := c.goCache(), source.ModCache(c.ws)
	genEnv := append(Go{GoRoot: goroot}.Env(home, gocache, gomodcache), "PATH="+filepath.Join(goroot, "bin")+":/usr/bin:/bin")
	args := append([]string{"generate", "-tags=bindata"}, giteaBindata...)
	if err := run(ctx, src, genEnv, filepath.Join(goroot, "bin", "go"), args...); err != nil {
		return fmt.Errorf("gitea bindata: %w", err)
	}
	version := strings.TrimPrefix(s.Version, "v")
	ld := append([]string{
		"-linkmode=external", "-extldflags=-static",
		"-X=main.Version=" + version, "-X=main.Tags=" + strings.Join(giteaTags, ","),
	}, b.LDFlags...)
	cenv := muslEnv(goroot, work, "-DSQLITE_MAX_VARIABLE_NUMBER=32766") // as gitea's Makefile sets it
	g := Go{GoRoot: goroot, GoCache: gocache, GoModCache: gomodcache}
	return g.Build(ctx, Spec{Dir: src, Package: ".", Output: out, LDFlags: ld, Tags: append(giteaTags, b.Tags...), Env: cenv})
}

// nodeEnv is the environment of the web asset build: the pinned Node.js
// first on PATH, a private home, pnpm's content-addressed store in the
// cache, and the machine's npm registry settings (address, proxy, CA),
// read from its own npm client at run time and never written anywhere.
func nodeEnv(ctx context.Context, node, home, store string) ([]string, error) {
	env := []string{
		"PATH=" + filepath.Join(node, "bin") + ":/usr/bin:/bin",
		"HOME=" + home,
		"TMPDIR=" + filepath.Join(home, "tmp"),
		"CI=true",
		"TZ=UTC",
		"LC_ALL=C",
		"SOURCE_DATE_EPOCH=0",
		"npm_config_store_dir=" + store,
		"npm_config_update_notifier=false",
	}
	if npm, err := exec.LookPath("npm"); err == nil {
		// Where the registry is and how it is reached (a proxy, the CA that
		// signs its certificate) are the machine's settings: carried over.
		for _, key := range []string{"registry", "cafile", "proxy", "https-proxy", "strict-ssl"} {
			out, err := exec.CommandContext(ctx, npm, "config", "get", key).Output()
			if err != nil {
				return nil, fmt.Errorf("npm config get %s: %v", key, err)
			}
			if v := strings.TrimSpace(string(out)); v != "" && v != "null" && v != "undefined" {
				env = append(env, "npm_config_"+strings.ReplaceAll(key, "-", "_")+"="+v)
			}
		}
	}
	for _, k := range []string{"HTTPS_PROXY", "HTTP_PROXY", "NO_PROXY", "https_proxy", "http_proxy", "no_proxy"} {
		if v, ok := os.LookupEnv(k); ok {
			env = append(env, k+"="+v)
		}
	}
	return env, nil
}
