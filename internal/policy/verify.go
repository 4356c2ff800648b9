package policy

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"sort"
	"strings"
	"time"

	"golang.org/x/crypto/ssh"
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
	Ref     string `json:"ref"`
	Commit  string `json:"commit"`
	Subject string `json:"subject"`
	Reason  string `json:"reason"`
}

// String is the one line a pre-receive hook prints for the rejection.
func (r Rejection) String() string {
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
			out = append(out, Rejection{Ref: u.Ref, Commit: u.Old, Reason: fmt.Sprintf("%s is protected (%s): it cannot be deleted", u.Ref, strings.Join(envs, ", "))})
			continue
		}
		if v.Root.Commit == "" {
			out = append(out, Rejection{Ref: u.Ref, Commit: u.New, Reason: fmt.Sprintf("%s is protected (%s) but the server has no trust root configured: ask its operator to set one", u.Ref, strings.Join(envs, ", "))})
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

// checkRoot checks that the trust root is signed by a key its own
// config/admins lists, and by the expected key if one is given.
func (s *session) checkRoot(root string) error {
	c, err := s.commit(root)
	if err != nil {
		return fmt.Errorf("trust root: %w", err)
	}
	cs := s.signature(c)
	if cs.err != nil {
		return fmt.Errorf("trust root %s: %v", short(root), cs.err)
	}
	set := s.set(s.filesOf(root))
	if set.err != nil {
		return fmt.Errorf("trust root %s: %v", short(root), set.err)
	}
	if set.noAdmins {
		return fmt.Errorf("trust root %s has no %s: choose a commit that lists the admins", short(root), AdminsFile)
	}
	lines := set.admins.Lookup(cs.sig.PublicKey)
	if len(lines) == 0 {
		return fmt.Errorf("trust root %s is signed by %s, which is not in its own %s", short(root), cs.sig.Fingerprint(), AdminsFile)
	}
	var why error
	for _, l := range lines {
		if why = l.Allows(CommitNamespace, c.Time); why == nil {
			break
		}
	}
	if why != nil {
		return fmt.Errorf("trust root %s: %v", short(root), why)
	}
	if want := s.v.Root.Key; want != "" && cs.sig.Fingerprint() != want {
		return fmt.Errorf("trust root %s is signed by %s, not by the expected key %s", short(root), cs.sig.Fingerprint(), want)
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

// protects lists the environments protecting the ref of u, under the
// policies of the trust root, the old and the new commit together.
func (s *session) protects(u RefUpdate) ([]string, error) {
	seen := map[string]bool{}
	add := func(p *Policy) {
		for _, e := range p.Protects(u.Ref) {
			seen[e] = true
		}
	}
	add(DefaultPolicy())
	for _, rev := range []string{s.v.Root.Commit, u.Old, u.New} {
		if rev == "" || isZero(rev) {
			continue
		}
		id, err := s.r.resolve(rev)
		if err != nil {
			continue
		}
		if t := s.set(s.filesOf(id)); t.err == nil {
			add(t.policy)
		}
	}
	var out []string
	for e := range seen {
		out = append(out, e)
	}
	sort.Strings(out)
	return out, nil
}

func (s *session) verifyRange(ctx context.Context, env, from, to string) (*Report, error) {
	rep := &Report{Env: env, Root: s.root}
	tip, err := s.r.resolve(to)
	if err != nil {
		return nil, err
	}
	ok, err := s.r.isAncestor(ctx, s.root, tip)
	if err != nil {
		return nil, err
	}
	if !ok {
		return nil, fmt.Errorf("%s does not descend from the trust root %s: history must grow from the root", short(tip), short(s.root))
	}
	args := []string{tip, "^" + s.root}
	if from != "" {
		f, err := s.r.resolve(from)
		if err != nil {
			return nil, err
		}
		args = append(args, "^"+f)
	} else {
		c, err := s.commit(s.root)
		if err != nil {
			return nil, err
		}
		cs := s.signature(c)
		rep.Verdicts = append(rep.Verdicts, Verdict{
			Commit: s.root, Subject: c.Subject(), Signer: s.set(s.filesOf(s.root)).admins.Lookup(cs.sig.PublicKey)[0].Name(),
			KeyType: cs.sig.PublicKey.Type(), Fingerprint: cs.sig.Fingerprint(), OK: true, Reason: "trust root",
		})
	}
	ids, err := s.r.revList(ctx, args...)
	if err != nil {
		return nil, err
	}
	if len(ids) > 0 {
		desc, ok := s.ancestry[tip]
		if !ok {
			list, err := s.r.revList(ctx, "--ancestry-path", tip, "^"+s.root)
			if err != nil {
				return nil, err
			}
			desc = make(map[string]bool, len(list))
			for _, id := range list {
				desc[id] = true
			}
			s.ancestry[tip] = desc
		}
		for _, id := range ids {
			c, err := s.commit(id)
			if err != nil {
				return nil, err
			}
			rep.Verdicts = append(rep.Verdicts, s.judge(env, c, desc[id]))
		}
	}
	return rep, nil
}

// judge decides one commit under env.
func (s *session) judge(env string, c *Commit, fromRoot bool) Verdict {
	v := Verdict{Commit: c.ID, Subject: c.Subject()}
	cs := s.signature(c)
	if cs.sig != nil {
		v.KeyType, v.Fingerprint = cs.sig.PublicKey.Type(), cs.sig.Fingerprint()
	}
	fail := func(format string, args ...any) Verdict {
		v.Reason = fmt.Sprintf(format, args...)
		return v
	}
	if len(c.Parents) == 0 || !fromRoot {
		return fail("does not descend from the trust root %s: history must grow from the root", short(s.root))
	}
	if cs.err != nil {
		return fail("%v", cs.err)
	}
	own := s.filesOf(c.ID)
	changes := false
	judged := map[trustFiles]bool{}
	for _, p := range c.Parents {
		pf := s.filesOf(p)
		if pf != own {
			changes = true
		}
		if judged[pf] {
			continue
		}
		judged[pf] = true
		set := s.set(pf)
		where := "parent " + short(p)
		if set.err != nil {
			return fail("trust files of %s are unusable: %v", where, set.err)
		}
		rule := set.rule(env)
		signer, err := s.admit(set, rule, cs.sig, CommitNamespace, c, where)
		if v.Signer == "" {
			v.Signer = signer.name()
		}
		if err != nil {
			return fail("%v", err)
		}
		if pf != own && !signer.admin {
			return fail("changes %s, %s or %s, which only admins may change; %s signs as a developer", AdminsFile, DevelopersFile, PolicyFile, signer.name())
		}
		count := []identity{signer}
		var problems []string
		for _, a := range s.approvalsOf(c) {
			if a.Statement.Kind != Approve || a.Statement.Env != env {
				continue
			}
			if a.err != nil {
				problems = append(problems, a.err.Error())
				continue
			}
			id, err := s.admit(set, rule, a.Signature, ApprovalNamespace, c, where)
			if err != nil {
				problems = append(problems, "approval: "+err.Error())
				continue
			}
			count = append(count, id)
		}
		distinct := distinctIdentities(count)
		if len(distinct) < rule.Quorum {
			var names []string
			for _, id := range distinct {
				names = append(names, id.name())
			}
			msg := fmt.Sprintf("%s needs %d distinct signers, has %d (%s): others must run stack policy approve %s --env %s",
				env, rule.Quorum, len(distinct), strings.Join(names, "; "), short(c.ID), env)
			for _, e := range s.approved[c.ID] {
				problems = append(problems, e.Error())
			}
			if len(problems) > 0 {
				msg += "; ignored approvals: " + strings.Join(problems, "; ")
			}
			return fail("%s", msg)
		}
		if len(v.Approvers) == 0 && len(distinct) > 1 {
			for _, id := range distinct[1:] {
				v.Approvers = append(v.Approvers, id.name())
			}
		}
	}
	if changes {
		if t := s.set(own); t.err != nil {
			return fail("breaks the trust files: %v", t.err)
		} else if t.noAdmins {
			return fail("removes %s: no one could sign the next commit", AdminsFile)
		}
	}
	v.OK = true
	v.Reason = "ok"
	return v
}

// identity is who a signature speaks for.
type identity struct {
	principals []string
	key        string
	admin      bool
}

func (id identity) name() string { return strings.Join(id.principals, ",") }

// distinctIdentities keeps, in order, the identities sharing no key and no
// principal with an earlier one: the same person never counts twice.
func distinctIdentities(ids []identity) []identity {
	keys, principals := map[string]bool{}, map[string]bool{}
	var out []identity
next:
	for _, id := range ids {
		if keys[id.key] {
			continue
		}
		for _, p := range id.principals {
			if principals[p] {
				continue next
			}
		}
		keys[id.key] = true
		for _, p := range id.principals {
			principals[p] = true
		}
		out = append(out, id)
	}
	return out
}

// admit decides whether a verified signature's key may sign for rule in
// namespace at the commit's time, under the trust set read at where.
func (s *session) admit(set *trustSet, rule *Rule, sig *Signature, namespace string, c *Commit, where string) (identity, error) {
	fp := ssh.FingerprintSHA256(sig.PublicKey)
	lines := set.admins.Lookup(sig.PublicKey)
	admin := len(lines) > 0
	if !admin && rule.Signers == SignersDevelopers {
		lines = set.developers.Lookup(sig.PublicKey)
	}
	if len(lines) == 0 {
		listed := AdminsFile
		if rule.Signers == SignersDevelopers {
			listed += " or " + DevelopersFile
		}
		if set.noAdmins {
			return identity{}, fmt.Errorf("%s has no %s: no one may sign for %s", where, AdminsFile, rule.Name)
		}
		if dev := set.developers.Lookup(sig.PublicKey); !admin && dev != nil {
			return identity{principals: dev[0].Principals, key: fp}, fmt.Errorf("signed by developer %s (%s); %s requires an admin's key from %s of %s",
				dev[0].Name(), fp, rule.Name, AdminsFile, where)
		}
		return identity{}, fmt.Errorf("signing key %s (%s) is not in %s of %s", fp, sig.PublicKey.Type(), listed, where)
	}
	var ok []*Signer
	var why error
	for _, l := range lines {
		err := l.Allows(namespace, c.Time)
		if err == nil && !s.now.IsZero() {
			err = l.Allows(namespace, s.now)
		}
		if err != nil {
			if why == nil {
				why = err
			}
			continue
		}
		ok = append(ok, l)
	}
	if len(ok) == 0 {
		return identity{principals: lines[0].Principals, key: fp}, why
	}
	id := identity{key: fp, admin: admin}
	seen := map[string]bool{}
	verifyRequired := rule.UserVerification
	for _, l := range ok {
		for _, p := range l.Principals {
			if !seen[p] {
				seen[p] = true
				id.principals = append(id.principals, p)
			}
		}
		verifyRequired = verifyRequired || l.VerifyRequired
	}
	if rule.Hardware && !sig.Hardware() {
		return id, fmt.Errorf("signed by %s's software key (%s %s): %s requires a hardware key (%s or %s)",
			id.name(), sig.PublicKey.Type(), fp, rule.Name, ssh.KeyAlgoSKED25519, ssh.KeyAlgoSKECDSA256)
	}
	if flags, _, isSK := sig.FIDO(); isSK && verifyRequired && flags&FlagUserVerification == 0 {
		return id, fmt.Errorf("signed by %s's FIDO key without user verification (PIN), which %s requires", id.name(), rule.Name)
	}
	return id, nil
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

// rollbackAllowed checks for a quorum of "rollback TO from FROM for ENV"
// statements, judged under the trust files of FROM (what runs now).
func (s *session) rollbackAllowed(env, to, from string) error {
	c, err := s.commit(to)
	if err != nil {
		return err
	}
	fc, err := s.commit(from)
	if err != nil {
		return err
	}
	set := s.set(s.filesOf(fc.ID))
	if set.err != nil {
		return fmt.Errorf("trust files of %s are unusable: %v", short(from), set.err)
	}
	rule := set.rule(env)
	var ids []identity
	for _, a := range s.approvalsOf(c) {
		st := a.Statement
		if st.Kind != Rollback || st.Env != env || st.From != fc.ID || a.err != nil {
			continue
		}
		id, err := s.admit(set, rule, a.Signature, ApprovalNamespace, fc, short(from))
		if err != nil {
			continue
		}
		ids = append(ids, id)
	}
	if n := len(distinctIdentities(ids)); n < rule.Quorum {
		return fmt.Errorf("has %d of the %d signed rollback statements needed: run stack policy approve %s --env %s --rollback-from %s",
			n, rule.Quorum, short(c.ID), env, short(fc.ID))
	}
	return nil
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
