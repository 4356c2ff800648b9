package gitserve

import (
	"bytes"
	"errors"
	"io"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"syscall"
	"testing"
	"time"

	"golang.org/x/crypto/ssh"
)

func TestCloneAndPush(t *testing.T) {
	ts := startServer(t, "")
	work := filepath.Join(ts.dir, "work")
	ts.git(adminKey, ts.dir, "clone", "-q", ts.url("stack"), work)
	head := ts.commit(work, "README", "hello\n")
	out := ts.git(adminKey, work, "push", "origin", "HEAD:refs/heads/main")
	if !strings.Contains(out, "remote: post-receive saw 1 updates") {
		t.Errorf("push output lacks the post-receive line:\n%s", out)
	}
	if got := ts.serverRev("stack", "refs/heads/main"); got != head {
		t.Fatalf("server main = %q, want %q", got, head)
	}

	// The hooks got the update and who pushed it.
	var pre, post *hookRecord
	for _, r := range readHookLog(t, ts.data) {
		switch r.Hook {
		case "pre-receive":
			pre = &r
		case "post-receive":
			post = &r
		}
	}
	if pre == nil || post == nil {
		t.Fatalf("hooks did not both run: %+v", readHookLog(t, ts.data))
	}
	want := RefUpdate{Old: strings.Repeat("0", 40), New: head, Ref: "refs/heads/main"}
	for _, r := range []*hookRecord{pre, post} {
		if len(r.Updates) != 1 || r.Updates[0] != want {
			t.Errorf("%s updates = %+v, want [%+v]", r.Hook, r.Updates, want)
		}
		e := r.Env
		if e.Repo != "stack" || e.Pusher != "admin@example.org" || e.DataDir != ts.data || e.ConfigDir != ts.config ||
			e.Path != filepath.Join(RepoRoot(ts.data), "stack.git") {
			t.Errorf("%s env = %+v", r.Hook, e)
		}
	}

	// A developer fetches with protocol v2 and gets the same commit.
	clone := filepath.Join(ts.dir, "clone")
	out, err := ts.run(devKey, ts.dir, []string{"GIT_TRACE_PACKET=1"}, "git", "-c", "protocol.version=2", "clone", ts.url("stack"), clone)
	if err != nil {
		t.Fatalf("clone: %v\n%s", err, out)
	}
	if !strings.Contains(out, "< version 2") {
		t.Errorf("the server did not speak protocol v2:\n%s", out)
	}
	if got := strings.TrimSpace(ts.git(devKey, clone, "rev-parse", "HEAD")); got != head {
		t.Errorf("clone HEAD = %s, want %s", got, head)
	}
	// scp-like syntax sends the path without a leading slash.
	if out := ts.git(devKey, ts.dir, "ls-remote", "git@127.0.0.1:stack"); !strings.Contains(out, head+"\trefs/heads/main") {
		t.Errorf("ls-remote git@127.0.0.1:stack:\n%s", out)
	}
	// git archive --remote uses git-upload-archive.
	out, err = ts.run(devKey, ts.dir, nil, "git", "archive", "--remote="+ts.url("stack"), "--format=tar", "main", "README")
	if err != nil || !strings.Contains(out, "hello\n") {
		t.Errorf("git archive --remote: %v\n%s", err, out)
	}
	if !strings.Contains(ts.log.String(), "principal=admin@example.org command=git-receive-pack repo=stack exit=0") {
		t.Errorf("push not logged:\n%s", ts.log.String())
	}
}

func TestUnknownKey(t *testing.T) {
	ts := startServer(t, "")
	out, err := ts.run(strangerKey, ts.dir, nil, "git", "ls-remote", ts.url("stack"))
	if err == nil || !strings.Contains(out, "Permission denied (publickey)") {
		t.Fatalf("unknown key: err %v, output:\n%s", err, out)
	}
}

