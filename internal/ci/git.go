package ci

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"io"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
)

// gitEnv is the environment of the git commands CI runs: the process's own
// without GIT_* variables, which a hook inherits from the push (GIT_DIR,
// GIT_QUARANTINE_PATH...) and which would point git elsewhere.
func gitEnv() []string {
	var env []string
	for _, kv := range os.Environ() {
		if !strings.HasPrefix(kv, "GIT_") {
			env = append(env, kv)
		}
	}
	return append(env, "GIT_TERMINAL_PROMPT=0", "GIT_CONFIG_NOSYSTEM=1")
}

// gitError is a failed git command, with what it printed on stderr.
type gitError struct {
	args []string
	repo string
	msg  string
	err  error
}

func (e *gitError) Error() string {
	return fmt.Sprintf("git %s in %s: %s", e.args[0], e.repo, e.msg)
}

func (e *gitError) Unwrap() error { return e.err }

// gitRaw runs git against the bare repository at repo and returns its stdout.
func gitRaw(ctx context.Context, repo string, args ...string) ([]byte, error) {
	cmd := exec.CommandContext(ctx, "git", append([]string{"--git-dir=" + repo}, args...)...)
	cmd.Env = gitEnv()
	var out, errb bytes.Buffer
	cmd.Stdout, cmd.Stderr = &out, &errb
	if err := cmd.Run(); err != nil {
		msg := strings.TrimSpace(errb.String())
		if msg == "" {
			msg = err.Error()
		}
		return nil, &gitError{args: args, repo: repo, msg: msg, err: err}
	}
	return out.Bytes(), nil
}

// git is gitRaw with the output's trailing newline removed.
func git(ctx context.Context, repo string, args ...string) (string, error) {
	out, err := gitRaw(ctx, repo, args...)
	return strings.TrimSuffix(string(out), "\n"), err
}

// commitOf resolves rev to a commit id in repo (peeling tags), or returns
// "" if it names no commit.
func commitOf(ctx context.Context, repo, rev string) (string, error) {
	out, err := git(ctx, repo, "rev-parse", "--verify", "--quiet", "--end-of-options", rev+"^{commit}")
	var ee *exec.ExitError
	if errors.As(err, &ee) && ee.ExitCode() == 1 {
		return "", nil
	}
	return out, err
}

// ReadPipelines reads and parses the pipelines file at commit in the bare
// repository repo. It returns nil and no error if the commit has no such
// file: a repository without CI.
func ReadPipelines(ctx context.Context, repo, commit string) (*Config, error) {
	out, err := git(ctx, repo, "ls-tree", "-l", "-z", commit, "--", PipelinesFile)
	if err != nil {
		return nil, err
	}
	if out == "" {
		return nil, nil
	}
	// "<mode> SP <type> SP <object> SP+ <size> TAB <path> NUL"
	meta, _, _ := strings.Cut(out, "\t")
	f := strings.Fields(meta)
	if len(f) != 4 {
		return nil, fmt.Errorf("git ls-tree %s: unexpected output %q", PipelinesFile, out)
	}
	where := fmt.Sprintf("%s at %.12s", PipelinesFile, commit)
	if f[1] != "blob" || (f[0] != "100644" && f[0] != "100755") {
		return nil, fmt.Errorf("%s: not a regular file (mode %s %s): make it a plain file", where, f[0], f[1])
	}
	if size, err := strconv.ParseInt(f[3], 10, 64); err != nil || size > maxPipelinesSize {
		return nil, fmt.Errorf("%s: %s bytes, larger than the %d allowed", where, f[3], maxPipelinesSize)
	}
	data, err := gitRaw(ctx, repo, "cat-file", "blob", f[2])
	if err != nil {
		return nil, err
	}
	return Parse(PipelinesFile, data)
}

// head returns the ref HEAD of a bare repository points at (its default
// branch) and that ref's commit; commit is "" in an empty repository.
func head(ctx context.Context, repo string) (ref, commit string, err error) {
	b, err := os.ReadFile(filepath.Join(repo, "HEAD"))
	if err != nil {
		return "", "", fmt.Errorf("repository %s: %w", repo, err)
	}
	ref = "HEAD"
	if r, ok := strings.CutPrefix(strings.TrimSpace(string(b)), "ref: "); ok {
		ref = r
	}
	commit, err = commitOf(ctx, repo, ref)
	return ref, commit, err
}

// ResolveRef turns what a person typed (main, v1.2, refs/heads/main, or
// nothing for the default branch) into a full ref name and its commit.
func ResolveRef(ctx context.Context, repo, rev string) (ref, commit string, err error) {
	if rev == "" {
		ref, commit, err = head(ctx, repo)
		if err == nil && commit == "" {
			err = fmt.Errorf("repository %s has no commits on %s yet: push first", repo, ref)
		}
		return ref, commit, err
	}
	if strings.HasPrefix(rev, "-") {
		return "", "", fmt.Errorf("%q is not a ref name", rev)
	}
	// rev cannot start with "-" (checked above), so it is no option.
	out, err := git(ctx, repo, "rev-parse", "--symbolic-full-name", rev, "--")
	ref, _, _ = strings.Cut(out, "\n")
	if err != nil || !strings.HasPrefix(ref, "refs/") {
		return "", "", fmt.Errorf("%q is not a branch or tag of %s: give one from `git ls-remote`", rev, repo)
	}
	commit, err = commitOf(ctx, repo, ref)
	if err == nil && commit == "" {
		err = fmt.Errorf("%s in %s does not point at a commit", ref, repo)
	}
	return ref, commit, err
}

// checkout makes dir a clean checkout of commit from the bare repository
// repo: a clone that shares repo's objects (no copy) with commit checked out
// detached, so `git rev-parse HEAD` in the job prints the commit.
func checkout(ctx context.Context, repo, commit, dir string, log io.Writer) error {
	run := func(args ...string) error {
		cmd := exec.CommandContext(ctx, "git", args...)
		cmd.Env = gitEnv()
		cmd.Stdout, cmd.Stderr = log, log
		if err := cmd.Run(); err != nil {
			return fmt.Errorf("git %s: %w", args[0], err)
		}
		return nil
	}
	if err := run("clone", "--quiet", "--no-checkout", "--shared", "--", repo, dir); err != nil {
		return err
	}
	return run("-C", dir, "-c", "advice.detachedHead=false", "checkout", "--quiet", "--detach", commit, "--")
}
