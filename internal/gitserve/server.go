package gitserve

import (
	"bytes"
	"context"
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
	"syscall"
	"time"

	"golang.org/x/crypto/ssh"
)

// OperatorPrincipal is who Config.OperatorKey logs in as.
const OperatorPrincipal = "operator"

// DefaultAddr is where the git server listens unless told otherwise.
const DefaultAddr = "127.0.0.1:2222"

// Config configures a Server.
type Config struct {
	// DataDir holds the host key (ssh/) and the repositories (git/).
	DataDir string
	// Addr is the address ListenAndServe listens on; DefaultAddr if empty.
	Addr string
	// ConfigDir is the stack repository's config directory: admins,
	// developers and git.yaml. It is reread when its files change.
	ConfigDir string
	// Logger receives connection and command logs; slog.Default() if nil.
	Logger *slog.Logger
	// Executable is the stack executable the repositories' hooks run;
	// os.Executable() if empty.
	Executable string
	// ShutdownTimeout is how long running git commands may take to finish
	// once the server stops before they are killed; 10s if zero.
	ShutdownTimeout time.Duration
	// ConfigFrom, when set, is where admins, developers and git.yaml are
	// read once it exists: config/ at a ref of a served repository
	// ("stack", "refs/heads/production"), which only pushes that passed the
	// signature policy move. ConfigDir serves until then.
	ConfigFrom *ConfigRef
	// HostKeyFile, when set, is the host key (an OpenSSH private key, not
	// readable by others: a Secret mounted for the server's group may be
	// group-readable), used instead of the one kept in DataDir. It must
	// exist: a given key is never generated.
	HostKeyFile string
	// OperatorKey, when set, logs in as principal "operator" in the admins
	// group, whatever the config directory lists: the key of whoever runs
	// this server, for a cluster's own server (development's, whose key
	// lives in a Secret of that cluster). It grants SSH access only:
	// signatures are judged by the commits' own config/admins.
	OperatorKey ssh.PublicKey
	// Commands are read-only commands offered beside git's, by their first
	// word (`ssh git@HOST ci list`): what the daemon composing this server
	// shows of itself. Each decides what the caller may see with
	// Session.CanRead.
	Commands map[string]CommandFunc
}

// CommandFunc runs one extra command of a session and returns its exit
// status.
type CommandFunc func(ctx context.Context, s *Session) int

// Session is what an extra command gets: who asks, the words after the
// command's name, where to write, and the access rules in force.
type Session struct {
	Identity Identity
	Args     []string
	Stdout   io.Writer
	Stderr   io.Writer
	access   *Access
}

// CanRead reports whether the caller may read repository name.
func (s *Session) CanRead(name string) bool { return s.access.Allowed(s.Identity, name, false) }

// Server is the SSH git server.
type Server struct {
	cfg     Config
	log     *slog.Logger
	policy  *policySource
	hostKey ssh.Signer
	ssh     *ssh.ServerConfig
	git     string // the git executable
	execDir string // git --exec-path: where git-upload-pack & co live

	mu       sync.Mutex
	addr     net.Addr
	closing  bool // no new connections or commands
	killed   bool // running commands were killed: start no more
	conns    map[net.Conn]struct{}
	procs    map[int]struct{} // process group ids of running git commands
	running  sync.WaitGroup   // sessions running a command, until their exit status is sent
	handlers sync.WaitGroup   // connection goroutines
	quit     chan struct{}    // closed when shutting down: ends extra commands
	quitOnce sync.Once
}

type identityKey struct{}

