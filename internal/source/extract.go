package source

import (
	"archive/tar"
	"bufio"
	"bytes"
	"compress/gzip"
	"context"
	"errors"
	"fmt"
	"io"
	"os"
	"path"
	"path/filepath"
	"strconv"
	"strings"

	"github.com/klauspost/compress/zstd"
	"github.com/ulikunitz/xz"

	"github.com/hashbang/stack/internal/cache"
	"github.com/hashbang/stack/internal/workspace"
)

// ToolsDir is where extracted sources live: <cache>/tools.
func ToolsDir(ws *workspace.Workspace) string { return filepath.Join(ws.Cache, "tools") }

// ExtractedDir is the directory a deb or npm source is (or would be)
// unpacked in: <cache>/tools/<name>-<first 12 hex digits of its hash>. The
// hash in the name means a new version never reuses an old tree.
func ExtractedDir(ws *workspace.Workspace, s *Source) string {
	hex := s.Digest().Encoded()
	if len(hex) > 12 {
		hex = hex[:12]
	}
	return filepath.Join(ToolsDir(ws), s.Name+"-"+hex)
}

// Extract unpacks the data of a fetched deb source, the package directory
// of a fetched npm tarball, or the source tree of a fetched debsrc source
// (with Debian's patches applied, by dpkg-source) into ExtractedDir and
// returns that
// directory. It is done once: an existing directory is
// returned as it is. The .deb is verified against its pin first; the tree
// is written to a temporary directory and renamed into place only when
// complete, so a failed extraction leaves nothing behind. Paths that would
// land outside the directory, links through which (or over which) later
// entries would be written, and device files are refused; every write goes
// through an os.Root, so that none can leave the directory in any case.
func Extract(ctx context.Context, ws *workspace.Workspace, s *Source) (string, error) {
	if s.Kind != Deb && s.Kind != Npm && s.Kind != DebSrc {
		return "", fmt.Errorf("extract %s: kind %s, only deb, debsrc and npm sources are extracted", s.Name, s.Kind)
	}
	dir := ExtractedDir(ws, s)
	if fi, err := os.Stat(dir); err == nil && fi.IsDir() {
		return dir, nil
	}
	store := &cache.Store{Dir: ws.Cache}
	if s.Kind == DebSrc {
		return extractDebSrcInto(ctx, ws, store, s, dir)
	}
	d := s.Digest()
	if err := store.Verify(ctx, d); err != nil {
		if ctx.Err() != nil {
			return "", fmt.Errorf("extract %s: %w", s.Name, ctx.Err())
		}
		if cache.IsNotExist(err) {
			return "", fmt.Errorf("extract %s: not in the cache: run `stack sources fetch %s`", s.Name, s.Name)
		}
		return "", fmt.Errorf("extract %s: %w (run `stack sources fetch %s` to fetch it again)", s.Name, err, s.Name)
	}
	if err := os.MkdirAll(ToolsDir(ws), 0o755); err != nil {
		return "", fmt.Errorf("extract %s: %w", s.Name, err)
	}
	tmp, err := os.MkdirTemp(ToolsDir(ws), ".extract-"+s.Name+"-")
	if err != nil {
		return "", fmt.Errorf("extract %s: %w", s.Name, err)
	}
	defer os.RemoveAll(tmp)
	f, err := store.OpenBlob(d)
	if err != nil {
		return "", fmt.Errorf("extract %s: %w", s.Name, err)
	}
	defer f.Close()
	extract := ExtractDeb
	if s.Kind == Npm {
		extract = ExtractNpm
	}
	if err := extract(ctx, f, tmp); err != nil {
		return "", fmt.Errorf("extract %s (%s): %w", s.Name, store.Path(d), err)
	}
	if err := os.Chmod(tmp, 0o755); err != nil {
		return "", err
	}
	if err := os.Rename(tmp, dir); err != nil {
		// Another stack extracted it at the same time: theirs is as good.
		if fi, serr := os.Stat(dir); serr == nil && fi.IsDir() {
			return dir, nil
		}
		return "", fmt.Errorf("extract %s: %w", s.Name, err)
	}
	return dir, nil
}

