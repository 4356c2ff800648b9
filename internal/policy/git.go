package policy

import (
	"bufio"
	"bytes"
	"context"
	"encoding/base64"
	"errors"
	"fmt"
	"io"
	"os/exec"
	"strconv"
	"strings"

	"github.com/hashbang/stack/internal/gitcmd"
)

// repo reads objects of a git repository through the real git binary: one
// long-lived `git cat-file --batch-command` for objects, one-shot commands
// for the rest. Hooks run it with the environment git gives them, so objects
// of a push still in quarantine are visible.
type repo struct {
	dir    string
	hexLen int
	cmd    *exec.Cmd
	stdin  io.WriteCloser
	in     *bufio.Writer
	out    *bufio.Reader
	stderr bytes.Buffer
}

func openRepo(ctx context.Context, dir string) (*repo, error) {
	r := &repo{dir: dir}
	format, err := r.git(ctx, "rev-parse", "--show-object-format")
	if err != nil {
		return nil, fmt.Errorf("open repository %s: %w", dir, err)
	}
	switch strings.TrimSpace(string(format)) {
	case "sha1":
		r.hexLen = 40
	case "sha256":
		r.hexLen = 64
	default:
		return nil, fmt.Errorf("open repository %s: unknown object format %q", dir, format)
	}
	r.cmd = exec.CommandContext(ctx, "git", "-C", dir, "cat-file", "--batch-command")
	r.cmd.Stderr = &r.stderr
	if r.stdin, err = r.cmd.StdinPipe(); err != nil {
		return nil, err
	}
	stdout, err := r.cmd.StdoutPipe()
	if err != nil {
		return nil, err
	}
	if err := r.cmd.Start(); err != nil {
		return nil, fmt.Errorf("start git cat-file: %w", err)
	}
	r.in = bufio.NewWriter(r.stdin)
	r.out = bufio.NewReaderSize(stdout, 64<<10)
	return r, nil
}

func (r *repo) Close() error {
	if r.cmd == nil {
		return nil
	}
	r.stdin.Close()
	err := r.cmd.Wait()
	r.cmd = nil
	return err
}

// git runs one git command in the repository and returns its stdout.
func (r *repo) git(ctx context.Context, args ...string) ([]byte, error) {
	return gitcmd.Run(ctx, r.dir, args...)
}

// errMissing is returned for object names that do not resolve.
var errMissing = errors.New("missing object")

// request sends one batch command and reads the reply header:
// "<oid> <type> <size>" or "<name> missing".
func (r *repo) request(cmd, name string) (oid, typ string, size int, err error) {
	if strings.ContainsAny(name, "\n") {
		return "", "", 0, fmt.Errorf("bad object name %q", name)
	}
	fmt.Fprintf(r.in, "%s %s\n", cmd, name)
	if err := r.in.Flush(); err != nil {
		return "", "", 0, r.broken(err)
	}
	line, err := r.out.ReadString('\n')
	if err != nil {
		return "", "", 0, r.broken(err)
	}
	f := strings.Fields(line)
	if len(f) == 2 && (f[1] == "missing" || f[1] == "ambiguous") {
		return "", "", 0, fmt.Errorf("%s: %w", name, errMissing)
	}
	if len(f) != 3 {
		return "", "", 0, fmt.Errorf("git cat-file: unexpected reply %q", line)
	}
	size, err = strconv.Atoi(f[2])
	if err != nil || size < 0 {
		return "", "", 0, fmt.Errorf("git cat-file: unexpected reply %q", line)
	}
	return f[0], f[1], size, nil
}

func (r *repo) broken(err error) error {
	if msg := strings.TrimSpace(r.stderr.String()); msg != "" {
		return fmt.Errorf("git cat-file: %s", msg)
	}
	return fmt.Errorf("git cat-file: %w", err)
}

// info resolves name to an object id and type.
func (r *repo) info(name string) (oid, typ string, err error) {
	oid, typ, _, err = r.request("info", name)
	return oid, typ, err
}

// contents reads the object name and checks its type.
func (r *repo) contents(name, want string) (oid string, data []byte, err error) {
	oid, typ, size, err := r.request("contents", name)
	if err != nil {
		return "", nil, err
	}
	data = make([]byte, size+1)
	if _, err := io.ReadFull(r.out, data); err != nil {
		return "", nil, r.broken(err)
	}
	if data[size] != '\n' {
		return "", nil, errors.New("git cat-file: reply not terminated by a newline")
	}
	if typ != want {
		return "", nil, fmt.Errorf("%s is a %s, not a %s", name, typ, want)
	}
	return oid, data[:size], nil
}

// commit reads and parses a commit.
func (r *repo) commit(name string) (*Commit, error) {
	oid, raw, err := r.contents(name, "commit")
	if err != nil {
		return nil, err
	}
	c, err := ParseCommit(oid, raw, r.hexLen)
	if err != nil {
		return nil, fmt.Errorf("commit %s: %w", oid, err)
	}
	return c, nil
}

// resolve turns a revision into a full commit id.
func (r *repo) resolve(rev string) (string, error) {
	if rev == "" || strings.HasPrefix(rev, "-") {
		return "", fmt.Errorf("bad revision %q", rev)
	}
	oid, _, err := r.info(rev + "^{commit}")
	if err != nil {
		return "", fmt.Errorf("no commit %q in %s", rev, r.dir)
	}
	return oid, nil
}

