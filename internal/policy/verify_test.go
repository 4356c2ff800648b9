package policy

import (
	"errors"
	"strings"
	"testing"
)

// world is a repository with a trust root and a cast of signers:
// alice and bob are admins with FIDO keys, carol an admin with a software
// key, dave a developer with a FIDO key, eve an outsider with a FIDO key.
type world struct {
	r                            *testRepo
	alice, bob, carol, dave, eve *testKey
	files                        map[string]string
	root                         string
	v                            *Verifier
}

func newWorld(t *testing.T, policy string) *world {
	w := &world{r: newTestRepo(t)}
	w.alice = newSKEd25519(t, "alice", FlagUserPresence)
	w.bob = newSKECDSA(t, "bob", FlagUserPresence|FlagUserVerification)
	w.carol = newSoftKey(t, t.TempDir(), "carol")
	w.dave = newSKEd25519(t, "dave", FlagUserPresence)
	w.eve = newSKEd25519(t, "eve", FlagUserPresence)
	w.files = trustTree(signersFile(w.alice, w.bob, w.carol), signersFile(w.dave), policy)
	w.root = w.r.commit(commitOpts{files: w.files, msg: "introduce admins", key: w.alice})
	w.v = &Verifier{Dir: w.r.dir, Root: TrustRoot{Commit: w.root}}
	return w
}

// on makes a commit on parent with the world's files plus kv changes.
func (w *world) on(parent string, key *testKey, msg string, kv ...string) string {
	return w.r.commit(commitOpts{parents: []string{parent}, files: withTree(w.files, kv...), msg: msg, key: key})
}

func wantVerdicts(t *testing.T, rep *Report, want map[string]string) {
	t.Helper()
	seen := 0
	for _, v := range rep.Verdicts {
		w, ok := want[v.Subject]
		if !ok {
			continue
		}
		seen++
		if w == "ok" {
			if !v.OK {
				t.Errorf("%s: failed: %s", v.Subject, v.Reason)
			}
			continue
		}
		if v.OK || !strings.Contains(v.Reason, w) {
			t.Errorf("%s: ok=%v reason %q, want failure containing %q", v.Subject, v.OK, v.Reason, w)
		}
	}
	if seen != len(want) {
		t.Errorf("saw %d of %d expected commits in %d verdicts", seen, len(want), len(rep.Verdicts))
	}
}

func TestVerifyProduction(t *testing.T) {
	w := newWorld(t, "")
	c := w.on(w.root, w.alice, "good")
	c = w.on(c, nil, "unsigned")
	c = w.on(c, w.carol, "software key")
	c = w.on(c, w.dave, "developer")
	c = w.on(c, w.eve, "outsider")
	c = w.on(c, w.bob, "bob good")
	w.alice.flags = 0
	c = w.on(c, w.alice, "no touch")
	w.alice.flags = FlagUserPresence
	c = w.on(c, w.eve, "eve adds herself", AdminsFile, w.files[AdminsFile]+"eve "+w.eve.authorized()+"\n")
	c = w.on(c, w.alice, "alice adds eve", AdminsFile, w.files[AdminsFile]+"eve "+w.eve.authorized()+"\n")
	c = w.on(c, w.eve, "eve signs as admin", AdminsFile, w.files[AdminsFile]+"eve "+w.eve.authorized()+"\n")
	c = w.on(c, w.alice, "breaks admins", AdminsFile, "alice not-a-key\n")
	c = w.on(c, w.alice, "fixes admins")
	w.files = withTree(w.files, AdminsFile, "")
	delete(w.files, AdminsFile)
	c = w.on(c, w.alice, "removes admins")

	rep, err := w.v.VerifyRange(ctxT(t), Production, "", c)
	if err != nil {
		t.Fatal(err)
	}
	if rep.Verdicts[0].Commit != w.root || !rep.Verdicts[0].OK || rep.Verdicts[0].Signer != "alice" {
		t.Errorf("first verdict is not the trust root: %+v", rep.Verdicts[0])
	}
	wantVerdicts(t, rep, map[string]string{
		"good":               "ok",
		"unsigned":           "unsigned",
		"software key":       "signed by carol's software key (ssh-ed25519",
		"developer":          "signed by developer dave",
		"outsider":           "is not in config/admins of parent",
		"bob good":           "ok",
		"no touch":           "lacks the user-presence flag",
		"eve adds herself":   "is not in config/admins of parent",
		"alice adds eve":     "ok",
		"eve signs as admin": "ok",
		"breaks admins":      "breaks the trust files: config/admins:1",
		"fixes admins":       "trust files of parent",
		"removes admins":     "removes config/admins",
	})
	for _, v := range rep.Verdicts {
		if v.Subject == "software key" && v.Signer != "carol" {
			t.Errorf("refused signer not named: %+v", v)
		}
		if v.Subject == "good" && (v.Signer != "alice" || v.KeyType != "sk-ssh-ed25519@openssh.com" || !strings.HasPrefix(v.Fingerprint, "SHA256:")) {
			t.Errorf("good verdict: %+v", v)
		}
	}
	// A range starting later trusts what came before.
	rep, err = w.v.VerifyRange(ctxT(t), Production, rep.Verdicts[5].Commit, rep.Verdicts[6].Commit)
	if err != nil {
		t.Fatal(err)
	}
	if len(rep.Verdicts) != 1 || rep.Verdicts[0].Subject != "bob good" {
		t.Errorf("from..to: %+v", rep.Verdicts)
	}
}