func TestRefusedCommands(t *testing.T) {
	ts := startServer(t, "")
	// A bare repository outside the root, reachable by a symbolic link.
	outside := filepath.Join(ts.dir, "outside.git")
	if out, err := exec.Command("git", "init", "-q", "--bare", outside).CombinedOutput(); err != nil {
		t.Fatalf("%v: %s", err, out)
	}
	if err := os.Symlink(outside, filepath.Join(RepoRoot(ts.data), "evil.git")); err != nil {
		t.Fatal(err)
	}
	marker := filepath.Join(ts.dir, "pwned")
	for _, tc := range []struct {
		command []string
		want    string
	}{
		{[]string{"sh"}, `command "sh" is not allowed`},
		{[]string{"ls"}, `command "ls" is not allowed`},
		{[]string{"touch " + marker}, `command "touch" is not allowed`},
		{[]string{"git-upload-pack ../../etc"}, `invalid repository path "../../etc"`},
		{[]string{"git-upload-pack '../../etc'"}, `invalid repository path "../../etc"`},
		{[]string{"git-upload-pack '/etc'"}, "repository etc does not exist"},
		{[]string{"git-upload-pack '" + outside + "'"}, "invalid repository path"},
		{[]string{"git-upload-pack '/stack.git'; touch " + marker}, "needs quoting"},
		{[]string{"git-upload-pack '/stack.git' '/stack.git'"}, "more than one argument"},
		{[]string{"git-upload-pack 'evil'"}, "through a symbolic link"},
		{[]string{"git-receive-pack '/evil.git'"}, "through a symbolic link"},
		{[]string{"git-upload-pack"}, "needs a repository argument"},
		{nil, "no interactive shell"},
	} {
		name := strings.Join(tc.command, " ")
		out, code := ts.ssh(adminKey, []string{"-T"}, tc.command...)
		if code == 0 || !strings.Contains(out, tc.want) {
			t.Errorf("ssh %q: exit %d, want non-zero and %q in:\n%s", name, code, tc.want, out)
		}
		if lines := strings.Count(strings.TrimSpace(out), "\n") + 1; lines != 1 {
			t.Errorf("ssh %q: want a one-line message, got %d lines:\n%s", name, lines, out)
		}
	}
	if _, err := os.Stat(marker); err == nil {
		t.Error("a refused command had an effect")
	}

	// A PTY is refused; OpenSSH gives up when a PTY it was told to get fails.
	for _, cmd := range [][]string{nil, {"git-upload-pack '/stack.git'"}} {
		out, code := ts.ssh(adminKey, []string{"-tt"}, cmd...)
		if code == 0 || !strings.Contains(out, "PTY allocation request failed") {
			t.Errorf("ssh -tt %q: exit %d:\n%s", cmd, code, out)
		}
	}
}

// TestRefusedRequests checks what the OpenSSH client cannot easily show:
// environment, port forwarding, subsystems and agent forwarding.
func TestRefusedRequests(t *testing.T) {
	ts := startServer(t, "")
	signer := loadSigner(t, adminKey)
	client, err := ssh.Dial("tcp", "127.0.0.1:"+ts.port, &ssh.ClientConfig{
		User:            "git",
		Auth:            []ssh.AuthMethod{ssh.PublicKeys(signer)},
		HostKeyCallback: ssh.FixedHostKey(ts.srv.HostKey()),
		Timeout:         10 * time.Second,
	})
	if err != nil {
		t.Fatal(err)
	}
	defer client.Close()

	if c, err := client.Dial("tcp", "127.0.0.1:"+ts.port); err == nil {
		c.Close()
		t.Error("local port forwarding was allowed")
	}
	if l, err := client.Listen("tcp", "127.0.0.1:0"); err == nil {
		l.Close()
		t.Error("remote port forwarding was allowed")
	}
	sess, err := client.NewSession()
	if err != nil {
		t.Fatal(err)
	}
	defer sess.Close()
	if err := sess.Setenv("LD_PRELOAD", "/tmp/x.so"); err == nil {
		t.Error("env LD_PRELOAD was accepted")
	}
	if err := sess.Setenv("GIT_PROTOCOL", "version=2"); err != nil {
		t.Errorf("env GIT_PROTOCOL refused: %v", err)
	}
	if err := sess.RequestPty("xterm", 24, 80, nil); err == nil {
		t.Error("pty accepted")
	}
	if err := sess.RequestSubsystem("sftp"); err == nil {
		t.Error("sftp subsystem accepted")
	}
	if ok, err := sess.SendRequest("auth-agent-req@openssh.com", true, nil); ok || err != nil {
		t.Errorf("agent forwarding: ok %v, err %v", ok, err)
	}
	// The session still serves a git command with protocol v2 passed through.
	var stdout bytes.Buffer
	sess.Stdout = &stdout
	sess.Stdin = strings.NewReader("0000")
	if err := sess.Run("git-upload-pack '/stack.git'"); err != nil {
		t.Fatalf("git-upload-pack: %v", err)
	}
	if !strings.HasPrefix(stdout.String(), "000eversion 2\n") {
		t.Errorf("git-upload-pack did not answer in protocol v2: %q", stdout.String())
	}
}

