package policy

import (
	"context"
	"errors"
	"fmt"
	"strings"
	"time"
)

// CommitNamespace is the SSHSIG namespace git signs commits in.
const CommitNamespace = "git"

// ErrRefused wraps every refusal of CheckDeploy.
var ErrRefused = errors.New("refused by the signature policy")

// TrustRoot is where trust starts: a commit whose own config/admins is
// trusted, and optionally the fingerprint of the admin key that signed it.
// It comes from outside the repository being checked (a flag, the server's
// config), never from the repository itself.
type TrustRoot struct {
	Commit string // commit id or revision
	Key    string // optional SHA256:... fingerprint of the key that signed Commit
}

// Verifier checks commits of one git repository (bare or not) against the
// signature policy, trusting Root.
type Verifier struct {
	Dir  string
	Root TrustRoot
	// Notes is the notes ref (or notes commit) holding approvals; empty
	// means ApprovalsRef.
	Notes string
}

// Verdict is the judgement of one commit.
type Verdict struct {
	Commit      string   `json:"commit"`
	Subject     string   `json:"subject"`
	Signer      string   `json:"signer"`      // principals of the signing key
	KeyType     string   `json:"key_type"`    // e.g. sk-ssh-ed25519@openssh.com
	Fingerprint string   `json:"fingerprint"` // SHA256:...
	Approvers   []string `json:"approvers,omitempty"`
	OK          bool     `json:"ok"`
	Reason      string   `json:"reason"`
}

// Report is the judgement of a range of commits under one environment.
type Report struct {
	Env      string    `json:"env"`
	Root     string    `json:"root"`
	Verdicts []Verdict `json:"verdicts"`
}

// OK reports whether every commit passed.
func (r *Report) OK() bool { return len(r.Failed()) == 0 }

// Failed returns the verdicts that did not pass.
func (r *Report) Failed() []Verdict {
	var out []Verdict
	for _, v := range r.Verdicts {
		if !v.OK {
			out = append(out, v)
		}
	}
	return out
}

// RefUpdate is one ref a push moves, as a pre-receive hook reads it.
type RefUpdate struct {
	Old, New, Ref string
}

// Rejection is why a push is refused: one per offending commit.
type Rejection struct {
	Ref    string `json:"ref"`
	Commit string `json:"commit"`
	// Subject is the commit's subject; empty when Commit names no commit
	// in the repository.
	Subject string `json:"subject"`
	Reason  string `json:"reason"`
}

// String is the one line a pre-receive hook prints for the rejection:
// ref, commit, its subject in quotes (when there is one), and why.
func (r Rejection) String() string {
	if r.Subject == "" {
		return fmt.Sprintf("%s %s: %s", r.Ref, short(r.Commit), r.Reason)
	}
	return fmt.Sprintf("%s %s %q: %s", r.Ref, short(r.Commit), r.Subject, r.Reason)
}

// VerifyRange judges every commit in from..to (all commits from the trust
// root to to when from is empty) under env's rules. Commits reachable from
// from are trusted as already checked. Each commit is judged by the trust
// files of its parents: signed by a key their config/admins (or, where the
// environment allows, config/developers) lists, and for a merge under every
// parent's files. The error is for failures to check, not for failed
// verdicts: see Report.OK.
func (v *Verifier) VerifyRange(ctx context.Context, env, from, to string) (*Report, error) {
	s, err := v.open(ctx, "")
	if err != nil {
		return nil, err
	}
	defer s.close()
	return s.verifyRange(ctx, env, from, to)
}

// CheckDeploy decides whether commit may be deployed to env, where
// lastDeployed (empty for a first deploy) is what the environment runs now.
// The whole chain from the trust root to commit must pass, and commit must
// descend from lastDeployed unless a quorum of signers under
// lastDeployed's trust files signed "rollback COMMIT from LAST for ENV".
// A refusal is an error wrapping ErrRefused; the report tells each verdict.
func (v *Verifier) CheckDeploy(ctx context.Context, env, commit, lastDeployed string) (*Report, error) {
	s, err := v.open(ctx, "")
	if err != nil {
		return nil, err
	}
	defer s.close()
	rep, err := s.verifyRange(ctx, env, "", commit)
	if err != nil {
		return nil, err
	}
	if bad := rep.Failed(); len(bad) > 0 {
		return rep, fmt.Errorf("%w: %d commit(s) up to %s fail the %s policy; first: %s %q: %s",
			ErrRefused, len(bad), short(commit), env, short(bad[0].Commit), bad[0].Subject, bad[0].Reason)
	}
	if lastDeployed == "" {
		return rep, nil
	}
	c, err := s.r.resolve(commit)
	if err != nil {
		return rep, err
	}
	last, err := s.r.resolve(lastDeployed)
	if err != nil {
		return rep, fmt.Errorf("last deployed commit: %w", err)
	}
	if c == last {
		return rep, nil
	}
	ok, err := s.r.isAncestor(ctx, last, c)
	if err != nil {
		return rep, err
	}
	if ok {
		return rep, nil
	}
	if err := s.rollbackAllowed(env, c, last); err != nil {
		return rep, fmt.Errorf("%w: %s does not descend from %s, the last commit deployed to %s, and %v", ErrRefused, short(c), short(last), env, err)
	}
	return rep, nil
}

