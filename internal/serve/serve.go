package serve

import (
	"context"
	"errors"
	"fmt"
	"io"
	"io/fs"
	"log/slog"
	"net"
	"os"
	"path/filepath"
	"slices"
	"strconv"
	"sync"
	"syscall"
	"time"

	"golang.org/x/crypto/ssh"

	"github.com/hashbang/stack/internal/ci"
	"github.com/hashbang/stack/internal/gitserve"
	"github.com/hashbang/stack/internal/registry"
	"github.com/hashbang/stack/internal/release"
)

// Config says how to run the daemon.
type Config struct {
	// DataDir holds everything the daemon keeps (see the package
	// documentation). Required; created if missing.
	DataDir string
	// ConfigDir is the stack repository's config/: admins, developers and
	// git.yaml decide who may log in to the git server and what they may do.
	ConfigDir string
	// RegistryAddr is where the registry listens; registry.DefaultAddr if
	// empty.
	RegistryAddr string
	// Htpasswd is a bcrypt htpasswd file; with it the registry asks for
	// credentials. Required for a registry address that is not loopback.
	Htpasswd string
	// PushPasswordFile, instead of Htpasswd, holds the password of
	// registry.User (a Secret mounted into the cluster's own serve): New
	// writes DATA/registry.htpasswd from it.
	PushPasswordFile string
	// SSHAddr is where the git server listens; gitserve.DefaultAddr if empty.
	SSHAddr string
	// HostKeyFile and OperatorKey: see gitserve.Config.
	HostKeyFile string
	OperatorKey ssh.PublicKey
	// Executable is the stack executable the repositories' hooks run;
	// os.Executable() if empty.
	Executable string
	// Logger receives the parts' logs; slog.Default() if nil.
	Logger *slog.Logger
	// Out receives the lines saying where each part listens; nothing is
	// printed if nil.
	Out io.Writer
	// ShutdownTimeout is how long running git commands may take to finish
	// at shutdown; 10s if zero.
	ShutdownTimeout time.Duration
	// WebAddr is where the read-only web page listens; DefaultWebAddr if
	// empty, none if "off".
	WebAddr string
	// Environments, when set, gives the environments' status for the
	// web page.
	Environments func(context.Context) ([]*release.Status, error)
	// Drift, when set, is run every DriftEvery (default 15 minutes), first
	// a minute after start: it records the drift of the environments the
	// daemon watches in their state repos. It runs in the daemon, not as
	// a CI job: jobs are sandboxed and reach neither state repos nor
	// clusters.
	Drift      func(context.Context) error
	DriftEvery time.Duration
	// AccessFrom, when set, is where the git server reads admins,
	// developers and git.yaml once it exists (see gitserve.Config.ConfigFrom).
	AccessFrom *gitserve.ConfigRef
	// Commands are read-only commands the git server offers besides its
	// own (repo list, ci list, ci logs): what the caller composes in, such
	// as `status ENV`.
	Commands map[string]gitserve.CommandFunc
	// CI tunes the runner; its DataDir, Repos and Logger are set by Run;
	// STACK_REGISTRY (the registry's address) is added to its Env, and the
	// directory of Executable leads its PATH. Jobs are sandboxed: the data
	// directory is out of their reach.
	CI ci.Runner
}

// Server is a prepared daemon: the data directory is locked and both ports
// are bound, so Run cannot fail for a port that is taken.
type Server struct {
	cfg  Config
	log  *slog.Logger
	lock *os.File
	reg  *registry.Registry
	git  *gitserve.Server
	regL net.Listener
	gitL net.Listener
	webL net.Listener

	closeOnce sync.Once
}

// HtpasswdFile is the registry's htpasswd in the data directory, written
// from Config.PushPasswordFile.
const HtpasswdFile = "registry.htpasswd"

// LockFile is the file in the data directory that the running daemon holds
// a lock on.
const LockFile = "serve.lock"

