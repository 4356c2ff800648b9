package policy

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"strings"
	"time"
)

// session is one verification run: a git process and caches.
type session struct {
	v     *Verifier
	r     *repo
	root  string
	notes map[string]string // commit → note blob
	// now, when set, is a second time every signing key must be valid at
	// besides the commit time: the time of a push, so a key past its
	// valid-before cannot sign backdated commits into a protected ref.
	now time.Time

	commits   map[string]*Commit
	files     map[string]trustFiles      // commit → trust file blobs
	sets      map[trustFiles]*trustSet   // blobs → parsed files
	sigs      map[string]*checkedSig     // commit → its signature
	approvals map[string][]approval      // commit → approvals on it
	approved  map[string][]error         // commit → bad approval blocks
	ancestry  map[string]map[string]bool // tip → descendants of root
}

// trustFiles are the blob ids of a commit's trust files ("" when absent).
type trustFiles struct{ admins, developers, policy string }

// trustSet is the parsed trust files of a commit.
type trustSet struct {
	admins, developers *Signers
	noAdmins           bool
	policy             *Policy
	err                error
}

type checkedSig struct {
	sig *Signature
	err error
}

type approval struct {
	Approval
	err error // the signature does not verify
}

func (v *Verifier) open(ctx context.Context, notes string) (*session, error) {
	r, err := openRepo(ctx, v.Dir)
	if err != nil {
		return nil, err
	}
	s := newSession(v, r)
	if err := s.start(ctx, notes); err != nil {
		s.close()
		return nil, err
	}
	return s, nil
}

func newSession(v *Verifier, r *repo) *session {
	return &session{
		v: v, r: r,
		commits:   map[string]*Commit{},
		files:     map[string]trustFiles{},
		sets:      map[trustFiles]*trustSet{},
		sigs:      map[string]*checkedSig{},
		approvals: map[string][]approval{},
		approved:  map[string][]error{},
		ancestry:  map[string]map[string]bool{},
	}
}

func (s *session) close() { s.r.Close() }

// start resolves and checks the trust root and loads the approvals notes
// (from the notes commit given, else the notes ref).
func (s *session) start(ctx context.Context, notes string) error {
	if s.v.Root.Commit == "" {
		return errNoRoot
	}
	root, err := s.r.resolve(s.v.Root.Commit)
	if err != nil {
		return fmt.Errorf("trust root: %w", err)
	}
	if err := s.checkRoot(root); err != nil {
		return err
	}
	s.root = root
	if notes == "" {
		if _, _, err := s.r.info(s.v.notesRef()); err == nil {
			notes = s.v.notesRef()
		}
	}
	s.notes = map[string]string{}
	if notes != "" {
		if s.notes, err = s.r.notes(ctx, notes); err != nil {
			return fmt.Errorf("read approvals %s: %w", notes, err)
		}
	}
	return nil
}

func (s *session) commit(id string) (*Commit, error) {
	if c, ok := s.commits[id]; ok {
		return c, nil
	}
	c, err := s.r.commit(id)
	if err != nil {
		return nil, err
	}
	if isHex(id, s.r.hexLen) {
		s.commits[id] = c
	}
	return c, nil
}

// subject is the subject of the commit rev names (a tag is peeled to its
// commit), or "" when it names none: for messages, never for judging.
func (s *session) subject(rev string) string {
	id, err := s.r.resolve(rev)
	if err != nil {
		return ""
	}
	c, err := s.commit(id)
	if err != nil {
		return ""
	}
	return c.Subject()
}

// signature parses and cryptographically checks the signature of c.
func (s *session) signature(c *Commit) *checkedSig {
	if cs, ok := s.sigs[c.ID]; ok {
		return cs
	}
	cs := &checkedSig{}
	switch {
	case c.Signature == nil:
		cs.err = errors.New("unsigned: sign commits with an SSH key (git config gpg.format ssh; git commit -S)")
	case !bytes.HasPrefix(c.Signature, []byte(sigBegin)):
		cs.err = errors.New("not an SSH signature (OpenPGP or X.509): only SSH signatures are accepted")
	default:
		sig, err := ParseSignature(c.Signature)
		if err != nil {
			cs.err = fmt.Errorf("bad signature: %v", err)
			break
		}
		cs.sig = sig
		if err := sig.Verify(CommitNamespace, c.Payload); err != nil {
			cs.err = fmt.Errorf("bad signature: %v", err)
		}
	}
	s.sigs[c.ID] = cs
	return cs
}

// filesOf returns the blob ids of commit's trust files.
func (s *session) filesOf(commit string) trustFiles {
	if f, ok := s.files[commit]; ok {
		return f
	}
	get := func(p string) string {
		oid, typ, err := s.r.info(commit + ":" + p)
		if err != nil {
			return ""
		}
		if typ != "blob" {
			return typ + ":" + oid
		}
		return oid
	}
	f := trustFiles{get(AdminsFile), get(DevelopersFile), get(PolicyFile)}
	s.files[commit] = f
	return f
}

// set parses the trust files with the given blob ids.
func (s *session) set(f trustFiles) *trustSet {
	if t, ok := s.sets[f]; ok {
		return t
	}
	t := &trustSet{}
	read := func(name, oid string) []byte {
		if oid == "" || t.err != nil {
			return nil
		}
		if strings.Contains(oid, ":") {
			t.err = fmt.Errorf("%s is not a file", name)
			return nil
		}
		_, data, err := s.r.contents(oid, "blob")
		if err != nil {
			t.err = fmt.Errorf("read %s: %v", name, err)
		}
		return data
	}
	var err error
	if t.admins, err = ParseSigners(AdminsFile, read(AdminsFile, f.admins)); err != nil && t.err == nil {
		t.err = err
	}
	t.noAdmins = f.admins == ""
	if t.developers, err = ParseSigners(DevelopersFile, read(DevelopersFile, f.developers)); err != nil && t.err == nil {
		t.err = err
	}
	t.policy = DefaultPolicy()
	if f.policy != "" {
		if data := read(PolicyFile, f.policy); t.err == nil {
			if t.policy, err = ParsePolicy(data); err != nil {
				t.err = err
			}
		}
	}
	s.sets[f] = t
	return t
}

// rule is env's rule in a trust set. An environment the policy does not
// name still gets the base rule: signed by an admin.
func (t *trustSet) rule(env string) *Rule {
	if r := t.policy.Rule(env); r != nil {
		return r
	}
	return &Rule{Name: env, Signers: SignersAdmins, Quorum: 1}
}

// approvalsOf returns the approvals attached to c whose statement names c,
// each with its signature checked.
func (s *session) approvalsOf(c *Commit) []approval {
	if a, ok := s.approvals[c.ID]; ok {
		return a
	}
	var out []approval
	if blob, ok := s.notes[c.ID]; ok {
		_, data, err := s.r.contents(blob, "blob")
		if err != nil {
			s.approved[c.ID] = append(s.approved[c.ID], fmt.Errorf("read approval note: %v", err))
		}
		list, errs := ParseApprovals(data, s.r.hexLen)
		s.approved[c.ID] = append(s.approved[c.ID], errs...)
		for _, a := range list {
			if a.Statement.Commit != c.ID {
				continue
			}
			out = append(out, approval{Approval: a, err: a.Signature.Verify(ApprovalNamespace, []byte(a.Statement.String()))})
		}
	}
	s.approvals[c.ID] = out
	return out
}
