package source

import (
	"context"
	"errors"
	"fmt"
	"net"
	"net/http"
	"net/http/httptest"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"syscall"
	"testing"
	"time"

	"golang.org/x/mod/module"

	"github.com/hashbang/stack/internal/cache"
	"github.com/hashbang/stack/internal/workspace"
)

// within runs fn and returns its error. It fails the test if fn has not
// returned after a minute: what it tests would otherwise hang forever. (The
// bounds under test are far shorter; the minute is not a speed check.)
func within(t *testing.T, fn func() error) error {
	t.Helper()
	done := make(chan error, 1)
	go func() { done <- fn() }()
	select {
	case err := <-done:
		return err
	case <-time.After(time.Minute):
		t.Fatal("did not return within a minute: it hangs")
		return nil
	}
}

// archiveWorkspace is a workspace with one archive source, a, at url,
// pinned to content.
func archiveWorkspace(t *testing.T, url string, content []byte) (*workspace.Workspace, *Source) {
	t.Helper()
	ws := newWorkspace(t, fmt.Sprintf("sources:\n  - name: a\n    kind: archive\n    url: %s\n    version: \"1.0\"\n    hash: %s\n", url, sha256Of(content)))
	cfg, err := Load(ws.Sources())
	if err != nil {
		t.Fatal(err)
	}
	return ws, cfg.Sources[0]
}

// fastNet are bounds short enough for tests.
var fastNet = Network{Connect: time.Second, Answer: 300 * time.Millisecond, Stall: 300 * time.Millisecond, Attempts: 2, Backoff: 10 * time.Millisecond}

// checkOneLine fails unless err is one line holding every part of want.
func checkOneLine(t *testing.T, err error, want ...string) {
	t.Helper()
	if err == nil {
		t.Fatal("no error")
	}
	if strings.Contains(err.Error(), "\n") {
		t.Errorf("error of more than one line:\n%s", err)
	}
	for _, w := range want {
		if !strings.Contains(err.Error(), w) {
			t.Errorf("error %q lacks %q", err, w)
		}
	}
}

// TestArchiveNoAnswer fetches from a server that accepts connections and
// never says a word: the fetch fails after the bounded attempts, saying so.
func TestArchiveNoAnswer(t *testing.T) {
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	var accepted atomic.Int32
	var mu sync.Mutex
	var conns []net.Conn
	go func() {
		for {
			c, err := ln.Accept()
			if err != nil {
				return
			}
			accepted.Add(1)
			mu.Lock()
			conns = append(conns, c) // held open, never read nor written
			mu.Unlock()
		}
	}()
	t.Cleanup(func() {
		ln.Close()
		mu.Lock()
		for _, c := range conns {
			c.Close()
		}
		mu.Unlock()
	})
	url := "http://" + ln.Addr().String() + "/a.tgz"
	ws, s := archiveWorkspace(t, url, []byte("x"))
	f := NewFetcher(ws, nil)
	f.Net = fastNet
	before := listFiles(t, ws.Cache)
	err = within(t, func() error { _, err := f.Fetch(context.Background(), []*Source{s}); return err })
	checkOneLine(t, err, "fetch a: GET "+url+": ", "no answer within 300ms", "(2 attempts)", "try again later")
	if n := accepted.Load(); n != 2 {
		t.Errorf("%d connections, want 2 (the attempts)", n)
	}
	if after := listFiles(t, ws.Cache); after != before {
		t.Errorf("the cache changed:\n%s\nthen\n%s", before, after)
	}
}

// TestArchiveStall fetches from a server that sends the headers and the
// first bytes, then nothing: the fetch fails on the stall bound.
func TestArchiveStall(t *testing.T) {
	release := make(chan struct{})
	var requests atomic.Int32
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		requests.Add(1)
		w.Header().Set("Content-Length", "1000")
		w.Write([]byte("0123456789"))
		w.(http.Flusher).Flush()
		select {
		case <-release:
		case <-r.Context().Done():
		}
	}))
	defer srv.Close()
	defer close(release)
	ws, s := archiveWorkspace(t, srv.URL+"/a.tgz", []byte("x"))
	f := NewFetcher(ws, nil)
	f.Net = fastNet
	err := within(t, func() error { _, err := f.Fetch(context.Background(), []*Source{s}); return err })
	checkOneLine(t, err, "fetch a: GET "+srv.URL+"/a.tgz: ", "the download stalled: no data for 300ms after 10 bytes", "(2 attempts)")
	if n := requests.Load(); n != 2 {
		t.Errorf("%d requests, want 2", n)
	}
	if (&cache.Store{Dir: ws.Cache}).Has(s.Digest()) {
		t.Error("a stalled download was stored")
	}
}

