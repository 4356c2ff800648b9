package gitserve

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"net"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"sync"
	"testing"
	"time"

	"golang.org/x/crypto/ssh"
)

// TestMain doubles as the stack executable of the hooks: repositories made
// by the tests run it as hooks/NAME (a link to it), which lands here.
func TestMain(m *testing.M) {
	if name, ok := HookArgs(os.Args); ok {
		err := RunHook(context.Background(), name, os.Stdin, os.Stderr, testHooks)
		if err != nil {
			if !errors.Is(err, ErrRejected) {
				fmt.Fprintln(os.Stderr, err)
			}
			os.Exit(1)
		}
		os.Exit(0)
	}
	code := m.Run()
	if keysDir != "" {
		os.RemoveAll(keysDir)
	}
	os.Exit(code)
}

// forbiddenRef is refused by the tests' pre-receive hook.
const forbiddenRef = "refs/heads/forbidden"

// hookRecord is what the tests' hooks append to DATA/hooks.log.
type hookRecord struct {
	Hook    string
	Env     HookEnv
	Updates []RefUpdate
}

var testHooks = Hooks{
	PreReceive: func(ctx context.Context, env HookEnv, updates []RefUpdate, stderr io.Writer) error {
		record(env, "pre-receive", updates)
		for _, u := range updates {
			if u.Ref == forbiddenRef {
				return errors.New("policy: pushes to forbidden are refused\npolicy: second line of the reason")
			}
		}
		return nil
	},
	PostReceive: func(ctx context.Context, env HookEnv, updates []RefUpdate, stderr io.Writer) {
		record(env, "post-receive", updates)
		fmt.Fprintln(stderr, "post-receive saw", len(updates), "updates")
	},
}

func record(env HookEnv, hook string, updates []RefUpdate) {
	f, err := os.OpenFile(filepath.Join(env.DataDir, "hooks.log"), os.O_APPEND|os.O_CREATE|os.O_WRONLY, 0o644)
	if err != nil {
		panic(err)
	}
	defer f.Close()
	json.NewEncoder(f).Encode(hookRecord{hook, env, updates})
}

func readHookLog(t testing.TB, dataDir string) []hookRecord {
	t.Helper()
	data, err := os.ReadFile(filepath.Join(dataDir, "hooks.log"))
	if errors.Is(err, os.ErrNotExist) {
		return nil
	}
	if err != nil {
		t.Fatal(err)
	}
	var out []hookRecord
	dec := json.NewDecoder(bytes.NewReader(data))
	for {
		var r hookRecord
		if err := dec.Decode(&r); err == io.EOF {
			return out
		} else if err != nil {
			t.Fatal(err)
		}
		out = append(out, r)
	}
}

// Keys made once with ssh-keygen for all tests.
var (
	keysOnce sync.Once
	keysDir  string
	keysErr  error
)

const (
	adminKey    = "admin"
	devKey      = "dev"
	strangerKey = "stranger"
)

func testKeys(t testing.TB) string {
	t.Helper()
	keysOnce.Do(func() {
		keysDir, keysErr = os.MkdirTemp("", "gitserve-keys-")
		if keysErr != nil {
			return
		}
		for _, k := range []string{adminKey, devKey, strangerKey} {
			out, err := exec.Command("ssh-keygen", "-q", "-t", "ed25519", "-N", "", "-C", k, "-f", filepath.Join(keysDir, k)).CombinedOutput()
			if err != nil {
				keysErr = fmt.Errorf("ssh-keygen: %v: %s", err, out)
				return
			}
		}
	})
	if keysErr != nil {
		t.Fatal(keysErr)
	}
	return keysDir
}

func pubKey(t testing.TB, name string) string {
	t.Helper()
	data, err := os.ReadFile(filepath.Join(testKeys(t), name+".pub"))
	if err != nil {
		t.Fatal(err)
	}
	return strings.TrimSpace(string(data))
}

