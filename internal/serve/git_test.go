package serve

import (
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"syscall"
	"testing"
	"time"
)

// TestServeGit clones and pushes over ssh:// through a real stack serve and
// checks that nothing but the git services is reachable.
func TestServeGit(t *testing.T) {
	d := newDaemon(t)
	d.createRepo("stack")
	d.start()

	for _, want := range []string{"registry  http://" + d.regAddr, "git       ssh://git@" + d.sshAddr, "host key SHA256:", "ci        runner on "} {
		if !strings.Contains(d.out.String(), want) {
			t.Errorf("start-up output lacks %q:\n%s", want, d.out.String())
		}
	}

	work := d.clone("stack")
	writeFile(t, filepath.Join(work, "README"), "hello\n")
	d.git(work, "add", "README")
	d.git(work, "commit", "-q", "-m", "first")
	head := d.git(work, "rev-parse", "HEAD")
	d.git(work, "push", "-q", "origin", "HEAD:refs/heads/main")
	if got := d.serverRev("stack", "refs/heads/main"); got != head {
		t.Fatalf("served main = %q, want %q", got, head)
	}
	// A developer clones it back.
	out, err := d.run("dev", d.dir, "git", "clone", "-q", d.url("stack"), filepath.Join(d.dir, "dev-clone"))
	if err != nil {
		t.Fatalf("developer clone: %v\n%s", err, out)
	}
	// ... but may not push (config/git.yaml absent: admins write).
	out, err = d.run("dev", filepath.Join(d.dir, "dev-clone"), "git", "push", "origin", "HEAD:refs/heads/dev")
	if err == nil || d.serverRev("stack", "refs/heads/dev") != "" {
		t.Errorf("developer push accepted:\n%s", out)
	}

	// An unknown key.
	out, err = d.run("stranger", d.dir, "git", "ls-remote", d.url("stack"))
	if err == nil || !strings.Contains(out, "Permission denied (publickey)") {
		t.Errorf("unknown key: %v\n%s", err, out)
	}

	// No shell, no other command, no path outside the repositories.
	marker := filepath.Join(d.dir, "pwned")
	host, port := splitHostPort(t, d.sshAddr)
	sshArgs := []string{"-F", "/dev/null", "-i", filepath.Join(d.keys, "admin"), "-o", "IdentitiesOnly=yes",
		"-o", "BatchMode=yes", "-o", "UserKnownHostsFile=" + filepath.Join(d.dir, "known_hosts"),
		"-o", "StrictHostKeyChecking=yes", "-p", port, "-T", "git@" + host}
	for _, tc := range []struct{ command, want string }{
		{"sh", `command "sh" is not allowed`},
		{"sh -c 'touch " + marker + "'", `is not allowed`},
		{"git-upload-pack ../../etc", `invalid repository path "../../etc"`},
		{"git-upload-pack '../../etc'", `invalid repository path "../../etc"`},
		{"git-receive-pack '/stack.git'; touch " + marker, "needs quoting"},
	} {
		out, err := d.run("admin", d.dir, "ssh", append(sshArgs, tc.command)...)
		if err == nil || !strings.Contains(out, tc.want) {
			t.Errorf("ssh %q: %v, want failure with %q:\n%s", tc.command, err, tc.want, out)
		}
	}
	if _, err := os.Stat(marker); err == nil {
		t.Error("a refused command had an effect")
	}
	if got := d.serverRev("stack", "refs/heads/main"); got != head {
		t.Errorf("served main moved to %q", got)
	}

	// SIGINT (Ctrl-C) stops it cleanly.
	d.cmd.Process.Signal(syscall.SIGINT)
	select {
	case <-d.done:
	case <-time.After(30 * time.Second):
		t.Fatal("stack serve did not stop within 30s of SIGINT")
	}
	if !d.cmd.ProcessState.Success() || !strings.Contains(d.out.String(), "stack serve stopped") {
		t.Errorf("SIGINT: exit %v\n%s", d.cmd.ProcessState, d.out.String())
	}
}

func splitHostPort(t *testing.T, addr string) (string, string) {
	i := strings.LastIndexByte(addr, ':')
	if i < 0 {
		t.Fatalf("bad address %q", addr)
	}
	return addr[:i], addr[i+1:]
}

// TestServePortTaken: a port in use is one line naming it and the flag.
func TestServePortTaken(t *testing.T) {
	d := newDaemon(t)
	for _, tc := range []struct{ flag, taken string }{
		{"--registry-addr", d.regAddr},
		{"--ssh-addr", d.sshAddr},
	} {
		l, err := netListen(tc.taken)
		if err != nil {
			t.Fatal(err)
		}
		cmd := exec.Command(stackBin, "serve", "-C", d.repo, "--data", d.data, "--registry-addr", d.regAddr, "--ssh-addr", d.sshAddr)
		cmd.Env = d.env("admin")
		out, err := cmd.CombinedOutput()
		l.Close()
		last := lastLine(string(out))
		if strings.Count(strings.TrimSpace(string(out)), "\n") != 0 {
			t.Errorf("%s taken: want one line, got:\n%s", tc.flag, out)
		}
		if err == nil || !strings.Contains(last, "port "+tc.taken+" is already in use") || !strings.Contains(last, tc.flag) {
			t.Errorf("%s taken: %v, last line %q\n%s", tc.flag, err, last, out)
		}
	}
	// A second daemon on the same data directory.
	d.start()
	cmd := exec.Command(stackBin, "serve", "-C", d.repo, "--data", d.data, "--registry-addr", freeAddr(t), "--ssh-addr", freeAddr(t))
	cmd.Env = d.env("admin")
	out, err := cmd.CombinedOutput()
	if last := lastLine(string(out)); err == nil || !strings.Contains(last, "another stack serve (pid") {
		t.Errorf("second daemon: %v, last line %q", err, last)
	}
}

func lastLine(s string) string {
	lines := strings.Split(strings.TrimSpace(s), "\n")
	return lines[len(lines)-1]
}
