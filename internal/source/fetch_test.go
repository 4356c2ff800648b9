package source

import (
	"bytes"
	"context"
	"crypto/sha256"
	"fmt"
	"net/http"
	"net/http/httptest"
	"os"
	"os/exec"
	"path/filepath"
	"runtime"
	"strings"
	"testing"

	"github.com/opencontainers/go-digest"
	"golang.org/x/mod/module"

	"github.com/hashbang/stack/internal/cache"
	"github.com/hashbang/stack/internal/workspace"
)

// TestGoModLifecycle drives a gomod source through update, fetch, an
// offline build, tamper detection and a move to a newer release, against a
// module proxy served on loopback.
func TestGoModLifecycle(t *testing.T) {
	url, proxyDir := testProxy(t, helloModules()...)
	useProxy(t, url)
	ws := newWorkspace(t, helloSources)
	ctx := context.Background()

	// Pin the first release: update fills in the hash and writes the lock.
	changes, err := NewUpdater(ws, nil).Update(ctx, []string{"hello"}, "v1.0.0")
	if err != nil {
		t.Fatal(err)
	}
	if len(changes) != 3 || changes[0].Field != "hash" || !strings.HasPrefix(changes[0].New, "h1:") ||
		changes[1].Field != "config/locks/hello.mod" || changes[2].Field != "config/locks/hello.sum" {
		t.Fatalf("changes = %+v, want the hash filled in and the lock written", changes)
	}
	data, _ := os.ReadFile(ws.Sources())
	for _, keep := range []string{"# Sources of the test stack.", "# The hello tool.", "version: v1.0.0   # the first release"} {
		if !bytes.Contains(data, []byte(keep)) {
			t.Errorf("update lost %q:\n%s", keep, data)
		}
	}
	cfg, err := Load(ws.Sources())
	if err != nil {
		t.Fatal(err)
	}
	hello, _ := cfg.Get("hello")
	lock, err := ReadLock(ws.Locks(), "hello")
	if err != nil {
		t.Fatal(err)
	}
	if err := lock.Check(hello); err != nil {
		t.Fatal(err)
	}
	if !bytes.Contains(lock.Sum, []byte("example.com/dep v1.0.0 h1:")) {
		t.Errorf("lock does not pin the dependency:\n%s", lock.Sum)
	}

	// Fetch into a fresh cache, then build with the network off and an
	// otherwise empty environment.
	ws2, _ := workspace.New(ws.Root, filepath.Join(t.TempDir(), "cache"))
	res, err := NewFetcher(ws2, nil).Fetch(ctx, cfg.Sources)
	if err != nil {
		t.Fatal(err)
	}
	if res[0].Status != Fetched {
		t.Errorf("status %q, want %q", res[0].Status, Fetched)
	}
	if out := buildOffline(t, ws2, lock, "example.com/hello/cmd/hello"); out != "hello from dep one\n" {
		t.Errorf("offline build printed %q", out)
	}
	if res, _ := NewFetcher(ws2, nil).Fetch(ctx, cfg.Sources); res[0].Status != Cached {
		t.Errorf("second fetch: %q, want %q", res[0].Status, Cached)
	}
	if st := Verify(ctx, ws2, cfg.Sources); len(st[0].Problems) != 0 || !st[0].Cached || st[0].Artifacts == 0 {
		t.Fatalf("verify of a good cache: %+v", st)
	}

	// One byte changed in any cached artifact is found and named.
	dep := module.Version{Path: "example.com/dep", Version: "v1.0.0"}
	mc := ModCache(ws2)
	for _, file := range []string{
		zipPath(mc, dep),
		downloadPath(filepath.Join(mc, "cache", "download"), dep, ".mod"),
		filepath.Join(extractedPath(mc, dep), "dep.go"),
	} {
		t.Run("tamper "+filepath.Base(file), func(t *testing.T) {
			restore := flipByte(t, file)
			defer restore()
			st := Verify(ctx, ws2, cfg.Sources)
			if len(st[0].Problems) != 1 {
				t.Fatalf("problems = %+v, want 1", st[0].Problems)
			}
			p := st[0].Problems[0]
			if p.Source != "hello" || p.Item != "example.com/dep@v1.0.0" || !strings.Contains(p.Msg, "delete "+file) && !strings.Contains(p.Msg, "delete "+filepath.Dir(file)) {
				t.Errorf("problem = %s", p)
			}
		})
	}

	// One character changed in the pinned hash breaks the lock check.
	bad := strings.Replace(string(data), hello.Hash, flipChar(hello.Hash), 1)
	write(t, ws.Sources(), bad)
	badCfg, err := Load(ws.Sources())
	if err != nil {
		t.Fatal(err)
	}
	st := Verify(ctx, ws2, badCfg.Sources)
	if len(st[0].Problems) == 0 || !strings.Contains(st[0].Problems[0].String(), "hello: lock of hello") {
		t.Errorf("verify with a changed hash: %+v", st)
	}
	if _, err := NewFetcher(ws2, nil).Fetch(ctx, badCfg.Sources); err == nil {
		t.Error("fetch with a changed hash succeeded")
	}
	write(t, ws.Sources(), string(data))

	// Update moves to the newest release within the track: not the
	// prerelease, not the next major.
	changes, err = NewUpdater(ws, nil).Update(ctx, nil, "")
	if err != nil {
		t.Fatal(err)
	}
	if len(changes) != 4 || changes[0].Field != "version" || changes[0].New != "v1.1.0" || changes[1].Field != "hash" ||
		changes[2].Field != "config/locks/hello.mod" || changes[3].Field != "config/locks/hello.sum" {
		t.Fatalf("changes = %+v, want version v1.1.0, its hash and its lock", changes)
	}
	data, _ = os.ReadFile(ws.Sources())
	if !bytes.Contains(data, []byte("version: v1.1.0   # the first release")) {
		t.Errorf("version not rewritten in place:\n%s", data)
	}

	// A proxy serving altered content: the download is refused and nothing
	// of it enters the cache.
	cfg, _ = Load(ws.Sources())
	evil := helloModules()[0]
	evil.files["dep.go"] = "package dep\n\nfunc Greeting() string { return \"pwned\" }\n"
	_, evilDir := testProxy(t, evil)
	copyFileT(t, downloadPath(proxyDir, dep, ".zip"), downloadPath(evilDir, dep, ".zip"))
	ws3, _ := workspace.New(ws.Root, filepath.Join(t.TempDir(), "cache"))
	_, err = NewFetcher(ws3, nil).Fetch(ctx, cfg.Sources)
	if err == nil || !strings.Contains(err.Error(), "example.com/dep@v1.0.0: downloaded content does not match the lock") {
		t.Fatalf("fetch of tampered module: %v", err)
	}
	if fileExists(zipPath(ModCache(ws3), dep)) || fileExists(extractedPath(ModCache(ws3), dep)) {
		t.Error("a tampered module was published into the cache")
	}
}

