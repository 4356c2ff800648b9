package source

import (
	"context"
	"fmt"
	"net/http"
	"net/http/httptest"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"

	"github.com/hashbang/stack/internal/cache"
	"github.com/hashbang/stack/internal/workspace"
)

// TestInRepoCache keeps fetched sources in the repository under git-lfs and
// builds a fresh cache from them with every upstream gone.
func TestInRepoCache(t *testing.T) {
	if exec.Command("git", "lfs", "version").Run() != nil {
		t.Skip("git-lfs is not installed (apt-get install git-lfs)")
	}
	url, _ := testProxy(t, helloModules()...)
	useProxy(t, url)
	tarball := []byte("a known-working tool")
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) { w.Write(tarball) }))
	ws := newWorkspace(t, helloSources+fmt.Sprintf("  - name: tool\n    kind: archive\n    url: %s/tool.tgz\n    version: \"1\"\n    hash: %s\n", srv.URL, sha256Of(tarball)))
	ctx := context.Background()
	if _, err := NewUpdater(ws, nil).Update(ctx, []string{"hello"}, "v1.0.0"); err != nil {
		t.Fatal(err)
	}
	cfg, err := Load(ws.Sources())
	if err != nil {
		t.Fatal(err)
	}
	if _, err := NewFetcher(ws, nil).Fetch(ctx, cfg.Sources); err != nil {
		t.Fatal(err)
	}

	git := func(args ...string) string {
		t.Helper()
		cmd := exec.Command("git", args...)
		cmd.Dir = ws.Root
		cmd.Env = append(cmd.Environ(), "GIT_AUTHOR_NAME=t", "GIT_AUTHOR_EMAIL=t@example.com", "GIT_COMMITTER_NAME=t", "GIT_COMMITTER_EMAIL=t@example.com")
		out, err := cmd.CombinedOutput()
		if err != nil {
			t.Fatalf("git %s: %v\n%s", strings.Join(args, " "), err, out)
		}
		return string(out)
	}
	git("init", "-q")
	git("lfs", "install", "--local")
	changed, err := cache.TrackLFS(ws.Root)
	if err != nil || !changed {
		t.Fatalf("TrackLFS: %v %v", changed, err)
	}
	if changed, _ := cache.TrackLFS(ws.Root); changed {
		t.Error("TrackLFS is not idempotent")
	}
	n, err := Save(ctx, ws, cfg.Sources)
	if err != nil {
		t.Fatal(err)
	}
	if n < 5 { // tool blob; hello and dep: zip, info; their go.mod files
		t.Errorf("saved %d files", n)
	}
	git("add", "-A")
	git("commit", "-q", "-m", "keep known-working sources")
	lfs := git("lfs", "ls-files", "-n")
	toolBlob := filepath.ToSlash(strings.TrimPrefix((&cache.Store{Dir: "cache"}).Path(digestOf(tarball)), "./"))
	for _, want := range []string{toolBlob, "cache/gomod/example.com/dep/@v/v1.0.0.zip"} {
		if !strings.Contains(lfs, want) {
			t.Errorf("git lfs does not track %s:\n%s", want, lfs)
		}
	}
	if st := Verify(ctx, ws, cfg.Sources); len(st[0].Problems)+len(st[1].Problems) != 0 {
		t.Fatalf("verify: %+v", st)
	}

	// Upstream gone: a fresh cache fills from the repository alone.
	srv.Close()
	t.Setenv("GOPROXY", "off")
	fresh, _ := workspace.New(ws.Root, filepath.Join(t.TempDir(), "cache"))
	res, err := NewFetcher(fresh, nil).Fetch(ctx, cfg.Sources)
	if err != nil {
		t.Fatal(err)
	}
	if res[0].Status != Fetched || res[1].Status != FromRepo {
		t.Errorf("statuses %+v", res)
	}
	lock, _ := ReadLock(ws.Locks(), "hello")
	if out := buildOffline(t, fresh, lock, "example.com/hello/cmd/hello"); out != "hello from dep one\n" {
		t.Errorf("build from the in-repo cache printed %q", out)
	}
}
