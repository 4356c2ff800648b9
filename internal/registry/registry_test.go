package registry

import (
	"context"
	"io"
	"net"
	"net/http"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/google/go-containerregistry/pkg/authn"
	"github.com/google/go-containerregistry/pkg/name"
	"github.com/google/go-containerregistry/pkg/v1/random"
	"github.com/google/go-containerregistry/pkg/v1/remote"
)

func TestIsLoopback(t *testing.T) {
	for _, tc := range []struct {
		host string
		want bool
	}{
		{"127.0.0.1", true},
		{"127.0.0.2", true},
		{"127.255.255.254", true},
		{"::1", true},
		{"[::1]", true},
		{"::ffff:127.0.0.1", true},
		{"localhost", true},
		{"LocalHost.", true},
		{"", false},
		{"0.0.0.0", false},
		{"::", false},
		{"128.0.0.1", false},
		{"10.0.0.1", false},
		{"192.168.1.1", false},
		{"registry.localhost", false},
		{"localhost.example.com", false},
		{"example.com", false},
		{"fe80::1%lo", false},
		{"127.0.0.1:5000", false}, // a port is not a host
	} {
		if got := IsLoopback(tc.host); got != tc.want {
			t.Errorf("IsLoopback(%q) = %v, want %v", tc.host, got, tc.want)
		}
	}
}

func TestNewRefusesAnonymousNonLoopback(t *testing.T) {
	for _, addr := range []string{"0.0.0.0:5000", ":5000", "10.1.2.3:5000", "[::]:5000", "example.com:5000", "registry.localhost:5000"} {
		dir := t.TempDir()
		_, err := New(Config{DataDir: dir, Addr: addr})
		if err == nil || !strings.Contains(err.Error(), "htpasswd") || strings.Contains(err.Error(), "\n") {
			t.Errorf("New(%s) without credentials: err = %v, want a one-line error pointing at htpasswd", addr, err)
		}
		if entries, _ := os.ReadDir(dir); len(entries) != 0 {
			t.Errorf("New(%s) failed but left %d files in the data dir", addr, len(entries))
		}
	}
	for _, addr := range []string{"127.0.0.1:5000", "127.0.0.2:5000", "[::1]:5000", "localhost:5000"} {
		if _, err := New(Config{DataDir: t.TempDir(), Addr: addr}); err != nil {
			t.Errorf("New(%s) without credentials: %v, want it allowed on loopback", addr, err)
		}
	}
	if _, err := New(Config{DataDir: t.TempDir(), RequireAuth: true}); err == nil || !strings.Contains(err.Error(), "htpasswd") {
		t.Errorf("New with RequireAuth and no htpasswd: err = %v, want refusal", err)
	}
	if _, err := New(Config{DataDir: t.TempDir(), Addr: "nope"}); err == nil {
		t.Errorf("New with address without port: no error")
	}
	if _, err := New(Config{}); err == nil {
		t.Errorf("New without data dir: no error")
	}
}

func TestNewChecksHtpasswd(t *testing.T) {
	dir := t.TempDir()
	missing := filepath.Join(dir, "missing")
	_, err := New(Config{DataDir: t.TempDir(), Addr: "0.0.0.0:5000", HtpasswdFile: missing})
	if err == nil || !strings.Contains(err.Error(), "does not exist") {
		t.Errorf("New with missing htpasswd file: err = %v", err)
	}
	if _, err := os.Stat(missing); err == nil {
		t.Errorf("New created the missing htpasswd file; distribution would fill it with a logged password")
	}
	md5 := filepath.Join(dir, "md5")
	os.WriteFile(md5, []byte("admin:$apr1$abcdefgh$0123456789abcdefghijkl\n"), 0o600)
	if _, err := New(Config{DataDir: t.TempDir(), HtpasswdFile: md5}); err == nil || !strings.Contains(err.Error(), "bcrypt") {
		t.Errorf("New with an MD5 htpasswd file: err = %v, want bcrypt required", err)
	}
}