// buildOffline builds pkg from the consumer module of lock with the
// network off and an environment holding nothing but what the go command
// needs to find its caches, and returns what the program prints.
func buildOffline(t *testing.T, ws *workspace.Workspace, lock *Lock, pkg string) string {
	t.Helper()
	dir := t.TempDir()
	if err := lock.Materialize(dir); err != nil {
		t.Fatal(err)
	}
	bin := filepath.Join(dir, "prog")
	gobin := filepath.Join(runtime.GOROOT(), "bin", "go")
	cmd := exec.Command(gobin, "build", "-o", bin, pkg)
	cmd.Dir = dir
	cmd.Env = []string{
		"HOME=" + dir, "GOMODCACHE=" + ModCache(ws), "GOCACHE=" + filepath.Join(dir, "gocache"),
		"GOPROXY=off", "GOFLAGS=-mod=readonly", "GOTOOLCHAIN=local", "CGO_ENABLED=0",
	}
	if out, err := cmd.CombinedOutput(); err != nil {
		t.Fatalf("offline build of %s: %v\n%s", pkg, err, out)
	}
	out, err := exec.Command(bin).Output()
	if err != nil {
		t.Fatal(err)
	}
	return string(out)
}

func copyFileT(t *testing.T, dst, src string) {
	t.Helper()
	if err := copyFile(context.Background(), dst, src); err != nil {
		t.Fatal(err)
	}
}

// flipByte changes the middle byte of file and returns a function that puts
// it back.
func flipByte(t *testing.T, file string) func() {
	t.Helper()
	orig, err := os.ReadFile(file)
	if err != nil {
		t.Fatal(err)
	}
	changed := bytes.Clone(orig)
	changed[len(changed)/2] ^= 0x01
	os.Chmod(file, 0o644)
	if err := os.WriteFile(file, changed, 0o644); err != nil {
		t.Fatal(err)
	}
	return func() { os.WriteFile(file, orig, 0o644) }
}

