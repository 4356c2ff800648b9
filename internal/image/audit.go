package image

import (
	"archive/tar"
	"bufio"
	"bytes"
	"debug/elf"
	"errors"
	"fmt"
	"io"
	"path"
	"regexp"
	"slices"
	"strconv"
	"strings"

	v1 "github.com/google/go-containerregistry/pkg/v1"
	"github.com/google/go-containerregistry/pkg/v1/types"
)

// Finding is one way an image breaks the stack's promises.
type Finding struct {
	// Path is the file in the image (/bin/sh), or "config", "manifest" or
	// "layer N" for findings about the image rather than a file.
	Path   string `json:"path"`
	Reason string `json:"reason"`
}

// maxELF bounds the size of an ELF file read into memory to be checked.
const maxELF = 1 << 30

// forbidden names shells and package managers, which no image may hold.
var forbidden = map[string]string{
	"sh": "shell", "bash": "shell", "dash": "shell", "ash": "shell", "zsh": "shell",
	"ksh": "shell", "mksh": "shell", "csh": "shell", "tcsh": "shell", "fish": "shell",
	"busybox": "multi-call binary with a shell", "toybox": "multi-call binary with a shell",
	"apt": "package manager", "apt-get": "package manager", "apt-cache": "package manager",
	"dpkg": "package manager", "dpkg-deb": "package manager", "apk": "package manager",
	"yum": "package manager", "dnf": "package manager", "microdnf": "package manager",
	"rpm": "package manager", "zypper": "package manager", "pacman": "package manager",
	"opkg": "package manager", "emerge": "package manager", "nix-env": "package manager",
	"pip": "package manager", "npm": "package manager", "gem": "package manager",
	"easy_install": "package manager",
}

var pipRE = regexp.MustCompile(`^pip[0-9.]*$`)

// Audit checks img against the stack's promises and returns what it breaks,
// in image order: every ELF file statically linked, no shell or package
// manager, a non-root user, no setuid or setgid file, nothing
// world-writable but a sticky /tmp, and only OCI layers made by this
// package's builder. An error means the image could not be read.
func Audit(img v1.Image) ([]Finding, error) {
	var fs []Finding
	add := func(p, format string, args ...any) {
		fs = append(fs, Finding{Path: p, Reason: fmt.Sprintf(format, args...)})
	}

	mt, err := img.MediaType()
	if err != nil {
		return nil, err
	}
	if mt != types.OCIManifestSchema1 {
		add("manifest", "media type %s is not an OCI image manifest", mt)
	}
	m, err := img.Manifest()
	if err != nil {
		return nil, err
	}
	if m.Config.MediaType != types.OCIConfigJSON {
		add("manifest", "config media type %s is not OCI", m.Config.MediaType)
	}
	cfg, err := img.ConfigFile()
	if err != nil {
		return nil, err
	}
	if cfg.OS != Platform.OS || cfg.Architecture != Platform.Architecture {
		add("config", "platform %s/%s is not %s/%s", cfg.OS, cfg.Architecture, Platform.OS, Platform.Architecture)
	}

	// History: every layer made by our builder, one non-empty entry per layer.
	nonEmpty := 0
	for i, h := range cfg.History {
		if !h.EmptyLayer {
			nonEmpty++
		}
		if !strings.HasPrefix(h.CreatedBy, CreatedByPrefix) {
			add("config", "history entry %d was created by %q, not by stack build", i, h.CreatedBy)
		}
	}
	layers, err := img.Layers()
	if err != nil {
		return nil, err
	}
	if nonEmpty != len(layers) {
		add("config", "image has %d layers but its history accounts for %d: layers of unknown origin", len(layers), nonEmpty)
	}
	if len(cfg.RootFS.DiffIDs) != len(layers) {
		add("config", "config lists %d layer diff IDs for %d layers", len(cfg.RootFS.DiffIDs), len(layers))
	}

	var passwd []byte
	for i, l := range layers {
		where := fmt.Sprintf("layer %d", i+1)
		lmt, err := l.MediaType()
		if err != nil {
			return nil, err
		}
		switch lmt {
		case types.OCILayer, types.OCIUncompressedLayer:
		case types.DockerForeignLayer, types.OCIRestrictedLayer, types.OCIUncompressedRestrictedLayer:
			add(where, "foreign (non-distributable) layer %s: its content comes from elsewhere", lmt)
			continue
		default:
			add(where, "layer media type %s is not an OCI layer", lmt)
			if !lmt.IsLayer() {
				continue
			}
		}
		if i < len(m.Layers) && len(m.Layers[i].URLs) > 0 {
			add(where, "layer is fetched from foreign URLs %v", m.Layers[i].URLs)
		}
		rc, err := l.Uncompressed()
		if err != nil {
			return nil, fmt.Errorf("%s: %w", where, err)
		}
		p, err := auditLayer(rc, where, add)
		rc.Close()
		if err != nil {
			return nil, fmt.Errorf("%s: %w", where, err)
		}
		if p != nil {
			passwd = p
		}
	}
	auditUser(cfg.Config.User, passwd, add)
	return fs, nil
}

