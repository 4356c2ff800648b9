package gitserve

import (
	"log/slog"
	"os"
	"path/filepath"
	"strings"
	"testing"
)

// TestAccessDuplicateKeys: a key given twice in git.yaml is refused at any
// depth, naming both lines.
func TestAccessDuplicateKeys(t *testing.T) {
	for _, tc := range []struct{ in, want string }{
		{"repos:\n  \"*\": {read: [x]}\nrepos:\n  stack: {read: [y]}\n", `git.yaml:3: duplicate key "repos" in the top level (first at line 1)`},
		{"repos:\n  stack:\n    read: [x]\n    write: [y]\n    read: [z]\n", `git.yaml:5: duplicate key "read" in repos.stack (first at line 3)`},
	} {
		if _, err := ParseAccess([]byte(tc.in)); err == nil || !strings.Contains(err.Error(), tc.want) {
			t.Errorf("ParseAccess(%q) = %v, want %q", tc.in, err, tc.want)
		}
	}
}

// TestPolicyFailsClosed: git.yaml that disappears while the server runs
// would mean the permissive default; the last good rules stay instead, and
// so they do for an invalid one. Restoring a file is picked up again.
func TestPolicyFailsClosed(t *testing.T) {
	dir := t.TempDir()
	write := func(name, content string) {
		t.Helper()
		if err := os.WriteFile(filepath.Join(dir, name), []byte(content), 0o644); err != nil {
			t.Fatal(err)
		}
	}
	strict := "repos:\n  \"*\": {read: [\"@admins\"], write: [\"@admins\"]}\n"
	write(AccessFile, strict)
	var logs strings.Builder
	s, err := newPolicySource(dir, nil, slog.New(slog.NewTextHandler(&logs, nil)))
	if err != nil {
		t.Fatal(err)
	}
	dev := Identity{Groups: []string{"developers"}}
	if s.current().Access.Allowed(dev, "stack", false) {
		t.Fatal("the strict rules let a developer read")
	}
	os.Remove(filepath.Join(dir, AccessFile))
	if s.current().Access.Allowed(dev, "stack", false) {
		t.Error("git.yaml removed: the permissive default took over")
	}
	if !strings.Contains(logs.String(), "config file disappeared; keeping the last good config") {
		t.Errorf("not said loudly:\n%s", logs.String())
	}
	write(AccessFile, "repos: [\n")
	if s.current().Access.Allowed(dev, "stack", false) {
		t.Error("git.yaml invalid: the last good rules were dropped")
	}
	write(AccessFile, "repos:\n  \"*\": {read: [\"@developers\", \"@admins\"], write: [\"@admins\"]}\n")
	if !s.current().Access.Allowed(dev, "stack", false) {
		t.Error("a restored, valid git.yaml was not picked up")
	}
}

// TestConfigFromRef: with ConfigFrom, the work tree's config/ serves only
// until the ref exists; from then on who may log in and what they may do
// is config/ at that ref, which a checkout or an edit of the work tree
// cannot widen.
func TestConfigFromRef(t *testing.T) {
	ts := startServerWith(t, "", func(c *Config) {
		c.ConfigFrom = &ConfigRef{Repo: "stack", Ref: "refs/heads/production"}
	})
	if _, code := ts.ssh(devKey, nil, "git-upload-pack", "/stack.git"); code == 255 {
		t.Fatal("before the ref exists the work tree's config must serve: the developer was refused")
	}
	// Production's config/: the admin only.
	work := filepath.Join(ts.dir, "work")
	ts.git(adminKey, ts.dir, "clone", "-q", ts.url("stack"), work)
	os.MkdirAll(filepath.Join(work, "config"), 0o755)
	writeFile(t, filepath.Join(work, "config", "admins"), "admin@example.org "+pubKey(t, adminKey)+"\n")
	ts.git(adminKey, work, "add", "config")
	ts.git(adminKey, work, "commit", "-q", "-m", "only the admin")
	ts.git(adminKey, work, "push", "-q", "origin", "HEAD:refs/heads/production")

	if out, code := ts.ssh(devKey, nil, "git-upload-pack", "/stack.git"); code != 255 {
		t.Errorf("the developer, absent from production's config, still logs in (%d): %s", code, out)
	}
	// Widening the work tree changes nothing.
	writeFile(t, filepath.Join(ts.config, "developers"), "dev@example.org "+pubKey(t, devKey)+"\nstranger@example.org "+pubKey(t, strangerKey)+"\n")
	if out, code := ts.ssh(strangerKey, nil, "git-upload-pack", "/stack.git"); code != 255 {
		t.Errorf("a key added to the work tree logs in (%d): %s", code, out)
	}
	if !strings.Contains(ts.log.String(), "stack@production:config") {
		t.Errorf("the log does not say where the config comes from:\n%s", ts.log.String())
	}
}