// ExtractNpm unpacks the npm package tarball (.tgz) read from r into the
// existing directory dir: the content of the tarball's one top-level
// directory (package/ as npm writes it) becomes the content of dir.
func ExtractNpm(ctx context.Context, r io.Reader, dir string) error {
	z, err := gzip.NewReader(r)
	if err != nil {
		return fmt.Errorf("not an npm package tarball: %w", err)
	}
	defer z.Close()
	tmp, err := os.MkdirTemp(dir, ".tgz-")
	if err != nil {
		return err
	}
	defer os.RemoveAll(tmp)
	if err := extractTar(ctx, z, tmp); err != nil {
		return err
	}
	top, err := os.ReadDir(tmp)
	if err != nil {
		return err
	}
	if len(top) != 1 || !top[0].IsDir() {
		return fmt.Errorf("not an npm package tarball: want one top-level directory, found %d entries", len(top))
	}
	root, err := os.OpenRoot(dir)
	if err != nil {
		return err
	}
	defer root.Close()
	pkg := path.Join(filepath.Base(tmp), top[0].Name())
	inner, err := os.ReadDir(filepath.Join(dir, filepath.FromSlash(pkg)))
	if err != nil {
		return err
	}
	for _, e := range inner {
		if err := root.Rename(path.Join(pkg, e.Name()), e.Name()); err != nil {
			return err
		}
	}
	return nil
}

// ExtractDeb unpacks the data archive (data.tar, .tar.xz, .tar.zst or
// .tar.gz) of the .deb read from r into the existing directory dir.
func ExtractDeb(ctx context.Context, r io.Reader, dir string) error {
	found := false
	err := ReadAr(r, func(name string, size int64, body io.Reader) error {
		if !strings.HasPrefix(name, "data.tar") {
			return nil
		}
		if found {
			return errors.New("more than one data archive")
		}
		found = true
		dec, closer, err := decompressor(strings.TrimPrefix(name, "data.tar"), body)
		if err != nil {
			return err
		}
		defer closer()
		return extractTar(ctx, dec, dir)
	})
	if err != nil {
		return err
	}
	if !found {
		return errors.New("not a Debian package: no data.tar member")
	}
	return nil
}

func decompressor(ext string, r io.Reader) (io.Reader, func(), error) {
	switch ext {
	case "":
		return r, func() {}, nil
	case ".gz":
		z, err := gzip.NewReader(r)
		if err != nil {
			return nil, nil, fmt.Errorf("data.tar.gz: %w", err)
		}
		return z, func() { z.Close() }, nil
	case ".xz":
		z, err := xz.NewReader(bufio.NewReader(r))
		if err != nil {
			return nil, nil, fmt.Errorf("data.tar.xz: %w", err)
		}
		return z, func() {}, nil
	case ".zst":
		z, err := zstd.NewReader(r)
		if err != nil {
			return nil, nil, fmt.Errorf("data.tar.zst: %w", err)
		}
		return z, z.Close, nil
	}
	return nil, nil, fmt.Errorf("data.tar%s: unknown compression", ext)
}

// arMagic opens every ar archive.
const arMagic = "!<arch>\n"

