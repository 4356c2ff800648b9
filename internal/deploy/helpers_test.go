package deploy

import (
	"os/exec"
	"path/filepath"
	"testing"

	"github.com/opencontainers/go-digest"
)

func mustDigest(s string) digest.Digest {
	d, err := digest.Parse(s)
	if err != nil {
		panic(err)
	}
	return d
}

// newState makes an empty state repo: a bare repository whose HEAD is
// StateBranch, as stack serve creates them.
func newState(t testing.TB) *State {
	t.Helper()
	dir := filepath.Join(t.TempDir(), "state.git")
	if out, err := exec.Command("git", "init", "--quiet", "--bare", "--initial-branch=main", dir).CombinedOutput(); err != nil {
		t.Fatalf("git init: %v: %s", err, out)
	}
	s, err := OpenState(dir)
	if err != nil {
		t.Fatal(err)
	}
	return s
}