// isAncestor reports whether a is an ancestor of (or equal to) b.
func (r *repo) isAncestor(ctx context.Context, a, b string) (bool, error) {
	cmd := exec.CommandContext(ctx, "git", "-C", r.dir, "merge-base", "--is-ancestor", a, b)
	var stderr bytes.Buffer
	cmd.Stderr = &stderr
	err := cmd.Run()
	var exit *exec.ExitError
	switch {
	case err == nil:
		return true, nil
	case errors.As(err, &exit) && exit.ExitCode() == 1:
		return false, nil
	}
	return false, fmt.Errorf("git merge-base: %s", strings.TrimSpace(stderr.String()))
}

// revList lists commit ids, oldest first, parents before children.
func (r *repo) revList(ctx context.Context, args ...string) ([]string, error) {
	out, err := r.git(ctx, append([]string{"rev-list", "--topo-order", "--reverse"}, args...)...)
	if err != nil {
		return nil, err
	}
	return strings.Fields(string(out)), nil
}

// notes maps annotated object ids to note blob ids in the notes commit
// (or ref) rev, reading its tree however the notes are fanned out.
func (r *repo) notes(ctx context.Context, rev string) (map[string]string, error) {
	out, err := r.git(ctx, "ls-tree", "-r", "-z", rev+"^{commit}")
	if err != nil {
		return nil, err
	}
	notes := map[string]string{}
	for _, entry := range strings.Split(string(out), "\x00") {
		if entry == "" {
			continue
		}
		meta, p, ok := strings.Cut(entry, "\t")
		f := strings.Fields(meta)
		if !ok || len(f) != 3 || f[1] != "blob" {
			continue
		}
		id := strings.ReplaceAll(p, "/", "")
		if isHex(id, r.hexLen) {
			notes[id] = f[2]
		}
	}
	return notes, nil
}

// Git config keys that hold a repository's trust root, outside its
// history: in a served bare repository (stack repo trust, SetTrustRoot) or
// in a clone (git config). Only this package reads or writes them.
const (
	RootConfig    = "stack.policy.root"
	RootKeyConfig = "stack.policy.rootKey"
)

// ConfiguredRoot reads the trust root a clone's own git configuration
// names (git config stack.policy.root and stack.policy.rootKey). The local
// configuration is outside the checked history, like a flag. An unset root
// gives an empty TrustRoot.
func ConfiguredRoot(ctx context.Context, dir string) (TrustRoot, error) {
	r := &repo{dir: dir}
	get := func(key string) string {
		out, err := r.git(ctx, "config", "--get", key)
		if err != nil {
			return ""
		}
		return strings.TrimSpace(string(out))
	}
	return TrustRoot{Commit: get(RootConfig), Key: get(RootKeyConfig)}, nil
}

// SetTrustRoot writes root into the git config of the repository dir,
// where ConfiguredRoot reads it. root.Commit is a full commit id (the
// commit need not be in the repository yet) or a revision naming a commit
// already in it, stored as its full id, never as a moving name. root.Key,
// if not empty, is the SHA256:... fingerprint of the admin key that must
// have signed the root; an empty Key removes a pinned one. It returns the
// root as stored.
func SetTrustRoot(ctx context.Context, dir string, root TrustRoot) (TrustRoot, error) {
	id := strings.ToLower(root.Commit)
	if !isHex(id, 40) && !isHex(id, 64) {
		var err error
		if id, err = ResolveCommit(ctx, dir, root.Commit); err != nil {
			return TrustRoot{}, fmt.Errorf("trust root %q: not a full commit id (40 or 64 hex digits) and no such commit in %s: give the full id of the signed root commit", root.Commit, dir)
		}
	}
	if root.Key != "" {
		if err := checkFingerprint(root.Key); err != nil {
			return TrustRoot{}, err
		}
	}
	r := &repo{dir: dir}
	if _, err := r.git(ctx, "config", RootConfig, id); err != nil {
		return TrustRoot{}, err
	}
	var err error
	if root.Key == "" {
		_, err = r.git(ctx, "config", "--unset-all", RootKeyConfig)
		if ge, ok := err.(*gitcmd.Error); ok && ge.ExitCode() == 5 {
			err = nil // it was not set
		}
	} else {
		_, err = r.git(ctx, "config", RootKeyConfig, root.Key)
	}
	if err != nil {
		return TrustRoot{}, err
	}
	return TrustRoot{Commit: id, Key: root.Key}, nil
}

// checkFingerprint checks a key fingerprint as ssh-keygen -l prints it.
func checkFingerprint(fp string) error {
	b64, ok := strings.CutPrefix(fp, "SHA256:")
	if !ok {
		return fmt.Errorf("trust key %q: want a SHA256:... fingerprint, as `ssh-keygen -l -f KEY.pub` prints it", fp)
	}
	if raw, err := base64.RawStdEncoding.DecodeString(b64); err != nil || len(raw) != 32 {
		return fmt.Errorf("trust key %q: not a SHA256 fingerprint (43 base64 characters after SHA256:), as `ssh-keygen -l -f KEY.pub` prints it", fp)
	}
	return nil
}

// ResolveCommit returns the full id of the commit rev names.
func ResolveCommit(ctx context.Context, dir, rev string) (string, error) {
	if rev == "" || strings.HasPrefix(rev, "-") {
		return "", fmt.Errorf("bad revision %q", rev)
	}
	r := &repo{dir: dir}
	out, err := r.git(ctx, "rev-parse", "--verify", "--quiet", "--end-of-options", rev+"^{commit}")
	if err != nil {
		return "", fmt.Errorf("no commit %q in %s", rev, dir)
	}
	return strings.TrimSpace(string(out)), nil
}
