// Command health is the stack's health service: a small static HTTP/1.1
// server that answers GET / (and HEAD /) with 200 "healthy\n", other
// methods on / with 405 and every other path with 404. It listens on :8080
// unless -addr or $HEALTH_ADDR say otherwise, logs nothing per request, and
// shuts down gracefully on SIGTERM or SIGINT.
package main

import (
	"context"
	"errors"
	"flag"
	"fmt"
	"io"
	"log/slog"
	"net"
	"os"
	"os/signal"
	"syscall"
	"time"
)

const defaultAddr = ":8080"

func main() {
	ctx, stop := signal.NotifyContext(context.Background(), syscall.SIGTERM, syscall.SIGINT)
	defer stop()
	if err := run(ctx, os.Args[1:], os.Getenv, os.Stderr, nil); err != nil {
		fmt.Fprintln(os.Stderr, "health:", err)
		os.Exit(1)
	}
}

// run serves until ctx is done, then shuts down gracefully. ready, if not
// nil, receives the address listened on.
func run(ctx context.Context, args []string, getenv func(string) string, stderr io.Writer, ready chan<- net.Addr) error {
	fs := flag.NewFlagSet("health", flag.ContinueOnError)
	fs.SetOutput(stderr)
	addr := defaultAddr
	if v := getenv("HEALTH_ADDR"); v != "" {
		addr = v
	}
	fs.StringVar(&addr, "addr", addr, "address to listen on (also $HEALTH_ADDR)")
	if err := fs.Parse(args); err != nil {
		return err
	}
	if fs.NArg() > 0 {
		return fmt.Errorf("unexpected argument %q: health takes only -addr", fs.Arg(0))
	}
	log := slog.New(slog.NewTextHandler(stderr, nil))

	ln, err := net.Listen("tcp", addr)
	if err != nil {
		return err
	}
	srv := newServer(log)
	log.Info("listening", "addr", ln.Addr().String())
	if ready != nil {
		ready <- ln.Addr()
	}

	errc := make(chan error, 1)
	go func() { errc <- srv.serve(ln) }()
	select {
	case err := <-errc:
		return err
	case <-ctx.Done():
	}
	log.Info("shutting down")
	sctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	if err := srv.shutdown(sctx); err != nil {
		return fmt.Errorf("shutdown: connections still open after 10s: %w", err)
	}
	if err := <-errc; !errors.Is(err, errServerClosed) {
		return err
	}
	return nil
}