// nonLoopbackListener is a loopback listener that claims a public address,
// to check that Serve looks at the listener it is given.
type nonLoopbackListener struct{ net.Listener }

func (nonLoopbackListener) Addr() net.Addr {
	return &net.TCPAddr{IP: net.ParseIP("192.0.2.1"), Port: 5000}
}

func TestServeRefusesAnonymousNonLoopbackListener(t *testing.T) {
	r, err := New(Config{DataDir: t.TempDir()})
	if err != nil {
		t.Fatal(err)
	}
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	err = r.Serve(context.Background(), nonLoopbackListener{ln})
	if err == nil || !strings.Contains(err.Error(), "without credentials") {
		t.Fatalf("Serve on a non-loopback listener: err = %v", err)
	}
	if _, err := net.DialTimeout("tcp", ln.Addr().String(), time.Second); err == nil {
		t.Errorf("listener still accepts connections after Serve refused it")
	}
}

func TestListenAndServeLoopbackRange(t *testing.T) {
	// 127.0.0.2 is loopback too: anonymous pushes are allowed there.
	r, err := New(Config{DataDir: t.TempDir(), Addr: "127.0.0.2:0", Logger: discardLogger()})
	if err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan error, 1)
	go func() { done <- r.ListenAndServe(ctx) }()
	defer func() {
		cancel()
		if err := <-done; err != nil {
			t.Errorf("ListenAndServe: %v", err)
		}
	}()
	select {
	case <-r.Ready():
	case err := <-done:
		t.Fatalf("ListenAndServe: %v", err)
	}
	if !strings.HasPrefix(r.Addr(), "127.0.0.2:") {
		t.Fatalf("Addr() = %s, want 127.0.0.2:PORT", r.Addr())
	}
	img := ociImage(t, 1000)
	got, err := Push(ctx, img, r.Addr(), "x", PushOptions{Auth: authn.Anonymous})
	if err != nil {
		t.Fatal(err)
	}
	if got.Digest != digestOf(t, img) {
		t.Errorf("pushed digest %s, want %s", got.Digest, digestOf(t, img))
	}
}

func TestPushPull(t *testing.T) {
	r, logs := startRegistry(t, Config{})
	if !strings.Contains(logs.String(), "registry listening") || !strings.Contains(logs.String(), r.Addr()) {
		t.Errorf("start not logged with the address; logs:\n%s", logs)
	}
	img := ociImage(t, 3000, 5000)
	idx, err := random.Index(1024, 2, 2)
	if err != nil {
		t.Fatal(err)
	}

	var last, total int64
	got, err := Push(context.Background(), img, r.Addr(), "app", PushOptions{
		Tag:      "v1",
		Auth:     authn.Anonymous,
		Progress: func(done, tot int64) { last, total = done, tot },
	})
	if err != nil {
		t.Fatal(err)
	}
	want := digestOf(t, img)
	if got.Digest != want || got.Ref != r.Addr()+"/app@"+want || got.Tag != "v1" || got.Name != "app" {
		t.Errorf("Push = %+v, want digest %s", got, want)
	}
	if total == 0 || last != total {
		t.Errorf("progress ended at %d of %d, want all bytes", last, total)
	}

	// Pull back by tag and by digest.
	for _, ref := range []string{r.Addr() + "/app:v1", got.Ref} {
		ref, err := name.ParseReference(ref)
		if err != nil {
			t.Fatal(err)
		}
		pulled, err := remote.Image(ref)
		if err != nil {
			t.Fatal(err)
		}
		if d := digestOf(t, pulled); d != want {
			t.Errorf("pulled %s: digest %s, want %s", ref, d, want)
		}
		layers, err := pulled.Layers()
		if err != nil {
			t.Fatal(err)
		}
		for _, l := range layers {
			rc, err := l.Compressed() // reads and verifies the blob's digest
			if err != nil {
				t.Fatal(err)
			}
			if _, err := io.Copy(io.Discard, rc); err != nil {
				t.Errorf("layer of %s: %v", ref, err)
			}
			rc.Close()
		}
	}

	// An image index goes up whole.
	gotIdx, err := PushIndex(context.Background(), idx, r.Addr()+"/team", "multi", PushOptions{Auth: authn.Anonymous})
	if err != nil {
		t.Fatal(err)
	}
	ref, _ := name.ParseReference(r.Addr() + "/team/multi:latest")
	pulledIdx, err := remote.Index(ref)
	if err != nil {
		t.Fatal(err)
	}
	if d := digestOf(t, pulledIdx); d != gotIdx.Digest || d != digestOf(t, idx) {
		t.Errorf("index digest: pulled %s, pushed %s, built %s", d, gotIdx.Digest, digestOf(t, idx))
	}
}