func loadSigner(t testing.TB, key string) ssh.Signer {
	t.Helper()
	data, err := os.ReadFile(filepath.Join(testKeys(t), key))
	if err != nil {
		t.Fatal(err)
	}
	s, err := ssh.ParsePrivateKey(data)
	if err != nil {
		t.Fatal(err)
	}
	return s
}

func TestPermissions(t *testing.T) {
	ts := startServer(t, `repos:
  "*":
    read: ["@developers", "@admins"]
    write: ["@admins"]
  secret:
    write: ["@admins"]
`)
	if _, err := Create(ts.data, "secret"); err != nil {
		t.Fatal(err)
	}
	work, first := ts.cloneAndPush()

	// A developer reads but cannot push.
	ts.git(devKey, ts.dir, "ls-remote", ts.url("stack"))
	ts.commit(work, "a", "2\n")
	out, err := ts.run(devKey, work, nil, "git", "push", "origin", "HEAD:refs/heads/main")
	if err == nil || !strings.Contains(out, "dev@example.org may not push to stack") {
		t.Errorf("developer push: err %v:\n%s", err, out)
	}
	if got := ts.serverRev("stack", "refs/heads/main"); got != first {
		t.Errorf("main moved to %s after a refused push", got)
	}
	// Nor read a repository only admins have.
	out, err = ts.run(devKey, ts.dir, nil, "git", "ls-remote", ts.url("secret"))
	if err == nil || !strings.Contains(out, "dev@example.org may not read secret") {
		t.Errorf("developer read of secret: err %v:\n%s", err, out)
	}
	ts.git(adminKey, ts.dir, "ls-remote", ts.url("secret"))

	// The config is reread: once developers may write, the push goes through.
	writeFile(t, filepath.Join(ts.config, AccessFile), "repos:\n  \"*\":\n    write: [\"@developers\", \"@admins\"]\n")
	ts.git(devKey, work, "push", "-q", "origin", "HEAD:refs/heads/main")
	// A broken config is logged and the last good one stays.
	writeFile(t, filepath.Join(ts.config, AccessFile), "repos:\n  \"*\":\n    writ: [\"@developers\"]\n")
	ts.git(devKey, ts.dir, "ls-remote", ts.url("stack"))
	if !strings.Contains(ts.log.String(), "config changed but is invalid") {
		t.Errorf("invalid config not logged:\n%s", ts.log.String())
	}
}

func TestPreReceiveRejects(t *testing.T) {
	ts := startServer(t, "")
	work, first := ts.cloneAndPush()
	ts.commit(work, "a", "2\n")

	out, err := ts.run(adminKey, work, nil, "git", "push", "origin", "HEAD:refs/heads/main", "HEAD:"+forbiddenRef)
	if err == nil {
		t.Fatalf("push passed the pre-receive hook:\n%s", out)
	}
	for _, want := range []string{"remote: policy: pushes to forbidden are refused", "remote: policy: second line of the reason", "pre-receive hook declined"} {
		if !strings.Contains(out, want) {
			t.Errorf("push output lacks %q:\n%s", want, out)
		}
	}
	if got := ts.serverRev("stack", "refs/heads/main"); got != first {
		t.Errorf("main moved to %s, want %s", got, first)
	}
	if got := ts.serverRev("stack", forbiddenRef); got != "" {
		t.Errorf("%s was created: %s", forbiddenRef, got)
	}
	for _, r := range readHookLog(t, ts.data) {
		if r.Hook == "post-receive" && len(r.Updates) == 2 {
			t.Errorf("post-receive ran for the rejected push: %+v", r)
		}
	}
}

