package serve

import (
	"context"
	"io"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/hashbang/stack/internal/ci"
	"github.com/hashbang/stack/internal/deploy"
)

// TestWebPage: the read-only page of a real `stack serve` shows the
// environments (from their state repos), the CI jobs with their logs and
// the verdicts of pushes, with headers that allow no script; and it renders
// in headless Chromium (Debian's package), whose screenshots are kept in
// $STACK_SCREENSHOTS when that is set.
func TestWebPage(t *testing.T) {
	d := newDaemon(t)
	work := ciRepo(t, d, "pipelines:\n  test:\n    run: ci/test\n    on:\n      push: [\"refs/heads/*\"]\n",
		map[string]string{"test": "echo 'hello <web> & page'\n"})
	writeFile(t, filepath.Join(d.repo, "infra", "dev", "environment.yaml"), "backend: kubeconfig\ncluster: dev\nregistry: r:5000\nkubeconfig: k\n")
	d.createRepo("state/dev")
	state, err := deploy.OpenState(filepath.Join(d.data, "git", "state", "dev.git"))
	if err != nil {
		t.Fatal(err)
	}
	deployed := strings.Repeat("d", 40)
	if _, err := state.Write(context.Background(), "", &deploy.Commit{
		Record:  &deploy.Record{Environment: "dev", Cluster: "dev", Commit: deployed},
		Subject: "deploy dev", Status: deploy.StatusDeployed, By: deploy.Person{Name: "Ada", Email: "ada@example.org"},
	}); err != nil {
		t.Fatal(err)
	}
	d.start()
	d.git(work, "push", "-q", "origin", "HEAD:refs/heads/main")
	jobs := d.waitJobs("the job to end", 60*time.Second, func(jobs []*ci.Job) bool { return len(jobs) == 1 && jobs[0].State.Final() })
	base := "http://" + d.webAddr
	get := func(path string) (*http.Response, string) {
		t.Helper()
		resp, err := http.Get(base + path)
		if err != nil {
			t.Fatal(err)
		}
		defer resp.Body.Close()
		body, _ := io.ReadAll(resp.Body)
		return resp, string(body)
	}
	resp, body := get("/")
	for _, want := range []string{"<td>dev</td>", deployed[:12], "Ada &lt;ada@example.org&gt;", `href="/jobs/` + jobs[0].ID + `"`, "succeeded", "admin@example.org", "accepted"} {
		if resp.StatusCode != 200 || !strings.Contains(body, want) {
			t.Errorf("index (%d) lacks %q:\n%s", resp.StatusCode, want, body)
		}
	}
	if csp := resp.Header.Get("Content-Security-Policy"); !strings.Contains(csp, "default-src 'none'") || resp.Header.Get("X-Frame-Options") != "DENY" {
		t.Errorf("headers: %v", resp.Header)
	}
	if _, body = get("/jobs/" + jobs[0].ID); !strings.Contains(body, "hello &lt;web&gt; &amp; page") {
		t.Errorf("job page does not show the log, escaped:\n%s", body)
	}
	if resp, _ = get("/jobs/nope"); resp.StatusCode != 404 {
		t.Errorf("unknown job: %d", resp.StatusCode)
	}
	if resp, _ = get("/../etc/passwd"); resp.StatusCode == 200 {
		t.Errorf("path outside: %d", resp.StatusCode)
	}

	chromium, err := exec.LookPath("chromium")
	if err != nil {
		t.Skip("no chromium (make deps installs Debian's): the page was checked over HTTP only")
	}
	shots := os.Getenv("STACK_SCREENSHOTS")
	if shots == "" {
		shots = t.TempDir()
	}
	for name, path := range map[string]string{"index": "/", "job": "/jobs/" + jobs[0].ID} {
		png := filepath.Join(shots, "web-"+name+".png")
		ctx, cancel := context.WithTimeout(context.Background(), 60*time.Second)
		args := []string{"--headless", "--no-sandbox", "--disable-gpu", "--disable-quic", "--no-first-run",
			"--disable-background-networking", "--disable-component-update", "--disable-sync",
			"--user-data-dir=" + t.TempDir(), "--window-size=1200,800", "--hide-scrollbars"}
		out, err := exec.CommandContext(ctx, chromium, append(args, "--screenshot="+png, base+path)...).CombinedOutput()
		dom, derr := exec.CommandContext(ctx, chromium, append(args, "--dump-dom", base+path)...).Output()
		cancel()
		fi, serr := os.Stat(png)
		if err != nil || serr != nil || fi.Size() < 10<<10 {
			t.Errorf("screenshot of %s: %v %v\n%s", path, err, serr, out)
		}
		if derr != nil || !strings.Contains(string(dom), "#!stack") {
			t.Errorf("rendered DOM of %s: %v\n%.500s", path, derr, dom)
		}
	}
}
