package serve

import (
	"context"

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

// SetTrustRoot makes commit (and, if key is not empty, the SHA256:...
// fingerprint of the admin key that signed it) the trust root of the served
// repository name (policy.SetTrustRoot): the pre-receive hook then accepts
// pushes to protected refs only along signed history that grows from it.
// commit is a full object id, or any revision that names a commit already
// in the repository (stored as its full id, never as a moving name).
func SetTrustRoot(ctx context.Context, dataDir, name, commit, key string) (policy.TrustRoot, error) {
	path, err := gitserve.Resolve(dataDir, name)
	if err != nil {
		return policy.TrustRoot{}, err
	}
	return policy.SetTrustRoot(ctx, path, policy.TrustRoot{Commit: commit, Key: key})
}
