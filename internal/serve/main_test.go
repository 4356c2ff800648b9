package serve

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"net"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"

	"github.com/hashbang/stack/internal/ci"
	"github.com/hashbang/stack/internal/gitserve"
)

// stackBin is the real stack executable, built once for all tests.
var stackBin string

func TestMain(m *testing.M) {
	dir, err := os.MkdirTemp("", "serve-test-")
	if err != nil {
		fmt.Fprintln(os.Stderr, err)
		os.Exit(1)
	}
	stackBin = filepath.Join(dir, "stack")
	build := exec.Command("go", "build", "-o", stackBin, "../../cmd/stack")
	if out, err := build.CombinedOutput(); err != nil {
		fmt.Fprintf(os.Stderr, "build stack: %v\n%s", err, out)
		os.RemoveAll(dir)
		os.Exit(1)
	}
	code := m.Run()
	os.RemoveAll(dir)
	os.Exit(code)
}

// syncBuffer collects a process's output while it runs.
type syncBuffer struct {
	mu  sync.Mutex
	buf bytes.Buffer
}

func (b *syncBuffer) Write(p []byte) (int, error) {
	b.mu.Lock()
	defer b.mu.Unlock()
	return b.buf.Write(p)
}

func (b *syncBuffer) String() string {
	b.mu.Lock()
	defer b.mu.Unlock()
	return b.buf.String()
}

// daemon is a `stack serve` child process with its own stack repository
// (whose config/ lists the login keys), data directory and HOME.
type daemon struct {
	t       testing.TB
	dir     string
	repo    string // the stack repository: config/
	data    string
	home    string
	keys    string // ssh keys: admin, dev, stranger
	regAddr string
	sshAddr string
	webAddr string
	// wrap, if set, is put before the stack command line (unshare ...);
	// args are added to stack serve's.
	wrap, args []string

	cmd  *exec.Cmd
	out  *syncBuffer
	done chan struct{}
}

func newDaemon(t testing.TB) *daemon {
	t.Helper()
	dir := t.TempDir()
	d := &daemon{t: t, dir: dir,
		repo: filepath.Join(dir, "repo"), data: filepath.Join(dir, "data"),
		home: filepath.Join(dir, "home"), keys: filepath.Join(dir, "keys")}
	for _, p := range []string{filepath.Join(d.repo, "config"), d.home, d.keys} {
		if err := os.MkdirAll(p, 0o755); err != nil {
			t.Fatal(err)
		}
	}
	for _, k := range []string{"admin", "dev", "stranger"} {
		if out, err := exec.Command("ssh-keygen", "-q", "-t", "ed25519", "-N", "", "-C", k, "-f", filepath.Join(d.keys, k)).CombinedOutput(); err != nil {
			t.Fatalf("ssh-keygen: %v: %s", err, out)
		}
	}
	writeFile(t, filepath.Join(d.repo, "config", "sources.yaml"), "sources: []\n")
	writeFile(t, filepath.Join(d.repo, "config", "admins"), "admin@example.org "+readFile(t, filepath.Join(d.keys, "admin.pub")))
	writeFile(t, filepath.Join(d.repo, "config", "developers"), "dev@example.org "+readFile(t, filepath.Join(d.keys, "dev.pub")))
	d.regAddr, d.sshAddr, d.webAddr = freeAddr(t), freeAddr(t), freeAddr(t)
	return d
}

func writeFile(t testing.TB, path, content string) {
	t.Helper()
	if err := os.MkdirAll(filepath.Dir(path), 0o755); err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(path, []byte(content), 0o644); err != nil {
		t.Fatal(err)
	}
}

func readFile(t testing.TB, path string) string {
	t.Helper()
	b, err := os.ReadFile(path)
	if err != nil {
		t.Fatal(err)
	}
	return string(b)
}

// freeAddr is a loopback address with a port nobody listens on now.
func freeAddr(t testing.TB) string {
	t.Helper()
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer l.Close()
	return l.Addr().String()
}

