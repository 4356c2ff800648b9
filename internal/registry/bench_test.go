package registry

import (
	"context"
	"fmt"
	"io"
	"math/rand/v2"
	"testing"

	"github.com/google/go-containerregistry/pkg/authn"
	"github.com/google/go-containerregistry/pkg/name"
	v1 "github.com/google/go-containerregistry/pkg/v1"
	"github.com/google/go-containerregistry/pkg/v1/empty"
	"github.com/google/go-containerregistry/pkg/v1/mutate"
	"github.com/google/go-containerregistry/pkg/v1/remote"
	"github.com/google/go-containerregistry/pkg/v1/static"
	"github.com/google/go-containerregistry/pkg/v1/types"
)

const (
	benchLayers    = 4
	benchImageSize = 100 << 20 // bytes over all layers
)

// benchImage is a 100 MiB OCI image of four layers of random (so
// incompressible) bytes. The layers are opaque blobs: the registry does not
// look inside them.
func benchImage(b *testing.B) v1.Image {
	b.Helper()
	rng := rand.NewChaCha8([32]byte{'s', 't', 'a', 'c', 'k'})
	img := mutate.MediaType(empty.Image, types.OCIManifestSchema1)
	img = mutate.ConfigMediaType(img, types.OCIConfigJSON)
	for range benchLayers {
		buf := make([]byte, benchImageSize/benchLayers)
		rng.Read(buf)
		var err error
		if img, err = mutate.AppendLayers(img, static.NewLayer(buf, types.OCIUncompressedLayer)); err != nil {
			b.Fatal(err)
		}
	}
	return img
}

// BenchmarkPush measures pushing a 100 MiB image (held in memory, so only
// the upload and the registry are measured) to the registry over loopback;
// every iteration uploads every byte to a new repository.
func BenchmarkPush(b *testing.B) {
	r, _ := startRegistry(b, Config{Logger: discardLogger()})
	img := benchImage(b)
	ctx := context.Background()
	b.SetBytes(benchImageSize)
	b.ResetTimer()
	for i := range b.N {
		if _, err := Push(ctx, img, fmt.Sprintf("%s/push%d", r.Addr(), i), "bench", PushOptions{Auth: authn.Anonymous}); err != nil {
			b.Fatal(err)
		}
	}
}

// BenchmarkPull measures pulling a 100 MiB image from the registry over
// loopback: manifest, config and every layer, digests verified.
func BenchmarkPull(b *testing.B) {
	r, _ := startRegistry(b, Config{Logger: discardLogger()})
	pushed, err := Push(context.Background(), benchImage(b), r.Addr(), "bench", PushOptions{Auth: authn.Anonymous})
	if err != nil {
		b.Fatal(err)
	}
	ref, err := name.ParseReference(pushed.Ref)
	if err != nil {
		b.Fatal(err)
	}
	b.SetBytes(benchImageSize)
	b.ResetTimer()
	for range b.N {
		img, err := remote.Image(ref, remote.WithAuth(authn.Anonymous))
		if err != nil {
			b.Fatal(err)
		}
		layers, err := img.Layers()
		if err != nil {
			b.Fatal(err)
		}
		var n int64
		for _, l := range layers {
			rc, err := l.Compressed()
			if err != nil {
				b.Fatal(err)
			}
			m, err := io.Copy(io.Discard, rc) // the reader checks the digest at EOF
			rc.Close()
			if err != nil {
				b.Fatal(err)
			}
			n += m
		}
		if n != benchImageSize {
			b.Fatalf("pulled %d bytes, want %d", n, benchImageSize)
		}
	}
}