func TestVerifyStagingDevelopers(t *testing.T) {
	w := newWorld(t, "environments:\n  staging:\n    signers: developers\n")
	c := w.on(w.root, w.dave, "developer")
	c = w.on(c, w.carol, "software key")
	w.files = withTree(w.files, DevelopersFile, w.files[DevelopersFile]+"eve "+w.eve.authorized()+"\n")
	c = w.on(c, w.dave, "developer adds eve")
	c = w.on(c, w.eve, "outsider")
	rep, err := w.v.VerifyRange(ctxT(t), "staging", "", c)
	if err != nil {
		t.Fatal(err)
	}
	wantVerdicts(t, rep, map[string]string{
		"developer":          "ok",
		"software key":       "ok",
		"developer adds eve": "which only admins may change",
		"outsider":           "ok", // the (refused) change above listed eve
	})
	// The same history fails production.
	rep, err = w.v.VerifyRange(ctxT(t), Production, "", c)
	if err != nil {
		t.Fatal(err)
	}
	wantVerdicts(t, rep, map[string]string{"developer": "signed by developer dave", "software key": "software key"})
}

func TestVerifyUserVerification(t *testing.T) {
	w := newWorld(t, "environments:\n  production:\n    user-verification: true\n")
	c := w.on(w.root, w.alice, "alice without PIN")
	c = w.on(c, w.bob, "bob with PIN")
	// verify-required on one line asks it of that signer only.
	admins := `alice verify-required ` + w.alice.authorized() + "\nbob " + w.bob.authorized() + "\n"
	c = w.on(c, w.bob, "per-signer rule", AdminsFile, admins, PolicyFile, "")
	w.files = withTree(w.files, AdminsFile, admins, PolicyFile, "")
	c = w.on(c, w.alice, "alice still without PIN")
	w.alice.flags |= FlagUserVerification
	c = w.on(c, w.alice, "alice with PIN")
	rep, err := w.v.VerifyRange(ctxT(t), Production, "", c)
	if err != nil {
		t.Fatal(err)
	}
	wantVerdicts(t, rep, map[string]string{
		"alice without PIN":       "without user verification",
		"bob with PIN":            "ok",
		"per-signer rule":         "ok",
		"alice still without PIN": "without user verification",
		"alice with PIN":          "ok",
	})
}

