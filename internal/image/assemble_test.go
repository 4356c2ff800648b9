package image

import (
	"archive/tar"
	"fmt"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"syscall"
	"testing"
	"time"

	v1 "github.com/google/go-containerregistry/pkg/v1"
	"github.com/google/go-containerregistry/pkg/v1/types"
	"github.com/google/go-containerregistry/pkg/v1/validate"
)

// copyFileWithTime copies src to dst with mode and mtime of our choosing.
func copyFileWithTime(t *testing.T, src, dst string, mode os.FileMode, mtime time.Time) {
	t.Helper()
	b, err := os.ReadFile(src)
	if err != nil {
		t.Fatal(err)
	}
	os.MkdirAll(filepath.Dir(dst), 0o755)
	if err := os.WriteFile(dst, b, mode); err != nil {
		t.Fatal(err)
	}
	os.Chmod(dst, mode)
	if err := os.Chtimes(dst, mtime, mtime); err != nil {
		t.Fatal(err)
	}
}

// assembleCopy copies the health definitions and binary into a fresh
// directory tree and assembles from there.
func assembleCopy(t *testing.T, root string, mode os.FileMode, mtime, epoch time.Time) v1.Image {
	t.Helper()
	for _, name := range []string{"base", "health"} {
		copyFileWithTime(t, filepath.Join("../../images", name, FileName), filepath.Join(root, "images", name, FileName), mode, mtime)
	}
	bin := filepath.Join(root, "out", "bin", "health")
	copyFileWithTime(t, binary(t, "./cmd/health"), bin, mode|0o100, mtime)
	def, err := Load(filepath.Join(root, "images"), "health")
	if err != nil {
		t.Fatal(err)
	}
	img, err := Assemble(def, map[string]string{"/bin/health": bin}, epoch)
	if err != nil {
		t.Fatal(err)
	}
	return img
}

func TestAssembleDeterministic(t *testing.T) {
	a := assembleCopy(t, t.TempDir(), 0o644, time.Now(), testEpoch)

	// Another directory, time zone, umask, file modes and times; the same
	// epoch given in another zone.
	t.Setenv("TZ", "Asia/Kathmandu")
	oldLocal := time.Local
	time.Local = time.FixedZone("elsewhere", 5*3600+45*60)
	defer func() { time.Local = oldLocal }()
	old := syscall.Umask(0o077)
	defer syscall.Umask(old)
	b := assembleCopy(t, filepath.Join(t.TempDir(), "x", "y"), 0o600, time.Unix(12345, 0), testEpoch.In(time.Local))

	da, db := imageDigest(t, a), imageDigest(t, b)
	if da != db {
		d, err := Diff(a, b)
		if err != nil {
			t.Fatal(err)
		}
		t.Fatalf("digests differ: %s", d)
	}
	// A different epoch is a different image.
	c := assembleCopy(t, t.TempDir(), 0o644, time.Now(), testEpoch.Add(time.Second))
	if imageDigest(t, c) == da {
		t.Error("a different epoch gave the same digest")
	}
}

