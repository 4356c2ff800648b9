// Package registry owns the self-hosted OCI registry: the CNCF distribution
// registry embedded in-process with filesystem storage under one data
// directory, the rule that only a loopback registry may accept pushes
// without credentials, pushing images to a registry (Push, PushAll: images
// are values, read and checked by their owner such as image.Layout; this
// package reads no image layout), and the k3s/containerd mirror
// configuration that points clusters at it (WriteMirrors, WriteHosts).
package registry

import (
	"context"
	"crypto/rand"
	"encoding/hex"
	"errors"
	"fmt"
	"io/fs"
	"log/slog"
	"net"
	"net/http"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"time"

	"github.com/distribution/distribution/v3/configuration"
	"github.com/distribution/distribution/v3/registry/handlers"

	// The auth and storage implementations the registry is configured with.
	_ "github.com/distribution/distribution/v3/registry/auth/htpasswd"
	_ "github.com/distribution/distribution/v3/registry/storage/driver/filesystem"

	"github.com/hashbang/stack/internal/atomicfile"
)

// DefaultAddr is where the registry listens unless told otherwise: the
// seed's registry.localhost:5000, on loopback only.
const DefaultAddr = "127.0.0.1:5000"

// secretFile holds the HTTP secret that signs upload state, under DataDir.
const secretFile = "http.secret"

// shutdownGrace is how long in-flight requests get to finish once the
// context given to Serve ends.
const shutdownGrace = 10 * time.Second

// Config says how to run a Registry.
type Config struct {
	// DataDir is the registry's own directory: blobs and manifests live in
	// it (docker/registry/v2/...) beside the persisted HTTP secret. It is
	// created (0700) if missing. Required.
	DataDir string
	// Addr is the TCP address ListenAndServe listens on; DefaultAddr when
	// empty.
	Addr string
	// HtpasswdFile is an Apache htpasswd file of bcrypt entries
	// (htpasswd -B). When set, every request needs HTTP basic credentials
	// that match one of its entries. It is required when the registry
	// listens on anything but loopback.
	HtpasswdFile string
	// RequireAuth asks for credentials even on loopback: New fails unless
	// HtpasswdFile is set.
	RequireAuth bool
	// Logger receives the registry's logs; slog.Default() when nil. The
	// distribution library's per-request logs arrive at Debug level, its
	// warnings and server errors at Warn and Error. Credentials are never
	// logged.
	Logger *slog.Logger
}

// A Registry is an OCI distribution registry served from a data directory.
type Registry struct {
	cfg     Config
	log     *slog.Logger
	app     *handlers.App
	handler http.Handler
	id      string

	mu      sync.Mutex
	addr    string
	serving bool
	ready   chan struct{}
}

// New checks cfg and prepares a registry over cfg.DataDir. It refuses a
// non-loopback address without an htpasswd file, and an htpasswd file that
// is missing, unreadable or holds anything but bcrypt entries.
func New(cfg Config) (*Registry, error) {
	if cfg.DataDir == "" {
		return nil, errors.New("registry: no data directory given: set Config.DataDir")
	}
	if cfg.Addr == "" {
		cfg.Addr = DefaultAddr
	}
	if cfg.Logger == nil {
		cfg.Logger = slog.Default()
	}
	host, _, err := net.SplitHostPort(cfg.Addr)
	if err != nil {
		return nil, fmt.Errorf("registry: listen address %q: %v: use HOST:PORT such as %s", cfg.Addr, err, DefaultAddr)
	}
	if cfg.HtpasswdFile == "" {
		if cfg.RequireAuth {
			return nil, errors.New("registry: credentials are required but no htpasswd file is given: create one with `htpasswd -Bc FILE USER` and pass it")
		}
		if !IsLoopback(host) {
			return nil, fmt.Errorf("registry: refusing to serve %s without credentials: only loopback addresses may accept anonymous pushes; pass an htpasswd file (htpasswd -Bc FILE USER) or listen on 127.0.0.1", cfg.Addr)
		}
	} else {
		abs, err := filepath.Abs(cfg.HtpasswdFile)
		if err != nil {
			return nil, fmt.Errorf("registry: htpasswd file: %w", err)
		}
		cfg.HtpasswdFile = abs
		if _, err := ReadHtpasswd(cfg.HtpasswdFile); err != nil {
			return nil, fmt.Errorf("registry: %w", err)
		}
	}
	dir, err := filepath.Abs(cfg.DataDir)
	if err != nil {
		return nil, fmt.Errorf("registry: data directory: %w", err)
	}
	cfg.DataDir = dir
	if err := os.MkdirAll(dir, 0o700); err != nil {
		return nil, fmt.Errorf("registry: data directory: %w", err)
	}
	secret, err := loadSecret(filepath.Join(dir, secretFile))
	if err != nil {
		return nil, fmt.Errorf("registry: %w", err)
	}

	r := &Registry{cfg: cfg, log: cfg.Logger, addr: cfg.Addr, id: newInstanceID(), ready: make(chan struct{})}
	bridgeLogs(r.id, r.log)
	app, err := newApp(r.baseContext(), r.configuration(secret))
	if err != nil {
		forgetLogs(r.id)
		return nil, fmt.Errorf("registry: %w", err)
	}
	r.app = app
	r.handler = http.HandlerFunc(r.guard)
	return r, nil
}

