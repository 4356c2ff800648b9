// Command stack takes an infrastructure repository from zero to running
// services: it fetches and verifies every upstream source, builds every tool
// and image, serves git, registry and CI, and deploys to the environments.
//
// This package only parses arguments; the work is done in internal/.
package main

import (
	"context"
	"errors"
	"fmt"
	"io"
	"os"
	"os/signal"
	"syscall"

	"github.com/hashbang/stack/internal/gitserve"
)

func main() {
	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
	root := newRootCmd()
	// git runs a served repository's hooks as links to stack named for
	// the hook: hooks/pre-receive is `stack hook pre-receive`.
	if name, ok := gitserve.HookArgs(os.Args); ok && len(os.Args) == 1 {
		root.SetArgs([]string{"hook", name})
	}
	err := root.ExecuteContext(ctx)
	stop()
	os.Exit(exit(os.Stderr, err))
}

// Exit statuses, the same for every command: 0 when it did what it was
// asked and found nothing wrong, 1 on an error, 2 when a command that
// compares or checks ran and found differences (stack diff, build --check,
// repro, policy verify), so that scripts can tell "differs" from "broke".
const (
	exitFailed  = 1
	exitDiffers = 2
)

// exitError ends stack with exit status code; err, when not nil, is
// printed first.
type exitError struct {
	code int
	err  error
}

func (e *exitError) Error() string {
	if e.err == nil {
		return fmt.Sprintf("exit status %d", e.code)
	}
	return e.err.Error()
}

func (e *exitError) Unwrap() error { return e.err }

// exitCode is an error that makes stack exit with code, printing err if
// it is not nil (nil: what went wrong is printed already).
func exitCode(code int, err error) error { return &exitError{code: code, err: err} }

// differences is the error of a command that ran and found differences:
// stack prints err and exits 2.
func differences(err error) error { return exitCode(exitDiffers, err) }

// exit prints err on w, as `stack: ERR`, and returns the exit status it
// means: 0 for none, an exitError's code, else 1.
func exit(w io.Writer, err error) int {
	if err == nil {
		return 0
	}
	code, msg := exitFailed, err
	var ee *exitError
	if errors.As(err, &ee) {
		code, msg = ee.code, ee.err
	}
	if msg != nil {
		fmt.Fprintf(w, "stack: %v\n", msg)
	}
	return code
}