func TestShutdownKillsLingeringCommands(t *testing.T) {
	ts := startServer(t, "")
	ts.srv.cfg.ShutdownTimeout = 200 * time.Millisecond
	client, err := ssh.Dial("tcp", "127.0.0.1:"+ts.port, &ssh.ClientConfig{
		User:            "git",
		Auth:            []ssh.AuthMethod{ssh.PublicKeys(loadSigner(t, adminKey))},
		HostKeyCallback: ssh.FixedHostKey(ts.srv.HostKey()),
		Timeout:         10 * time.Second,
	})
	if err != nil {
		t.Fatal(err)
	}
	defer client.Close()
	sess, err := client.NewSession()
	if err != nil {
		t.Fatal(err)
	}
	stdin, _ := sess.StdinPipe() // left open: receive-pack waits for commands
	defer stdin.Close()
	stdout, _ := sess.StdoutPipe()
	if err := sess.Start("git-receive-pack '/stack.git'"); err != nil {
		t.Fatal(err)
	}
	if _, err := io.ReadFull(stdout, make([]byte, 4)); err != nil { // the ref advertisement began
		t.Fatal(err)
	}
	ts.srv.mu.Lock()
	var pids []int
	for pid := range ts.srv.procs {
		pids = append(pids, pid)
	}
	ts.srv.mu.Unlock()
	if len(pids) != 1 {
		t.Fatalf("running commands = %v, want one", pids)
	}
	start := time.Now()
	ts.stop()
	if d := time.Since(start); d > 10*time.Second {
		t.Errorf("shutdown took %v", d)
	}
	if err := syscall.Kill(pids[0], 0); err != syscall.ESRCH {
		t.Errorf("git-receive-pack (pid %d) still exists after shutdown: %v", pids[0], err)
	}
	if err := sess.Wait(); err == nil {
		t.Error("the killed command reported success")
	}
	if !strings.Contains(ts.log.String(), "killing git command still running at shutdown") {
		t.Errorf("kill not logged:\n%s", ts.log.String())
	}
}

func TestShutdownWaitsForRunningCommands(t *testing.T) {
	ts := startServer(t, "")
	client, err := ssh.Dial("tcp", "127.0.0.1:"+ts.port, &ssh.ClientConfig{
		User:            "git",
		Auth:            []ssh.AuthMethod{ssh.PublicKeys(loadSigner(t, adminKey))},
		HostKeyCallback: ssh.FixedHostKey(ts.srv.HostKey()),
		Timeout:         10 * time.Second,
	})
	if err != nil {
		t.Fatal(err)
	}
	defer client.Close()
	sess, err := client.NewSession()
	if err != nil {
		t.Fatal(err)
	}
	stdin, _ := sess.StdinPipe()
	stdout, _ := sess.StdoutPipe()
	if err := sess.Start("git-upload-pack '/stack.git'"); err != nil {
		t.Fatal(err)
	}
	if _, err := io.ReadFull(stdout, make([]byte, 4)); err != nil {
		t.Fatal(err)
	}
	stopped := make(chan struct{})
	go func() { ts.stop(); close(stopped) }()
	time.Sleep(100 * time.Millisecond) // shutdown has begun and is waiting
	select {
	case <-stopped:
		t.Fatal("shutdown did not wait for the running command")
	default:
	}
	stdin.Write([]byte("0000")) // the client ends the conversation
	stdin.Close()
	go io.Copy(io.Discard, stdout)
	if err := sess.Wait(); err != nil {
		t.Errorf("command running at shutdown failed: %v", err)
	}
	<-stopped
	// New connections are refused once stopped.
	if _, err := ssh.Dial("tcp", "127.0.0.1:"+ts.port, &ssh.ClientConfig{User: "git", HostKeyCallback: ssh.InsecureIgnoreHostKey(), Timeout: time.Second}); err == nil {
		t.Error("connection accepted after shutdown")
	}
}

