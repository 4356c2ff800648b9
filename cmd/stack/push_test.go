package main

import (
	"context"
	"encoding/json"
	"log/slog"
	"net"
	"net/http"
	"os"
	"path/filepath"
	"strings"
	"testing"

	v1 "github.com/google/go-containerregistry/pkg/v1"
	"github.com/google/go-containerregistry/pkg/v1/empty"
	"github.com/google/go-containerregistry/pkg/v1/layout"
	"github.com/google/go-containerregistry/pkg/v1/random"
	ocispec "github.com/opencontainers/image-spec/specs-go/v1"

	"github.com/hashbang/stack/internal/image"
	"github.com/hashbang/stack/internal/registry"
	"github.com/hashbang/stack/internal/workspace"
)

// pushFixture serves a registry on loopback for the test and writes an OCI
// layout of two named random images to CACHE/oci. It returns the registry
// address, the cache directory and the images' digests by name.
func pushFixture(t *testing.T) (string, string, map[string]string) {
	t.Helper()
	r, err := registry.New(registry.Config{DataDir: t.TempDir(), Logger: slog.New(slog.DiscardHandler)})
	if err != nil {
		t.Fatal(err)
	}
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan error, 1)
	go func() { done <- r.Serve(ctx, ln) }()
	t.Cleanup(func() {
		cancel()
		if err := <-done; err != nil {
			t.Error(err)
		}
	})
	<-r.Ready()

	cache := t.TempDir()
	p, err := layout.Write(filepath.Join(cache, "oci"), empty.Index)
	if err != nil {
		t.Fatal(err)
	}
	digests := map[string]string{}
	for _, name := range []string{"health", "pause"} {
		img, err := random.Image(512, 2)
		if err != nil {
			t.Fatal(err)
		}
		if err := p.AppendImage(img, layout.WithAnnotations(map[string]string{ocispec.AnnotationRefName: name})); err != nil {
			t.Fatal(err)
		}
		digests[name] = digestString(t, img)
	}
	return r.Addr(), cache, digests
}

func digestString(t *testing.T, img v1.Image) string {
	h, err := img.Digest()
	if err != nil {
		t.Fatal(err)
	}
	return h.String()
}

func TestPushAllJSON(t *testing.T) {
	addr, cache, digests := pushFixture(t)
	out, _, err := run(t, "-C", repoRoot(t), "--cache", cache, "push", "--registry", addr, "-o", "json")
	if err != nil {
		t.Fatal(err)
	}
	var got []struct{ Name, Digest, Ref, Tag string }
	if err := json.Unmarshal([]byte(out), &got); err != nil {
		t.Fatalf("%v\n%s", err, out)
	}
	if len(got) != 2 {
		t.Fatalf("pushed %d images, want 2: %s", len(got), out)
	}
	for _, g := range got {
		if g.Digest != digests[g.Name] || g.Ref != addr+"/"+g.Name+"@"+g.Digest || g.Tag != "latest" {
			t.Errorf("pushed %+v, want digest %s", g, digests[g.Name])
		}
	}
}

func TestPushNamedText(t *testing.T) {
	addr, cache, digests := pushFixture(t)
	out, _, err := run(t, "-C", repoRoot(t), "--cache", cache, "push", "--registry", addr, "--tag", "v1", "health", "health")
	if err != nil {
		t.Fatal(err)
	}
	if want := addr + "/health@" + digests["health"] + "\n"; out != want {
		t.Errorf("output %q, want %q", out, want)
	}

	_, _, err = run(t, "-C", repoRoot(t), "--cache", cache, "push", "--registry", addr, "nope")
	if err == nil || !strings.Contains(err.Error(), `no image "nope"`) || !strings.Contains(err.Error(), "health, pause") {
		t.Errorf("push of an unknown image: %v", err)
	}
	_, _, err = run(t, "-C", repoRoot(t), "--cache", t.TempDir(), "push", "--registry", addr)
	if err == nil || !strings.Contains(err.Error(), "no OCI image layout") {
		t.Errorf("push without a layout: %v", err)
	}
}

func TestPushRegistryDown(t *testing.T) {
	_, cache, _ := pushFixture(t)
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	down := ln.Addr().String()
	ln.Close()
	_, _, err = run(t, "-C", repoRoot(t), "--cache", cache, "push", "--registry", down, "health")
	if err == nil || !strings.Contains(err.Error(), "stack serve") {
		t.Errorf("push to a registry that is not running: %v", err)
	}
}

// TestPushRefusesTamperedLayout changes a layer of one image of the layout
// after it was written: push refuses it, naming the image and the blob,
// and pushes nothing, not even the intact image named before it.
func TestPushRefusesTamperedLayout(t *testing.T) {
	addr, cache, _ := pushFixture(t)
	l := image.Layout{Dir: workspace.OCI(cache)}
	img, err := l.Image("pause")
	if err != nil {
		t.Fatal(err)
	}
	layers, err := img.Layers()
	if err != nil {
		t.Fatal(err)
	}
	d, err := layers[0].Digest()
	if err != nil {
		t.Fatal(err)
	}
	blob := filepath.Join(l.Dir, "blobs", d.Algorithm, d.Hex)
	b, err := os.ReadFile(blob)
	if err != nil {
		t.Fatal(err)
	}
	b[0] ^= 0xff // same size, other content
	if err := os.WriteFile(blob, b, 0o644); err != nil {
		t.Fatal(err)
	}

	_, _, err = run(t, "-C", repoRoot(t), "--cache", cache, "push", "--registry", addr, "health", "pause")
	if err == nil || !strings.Contains(err.Error(), "image pause: layer blob "+d.String()+" is corrupt") {
		t.Fatalf("push of a tampered layout: %v, want it refused naming the image and the blob", err)
	}
	resp, err := http.Get("http://" + addr + "/v2/_catalog")
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	var catalog struct{ Repositories []string }
	if err := json.NewDecoder(resp.Body).Decode(&catalog); err != nil {
		t.Fatal(err)
	}
	if len(catalog.Repositories) != 0 {
		t.Errorf("the registry holds %v after a refused push, want nothing", catalog.Repositories)
	}
}
