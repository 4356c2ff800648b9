package serve

import (
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/hashbang/stack/internal/policy"
	"github.com/hashbang/stack/internal/policy/policytest"
)

// signedRepo is a work repository whose commits are written by hand,
// signed with fabricated FIDO keys or ssh-keygen keys.
type signedRepo struct {
	t    *testing.T
	d    *daemon
	dir  string
	when int64
}

// commit writes a commit on parent (none if "") whose tree is parent's with
// files (path → content) changed, signed by key (unsigned if nil).
func (r *signedRepo) commit(parent string, key *policytest.Key, msg string, files ...string) string {
	r.t.Helper()
	index := filepath.Join(r.d.dir, "index.tmp")
	os.Remove(index)
	git := func(stdin string, args ...string) string {
		r.t.Helper()
		cmd := []string{"-c", "core.hooksPath=/dev/null"}
		out, err := r.d.runIn(r.dir, []string{"GIT_INDEX_FILE=" + index}, stdin, "git", append(cmd, args...)...)
		if err != nil {
			r.t.Fatalf("git %v: %v\n%s", args, err, out)
		}
		return strings.TrimSpace(out)
	}
	if parent != "" {
		git("", "read-tree", parent)
	}
	for i := 0; i+1 < len(files); i += 2 {
		oid := git(files[i+1], "hash-object", "-w", "--stdin")
		git("", "update-index", "--add", "--cacheinfo", "100644,"+oid+","+files[i])
	}
	tree := git("", "write-tree")
	r.when += 60
	var b strings.Builder
	fmt.Fprintf(&b, "tree %s\n", tree)
	if parent != "" {
		fmt.Fprintf(&b, "parent %s\n", parent)
	}
	fmt.Fprintf(&b, "author Test <test@example.org> %d +0000\ncommitter Test <test@example.org> %d +0000\n\n%s\n", r.when, r.when, msg)
	raw := policytest.SignCommit(r.t, []byte(b.String()), key)
	return git(string(raw), "hash-object", "-t", "commit", "-w", "--stdin")
}

// push pushes refspecs to the served repository and returns the output and
// whether git accepted the push.
func (r *signedRepo) push(refspecs ...string) (string, bool) {
	out, err := r.d.run("admin", r.dir, "git", append([]string{"push", "origin"}, refspecs...)...)
	return out, err == nil
}