// TestArchiveRetry: what may pass on a second try is tried again, what
// will not is not; a slow download that keeps coming is not cut short.
func TestArchiveRetry(t *testing.T) {
	good := []byte("the good tarball, sent slowly")
	var requests atomic.Int32
	var fail atomic.Int32
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		requests.Add(1)
		switch r.URL.Path {
		case "/flaky.tgz":
			if fail.Add(-1) >= 0 {
				http.Error(w, "busy", http.StatusServiceUnavailable)
				return
			}
			w.Write(good)
		case "/slow.tgz":
			// The whole takes several stall bounds, each gap a fraction of one.
			w.Header().Set("Content-Length", strconv.Itoa(len(good)))
			for i := range good {
				w.Write(good[i : i+1])
				w.(http.Flusher).Flush()
				time.Sleep(50 * time.Millisecond)
			}
		case "/cut.tgz":
			// Promises more than it sends, once.
			if fail.Add(-1) >= 0 {
				w.Header().Set("Content-Length", "1000")
				w.Write(good[:5])
				return
			}
			w.Write(good)
		default:
			http.NotFound(w, r)
		}
	}))
	defer srv.Close()
	for _, tc := range []struct {
		path     string
		failures int32
		net      Network
		requests int32
		err      string
	}{
		{"/flaky.tgz", 1, fastNet, 2, ""},
		{"/flaky.tgz", 5, fastNet, 2, "503 Service Unavailable (2 attempts): the server failed; try again later"},
		{"/missing.tgz", 0, fastNet, 1, "404 Not Found: check the url and version in sources.yaml"},
		{"/slow.tgz", 0, Network{Stall: 500 * time.Millisecond, Attempts: 1}, 1, ""},
		{"/cut.tgz", 1, fastNet, 2, ""},
	} {
		t.Run(fmt.Sprint(tc.path, tc.failures), func(t *testing.T) {
			requests.Store(0)
			fail.Store(tc.failures)
			ws, s := archiveWorkspace(t, srv.URL+tc.path, good)
			f := NewFetcher(ws, nil)
			f.Net = tc.net
			res, err := f.Fetch(context.Background(), []*Source{s})
			if tc.err == "" {
				if err != nil || res[0].Status != Fetched {
					t.Fatalf("fetch: %v %+v", err, res)
				}
			} else {
				checkOneLine(t, err, "fetch a: GET "+srv.URL+tc.path+": "+tc.err)
			}
			if n := requests.Load(); n != tc.requests {
				t.Errorf("%d requests, want %d", n, tc.requests)
			}
		})
	}
}

// TestFetchCancel cancels a download in progress, with the default
// bounds: the fetch returns at once, the cache unchanged.
func TestFetchCancel(t *testing.T) {
	started := make(chan struct{})
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		w.Header().Set("Content-Length", "1000000")
		w.Write([]byte("some"))
		w.(http.Flusher).Flush()
		close(started)
		<-r.Context().Done()
	}))
	defer srv.Close()
	ws, s := archiveWorkspace(t, srv.URL+"/a.tgz", []byte("x"))
	ctx, cancel := context.WithCancel(context.Background())
	go func() { <-started; cancel() }()
	err := within(t, func() error { _, err := NewFetcher(ws, nil).Fetch(ctx, []*Source{s}); return err })
	if !errors.Is(err, context.Canceled) || !strings.HasPrefix(err.Error(), "fetch a: GET "+srv.URL+"/a.tgz: ") {
		t.Fatalf("got %v, want the fetch of a cancelled", err)
	}
	if (&cache.Store{Dir: ws.Cache}).Has(s.Digest()) {
		t.Error("a cancelled download was stored")
	}
}

// notRegular are what an attacker (or an accident) may put where a cache
// blob should be.
var notRegular = []struct {
	name string
	make func(t *testing.T, path string)
	want string
}{
	{"fifo", func(t *testing.T, p string) {
		if err := syscall.Mkfifo(p, 0o644); err != nil {
			t.Fatal(err)
		}
	}, "is a named pipe (FIFO), not a regular file"},
	{"link to /dev/zero", func(t *testing.T, p string) {
		if err := os.Symlink("/dev/zero", p); err != nil {
			t.Fatal(err)
		}
	}, "is a symbolic link, not a regular file"},
}

func mkParent(t *testing.T, p string) {
	t.Helper()
	if err := os.MkdirAll(filepath.Dir(p), 0o755); err != nil {
		t.Fatal(err)
	}
}