func TestAssembleContent(t *testing.T) {
	img := healthImage(t)
	if err := validate.Image(img); err != nil {
		t.Fatalf("invalid image: %v", err)
	}
	mt, _ := img.MediaType()
	m, err := img.Manifest()
	if err != nil {
		t.Fatal(err)
	}
	if mt != types.OCIManifestSchema1 || m.Config.MediaType != types.OCIConfigJSON {
		t.Errorf("media types %s, %s", mt, m.Config.MediaType)
	}
	cfg, err := img.ConfigFile()
	if err != nil {
		t.Fatal(err)
	}
	if !cfg.Created.Time.Equal(testEpoch) || cfg.OS != "linux" || cfg.Architecture != "amd64" {
		t.Errorf("config: created %v, %s/%s", cfg.Created, cfg.OS, cfg.Architecture)
	}
	c := cfg.Config
	if c.User != "65532:65532" || !slices.Equal(c.Entrypoint, []string{"/bin/health"}) || c.Cmd != nil {
		t.Errorf("run config: user %q entrypoint %v cmd %v", c.User, c.Entrypoint, c.Cmd)
	}
	if _, ok := c.ExposedPorts["8080/tcp"]; !ok || len(c.ExposedPorts) != 1 {
		t.Errorf("ports %v", c.ExposedPorts)
	}
	if !slices.Equal(c.Env, []string{"HOME=/home/stack", "PATH=/bin"}) {
		t.Errorf("env %v", c.Env)
	}
	var created []string
	for _, h := range cfg.History {
		if !h.Created.Time.Equal(testEpoch) {
			t.Errorf("history %q created %v", h.CreatedBy, h.Created)
		}
		created = append(created, h.CreatedBy)
	}
	if strings.Join(created, ",") != "stack build: base,stack build: health,stack build: health binaries" {
		t.Errorf("history %q", created)
	}
	if !cfg.History[1].EmptyLayer {
		t.Error("health's own definition adds no files but its history is not empty_layer")
	}

	layers, err := img.Layers()
	if err != nil {
		t.Fatal(err)
	}
	if len(layers) != 2 {
		t.Fatalf("%d layers, want 2 (base files, binaries)", len(layers))
	}
	var names [][]string
	for i, l := range layers {
		lmt, _ := l.MediaType()
		if lmt != types.OCILayer {
			t.Errorf("layer %d media type %s", i, lmt)
		}
		hs, data := headers(t, l)
		var ns []string
		for _, h := range hs {
			ns = append(ns, h.Name)
			if !h.ModTime.Equal(testEpoch) || h.Uname != "" || h.Gname != "" || h.Format != tar.FormatUSTAR || len(h.PAXRecords) != 0 {
				t.Errorf("%s: mtime %v uname %q gname %q format %v", h.Name, h.ModTime, h.Uname, h.Gname, h.Format)
			}
			want := map[string][3]int64{
				"etc/": {0o755, 0, 0}, "etc/passwd": {0o644, 0, 0}, "tmp/": {0o1777, 0, 0},
				"home/": {0o755, 0, 0}, "home/stack/": {0o700, 65532, 65532},
				"bin/": {0o755, 0, 0}, "bin/health": {0o755, 0, 0},
			}
			if w, ok := want[h.Name]; ok && (h.Mode != w[0] || int64(h.Uid) != w[1] || int64(h.Gid) != w[2]) {
				t.Errorf("%s: mode %o uid %d gid %d, want %o %d %d", h.Name, h.Mode, h.Uid, h.Gid, w[0], w[1], w[2])
			}
		}
		if !slices.IsSorted(ns) {
			t.Errorf("layer %d entries not sorted: %v", i, ns)
		}
		names = append(names, ns)
		if i == 1 {
			want, _ := os.ReadFile(binary(t, "./cmd/health"))
			if string(data["bin/health"]) != string(want) {
				t.Error("bin/health differs from the built binary")
			}
		}
	}
	if got := strings.Join(names[1], ","); got != "bin/,bin/health" {
		t.Errorf("binaries layer holds %s", got)
	}
	if got := strings.Join(names[0], ","); got != "etc/,etc/group,etc/hosts,etc/nsswitch.conf,etc/passwd,home/,home/stack/,tmp/" {
		t.Errorf("base layer holds %s", got)
	}
}

// TestAssembleParentsKeepDeclaredModes: a later layer's implicit parent
// directory must not reset a mode the chain declared.
func TestAssembleParentsKeepDeclaredModes(t *testing.T) {
	dir := writeDefs(t, map[string]string{
		"base": "dirs:\n  - path: /srv\n    mode: 0750\n    owner: 7:7\nuser: 7:7\n",
		"app":  "from: base\nfiles:\n  - path: /srv/conf/x\n    content: x\nbinaries:\n  - package: ./cmd/x\n    path: /srv/bin/x\n",
	})
	def, err := Load(dir, "app")
	if err != nil {
		t.Fatal(err)
	}
	bin := filepath.Join(t.TempDir(), "x")
	os.WriteFile(bin, []byte("not really a program"), 0o755)
	img, err := Assemble(def, map[string]string{"/srv/bin/x": bin}, testEpoch)
	if err != nil {
		t.Fatal(err)
	}
	layers, _ := img.Layers()
	for i, l := range layers {
		hs, _ := headers(t, l)
		for _, h := range hs {
			if h.Name == "srv/" && (h.Mode != 0o750 || h.Uid != 7) {
				t.Errorf("layer %d: srv/ mode %o uid %d, want 0750 7", i, h.Mode, h.Uid)
			}
		}
	}
}

