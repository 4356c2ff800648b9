package policy

import (
	"context"
	"errors"
	"fmt"
	"strings"
)

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

// ErrUnknownCommit is the error of CheckTrustRoot when the repository does
// not hold the commit.
var ErrUnknownCommit = errors.New("no such commit")

// RootError is why CheckTrustRoot refuses a commit as the trust root.
type RootError struct{ Err error }

func (e *RootError) Error() string { return e.Err.Error() }
func (e *RootError) Unwrap() error { return e.Err }

// CheckTrustRoot judges root.Commit, a commit of the repository dir, as
// every check judges its trust root before anything else (CheckPush,
// VerifyRange, CheckDeploy): it must be signed by a key its own
// config/admins lists, valid at the commit's time, and by root.Key when
// one is given. A root it refuses has every push to a protected ref
// rejected. It returns the commit's full id. A refusal is a *RootError;
// an error wrapping ErrUnknownCommit means dir does not hold the commit.
func CheckTrustRoot(ctx context.Context, dir string, root TrustRoot) (string, error) {
	if root.Key != "" {
		if err := checkFingerprint(root.Key); err != nil {
			return "", err
		}
	}
	r, err := openRepo(ctx, dir)
	if err != nil {
		return "", err
	}
	s := newSession(&Verifier{Dir: dir, Root: root}, r)
	defer s.close()
	id, err := r.resolve(root.Commit)
	if err != nil {
		return "", fmt.Errorf("%w: %v", ErrUnknownCommit, err)
	}
	if err := s.checkRoot(id); err != nil {
		return id, &RootError{Err: err}
	}
	return id, nil
}

// IsCommitID reports whether s is a full commit id: 40 (SHA-1) or 64
// (SHA-256) lower- or upper-case hex digits.
func IsCommitID(s string) bool {
	s = strings.ToLower(s)
	return isHex(s, 40) || isHex(s, 64)
}