// TestCacheNotRegular puts a FIFO, or a link to /dev/zero, in the place of
// an archive's blob. Verify names it; fetch and extract never read it:
// fetch replaces it in the local cache and refuses it in the in-repo
// cache, naming it.
func TestCacheNotRegular(t *testing.T) {
	good := []byte("the good tarball")
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) { w.Write(good) }))
	defer srv.Close()
	ctx := context.Background()
	for _, nr := range notRegular {
		for _, where := range []string{"local", "in-repo"} {
			t.Run(nr.name+" "+where, func(t *testing.T) {
				ws, s := archiveWorkspace(t, srv.URL+"/a.tgz", good)
				store := &cache.Store{Dir: ws.Cache}
				if where == "in-repo" {
					store = &cache.Store{Dir: ws.RepoCache()}
				}
				p := store.Path(s.Digest())
				mkParent(t, p)
				nr.make(t, p)

				var st []Status
				within(t, func() error { st = Verify(ctx, ws, []*Source{s}); return nil })
				if len(st[0].Problems) != 1 || st[0].Problems[0].Item != p || !strings.Contains(st[0].Problems[0].Msg, p+" "+nr.want) {
					t.Errorf("verify: %+v, want %s named", st[0].Problems, p)
				}
				if where == "local" {
					if IsCached(ws, s) {
						t.Error("IsCached says it is cached")
					}
					// Extract reads the blob of an npm source with the
					// same pin.
					npm := &Source{Name: "a", Kind: Npm, Package: "a", Version: "1.0.0", Hash: s.Hash}
					_, err := within2(t, func() (string, error) { return Extract(ctx, ws, npm) })
					checkOneLine(t, err, "extract a: ", p+" "+nr.want)
				}

				res, err := within2(t, func() ([]Result, error) { return NewFetcher(ws, nil).Fetch(ctx, []*Source{s}) })
				if where == "local" {
					if err != nil || res[0].Status != Fetched {
						t.Fatalf("fetch: %v %+v, want it fetched anew", err, res)
					}
					if err := store.Verify(ctx, s.Digest()); err != nil {
						t.Error(err)
					}
				} else {
					checkOneLine(t, err, "fetch a: in-repo cache: "+p+" "+nr.want)
				}
				if nr.name == "link to /dev/zero" {
					if _, err := os.Stat("/dev/zero"); err != nil {
						t.Errorf("/dev/zero: %v", err)
					}
				}
			})
		}
	}
}

// within2 is within for functions returning a value too.
func within2[T any](t *testing.T, fn func() (T, error)) (T, error) {
	t.Helper()
	var v T
	err := within(t, func() error {
		var err error
		v, err = fn()
		return err
	})
	return v, err
}

// TestDebSrcNotRegular puts a FIFO, or a link to /dev/zero, in the place of
// a debsrc source's .dsc, then of a file the .dsc names.
func TestDebSrcNotRegular(t *testing.T) {
	ctx := context.Background()
	dsc := []byte(sampleDsc)
	for _, nr := range notRegular {
		for _, which := range []string{".dsc", "tarball"} {
			t.Run(nr.name+" "+which, func(t *testing.T) {
				ws := newWorkspace(t, "sources:\n  - name: zlib\n    kind: debsrc\n    package: zlib\n    version: 1:1.2.13.dfsg-1\n    hash: "+sha256Of(dsc)+"\n")
				cfg, err := Load(ws.Sources())
				if err != nil {
					t.Fatal(err)
				}
				s := cfg.Sources[0]
				store := &cache.Store{Dir: ws.Cache}
				p := store.Path(s.Digest())
				if which == "tarball" {
					write(t, p, sampleDsc)
					d, _ := ParseDsc(dsc)
					p = store.Path(d.Files[0].digest())
				}
				mkParent(t, p)
				nr.make(t, p)
				var st []Status
				within(t, func() error { st = Verify(ctx, ws, []*Source{s}); return nil })
				found := false
				for _, pr := range st[0].Problems {
					found = found || pr.Item == p && strings.Contains(pr.Msg, p+" "+nr.want)
				}
				if !found || st[0].Cached {
					t.Errorf("verify: %+v, want %s named", st[0], p)
				}
				within(t, func() error {
					if IsCached(ws, s) {
						t.Error("IsCached says it is cached")
					}
					return nil
				})
			})
		}
	}
}

