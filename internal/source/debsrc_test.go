package source

import (
	"context"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/opencontainers/go-digest"

	"github.com/hashbang/stack/internal/cache"
)

const sampleDsc = `-----BEGIN PGP SIGNED MESSAGE-----
Hash: SHA512

Format: 3.0 (quilt)
Source: zlib
Version: 1:1.2.13.dfsg-1
Checksums-Sha256:
 71feb7947e3c00ef125f83b79a4e529bde31171e5babe48b391f06758d1ab0a1 1239825 zlib_1.2.13.dfsg.orig.tar.bz2
 f66cf3d4f2d7defcd4d1fd1fb0a11ee39f1e01b42ec7d059c9dc5c1695133c44 15700 zlib_1.2.13.dfsg-1.debian.tar.xz
Files:
 ef268c6fda8701834db2d8322b0ccf4e 1239825 zlib_1.2.13.dfsg.orig.tar.bz2

-----BEGIN PGP SIGNATURE-----

iQFHBAEBCgAxFiEEreZoqmdXGLWf4p/qJNaLcl1Uh9AFAmNmdVsTHGJyb29uaWVA
-----END PGP SIGNATURE-----
`

func TestParseDsc(t *testing.T) {
	d, err := ParseDsc([]byte(sampleDsc))
	if err != nil {
		t.Fatal(err)
	}
	if d.Source != "zlib" || d.Version != "1:1.2.13.dfsg-1" || d.Format != "3.0 (quilt)" || len(d.Files) != 2 {
		t.Fatalf("parsed %+v", d)
	}
	if f := d.Files[1]; f.Name != "zlib_1.2.13.dfsg-1.debian.tar.xz" || f.Size != 15700 || f.SHA256 != "f66cf3d4f2d7defcd4d1fd1fb0a11ee39f1e01b42ec7d059c9dc5c1695133c44" {
		t.Errorf("file %+v", f)
	}
	bad := []struct{ name, from, to, want string }{
		{"no sha256", "Checksums-Sha256:", "Checksums-Sha1:", "no Checksums-Sha256"},
		{"path in name", " zlib_1.2.13.dfsg-1.debian", " ../zlib_1.2.13.dfsg-1.debian", "not a plain file name"},
		{"short sum", "f66cf3d4f2d7", "f66cf3d4f2d", "not a lower-case sha256"},
		{"bad size", "15700 zlib", "-1 zlib", "bad size"},
		{"bad source", "Source: zlib", "Source: Z LIB", "not a Debian source package name"},
		{"no signature end", "\n-----BEGIN PGP SIGNATURE-----", "\n", "without its signature block"},
	}
	for _, tc := range bad {
		_, err := ParseDsc([]byte(strings.Replace(sampleDsc, tc.from, tc.to, 1)))
		if err == nil || !strings.Contains(err.Error(), tc.want) {
			t.Errorf("%s: got %v, want %q", tc.name, err, tc.want)
		}
	}
}

func TestParseDebSrcErrors(t *testing.T) {
	sha := strings.Repeat("a", 64)
	tests := []struct{ name, yaml, want string }{
		{"no package", "sources:\n  - name: git\n    kind: debsrc\n    version: 1:2.39.5-0+deb12u3\n    hash: sha256:" + sha + "\n",
			"f.yaml:2: source \"git\" has no package: add `package:`"},
		{"arch", "sources:\n  - name: git\n    kind: debsrc\n    package: git\n    arch: amd64\n    version: 1:2.39.5-0+deb12u3\n    hash: sha256:" + sha + "\n",
			"f.yaml:5: source \"git\": `arch` does not apply to kind debsrc: remove it"},
		{"bad version", "sources:\n  - name: git\n    kind: debsrc\n    package: git\n    version: 2.39 5\n    hash: sha256:" + sha + "\n",
			"f.yaml:5: source \"git\": \"2.39 5\" is not an exact Debian version"},
		{"h1 hash", "sources:\n  - name: git\n    kind: debsrc\n    package: git\n    version: 1:2.39.5-0+deb12u3\n    hash: h1:abc\n",
			"f.yaml:6: source \"git\": hash \"h1:abc\" must start with sha256:"},
	}
	for _, tc := range tests {
		_, err := Parse("f.yaml", []byte(tc.yaml))
		if err == nil || !strings.Contains(err.Error(), tc.want) {
			t.Errorf("%s: got %v, want %q", tc.name, err, tc.want)
		}
	}
	good := "sources:\n  - name: git\n    kind: debsrc\n    package: git\n    version: 1:2.39.5-0+deb12u3\n    hash: sha256:" + sha + "\n"
	cfg, err := Parse("f.yaml", []byte(good))
	if err != nil {
		t.Fatal(err)
	}
	if s := cfg.Sources[0]; s.Ref() != "git=1:2.39.5-0+deb12u3" {
		t.Errorf("ref %s", s.Ref())
	}
}

func TestDebSrcLines(t *testing.T) {
	got := string(debSrcLines([]byte("Types: deb\nURIs: http://mirror.invalid/debian\nSuites: bookworm\n\nTypes: deb deb-src\nURIs: x\n"), true))
	if strings.Count(got, "Types: deb-src\n") != 2 || strings.Contains(got, "Types: deb\n") {
		t.Errorf("deb822:\n%s", got)
	}
	got = string(debSrcLines([]byte("# c\ndeb http://mirror.invalid/debian bookworm main\ndeb-src http://x bookworm main\n"), false))
	if got != "deb-src http://mirror.invalid/debian bookworm main\ndeb-src http://x bookworm main\n" {
		t.Errorf("one-line:\n%s", got)
	}
	if debSrcLines([]byte("Types: rpm\n"), true) != nil {
		t.Error("a stanza of no Debian type was kept")
	}
}

