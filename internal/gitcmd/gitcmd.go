// Package gitcmd runs the real git program for the stages that read and
// write repositories, so that they all run it the same way: no prompts, the
// C locale, and errors that carry what git said on stderr.
package gitcmd

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"io"
	"os"
	"os/exec"
	"strings"
)

// Error is a git command that failed.
type Error struct {
	Args []string
	// Stderr is what git printed on stderr, trimmed.
	Stderr string
	Err    error
}

func (e *Error) Error() string {
	msg := e.Stderr
	if msg == "" {
		msg = e.Err.Error()
	}
	return fmt.Sprintf("git %s: %s", e.Args[0], msg)
}

func (e *Error) Unwrap() error { return e.Err }

// ExitCode is git's exit status, or -1 if it did not exit normally.
func (e *Error) ExitCode() int {
	var ee *exec.ExitError
	if errors.As(e.Err, &ee) {
		return ee.ExitCode()
	}
	return -1
}

// Cmd says where and how one git command runs.
type Cmd struct {
	// Dir is the working directory; empty means the current one.
	Dir string
	// Env is added to this process's environment.
	Env []string
	// Stdin, when set, is the command's standard input.
	Stdin io.Reader
}

// Run runs git with args and returns its standard output. A failure is an
// *Error.
func (c Cmd) Run(ctx context.Context, args ...string) ([]byte, error) {
	cmd := exec.CommandContext(ctx, "git", args...)
	cmd.Dir = c.Dir
	cmd.Stdin = c.Stdin
	cmd.Env = append(append(os.Environ(), "GIT_TERMINAL_PROMPT=0", "LC_ALL=C"), c.Env...)
	var stderr bytes.Buffer
	cmd.Stderr = &stderr
	out, err := cmd.Output()
	if err != nil {
		return out, &Error{Args: args, Stderr: strings.TrimSpace(stderr.String()), Err: err}
	}
	return out, nil
}

// Run runs git with args in dir and returns its standard output.
func Run(ctx context.Context, dir string, args ...string) ([]byte, error) {
	return Cmd{Dir: dir}.Run(ctx, args...)
}
