package serve

import (
	"context"
	"errors"
	"fmt"

	"github.com/hashbang/stack/internal/gitserve"
	"github.com/hashbang/stack/internal/policy"
)

// TrustRoot returns the trust root of the served repository name; an empty
// TrustRoot when none is set. It is kept in the bare repository's git
// config (policy.ConfiguredRoot), outside anything a push can change.
func TrustRoot(ctx context.Context, dataDir, name string) (policy.TrustRoot, error) {
	path, err := gitserve.Resolve(dataDir, name)
	if err != nil {
		return policy.TrustRoot{}, err
	}
	return policy.ConfiguredRoot(ctx, path)
}

// TrustOptions say how SetTrustRoot judges the commit it is given.
type TrustOptions struct {
	// Key, if not empty, is the SHA256:... fingerprint of the admin key
	// that must have signed the commit.
	Key string
	// Clone is a repository that may hold the commit before it is pushed
	// (the clone stack repo trust runs in); it is asked only for a full
	// commit id the served repository does not hold. Empty: none.
	Clone string
	// AllowUnsigned sets a commit that fails the check, or that neither
	// repository holds, all the same; SetTrustRoot then returns a warning
	// saying what that means.
	AllowUnsigned bool
}

// SetTrustRoot makes commit (and, if o.Key is not empty, the SHA256:...
// fingerprint of the admin key that signed it) the trust root of the served
// repository name (policy.SetTrustRoot): the pre-receive hook then accepts
// pushes to protected refs only along signed history that grows from it.
// commit is a full object id, or any revision that names a commit already
// in the repository (stored as its full id, never as a moving name).
//
// The commit is first judged as the hook will judge it
// (policy.CheckTrustRoot), in the served repository or else in o.Clone: a
// root not signed by a key of its own config/admins would have every push
// to a protected ref rejected, so it is refused with why and how to fix it,
// and so is one that cannot be checked, unless o.AllowUnsigned. The
// returned warning is not empty when a root was set that way.
func SetTrustRoot(ctx context.Context, dataDir, name, commit string, o TrustOptions) (policy.TrustRoot, string, error) {
	path, err := gitserve.Resolve(dataDir, name)
	if err != nil {
		return policy.TrustRoot{}, "", err
	}
	root := policy.TrustRoot{Commit: commit, Key: o.Key}
	id, err := policy.CheckTrustRoot(ctx, path, root)
	if errors.Is(err, policy.ErrUnknownCommit) && policy.IsCommitID(commit) && o.Clone != "" {
		if _, rerr := policy.ResolveCommit(ctx, o.Clone, commit); rerr == nil {
			id, err = policy.CheckTrustRoot(ctx, o.Clone, root)
		}
	}
	var why string
	var refused *policy.RootError
	switch {
	case err == nil:
	case errors.Is(err, policy.ErrUnknownCommit) && !policy.IsCommitID(commit):
		// A name that is no commit here: policy.SetTrustRoot says so.
	case errors.Is(err, policy.ErrUnknownCommit):
		where := "the served repository"
		if o.Clone != "" {
			where += " nor the clone at " + o.Clone
		}
		why = fmt.Sprintf("commit %s is in neither %s, so its signature cannot be checked: push it first (to a branch no policy protects), or run stack repo trust in a clone that has it (-C DIR)", commit, where)
	case errors.As(err, &refused):
		why = fmt.Sprintf("%v; every push to a protected ref would be rejected: sign it with a key listed in its own %s (git commit -S --amend) and trust the new commit", err, policy.AdminsFile)
	default:
		return policy.TrustRoot{}, "", err
	}
	if why != "" && !o.AllowUnsigned {
		return policy.TrustRoot{}, "", fmt.Errorf("refusing the trust root: %s, or pass --allow-unsigned to set it anyway", why)
	}
	if id != "" {
		root.Commit = id
	}
	set, err := policy.SetTrustRoot(ctx, path, root)
	if err != nil {
		return policy.TrustRoot{}, "", err
	}
	warning := ""
	if why != "" {
		warning = fmt.Sprintf("WARNING: trust root %s of %s set with --allow-unsigned: %s. Until it is replaced by a commit signed by a key of its own %s, EVERY PUSH TO A PROTECTED REF IS REJECTED.", set.Commit, name, why, policy.AdminsFile)
	}
	return set, warning, nil
}