// New checks cfg, locks the data directory and binds the registry and SSH
// ports. Every failure is one line naming what is wrong and what to do.
// Close releases what New took if Run is never called.
func New(cfg Config) (*Server, error) {
	if cfg.DataDir == "" {
		return nil, errors.New("serve: no data directory given")
	}
	if cfg.ConfigDir == "" {
		return nil, errors.New("serve: no config directory given (the stack repository's config/)")
	}
	var err error
	if cfg.DataDir, err = filepath.Abs(cfg.DataDir); err != nil {
		return nil, err
	}
	if fi, err := os.Stat(cfg.ConfigDir); err != nil || !fi.IsDir() {
		return nil, fmt.Errorf("config directory %s does not exist: give --repo the stack repository whose config/ lists the admins and developers", cfg.ConfigDir)
	}
	if cfg.RegistryAddr == "" {
		cfg.RegistryAddr = registry.DefaultAddr
	}
	if cfg.PushPasswordFile != "" && cfg.Htpasswd != "" {
		return nil, errors.New("--htpasswd and --push-password-file both give the registry's credentials: give one")
	}
	if cfg.SSHAddr == "" {
		cfg.SSHAddr = gitserve.DefaultAddr
	}
	if cfg.Logger == nil {
		cfg.Logger = slog.Default()
	}
	if err := os.MkdirAll(cfg.DataDir, 0o700); err != nil {
		return nil, fmt.Errorf("data directory: %w", err)
	}
	s := &Server{cfg: cfg, log: cfg.Logger}
	if err := s.tightenDataDir(); err != nil {
		return nil, err
	}
	ok := false
	defer func() {
		if !ok {
			s.Close()
		}
	}()
	if s.lock, err = lockData(cfg.DataDir); err != nil {
		return nil, err
	}
	if cfg.PushPasswordFile != "" {
		cfg.Htpasswd = filepath.Join(cfg.DataDir, HtpasswdFile)
		s.cfg.Htpasswd = cfg.Htpasswd
		if err := registry.WriteHtpasswd(cfg.Htpasswd, cfg.PushPasswordFile); err != nil {
			return nil, err
		}
	}
	if s.regL, err = listen("registry", cfg.RegistryAddr, "--registry-addr"); err != nil {
		return nil, err
	}
	if s.gitL, err = listen("git server", cfg.SSHAddr, "--ssh-addr"); err != nil {
		return nil, err
	}
	if cfg.WebAddr == "" {
		cfg.WebAddr = DefaultWebAddr
		s.cfg.WebAddr = cfg.WebAddr
	}
	if cfg.WebAddr != "off" {
		if s.webL, err = listen("web page", cfg.WebAddr, "--web-addr"); err != nil {
			return nil, err
		}
	}
	s.reg, err = registry.New(registry.Config{
		DataDir:      filepath.Join(cfg.DataDir, "registry"),
		Addr:         cfg.RegistryAddr,
		HtpasswdFile: cfg.Htpasswd,
		Logger:       cfg.Logger.With("part", "registry"),
	})
	if err != nil {
		return nil, err
	}
	s.git, err = gitserve.New(gitserve.Config{
		DataDir:         cfg.DataDir,
		Addr:            cfg.SSHAddr,
		ConfigDir:       cfg.ConfigDir,
		Logger:          cfg.Logger.With("part", "git"),
		Executable:      cfg.Executable,
		ShutdownTimeout: cfg.ShutdownTimeout,
		HostKeyFile:     cfg.HostKeyFile,
		OperatorKey:     cfg.OperatorKey,
		Commands:        s.commands(cfg.Commands),
		ConfigFrom:      cfg.AccessFrom,
	})
	if err != nil {
		return nil, err
	}
	ok = true
	return s, nil
}

