package image

import (
	"archive/tar"
	"bytes"
	"io"
	"os"
	"path/filepath"
	"strings"
	"testing"

	v1 "github.com/google/go-containerregistry/pkg/v1"
	"github.com/google/go-containerregistry/pkg/v1/mutate"
	"github.com/google/go-containerregistry/pkg/v1/tarball"
	"github.com/google/go-containerregistry/pkg/v1/types"
)

func TestAuditPassesHealth(t *testing.T) {
	fs, err := Audit(healthImage(t))
	if err != nil {
		t.Fatal(err)
	}
	if len(fs) != 0 {
		t.Errorf("health image fails audit: %v", fs)
	}
}

// defImage assembles a definition given as YAML, built on the repository's
// base, with binaries mapped to files.
func defImage(t *testing.T, yaml string, bins map[string]string) v1.Image {
	t.Helper()
	dir := writeDefs(t, map[string]string{"bad": "from: base\n" + yaml})
	b, err := os.ReadFile("../../images/base/image.yaml")
	if err != nil {
		t.Fatal(err)
	}
	os.MkdirAll(filepath.Join(dir, "base"), 0o755)
	os.WriteFile(filepath.Join(dir, "base", FileName), b, 0o644)
	def, err := Load(dir, "bad")
	if err != nil {
		t.Fatal(err)
	}
	img, err := Assemble(def, bins, testEpoch)
	if err != nil {
		t.Fatal(err)
	}
	return img
}

// rawLayer makes a layer from tar headers (contents are h.Size zero bytes).
func rawLayer(t *testing.T, mt types.MediaType, hs ...*tar.Header) v1.Layer {
	t.Helper()
	var buf bytes.Buffer
	tw := tar.NewWriter(&buf)
	for _, h := range hs {
		if err := tw.WriteHeader(h); err != nil {
			t.Fatal(err)
		}
		tw.Write(make([]byte, h.Size))
	}
	tw.Close()
	b := buf.Bytes()
	l, err := tarball.LayerFromOpener(func() (io.ReadCloser, error) { return io.NopCloser(bytes.NewReader(b)), nil }, tarball.WithMediaType(mt))
	if err != nil {
		t.Fatal(err)
	}
	return l
}

func withUser(t *testing.T, img v1.Image, user string) v1.Image {
	t.Helper()
	cfg, err := img.ConfigFile()
	if err != nil {
		t.Fatal(err)
	}
	c := cfg.Config
	c.User = user
	out, err := mutate.Config(img, c)
	if err != nil {
		t.Fatal(err)
	}
	return out
}