// TestServePolicy pushes to the protected production branch through a real
// stack serve: every kind of bad commit is rejected with its reason and the
// ref stays; a commit signed by an admin's FIDO key with user presence is
// accepted and queues CI.
func TestServePolicy(t *testing.T) {
	d := newDaemon(t)
	d.createRepo("stack")
	// Logins stay those of the work tree's config/: production's lists
	// only the test's signing keys (TestConfigFromRef tests the default).
	d.args = []string{"--access-from", "off"}
	d.start()
	work := filepath.Join(d.dir, "work")
	d.git(d.dir, "init", "-q", "-b", "main", work)
	d.git(work, "remote", "add", "origin", d.url("stack"))
	r := &signedRepo{t: t, d: d, dir: work, when: time.Now().Unix() - 3600}

	alice := policytest.FIDO(t, "alice", policy.FlagUserPresence)
	carol := policytest.Software(t, t.TempDir(), "carol") // listed as admin, but software
	dave := policytest.FIDO(t, "dave", policy.FlagUserPresence)
	eve := policytest.FIDO(t, "eve", policy.FlagUserPresence) // nobody
	admins := policytest.SignersFile(alice, carol)
	const prod = "refs/heads/production"
	root := r.commit("", alice, "introduce admins",
		policy.AdminsFile, admins, policy.DevelopersFile, policytest.SignersFile(dave),
		"ci/pipelines.yaml", "pipelines:\n  deploy:\n    run: ci/deploy\n    on:\n      push: [\"refs/heads/production\"]\n")

	// Without a trust root, a protected push is refused, saying how to set one.
	out, ok := r.push(root + ":" + prod)
	if ok || !strings.Contains(out, "no trust root configured") || !strings.Contains(out, "stack repo trust stack COMMIT") {
		t.Fatalf("push without a trust root: ok=%v\n%s", ok, out)
	}
	// Unprotected refs take anything.
	if out, ok := r.push(root + ":refs/heads/main"); !ok {
		t.Fatalf("push to main: %s", out)
	}

	if out, err := d.stack("repo", "trust", "stack", root, "--key", alice.Fingerprint(), "--data", d.data); err != nil || !strings.Contains(out, "stack trusts "+root) {
		t.Fatalf("stack repo trust: %v\n%s", err, out)
	}
	if out, ok := r.push(root + ":" + prod); !ok {
		t.Fatalf("pushing the trust root: %s", out)
	}

	alice.Flags = 0 // the listed key, not touched
	noTouch := r.commit(root, alice, "no touch", "README", "e\n")
	alice.Flags = policy.FlagUserPresence
	cases := []struct{ name, commit, reason string }{
		{"unsigned", r.commit(root, nil, "unsigned", "README", "a\n"), "unsigned"},
		{"non-admin", r.commit(root, eve, "by eve", "README", "b\n"), "is not in config/admins of parent"},
		{"developer", r.commit(root, dave, "by dave", "README", "c\n"), "signed by developer dave"},
		{"software key", r.commit(root, carol, "by carol", "README", "d\n"), "carol's software key"},
		{"adds own signer", r.commit(root, eve, "eve adds herself", policy.AdminsFile, admins+"eve "+eve.Authorized()+"\n"), "is not in config/admins of parent"},
		{"no user presence", noTouch, "lacks the user-presence flag"},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			out, ok := r.push(tc.commit + ":" + prod)
			if ok {
				t.Fatalf("push accepted:\n%s", out)
			}
			line := "remote: " + prod + " " + tc.commit[:12]
			if !strings.Contains(out, line) || !strings.Contains(out, tc.reason) {
				t.Errorf("want %q ... %q in:\n%s", line, tc.reason, out)
			}
			if got := d.serverRev("stack", prod); got != root {
				t.Errorf("production moved to %s", got)
			}
		})
	}

	// Two bad commits on a good one: one line each, nothing moves.
	good := r.commit(root, alice, "good", "README", "good\n")
	bad1 := r.commit(good, nil, "bad one", "README", "bad1\n")
	bad2 := r.commit(bad1, carol, "bad two", "README", "bad2\n")
	out, ok = r.push(bad2 + ":" + prod)
	t.Logf("two bad commits:\n%s", out)
	if ok || strings.Count(out, "remote: "+prod) != 2 || !strings.Contains(out, bad1[:12]) || !strings.Contains(out, bad2[:12]) {
		t.Fatalf("two bad commits: ok=%v\n%s", ok, out)
	}
	if got := d.serverRev("stack", prod); got != root {
		t.Fatalf("production moved to %s", got)
	}

	// The properly signed commit is accepted and its pipeline queued.
	out, ok = r.push(good + ":" + prod)
	if !ok {
		t.Fatalf("good push refused:\n%s", out)
	}
	if got := d.serverRev("stack", prod); got != good {
		t.Fatalf("production at %s, want %s", got, good)
	}
	if !strings.Contains(out, "remote: ci: queued job") {
		t.Errorf("the accepted push queued no job:\n%s", out)
	}
}

// TestTrustRootErrors: bad trust roots are one clear line, and nothing is
// written.
func TestTrustRootErrors(t *testing.T) {
	d := newDaemon(t)
	d.createRepo("stack")
	for _, tc := range []struct {
		args []string
		want string
	}{
		{[]string{"stack", "main"}, "not a full commit id"},
		{[]string{"stack", "0123"}, "not a full commit id"},
		{[]string{"stack", strings.Repeat("a", 40), "--key", "MD5:aa"}, "want a SHA256:... fingerprint"},
		{[]string{"stack", strings.Repeat("a", 40), "--key", "SHA256:short"}, "not a SHA256 fingerprint"},
		{[]string{"nope", strings.Repeat("a", 40)}, "nope"},
		{[]string{"../etc", strings.Repeat("a", 40)}, "invalid repository name"},
		{[]string{"stack", "--key", "SHA256:x"}, "--key needs a COMMIT"},
	} {
		out, err := d.stack(append([]string{"repo", "trust", "--data", d.data}, tc.args...)...)
		if err == nil || !strings.Contains(out, tc.want) || strings.Count(strings.TrimSpace(out), "\n") != 0 {
			t.Errorf("repo trust %v: %v, want one line with %q:\n%s", tc.args, err, tc.want, out)
		}
	}
	out, err := d.stack("repo", "trust", "--data", d.data, "stack")
	if err != nil || !strings.Contains(out, "has no trust root") {
		t.Errorf("show without a root: %v\n%s", err, out)
	}
	id := strings.Repeat("AB", 20)
	if out, err := d.stack("repo", "trust", "--data", d.data, "stack", id); err == nil || !strings.Contains(out, "is in neither the served repository nor the clone at") {
		t.Fatalf("a commit nowhere to be checked: %v\n%s", err, out)
	}
	if out, err := d.stack("repo", "trust", "--data", d.data, "stack", id, "--allow-unsigned"); err != nil || !strings.Contains(out, "WARNING: ") {
		t.Fatalf("%v\n%s", err, out)
	}
	out, err = d.stack("repo", "trust", "--data", d.data, "stack", "-o", "json")
	if err != nil || !strings.Contains(out, strings.ToLower(id)) {
		t.Errorf("show: %v\n%s", err, out)
	}
}

