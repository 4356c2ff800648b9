package main

import (
	"encoding/json"
	"os"
	"os/exec"
	"path/filepath"
	"testing"

	"github.com/hashbang/stack/internal/image"
)

// stackBinary builds the stack program once per test run.
func stackBinary(t *testing.T) string {
	t.Helper()
	bin := filepath.Join(t.TempDir(), "stack")
	cmd := exec.Command("go", "build", "-o", bin, ".")
	if out, err := cmd.CombinedOutput(); err != nil {
		t.Fatalf("go build: %v\n%s", err, out)
	}
	return bin
}

// testCache is the cache shared by tests that need the pinned toolchain.
func testCache() string {
	if c := os.Getenv("STACK_TEST_CACHE"); c != "" {
		return c
	}
	return filepath.Join(os.TempDir(), "stack-test-cache")
}

// TestReproHealth builds the health image twice, in two copies of this
// repository at different paths, with other time zones and umasks and
// fresh build caches: the digests must agree with each other and with
// the committed images/images.lock.
func TestReproHealth(t *testing.T) {
	if testing.Short() {
		t.Skip("builds the health image twice with cold build caches")
	}
	bin := stackBinary(t)
	out, err := exec.Command(bin, "-C", repoRoot(t), "--cache", testCache(), "repro", "health", "-o", "json").Output()
	if err != nil {
		t.Fatalf("stack repro health: %v\n%s", err, out)
	}
	var res []image.ReproResult
	if err := json.Unmarshal(out, &res); err != nil {
		t.Fatal(err)
	}
	r := res[0]
	if !r.Same || r.Builds[0].Dir == r.Builds[1].Dir || r.Builds[0].TZ == r.Builds[1].TZ {
		t.Fatalf("repro: %+v", r)
	}
	if !r.MatchLock {
		t.Errorf("health builds as %s but images/images.lock says %s", r.Builds[0].Digest, r.Locked)
	}
}

// BenchmarkReproHealth reports the time of `stack repro health`: two
// builds of the image with cold build caches, and their comparison.
func BenchmarkReproHealth(b *testing.B) {
	bin := filepath.Join(b.TempDir(), "stack")
	if out, err := exec.Command("go", "build", "-o", bin, ".").CombinedOutput(); err != nil {
		b.Fatalf("go build: %v\n%s", err, out)
	}
	root, _ := filepath.Abs(filepath.Join("..", ".."))
	for b.Loop() {
		if out, err := exec.Command(bin, "-C", root, "--cache", testCache(), "repro", "health").CombinedOutput(); err != nil {
			b.Fatalf("stack repro health: %v\n%s", err, out)
		}
	}
}