func TestVerifyMerge(t *testing.T) {
	w := newWorld(t, "")
	withEve := w.files[AdminsFile] + "eve " + w.eve.authorized() + "\n"
	a := w.on(w.root, w.alice, "add eve", AdminsFile, withEve)
	b := w.on(w.root, w.bob, "other branch")
	mergeFiles := withTree(w.files, AdminsFile, withEve)
	byEve := w.r.commit(commitOpts{parents: []string{a, b}, files: mergeFiles, msg: "merge by eve", key: w.eve})
	byAlice := w.r.commit(commitOpts{parents: []string{byEve, b}, files: mergeFiles, msg: "merge by alice", key: w.alice})
	rep, err := w.v.VerifyRange(ctxT(t), Production, "", byAlice)
	if err != nil {
		t.Fatal(err)
	}
	wantVerdicts(t, rep, map[string]string{
		"add eve":        "ok",
		"other branch":   "ok",
		"merge by eve":   "is not in config/admins of parent " + short(b),
		"merge by alice": "ok",
	})
}

func TestTrustRoot(t *testing.T) {
	w := newWorld(t, "")
	c := w.on(w.root, w.alice, "good")
	ctx := ctxT(t)

	sig := (&Verifier{Dir: w.r.dir, Root: TrustRoot{Commit: w.root, Key: "SHA256:nope"}})
	if _, err := sig.VerifyRange(ctx, Production, "", c); err == nil || !strings.Contains(err.Error(), "not by the expected key SHA256:nope") {
		t.Errorf("wrong root key: %v", err)
	}
	good := &Verifier{Dir: w.r.dir, Root: TrustRoot{Commit: w.root, Key: w.v.Root.Key}}
	good.Root.Key = "SHA256:" + strings.TrimPrefix(fingerprint(w.alice), "SHA256:")
	if _, err := good.VerifyRange(ctx, Production, "", c); err != nil {
		t.Errorf("right root key: %v", err)
	}
	// A root signed by a key its own config/admins does not list.
	bad := w.r.commit(commitOpts{files: w.files, msg: "root by eve", key: w.eve})
	if _, err := (&Verifier{Dir: w.r.dir, Root: TrustRoot{Commit: bad}}).VerifyRange(ctx, Production, "", bad); err == nil || !strings.Contains(err.Error(), "not in its own config/admins") {
		t.Errorf("root signed by outsider: %v", err)
	}
	unsignedRoot := w.r.commit(commitOpts{files: w.files, msg: "unsigned root"})
	if _, err := (&Verifier{Dir: w.r.dir, Root: TrustRoot{Commit: unsignedRoot}}).VerifyRange(ctx, Production, "", unsignedRoot); err == nil || !strings.Contains(err.Error(), "unsigned") {
		t.Errorf("unsigned root: %v", err)
	}
	if _, err := (&Verifier{Dir: w.r.dir}).VerifyRange(ctx, Production, "", c); err == nil || !strings.Contains(err.Error(), "no trust root") {
		t.Errorf("no root: %v", err)
	}
	// History not grown from the root.
	orphan := w.r.commit(commitOpts{files: w.files, msg: "orphan", key: w.alice})
	if _, err := w.v.VerifyRange(ctx, Production, "", orphan); err == nil || !strings.Contains(err.Error(), "does not descend from the trust root") {
		t.Errorf("orphan tip: %v", err)
	}
	merged := w.r.commit(commitOpts{parents: []string{c, orphan}, files: w.files, msg: "merge orphan", key: w.alice})
	rep, err := w.v.VerifyRange(ctx, Production, "", merged)
	if err != nil {
		t.Fatal(err)
	}
	wantVerdicts(t, rep, map[string]string{"orphan": "does not descend from the trust root", "merge orphan": "ok", "good": "ok"})
}

func fingerprint(k *testKey) string {
	s := &Signature{PublicKey: k.pub}
	return s.Fingerprint()
}