// syncBuffer collects the server's log.
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

// testServer is a running Server with admin@example.org in config/admins and
// dev@example.org in config/developers, and a repository "stack".
type testServer struct {
	t         testing.TB
	srv       *Server
	dir       string
	data      string
	config    string
	home      string
	port      string
	knownHost string
	log       *syncBuffer
	cancel    context.CancelFunc
	done      chan error
	stopOnce  sync.Once
}

func startServer(t testing.TB, gitYAML string) *testServer {
	t.Helper()
	return startServerWith(t, gitYAML, nil)
}

// startServerWith is startServer with edit applied to the server's Config.
func startServerWith(t testing.TB, gitYAML string, edit func(*Config)) *testServer {
	t.Helper()
	keys := testKeys(t)
	_ = keys
	dir := t.TempDir()
	ts := &testServer{t: t, dir: dir, data: filepath.Join(dir, "data"), config: filepath.Join(dir, "config"), home: filepath.Join(dir, "home"), log: &syncBuffer{}}
	for _, d := range []string{ts.config, ts.home} {
		if err := os.MkdirAll(d, 0o755); err != nil {
			t.Fatal(err)
		}
	}
	writeFile(t, filepath.Join(ts.config, "admins"), "# admins\nadmin@example.org "+pubKey(t, adminKey)+"\n")
	writeFile(t, filepath.Join(ts.config, "developers"), "dev@example.org namespaces=\"git\" "+pubKey(t, devKey)+"\n")
	if gitYAML != "" {
		writeFile(t, filepath.Join(ts.config, AccessFile), gitYAML)
	}
	if _, err := Create(ts.data, "stack"); err != nil {
		t.Fatal(err)
	}
	cfg := Config{
		DataDir:         ts.data,
		ConfigDir:       ts.config,
		Logger:          slog.New(slog.NewTextHandler(ts.log, &slog.HandlerOptions{Level: slog.LevelDebug})),
		ShutdownTimeout: 2 * time.Second,
	}
	if edit != nil {
		edit(&cfg)
	}
	srv, err := New(cfg)
	if err != nil {
		t.Fatal(err)
	}
	ts.srv = srv
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	_, ts.port, _ = net.SplitHostPort(l.Addr().String())
	ts.knownHost = filepath.Join(dir, "known_hosts")
	writeFile(t, ts.knownHost, "[127.0.0.1]:"+ts.port+" "+string(ssh.MarshalAuthorizedKey(srv.HostKey())))
	ctx, cancel := context.WithCancel(context.Background())
	ts.cancel = cancel
	ts.done = make(chan error, 1)
	go func() { ts.done <- srv.Serve(ctx, l) }()
	t.Cleanup(func() {
		ts.stop()
		if t.Failed() {
			t.Logf("server log:\n%s", ts.log.String())
		}
	})
	return ts
}

// stop shuts the server down and waits for Serve to return.
func (ts *testServer) stop() {
	ts.stopOnce.Do(func() {
		ts.cancel()
		select {
		case err := <-ts.done:
			if err != nil {
				ts.t.Errorf("Serve: %v", err)
			}
		case <-time.After(20 * time.Second):
			ts.t.Error("server did not stop within 20s")
		}
	})
}

func writeFile(t testing.TB, path, content string) {
	t.Helper()
	if err := os.WriteFile(path, []byte(content), 0o644); err != nil {
		t.Fatal(err)
	}
}

// sshCommand is the OpenSSH client command line for key.
func (ts *testServer) sshCommand(key string) []string {
	return []string{"ssh", "-F", "/dev/null",
		"-i", filepath.Join(testKeys(ts.t), key),
		"-o", "IdentitiesOnly=yes", "-o", "IdentityAgent=none", "-o", "BatchMode=yes",
		"-o", "UserKnownHostsFile=" + ts.knownHost, "-o", "StrictHostKeyChecking=yes",
		"-o", "ConnectTimeout=10",
		"-p", ts.port}
}

