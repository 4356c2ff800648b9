package source

import (
	"archive/tar"
	"bytes"
	"compress/gzip"
	"context"
	"fmt"
	"io/fs"
	"os"
	"path/filepath"
	"sort"
	"strings"
	"testing"
)

// snapshot describes every entry under dir (name, type, mode, size, link
// target), to show that an extraction left it alone.
func snapshot(t *testing.T, dir string) string {
	t.Helper()
	var lines []string
	filepath.WalkDir(dir, func(p string, d fs.DirEntry, err error) error {
		if err != nil {
			lines = append(lines, fmt.Sprintf("%s: %v", p, err))
			return nil
		}
		fi, err := os.Lstat(p)
		if err != nil {
			return nil
		}
		link, _ := os.Readlink(p)
		lines = append(lines, fmt.Sprintf("%s %v %d %s", strings.TrimPrefix(p, dir), fi.Mode(), fi.Size(), link))
		return nil
	})
	sort.Strings(lines)
	return strings.Join(lines, "\n")
}

// outsideDir is a directory beside the extraction target, as an attacker
// would aim at: mode 0700, holding one file f.
func outsideDir(t *testing.T) string {
	t.Helper()
	out := filepath.Join(t.TempDir(), "outside")
	if err := os.Mkdir(out, 0o700); err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(filepath.Join(out, "f"), []byte("precious"), 0o600); err != nil {
		t.Fatal(err)
	}
	return out
}