// configuration is the distribution configuration the registry runs with.
func (r *Registry) configuration(secret string) *configuration.Configuration {
	c := &configuration.Configuration{Version: "0.1"}
	c.Log.AccessLog.Disabled = true
	c.HTTP.Addr = r.cfg.Addr
	c.HTTP.Secret = secret
	c.Storage = configuration.Storage{
		"filesystem": configuration.Parameters{"rootdirectory": r.cfg.DataDir},
		// The conformance suite deletes blobs, manifests and tags.
		"delete": configuration.Parameters{"enabled": true},
		// A purger would delete uploads in progress behind our back and
		// run a goroutine nobody waits for.
		"maintenance": configuration.Parameters{
			"uploadpurging": map[any]any{"enabled": false},
		},
		// The filesystem driver cannot redirect; say so rather than probe.
		"redirect": configuration.Parameters{"disable": true},
		"cache":    configuration.Parameters{"blobdescriptor": "inmemory"},
	}
	// Manifests are checked before distribution verifies and stores them
	// (check.go).
	c.Middleware = map[string][]configuration.Middleware{
		"repository": {{Name: manifestCheck}},
	}
	if r.cfg.HtpasswdFile != "" {
		c.Auth = configuration.Auth{"htpasswd": configuration.Parameters{
			"realm": "stack registry",
			"path":  r.cfg.HtpasswdFile,
		}}
	}
	return c
}

// newApp builds the distribution application, turning its panics on bad
// configuration into errors.
func newApp(ctx context.Context, c *configuration.Configuration) (app *handlers.App, err error) {
	defer func() {
		if p := recover(); p != nil {
			err = fmt.Errorf("configure distribution: %v", p)
		}
	}()
	return handlers.NewApp(ctx, c), nil
}

// baseContext is the context every request and the application run under.
// It carries the instance id that routes distribution's logs to r.log.
func (r *Registry) baseContext() context.Context {
	// distribution looks this value up by this exact string key.
	return context.WithValue(context.Background(), "instance.id", r.id)
}

// Handler returns the registry's HTTP handler, for callers that serve it
// themselves. The loopback rule is then theirs to keep.
func (r *Registry) Handler() http.Handler { return r.handler }

// Addr returns the address the registry listens on: the listener's once
// Serve has been called, the configured one before.
func (r *Registry) Addr() string {
	r.mu.Lock()
	defer r.mu.Unlock()
	return r.addr
}

// Ready is closed once Serve accepts connections; Addr then returns the
// listener's address.
func (r *Registry) Ready() <-chan struct{} { return r.ready }

// AuthRequired reports whether the registry asks for credentials.
func (r *Registry) AuthRequired() bool { return r.cfg.HtpasswdFile != "" }

// ListenAndServe listens on the configured address and serves until ctx
// ends.
func (r *Registry) ListenAndServe(ctx context.Context) error {
	var lc net.ListenConfig
	ln, err := lc.Listen(ctx, "tcp", r.cfg.Addr)
	if err != nil {
		return fmt.Errorf("registry: %w", err)
	}
	return r.Serve(ctx, ln)
}

