package source

import (
	"archive/tar"
	"bytes"
	"compress/gzip"
	"context"
	"fmt"
	"io"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"

	"github.com/klauspost/compress/zstd"
	"github.com/ulikunitz/xz"
)

// arFile builds an ar archive of the given members, as dpkg-deb does.
func arFile(members ...[2]string) []byte {
	var b bytes.Buffer
	b.WriteString(arMagic)
	for _, m := range members {
		fmt.Fprintf(&b, "%-16s%-12d%-6d%-6d%-8s%-10d`\n", m[0]+"/", 0, 0, 0, "100644", len(m[1]))
		b.WriteString(m[1])
		if len(m[1])%2 == 1 {
			b.WriteByte('\n')
		}
	}
	return b.Bytes()
}

// tarOf builds a tar stream of headers, with content for regular files.
func tarOf(t testing.TB, entries ...*tar.Header) []byte {
	t.Helper()
	var b bytes.Buffer
	tw := tar.NewWriter(&b)
	for _, h := range entries {
		if h.Typeflag == tar.TypeReg {
			h.Size = int64(len(h.Name))
		}
		if err := tw.WriteHeader(h); err != nil {
			t.Fatal(err)
		}
		if h.Typeflag == tar.TypeReg {
			tw.Write([]byte(h.Name))
		}
	}
	tw.Close()
	return b.Bytes()
}

func compress(t testing.TB, ext string, data []byte) []byte {
	t.Helper()
	var b bytes.Buffer
	var w io.WriteCloser
	var err error
	switch ext {
	case "":
		return data
	case ".gz":
		w = gzip.NewWriter(&b)
	case ".xz":
		w, err = xz.NewWriter(&b)
	case ".zst":
		w, err = zstd.NewWriter(&b)
	}
	if err != nil {
		t.Fatal(err)
	}
	w.Write(data)
	w.Close()
	return b.Bytes()
}

func deb(t testing.TB, ext string, entries ...*tar.Header) []byte {
	return arFile(
		[2]string{"debian-binary", "2.0\n"},
		[2]string{"control.tar.xz", "ignored"},
		[2]string{"data.tar" + ext, string(compress(t, ext, tarOf(t, entries...)))},
	)
}

func dir(name string) *tar.Header { return &tar.Header{Name: name, Typeflag: tar.TypeDir, Mode: 0o755} }
func file(name string, mode int64) *tar.Header {
	return &tar.Header{Name: name, Typeflag: tar.TypeReg, Mode: mode}
}
func symlink(name, to string) *tar.Header {
	return &tar.Header{Name: name, Typeflag: tar.TypeSymlink, Linkname: to}
}
func hardlink(name, to string) *tar.Header {
	return &tar.Header{Name: name, Typeflag: tar.TypeLink, Linkname: to}
}

func TestExtractDeb(t *testing.T) {
	good := []*tar.Header{
		dir("./"), dir("./usr/"), dir("./usr/bin/"),
		file("./usr/bin/runc", 0o4755), symlink("./usr/sbin/runc", "../bin/runc"),
		hardlink("./usr/bin/runc2", "./usr/bin/runc"),
	}
	for _, ext := range []string{"", ".gz", ".xz", ".zst"} {
		t.Run("data.tar"+ext, func(t *testing.T) {
			d := t.TempDir()
			if err := ExtractDeb(context.Background(), bytes.NewReader(deb(t, ext, good...)), d); err != nil {
				t.Fatal(err)
			}
			data, err := os.ReadFile(filepath.Join(d, "usr/sbin/runc"))
			if err != nil || string(data) != "./usr/bin/runc" {
				t.Fatalf("usr/sbin/runc: %q %v", data, err)
			}
			fi, _ := os.Stat(filepath.Join(d, "usr/bin/runc"))
			if fi.Mode() != 0o755 {
				t.Errorf("mode %v, want 0755 (setuid dropped)", fi.Mode())
			}
			if _, err := os.Stat(filepath.Join(d, "usr/bin/runc2")); err != nil {
				t.Error(err)
			}
		})
	}

	bad := []struct {
		name    string
		entries []*tar.Header
		want    string
	}{
		{"climbs", []*tar.Header{file("./usr/../../etc/passwd", 0o644)}, "leaves the extraction directory"},
		{"absolute", []*tar.Header{file("/etc/passwd", 0o644)}, "absolute path"},
		{"through symlink", []*tar.Header{symlink("./usr", "/etc"), file("./usr/passwd", 0o644)}, "through the symbolic link usr"},
		{"hard link out", []*tar.Header{hardlink("./x", "../../etc/passwd")}, "outside the package"},
		{"hard link to nothing", []*tar.Header{hardlink("./x", "./y")}, "not a file extracted before it"},
		{"device", []*tar.Header{{Name: "./dev/sda", Typeflag: tar.TypeBlock, Devmajor: 8}}, "refusing special file"},
		{"char device", []*tar.Header{{Name: "./null", Typeflag: tar.TypeChar}}, "refusing special file"},
		{"fifo", []*tar.Header{{Name: "./fifo", Typeflag: tar.TypeFifo}}, "refusing special file"},
		{"twice", []*tar.Header{file("./a", 0o644), file("./a", 0o644)}, "file exists"},
	}
	for _, tc := range bad {
		t.Run(tc.name, func(t *testing.T) {
			d := t.TempDir()
			err := ExtractDeb(context.Background(), bytes.NewReader(deb(t, ".gz", tc.entries...)), d)
			if err == nil || !strings.Contains(err.Error(), tc.want) {
				t.Fatalf("got %v, want an error saying %q", err, tc.want)
			}
			if _, err := os.Lstat("/etc/passwd.stack-test"); err == nil {
				t.Fatal("wrote outside")
			}
		})
	}

	notDeb := []struct {
		name string
		data []byte
		want string
	}{
		{"empty", nil, "not an ar archive"},
		{"no data", arFile([2]string{"debian-binary", "2.0\n"}), "no data.tar member"},
		{"unknown compression", arFile([2]string{"data.tar.bz3", "x"}), "unknown compression"},
		{"truncated", arFile([2]string{"debian-binary", "2.0\n"})[:70], "truncated"},
	}
	for _, tc := range notDeb {
		t.Run(tc.name, func(t *testing.T) {
			err := ExtractDeb(context.Background(), bytes.NewReader(tc.data), t.TempDir())
			if err == nil || !strings.Contains(err.Error(), tc.want) {
				t.Fatalf("got %v, want %q", err, tc.want)
			}
		})
	}
}

