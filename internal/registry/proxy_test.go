package registry

import (
	"context"
	"net"
	"testing"
	"time"

	"github.com/google/go-containerregistry/pkg/name"
	"github.com/google/go-containerregistry/pkg/v1/remote"
)

// TestProxy pushes an image through the node-local proxy to a real
// registry and pulls it back by digest through it, as containerd does
// with localhost:5000; an unreachable upstream closes the connection.
func TestProxy(t *testing.T) {
	r, _ := startRegistry(t, Config{})
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan error, 1)
	p := &Proxy{Upstream: r.Addr(), Logger: discardLogger()}
	go func() { done <- p.Serve(ctx, l) }()
	defer func() {
		cancel()
		select {
		case <-done:
		case <-time.After(10 * time.Second):
			t.Error("the proxy did not stop")
		}
	}()
	img := ociImage(t, 3<<20, 1<<10)
	pushed, err := Push(context.Background(), img, l.Addr().String(), "health", PushOptions{})
	if err != nil {
		t.Fatalf("push through the proxy: %v", err)
	}
	ref, err := name.ParseReference(l.Addr().String()+"/health@"+pushed.Digest, name.Insecure)
	if err != nil {
		t.Fatal(err)
	}
	got, err := remote.Image(ref)
	if err != nil {
		t.Fatal(err)
	}
	if digestOf(t, got) != digestOf(t, img) {
		t.Errorf("pulled %s, pushed %s", digestOf(t, got), digestOf(t, img))
	}
	layers, _ := got.Layers()
	if len(layers) != 2 {
		t.Fatalf("layers: %d", len(layers))
	}
	if rc, err := layers[0].Compressed(); err != nil {
		t.Fatal(err)
	} else {
		rc.Close()
	}

	// Upstream gone: the client's connection is closed, not left hanging.
	dead, _ := net.Listen("tcp", "127.0.0.1:0")
	deadAddr := dead.Addr().String()
	dead.Close()
	l2, _ := net.Listen("tcp", "127.0.0.1:0")
	go (&Proxy{Upstream: deadAddr, Logger: discardLogger(), DialTimeout: time.Second}).Serve(ctx, l2)
	c, err := net.Dial("tcp", l2.Addr().String())
	if err != nil {
		t.Fatal(err)
	}
	c.SetReadDeadline(time.Now().Add(5 * time.Second))
	if n, err := c.Read(make([]byte, 1)); err == nil || n != 0 {
		t.Errorf("read from a proxy with no upstream: %d %v", n, err)
	} else if ne, ok := err.(net.Error); ok && ne.Timeout() {
		t.Error("the connection was left hanging")
	}
	c.Close()
}