// privateDirs are the data directory and the parts of it that are the
// daemon's alone: 0700, so that no other user — a CI job's included — can
// read the repositories, the host key, the registry or the jobs.
var privateDirs = []string{".", "git", "ssh", "registry", "ci"}

// tightenDataDir makes privateDirs 0700 where a data directory made
// before they were (or by hand) has them looser, saying so.
func (s *Server) tightenDataDir() error {
	for _, d := range privateDirs {
		dir := filepath.Join(s.cfg.DataDir, d)
		fi, err := os.Lstat(dir)
		if errors.Is(err, fs.ErrNotExist) {
			continue
		}
		if err != nil {
			return fmt.Errorf("data directory: %w", err)
		}
		if !fi.IsDir() {
			return fmt.Errorf("data directory: %s is not a directory: move it away", dir)
		}
		if fi.Mode().Perm() == 0o700 {
			continue
		}
		if err := os.Chmod(dir, 0o700); err != nil {
			return fmt.Errorf("data directory: make %s private: %w", dir, err)
		}
		s.log.Warn("serve: made a data directory private", "dir", dir, "was", fi.Mode().Perm().String())
	}
	return nil
}

// lockData takes the daemon's lock on the data directory, so two daemons
// never share one (their CI runners and registries would collide).
func lockData(dir string) (*os.File, error) {
	path := filepath.Join(dir, LockFile)
	f, err := os.OpenFile(path, os.O_RDWR|os.O_CREATE, 0o644)
	if err != nil {
		return nil, fmt.Errorf("lock the data directory: %w", err)
	}
	if err := syscall.Flock(int(f.Fd()), syscall.LOCK_EX|syscall.LOCK_NB); err != nil {
		pid, _ := io.ReadAll(io.LimitReader(f, 20))
		f.Close()
		holder := ""
		if p, err := strconv.Atoi(string(pid)); err == nil {
			holder = fmt.Sprintf(" (pid %d)", p)
		}
		return nil, fmt.Errorf("another stack serve%s is using the data directory %s: stop it, or give --data another directory", holder, dir)
	}
	if err := f.Truncate(0); err == nil {
		f.WriteAt([]byte(strconv.Itoa(os.Getpid())), 0)
	}
	return f, nil
}

// listen binds addr for part, turning the usual failures into one line
// saying what to do.
func listen(part, addr, flag string) (net.Listener, error) {
	l, err := net.Listen("tcp", addr)
	switch {
	case err == nil:
		return l, nil
	case errors.Is(err, syscall.EADDRINUSE):
		return nil, fmt.Errorf("%s: port %s is already in use (another stack serve?): stop what listens there or choose another with %s HOST:PORT", part, addr, flag)
	case errors.Is(err, syscall.EACCES):
		return nil, fmt.Errorf("%s: not allowed to listen on %s (ports below 1024 need privileges): choose another with %s HOST:PORT", part, addr, flag)
	default:
		return nil, fmt.Errorf("%s: cannot listen on %s: %w (fix %s)", part, addr, err, flag)
	}
}

// RegistryAddr is the address the registry listens on.
func (s *Server) RegistryAddr() string { return s.regL.Addr().String() }

// SSHAddr is the address the git server listens on.
func (s *Server) SSHAddr() string { return s.gitL.Addr().String() }

// HostKey is the git server's public host key.
func (s *Server) HostKey() ssh.PublicKey { return s.git.HostKey() }

// Close releases the ports and the data directory lock. Run does it itself.
func (s *Server) Close() {
	s.closeOnce.Do(func() {
		for _, l := range []net.Listener{s.regL, s.gitL, s.webL} {
			if l != nil {
				l.Close()
			}
		}
		if s.lock != nil {
			s.lock.Close()
		}
	})
}

