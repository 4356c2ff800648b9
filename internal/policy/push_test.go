package policy

import (
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"testing"
)

// bareWithHook makes a bare repository whose pre-receive hook is this test
// binary running CheckPush with the given trust root.
func bareWithHook(t *testing.T, root string) string {
	t.Helper()
	bare := filepath.Join(t.TempDir(), "remote.git")
	run(t, t.TempDir(), nil, "git", "init", "-q", "--bare", bare)
	exe, err := os.Executable()
	if err != nil {
		t.Fatal(err)
	}
	hook := fmt.Sprintf("#!/bin/sh\nPOLICY_TEST_HOOK=1 POLICY_TEST_ROOT=%s exec %q\n", root, exe)
	if err := os.WriteFile(filepath.Join(bare, "hooks", "pre-receive"), []byte(hook), 0o755); err != nil {
		t.Fatal(err)
	}
	return bare
}

// push pushes refspecs from the work repository and returns git's output
// and whether the push was accepted.
func push(t *testing.T, w *world, bare string, refspecs ...string) (string, bool) {
	t.Helper()
	out, err := runErr(w.r.dir, nil, "git", append([]string{"push", "--porcelain", bare}, refspecs...)...)
	if err != nil {
		return err.Error() + out, false
	}
	return out, true
}

func refAt(t *testing.T, bare, ref string) string {
	out, _ := runErr(bare, nil, "git", "rev-parse", "-q", "--verify", ref)
	return out
}

// TestPushProtectedRef pushes to a real bare repository through git
// receive-pack and the pre-receive hook.
func TestPushProtectedRef(t *testing.T) {
	w := newWorld(t, "")
	bare := bareWithHook(t, w.root)
	const prod = "refs/heads/production"
	if out, ok := push(t, w, bare, w.root+":"+prod); !ok {
		t.Fatalf("pushing the trust root: %s", out)
	}

	withEve := w.files[AdminsFile] + "eve " + w.eve.authorized() + "\n"
	w.alice.flags = 0
	noTouch := w.on(w.root, w.alice, "no touch")
	w.alice.flags = FlagUserPresence
	cases := []struct {
		name, commit, reason string
	}{
		{"unsigned", w.on(w.root, nil, "unsigned"), "unsigned"},
		{"non-admin", w.on(w.root, w.eve, "by eve"), "is not in config/admins of parent"},
		{"developer", w.on(w.root, w.dave, "by dave"), "signed by developer dave"},
		{"software key", w.on(w.root, w.carol, "by carol"), "carol's software key"},
		{"adds own signer", w.on(w.root, w.eve, "eve adds herself", AdminsFile, withEve), "is not in config/admins of parent"},
		{"no user presence", noTouch, "lacks the user-presence flag"},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			out, ok := push(t, w, bare, tc.commit+":"+prod)
			if ok {
				t.Fatalf("push accepted: %s", out)
			}
			line := fmt.Sprintf("remote: %s %s", prod, short(tc.commit))
			if !strings.Contains(out, line) || !strings.Contains(out, tc.reason) {
				t.Errorf("want %q ... %q in:\n%s", line, tc.reason, out)
			}
			if got := refAt(t, bare, prod); got != w.root {
				t.Errorf("ref moved to %s", got)
			}
		})
	}

	// Several bad commits: one remote line each, and the ref stays.
	good := w.on(w.root, w.alice, "good")
	bad1 := w.on(good, nil, "bad one")
	bad2 := w.on(bad1, w.carol, "bad two")
	out, ok := push(t, w, bare, bad2+":"+prod)
	if ok || strings.Count(out, "remote: "+prod) != 2 || !strings.Contains(out, short(bad1)) || !strings.Contains(out, short(bad2)) {
		t.Fatalf("two bad commits: ok=%v\n%s", ok, out)
	}
	if got := refAt(t, bare, prod); got != w.root {
		t.Fatalf("ref moved to %s", got)
	}

	// A properly signed commit is accepted.
	if out, ok := push(t, w, bare, good+":"+prod); !ok {
		t.Fatalf("good push refused: %s", out)
	}
	if got := refAt(t, bare, prod); got != good {
		t.Fatalf("ref at %s, want %s", got, good)
	}

	// Rewinding or deleting the protected ref is refused.
	if out, ok := push(t, w, bare, "+"+w.root+":"+prod); ok || !strings.Contains(out, "not a fast-forward") {
		t.Errorf("rewind: ok=%v\n%s", ok, out)
	}
	if out, ok := push(t, w, bare, ":"+prod); ok || !strings.Contains(out, "cannot be deleted") {
		t.Errorf("delete: ok=%v\n%s", ok, out)
	}

	// A commit cannot unprotect its own ref by changing the policy.
	moved := w.on(good, w.eve, "move production elsewhere", PolicyFile, "environments:\n  production:\n    refs: [refs/heads/elsewhere]\n")
	if out, ok := push(t, w, bare, moved+":"+prod); ok || !strings.Contains(out, "is not in config/admins") {
		t.Errorf("unprotecting push: ok=%v\n%s", ok, out)
	}

	// A key past its valid-before cannot push commits dated before it.
	expiring := w.files[AdminsFile] + "frank valid-before=\"20240101Z\" " + w.eve.authorized() + "\n"
	byAlice := w.on(good, w.alice, "frank with an expiry", AdminsFile, expiring)
	w.files = withTree(w.files, AdminsFile, expiring)
	backdated := w.r.commit(commitOpts{parents: []string{byAlice}, files: w.files, msg: "backdated", key: w.eve, when: 1701000000})
	rep, err := w.v.VerifyRange(ctxT(t), Production, good, backdated)
	if err != nil || !rep.OK() {
		t.Fatalf("backdated commit should pass offline (as git judges it): %v %+v", err, rep)
	}
	if out, ok := push(t, w, bare, backdated+":"+prod); ok || !strings.Contains(out, "frank's key expired") {
		t.Errorf("backdated push: ok=%v\n%s", ok, out)
	}

	// History that does not grow from the root, and tags.
	orphan := w.r.commit(commitOpts{files: w.files, msg: "orphan", key: w.alice})
	if out, ok := push(t, w, bare, "+"+orphan+":"+prod); ok || !strings.Contains(out, "does not descend from the trust root") {
		t.Errorf("orphan push: ok=%v\n%s", ok, out)
	}

	// Unprotected refs take anything.
	if out, ok := push(t, w, bare, bad2+":refs/heads/feature"); !ok {
		t.Errorf("feature branch refused: %s", out)
	}
	if got := refAt(t, bare, prod); got != good {
		t.Fatalf("ref at %s, want %s", got, good)
	}
}