// TestVerifyModuleNotRegular puts a FIFO, or a link to /dev/zero, in the
// place of a module's zip, of its go.mod, and of a file of its extracted
// tree.
func TestVerifyModuleNotRegular(t *testing.T) {
	ctx := context.Background()
	m := module.Version{Path: "example.com/dep", Version: "v1.0.0"}
	for _, nr := range notRegular {
		for _, which := range []string{".zip", ".mod", "tree"} {
			t.Run(nr.name+" "+which, func(t *testing.T) {
				mc := t.TempDir()
				downloads := filepath.Join(mc, "cache", "download")
				l := SumLine{Path: m.Path, Version: m.Version, GoMod: which == ".mod", Hash: "h1:AAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAA="}
				p := downloadPath(downloads, m, which)
				if which == "tree" {
					p = filepath.Join(extractedPath(mc, m), "dep.go")
				}
				mkParent(t, p)
				nr.make(t, p)
				n, _, err := within3(t, func() (int, bool, error) { return verifyModule(ctx, downloads, mc, l) })
				if n != 1 || err == nil || !strings.Contains(err.Error(), p+" "+nr.want) {
					t.Errorf("verify: %d artifacts, %v; want %s named", n, err, p)
				}
			})
		}
	}
}

func within3(t *testing.T, fn func() (int, bool, error)) (int, bool, error) {
	t.Helper()
	var n int
	var ok bool
	err := within(t, func() error {
		var err error
		n, ok, err = fn()
		return err
	})
	return n, ok, err
}

// fakeClient writes a program named name into a new directory put first
// on PATH: it starts a child that holds its output open, writes the
// child's pid to pidFile, and waits, never finishing (as a package client
// stuck on a dead mirror would). `go env` answers at once, empty.
func fakeClient(t *testing.T, name, pidFile string) {
	t.Helper()
	bin := t.TempDir()
	script := "#!/bin/sh\n[ \"$1\" = env ] && exit 0\nsleep 1000 &\necho $! > " + pidFile + "\nwait\n"
	if err := os.WriteFile(filepath.Join(bin, name), []byte(script), 0o755); err != nil {
		t.Fatal(err)
	}
	t.Setenv("PATH", bin+":"+os.Getenv("PATH"))
}

// gone reports whether process pid has ended (or is a zombie left for its
// new parent to reap).
func gone(pid int) bool {
	data, err := os.ReadFile(fmt.Sprintf("/proc/%d/stat", pid))
	if err != nil {
		return true
	}
	f := strings.Fields(string(data[strings.LastIndexByte(string(data), ')')+1:]))
	return len(f) > 0 && (f[0] == "Z" || f[0] == "X")
}

// TestClientCancel cancels each package client stack runs while it (and a
// child of its) hangs: the fetch returns promptly and no process of it is
// left.
func TestClientCancel(t *testing.T) {
	clients := []struct {
		name string
		run  func(ctx context.Context, dir string) error
	}{
		{"apt-get", func(ctx context.Context, dir string) error {
			_, err := aptDownload(ctx, dir, "runc", "amd64", "1.0")
			return err
		}},
		{"npm", func(ctx context.Context, dir string) error {
			_, _, err := npmPack(ctx, dir, "pnpm", "1.0.0")
			return err
		}},
		{"go", func(ctx context.Context, dir string) error {
			_, err := (&goCmd{modCache: filepath.Join(dir, "mc")}).download(ctx, dir, "readonly", "example.com/x@v1.0.0")
			return err
		}},
	}
	for _, c := range clients {
		t.Run(c.name, func(t *testing.T) {
			dir := t.TempDir()
			pidFile := filepath.Join(dir, "child.pid")
			fakeClient(t, c.name, pidFile)
			ctx, cancel := context.WithCancel(context.Background())
			defer cancel()
			var pid atomic.Int64
			go func() {
				for ctx.Err() == nil {
					if b, err := os.ReadFile(pidFile); err == nil && strings.HasSuffix(string(b), "\n") {
						n, _ := strconv.Atoi(strings.TrimSpace(string(b)))
						pid.Store(int64(n))
						break
					}
					time.Sleep(10 * time.Millisecond)
				}
				cancel()
			}()
			t.Cleanup(func() {
				if child := int(pid.Load()); child > 0 && !gone(child) {
					syscall.Kill(child, syscall.SIGKILL)
				}
			})
			err := within(t, func() error { return c.run(ctx, dir) })
			if err == nil {
				t.Fatal("a cancelled client succeeded")
			}
			child := int(pid.Load())
			if child == 0 {
				t.Fatalf("the fake %s never started its child: %v", c.name, err)
			}
			within(t, func() error {
				for !gone(child) {
					time.Sleep(10 * time.Millisecond)
				}
				return nil
			})
		})
	}
}