// Run serves until ctx ends, then stops every part and returns once all
// have stopped: the registry finishes requests in flight, the git server
// lets running commands finish (for ShutdownTimeout), and the CI runner
// stops its jobs, marking them interrupted. If a part fails, the others
// are stopped and its error returned.
func (s *Server) Run(ctx context.Context) error {
	defer s.Close()
	ctx, cancel := context.WithCancel(ctx)
	defer cancel()

	runner := s.cfg.CI
	runner.DataDir = s.cfg.DataDir
	runner.Repos = ci.ServedRepos(s.cfg.DataDir)
	runner.Logger = s.log.With("part", "ci")
	runner.Env = append(slices.Clip(runner.Env), "STACK_REGISTRY="+s.RegistryAddr())
	if runner.PATH == "" {
		// Jobs run the same stack as the daemon (ci/drift calls it).
		runner.PATH = filepath.Dir(s.executable()) + string(os.PathListSeparator) + os.Getenv("PATH")
	}

	var wg sync.WaitGroup
	errc := make(chan error, 5)
	start := func(f func(context.Context) error) {
		wg.Add(1)
		go func() {
			defer wg.Done()
			err := f(ctx)
			if err != nil && ctx.Err() == nil {
				cancel()
			}
			errc <- err
		}()
	}
	start(func(ctx context.Context) error { return s.reg.Serve(ctx, s.regL) })
	start(func(ctx context.Context) error { return s.git.Serve(ctx, s.gitL) })
	start(runner.Run)
	if s.cfg.Drift != nil {
		start(s.driftTimer)
	}
	if s.webL != nil {
		w := &web{data: s.cfg.DataDir, envs: s.cfg.Environments, log: s.log.With("part", "web")}
		start(func(ctx context.Context) error { return serveWeb(ctx, s.webL, w) })
	}

	select {
	case <-s.reg.Ready():
		s.printf("registry  http://%s  %s\n", s.RegistryAddr(), s.registryAuth())
		s.printf("git       ssh://git@%s/NAME.git  host key %s\n", s.SSHAddr(), ssh.FingerprintSHA256(s.HostKey()))
		s.printf("ci        runner on %s\n", filepath.Join(s.cfg.DataDir, "ci"))
		if s.webL != nil {
			s.printf("web       http://%s  read-only\n", s.webL.Addr())
		}
		s.printf("data      %s\n", s.cfg.DataDir)
		s.printf("ready; stop with Ctrl-C (SIGINT) or SIGTERM\n")
	case <-ctx.Done():
	}
	wg.Wait()
	close(errc)
	var first error
	for err := range errc {
		if err != nil && first == nil {
			first = err
		}
	}
	s.log.Info("stack serve stopped")
	return first
}

// driftTimer runs cfg.Drift until ctx ends; a failed check is logged and
// tried again at the next tick.
func (s *Server) driftTimer(ctx context.Context) error {
	every := s.cfg.DriftEvery
	if every <= 0 {
		every = 15 * time.Minute
	}
	wait := min(time.Minute, every)
	for {
		select {
		case <-ctx.Done():
			return nil
		case <-time.After(wait):
		}
		wait = every
		start := time.Now()
		if err := s.cfg.Drift(ctx); err != nil && ctx.Err() == nil {
			s.log.Error("drift check failed", "part", "drift", "err", err)
		} else {
			s.log.Info("drift checked", "part", "drift", "duration", time.Since(start).Round(time.Millisecond))
		}
	}
}

func (s *Server) registryAuth() string {
	if s.reg.AuthRequired() {
		return "credentials required (htpasswd " + s.cfg.Htpasswd + ")"
	}
	return "no credentials: loopback only"
}

func (s *Server) printf(format string, args ...any) {
	if s.cfg.Out != nil {
		fmt.Fprintf(s.cfg.Out, format, args...)
	}
}

// executable is the stack program the daemon's hooks and jobs run.
func (s *Server) executable() string {
	if s.cfg.Executable != "" {
		return s.cfg.Executable
	}
	exe, err := os.Executable()
	if err != nil {
		return "stack"
	}
	return exe
}