// flipChar changes one character of a hash, keeping it well-formed.
func flipChar(h string) string {
	i := len(h) - 3
	c := byte('A')
	if h[i] == 'A' {
		c = 'B'
	}
	return h[:i] + string(c) + h[i+1:]
}

func sha256Of(b []byte) string { return fmt.Sprintf("sha256:%x", sha256.Sum256(b)) }

// TestArchiveFetch fetches archives from a server on loopback that serves
// good and altered content.
func TestArchiveFetch(t *testing.T) {
	good := []byte("the good tarball")
	serve := map[string][]byte{"/a-1.0.tgz": good, "/b-1.0.tgz": []byte("what an attacker serves")}
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if b, ok := serve[r.URL.Path]; ok {
			w.Write(b)
			return
		}
		http.NotFound(w, r)
	}))
	defer srv.Close()
	entry := func(name string) string {
		return fmt.Sprintf("  - name: %s\n    kind: archive\n    url: %s/%s-{version}.tgz\n    version: \"1.0\"\n    hash: %s\n", name, srv.URL, name, sha256Of(good))
	}
	ws := newWorkspace(t, "sources:\n"+entry("a")+entry("b"))
	cfg, err := Load(ws.Sources())
	if err != nil {
		t.Fatal(err)
	}
	ctx := context.Background()
	f := NewFetcher(ws, nil)
	// b's server (fetched first, while the cache is empty) hands out other bytes than the pin: refused, nothing stored.
	before := listFiles(t, ws.Cache)
	_, err = f.Fetch(ctx, cfg.Sources[1:])
	want := fmt.Sprintf("fetch b: %s/b-1.0.tgz: downloaded content does not match sources.yaml: expected %s, got %s; nothing was stored in the cache", srv.URL, sha256Of(good), sha256Of(serve["/b-1.0.tgz"]))
	if err == nil || err.Error() != want {
		t.Fatalf("fetch b:\n got %v\nwant %s", err, want)
	}
	if after := listFiles(t, ws.Cache); after != before {
		t.Errorf("cache changed by a refused download:\n%s\nthen\n%s", before, after)
	}

	if res, err := f.Fetch(ctx, cfg.Sources[:1]); err != nil || res[0].Status != Fetched {
		t.Fatalf("fetch a: %v %+v", err, res)
	}
	store := &cache.Store{Dir: ws.Cache}
	d := digest.Digest(sha256Of(good))
	if got, _ := os.ReadFile(store.Path(d)); !bytes.Equal(got, good) {
		t.Fatalf("cached content %q", got)
	}

	// A damaged cached copy is reported by verify and replaced by fetch.
	flipByte(t, store.Path(d))
	st := Verify(ctx, ws, cfg.Sources[:1])
	if len(st[0].Problems) != 1 || !strings.Contains(st[0].Problems[0].String(), "a: "+store.Path(d)+": cached file: downloaded content does not match") {
		t.Fatalf("verify of damaged blob: %+v", st)
	}
	if res, err := f.Fetch(ctx, cfg.Sources[:1]); err != nil || res[0].Status != Fetched {
		t.Fatalf("refetch: %v %+v", err, res)
	}
	if err := store.Verify(ctx, d); err != nil {
		t.Fatal(err)
	}

	// update --version follows {version} in the url.
	serve["/a-2.0.tgz"] = []byte("release two")
	changes, err := NewUpdater(ws, nil).Update(ctx, []string{"a"}, "2.0")
	if err != nil {
		t.Fatal(err)
	}
	if len(changes) != 2 || changes[1].New != sha256Of(serve["/a-2.0.tgz"]) {
		t.Errorf("changes = %+v", changes)
	}
	if _, err := NewUpdater(ws, nil).Update(ctx, []string{"a"}, "3.0"); err == nil || !strings.Contains(err.Error(), "404") {
		t.Errorf("update to a missing release: %v", err)
	}
	if cfg, err := Load(ws.Sources()); err != nil || cfg.Sources[0].Version != "2.0" {
		t.Errorf("after a failed update the file must be as the last good one: %v", err)
	}
}

// listFiles lists every file under dir with its size, for before/after
// comparisons.
func listFiles(t *testing.T, dir string) string {
	t.Helper()
	var b strings.Builder
	filepath.Walk(dir, func(p string, fi os.FileInfo, err error) error {
		if err == nil && !fi.IsDir() {
			fmt.Fprintf(&b, "%s %d\n", p, fi.Size())
		}
		return nil
	})
	return b.String()
}

func digestOf(b []byte) digest.Digest { return digest.FromBytes(b) }