func TestQuorum(t *testing.T) {
	w := newWorld(t, "environments:\n  production:\n    quorum: 3\n")
	// alice has a second FIDO key under the same principal.
	alice2 := newSKEd25519(t, "alice", FlagUserPresence)
	frank := newSKEd25519(t, "frank", FlagUserPresence)
	admins := w.files[AdminsFile] + "alice " + alice2.authorized() + "\nfrank " + frank.authorized() + "\n"
	w.files = withTree(w.files, AdminsFile, admins)
	w.root = w.r.commit(commitOpts{files: w.files, msg: "root", key: w.alice})
	w.v.Root.Commit = w.root
	c := w.on(w.root, w.alice, "needs approvals")
	ctx := ctxT(t)
	verdict := func() Verdict {
		t.Helper()
		rep, err := w.v.VerifyRange(ctx, Production, "", c)
		if err != nil {
			t.Fatal(err)
		}
		return rep.Verdicts[len(rep.Verdicts)-1]
	}
	approve := func(k *testKey, st Statement) {
		t.Helper()
		if err := AddApproval(ctx, w.r.dir, c, k.approval(t, st)); err != nil {
			t.Fatal(err)
		}
	}
	if v := verdict(); v.OK || !strings.Contains(v.Reason, "needs 3 distinct signers, has 1") {
		t.Fatalf("no approvals: %+v", v)
	}
	st := Statement{Kind: Approve, Commit: c, Env: Production}
	approve(w.alice, st)                                                        // same key as the commit
	approve(alice2, st)                                                         // same principal, other key
	approve(w.carol, st)                                                        // software key
	approve(w.eve, st)                                                          // not an admin
	approve(w.bob, Statement{Kind: Approve, Commit: c, Env: "staging"})         // other environment
	approve(w.bob, Statement{Kind: Approve, Commit: w.root, Env: "production"}) // other commit
	approve(w.bob, st)
	approve(w.bob, st) // twice: AddApproval keeps one copy of a block
	v := verdict()
	if v.OK || !strings.Contains(v.Reason, "needs 3 distinct signers, has 2") || !strings.Contains(v.Reason, "alice; bob") ||
		!strings.Contains(v.Reason, "carol's software key") || !strings.Contains(v.Reason, "not in config/admins") {
		t.Fatalf("duplicates counted or reasons missing: %+v", v)
	}
	// Another signature by bob's key, not the same block, still counts once.
	note := run(t, w.r.dir, nil, "git", "notes", "--ref", ApprovalsRef, "show", c)
	run(t, w.r.dir, []byte(note+"\n\n"+string(w.bob.approval(t, st))), "git", "notes", "--ref", ApprovalsRef, "add", "-f", "-F", "-", c)
	if v := verdict(); v.OK || !strings.Contains(v.Reason, "needs 3 distinct signers, has 2") {
		t.Fatalf("bob counted twice: %+v", v)
	}
	approve(frank, st)
	if v := verdict(); !v.OK || strings.Join(v.Approvers, " ") != "bob frank" {
		t.Fatalf("quorum reached: %+v", v)
	}
}

func TestApproveWithSSHKeygen(t *testing.T) {
	w := newWorld(t, "environments:\n  staging:\n    quorum: 2\n")
	frank := newSoftKey(t, t.TempDir(), "frank")
	w.files = withTree(w.files, AdminsFile, w.files[AdminsFile]+"frank "+frank.authorized()+"\n")
	w.root = w.r.commit(commitOpts{files: w.files, msg: "root", key: w.alice})
	w.v.Root.Commit = w.root
	c := w.on(w.root, w.carol, "carol's change")
	ctx := ctxT(t)
	check := func() Verdict {
		rep, err := w.v.VerifyRange(ctx, "staging", "", c)
		if err != nil {
			t.Fatal(err)
		}
		return rep.Verdicts[len(rep.Verdicts)-1]
	}
	st := Statement{Kind: Approve, Commit: c, Env: "staging"}
	block, _, err := Sign(ctx, st, w.carol.file)
	if err != nil {
		t.Fatal(err)
	}
	if err := AddApproval(ctx, w.r.dir, c, block); err != nil {
		t.Fatal(err)
	}
	if v := check(); v.OK {
		t.Fatalf("self-approval counted: %+v", v)
	}
	block, sig, err := Sign(ctx, st, frank.file)
	if err != nil {
		t.Fatal(err)
	}
	if sig.Fingerprint() != fingerprint(frank) {
		t.Errorf("signed by %s", sig.Fingerprint())
	}
	if err := AddApproval(ctx, w.r.dir, c, block); err != nil {
		t.Fatal(err)
	}
	if v := check(); !v.OK || strings.Join(v.Approvers, ",") != "frank" {
		t.Fatalf("approved by frank: %+v", v)
	}
	if _, _, err := Sign(ctx, st, "/nonexistent/key"); err == nil || !strings.Contains(err.Error(), "signing key") {
		t.Errorf("missing key: %v", err)
	}
}

