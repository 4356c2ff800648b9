package gitserve

import (
	"bufio"
	"context"
	"errors"
	"fmt"
	"io"
	"os"
	"path/filepath"
	"strings"
)

// The environment the server gives git-receive-pack, and through it the
// hooks: who pushes where.
const (
	EnvRepo   = "STACK_REPO"   // repository name
	EnvPusher = "STACK_PUSHER" // principal of the pushing key
	EnvData   = "STACK_DATA"   // data directory of the server
	EnvConfig = "STACK_CONFIG" // config directory (admins, developers, git.yaml)
)

// RefUpdate is one ref a push changes, as git gives it to the hooks.
type RefUpdate struct {
	Old string `json:"old"` // object id before; all zeros when the ref is created
	New string `json:"new"` // object id after; all zeros when the ref is deleted
	Ref string `json:"ref"` // full ref name, refs/heads/main
}

// Created reports whether the update creates the ref.
func (u RefUpdate) Created() bool { return zeroID(u.Old) }

// Deleted reports whether the update deletes the ref.
func (u RefUpdate) Deleted() bool { return zeroID(u.New) }

func zeroID(id string) bool { return strings.Trim(id, "0") == "" }

// HookEnv is what a hook knows about the push it runs for.
type HookEnv struct {
	// Repo is the repository name (NAME or GROUP/NAME).
	Repo string
	// Path is the absolute path of the bare repository; the hook's working
	// directory. Git's own variables (GIT_DIR, and in pre-receive the
	// quarantine's GIT_OBJECT_DIRECTORY and GIT_ALTERNATE_OBJECT_DIRECTORIES)
	// stay in the process environment, so git commands run by a callback see
	// the pushed objects.
	Path string
	// Pusher is the principal of the key that pushed; empty for a push that
	// did not come through the server (a local push into the data directory).
	Pusher string
	// DataDir is the server's data directory.
	DataDir string
	// ConfigDir is the server's config directory.
	ConfigDir string
}

// Hooks are the callbacks `stack hook NAME` runs. A nil callback accepts
// (PreReceive) or does nothing (PostReceive).
type Hooks struct {
	// PreReceive decides on a whole push before any ref moves. A non-nil
	// error rejects every update: each line of it is printed to stderr, which
	// the client shows as "remote: ...".
	PreReceive func(ctx context.Context, env HookEnv, updates []RefUpdate, stderr io.Writer) error
	// PostReceive runs after the refs moved. Whatever it writes to stderr
	// reaches the client; it cannot undo the push.
	PostReceive func(ctx context.Context, env HookEnv, updates []RefUpdate, stderr io.Writer)
}

// ErrRejected is returned by RunHook when the pre-receive callback rejected
// the push; the reason was already written to stderr, and the hook process
// should exit with status 1 and print nothing more.
var ErrRejected = errors.New("push rejected")

// RunHook runs the git hook name ("pre-receive" or "post-receive") in a hook
// process started by git: it reads the ref updates from stdin, the push's
// details from the environment, and calls the matching callback.
func RunHook(ctx context.Context, name string, stdin io.Reader, stderr io.Writer, h Hooks) error {
	env, err := hookEnv(os.Getenv)
	if err != nil {
		return fmt.Errorf("%s hook: %w", name, err)
	}
	return runHook(ctx, name, env, stdin, stderr, h)
}

func runHook(ctx context.Context, name string, env HookEnv, stdin io.Reader, stderr io.Writer, h Hooks) error {
	switch name {
	case "pre-receive", "post-receive":
	default:
		return fmt.Errorf("unknown hook %q: stack runs pre-receive and post-receive", name)
	}
	updates, err := ParseRefUpdates(stdin)
	if err != nil {
		if name == "pre-receive" {
			fmt.Fprintf(stderr, "stack: cannot read the pushed refs: %v\n", err)
			return fmt.Errorf("%w: %v", ErrRejected, err)
		}
		return fmt.Errorf("%s hook: %w", name, err)
	}
	if name == "post-receive" {
		if h.PostReceive != nil {
			h.PostReceive(ctx, env, updates, stderr)
		}
		return nil
	}
	if h.PreReceive == nil {
		return nil
	}
	if err := h.PreReceive(ctx, env, updates, stderr); err != nil {
		for _, line := range strings.Split(strings.TrimRight(err.Error(), "\n"), "\n") {
			fmt.Fprintln(stderr, line)
		}
		return fmt.Errorf("%w: %v", ErrRejected, err)
	}
	return nil
}

// hookEnv reads the push's details from the environment of a hook process.
func hookEnv(getenv func(string) string) (HookEnv, error) {
	env := HookEnv{
		Repo:      getenv(EnvRepo),
		Pusher:    getenv(EnvPusher),
		DataDir:   getenv(EnvData),
		ConfigDir: getenv(EnvConfig),
	}
	dir := getenv("GIT_DIR")
	if dir == "" {
		return env, errors.New("GIT_DIR is not set: `stack hook` is run by git in a repository, not by hand")
	}
	if !filepath.IsAbs(dir) {
		wd, err := os.Getwd()
		if err != nil {
			return env, err
		}
		dir = filepath.Join(wd, dir)
	}
	env.Path = filepath.Clean(dir)
	if env.Repo == "" {
		env.Repo = strings.TrimSuffix(filepath.Base(env.Path), ".git")
	}
	return env, nil
}

// ParseRefUpdates reads the lines git gives pre-receive and post-receive:
// "OLD NEW REF", object ids in hex (40 for SHA-1, 64 for SHA-256).
func ParseRefUpdates(r io.Reader) ([]RefUpdate, error) {
	var out []RefUpdate
	sc := bufio.NewScanner(r)
	sc.Buffer(make([]byte, 0, 4096), 64*1024)
	for n := 1; sc.Scan(); n++ {
		f := strings.Split(sc.Text(), " ")
		if len(f) != 3 {
			return nil, fmt.Errorf("line %d: want \"OLD NEW REF\", got %d fields", n, len(f))
		}
		u := RefUpdate{Old: f[0], New: f[1], Ref: f[2]}
		if !objectID(u.Old) || !objectID(u.New) || len(u.Old) != len(u.New) {
			return nil, fmt.Errorf("line %d: %q and %q are not object ids of one hash", n, u.Old, u.New)
		}
		if !strings.HasPrefix(u.Ref, "refs/") && u.Ref != "HEAD" {
			return nil, fmt.Errorf("line %d: %q is not a full ref name", n, u.Ref)
		}
		for _, c := range []byte(u.Ref) {
			if c < ' ' || c == 0x7f {
				return nil, fmt.Errorf("line %d: ref name has a control character", n)
			}
		}
		out = append(out, u)
	}
	if err := sc.Err(); err != nil {
		return nil, err
	}
	return out, nil
}

func objectID(s string) bool {
	if len(s) != 40 && len(s) != 64 {
		return false
	}
	for _, c := range []byte(s) {
		if !(c >= '0' && c <= '9' || c >= 'a' && c <= 'f') {
			return false
		}
	}
	return true
}