func (ts *testServer) env(key string) []string {
	return []string{
		"PATH=" + os.Getenv("PATH"),
		"HOME=" + ts.home,
		"LC_ALL=C",
		"GIT_CONFIG_NOSYSTEM=1",
		"GIT_SSH_COMMAND=" + strings.Join(ts.sshCommand(key), " "),
		"GIT_AUTHOR_NAME=Test", "GIT_AUTHOR_EMAIL=test@example.org",
		"GIT_COMMITTER_NAME=Test", "GIT_COMMITTER_EMAIL=test@example.org",
		"GIT_AUTHOR_DATE=2026-01-01T00:00:00Z", "GIT_COMMITTER_DATE=2026-01-01T00:00:00Z",
	}
}

// run runs a program as the client of key, bounded in time, and returns its
// combined output.
func (ts *testServer) run(key, dir string, extraEnv []string, name string, args ...string) (string, error) {
	ctx, cancel := context.WithTimeout(context.Background(), 60*time.Second)
	defer cancel()
	cmd := exec.CommandContext(ctx, name, args...)
	cmd.Dir = dir
	cmd.Env = append(ts.env(key), extraEnv...)
	out, err := cmd.CombinedOutput()
	return string(out), err
}

// git runs git as the client of key and fails the test on error.
func (ts *testServer) git(key, dir string, args ...string) string {
	ts.t.Helper()
	out, err := ts.run(key, dir, nil, "git", args...)
	if err != nil {
		ts.t.Fatalf("git %s: %v\n%s", strings.Join(args, " "), err, out)
	}
	return out
}

// ssh runs the OpenSSH client with key and the remote command, returning
// stdout+stderr and the exit status.
func (ts *testServer) ssh(key string, opts []string, remote ...string) (string, int) {
	ts.t.Helper()
	args := append(ts.sshCommand(key)[1:], opts...)
	args = append(args, "git@127.0.0.1")
	args = append(args, remote...)
	out, err := ts.run(key, ts.dir, nil, "ssh", args...)
	code := 0
	var ee *exec.ExitError
	if errors.As(err, &ee) {
		code = ee.ExitCode()
	} else if err != nil {
		ts.t.Fatal(err)
	}
	return out, code
}

func (ts *testServer) url(name string) string {
	return "ssh://git@127.0.0.1:" + ts.port + "/" + name + ".git"
}

// serverRev is the object a ref of a served repository points to, "" if none.
func (ts *testServer) serverRev(repo, ref string) string {
	ts.t.Helper()
	out, err := exec.Command("git", "--git-dir", filepath.Join(RepoRoot(ts.data), repo+".git"), "rev-parse", "-q", "--verify", ref).Output()
	if err != nil {
		return ""
	}
	return strings.TrimSpace(string(out))
}

// commit makes a commit in the working tree dir changing file.
// cloneAndPush clones the stack repository into DIR/work as the admin,
// commits a file and pushes it to main; it returns the work tree and the
// commit.
func (ts *testServer) cloneAndPush() (work, commit string) {
	ts.t.Helper()
	work = filepath.Join(ts.dir, "work")
	ts.git(adminKey, ts.dir, "clone", "-q", ts.url("stack"), work)
	commit = ts.commit(work, "a", "1\n")
	ts.git(adminKey, work, "push", "-q", "origin", "HEAD:refs/heads/main")
	return work, commit
}

func (ts *testServer) commit(dir, file, content string) string {
	ts.t.Helper()
	writeFile(ts.t, filepath.Join(dir, file), content)
	ts.git(adminKey, dir, "add", file)
	ts.git(adminKey, dir, "commit", "-q", "-m", "change "+file)
	return strings.TrimSpace(ts.git(adminKey, dir, "rev-parse", "HEAD"))
}