func TestPushErrors(t *testing.T) {
	img := ociImage(t, 10)
	ctx := context.Background()
	for _, tc := range []struct {
		name, target, want string
	}{
		{"app:v1", "127.0.0.1:1", "without tag or digest"},
		{"App", "127.0.0.1:1", "push App"},
		{"app", "", "no target registry"},
		{"app", "http://127.0.0.1:1", "has a scheme"},
		{"app", "127.0.0.1:1", "connection refused"},
	} {
		_, err := Push(ctx, img, tc.target, tc.name, PushOptions{Auth: authn.Anonymous})
		if err == nil || !strings.Contains(err.Error(), tc.want) {
			t.Errorf("Push(%q, %q): err = %v, want it to say %q", tc.name, tc.target, err, tc.want)
		}
	}
	if _, err := Push(ctx, nil, "127.0.0.1:1", "app", PushOptions{}); err == nil || !strings.Contains(err.Error(), "no image given") {
		t.Errorf("Push of no image: err = %v", err)
	}
}

func TestPlainHTTPOnlyToLoopback(t *testing.T) {
	var reached []string
	rt := loopbackOnlyHTTP{roundTripFunc(func(req *http.Request) (*http.Response, error) {
		reached = append(reached, req.URL.String())
		return &http.Response{StatusCode: http.StatusOK, Body: http.NoBody, Request: req}, nil
	})}
	for _, tc := range []struct {
		url string
		ok  bool
	}{
		{"http://127.0.0.1:5000/v2/", true},
		{"http://127.0.0.2:5000/v2/", true},
		{"http://[::1]:5000/v2/", true},
		{"http://localhost:5000/v2/", true},
		{"https://10.0.0.1:5000/v2/", true},
		{"https://registry.example/v2/", true},
		// Private addresses get plain http from the name library; not from us.
		{"http://10.0.0.1:5000/v2/", false},
		{"http://192.168.0.10/v2/", false},
		{"http://registry.example/v2/", false},
	} {
		req, _ := http.NewRequest("GET", tc.url, nil)
		_, err := rt.RoundTrip(req)
		if (err == nil) != tc.ok {
			t.Errorf("RoundTrip(%s): err = %v, want allowed=%v", tc.url, err, tc.ok)
		}
	}
	if len(reached) != 6 {
		t.Errorf("%d requests reached the network, want 6: %v", len(reached), reached)
	}
}

type roundTripFunc func(*http.Request) (*http.Response, error)

func (f roundTripFunc) RoundTrip(r *http.Request) (*http.Response, error) { return f(r) }