// TestExtractStaysInside plays an attacker's archives against the
// extractor: every way an entry could make it create, change or chmod
// something outside its directory. Each is refused with an error saying
// why, and the directory outside (aimed at by absolute and relative links)
// is left exactly as it was.
func TestExtractStaysInside(t *testing.T) {
	mode := func(h *tar.Header, m int64) *tar.Header { h.Mode = m; return h }
	attacks := []struct {
		name    string
		entries func(out string) []*tar.Header
		want    string
	}{
		{"dir over symlink", func(out string) []*tar.Header {
			return []*tar.Header{symlink("./a", out), mode(dir("./a/"), 0o777)}
		}, "through the symbolic link a"},
		{"dir over symlink then file", func(out string) []*tar.Header {
			return []*tar.Header{symlink("./a", out), dir("./a"), file("./a/x", 0o644)}
		}, "through the symbolic link a"},
		{"dir over relative symlink", func(out string) []*tar.Header {
			return []*tar.Header{symlink("./a", "../outside"), mode(dir("./a"), 0o777)}
		}, "through the symbolic link a"},
		{"dir under symlink", func(out string) []*tar.Header {
			return []*tar.Header{symlink("./a", out), dir("./a/b/")}
		}, "through the symbolic link a"},
		{"file through symlink", func(out string) []*tar.Header {
			return []*tar.Header{symlink("./a", out), file("./a/x", 0o644)}
		}, "through the symbolic link a"},
		{"file over symlink to a file", func(out string) []*tar.Header {
			return []*tar.Header{symlink("./a", filepath.Join(out, "f")), file("./a", 0o644)}
		}, "file exists"},
		{"symlink chain", func(out string) []*tar.Header {
			return []*tar.Header{symlink("./b", out), symlink("./a", "b"), file("./a/x", 0o644)}
		}, "through the symbolic link a"},
		{"symlink to itself", func(out string) []*tar.Header {
			return []*tar.Header{symlink("./a", "."), file("./a/x", 0o644)}
		}, "through the symbolic link a"},
		{"climbing symlink in a subdirectory", func(out string) []*tar.Header {
			return []*tar.Header{dir("./d/"), symlink("./d/l", "../../outside"), mode(dir("./d/l/"), 0o777), file("./d/l/x", 0o644)}
		}, "through the symbolic link d/l"},
		{"dot-dot name", func(out string) []*tar.Header {
			return []*tar.Header{file("../outside/x", 0o644)}
		}, "leaves the extraction directory"},
		{"dot-dot inside a name", func(out string) []*tar.Header {
			return []*tar.Header{dir("./a/"), dir("a/../../outside")}
		}, "leaves the extraction directory"},
		{"absolute name", func(out string) []*tar.Header {
			return []*tar.Header{file(filepath.Join(out, "x"), 0o644)}
		}, "absolute path"},
		{"absolute dir name", func(out string) []*tar.Header {
			return []*tar.Header{mode(dir(out+"/"), 0o777)}
		}, "absolute path"},
		{"hard link to an absolute path", func(out string) []*tar.Header {
			return []*tar.Header{hardlink("./x", filepath.Join(out, "f"))}
		}, "outside the package"},
		{"hard link climbing", func(out string) []*tar.Header {
			return []*tar.Header{hardlink("./x", "../outside/f")}
		}, "outside the package"},
		{"hard link through symlink", func(out string) []*tar.Header {
			return []*tar.Header{symlink("./l", out), hardlink("./x", "./l/f")}
		}, "through the symbolic link l"},
		{"hard link to symlink", func(out string) []*tar.Header {
			return []*tar.Header{symlink("./l", filepath.Join(out, "f")), hardlink("./x", "./l")}
		}, "not a file extracted before it"},
		{"hard link placed through symlink", func(out string) []*tar.Header {
			return []*tar.Header{file("./f", 0o644), symlink("./l", out), hardlink("./l/g", "./f")}
		}, "through the symbolic link l"},
		{"hard link then write to it", func(out string) []*tar.Header {
			return []*tar.Header{symlink("./l", filepath.Join(out, "f")), file("./f", 0o644), hardlink("./l", "./f")}
		}, "file exists"},
		{"dir then symlink replacing it", func(out string) []*tar.Header {
			return []*tar.Header{dir("./a/"), symlink("./a", out), file("./a/x", 0o644)}
		}, "file exists"},
		{"file then symlink replacing it", func(out string) []*tar.Header {
			return []*tar.Header{file("./a", 0o644), symlink("./a", out), file("./a/x", 0o644)}
		}, "file exists"},
		{"symlink replacing symlink", func(out string) []*tar.Header {
			return []*tar.Header{symlink("./a", "b"), symlink("./a", out), file("./a/x", 0o644)}
		}, "file exists"},
		{"symlink with a trailing slash", func(out string) []*tar.Header {
			return []*tar.Header{symlink("./a/", out), mode(dir("./a/"), 0o777)}
		}, "through the symbolic link a"},
		{"device", func(out string) []*tar.Header {
			return []*tar.Header{{Name: "./sda", Typeflag: tar.TypeBlock, Devmajor: 8}}
		}, "refusing special file"},
	}
	for _, tc := range attacks {
		for _, format := range []string{"deb", "npm"} {
			t.Run(tc.name+" "+format, func(t *testing.T) {
				out := outsideDir(t)
				before := snapshot(t, out)
				target := filepath.Join(filepath.Dir(out), "target")
				if err := os.Mkdir(target, 0o755); err != nil {
					t.Fatal(err)
				}
				var err error
				if format == "deb" {
					err = ExtractDeb(context.Background(), bytes.NewReader(deb(t, ".gz", tc.entries(out)...)), target)
				} else {
					err = ExtractNpm(context.Background(), bytes.NewReader(npmTgz(t, tc.entries(out)...)), target)
				}
				want := tc.want
				if format == "npm" {
					// Names are those in the tarball, under package/.
					want = strings.Replace(want, "symbolic link ", "symbolic link package/", 1)
				}
				if err == nil || !strings.Contains(err.Error(), want) {
					t.Errorf("got %v, want an error saying %q", err, want)
				}
				if after := snapshot(t, out); after != before {
					t.Errorf("the directory outside changed:\n%s\nthen\n%s", before, after)
				}
				if entries, _ := os.ReadDir(filepath.Dir(out)); len(entries) != 2 {
					t.Errorf("extraction wrote beside its target: %v", entries)
				}
			})
		}
	}
}