// TestTrustRootMustBeSigned: stack repo trust refuses a root that the
// pre-receive hook would refuse (so every later push to a protected ref
// would fail), in one line saying why and how to fix it, and sets it only
// with --allow-unsigned, warning loudly. A full id not pushed yet is checked
// in the clone stack runs in.
func TestTrustRootMustBeSigned(t *testing.T) {
	d := newDaemon(t)
	d.createRepo("stack")
	served := &signedRepo{t: t, d: d, dir: filepath.Join(d.data, "git", "stack.git"), when: time.Now().Unix() - 3600}
	clone := filepath.Join(d.dir, "clone")
	d.git(d.dir, "init", "-q", "-b", "main", clone)
	local := &signedRepo{t: t, d: d, dir: clone, when: time.Now().Unix() - 3600}
	alice := policytest.FIDO(t, "alice", policy.FlagUserPresence)
	eve := policytest.FIDO(t, "eve", policy.FlagUserPresence)
	admins := policytest.SignersFile(alice)
	unsigned := served.commit("", nil, "unsigned root", policy.AdminsFile, admins)
	byEve := served.commit("", eve, "root by eve", policy.AdminsFile, admins)
	good := served.commit("", alice, "root by alice", policy.AdminsFile, admins)
	notPushed := local.commit("", alice, "root not pushed yet", policy.AdminsFile, admins)
	unsignedLocal := local.commit("", nil, "unsigned, not pushed", policy.AdminsFile, admins)

	trust := func(args ...string) (string, error) {
		return d.run("admin", d.dir, stackBin, append([]string{"repo", "trust", "--data", d.data, "stack", "-C", clone}, args...)...)
	}
	shown := func() string {
		out, err := trust("-o", "json")
		if err != nil {
			t.Fatalf("show: %v\n%s", err, out)
		}
		return out
	}
	for _, tc := range []struct {
		name   string
		args   []string
		reason string
	}{
		{"unsigned", []string{unsigned}, "unsigned"},
		{"unsigned by revision", []string{unsigned[:12]}, "unsigned"},
		{"signed by a key not in its config/admins", []string{byEve}, "not in its own config/admins"},
		{"not by the pinned key", []string{good, "--key", eve.Fingerprint()}, "not by the expected key"},
		{"unsigned in the clone", []string{unsignedLocal}, "unsigned"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			out, err := trust(tc.args...)
			t.Logf("%s", out)
			if err == nil || strings.Count(strings.TrimSpace(out), "\n") != 0 || !strings.Contains(out, tc.reason) ||
				!strings.Contains(out, "git commit -S --amend") || !strings.Contains(out, "config/admins") || !strings.Contains(out, "--allow-unsigned") {
				t.Errorf("%v: want one line refusing it for %q, with the fix:\n%s", err, tc.reason, out)
			}
			if got := shown(); strings.Contains(got, unsigned) || strings.Contains(got, byEve) || strings.Contains(got, good) {
				t.Errorf("a refused root was set: %s", got)
			}
		})
	}
	for _, tc := range []struct{ name, commit string }{
		{"signed by an admin of its own config/admins", good},
		{"not pushed yet, checked in the clone", notPushed},
	} {
		t.Run(tc.name, func(t *testing.T) {
			out, err := trust(tc.commit)
			if err != nil || !strings.Contains(out, "stack trusts "+tc.commit) || strings.Contains(out, "WARNING") {
				t.Fatalf("%v\n%s", err, out)
			}
		})
	}
	out, err := trust(unsigned, "--allow-unsigned")
	if err != nil || !strings.Contains(out, "WARNING: trust root "+unsigned) || !strings.Contains(out, "EVERY PUSH TO A PROTECTED REF IS REJECTED") || !strings.Contains(out, "stack trusts "+unsigned) {
		t.Fatalf("--allow-unsigned: %v\n%s", err, out)
	}
	if got := shown(); !strings.Contains(got, unsigned) {
		t.Errorf("--allow-unsigned did not set it: %s", got)
	}
	if out, err := trust("--allow-unsigned"); err == nil || !strings.Contains(out, "--allow-unsigned needs a COMMIT") {
		t.Errorf("--allow-unsigned without COMMIT: %v\n%s", err, out)
	}
}