// Serve serves the registry on ln until ctx ends, then shuts down
// gracefully: new connections are refused and requests in flight get a
// grace period to finish. It closes ln. A registry serves at most once.
// Serve refuses a listener that is not on loopback when no credentials are
// configured.
func (r *Registry) Serve(ctx context.Context, ln net.Listener) error {
	defer forgetLogs(r.id)
	if !r.AuthRequired() && !listenerIsLoopback(ln) {
		ln.Close()
		return fmt.Errorf("registry: refusing to serve %s without credentials: only loopback addresses may accept anonymous pushes; pass an htpasswd file or listen on 127.0.0.1", ln.Addr())
	}
	r.mu.Lock()
	if r.serving {
		r.mu.Unlock()
		ln.Close()
		return errors.New("registry: Serve called twice: create a new Registry")
	}
	r.serving = true
	r.addr = ln.Addr().String()
	r.mu.Unlock()

	base := r.baseContext()
	srv := &http.Server{
		Handler:           r.handler,
		ReadHeaderTimeout: 30 * time.Second,
		IdleTimeout:       2 * time.Minute,
		BaseContext:       func(net.Listener) context.Context { return base },
		ErrorLog:          slog.NewLogLogger(r.log.Handler(), slog.LevelDebug),
	}
	auth := "none: anonymous pulls and pushes (loopback only)"
	if r.AuthRequired() {
		auth = "htpasswd: every request needs credentials"
	}
	r.log.Info("registry listening", "addr", "http://"+ln.Addr().String(), "auth", auth, "data", r.cfg.DataDir)

	errc := make(chan error, 1)
	go func() { errc <- srv.Serve(ln) }()
	close(r.ready)
	var err error
	select {
	case err = <-errc:
	case <-ctx.Done():
		sctx, cancel := context.WithTimeout(context.Background(), shutdownGrace)
		err = srv.Shutdown(sctx)
		cancel()
		if serr := <-errc; !errors.Is(serr, http.ErrServerClosed) && err == nil {
			err = serr
		}
		r.log.Info("registry stopped", "addr", ln.Addr().String())
	}
	if aerr := r.app.Shutdown(); aerr != nil && err == nil {
		err = aerr
	}
	if errors.Is(err, http.ErrServerClosed) {
		err = nil
	}
	if err != nil {
		return fmt.Errorf("registry: %w", err)
	}
	return nil
}

// listenerIsLoopback reports whether ln accepts connections from this host
// only.
func listenerIsLoopback(ln net.Listener) bool {
	a, ok := ln.Addr().(*net.TCPAddr)
	return ok && a.IP.IsLoopback()
}

// loadSecret returns the HTTP secret stored at path, creating it (32 random
// bytes, hex, mode 0600) the first time. A secret that others can read is
// refused: it signs upload state.
func loadSecret(path string) (string, error) {
	b, err := os.ReadFile(path)
	if errors.Is(err, fs.ErrNotExist) {
		var raw [32]byte
		if _, err := rand.Read(raw[:]); err != nil {
			return "", fmt.Errorf("generate http secret: %w", err)
		}
		s := hex.EncodeToString(raw[:])
		if err := atomicfile.WriteFile(path, []byte(s+"\n"), 0o600); err != nil {
			return "", fmt.Errorf("write http secret: %w", err)
		}
		return s, nil
	}
	if err != nil {
		return "", fmt.Errorf("read http secret: %w", err)
	}
	fi, err := os.Stat(path)
	if err != nil {
		return "", fmt.Errorf("read http secret: %w", err)
	}
	if fi.Mode().Perm()&0o077 != 0 {
		return "", fmt.Errorf("http secret %s is readable by others (mode %04o): run chmod 600 %s", path, fi.Mode().Perm(), path)
	}
	s := strings.TrimSpace(string(b))
	if len(s) < 32 {
		return "", fmt.Errorf("http secret %s is too short (%d characters): delete it and a new one is made", path, len(s))
	}
	return s, nil
}

// newInstanceID returns a random id naming one Registry in this process.
func newInstanceID() string {
	var b [8]byte
	_, _ = rand.Read(b[:])
	return "stack-registry-" + hex.EncodeToString(b[:])
}
