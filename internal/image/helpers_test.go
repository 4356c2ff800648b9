package image

import (
	"archive/tar"
	"bytes"
	"context"
	"errors"
	"io"
	"os"
	"os/exec"
	"path/filepath"
	"sync"
	"testing"
	"time"

	v1 "github.com/google/go-containerregistry/pkg/v1"

	"github.com/hashbang/stack/internal/build"
)

// testEpoch is the epoch test images are built with.
var testEpoch = time.Date(2024, 5, 6, 7, 8, 9, 0, time.UTC)

var bins struct {
	mu  sync.Mutex
	dir string
	out map[string]string
}

func TestMain(m *testing.M) {
	code := m.Run()
	if bins.dir != "" {
		os.RemoveAll(bins.dir)
	}
	os.Exit(code)
}

// binary builds a package of this repository once per test run, with the
// same build package stack uses, and the host's warm build cache.
func binary(t testing.TB, pkg string) string {
	t.Helper()
	bins.mu.Lock()
	defer bins.mu.Unlock()
	if p, ok := bins.out[pkg]; ok {
		return p
	}
	if bins.dir == "" {
		d, err := os.MkdirTemp("", "image-test-bins-")
		if err != nil {
			t.Fatal(err)
		}
		bins.dir, bins.out = d, map[string]string{}
	}
	gocache, err := exec.Command("go", "env", "GOCACHE").Output()
	if err != nil {
		t.Fatal(err)
	}
	g := build.Go{GoCache: string(bytes.TrimSpace(gocache))}
	out := filepath.Join(bins.dir, filepath.Base(pkg))
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Minute)
	defer cancel()
	if err := g.Build(ctx, build.Spec{Dir: "../..", Package: pkg, Output: out}); err != nil {
		t.Fatal(err)
	}
	bins.out[pkg] = out
	return out
}

var health struct {
	mu  sync.Mutex
	img v1.Image
}

// healthImage assembles the repository's health image, once: images are
// immutable, so tests share it.
func healthImage(t testing.TB) v1.Image {
	t.Helper()
	health.mu.Lock()
	defer health.mu.Unlock()
	if health.img != nil {
		return health.img
	}
	def, err := Load("../../images", "health")
	if err != nil {
		t.Fatal(err)
	}
	img, err := Assemble(def, map[string]string{"/bin/health": binary(t, "./cmd/health")}, testEpoch)
	if err != nil {
		t.Fatal(err)
	}
	health.img = img
	return img
}

// digest returns an image's digest or fails the test.
func imageDigest(t testing.TB, img v1.Image) string {
	t.Helper()
	d, err := img.Digest()
	if err != nil {
		t.Fatal(err)
	}
	return d.String()
}

// headers reads every tar header of a layer, with the contents.
func headers(t testing.TB, l v1.Layer) ([]*tar.Header, map[string][]byte) {
	t.Helper()
	rc, err := l.Uncompressed()
	if err != nil {
		t.Fatal(err)
	}
	defer rc.Close()
	tr := tar.NewReader(rc)
	var hs []*tar.Header
	data := map[string][]byte{}
	for {
		h, err := tr.Next()
		if errors.Is(err, io.EOF) {
			return hs, data
		}
		if err != nil {
			t.Fatal(err)
		}
		b, err := io.ReadAll(tr)
		if err != nil {
			t.Fatal(err)
		}
		hs = append(hs, h)
		data[h.Name] = b
	}
}