// CheckPush judges a push, as the pre-receive hook of the git server calls
// it: every update of a ref that an environment protects is refused unless
// each new commit passes that environment's rules; deleting a protected ref
// is refused, and so is a non-fast-forward unless a rollback statement
// allows it. Which refs are protected is read from the policy of the trust
// root, of the ref's old and of its new commit together, so a push cannot
// unprotect its own ref. Approvals pushed in the same push (to
// refs/notes/approvals) are taken into account. Signing keys must be valid
// (valid-after, valid-before) both at the commit time and now. The error is
// for failures to check; the caller must then refuse the whole push.
func (v *Verifier) CheckPush(ctx context.Context, updates []RefUpdate) ([]Rejection, error) {
	notes := ""
	for _, u := range updates {
		if u.Ref == v.notesRef() && !isZero(u.New) {
			notes = u.New
		}
	}
	if len(updates) == 0 {
		return nil, nil
	}
	r, err := openRepo(ctx, v.Dir)
	if err != nil {
		return nil, err
	}
	s := newSession(v, r)
	s.now = time.Now()
	defer s.close()
	var out []Rejection
	for _, u := range updates {
		envs, err := s.protects(u)
		if err != nil {
			return nil, err
		}
		if len(envs) == 0 {
			continue
		}
		if isZero(u.New) {
			out = append(out, Rejection{Ref: u.Ref, Commit: u.Old, Subject: s.subject(u.Old), Reason: fmt.Sprintf("%s is protected (%s): it cannot be deleted", u.Ref, strings.Join(envs, ", "))})
			continue
		}
		if v.Root.Commit == "" {
			out = append(out, Rejection{Ref: u.Ref, Commit: u.New, Subject: s.subject(u.New),
				Reason: fmt.Sprintf("%s is protected (%s) but the server has no trust root configured, so nothing is accepted there: its operator sets one with `stack repo trust`", u.Ref, strings.Join(envs, ", "))})
			continue
		}
		if s.root == "" {
			if err := s.start(ctx, notes); err != nil {
				return nil, err
			}
		}
		// Tags are judged by the commits they point to.
		newID, err := s.r.resolve(u.New)
		if err != nil {
			out = append(out, Rejection{Ref: u.Ref, Commit: u.New, Reason: fmt.Sprintf("%s is protected (%s): it must point to a commit", u.Ref, strings.Join(envs, ", "))})
			continue
		}
		oldID := ""
		if !isZero(u.Old) {
			if oldID, err = s.r.resolve(u.Old); err != nil {
				return nil, err
			}
		}
		u := RefUpdate{Old: oldID, New: newID, Ref: u.Ref}
		if ok, err := s.r.isAncestor(ctx, s.root, u.New); err != nil {
			return nil, err
		} else if !ok {
			c, err := s.commit(u.New)
			if err != nil {
				return nil, err
			}
			out = append(out, Rejection{Ref: u.Ref, Commit: u.New, Subject: c.Subject(),
				Reason: fmt.Sprintf("does not descend from the trust root %s: history must grow from the root", short(s.root))})
			continue
		}
		for _, env := range envs {
			from := ""
			if !isZero(u.Old) {
				ff, err := s.r.isAncestor(ctx, u.Old, u.New)
				if err != nil {
					return nil, err
				}
				if !ff {
					if why := s.rollbackAllowed(env, u.New, u.Old); why != nil {
						c, err := s.commit(u.New)
						if err != nil {
							return nil, err
						}
						out = append(out, Rejection{Ref: u.Ref, Commit: u.New, Subject: c.Subject(),
							Reason: fmt.Sprintf("not a fast-forward of %s: %s only moves forward, and %v", short(u.Old), env, why)})
						continue
					}
				}
				from = u.Old
			}
			rep, err := s.verifyRange(ctx, env, from, u.New)
			if err != nil {
				return nil, err
			}
			for _, bad := range rep.Failed() {
				out = append(out, Rejection{Ref: u.Ref, Commit: bad.Commit, Subject: bad.Subject, Reason: bad.Reason})
			}
		}
	}
	return out, nil
}

func (v *Verifier) notesRef() string {
	if v.Notes != "" {
		return v.Notes
	}
	return ApprovalsRef
}

func isZero(id string) bool { return strings.Trim(id, "0") == "" }

func short(id string) string {
	if len(id) > 12 {
		return id[:12]
	}
	return id
}

// CheckSignature verifies c's SSH signature in the git namespace and
// returns it with the lines of signers that allow it at the commit's time.
// This is what git verify-commit checks with gpg.ssh.allowedSignersFile; no
// environment rule (parents, hardware, quorum) is applied.
func CheckSignature(c *Commit, signers *Signers) (*Signature, []*Signer, error) {
	s := &session{sigs: map[string]*checkedSig{}}
	cs := s.signature(c)
	if cs.err != nil {
		return cs.sig, nil, cs.err
	}
	lines := signers.Lookup(cs.sig.PublicKey)
	if len(lines) == 0 {
		return cs.sig, nil, fmt.Errorf("signing key %s is not an allowed signer", cs.sig.Fingerprint())
	}
	var ok []*Signer
	var why error
	for _, l := range lines {
		if err := l.Allows(CommitNamespace, c.Time); err != nil {
			why = err
			continue
		}
		ok = append(ok, l)
	}
	if len(ok) == 0 {
		return cs.sig, nil, why
	}
	return cs.sig, ok, nil
}