// env is the environment of every process a test runs.
func (d *daemon) env(key string) []string {
	ssh := []string{"ssh", "-F", "/dev/null", "-i", filepath.Join(d.keys, key),
		"-o", "IdentitiesOnly=yes", "-o", "IdentityAgent=none", "-o", "BatchMode=yes",
		"-o", "UserKnownHostsFile=" + filepath.Join(d.dir, "known_hosts"), "-o", "StrictHostKeyChecking=yes",
		"-o", "ConnectTimeout=10"}
	return []string{
		"PATH=" + os.Getenv("PATH"), "HOME=" + d.home, "LC_ALL=C",
		"GIT_CONFIG_NOSYSTEM=1",
		"GIT_SSH_COMMAND=" + strings.Join(ssh, " "),
		"GIT_AUTHOR_NAME=Test", "GIT_AUTHOR_EMAIL=test@example.org",
		"GIT_COMMITTER_NAME=Test", "GIT_COMMITTER_EMAIL=test@example.org",
	}
}

// start runs `stack serve` and waits until it says it is ready.
func (d *daemon) start() {
	d.t.Helper()
	args := append(append([]string{}, d.wrap...), stackBin, "serve", "-C", d.repo, "--data", d.data,
		"--registry-addr", d.regAddr, "--ssh-addr", d.sshAddr, "--web-addr", d.webAddr)
	args = append(args, d.args...)
	d.cmd = exec.Command(args[0], args[1:]...)
	d.cmd.Env = d.env("admin")
	d.out = &syncBuffer{}
	d.cmd.Stdout, d.cmd.Stderr = d.out, d.out
	if err := d.cmd.Start(); err != nil {
		d.t.Fatal(err)
	}
	d.done = make(chan struct{})
	go func() { d.cmd.Wait(); close(d.done) }()
	d.t.Cleanup(func() {
		d.stop()
		if d.t.Failed() {
			d.t.Logf("stack serve output:\n%s", d.out.String())
		}
	})
	deadline := time.Now().Add(30 * time.Second)
	for !strings.Contains(d.out.String(), "ready;") {
		select {
		case <-d.done:
			d.t.Fatalf("stack serve exited: %v\n%s", d.cmd.ProcessState, d.out.String())
		case <-time.After(20 * time.Millisecond):
		}
		if time.Now().After(deadline) {
			d.t.Fatalf("stack serve not ready after 30s:\n%s", d.out.String())
		}
	}
	host, port, _ := net.SplitHostPort(d.sshAddr)
	pub := readFile(d.t, gitserve.HostKeyPath(d.data)+".pub")
	writeFile(d.t, filepath.Join(d.dir, "known_hosts"), "["+host+"]:"+port+" "+pub)
}

// stop sends SIGTERM and waits for the daemon to exit; it fails the test if
// it does not exit cleanly within 30s.
func (d *daemon) stop() {
	if d.cmd == nil {
		return
	}
	select {
	case <-d.done:
		return
	default:
	}
	d.cmd.Process.Signal(syscall.SIGTERM)
	select {
	case <-d.done:
		if !d.cmd.ProcessState.Success() {
			d.t.Errorf("stack serve exited with %v after SIGTERM", d.cmd.ProcessState)
		}
	case <-time.After(30 * time.Second):
		d.cmd.Process.Kill()
		<-d.done
		d.t.Error("stack serve did not stop within 30s of SIGTERM")
	}
}

// kill SIGKILLs the daemon and waits for it.
func (d *daemon) kill() {
	d.cmd.Process.Kill()
	<-d.done
}

// run runs a program as a client with key, bounded in time.
func (d *daemon) run(key, dir string, name string, args ...string) (string, error) {
	ctx, cancel := context.WithTimeout(context.Background(), 60*time.Second)
	defer cancel()
	cmd := exec.CommandContext(ctx, name, args...)
	cmd.Dir = dir
	cmd.Env = d.env(key)
	out, err := cmd.CombinedOutput()
	return string(out), err
}