// ReadAr reads the ar archive (the container format of a .deb) from r and
// calls fn with each member's name, size and content, in order. fn need not
// read the whole content. Only the common format is understood: names of
// up to 16 bytes, optionally ending in '/', as dpkg writes them.
func ReadAr(r io.Reader, fn func(name string, size int64, body io.Reader) error) error {
	br := bufio.NewReader(r)
	magic := make([]byte, len(arMagic))
	if _, err := io.ReadFull(br, magic); err != nil || string(magic) != arMagic {
		return errors.New("not an ar archive (a .deb starts with !<arch>)")
	}
	hdr := make([]byte, 60)
	for {
		_, err := io.ReadFull(br, hdr)
		if err == io.EOF {
			return nil
		}
		if err != nil {
			return fmt.Errorf("ar header: %w", err)
		}
		if hdr[58] != '`' || hdr[59] != '\n' {
			return errors.New("ar header: bad terminator")
		}
		name := strings.TrimSuffix(strings.TrimRight(string(hdr[0:16]), " "), "/")
		if name == "" || strings.ContainsAny(name, "/\x00") {
			return fmt.Errorf("ar member name %q is not a plain file name", string(bytes.TrimRight(hdr[0:16], " ")))
		}
		size, err := strconv.ParseInt(strings.TrimRight(string(hdr[48:58]), " "), 10, 64)
		if err != nil || size < 0 {
			return fmt.Errorf("ar member %s: bad size %q", name, string(hdr[48:58]))
		}
		body := io.LimitReader(br, size)
		if err := fn(name, size, body); err != nil {
			return fmt.Errorf("%s: %w", name, err)
		}
		// Skip what fn left unread, then the padding to an even offset.
		if _, err := io.Copy(io.Discard, body); err != nil {
			return fmt.Errorf("ar member %s: %w", name, err)
		}
		if body.(*io.LimitedReader).N > 0 {
			return fmt.Errorf("ar member %s: truncated", name)
		}
		if size%2 == 1 {
			if _, err := br.ReadByte(); err != nil && err != io.EOF {
				return fmt.Errorf("ar member %s: %w", name, err)
			}
		}
	}
}

// extractTar writes the entries of the tar stream r under dir. Each entry's
// name is cleaned and must stay inside dir; no entry may be written through
// a symbolic link, nor over one; hard links must point inside dir; devices,
// FIFOs and other special files are refused. Permission bits are kept except
// setuid, setgid and sticky; ownership and times are not.
//
// Every file system operation goes through an os.Root opened at dir, so that
// even a check this code gets wrong cannot make it create, change or chmod
// anything outside dir: the kernel refuses any path (or symbolic link on the
// way) that would leave it.
func extractTar(ctx context.Context, r io.Reader, dir string) error {
	root, err := os.OpenRoot(dir)
	if err != nil {
		return err
	}
	defer root.Close()
	tr := tar.NewReader(cache.ContextReader(ctx, r))
	for {
		if err := ctx.Err(); err != nil {
			return err
		}
		h, err := tr.Next()
		if err == io.EOF {
			return nil
		}
		if err != nil {
			if ctx.Err() != nil {
				return ctx.Err()
			}
			return fmt.Errorf("data archive: %w", err)
		}
		if err := extractEntry(ctx, root, h, tr); err != nil {
			return err
		}
	}
}