// TestDebSrcFetch fetches the committed zlib source package (about 1.3 MB)
// with apt-get source, verifies it offline, unpacks it with Debian's
// patches, and checks that a tampered file or .dsc is refused without
// touching the cache.
func TestDebSrcFetch(t *testing.T) {
	ws, s := committedSource(t, "zlib", "apt-get")
	ctx := context.Background()
	res, err := NewFetcher(ws, nil).Fetch(ctx, []*Source{s})
	if err != nil {
		if strings.Contains(err.Error(), "apt-get update") || strings.Contains(err.Error(), "Unable to find") {
			t.Skipf("apt cannot fetch %s here: %v", s.Ref(), err)
		}
		t.Fatal(err)
	}
	if res[0].Status != Fetched {
		t.Errorf("status %q", res[0].Status)
	}
	if !IsCached(ws, s) {
		t.Fatal("not cached after fetch")
	}
	st := Verify(ctx, ws, []*Source{s})[0]
	if !st.Cached || st.Artifacts != 3 || len(st.Problems) > 0 {
		t.Fatalf("verify: %+v", st)
	}
	if res, err := NewFetcher(ws, nil).Fetch(ctx, []*Source{s}); err != nil || res[0].Status != Cached {
		t.Fatalf("second fetch: %v %v", res, err)
	}

	dir, err := Extract(ctx, ws, s)
	if err != nil {
		t.Fatal(err)
	}
	for _, f := range []string{"zlib.h", "configure", "debian/changelog"} {
		if _, err := os.Stat(filepath.Join(dir, f)); err != nil {
			t.Error(err)
		}
	}

	// A tampered tarball: the .dsc still matches its pin, the file not the .dsc.
	store := &cache.Store{Dir: ws.Cache}
	dsc, err := readDsc(store, s.Digest())
	if err != nil {
		t.Fatal(err)
	}
	work := t.TempDir()
	name := filepath.Join(work, "zlib.dsc")
	copyTo(t, name, store.Path(s.Digest()))
	for _, fl := range dsc.Files {
		copyTo(t, filepath.Join(work, fl.Name), store.Path(fl.digest()))
	}
	tampered := filepath.Join(work, dsc.Files[1].Name)
	if err := os.WriteFile(tampered, []byte("not the debian tarball"), 0o644); err != nil {
		t.Fatal(err)
	}
	empty := &cache.Store{Dir: t.TempDir()}
	_, err = publishDebSrc(context.Background(), empty, name, s.Package, s.Version, s.Digest())
	if err == nil || !strings.Contains(err.Error(), dsc.Files[1].Name+" does not match the .dsc's Checksums-Sha256") || !strings.Contains(err.Error(), "nothing was stored") {
		t.Fatalf("tampered file: %v", err)
	}
	if after := listFiles(t, empty.Dir); after != "" {
		t.Errorf("a refused source package changed the cache:\n%s", after)
	}
	// A .dsc that is not the pinned one.
	wrong := digest.Digest("sha256:" + strings.Repeat("0", 64))
	_, err = publishDebSrc(context.Background(), empty, name, s.Package, s.Version, wrong)
	if err == nil || !strings.Contains(err.Error(), "does not match sources.yaml: expected "+string(wrong)) {
		t.Fatalf("wrong pin: %v", err)
	}
	if after := listFiles(t, empty.Dir); after != "" {
		t.Errorf("a refused .dsc changed the cache:\n%s", after)
	}
	// A damaged cached file is a verify problem, and a refetch repairs it.
	blob := store.Path(dsc.Files[1].digest())
	os.Chmod(blob, 0o644)
	if err := os.WriteFile(blob, []byte("damaged"), 0o644); err != nil {
		t.Fatal(err)
	}
	if st := Verify(ctx, ws, []*Source{s})[0]; len(st.Problems) != 1 || !strings.Contains(st.Problems[0].Msg, "does not match") {
		t.Fatalf("verify of a damaged file: %+v", st)
	}
}

func copyTo(t *testing.T, dst, src string) {
	t.Helper()
	if err := copyFile(context.Background(), dst, src); err != nil {
		t.Fatal(err)
	}
}

// FuzzParseDsc checks that no input makes the .dsc parser panic and that
// whatever it accepts names plain files with well-formed pins.
func FuzzParseDsc(f *testing.F) {
	f.Add([]byte(sampleDsc))
	f.Add([]byte("Source: a\nVersion: 1\nFormat: 1.0\nChecksums-Sha256:\n " + strings.Repeat("0", 64) + " 1 a.tar.gz\n"))
	f.Add([]byte("-----BEGIN PGP SIGNED MESSAGE-----\n\n- -----x\n-----BEGIN PGP SIGNATURE-----\n"))
	f.Fuzz(func(t *testing.T, data []byte) {
		d, err := ParseDsc(data)
		if err != nil {
			return
		}
		if len(d.Files) == 0 {
			t.Fatal("accepted a .dsc without files")
		}
		for _, fl := range d.Files {
			if !plainFileName(fl.Name) || len(fl.SHA256) != 64 || fl.Size < 0 {
				t.Fatalf("accepted %+v", fl)
			}
			if err := fl.digest().Validate(); err != nil {
				t.Fatal(err)
			}
		}
	})
}
