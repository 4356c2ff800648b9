package gitserve

import (
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
)

// BenchmarkPush times a small `git push` over SSH end to end: ssh connect
// and auth, git-receive-pack, both hooks (run by re-executing the test
// binary), and the client's exit.
func BenchmarkPush(b *testing.B) {
	ts := startServer(b, "")
	work := filepath.Join(ts.dir, "work")
	ts.git(adminKey, ts.dir, "clone", "-q", ts.url("stack"), work)
	for i := 0; b.Loop(); i++ {
		b.StopTimer()
		ts.commit(work, "file", fmt.Sprintf("change %d\n", i))
		b.StartTimer()
		ts.git(adminKey, work, "push", "-q", "origin", "HEAD:refs/heads/main")
	}
}

// BenchmarkClone times a clone over SSH (protocol v2) of a repository with
// 500 commits touching 50 files.
func BenchmarkClone(b *testing.B) {
	ts := startServer(b, "")
	src := filepath.Join(ts.dir, "src")
	ts.git(adminKey, ts.dir, "init", "-q", "--initial-branch=main", src)
	var stream strings.Builder
	for i := 1; i <= 500; i++ {
		content := fmt.Sprintf("line %d\n%s", i, strings.Repeat("some text of a config file\n", 40))
		fmt.Fprintf(&stream, "blob\nmark :%d\ndata %d\n%s\n", i, len(content), content)
		msg := fmt.Sprintf("commit %d", i)
		fmt.Fprintf(&stream, "commit refs/heads/main\ncommitter Test <test@example.org> %d +0000\ndata %d\n%s\n", 1767225600+i, len(msg), msg)
		fmt.Fprintf(&stream, "M 100644 :%d file%d\n\n", i, i%50)
	}
	cmd := exec.Command("git", "fast-import", "--quiet")
	cmd.Dir = src
	cmd.Env = ts.env(adminKey)
	cmd.Stdin = strings.NewReader(stream.String())
	if out, err := cmd.CombinedOutput(); err != nil {
		b.Fatalf("fast-import: %v\n%s", err, out)
	}
	ts.git(adminKey, src, "push", "-q", ts.url("stack"), "main")
	n := 0
	for b.Loop() {
		n++
		dst := filepath.Join(ts.dir, fmt.Sprint("clone", n))
		ts.git(devKey, ts.dir, "-c", "protocol.version=2", "clone", "-q", "--bare", ts.url("stack"), dst)
		b.StopTimer()
		os.RemoveAll(dst)
		b.StartTimer()
	}
}

// BenchmarkLFS100MiB times moving one 100 MiB object over SSH: a push of
// it as an LFS object (git-lfs-transfer), a fresh clone that downloads it,
// and, to compare, a plain `git push` of the same bytes as a blob.
func BenchmarkLFS100MiB(b *testing.B) {
	if _, err := exec.LookPath("git-lfs"); err != nil {
		b.Skip("git-lfs is not installed")
	}
	big := make([]byte, 100<<20)
	for i := range big { // incompressible, like a built binary
		big[i] = byte(i*7919 ^ i>>13)
	}
	setup := func(b *testing.B, lfs bool) (*testServer, string) {
		ts := startServer(b, "")
		ts.git(adminKey, ts.dir, "lfs", "install")
		work := filepath.Join(ts.dir, "work")
		ts.git(adminKey, ts.dir, "clone", "-q", ts.url("stack"), work)
		if lfs {
			ts.git(adminKey, work, "lfs", "track", "*.bin")
		}
		os.WriteFile(filepath.Join(work, "big.bin"), big, 0o644)
		ts.git(adminKey, work, "add", ".")
		ts.git(adminKey, work, "commit", "-q", "-m", "big")
		return ts, work
	}
	for _, lfs := range []bool{true, false} {
		name := "git-push"
		if lfs {
			name = "lfs-push"
		}
		b.Run(name, func(b *testing.B) {
			b.SetBytes(int64(len(big)))
			for b.Loop() {
				b.StopTimer()
				ts, work := setup(b, lfs)
				b.StartTimer()
				ts.git(adminKey, work, "push", "-q", "origin", "HEAD:refs/heads/main")
				b.StopTimer()
				ts.stop()
				b.StartTimer()
			}
		})
	}
	b.Run("lfs-clone", func(b *testing.B) {
		b.SetBytes(int64(len(big)))
		ts, work := setup(b, true)
		ts.git(adminKey, work, "push", "-q", "origin", "HEAD:refs/heads/main")
		n := 0
		for b.Loop() {
			n++
			dst := filepath.Join(ts.dir, fmt.Sprint("clone", n))
			ts.git(devKey, ts.dir, "clone", "-q", ts.url("stack"), dst)
			b.StopTimer()
			os.RemoveAll(dst)
			b.StartTimer()
		}
	})
}
