package registry

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"net"
	"net/http"
	"net/http/httputil"
	"net/url"
	"strings"
	"time"
)

// Proxy is the node-local way to the cluster's registry: it listens on
// Listen (127.0.0.1:5000 on every node, from a DaemonSet on the host
// network) and forwards pulls to Upstream, the in-cluster registry's
// Service. containerd pulls `localhost:5000/...` over plain HTTP with no
// configuration of the node, which is all a DigitalOcean node allows;
// images stay pinned by digest, so the proxy adds no trust.
//
// It forwards pulls only: GET and HEAD of /v2/ and below. A push, a
// delete or anything else is refused with 405 before it reaches the
// registry, so the credentials it adds (Password, for User) give whoever
// reaches the node's loopback no more than a pull.
type Proxy struct {
	Listen, Upstream string
	// Password, when set, is sent as User's HTTP basic credentials with
	// every forwarded request.
	Password string
	// DialTimeout bounds reaching Upstream; 10s if zero.
	DialTimeout time.Duration
	Logger      *slog.Logger
}

// Run forwards pulls until ctx ends; it returns once every request is
// done.
func (p *Proxy) Run(ctx context.Context) error {
	l, err := net.Listen("tcp", p.Listen)
	if err != nil {
		return fmt.Errorf("registry proxy: %w: is another one (or a registry) listening there?", err)
	}
	return p.Serve(ctx, l)
}

// Serve is Run on a listener of the caller's.
func (p *Proxy) Serve(ctx context.Context, l net.Listener) error {
	if p.DialTimeout <= 0 {
		p.DialTimeout = 10 * time.Second
	}
	if p.Logger == nil {
		p.Logger = slog.Default()
	}
	srv := &http.Server{
		Handler:           p.Handler(),
		ReadHeaderTimeout: 30 * time.Second,
		IdleTimeout:       2 * time.Minute,
		ErrorLog:          slog.NewLogLogger(p.Logger.Handler(), slog.LevelDebug),
	}
	p.Logger.Info("registry proxy listening", "addr", "http://"+l.Addr().String(), "upstream", p.Upstream, "forwards", "pulls only (GET, HEAD)")
	errc := make(chan error, 1)
	go func() { errc <- srv.Serve(l) }()
	select {
	case err := <-errc:
		return err
	case <-ctx.Done():
	}
	sctx, cancel := context.WithTimeout(context.Background(), shutdownGrace)
	defer cancel()
	err := srv.Shutdown(sctx)
	if serr := <-errc; !errors.Is(serr, http.ErrServerClosed) && err == nil {
		err = serr
	}
	return err
}

// Handler is the proxy's HTTP handler.
func (p *Proxy) Handler() http.Handler {
	target := &url.URL{Scheme: "http", Host: p.Upstream}
	dialer := &net.Dialer{Timeout: p.DialTimeout}
	rp := &httputil.ReverseProxy{
		Rewrite: func(r *httputil.ProxyRequest) {
			r.SetURL(target)
			r.Out.Host = p.Upstream
			r.Out.Header.Del("Authorization")
			if p.Password != "" {
				r.Out.SetBasicAuth(User, p.Password)
			}
		},
		Transport: &http.Transport{
			DialContext:           dialer.DialContext,
			ResponseHeaderTimeout: time.Minute,
			MaxIdleConnsPerHost:   16,
			IdleConnTimeout:       time.Minute,
		},
		ModifyResponse: func(resp *http.Response) error {
			// A redirect to the upstream's own address would be
			// unreachable from the node: the registry redirects
			// nothing (redirect is off), and a Location is kept
			// relative.
			if loc := resp.Header.Get("Location"); strings.HasPrefix(loc, target.String()) {
				resp.Header.Set("Location", strings.TrimPrefix(loc, target.String()))
			}
			return nil
		},
		ErrorHandler: func(w http.ResponseWriter, r *http.Request, err error) {
			p.Logger.Warn("registry proxy: upstream unreachable", "upstream", p.Upstream, "err", err)
			http.Error(w, "registry proxy: the cluster's registry "+p.Upstream+" is unreachable", http.StatusBadGateway)
		},
	}
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if r.Method != http.MethodGet && r.Method != http.MethodHead {
			w.Header().Set("Allow", "GET, HEAD")
			http.Error(w, "registry proxy: pulls only (GET, HEAD); push to the cluster's registry itself", http.StatusMethodNotAllowed)
			return
		}
		if r.URL.Path != "/v2" && !strings.HasPrefix(r.URL.Path, "/v2/") {
			http.NotFound(w, r)
			return
		}
		rp.ServeHTTP(w, r)
	})
}
