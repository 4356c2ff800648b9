package policy

import (
	"context"
	"fmt"
	"sort"
	"strings"

	"golang.org/x/crypto/ssh"
)

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