// extractEntry writes one tar entry, whose content is read from body, into
// root.
func extractEntry(ctx context.Context, root *os.Root, h *tar.Header, body io.Reader) error {
	rel, err := safeRel(h.Name)
	if err != nil {
		return err
	}
	if rel == "." {
		return nil
	}
	if err := noLinkParents(root, rel); err != nil {
		return err
	}
	// The directory the entry goes in. Made 0755 (a later entry of its
	// own may set its mode); noLinkParents saw no link on the way.
	if parent := path.Dir(rel); parent != "." {
		if err := root.MkdirAll(parent, 0o755); err != nil {
			return fmt.Errorf("%s: %w", rel, err)
		}
	}
	mode := os.FileMode(h.Mode).Perm()
	switch h.Typeflag {
	case tar.TypeDir:
		fi, err := root.Lstat(rel)
		switch {
		case errors.Is(err, os.ErrNotExist):
			if err := root.Mkdir(rel, 0o700); err != nil {
				return fmt.Errorf("%s: %w", rel, err)
			}
		case err != nil:
			return fmt.Errorf("%s: %w", rel, err)
		case fi.Mode()&os.ModeSymlink != 0:
			// Making the directory, or setting its mode, would follow
			// the link.
			return fmt.Errorf("entry %q would be written through the symbolic link %s", rel, rel)
		case !fi.IsDir():
			return fmt.Errorf("%s: directory over a file: file exists", rel)
		}
		// No link here (just checked, and nothing else writes in the
		// directory); were there one, the root would still keep the chmod
		// inside.
		if err := root.Chmod(rel, mode|0o700); err != nil {
			return fmt.Errorf("%s: %w", rel, err)
		}
	case tar.TypeReg:
		// O_EXCL: never over an existing entry, and never through a
		// symbolic link in its place (the root follows none for O_EXCL).
		f, err := root.OpenFile(rel, os.O_WRONLY|os.O_CREATE|os.O_EXCL, mode)
		if err != nil {
			return fmt.Errorf("%s: %w", rel, err)
		}
		_, err = io.Copy(f, cache.ContextReader(ctx, body))
		if cerr := f.Close(); err == nil {
			err = cerr
		}
		if err != nil {
			return fmt.Errorf("%s: %w", rel, err)
		}
	case tar.TypeSymlink:
		if h.Linkname == "" || strings.ContainsRune(h.Linkname, 0) {
			return fmt.Errorf("%s: empty symbolic link", rel)
		}
		// A package may hold links to anywhere (/etc/alternatives/...):
		// they are made as they are, and never followed by what comes
		// after (noLinkParents, and the root).
		if err := root.Symlink(h.Linkname, rel); err != nil {
			return fmt.Errorf("%s: %w", rel, err)
		}
	case tar.TypeLink:
		lrel, err := safeRel(h.Linkname)
		if err != nil || lrel == "." {
			return fmt.Errorf("%s: hard link to %q, outside the package", rel, h.Linkname)
		}
		if err := noLinkParents(root, lrel); err != nil {
			return err
		}
		if fi, err := root.Lstat(lrel); err != nil || !fi.Mode().IsRegular() {
			return fmt.Errorf("%s: hard link to %q, which is not a file extracted before it", rel, h.Linkname)
		}
		if err := root.Link(lrel, rel); err != nil {
			return fmt.Errorf("%s: %w", rel, err)
		}
	default:
		return fmt.Errorf("%s: refusing special file (tar type %q): a package of tools holds files, directories and links only", rel, h.Typeflag)
	}
	return nil
}

// safeRel cleans a tar entry name into a slash-separated path relative to
// the extraction directory, refusing names that leave it.
func safeRel(name string) (string, error) {
	if strings.ContainsRune(name, 0) {
		return "", fmt.Errorf("entry name %q holds a NUL byte", name)
	}
	rel := path.Clean("/" + strings.TrimPrefix(name, "./"))
	// Clean of a rooted path drops every "..": compare to see whether the
	// name tried to climb.
	for _, part := range strings.Split(name, "/") {
		if part == ".." {
			return "", fmt.Errorf("entry %q leaves the extraction directory", name)
		}
	}
	if strings.HasPrefix(name, "/") {
		return "", fmt.Errorf("entry %q is an absolute path", name)
	}
	rel = strings.TrimPrefix(rel, "/")
	if rel == "" {
		return ".", nil
	}
	return rel, nil
}

// noLinkParents fails if any directory on the way from the root to rel is
// a symbolic link, through which a write would leave the root (or land
// elsewhere in it than the name says).
func noLinkParents(root *os.Root, rel string) error {
	parts := strings.Split(rel, "/")
	p := ""
	for _, part := range parts[:len(parts)-1] {
		p = path.Join(p, part)
		fi, err := root.Lstat(p)
		if errors.Is(err, os.ErrNotExist) {
			return nil
		}
		if err != nil {
			return err
		}
		if fi.Mode()&os.ModeSymlink != 0 {
			return fmt.Errorf("entry %q would be written through the symbolic link %s", rel, p)
		}
	}
	return nil
}
