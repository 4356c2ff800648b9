package registry

import (
	"context"
	"net"
	"net/http"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/google/go-containerregistry/pkg/authn"
	"github.com/google/go-containerregistry/pkg/name"
	"github.com/google/go-containerregistry/pkg/v1/remote"
)

// startProxy serves p on a loopback port until the test ends.
func startProxy(t *testing.T, p *Proxy) string {
	t.Helper()
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan error, 1)
	p.Logger = discardLogger()
	go func() { done <- p.Serve(ctx, l) }()
	t.Cleanup(func() {
		cancel()
		select {
		case <-done:
		case <-time.After(15 * time.Second):
			t.Error("the proxy did not stop")
		}
	})
	return l.Addr().String()
}

// TestProxy pulls an image by digest through the node-local proxy from a
// real registry that asks for credentials, as containerd does with
// localhost:5000 and no credentials of its own: the proxy adds them. A
// push through the proxy is refused before it reaches the registry, and
// an unreachable upstream answers 502.
func TestProxy(t *testing.T) {
	dir := t.TempDir()
	pwFile := filepath.Join(dir, "password")
	const pw = "s3cretpassword-of-32-characters!"
	if err := os.WriteFile(pwFile, []byte(pw+"\n"), 0o600); err != nil {
		t.Fatal(err)
	}
	htpasswd := filepath.Join(dir, "htpasswd")
	if err := WriteHtpasswd(htpasswd, pwFile); err != nil {
		t.Fatal(err)
	}
	r, _ := startRegistry(t, Config{HtpasswdFile: htpasswd, RequireAuth: true})
	auth := &authn.Basic{Username: User, Password: pw}
	img := ociImage(t, 3<<20, 1<<10)
	pushed, err := Push(context.Background(), img, r.Addr(), "health", PushOptions{Auth: auth})
	if err != nil {
		t.Fatalf("push to the registry: %v", err)
	}
	proxy := startProxy(t, &Proxy{Upstream: r.Addr(), Password: pw})

	ref, err := name.ParseReference(proxy+"/health@"+pushed.Digest, name.Insecure)
	if err != nil {
		t.Fatal(err)
	}
	got, err := remote.Image(ref, remote.WithAuth(authn.Anonymous))
	if err != nil {
		t.Fatalf("anonymous pull through the proxy: %v", err)
	}
	if digestOf(t, got) != digestOf(t, img) {
		t.Errorf("pulled %s, pushed %s", digestOf(t, got), digestOf(t, img))
	}
	layers, _ := got.Layers()
	if len(layers) != 2 {
		t.Fatalf("layers: %d", len(layers))
	}
	for _, l := range layers {
		rc, err := l.Compressed()
		if err != nil {
			t.Fatal(err)
		}
		rc.Close()
	}
	// Without the proxy's credentials the registry refuses the same pull.
	direct, _ := name.ParseReference(r.Addr()+"/health@"+pushed.Digest, name.Insecure)
	if _, err := remote.Image(direct, remote.WithAuth(authn.Anonymous)); err == nil {
		t.Error("the registry served an anonymous pull: the test proves nothing")
	}

	// A push through the proxy, even with the right credentials, is
	// refused: the proxy forwards pulls only.
	_, err = Push(context.Background(), ociImage(t, 1<<10), proxy, "evil", PushOptions{Auth: auth})
	if err == nil || !strings.Contains(err.Error(), "405") {
		t.Errorf("push through the proxy: err = %v, want 405", err)
	}
	for _, m := range []string{http.MethodPost, http.MethodPut, http.MethodPatch, http.MethodDelete} {
		req, _ := http.NewRequest(m, "http://"+proxy+"/v2/health/manifests/"+pushed.Digest, nil)
		resp, err := http.DefaultClient.Do(req)
		if err != nil {
			t.Fatal(err)
		}
		resp.Body.Close()
		if resp.StatusCode != http.StatusMethodNotAllowed {
			t.Errorf("%s through the proxy: %d, want 405", m, resp.StatusCode)
		}
	}
	if _, err := remote.Image(direct, remote.WithAuth(auth)); err != nil {
		t.Errorf("the image is gone after the refused requests: %v", err)
	}
	resp, err := http.Get("http://" + proxy + "/debug/vars")
	if err != nil {
		t.Fatal(err)
	}
	resp.Body.Close()
	if resp.StatusCode != http.StatusNotFound {
		t.Errorf("a path outside /v2/: %d, want 404", resp.StatusCode)
	}

	// Upstream gone: 502 at once, with what is unreachable.
	dead, _ := net.Listen("tcp", "127.0.0.1:0")
	deadAddr := dead.Addr().String()
	dead.Close()
	gone := startProxy(t, &Proxy{Upstream: deadAddr, DialTimeout: time.Second})
	c := &http.Client{Timeout: 10 * time.Second}
	resp, err = c.Get("http://" + gone + "/v2/")
	if err != nil {
		t.Fatal(err)
	}
	resp.Body.Close()
	if resp.StatusCode != http.StatusBadGateway {
		t.Errorf("no upstream: %d, want 502", resp.StatusCode)
	}
}

// FuzzParsePassword: a password file's contents are accepted only as one
// line of at least 16 visible characters, and what is accepted has none
// of the characters refused.
func FuzzParsePassword(f *testing.F) {
	f.Add([]byte("0123456789abcdef\n"))
	f.Add([]byte("short"))
	f.Add([]byte("with space 0123456789"))
	f.Fuzz(func(t *testing.T, data []byte) {
		pw, err := ParsePassword(data)
		if err != nil {
			return
		}
		if len(pw) < 16 || strings.ContainsAny(pw, " \t\r\n\x00") {
			t.Errorf("accepted %q", pw)
		}
	})
}