// auditLayer checks each entry of a layer's tar and returns the content of
// /etc/passwd if the layer holds one.
func auditLayer(r io.Reader, where string, add func(p, format string, args ...any)) ([]byte, error) {
	var passwd []byte
	tr := tar.NewReader(r)
	for {
		h, err := tr.Next()
		if errors.Is(err, io.EOF) {
			// Read to the end, so the blob's digest is checked.
			if _, err := io.Copy(io.Discard, r); err != nil {
				return nil, err
			}
			return passwd, nil
		}
		if err != nil {
			return nil, err
		}
		name := strings.TrimPrefix(strings.TrimPrefix(h.Name, "./"), "/")
		p := "/" + strings.TrimSuffix(name, "/")
		if strings.HasPrefix(h.Name, "/") || path.Clean("/"+name) != p || slices.Contains(strings.Split(name, "/"), "..") {
			add(p, "unsafe path %q in %s", h.Name, where)
		}
		base := path.Base(p)
		mode := h.Mode
		switch h.Typeflag {
		case tar.TypeReg, tar.TypeDir, tar.TypeSymlink, tar.TypeLink:
		case tar.TypeChar, tar.TypeBlock, tar.TypeFifo:
			add(p, "device or fifo node in %s", where)
		default:
			add(p, "unexpected tar entry type %q in %s", h.Typeflag, where)
		}
		if what, ok := forbidden[base]; ok && h.Typeflag != tar.TypeDir {
			add(p, "%s %q present: images hold no shell or package manager", what, base)
		} else if pipRE.MatchString(base) && h.Typeflag != tar.TypeDir {
			add(p, "package manager %q present: images hold no shell or package manager", base)
		}
		if h.Typeflag != tar.TypeDir && mode&0o4000 != 0 {
			add(p, "setuid file")
		}
		if h.Typeflag != tar.TypeDir && mode&0o2000 != 0 {
			add(p, "setgid file")
		}
		if h.Typeflag != tar.TypeSymlink && mode&0o002 != 0 {
			switch {
			case p == "/tmp" && h.Typeflag == tar.TypeDir && mode&0o1000 == 0:
				add(p, "world-writable /tmp without the sticky bit (mode %04o): use 1777", mode&0o7777)
			case p != "/tmp":
				add(p, "world-writable (mode %04o): only a sticky /tmp may be", mode&0o7777)
			}
		}
		if h.Typeflag != tar.TypeReg {
			continue
		}
		if p == "/etc/passwd" && h.Size < 1<<20 {
			b, err := io.ReadAll(tr)
			if err != nil {
				return nil, err
			}
			passwd = b
			continue
		}
		br := bufio.NewReader(tr)
		magic, _ := br.Peek(4)
		if !bytes.Equal(magic, []byte(elf.ELFMAG)) {
			continue
		}
		if h.Size > maxELF {
			add(p, "ELF file of %d bytes is too large to check", h.Size)
			continue
		}
		b, err := io.ReadAll(br)
		if err != nil {
			return nil, err
		}
		if reason := dynamic(b); reason != "" {
			add(p, "%s", reason)
		}
	}
}

// dynamic says why an ELF file is dynamically linked, or "" if it is not.
func dynamic(b []byte) string {
	f, err := elf.NewFile(bytes.NewReader(b))
	if err != nil {
		return fmt.Sprintf("ELF file that cannot be parsed (%v): cannot show it is static", err)
	}
	defer f.Close()
	var why []string
	for _, p := range f.Progs {
		if p.Type != elf.PT_INTERP {
			continue
		}
		interp, err := io.ReadAll(io.LimitReader(p.Open(), 4096))
		if err != nil {
			return fmt.Sprintf("ELF file whose interpreter cannot be read (%v)", err)
		}
		why = append(why, "program interpreter "+strings.TrimRight(string(interp), "\x00"))
	}
	libs, err := f.ImportedLibraries()
	if err != nil {
		return fmt.Sprintf("ELF file whose dynamic section cannot be read (%v)", err)
	}
	if len(libs) > 0 {
		why = append(why, "needs "+strings.Join(libs, ", "))
	}
	if len(why) == 0 {
		return ""
	}
	return "dynamically linked: " + strings.Join(why, "; ")
}

// auditUser checks the image's user is set and is not root.
func auditUser(user string, passwd []byte, add func(p, format string, args ...any)) {
	if user == "" {
		add("config", "no user set: the image would run as root; set user: UID:GID")
		return
	}
	u, _, _ := strings.Cut(user, ":")
	if u == "" {
		add("config", "user %q names no user: the image would run as root", user)
		return
	}
	if uid, err := strconv.ParseUint(u, 10, 32); err == nil {
		if uid == 0 {
			add("config", "runs as uid 0 (user %q): use an unprivileged uid", user)
		}
		return
	}
	if u == "root" {
		add("config", "runs as root (user %q): use an unprivileged uid", user)
		return
	}
	// A user name: look it up in the image's /etc/passwd.
	for _, line := range strings.Split(string(passwd), "\n") {
		f := strings.Split(line, ":")
		if len(f) >= 3 && f[0] == u {
			if f[2] == "0" {
				add("config", "runs as %s, which /etc/passwd gives uid 0", u)
			}
			return
		}
	}
	add("config", "user %q is not in the image's /etc/passwd: use a numeric uid:gid", u)
}