func TestAssembleErrors(t *testing.T) {
	def, err := Load("../../images", "health")
	if err != nil {
		t.Fatal(err)
	}
	bin := binary(t, "./cmd/health")
	for _, tt := range []struct {
		bins map[string]string
		want string
	}{
		{nil, "no built binary given for /bin/health (./cmd/health)"},
		{map[string]string{"/bin/health": bin, "/bin/sh": bin}, "a binary was given for /bin/sh"},
		{map[string]string{"/bin/health": filepath.Join(t.TempDir(), "missing")}, "binary /bin/health"},
	} {
		if _, err := Assemble(def, tt.bins, testEpoch); err == nil || !strings.Contains(err.Error(), tt.want) {
			t.Errorf("Assemble(%v) = %v, want %q", tt.bins, err, tt.want)
		}
	}
	if _, err := Assemble(def, map[string]string{"/bin/health": bin}, time.Unix(-5, 0)); err == nil {
		t.Error("Assemble accepted a negative epoch")
	}
}

func TestHealthImageSize(t *testing.T) {
	img := healthImage(t)
	layers, _ := img.Layers()
	var total int64
	for _, l := range layers {
		n, err := l.Size()
		if err != nil {
			t.Fatal(err)
		}
		total += n
	}
	t.Logf("health image: %d bytes compressed (%.2f MiB), digest %s", total, float64(total)/(1<<20), imageDigest(t, img))
	if total >= 4<<20 {
		t.Errorf("health image is %d bytes compressed, over 4 MiB", total)
	}
}

func BenchmarkAssembleHealth(b *testing.B) {
	def, err := Load("../../images", "health")
	if err != nil {
		b.Fatal(err)
	}
	bins := map[string]string{"/bin/health": binary(b, "./cmd/health")}
	var size int64
	b.ResetTimer()
	for b.Loop() {
		img, err := Assemble(def, bins, testEpoch)
		if err != nil {
			b.Fatal(err)
		}
		m, err := img.Manifest()
		if err != nil {
			b.Fatal(err)
		}
		size = 0
		for _, l := range m.Layers {
			size += l.Size
		}
	}
	b.ReportMetric(float64(size), "compressed-bytes")
}

// TestAssembleLinks: a binary's links are hard links to it, written after
// every file so that an unpacker meets the target first.
func TestAssembleLinks(t *testing.T) {
	dir := writeDefs(t, map[string]string{
		"app": "binaries:\n  - source: git\n    package: git\n    recipe: git\n    path: /usr/bin/git\n    links: [/bin/git-upload-pack, /usr/libexec/git-core/git]\n",
	})
	def, err := Load(dir, "app")
	if err != nil {
		t.Fatal(err)
	}
	bin := filepath.Join(t.TempDir(), "git")
	os.WriteFile(bin, []byte("not really a program"), 0o755)
	img, err := Assemble(def, map[string]string{"/usr/bin/git": bin}, testEpoch)
	if err != nil {
		t.Fatal(err)
	}
	layers, _ := img.Layers()
	hs, _ := headers(t, layers[len(layers)-1])
	var got []string
	for _, h := range hs {
		got = append(got, fmt.Sprintf("%s %c %s", h.Name, h.Typeflag, h.Linkname))
	}
	want := "bin/ 5 ,usr/ 5 ,usr/bin/ 5 ,usr/bin/git 0 ,usr/libexec/ 5 ,usr/libexec/git-core/ 5 ,bin/git-upload-pack 1 usr/bin/git,usr/libexec/git-core/git 1 usr/bin/git"
	if strings.Join(got, ",") != want {
		t.Errorf("layer:\n%s\nwant\n%s", strings.Join(got, ","), want)
	}
	for _, bad := range []string{"[/usr/bin/git]", "[/bin/x, /bin/x]", "[bin/x]"} {
		dir := writeDefs(t, map[string]string{"app": "binaries:\n  - source: git\n    package: git\n    recipe: git\n    path: /usr/bin/git\n    links: " + bad + "\n"})
		if _, err := Load(dir, "app"); err == nil || !strings.Contains(err.Error(), "app/image.yaml:2:") && !strings.Contains(err.Error(), "image.yaml:6:") {
			t.Errorf("links %s: %v", bad, err)
		}
	}
}