// New prepares a server: it makes the data directory, loads or generates the
// host key (logging its fingerprint), reads the config directory (which must
// parse) and rewrites the hooks of every repository to run cfg.Executable.
func New(cfg Config) (*Server, error) {
	if cfg.DataDir == "" {
		return nil, errors.New("gitserve: no data directory given")
	}
	if cfg.ConfigDir == "" {
		return nil, errors.New("gitserve: no config directory given (the stack repository's config/)")
	}
	var err error
	if cfg.DataDir, err = filepath.Abs(cfg.DataDir); err != nil {
		return nil, err
	}
	if cfg.ConfigDir, err = filepath.Abs(cfg.ConfigDir); err != nil {
		return nil, err
	}
	if cfg.Addr == "" {
		cfg.Addr = DefaultAddr
	}
	if cfg.Logger == nil {
		cfg.Logger = slog.Default()
	}
	if cfg.ShutdownTimeout == 0 {
		cfg.ShutdownTimeout = 10 * time.Second
	}
	if cfg.Executable == "" {
		if cfg.Executable, err = os.Executable(); err != nil {
			return nil, fmt.Errorf("find the stack executable for the hooks: %w", err)
		}
	}
	s := &Server{cfg: cfg, log: cfg.Logger, conns: map[net.Conn]struct{}{}, procs: map[int]struct{}{}, quit: make(chan struct{})}
	if s.git, err = exec.LookPath("git"); err != nil {
		return nil, errors.New("git not found in PATH: install git")
	}
	out, err := exec.Command(s.git, "--exec-path").Output()
	if err != nil {
		return nil, fmt.Errorf("git --exec-path: %w", err)
	}
	s.execDir = strings.TrimSpace(string(out))
	for _, prog := range []string{UploadPack, ReceivePack, UploadArchive} {
		if _, err := os.Stat(filepath.Join(s.execDir, prog)); err != nil {
			return nil, fmt.Errorf("%s not found in git's exec path %s: install git", prog, s.execDir)
		}
	}
	if err := os.MkdirAll(RepoRoot(cfg.DataDir), 0o700); err != nil {
		return nil, fmt.Errorf("data directory: %w", err)
	}
	if cfg.HostKeyFile != "" {
		s.hostKey, err = ReadHostKey(cfg.HostKeyFile)
	} else {
		s.hostKey, err = LoadHostKey(HostKeyPath(cfg.DataDir))
	}
	if err != nil {
		return nil, err
	}
	if cfg.ConfigFrom != nil {
		from := *cfg.ConfigFrom
		from.DataDir, from.git = cfg.DataDir, s.git
		cfg.ConfigFrom = &from
	}
	if s.policy, err = newPolicySource(cfg.ConfigDir, cfg.ConfigFrom, s.log); err != nil {
		return nil, err
	}
	if n := s.policy.current().Keys(); n == 0 && cfg.OperatorKey == nil {
		s.log.Warn("no keys in the config directory's admins or developers files: nobody can log in", "dir", cfg.ConfigDir)
	}
	repos, err := repoPaths(cfg.DataDir)
	if err != nil {
		return nil, err
	}
	for _, r := range repos {
		if err := InstallHooks(r.path, cfg.Executable); err != nil {
			return nil, fmt.Errorf("repository %s: %w", r.name, err)
		}
	}
	s.ssh = &ssh.ServerConfig{
		PublicKeyCallback: s.authenticate,
		ServerVersion:     "SSH-2.0-stack",
		MaxAuthTries:      6,
	}
	s.ssh.AddHostKey(s.hostKey)
	s.log.Info("git server ready", "host_key", ssh.FingerprintSHA256(s.hostKey.PublicKey()), "repositories", len(repos))
	return s, nil
}

// HostKey is the server's public host key, for known_hosts files.
func (s *Server) HostKey() ssh.PublicKey { return s.hostKey.PublicKey() }

// Addr is the address the server listens on: the listener's once Serve has
// started, else the configured one.
func (s *Server) Addr() string {
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.addr != nil {
		return s.addr.String()
	}
	return s.cfg.Addr
}

// ListenAndServe listens on the configured address and serves until ctx ends.
func (s *Server) ListenAndServe(ctx context.Context) error {
	l, err := net.Listen("tcp", s.cfg.Addr)
	if err != nil {
		return fmt.Errorf("git server: %w", err)
	}
	return s.Serve(ctx, l)
}