func TestCheckDeploy(t *testing.T) {
	w := newWorld(t, "")
	c1 := w.on(w.root, w.alice, "one")
	c2 := w.on(c1, w.bob, "two")
	bad := w.on(c2, w.carol, "software")
	ctx := ctxT(t)
	if _, err := w.v.CheckDeploy(ctx, Production, c2, ""); err != nil {
		t.Fatalf("first deploy: %v", err)
	}
	if _, err := w.v.CheckDeploy(ctx, Production, c2, c1); err != nil {
		t.Fatalf("forward deploy: %v", err)
	}
	if _, err := w.v.CheckDeploy(ctx, Production, c2, c2); err != nil {
		t.Fatalf("same commit: %v", err)
	}
	rep, err := w.v.CheckDeploy(ctx, Production, bad, c2)
	if !errors.Is(err, ErrRefused) || !strings.Contains(err.Error(), "software key") || rep.OK() {
		t.Fatalf("bad commit: %v", err)
	}
	_, err = w.v.CheckDeploy(ctx, Production, c1, c2)
	if !errors.Is(err, ErrRefused) || !strings.Contains(err.Error(), "does not descend from "+short(c2)) || !strings.Contains(err.Error(), "--rollback-from") {
		t.Fatalf("replay of an older commit: %v", err)
	}
	// A rollback statement for another starting point does not help, nor
	// one by an outsider or a software key.
	for _, a := range []struct {
		k  *testKey
		st Statement
	}{
		{w.alice, Statement{Kind: Rollback, Commit: c1, From: w.root, Env: Production}},
		{w.alice, Statement{Kind: Rollback, Commit: c1, From: c2, Env: "staging"}},
		{w.alice, Statement{Kind: Approve, Commit: c1, Env: Production}},
		{w.eve, Statement{Kind: Rollback, Commit: c1, From: c2, Env: Production}},
		{w.carol, Statement{Kind: Rollback, Commit: c1, From: c2, Env: Production}},
	} {
		if err := AddApproval(ctx, w.r.dir, c1, a.k.approval(t, a.st)); err != nil {
			t.Fatal(err)
		}
	}
	if _, err := w.v.CheckDeploy(ctx, Production, c1, c2); !errors.Is(err, ErrRefused) {
		t.Fatalf("rollback without a valid statement: %v", err)
	}
	if err := AddApproval(ctx, w.r.dir, c1, w.bob.approval(t, Statement{Kind: Rollback, Commit: c1, From: c2, Env: Production})); err != nil {
		t.Fatal(err)
	}
	if _, err := w.v.CheckDeploy(ctx, Production, c1, c2); err != nil {
		t.Fatalf("signed rollback: %v", err)
	}
}

func TestParseApprovals(t *testing.T) {
	k := newSKEd25519(t, "alice", FlagUserPresence)
	id := strings.Repeat("a", 40)
	good := k.approval(t, Statement{Kind: Approve, Commit: id, Env: "production"})
	rb := k.approval(t, Statement{Kind: Rollback, Commit: id, From: strings.Repeat("b", 40), Env: "production"})
	note := "\n" + string(good) + "\n\nstray line\n" + "approve nothex for production\n" + string(good[strings.Index(string(good), "-----"):]) +
		string(rb) + "-----BEGIN SSH SIGNATURE-----\nAAAA\n-----END SSH SIGNATURE-----\n" + "approve " + id + " for production\n"
	list, errs := ParseApprovals([]byte(note), 40)
	if len(list) != 2 || list[0].Statement.Kind != Approve || list[1].Statement.Kind != Rollback {
		t.Errorf("approvals: %+v", list)
	}
	if len(errs) != 4 {
		t.Errorf("errors: %v", errs)
	}
	for _, a := range list {
		if err := a.Signature.Verify(ApprovalNamespace, []byte(a.Statement.String())); err != nil {
			t.Error(err)
		}
	}
}

