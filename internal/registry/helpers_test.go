package registry

import (
	"bytes"
	"context"
	"log/slog"
	"net"
	"sync"
	"testing"
	"time"

	v1 "github.com/google/go-containerregistry/pkg/v1"
	"github.com/google/go-containerregistry/pkg/v1/empty"
	"github.com/google/go-containerregistry/pkg/v1/mutate"
	"github.com/google/go-containerregistry/pkg/v1/random"
	"github.com/google/go-containerregistry/pkg/v1/types"
)

// syncBuffer is a bytes.Buffer safe for the concurrent writes of a logger.
type syncBuffer struct {
	mu sync.Mutex
	b  bytes.Buffer
}

func (s *syncBuffer) Write(p []byte) (int, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.b.Write(p)
}

func (s *syncBuffer) String() string {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.b.String()
}

func discardLogger() *slog.Logger { return slog.New(slog.DiscardHandler) }

// startRegistry serves a registry configured by cfg on a fresh loopback
// port (on cfg.Addr's host when set) until the test ends, and returns it
// with what it logged.
func startRegistry(tb testing.TB, cfg Config) (*Registry, *syncBuffer) {
	tb.Helper()
	logs := &syncBuffer{}
	if cfg.DataDir == "" {
		cfg.DataDir = tb.TempDir()
	}
	if cfg.Logger == nil {
		cfg.Logger = slog.New(slog.NewTextHandler(logs, &slog.HandlerOptions{Level: slog.LevelDebug}))
	}
	if cfg.Addr == "" {
		cfg.Addr = "127.0.0.1:0"
	}
	r, err := New(cfg)
	if err != nil {
		tb.Fatal(err)
	}
	ln, err := net.Listen("tcp", cfg.Addr)
	if err != nil {
		tb.Fatal(err)
	}
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan error, 1)
	go func() { done <- r.Serve(ctx, ln) }()
	select {
	case <-r.Ready():
	case err := <-done:
		tb.Fatalf("Serve: %v", err)
	}
	tb.Cleanup(func() {
		cancel()
		select {
		case err := <-done:
			if err != nil {
				tb.Errorf("Serve: %v", err)
			}
		case <-time.After(20 * time.Second):
			tb.Errorf("Serve did not return after its context ended")
		}
	})
	return r, logs
}

// ociImage returns an OCI image (OCI media types, as stack builds them)
// with the given layer sizes of random bytes.
func ociImage(tb testing.TB, sizes ...int64) v1.Image {
	tb.Helper()
	img := mutate.MediaType(empty.Image, types.OCIManifestSchema1)
	img = mutate.ConfigMediaType(img, types.OCIConfigJSON)
	for _, n := range sizes {
		l, err := random.Layer(n, types.OCILayer)
		if err != nil {
			tb.Fatal(err)
		}
		if img, err = mutate.AppendLayers(img, l); err != nil {
			tb.Fatal(err)
		}
	}
	return img
}

func digestOf(tb testing.TB, d interface{ Digest() (v1.Hash, error) }) string {
	tb.Helper()
	h, err := d.Digest()
	if err != nil {
		tb.Fatal(err)
	}
	return h.String()
}