// Serve accepts SSH connections on l until ctx ends, then shuts down: it
// stops accepting, lets running git commands finish for ShutdownTimeout,
// kills those still running, closes every connection and returns nil.
func (s *Server) Serve(ctx context.Context, l net.Listener) error {
	s.mu.Lock()
	s.addr = l.Addr()
	s.mu.Unlock()
	s.log.Info("git server listening", "addr", l.Addr().String())
	stop := context.AfterFunc(ctx, func() { l.Close() })
	defer stop()
	var err error
	var backoff time.Duration
	for {
		var conn net.Conn
		conn, err = l.Accept()
		if err != nil && ctx.Err() == nil && !errors.Is(err, net.ErrClosed) {
			// Out of file descriptors and the like: wait and retry, as
			// net/http does.
			backoff = min(max(2*backoff, 5*time.Millisecond), time.Second)
			s.log.Error("accept failed; retrying", "err", err, "in", backoff)
			time.Sleep(backoff)
			continue
		}
		if err != nil {
			break
		}
		backoff = 0
		if !s.track(conn) {
			conn.Close()
			break
		}
		go s.serveConn(conn)
	}
	if ctx.Err() == nil {
		l.Close()
		s.shutdown()
		return fmt.Errorf("git server: %w", err)
	}
	s.shutdown()
	return nil
}

func (s *Server) track(conn net.Conn) bool {
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.closing {
		return false
	}
	s.conns[conn] = struct{}{}
	s.handlers.Add(1)
	return true
}

func (s *Server) shutdown() {
	s.mu.Lock()
	s.closing = true
	s.mu.Unlock()
	s.quitOnce.Do(func() { close(s.quit) })
	done := make(chan struct{})
	go func() { s.running.Wait(); close(done) }()
	select {
	case <-done:
	case <-time.After(s.cfg.ShutdownTimeout):
		s.mu.Lock()
		s.killed = true
		for pgid := range s.procs {
			s.log.Warn("killing git command still running at shutdown", "pid", pgid)
			syscall.Kill(-pgid, syscall.SIGKILL)
		}
		s.mu.Unlock()
		// A client that stopped reading can hold a session after its
		// command died; closing the connections below releases it.
		select {
		case <-done:
		case <-time.After(2 * time.Second):
		}
	}
	s.mu.Lock()
	for c := range s.conns {
		c.Close()
	}
	s.mu.Unlock()
	<-done
	s.handlers.Wait()
	s.log.Info("git server stopped")
}

const handshakeTimeout = 30 * time.Second

func (s *Server) serveConn(conn net.Conn) {
	defer s.handlers.Done()
	defer func() {
		conn.Close()
		s.mu.Lock()
		delete(s.conns, conn)
		s.mu.Unlock()
	}()
	remote := conn.RemoteAddr().String()
	conn.SetDeadline(time.Now().Add(handshakeTimeout))
	sc, chans, reqs, err := ssh.NewServerConn(conn, s.ssh)
	if err != nil {
		s.log.Info("ssh connection refused", "remote", remote, "err", err)
		return
	}
	conn.SetDeadline(time.Time{})
	id := sc.Permissions.ExtraData[identityKey{}].(Identity)
	s.log.Info("ssh connection", "remote", remote, "user", sc.User(), "principal", id.Principal, "key", id.Fingerprint)
	go ssh.DiscardRequests(reqs) // no port forwarding, no global requests
	var sessions sync.WaitGroup
	for nc := range chans {
		if nc.ChannelType() != "session" {
			nc.Reject(ssh.Prohibited, "only git commands are served here")
			continue
		}
		ch, creqs, err := nc.Accept()
		if err != nil {
			continue
		}
		sessions.Add(1)
		go func() {
			defer sessions.Done()
			s.session(id, remote, ch, creqs)
		}()
	}
	sessions.Wait()
}