// TestExtractSource extracts a real pinned .deb (runc) fetched with apt-get,
// checks the binary runs, that the directory is reused, and that a missing
// blob says how to fetch it.
func TestExtractSource(t *testing.T) {
	ws, s := committedSource(t, "runc", "apt-get")
	ctx := context.Background()
	if _, err := Extract(ctx, ws, s); err == nil || !strings.Contains(err.Error(), "stack sources fetch runc") {
		t.Fatalf("extract before fetch: %v", err)
	}
	if _, err := NewFetcher(ws, nil).Fetch(ctx, []*Source{s}); err != nil {
		t.Skipf("fetch %s: %v", s.Ref(), err)
	}
	d, err := Extract(ctx, ws, s)
	if err != nil {
		t.Fatal(err)
	}
	if d != ExtractedDir(ws, s) {
		t.Errorf("extracted into %s, want %s", d, ExtractedDir(ws, s))
	}
	out, err := exec.Command(filepath.Join(d, "usr/sbin/runc"), "--version").CombinedOutput()
	if err != nil || !strings.Contains(string(out), "1.1.5") {
		t.Fatalf("runc --version: %s %v", out, err)
	}
	entries, _ := os.ReadDir(ToolsDir(ws))
	if len(entries) != 1 {
		t.Errorf("tools dir holds %d entries, want only the extracted tree", len(entries))
	}
	// Done once: a second call returns the same tree without reading the .deb.
	os.RemoveAll(filepath.Join(ws.Cache, "blobs"))
	if d2, err := Extract(ctx, ws, s); err != nil || d2 != d {
		t.Errorf("second extract: %s %v", d2, err)
	}
}

// FuzzReadAr feeds arbitrary bytes to the ar reader and the extractor:
// neither may panic, and nothing may be written outside the target.
func FuzzReadAr(f *testing.F) {
	f.Add(arFile([2]string{"debian-binary", "2.0\n"}, [2]string{"data.tar", "x"}))
	f.Add(deb(f, "", file("./a", 0o644), symlink("./b", "/etc")))
	f.Add(deb(f, ".gz", dir("./d/"), file("./d/x", 0o755)))
	f.Add([]byte(arMagic + "short"))
	f.Add(deb(f, "", symlink("./a", ".."), &tar.Header{Name: "./a/", Typeflag: tar.TypeDir, Mode: 0o777}))
	f.Add(deb(f, "", dir("./d/"), symlink("./d/l", "../.."), file("./d/l/x", 0o644)))
	f.Fuzz(func(t *testing.T, data []byte) {
		ReadAr(bytes.NewReader(data), func(name string, size int64, body io.Reader) error {
			if name == "" || strings.Contains(name, "/") || size < 0 {
				t.Fatalf("member %q size %d", name, size)
			}
			_, err := io.Copy(io.Discard, body)
			return err
		})
		parent := t.TempDir()
		os.Chmod(parent, 0o700)
		target := filepath.Join(parent, "t")
		os.Mkdir(target, 0o755)
		ExtractDeb(context.Background(), bytes.NewReader(data), target)
		entries, _ := os.ReadDir(parent)
		if len(entries) != 1 {
			t.Fatalf("extraction wrote beside its target: %v", entries)
		}
		if fi, err := os.Stat(parent); err != nil || fi.Mode().Perm() != 0o700 {
			t.Fatalf("extraction changed the directory above its target: %v %v", fi.Mode(), err)
		}
	})
}
