package serve

import (
	"context"
	"encoding/base64"
	"fmt"
	"os/exec"
	"strings"

	"github.com/hashbang/stack/internal/gitserve"
	"github.com/hashbang/stack/internal/policy"
)

// Git config keys of a served bare repository that hold its trust root
// (read by policy.ConfiguredRoot). They live in the server's copy of the
// repository, outside anything a push can change.
const (
	RootKey    = "stack.policy.root"
	RootKeyKey = "stack.policy.rootKey"
)

// TrustRoot returns the trust root of the served repository name; an empty
// TrustRoot when none is set.
func TrustRoot(ctx context.Context, dataDir, name string) (policy.TrustRoot, error) {
	path, err := gitserve.Resolve(dataDir, name)
	if err != nil {
		return policy.TrustRoot{}, err
	}
	return policy.ConfiguredRoot(ctx, path)
}

// SetTrustRoot makes commit (and, if key is not empty, the SHA256:...
// fingerprint of the admin key that signed it) the trust root of the served
// repository name: the pre-receive hook then accepts pushes to protected
// refs only along signed history that grows from it. commit is a full
// object id, or any revision that names a commit already in the repository
// (stored as its full id, never as a moving name).
func SetTrustRoot(ctx context.Context, dataDir, name, commit, key string) (policy.TrustRoot, error) {
	path, err := gitserve.Resolve(dataDir, name)
	if err != nil {
		return policy.TrustRoot{}, err
	}
	id := commit
	if !isObjectID(commit) {
		if id, err = policy.ResolveCommit(ctx, path, commit); err != nil {
			return policy.TrustRoot{}, fmt.Errorf("trust root %q: not a full commit id (40 or 64 hex digits) and no such commit in %s: give the full id of the signed root commit", commit, name)
		}
	} else {
		id = strings.ToLower(commit)
	}
	if key != "" {
		if err := checkFingerprint(key); err != nil {
			return policy.TrustRoot{}, err
		}
	}
	if err := gitConfig(ctx, path, RootKey, id); err != nil {
		return policy.TrustRoot{}, err
	}
	if key == "" {
		err = gitConfig(ctx, path, "--unset-all", RootKeyKey)
		if ee, ok := err.(*exec.ExitError); ok && ee.ExitCode() == 5 {
			err = nil // it was not set
		}
	} else {
		err = gitConfig(ctx, path, RootKeyKey, key)
	}
	if err != nil {
		return policy.TrustRoot{}, err
	}
	return policy.TrustRoot{Commit: id, Key: key}, nil
}

func gitConfig(ctx context.Context, repo string, args ...string) error {
	cmd := exec.CommandContext(ctx, "git", append([]string{"--git-dir", repo, "config"}, args...)...)
	if out, err := cmd.CombinedOutput(); err != nil {
		if ee, ok := err.(*exec.ExitError); ok && ee.ExitCode() == 5 {
			return err
		}
		return fmt.Errorf("git config %s: %v: %s", strings.Join(args, " "), err, strings.TrimSpace(string(out)))
	}
	return nil
}

func isObjectID(s string) bool {
	if len(s) != 40 && len(s) != 64 {
		return false
	}
	for _, c := range []byte(strings.ToLower(s)) {
		if !(c >= '0' && c <= '9' || c >= 'a' && c <= 'f') {
			return false
		}
	}
	return true
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