// authenticate accepts the keys the config directory lets log in now (see
// logins). A refused key gets the usual publickey refusal and nothing more;
// why a listed key was refused (expired, not yet valid, limited to other
// namespaces) is logged here only.
func (s *Server) authenticate(meta ssh.ConnMetadata, key ssh.PublicKey) (*ssh.Permissions, error) {
	if op := s.cfg.OperatorKey; op != nil && bytes.Equal(op.Marshal(), key.Marshal()) {
		id := Identity{Principal: OperatorPrincipal, Principals: []string{OperatorPrincipal}, Groups: []string{"admins"}, Fingerprint: ssh.FingerprintSHA256(key)}
		return &ssh.Permissions{ExtraData: map[any]any{identityKey{}: id}}, nil
	}
	id, err := s.policy.current().Identify(key, time.Now())
	if errors.Is(err, errUnknownKey) {
		s.log.Debug("unknown key", "remote", meta.RemoteAddr().String(), "key", ssh.FingerprintSHA256(key))
		return nil, err
	}
	if err != nil {
		s.log.Warn("login refused: the key is listed but may not log in now", "remote", meta.RemoteAddr().String(), "key", ssh.FingerprintSHA256(key), "reason", err)
		return nil, errors.New("key not allowed now")
	}
	return &ssh.Permissions{ExtraData: map[any]any{identityKey{}: id}}, nil
}

// session serves one SSH session channel: an exec request of a git command
// and nothing else. Environment variables other than GIT_PROTOCOL, PTYs,
// subsystems, agent and X11 forwarding are refused.
func (s *Server) session(id Identity, remote string, ch ssh.Channel, reqs <-chan *ssh.Request) {
	defer ch.Close()
	var protocol string
	for req := range reqs {
		switch req.Type {
		case "env":
			var kv struct{ Name, Value string }
			ok := ssh.Unmarshal(req.Payload, &kv) == nil && kv.Name == "GIT_PROTOCOL" && validProtocol(kv.Value)
			if ok {
				protocol = kv.Value
			}
			req.Reply(ok, nil)
		case "exec", "shell":
			var payload struct{ Command string }
			if req.Type == "exec" && ssh.Unmarshal(req.Payload, &payload) != nil {
				req.Reply(false, nil)
				continue
			}
			req.Reply(true, nil)
			go func() { // refuse whatever comes after: signals, window changes
				for r := range reqs {
					if r.WantReply {
						r.Reply(false, nil)
					}
				}
			}()
			if !s.begin() {
				fmt.Fprintln(ch.Stderr(), "stack: the server is shutting down: try again shortly")
				exit(ch, 1)
				return
			}
			exit(ch, s.command(id, remote, ch, req.Type, payload.Command, protocol))
			s.running.Done()
			return
		default:
			if req.WantReply {
				req.Reply(false, nil)
			}
		}
	}
}

// exit ends a session's output and sends its exit status.
func exit(ch ssh.Channel, status int) {
	ch.CloseWrite()
	ch.SendRequest("exit-status", false, ssh.Marshal(struct{ Status uint32 }{uint32(status)}))
}

// validProtocol accepts GIT_PROTOCOL values like "version=2" or
// "version=2:key=value": printable, no spaces.
func validProtocol(v string) bool {
	if v == "" || len(v) > 256 {
		return false
	}
	for _, c := range []byte(v) {
		if c <= ' ' || c >= 0x7f {
			return false
		}
	}
	return true
}