// npmTgz builds an npm package tarball holding entries under package/.
func npmTgz(t testing.TB, entries ...*tar.Header) []byte {
	t.Helper()
	in := []*tar.Header{dir("package/")}
	for _, h := range entries {
		c := *h
		if !filepath.IsAbs(c.Name) {
			c.Name = "package/" + strings.TrimPrefix(c.Name, "./")
		}
		if c.Typeflag == tar.TypeLink && !filepath.IsAbs(c.Linkname) {
			c.Linkname = "package/" + strings.TrimPrefix(c.Linkname, "./")
		}
		in = append(in, &c)
	}
	var b bytes.Buffer
	z := gzip.NewWriter(&b)
	z.Write(tarOf(t, in...))
	z.Close()
	return b.Bytes()
}

// TestExtractModes checks that setuid, setgid and sticky bits never reach
// the extracted tree, of files or of directories, and that the symlinks and
// hard links a real package holds are made as they should be.
func TestExtractModes(t *testing.T) {
	d := t.TempDir()
	entries := []*tar.Header{
		{Name: "./bin/", Typeflag: tar.TypeDir, Mode: 0o6755},
		{Name: "./tmp/", Typeflag: tar.TypeDir, Mode: 0o1777},
		file("./bin/su", 0o4755),
		file("./bin/wall", 0o2755),
		file("./bin/ro", 0o400),
		hardlink("./bin/su2", "./bin/su"),
		symlink("./bin/sh", "/bin/dash"),
		symlink("./sbin", "bin"),
	}
	if err := ExtractDeb(context.Background(), bytes.NewReader(deb(t, "", entries...)), d); err != nil {
		t.Fatal(err)
	}
	want := map[string]os.FileMode{
		"bin": os.ModeDir | 0o755, "tmp": os.ModeDir | 0o777,
		"bin/su": 0o755, "bin/su2": 0o755, "bin/wall": 0o755, "bin/ro": 0o400,
	}
	for name, m := range want {
		fi, err := os.Lstat(filepath.Join(d, name))
		if err != nil {
			t.Fatal(err)
		}
		if fi.Mode() != m {
			t.Errorf("%s: mode %v, want %v", name, fi.Mode(), m)
		}
	}
	if l, err := os.Readlink(filepath.Join(d, "bin/sh")); err != nil || l != "/bin/dash" {
		t.Errorf("bin/sh links to %q (%v)", l, err)
	}
	a, _ := os.Stat(filepath.Join(d, "bin/su"))
	b, _ := os.Stat(filepath.Join(d, "bin/su2"))
	if !os.SameFile(a, b) {
		t.Error("bin/su2 is not a hard link of bin/su")
	}
}

// TestExtractCancel stops an extraction in the middle of a large file.
func TestExtractCancel(t *testing.T) {
	ctx, cancel := context.WithCancel(context.Background())
	var b bytes.Buffer
	tw := tar.NewWriter(&b)
	tw.WriteHeader(&tar.Header{Name: "./big", Typeflag: tar.TypeReg, Mode: 0o644, Size: 64 << 20})
	r := &cancelAfter{data: b.Bytes(), n: 1 << 20, cancel: cancel}
	err := extractTar(ctx, r, t.TempDir())
	if err == nil || !strings.Contains(err.Error(), "context canceled") {
		t.Fatalf("got %v, want the extraction cancelled", err)
	}
	if r.read > 4<<20 {
		t.Errorf("read %d bytes after the cancellation", r.read)
	}
}

// cancelAfter serves data, then zeros forever; it calls cancel once n bytes
// were read.
type cancelAfter struct {
	data   []byte
	n      int
	read   int
	cancel func()
}

func (c *cancelAfter) Read(p []byte) (int, error) {
	if c.read < len(c.data) {
		n := copy(p, c.data[c.read:])
		c.read += n
		return n, nil
	}
	if len(p) > 64<<10 {
		p = p[:64<<10]
	}
	clear(p)
	c.read += len(p)
	if c.read >= c.n {
		c.cancel()
	}
	return len(p), nil
}
