package cache

import (
	"context"
	"errors"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"syscall"
	"testing"
	"time"

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
	if err := s.Verify(context.Background(), d); err != nil {
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

	if err := s.Verify(context.Background(), other); !IsNotExist(err) {
		t.Errorf("Verify of absent blob: %v", err)
	}
	os.Chmod(s.Path(d), 0o644)
	os.WriteFile(s.Path(d), []byte("changed"), 0o644)
	if err := s.Verify(context.Background(), d); !errors.As(err, &m) {
		t.Errorf("Verify of changed blob: %v", err)
	}
	if err := s.Put(strings.NewReader("x"), "sha256:short", nil); err == nil {
		t.Error("Put accepted an invalid digest")
	}
}

// TestNotRegular puts what could make a read hang or never end where a blob
// should be: every read refuses it, promptly, naming the path; Has says the
// blob is absent.
func TestNotRegular(t *testing.T) {
	ctx := context.Background()
	d := digest.FromBytes([]byte("content"))
	real := filepath.Join(t.TempDir(), "real")
	os.WriteFile(real, []byte("content"), 0o644)
	cases := []struct {
		name string
		make func(path string) error
		want string
	}{
		{"fifo", func(p string) error { return syscall.Mkfifo(p, 0o644) }, "a named pipe (FIFO)"},
		{"link to /dev/zero", func(p string) error { return os.Symlink("/dev/zero", p) }, "a symbolic link"},
		{"link to a fifo", func(p string) error {
			fifo := filepath.Join(t.TempDir(), "fifo")
			if err := syscall.Mkfifo(fifo, 0o644); err != nil {
				return err
			}
			return os.Symlink(fifo, p)
		}, "a symbolic link"},
		{"link to a good copy", func(p string) error { return os.Symlink(real, p) }, "a symbolic link"},
		{"directory", func(p string) error { return os.Mkdir(p, 0o755) }, "a directory"},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			s := &Store{Dir: t.TempDir()}
			p := s.Path(d)
			os.MkdirAll(filepath.Dir(p), 0o755)
			if err := tc.make(p); err != nil {
				t.Fatal(err)
			}
			other := &Store{Dir: t.TempDir()}
			for what, err := range map[string]error{
				"Verify":   within(t, func() error { return s.Verify(ctx, d) }),
				"CopyFrom": within(t, func() error { return other.CopyFrom(ctx, s, d) }),
			} {
				var nr *NotRegularError
				if !errors.As(err, &nr) || IsNotExist(err) || !strings.Contains(err.Error(), p+" is "+tc.want+", not a regular file") {
					t.Errorf("%s: %v, want it refused as %s", what, err, tc.want)
				}
			}
			if s.Has(d) || other.Has(d) {
				t.Error("Has reports a blob")
			}
		})
	}
	// PutFile takes files other programs wrote: links are followed, to
	// regular files only.
	s := &Store{Dir: t.TempDir()}
	dir := t.TempDir()
	os.Symlink(real, filepath.Join(dir, "link"))
	os.Symlink("/dev/zero", filepath.Join(dir, "zero"))
	syscall.Mkfifo(filepath.Join(dir, "fifo"), 0o644)
	if err := s.PutFile(ctx, filepath.Join(dir, "link"), d); err != nil || !s.Has(d) {
		t.Errorf("PutFile of a link to a file: %v", err)
	}
	for _, name := range []string{"zero", "fifo"} {
		err := within(t, func() error { return s.PutFile(ctx, filepath.Join(dir, name), digest.FromBytes(nil)) })
		if !strings.Contains(err.Error(), "not a regular file") {
			t.Errorf("PutFile of %s: %v", name, err)
		}
	}
}

// TestVerifyCancel stops the hashing of a blob when ctx is done.
func TestVerifyCancel(t *testing.T) {
	s := &Store{Dir: t.TempDir()}
	data := make([]byte, 1<<20)
	d := digest.FromBytes(data)
	if err := s.Put(strings.NewReader(string(data)), d, nil); err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithCancel(context.Background())
	cancel()
	if err := s.Verify(ctx, d); !errors.Is(err, context.Canceled) {
		t.Errorf("Verify after cancellation: %v", err)
	}
	if err := (&Store{Dir: t.TempDir()}).CopyFrom(ctx, s, d); !errors.Is(err, context.Canceled) {
		t.Errorf("CopyFrom after cancellation: %v", err)
	}
}

// within runs fn and returns its error; it fails the test if fn has not
// returned after a minute (it would hang forever on a FIFO or device read).
func within(t *testing.T, fn func() error) error {
	t.Helper()
	done := make(chan error, 1)
	go func() { done <- fn() }()
	select {
	case err := <-done:
		if err == nil {
			return errors.New("no error")
		}
		return err
	case <-time.After(time.Minute):
		t.Fatal("did not return: blocked on a read")
		return nil
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
