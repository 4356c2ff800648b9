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
	// GitDir is the repository the command ran on, when Cmd.GitDir named it.
	GitDir string
	// Stderr is what git printed on stderr, trimmed.
	Stderr string
	Err    error
}

func (e *Error) Error() string {
	msg := e.Stderr
	if msg == "" {
		msg = e.Err.Error()
	}
	if e.GitDir != "" {
		return fmt.Sprintf("git %s in %s: %s", e.Args[0], e.GitDir, msg)
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
	// GitDir, when set, is the repository git works on (git
	// --git-dir=GitDir): git does not search for one, and errors name it.
	GitDir string
	// Isolated leaves the GIT_* variables of this process's environment
	// out: a hook inherits GIT_DIR, GIT_QUARANTINE_PATH and more from the
	// push, which would point git at another repository.
	Isolated bool
	// Env is added to this process's environment.
	Env []string
	// Stdin, when set, is the command's standard input.
	Stdin io.Reader
	// Stderr, when set, gets git's standard error as git writes it (an
	// Error still carries it).
	Stderr io.Writer
}

// Environ is the environment the command runs with.
func (c Cmd) Environ() []string {
	env := os.Environ()
	if c.Isolated {
		env = env[:0:0]
		for _, kv := range os.Environ() {
			if !strings.HasPrefix(kv, "GIT_") {
				env = append(env, kv)
			}
		}
	}
	return append(append(env, "GIT_TERMINAL_PROMPT=0", "LC_ALL=C"), c.Env...)
}

// Run runs git with args and returns its standard output. A failure is an
// *Error.
func (c Cmd) Run(ctx context.Context, args ...string) ([]byte, error) {
	argv := args
	if c.GitDir != "" {
		argv = append([]string{"--git-dir=" + c.GitDir}, args...)
	}
	cmd := exec.CommandContext(ctx, "git", argv...)
	cmd.Dir = c.Dir
	cmd.Stdin = c.Stdin
	cmd.Env = c.Environ()
	var stderr bytes.Buffer
	cmd.Stderr = &stderr
	if c.Stderr != nil {
		cmd.Stderr = io.MultiWriter(&stderr, c.Stderr)
	}
	out, err := cmd.Output()
	if err != nil {
		return out, &Error{Args: args, GitDir: c.GitDir, Stderr: strings.TrimSpace(stderr.String()), Err: err}
	}
	return out, nil
}

// Run runs git with args in dir and returns its standard output.
func Run(ctx context.Context, dir string, args ...string) ([]byte, error) {
	return Cmd{Dir: dir}.Run(ctx, args...)
}
