package registry

import (
	"context"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"net"
	"sync"
	"time"
)

// Proxy is the node-local way to the cluster's registry: it listens on
// Listen (127.0.0.1:5000 on every node, from a DaemonSet on the host
// network) and forwards each connection to Upstream, the in-cluster
// registry's Service. containerd pulls `localhost:5000/...` over plain
// HTTP with no configuration of the node, which is all a DigitalOcean node
// allows; images stay pinned by digest, so the proxy adds no trust.
type Proxy struct {
	Listen, Upstream string
	// DialTimeout bounds reaching Upstream; 10s if zero.
	DialTimeout time.Duration
	Logger      *slog.Logger
}

// Run forwards connections until ctx ends; it returns once every
// connection is closed.
func (p *Proxy) Run(ctx context.Context) error {
	if p.DialTimeout <= 0 {
		p.DialTimeout = 10 * time.Second
	}
	if p.Logger == nil {
		p.Logger = slog.Default()
	}
	l, err := net.Listen("tcp", p.Listen)
	if err != nil {
		return fmt.Errorf("registry proxy: %w: is another one (or a registry) listening there?", err)
	}
	return p.Serve(ctx, l)
}

// Serve is Run on a listener of the caller's.
func (p *Proxy) Serve(ctx context.Context, l net.Listener) error {
	p.Logger.Info("registry proxy listening", "addr", l.Addr().String(), "upstream", p.Upstream)
	stop := context.AfterFunc(ctx, func() { l.Close() })
	defer stop()
	var wg sync.WaitGroup
	defer wg.Wait()
	for {
		c, err := l.Accept()
		if err != nil {
			if ctx.Err() != nil || errors.Is(err, net.ErrClosed) {
				return nil
			}
			p.Logger.Warn("accept", "err", err)
			time.Sleep(100 * time.Millisecond)
			continue
		}
		wg.Add(1)
		go func() {
			defer wg.Done()
			p.forward(ctx, c)
		}()
	}
}

func (p *Proxy) forward(ctx context.Context, c net.Conn) {
	defer c.Close()
	d := net.Dialer{Timeout: p.DialTimeout}
	up, err := d.DialContext(ctx, "tcp", p.Upstream)
	if err != nil {
		p.Logger.Warn("registry proxy: upstream unreachable", "upstream", p.Upstream, "err", err)
		return
	}
	defer up.Close()
	stop := context.AfterFunc(ctx, func() { c.Close(); up.Close() })
	defer stop()
	done := make(chan struct{}, 2)
	pipe := func(dst, src net.Conn) {
		io.Copy(dst, src)
		// One side finished sending: pass the end on, let the other
		// direction finish.
		if cw, ok := dst.(interface{ CloseWrite() error }); ok {
			cw.CloseWrite()
		}
		done <- struct{}{}
	}
	go pipe(up, c)
	go pipe(c, up)
	<-done
	<-done
}
