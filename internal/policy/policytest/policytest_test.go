package policytest

import (
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"

	"github.com/hashbang/stack/internal/policy"
)

// TestSignCommitVerifies checks the fabricated signatures against the
// policy's verifier and against the real git verify-commit.
func TestSignCommitVerifies(t *testing.T) {
	dir := t.TempDir()
	git := func(stdin string, args ...string) string {
		t.Helper()
		cmd := exec.Command("git", args...)
		cmd.Dir = dir
		cmd.Env = append(os.Environ(), "GIT_CONFIG_GLOBAL=/dev/null", "GIT_CONFIG_NOSYSTEM=1")
		cmd.Stdin = strings.NewReader(stdin)
		out, err := cmd.CombinedOutput()
		if err != nil {
			t.Fatalf("git %v: %v\n%s", args, err, out)
		}
		return strings.TrimSpace(string(out))
	}
	git("", "init", "-q")
	tree := git("", "mktree")
	keys := []*Key{FIDO(t, "alice", policy.FlagUserPresence), Software(t, t.TempDir(), "carol")}
	signers := filepath.Join(dir, "allowed")
	if err := os.WriteFile(signers, []byte(SignersFile(keys...)), 0o644); err != nil {
		t.Fatal(err)
	}
	for _, k := range keys {
		raw := "tree " + tree + "\nauthor T <t@example.org> 1700000000 +0000\ncommitter T <t@example.org> 1700000000 +0000\n\nby " + k.Name + "\n"
		id := git(string(SignCommit(t, []byte(raw), k)), "hash-object", "-t", "commit", "-w", "--stdin")
		git("", "-c", "gpg.ssh.allowedSignersFile="+signers, "verify-commit", id)
		c, err := policy.ParseCommit(id, []byte(git("", "cat-file", "commit", id)+"\n"), 40)
		if err != nil {
			t.Fatal(err)
		}
		ss, err := policy.ParseSigners("allowed", []byte(SignersFile(keys...)))
		if err != nil {
			t.Fatal(err)
		}
		if _, _, err := policy.CheckSignature(c, ss); err != nil {
			t.Errorf("%s: %v", k.Name, err)
		}
	}
}