// TestPushApprovalsInSamePush pushes a commit and the approvals its quorum
// needs together.
func TestPushApprovalsInSamePush(t *testing.T) {
	w := newWorld(t, "environments:\n  production:\n    quorum: 2\n")
	bare := bareWithHook(t, w.root)
	const prod = "refs/heads/production"
	if out, ok := push(t, w, bare, w.root+":"+prod); !ok {
		t.Fatalf("pushing the trust root: %s", out)
	}
	c := w.on(w.root, w.alice, "needs bob")
	if out, ok := push(t, w, bare, c+":"+prod); ok || !strings.Contains(out, "needs 2 distinct signers, has 1") {
		t.Fatalf("without approval: ok=%v\n%s", ok, out)
	}
	if err := AddApproval(ctxT(t), w.r.dir, c, w.bob.approval(t, Statement{Kind: Approve, Commit: c, Env: Production})); err != nil {
		t.Fatal(err)
	}
	if out, ok := push(t, w, bare, c+":"+prod, ApprovalsRef+":"+ApprovalsRef); !ok {
		t.Fatalf("with approval: %s", out)
	}
	if got := refAt(t, bare, prod); got != c {
		t.Fatalf("ref at %s", got)
	}
}

func TestPushWithoutTrustRoot(t *testing.T) {
	w := newWorld(t, "")
	bare := bareWithHook(t, "")
	// The line names the commit by its subject, and says how to trust a root.
	out, ok := push(t, w, bare, w.root+":refs/heads/production")
	if want := "remote: refs/heads/production " + short(w.root) + ` "introduce admins": refs/heads/production is protected (production) but the server has no trust root configured`; ok ||
		!strings.Contains(out, want) || !strings.Contains(out, "stack repo trust") || strings.Contains(out, `""`) {
		t.Errorf("ok=%v, want a line with %q\n%s", ok, want, out)
	}
	if out, ok := push(t, w, bare, w.root+":refs/heads/main"); !ok {
		t.Errorf("unprotected ref refused: %s", out)
	}
}

func TestRejectionString(t *testing.T) {
	c := strings.Repeat("ab", 20)
	tests := []struct {
		r    Rejection
		want string
	}{
		{Rejection{Ref: "refs/heads/production", Commit: c, Subject: "fix: \"quotes\"", Reason: "unsigned"},
			`refs/heads/production abababababab "fix: \"quotes\"": unsigned`},
		{Rejection{Ref: "refs/tags/v1", Commit: c, Reason: "refs/tags/v1 is protected (production): it must point to a commit"},
			"refs/tags/v1 abababababab: refs/tags/v1 is protected (production): it must point to a commit"},
	}
	for _, tt := range tests {
		if got := tt.r.String(); got != tt.want {
			t.Errorf("got  %s\nwant %s", got, tt.want)
		}
	}
}

func TestPushProtectedTag(t *testing.T) {
	w := newWorld(t, "environments:\n  production:\n    refs: [refs/heads/production, refs/tags/v*]\n")
	bare := bareWithHook(t, w.root)
	good := w.on(w.root, w.alice, "good")
	bad := w.on(good, w.carol, "software")
	run(t, w.r.dir, nil, "git", "tag", "-a", "-m", "release", "v1", good)
	run(t, w.r.dir, nil, "git", "tag", "-a", "-m", "release", "v2", bad)
	if out, ok := push(t, w, bare, "refs/tags/v1"); !ok {
		t.Errorf("good tag refused: %s", out)
	}
	if out, ok := push(t, w, bare, "refs/tags/v2"); ok || !strings.Contains(out, "remote: refs/tags/v2 "+short(bad)) {
		t.Errorf("bad tag: ok=%v\n%s", ok, out)
	}
}
