package policy

import "context"

// ResolveRoot is the trust root a command uses: the commit and key given
// (from --root and --root-key), each falling back to the clone's git
// configuration (ConfiguredRoot) when not given. A key given without a
// commit applies to the configured commit.
func ResolveRoot(ctx context.Context, dir string, given TrustRoot) (TrustRoot, error) {
	if given.Commit != "" {
		return given, nil
	}
	tr, err := ConfiguredRoot(ctx, dir)
	if err != nil {
		return TrustRoot{}, err
	}
	if given.Key != "" {
		tr.Key = given.Key
	}
	return tr, nil
}