func FuzzParseApprovals(f *testing.F) {
	k := newSKEd25519(f, "alice", FlagUserPresence)
	id := strings.Repeat("a", 40)
	f.Add(k.approval(f, Statement{Kind: Approve, Commit: id, Env: "production"}))
	f.Add(k.approval(f, Statement{Kind: Rollback, Commit: id, From: id, Env: "staging"}))
	f.Add([]byte("approve x for y\n-----BEGIN SSH SIGNATURE-----\n"))
	f.Fuzz(func(t *testing.T, note []byte) {
		list, _ := ParseApprovals(note, 40)
		for _, a := range list {
			again, err := ParseStatement(strings.TrimSuffix(a.Statement.String(), "\n"), 40)
			if err != nil || again != a.Statement {
				t.Fatalf("statement %+v does not round-trip: %v", a.Statement, err)
			}
		}
	})
}

// TestCheckTrustRoot: the root is judged as every check judges it, so a
// root that would have every protected push rejected is refused up front.
func TestCheckTrustRoot(t *testing.T) {
	w := newWorld(t, "")
	ctx := ctxT(t)
	child := w.on(w.root, w.alice, "a child")
	tests := []struct {
		name string
		root TrustRoot
		// want is "" for a good root, else what the error says;
		// refused says whether it is a *RootError.
		want    string
		refused bool
	}{
		{"signed by an admin of its own config/admins", TrustRoot{Commit: w.root}, "", false},
		{"by revision", TrustRoot{Commit: w.root[:12]}, "", false},
		{"the expected key", TrustRoot{Commit: w.root, Key: fingerprint(w.alice)}, "", false},
		{"not the expected key", TrustRoot{Commit: w.root, Key: fingerprint(w.bob)}, "not by the expected key", true},
		{"unsigned", TrustRoot{Commit: w.r.commit(commitOpts{files: w.files, msg: "unsigned root"})}, "unsigned", true},
		{"signed by an outsider", TrustRoot{Commit: w.r.commit(commitOpts{files: w.files, msg: "eve's root", key: w.eve})}, "not in its own config/admins", true},
		{"no config/admins", TrustRoot{Commit: w.r.commit(commitOpts{files: map[string]string{"README": "x\n"}, msg: "bare", key: w.alice})}, "has no config/admins", true},
		{"a later commit is judged the same way", TrustRoot{Commit: child}, "", false},
		{"a malformed key", TrustRoot{Commit: w.root, Key: "MD5:aa"}, "want a SHA256:... fingerprint", false},
		{"not in the repository", TrustRoot{Commit: strings.Repeat("ab", 20)}, "no such commit", false},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			id, err := CheckTrustRoot(ctx, w.r.dir, tt.root)
			var re *RootError
			switch {
			case tt.want == "":
				if err != nil || !IsCommitID(id) || !strings.HasPrefix(id, tt.root.Commit) {
					t.Errorf("CheckTrustRoot = %q, %v", id, err)
				}
			case err == nil || !strings.Contains(err.Error(), tt.want) || errors.As(err, &re) != tt.refused:
				t.Errorf("CheckTrustRoot = %v, want an error with %q (a RootError: %v)", err, tt.want, tt.refused)
			}
			// Whatever CheckTrustRoot accepts, the verifier accepts as a root.
			if err == nil {
				if _, verr := (&Verifier{Dir: w.r.dir, Root: tt.root}).VerifyRange(ctx, Production, "", id); verr != nil {
					t.Errorf("accepted, but VerifyRange: %v", verr)
				}
			}
		})
	}
	if _, err := CheckTrustRoot(ctx, t.TempDir(), TrustRoot{Commit: w.root}); err == nil || errors.Is(err, ErrUnknownCommit) {
		t.Errorf("not a repository: %v", err)
	}
	for s, want := range map[string]bool{strings.Repeat("a", 40): true, strings.Repeat("A", 64): true, strings.Repeat("a", 39): false, "main": false, strings.Repeat("g", 40): false} {
		if IsCommitID(s) != want {
			t.Errorf("IsCommitID(%q) = %v", s, !want)
		}
	}
}