// command runs one client command and returns its exit status.
func (s *Server) command(id Identity, remote string, ch ssh.Channel, kind, line, protocol string) int {
	start := time.Now()
	logAttrs := []any{"remote", remote, "principal", id.Principal}
	refuse := func(msg string) int {
		fmt.Fprintf(ch.Stderr(), "stack: %s\n", msg)
		s.log.Info("git command refused", append(logAttrs, "command", printable(line), "reason", msg)...)
		return 1
	}
	if kind == "shell" {
		return refuse("no interactive shell here: " + commandSyntax)
	}
	if name, args, ok := extraCommand(line); ok {
		if f := s.cfg.Commands[name]; f != nil {
			// A client that goes away makes the next write fail, which
			// ends a command that follows a log (its stdin ending says
			// nothing: ssh closes it at once when given none); shutting
			// down ends it too.
			ctx, cancel := context.WithCancel(context.Background())
			defer cancel()
			go func() {
				select {
				case <-s.quit:
					cancel()
				case <-ctx.Done():
				}
			}()
			status := f(ctx, &Session{Identity: id, Args: args, Stdout: ch, Stderr: ch.Stderr(), access: s.policy.current().Access})
			s.log.Info("command", append(logAttrs, "command", name, "args", printable(strings.Join(args, " ")), "exit", status, "duration", time.Since(start).Round(time.Millisecond))...)
			return status
		}
	}
	cmd, err := ParseCommand(line)
	if err != nil {
		return refuse(err.Error())
	}
	logAttrs = append(logAttrs, "command", cmd.Service, "repo", cmd.Repo)
	access := "read"
	if cmd.Write() {
		access = "push to"
	}
	if !s.policy.current().Access.Allowed(id, cmd.Repo, cmd.Write()) {
		return refuse(fmt.Sprintf("%s may not %s %s: ask an admin to add you to its rule in config/%s", id.Principal, access, cmd.Repo, AccessFile))
	}
	path, err := Resolve(s.cfg.DataDir, cmd.Repo)
	if err != nil {
		return refuse(err.Error())
	}
	if cmd.Service == LFSTransfer {
		if err := serveLFS(path, cmd.Op, ch, ch); err != nil {
			s.log.Warn("git-lfs-transfer failed", append(logAttrs, "op", cmd.Op, "err", err)...)
			return 1
		}
		s.log.Info("git-lfs-transfer", append(logAttrs, "op", cmd.Op, "duration", time.Since(start).Round(time.Millisecond))...)
		return 0
	}
	args := []string{path}
	if cmd.Service == UploadPack {
		args = []string{"--strict", path}
	}
	c := exec.Command(filepath.Join(s.execDir, cmd.Service), args...)
	c.Dir = path
	c.Env = append(baseEnv(s.git, s.cfg.DataDir),
		EnvRepo+"="+cmd.Repo,
		EnvPusher+"="+id.Principal,
		EnvData+"="+s.cfg.DataDir,
		EnvConfig+"="+s.cfg.ConfigDir,
	)
	if protocol != "" {
		c.Env = append(c.Env, "GIT_PROTOCOL="+protocol)
	}
	c.Stdout = ch
	c.Stderr = ch.Stderr()
	c.SysProcAttr = &syscall.SysProcAttr{Setpgid: true}
	stdin, err := c.StdinPipe()
	if err != nil {
		return refuse("internal error: " + err.Error())
	}
	if err := s.startCommand(c); err != nil {
		stdin.Close()
		return refuse(err.Error())
	}
	// Not waited for: the channel's reads end when the session closes.
	go func() {
		io.Copy(stdin, ch)
		stdin.Close()
	}()
	err = c.Wait()
	s.mu.Lock()
	delete(s.procs, c.Process.Pid)
	s.mu.Unlock()
	status := c.ProcessState.ExitCode()
	if status < 0 {
		status = 255 // killed by a signal
	}
	logAttrs = append(logAttrs, "exit", status, "duration", time.Since(start).Round(time.Millisecond))
	if _, exited := err.(*exec.ExitError); err != nil && !exited {
		logAttrs = append(logAttrs, "err", err)
	}
	s.log.Info("git command", logAttrs...)
	return status
}

// begin counts a session that runs a command, unless the server is shutting
// down. A true result must be matched by s.running.Done once the session's
// exit status is sent.
func (s *Server) begin() bool {
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.closing {
		return false
	}
	s.running.Add(1)
	return true
}

// startCommand starts c and records its process group for shutdown, unless
// shutdown already killed the running commands.
func (s *Server) startCommand(c *exec.Cmd) error {
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.killed {
		return errors.New("the server is shutting down: try again shortly")
	}
	if err := c.Start(); err != nil {
		s.log.Error("start git command", "err", err)
		return fmt.Errorf("cannot start %s: %v", filepath.Base(c.Path), err)
	}
	s.procs[c.Process.Pid] = struct{}{}
	return nil
}

// printable shortens and escapes a client's command line for the log.
func printable(s string) string {
	if len(s) > 200 {
		s = s[:200] + "..."
	}
	return fmt.Sprintf("%q", s)
}
