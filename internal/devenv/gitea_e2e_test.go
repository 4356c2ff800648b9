package devenv

import (
	"bytes"
	"context"
	"crypto/rand"
	"encoding/base64"
	"encoding/hex"
	"encoding/json"
	"fmt"
	"io"
	"net/http"
	"net/url"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"strings"
	"testing"
	"time"
)

const giteaURL = "http://localhost:2322"

// What pods/gitea declares: the Secret gitea/gitea-admin, whose password
// the capture step of `stack up` stores, for the admin stack-admin.
const (
	giteaNamespace   = "gitea"
	giteaAdminSecret = "gitea-admin"
	giteaAdmin       = "stack-admin"
)

// TestGiteaEndToEnd checks gitea in a development environment that `stack
// up` brought up (STACK_E2E=CACHE, as for TestUpEndToEnd): its home page
// renders with a stylesheet that loads, a user created through the API by
// the admin whose password `stack up` stored in the Secret gitea-admin
// creates a repository and pushes to it over HTTP with the real git client,
// and a clone gives the commit back. With chromium installed, a headless
// browser saves a screenshot of the home page (STACK_E2E_SCREENSHOT, default
// a file under the test's temporary directory, logged).
func TestGiteaEndToEnd(t *testing.T) {
	_, _, n := runningNode(t)
	ctx := context.Background()

	// The home page and its styles.
	status, page := get(t, giteaURL+"/", "", "")
	if status != http.StatusOK || !strings.Contains(page, "<html") {
		t.Fatalf("GET %s/: %d %.200q", giteaURL, status, page)
	}
	css := regexp.MustCompile(`<link rel="stylesheet" href="([^"]+\.css[^"]*)"`).FindAllStringSubmatch(page, -1)
	if len(css) == 0 {
		t.Fatalf("GET %s/ has no stylesheet link:\n%.2000s", giteaURL, page)
	}
	for _, m := range css {
		u, err := url.Parse(giteaURL + "/")
		if err != nil {
			t.Fatal(err)
		}
		ref, err := u.Parse(m[1])
		if err != nil {
			t.Fatal(err)
		}
		// ROOT_URL is http://localhost:2322/: links are on that host.
		if status, body := get(t, ref.String(), "", ""); status != http.StatusOK || len(body) < 1000 {
			t.Errorf("stylesheet %s: %d, %d bytes", ref, status, len(body))
		} else {
			t.Logf("stylesheet %s: %d bytes", ref, len(body))
		}
	}

	screenshot(t)

	// The admin of the Secret creates a user through the API.
	enc, err := n.Kubectl(ctx, nil, "-n", giteaNamespace, "get", "secret", giteaAdminSecret, "-o", "jsonpath={.data.password}")
	if err != nil {
		t.Fatal(err)
	}
	pw, err := base64.StdEncoding.DecodeString(enc)
	if err != nil || len(pw) == 0 {
		t.Fatalf("secret %s/%s holds no password: %v", giteaNamespace, giteaAdminSecret, err)
	}
	user, userPW := "e2e-"+randomHex(t, 4), randomHex(t, 16)
	post(t, "/api/v1/admin/users", giteaAdmin, string(pw), map[string]any{
		"username": user, "email": user + "@example.org", "password": userPW, "must_change_password": false,
	})
	post(t, "/api/v1/user/repos", user, userPW, map[string]any{"name": "e2e", "default_branch": "main"})

	// git push over HTTP, then clone it back.
	work := t.TempDir()
	git := func(dir string, args ...string) string {
		t.Helper()
		cmd := exec.Command("git", append([]string{"-C", dir}, args...)...)
		cmd.Env = append(os.Environ(), "GIT_CONFIG_NOSYSTEM=1", "HOME="+work, "GIT_TERMINAL_PROMPT=0",
			"GIT_AUTHOR_NAME=e2e", "GIT_AUTHOR_EMAIL=e2e@localhost", "GIT_COMMITTER_NAME=e2e", "GIT_COMMITTER_EMAIL=e2e@localhost")
		out, err := cmd.CombinedOutput()
		if err != nil {
			t.Fatalf("git %s: %v\n%s", args[0], err, out)
		}
		return strings.TrimSpace(string(out))
	}
	src := filepath.Join(work, "src")
	if err := os.MkdirAll(src, 0o755); err != nil {
		t.Fatal(err)
	}
	git(src, "init", "-q", "-b", "main")
	if err := os.WriteFile(filepath.Join(src, "README.md"), []byte("pushed by TestGiteaEndToEnd\n"), 0o644); err != nil {
		t.Fatal(err)
	}
	git(src, "add", "README.md")
	git(src, "commit", "-q", "-m", "first")
	head := git(src, "rev-parse", "HEAD")
	remote := fmt.Sprintf("http://%s:%s@localhost:2322/%s/e2e.git", user, userPW, user)
	push := exec.Command("git", "-C", src, "push", "-q", remote, "main")
	push.Env = append(os.Environ(), "GIT_CONFIG_NOSYSTEM=1", "HOME="+work, "GIT_TERMINAL_PROMPT=0")
	if out, err := push.CombinedOutput(); err != nil {
		t.Fatalf("git push: %v\n%s", err, out)
	}
	git(work, "clone", "-q", remote, "clone")
	if got := git(filepath.Join(work, "clone"), "rev-parse", "HEAD"); got != head {
		t.Errorf("clone's HEAD %s, pushed %s", got, head)
	}
	// gitea indexes a push after its post-receive hook returns, on a queue:
	// the file shows on the web shortly after.
	raw := fmt.Sprintf("%s/%s/e2e/raw/branch/main/README.md", giteaURL, user)
	status, body := get(t, raw, user, userPW)
	for deadline := time.Now().Add(20 * time.Second); status != http.StatusOK && time.Now().Before(deadline); {
		time.Sleep(250 * time.Millisecond)
		status, body = get(t, raw, user, userPW)
	}
	if status != http.StatusOK || !strings.Contains(body, "pushed by") {
		t.Errorf("the pushed file through the web: %d %q", status, body)
	}
	t.Logf("user %s pushed %s to %s/%s/e2e and cloned it back", user, head, giteaURL, user)
	// What TestGiteaKeepsData looks for after a stack down and up.
	mark := pushed{User: user, Password: userPW, File: raw, Commit: head}
	b, _ := json.Marshal(mark)
	if err := os.WriteFile(giteaMark(), b, 0o600); err != nil {
		t.Fatal(err)
	}
}

