package build

import (
	"context"
	"fmt"
	"os"
	"path/filepath"
	"strings"
)

// gitMakeFlags build git for a server in a scratch image: no transport or
// helper that needs a library or interpreter besides zlib (no curl, ssl,
// expat, perl, python, Tcl/Tk, gettext or iconv), musl's regex lacking
// REG_STARTEND, every command a builtin of the one git program, and the
// Debian layout of its exec path (/usr/libexec/git-core) and configuration
// (/etc/gitconfig).
var gitMakeFlags = []string{
	"prefix=/usr", "sysconfdir=/etc",
	"NO_CURL=1", "NO_OPENSSL=1", "NO_PERL=1", "NO_PYTHON=1", "NO_TCLTK=1",
	"NO_GETTEXT=1", "NO_EXPAT=1", "NO_ICONV=1", "NO_REGEX=NeedsStartEnd",
	"NO_INSTALL_HARDLINKS=1",
}

// GitExecPath is where the static git looks for its programs
// (git --exec-path); an image places git-upload-pack, git-receive-pack and
// git-upload-archive there, as links to git.
const GitExecPath = "/usr/libexec/git-core"

// buildGit builds a static git with musl from the verified Debian source
// packages of zlib and git (upstream tarballs with Debian's patches
// applied): zlib as a static library, then git linked against it, stripped.
// Builds are byte-identical: fixed SOURCE_DATE_EPOCH, TZ and locale, the
// build directory mapped away, no debug information, no version from a
// surrounding git repository.
func buildGit(ctx context.Context, c *Cache, b Binary, goroot, out string) error {
	_, zsrc, err := c.prep.Tool(ctx, "zlib")
	if err != nil {
		return err
	}
	_, gsrc, err := c.prep.Tool(ctx, b.Source)
	if err != nil {
		return err
	}
	if err := os.MkdirAll(filepath.Join(c.ws.Cache, "tmp"), 0o755); err != nil {
		return err
	}
	work, err := os.MkdirTemp(filepath.Join(c.ws.Cache, "tmp"), "git-")
	if err != nil {
		return err
	}
	defer removeAll(work)
	env := []string{
		"PATH=/usr/bin:/bin",
		"HOME=" + work,
		"LC_ALL=C",
		"TZ=UTC",
		"SOURCE_DATE_EPOCH=" + sourceDateEpoch(c),
		// GIT-VERSION-GEN and the Makefile ask git about a surrounding
		// repository: there must be none.
		"GIT_CEILING_DIRECTORIES=" + work,
	}
	cflags := "-O2 -g0 -ffile-prefix-map=" + work + "=/build"
	zdir, gdir, zout := filepath.Join(work, "zlib"), filepath.Join(work, "git"), filepath.Join(work, "zlib-out")
	for _, cp := range [][2]string{{zsrc, zdir}, {gsrc, gdir}} {
		if err := run(ctx, work, env, "cp", "-R", "--no-preserve=ownership", cp[0], cp[1]); err != nil {
			return err
		}
	}
	zenv := append(env, "CC=musl-gcc", "CFLAGS="+cflags)
	if err := run(ctx, zdir, zenv, "./configure", "--static", "--prefix="+zout); err != nil {
		return fmt.Errorf("zlib: %w", err)
	}
	if err := run(ctx, zdir, zenv, "make", "-j2", "libz.a"); err != nil {
		return fmt.Errorf("zlib: %w", err)
	}
	if err := run(ctx, zdir, zenv, "make", "install"); err != nil {
		return fmt.Errorf("zlib: %w", err)
	}
	args := append([]string{"-j2", "CC=musl-gcc", "CFLAGS=" + cflags, "LDFLAGS=-static -s", "ZLIB_PATH=" + zout}, gitMakeFlags...)
	if err := run(ctx, gdir, env, "make", append(args, "git")...); err != nil {
		return fmt.Errorf("git: %w", err)
	}
	if err := os.MkdirAll(filepath.Dir(out), 0o755); err != nil {
		return err
	}
	tmp := out + ".tmp"
	if err := copyFile(tmp, filepath.Join(gdir, "git")); err != nil {
		return err
	}
	return os.Rename(tmp, out)
}

// sourceDateEpoch is images/SOURCE_DATE_EPOCH, or 0.
func sourceDateEpoch(c *Cache) string {
	data, err := os.ReadFile(filepath.Join(c.ws.Root, "images", "SOURCE_DATE_EPOCH"))
	if v := strings.TrimSpace(string(data)); err == nil && v != "" && strings.Trim(v, "0123456789") == "" {
		return v
	}
	return "0"
}

// copyFile copies src to dst, executable.
func copyFile(dst, src string) error {
	data, err := os.ReadFile(src)
	if err != nil {
		return err
	}
	return os.WriteFile(dst, data, 0o755)
}