func TestCommandRefusedWhileShuttingDown(t *testing.T) {
	ts := startServer(t, "")
	client, err := ssh.Dial("tcp", "127.0.0.1:"+ts.port, &ssh.ClientConfig{
		User:            "git",
		Auth:            []ssh.AuthMethod{ssh.PublicKeys(loadSigner(t, adminKey))},
		HostKeyCallback: ssh.FixedHostKey(ts.srv.HostKey()),
		Timeout:         10 * time.Second,
	})
	if err != nil {
		t.Fatal(err)
	}
	defer client.Close()
	sess, err := client.NewSession()
	if err != nil {
		t.Fatal(err)
	}
	ts.srv.mu.Lock()
	ts.srv.closing = true // as shutdown does first
	ts.srv.mu.Unlock()
	var stderr bytes.Buffer
	sess.Stderr = &stderr
	err = sess.Run("git-upload-pack '/stack.git'")
	var ee *ssh.ExitError
	if !errors.As(err, &ee) || ee.ExitStatus() != 1 || !strings.Contains(stderr.String(), "shutting down") {
		t.Errorf("command during shutdown: %v, stderr %q", err, stderr.String())
	}
}

// TestRetiredKeyRefused checks that login honours valid-before and
// valid-after as the signature policy does: an admin key whose line in
// config/admins expired, or is not valid yet, does not log in, so it can
// neither push nor fetch. The client gets the usual publickey refusal; why
// is in the server's log only.
func TestRetiredKeyRefused(t *testing.T) {
	ts := startServer(t, "")
	work, first := ts.cloneAndPush()
	ts.commit(work, "a", "2\n")
	for _, tc := range []struct{ option, reason string }{
		{`valid-before="20200101Z"`, "admin@example.org's key expired at 2020-01-01T00:00:00Z"},
		{`valid-after="21000101Z"`, "admin@example.org's key is not valid before 2100-01-01T00:00:00Z"},
		{`namespaces="git",valid-after="20190101Z",valid-before="20200101Z"`, "admin@example.org's key expired at 2020-01-01T00:00:00Z"},
	} {
		writeFile(t, filepath.Join(ts.config, "admins"), "# admins\nadmin@example.org "+tc.option+" "+pubKey(t, adminKey)+"\n")
		for _, args := range [][]string{{"push", "origin", "HEAD:refs/heads/main"}, {"fetch", "origin"}} {
			out, err := ts.run(adminKey, work, nil, "git", args...)
			if err == nil || !strings.Contains(out, "Permission denied (publickey)") {
				t.Errorf("%s: git %s: err %v:\n%s", tc.option, args[0], err, out)
			}
			if strings.Contains(out, "valid") || strings.Contains(out, "expired") || strings.Contains(out, "config/admins") {
				t.Errorf("%s: git %s: the refusal tells the client why:\n%s", tc.option, args[0], out)
			}
		}
		if got := ts.serverRev("stack", "refs/heads/main"); got != first {
			t.Fatalf("%s: main moved to %s, want %s", tc.option, got, first)
		}
		if log := ts.log.String(); !strings.Contains(log, "login refused") || !strings.Contains(log, "config/admins:2: "+tc.reason) {
			t.Errorf("%s: refusal not logged with %q:\n%s", tc.option, tc.reason, log)
		}
	}
	// A developer still logs in; so does the admin once its line is valid.
	ts.git(devKey, ts.dir, "ls-remote", ts.url("stack"))
	writeFile(t, filepath.Join(ts.config, "admins"), `admin@example.org valid-after="20200101Z",valid-before="21000101Z" `+pubKey(t, adminKey)+"\n")
	ts.git(adminKey, work, "push", "-q", "origin", "HEAD:refs/heads/main")
	if got := ts.serverRev("stack", "refs/heads/main"); got == first {
		t.Error("push by the valid admin key did not move main")
	}
}