// runIn runs a program with extra environment and stdin, bounded in time.
func (d *daemon) runIn(dir string, extraEnv []string, stdin, name string, args ...string) (string, error) {
	ctx, cancel := context.WithTimeout(context.Background(), 60*time.Second)
	defer cancel()
	cmd := exec.CommandContext(ctx, name, args...)
	cmd.Dir = dir
	cmd.Env = append(d.env("admin"), extraEnv...)
	cmd.Stdin = strings.NewReader(stdin)
	var stderr bytes.Buffer
	cmd.Stderr = &stderr
	out, err := cmd.Output()
	if err != nil {
		return string(out) + stderr.String(), err
	}
	return string(out), nil
}

// git runs git as the admin and fails the test on error.
func (d *daemon) git(dir string, args ...string) string {
	d.t.Helper()
	out, err := d.run("admin", dir, "git", args...)
	if err != nil {
		d.t.Fatalf("git %s: %v\n%s", strings.Join(args, " "), err, out)
	}
	return strings.TrimSpace(out)
}

// stack runs the stack command on the daemon's repository and data.
func (d *daemon) stack(args ...string) (string, error) {
	return d.run("admin", d.dir, stackBin, append(args, "-C", d.repo)...)
}

func (d *daemon) url(name string) string {
	return "ssh://git@" + d.sshAddr + "/" + name + ".git"
}

// createRepo makes a served repository with `stack repo create`.
func (d *daemon) createRepo(name string) {
	d.t.Helper()
	if out, err := d.stack("repo", "create", name, "--data", d.data); err != nil {
		d.t.Fatalf("stack repo create: %v\n%s", err, out)
	}
}

// clone clones a served repository into a new work tree.
func (d *daemon) clone(name string) string {
	d.t.Helper()
	work := filepath.Join(d.dir, "work-"+strings.ReplaceAll(name, "/", "-"))
	d.git(d.dir, "clone", "-q", d.url(name), work)
	return work
}

// serverRev is what ref points to in the served repository, "" if nothing.
func (d *daemon) serverRev(name, ref string) string {
	out, err := exec.Command("git", "--git-dir", filepath.Join(gitserve.RepoRoot(d.data), name+".git"), "rev-parse", "-q", "--verify", ref).Output()
	if err != nil {
		return ""
	}
	return strings.TrimSpace(string(out))
}

// waitJobs polls the CI jobs until ok says they are as wanted.
func (d *daemon) waitJobs(what string, timeout time.Duration, ok func([]*ci.Job) bool) []*ci.Job {
	d.t.Helper()
	deadline := time.Now().Add(timeout)
	for {
		jobs, err := ci.List(d.data)
		if err == nil && ok(jobs) {
			return jobs
		}
		if time.Now().After(deadline) {
			var b strings.Builder
			for _, j := range jobs {
				fmt.Fprintf(&b, "  %s %s %s %s %s\n", j.ID, j.Pipeline, j.Ref, j.State, j.Error)
			}
			d.t.Fatalf("waiting for %s: %v; jobs:\n%s", what, err, b.String())
		}
		time.Sleep(50 * time.Millisecond)
	}
}

// alive reports whether the process pid exists and is not a zombie.
func alive(pid int) bool {
	if pid <= 0 {
		return false
	}
	data, err := os.ReadFile(fmt.Sprintf("/proc/%d/stat", pid))
	if errors.Is(err, os.ErrNotExist) {
		return false
	}
	if err != nil {
		return true
	}
	s := string(data)
	i := strings.LastIndexByte(s, ')')
	return i < 0 || i+2 >= len(s) || s[i+2] != 'Z'
}

func netListen(addr string) (net.Listener, error) { return net.Listen("tcp", addr) }