func TestAuditFindings(t *testing.T) {
	health := binary(t, "./cmd/health")
	dynamic := "/bin/ls"
	if _, err := os.Stat(dynamic); err != nil {
		t.Skipf("no %s on this host to serve as a dynamically linked binary", dynamic)
	}
	good := healthImage(t)
	ours := v1.History{CreatedBy: CreatedByPrefix + "x"}

	appendLayer := func(l v1.Layer, h v1.History) v1.Image {
		img, err := mutate.Append(good, mutate.Addendum{Layer: l, History: h})
		if err != nil {
			t.Fatal(err)
		}
		return img
	}
	reg := func(name string) *tar.Header {
		return &tar.Header{Name: name, Typeflag: tar.TypeReg, Mode: 0o644, Size: 1}
	}
	lessHistory := func() v1.Image {
		cfg, _ := good.ConfigFile()
		cfg = cfg.DeepCopy()
		cfg.History = cfg.History[:1]
		img, err := mutate.ConfigFile(good, cfg)
		if err != nil {
			t.Fatal(err)
		}
		return img
	}

	tests := []struct {
		name       string
		img        v1.Image
		path, want string
	}{
		{"dynamic binary", defImage(t, "binaries:\n  - {package: ./x, path: /bin/ls}\n", map[string]string{"/bin/ls": dynamic}),
			"/bin/ls", "dynamically linked: program interpreter /lib64/ld-linux-x86-64.so.2; needs libselinux.so.1, libc.so.6"},
		{"shell", defImage(t, "binaries:\n  - {package: ./x, path: /bin/sh}\n", map[string]string{"/bin/sh": health}),
			"/bin/sh", `shell "sh" present`},
		{"bash file", defImage(t, "files:\n  - {path: /usr/local/bin/bash, content: x}\n", nil),
			"/usr/local/bin/bash", `shell "bash" present`},
		{"busybox", defImage(t, "files:\n  - {path: /opt/busybox, content: x}\n", nil),
			"/opt/busybox", `multi-call binary with a shell "busybox" present`},
		{"apt-get", defImage(t, "files:\n  - {path: /usr/bin/apt-get, content: x}\n", nil),
			"/usr/bin/apt-get", `package manager "apt-get" present`},
		{"pip3.11", defImage(t, "files:\n  - {path: /usr/bin/pip3.11, content: x}\n", nil),
			"/usr/bin/pip3.11", `package manager "pip3.11" present`},
		{"setuid", defImage(t, "files:\n  - {path: /bin/su, mode: 4755, content: x}\n", nil),
			"/bin/su", "setuid file"},
		{"setgid", defImage(t, "files:\n  - {path: /bin/wall, mode: 2755, content: x}\n", nil),
			"/bin/wall", "setgid file"},
		{"world-writable dir", defImage(t, "dirs:\n  - {path: /var/data, mode: 0777}\n", nil),
			"/var/data", "world-writable (mode 0777)"},
		{"world-writable file", defImage(t, "files:\n  - {path: /etc/x, mode: 0666, content: x}\n", nil),
			"/etc/x", "world-writable (mode 0666)"},
		{"no user", withUser(t, good, ""), "config", "no user set"},
		{"uid 0", withUser(t, good, "0"), "config", "runs as uid 0"},
		{"uid 0 with group", withUser(t, good, "0:65532"), "config", "runs as uid 0"},
		{"root", withUser(t, good, "root"), "config", `runs as root (user "root")`},
		{"empty uid", withUser(t, good, ":5"), "config", "names no user"},
		{"unknown name", withUser(t, good, "ghost"), "config", `user "ghost" is not in the image's /etc/passwd`},
		{"foreign layer", appendLayer(rawLayer(t, types.DockerForeignLayer, reg("x")), ours),
			"layer 3", "foreign (non-distributable) layer"},
		{"docker layer", appendLayer(rawLayer(t, types.DockerLayer, reg("x")), ours),
			"layer 3", "is not an OCI layer"},
		{"not our layer", appendLayer(rawLayer(t, types.OCILayer, reg("x")), v1.History{CreatedBy: "/bin/sh -c apt-get install curl"}),
			"config", `created by "/bin/sh -c apt-get install curl", not by stack build`},
		{"history mismatch", lessHistory(), "config", "image has 2 layers but its history accounts for 1"},
		{"docker manifest", mutate.MediaType(good, types.DockerManifestSchema2), "manifest", "is not an OCI image manifest"},
		{"unsafe path", appendLayer(rawLayer(t, types.OCILayer, reg("../../etc/cron.d/x")), ours),
			"/../../etc/cron.d/x", "unsafe path"},
		{"device", appendLayer(rawLayer(t, types.OCILayer, &tar.Header{Name: "dev/mem", Typeflag: tar.TypeChar, Mode: 0o600, Devmajor: 1, Devminor: 1}), ours),
			"/dev/mem", "device or fifo node"},
		{"/tmp not sticky", func() v1.Image {
			return appendLayer(rawLayer(t, types.OCILayer, &tar.Header{Name: "tmp/", Typeflag: tar.TypeDir, Mode: 0o777}), ours)
		}(), "/tmp", "world-writable /tmp without the sticky bit"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			fs, err := Audit(tt.img)
			if err != nil {
				t.Fatal(err)
			}
			for _, f := range fs {
				if f.Path == tt.path && strings.Contains(f.Reason, tt.want) {
					return
				}
			}
			t.Errorf("no finding %s: %q among %v", tt.path, tt.want, fs)
		})
	}
}
