package ci

import (
	"context"
	"errors"
	"fmt"
	"io"
	"os"
	"path/filepath"
	"strconv"
	"strings"

	"github.com/hashbang/stack/internal/gitcmd"
)

// gitCmd is how CI runs git on the bare repository repo (none if empty):
// without the GIT_* variables a hook inherits from the push (GIT_DIR,
// GIT_QUARANTINE_PATH...), which would point git elsewhere, and without the
// system's git config. A failure is a *gitcmd.Error naming repo and
// carrying git's stderr.
func gitCmd(repo string) gitcmd.Cmd {
	return gitcmd.Cmd{GitDir: repo, Isolated: true, Env: []string{"GIT_CONFIG_NOSYSTEM=1"}}
}

// gitRaw runs git against the bare repository at repo and returns its stdout.
func gitRaw(ctx context.Context, repo string, args ...string) ([]byte, error) {
	return gitCmd(repo).Run(ctx, args...)
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
	var ge *gitcmd.Error
	if errors.As(err, &ge) && ge.ExitCode() == 1 {
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
// repo: a clone with a copy of repo's objects (not hard links, which the
// job's user would own once the work directory is chowned to it; not
// shared, which would need repo readable in the job's sandbox) with commit
// checked out detached, so `git rev-parse HEAD` in the job prints the
// commit.
func checkout(ctx context.Context, repo, commit, dir string, log io.Writer) error {
	run := func(in string, args ...string) error {
		c := gitCmd("")
		c.Dir, c.Stderr = in, log
		// git -c advice.detachedHead=false, as the environment says it.
		c.Env = append(c.Env, "GIT_CONFIG_COUNT=1", "GIT_CONFIG_KEY_0=advice.detachedHead", "GIT_CONFIG_VALUE_0=false")
		out, err := c.Run(ctx, args...)
		log.Write(out)
		return err
	}
	if err := run("", "clone", "--quiet", "--no-checkout", "--no-hardlinks", "--", repo, dir); err != nil {
		return err
	}
	return run(dir, "checkout", "--quiet", "--detach", commit, "--")
}
