package policy

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"os"
	"os/exec"
	"strings"
)

// ApprovalsRef holds approvals: git notes whose text is a list of signed
// statements about the annotated commit. Anyone may write the notes; only
// the signatures count.
const ApprovalsRef = "refs/notes/approvals"

// ApprovalNamespace is the SSHSIG namespace of approval statements, so an
// approval can never be taken for a commit signature or the reverse. An
// admin whose config/admins line limits namespaces must list it to approve.
const ApprovalNamespace = "stack-approve"

// Statement kinds.
const (
	// Approve adds a signer to a commit's quorum for an environment.
	Approve = "approve"
	// Rollback lets an environment move from one commit to another that
	// does not descend from it (a rollback or a replay).
	Rollback = "rollback"
)

// Statement is what an approval signs, one line:
//
//	approve COMMIT for ENV
//	rollback COMMIT from CURRENT for ENV
type Statement struct {
	Kind   string
	Commit string
	From   string // rollback only: the commit the environment is at
	Env    string
}

// String is the exact signed text, ending in a newline.
func (s Statement) String() string {
	if s.Kind == Rollback {
		return fmt.Sprintf("%s %s from %s for %s\n", s.Kind, s.Commit, s.From, s.Env)
	}
	return fmt.Sprintf("%s %s for %s\n", s.Kind, s.Commit, s.Env)
}

// ParseStatement parses one statement line (without its newline).
func ParseStatement(line string, hexLen int) (Statement, error) {
	f := strings.Split(line, " ")
	var s Statement
	switch {
	case len(f) == 4 && f[0] == Approve && f[2] == "for":
		s = Statement{Kind: Approve, Commit: f[1], Env: f[3]}
	case len(f) == 6 && f[0] == Rollback && f[2] == "from" && f[4] == "for":
		s = Statement{Kind: Rollback, Commit: f[1], From: f[3], Env: f[5]}
		if !isHex(s.From, hexLen) {
			return s, fmt.Errorf("statement %q: %q is not a full commit id", line, s.From)
		}
	default:
		return s, fmt.Errorf("statement %q: want \"approve COMMIT for ENV\" or \"rollback COMMIT from COMMIT for ENV\"", line)
	}
	if !isHex(s.Commit, hexLen) {
		return s, fmt.Errorf("statement %q: %q is not a full commit id", line, s.Commit)
	}
	if !envName.MatchString(s.Env) {
		return s, fmt.Errorf("statement %q: bad environment name", line)
	}
	return s, nil
}

// Approval is one signed statement found in a note.
type Approval struct {
	Statement Statement
	Signature *Signature
}

// ParseApprovals parses the text of an approvals note: blocks of one
// statement line followed by its armored SSH signature, separated by any
// number of blank lines. Blocks that do not parse are returned as errors
// beside the good ones, so one bad block cannot hide the others.
func ParseApprovals(note []byte, hexLen int) ([]Approval, []error) {
	var out []Approval
	var errs []error
	lines := strings.Split(string(note), "\n")
	statement, have := "", false
	for i := 0; i < len(lines); i++ {
		line := strings.TrimRight(lines[i], "\r")
		switch {
		case strings.TrimSpace(line) == "":
			continue
		case line != sigBegin:
			if have {
				errs = append(errs, fmt.Errorf("statement %q has no signature", statement))
			}
			statement, have = line, true
			continue
		}
		var sig bytes.Buffer
		for ; i < len(lines); i++ {
			l := strings.TrimRight(lines[i], "\r")
			sig.WriteString(l + "\n")
			if l == sigEnd {
				break
			}
		}
		if !have {
			errs = append(errs, errors.New("signature without a statement line"))
			continue
		}
		have = false
		st, err := ParseStatement(statement, hexLen)
		if err != nil {
			errs = append(errs, err)
			continue
		}
		s, err := ParseSignature(sig.Bytes())
		if err != nil {
			errs = append(errs, fmt.Errorf("statement %q: %w", statement, err))
			continue
		}
		out = append(out, Approval{Statement: st, Signature: s})
	}
	if have {
		errs = append(errs, fmt.Errorf("statement %q has no signature", statement))
	}
	return out, errs
}

// Sign signs st with the SSH key in keyFile using ssh-keygen -Y sign (which
// asks for a touch, and a PIN if the key needs one, on a FIDO key) and
// returns the approval block: the statement line and its armored signature.
// The signature is checked before it is returned.
func Sign(ctx context.Context, st Statement, keyFile string) ([]byte, *Signature, error) {
	if _, err := os.Stat(keyFile); err != nil {
		return nil, nil, fmt.Errorf("signing key: %w", err)
	}
	msg := []byte(st.String())
	cmd := exec.CommandContext(ctx, "ssh-keygen", "-q", "-Y", "sign", "-n", ApprovalNamespace, "-f", keyFile)
	cmd.Stdin = bytes.NewReader(msg)
	var stderr bytes.Buffer
	cmd.Stderr = &stderr
	armored, err := cmd.Output()
	if err != nil {
		return nil, nil, fmt.Errorf("ssh-keygen -Y sign with %s: %s", keyFile, strings.TrimSpace(stderr.String()+" "+err.Error()))
	}
	sig, err := ParseSignature(armored)
	if err != nil {
		return nil, nil, fmt.Errorf("ssh-keygen made an unreadable signature: %w", err)
	}
	if err := sig.Verify(ApprovalNamespace, msg); err != nil {
		return nil, nil, fmt.Errorf("ssh-keygen made a signature that does not verify: %w", err)
	}
	block := append(msg, sig.Armor()...)
	return block, sig, nil
}

// AddApproval appends an approval block to the note of commit under
// ApprovalsRef in the repository at dir, keeping what is already there.
// Push the notes with: git push REMOTE refs/notes/approvals.
func AddApproval(ctx context.Context, dir, commit string, block []byte) error {
	r := &repo{dir: dir}
	var old []byte
	if out, err := r.git(ctx, "notes", "--ref", ApprovalsRef, "show", commit); err == nil {
		old = out
	}
	if bytes.Contains(old, block) {
		return nil
	}
	note := bytes.TrimRight(old, "\n")
	if len(note) > 0 {
		note = append(note, "\n\n"...)
	}
	note = append(note, block...)
	cmd := exec.CommandContext(ctx, "git", "-C", dir, "notes", "--ref", ApprovalsRef, "add", "-f", "-F", "-", commit)
	cmd.Stdin = bytes.NewReader(note)
	var stderr bytes.Buffer
	cmd.Stderr = &stderr
	if err := cmd.Run(); err != nil {
		return fmt.Errorf("write approval note on %s: %s", commit, strings.TrimSpace(stderr.String()))
	}
	return nil
}

var errNoRoot = errors.New("no trust root: pass --root COMMIT (the first commit whose config/admins you trust) or set git config stack.policy.root")
