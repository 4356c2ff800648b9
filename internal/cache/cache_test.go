package cache

import (
	"errors"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"

	"github.com/opencontainers/go-digest"
)

func TestPutVerifies(t *testing.T) {
	s := &Store{Dir: t.TempDir()}
	good := []byte("content")
	d := digest.FromBytes(good)
	var seen int64
	if err := s.Put(strings.NewReader("content"), d, func(n int64) { seen = n }); err != nil {
		t.Fatal(err)
	}
	if seen != int64(len(good)) || !s.Has(d) {
		t.Fatalf("progress %d, has %v", seen, s.Has(d))
	}
	if err := s.Verify(d); err != nil {
		t.Fatal(err)
	}

	other := digest.FromBytes([]byte("other"))
	err := s.Put(strings.NewReader("tampered"), other, nil)
	var m *MismatchError
	if !errors.As(err, &m) || m.Want != other || m.Got != digest.FromBytes([]byte("tampered")) {
		t.Fatalf("Put of wrong content: %v", err)
	}
	if s.Has(other) {
		t.Error("mismatched content was published")
	}
	if tmp, _ := os.ReadDir(filepath.Join(s.Dir, "tmp")); len(tmp) != 0 {
		t.Errorf("left %d temporary entries", len(tmp))
	}

	if err := s.Verify(other); !IsNotExist(err) {
		t.Errorf("Verify of absent blob: %v", err)
	}
	os.Chmod(s.Path(d), 0o644)
	os.WriteFile(s.Path(d), []byte("changed"), 0o644)
	if err := s.Verify(d); !errors.As(err, &m) {
		t.Errorf("Verify of changed blob: %v", err)
	}
	if err := s.Put(strings.NewReader("x"), "sha256:short", nil); err == nil {
		t.Error("Put accepted an invalid digest")
	}
}

func TestTrackLFSWithoutGitLFS(t *testing.T) {
	git, err := exec.LookPath("git")
	if err != nil {
		t.Skip("git is not installed")
	}
	bin := t.TempDir()
	if err := os.Symlink(git, filepath.Join(bin, "git")); err != nil {
		t.Fatal(err)
	}
	t.Setenv("PATH", bin)
	root := t.TempDir()
	_, err = TrackLFS(root)
	if err == nil || !strings.Contains(err.Error(), "git-lfs is not installed") {
		t.Fatalf("TrackLFS without git-lfs: %v", err)
	}
	if _, err := os.Stat(filepath.Join(root, ".gitattributes")); !os.IsNotExist(err) {
		t.Error(".gitattributes written although git-lfs is missing")
	}
}

func TestTrackLFSKeepsAttributes(t *testing.T) {
	if exec.Command("git", "lfs", "version").Run() != nil {
		t.Skip("git-lfs is not installed")
	}
	root := t.TempDir()
	os.WriteFile(filepath.Join(root, ".gitattributes"), []byte("*.sh text eol=lf"), 0o644)
	if changed, err := TrackLFS(root); err != nil || !changed {
		t.Fatal(changed, err)
	}
	got, _ := os.ReadFile(filepath.Join(root, ".gitattributes"))
	if !strings.HasPrefix(string(got), "*.sh text eol=lf\n") || !strings.Contains(string(got), LFSPattern+"\n") {
		t.Errorf(".gitattributes:\n%s", got)
	}
}