func TestAuth(t *testing.T) {
	const user, password = "admin", "correct horse battery staple"
	line, err := HtpasswdLine(user, password)
	if err != nil {
		t.Fatal(err)
	}
	htpasswd := filepath.Join(t.TempDir(), "htpasswd")
	if err := os.WriteFile(htpasswd, []byte("# admins\n"+line+"\n"), 0o600); err != nil {
		t.Fatal(err)
	}
	r, logs := startRegistry(t, Config{HtpasswdFile: htpasswd, RequireAuth: true})
	if !r.AuthRequired() || !strings.Contains(logs.String(), "htpasswd") {
		t.Errorf("start did not say credentials are required; logs:\n%s", logs)
	}
	img := ociImage(t, 2000)
	ctx := context.Background()

	for _, a := range []authn.Authenticator{
		authn.Anonymous,
		&authn.Basic{Username: user, Password: "wrong"},
		&authn.Basic{Username: "nobody", Password: password},
	} {
		if _, err := Push(ctx, img, r.Addr(), "app", PushOptions{Auth: a}); err == nil || !strings.Contains(err.Error(), "401 Unauthorized") {
			t.Errorf("push with %T: err = %v, want 401 Unauthorized", a, err)
		}
	}
	// Nothing was stored by the refused pushes.
	resp, err := http.Get("http://" + r.Addr() + "/v2/app/tags/list")
	if err != nil {
		t.Fatal(err)
	}
	resp.Body.Close()
	if resp.StatusCode != http.StatusUnauthorized || !strings.Contains(resp.Header.Get("WWW-Authenticate"), "Basic") {
		t.Errorf("anonymous GET: %s, challenge %q; want 401 with a Basic challenge", resp.Status, resp.Header.Get("WWW-Authenticate"))
	}

	got, err := Push(ctx, img, r.Addr(), "app", PushOptions{Auth: &authn.Basic{Username: user, Password: password}})
	if err != nil {
		t.Fatal(err)
	}
	if got.Digest != digestOf(t, img) {
		t.Errorf("pushed %s, want %s", got.Digest, digestOf(t, img))
	}
	ref, _ := name.ParseReference(got.Ref)
	if _, err := remote.Image(ref); err == nil {
		t.Errorf("anonymous pull succeeded from a registry requiring credentials")
	}
	pulled, err := remote.Image(ref, remote.WithAuth(&authn.Basic{Username: user, Password: password}))
	if err != nil {
		t.Fatal(err)
	}
	if d := digestOf(t, pulled); d != got.Digest {
		t.Errorf("pulled %s, pushed %s", d, got.Digest)
	}
	if strings.Contains(logs.String(), password) || strings.Contains(logs.String(), "wrong") {
		t.Errorf("logs contain a password:\n%s", logs)
	}
}

func TestSecretPersisted(t *testing.T) {
	dir := t.TempDir()
	if _, err := New(Config{DataDir: dir, Logger: discardLogger()}); err != nil {
		t.Fatal(err)
	}
	path := filepath.Join(dir, secretFile)
	first, err := os.ReadFile(path)
	if err != nil {
		t.Fatal(err)
	}
	fi, _ := os.Stat(path)
	if fi.Mode().Perm() != 0o600 {
		t.Errorf("secret mode %04o, want 0600", fi.Mode().Perm())
	}
	if _, err := New(Config{DataDir: dir, Logger: discardLogger()}); err != nil {
		t.Fatal(err)
	}
	second, _ := os.ReadFile(path)
	if string(first) != string(second) {
		t.Errorf("secret changed between starts")
	}
	os.Chmod(path, 0o644)
	if _, err := New(Config{DataDir: dir, Logger: discardLogger()}); err == nil || !strings.Contains(err.Error(), "chmod 600") {
		t.Errorf("New with a world-readable secret: err = %v", err)
	}
}

func TestShutdown(t *testing.T) {
	r, err := New(Config{DataDir: t.TempDir(), Logger: discardLogger()})
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
	<-r.Ready()
	resp, err := http.Get("http://" + r.Addr() + "/v2/")
	if err != nil {
		t.Fatal(err)
	}
	resp.Body.Close()
	if resp.StatusCode != http.StatusOK || resp.Header.Get("Docker-Distribution-API-Version") != "registry/2.0" {
		t.Errorf("GET /v2/: %s, want 200 from a distribution registry", resp.Status)
	}
	cancel()
	select {
	case err := <-done:
		if err != nil {
			t.Errorf("Serve after cancel: %v", err)
		}
	case <-time.After(15 * time.Second):
		t.Fatal("Serve did not return after cancel")
	}
	if _, err := net.DialTimeout("tcp", ln.Addr().String(), time.Second); err == nil {
		t.Errorf("registry still accepts connections after shutdown")
	}
	if err := r.Serve(context.Background(), ln); err == nil {
		t.Errorf("second Serve: no error")
	}
}