// pushed is what TestGiteaEndToEnd pushed, for TestGiteaKeepsData.
type pushed struct {
	User, Password, File, Commit string
}

// giteaMark is where TestGiteaEndToEnd records its push, beside the cache.
func giteaMark() string { return filepath.Join(os.Getenv("STACK_E2E"), "e2e-gitea-pushed.json") }

// TestGiteaKeepsData checks, after `stack down` and `stack up` (as .ci/run
// does), that the user, repository and file that TestGiteaEndToEnd pushed
// before are still served: gitea's data lives on the node's volume.
func TestGiteaKeepsData(t *testing.T) {
	runningNode(t)
	b, err := os.ReadFile(giteaMark())
	if err != nil {
		t.Skipf("no earlier push recorded (run TestGiteaEndToEnd, stack down, stack up first): %v", err)
	}
	var mark pushed
	if err := json.Unmarshal(b, &mark); err != nil {
		t.Fatal(err)
	}
	status, body := get(t, mark.File, mark.User, mark.Password)
	if status != http.StatusOK || !strings.Contains(body, "pushed by") {
		t.Fatalf("after down and up, %s: %d %q", mark.File, status, body)
	}
	os.Remove(giteaMark())
	t.Logf("%s still serves %s, pushed before stack down and up", giteaURL, mark.File)
}

// screenshot loads the home page in headless Chromium and saves a
// screenshot, when chromium is installed.
func screenshot(t *testing.T) {
	chromium, err := exec.LookPath("chromium")
	if err != nil {
		t.Log("chromium is not installed (apt-get install -y chromium): no screenshot of the home page")
		return
	}
	out := os.Getenv("STACK_E2E_SCREENSHOT")
	if out == "" {
		out = filepath.Join(t.TempDir(), "gitea.png")
	}
	ctx, cancel := context.WithTimeout(context.Background(), 90*time.Second)
	defer cancel()
	cmd := exec.CommandContext(ctx, chromium, "--headless", "--no-sandbox", "--disable-gpu", "--disable-background-networking",
		"--disable-component-update", "--disable-sync", "--no-first-run", "--user-data-dir="+t.TempDir(),
		"--window-size=1280,900", "--screenshot="+out, giteaURL+"/")
	if res, err := cmd.CombinedOutput(); err != nil {
		t.Fatalf("chromium: %v\n%s", err, res)
	}
	data, err := os.ReadFile(out)
	if err != nil || !bytes.HasPrefix(data, []byte("\x89PNG")) || len(data) < 10000 {
		t.Fatalf("chromium's screenshot %s: %d bytes, %v", out, len(data), err)
	}
	t.Logf("screenshot of %s/: %s (%d bytes)", giteaURL, out, len(data))
}

func get(t *testing.T, u, user, pw string) (int, string) {
	t.Helper()
	req, _ := http.NewRequest(http.MethodGet, u, nil)
	if user != "" {
		req.SetBasicAuth(user, pw)
	}
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	body, _ := io.ReadAll(resp.Body)
	return resp.StatusCode, string(body)
}

func post(t *testing.T, p, user, pw string, v any) {
	t.Helper()
	data, _ := json.Marshal(v)
	req, _ := http.NewRequest(http.MethodPost, giteaURL+p, bytes.NewReader(data))
	req.Header.Set("Content-Type", "application/json")
	req.SetBasicAuth(user, pw)
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	body, _ := io.ReadAll(resp.Body)
	if resp.StatusCode != http.StatusCreated {
		t.Fatalf("POST %s as %s: %d %s", p, user, resp.StatusCode, body)
	}
}

func randomHex(t *testing.T, n int) string {
	b := make([]byte, n)
	if _, err := rand.Read(b); err != nil {
		t.Fatal(err)
	}
	return hex.EncodeToString(b)
}
