package policy

import (
	"bytes"
	"os"
	"path/filepath"
	"strings"
	"testing"
)

// TestAgreesWithGit checks that the signature verdicts agree with real git
// verify-commit, configured with the same allowed signers, on a corpus of
// good, unsigned, tampered, wrong-namespace, unknown-key and expired-key
// commits. (The hardware rule, which git does not know, is not applied.)
func TestAgreesWithGit(t *testing.T) {
	r := newTestRepo(t)
	alice := newSKEd25519(t, "alice", FlagUserPresence)
	bob := newSKECDSA(t, "bob", FlagUserPresence)
	carol := newSoftKey(t, t.TempDir(), "carol")
	dana := newSoftKey(t, t.TempDir(), "dana")
	eve := newSKEd25519(t, "eve", FlagUserPresence)
	frank := newSKEd25519(t, "frank", FlagUserPresence)
	allowed := signersFile(alice, bob, carol) + `dana valid-before="20230101Z" ` + dana.authorized() + "\n" +
		`frank namespaces="file" ` + frank.authorized() + "\n"
	allowedFile := filepath.Join(t.TempDir(), "allowed_signers")
	if err := os.WriteFile(allowedFile, []byte(allowed), 0o644); err != nil {
		t.Fatal(err)
	}
	signers, err := ParseSigners("allowed_signers", []byte(allowed))
	if err != nil {
		t.Fatal(err)
	}
	files := trustTree("x", "", "")
	base := r.commit(commitOpts{files: files, msg: "base"})
	other := r.commit(commitOpts{parents: []string{base}, msg: "other", key: alice})
	otherSig := run(t, r.dir, nil, "git", "cat-file", "commit", other)

	cases := []struct {
		name string
		id   string
		good bool
	}{
		{"fido ed25519", r.commit(commitOpts{parents: []string{base}, key: alice}), true},
		{"fido ecdsa", r.commit(commitOpts{parents: []string{base}, key: bob}), true},
		{"unsigned", r.commit(commitOpts{parents: []string{base}}), false},
		{"tampered message", r.commit(commitOpts{parents: []string{base}, key: alice, edit: func(raw []byte) []byte {
			return bytes.Replace(raw, []byte("\nchange\n"), []byte("\nchangE\n"), 1)
		}}), false},
		{"tampered author", r.commit(commitOpts{parents: []string{base}, key: bob, edit: func(raw []byte) []byte {
			return bytes.Replace(raw, []byte("author Test"), []byte("author Mallory"), 1)
		}}), false},
		{"transplanted signature", r.commit(commitOpts{parents: []string{base}, key: alice, sigText: func([]byte) []byte {
			_, sig, _ := strings.Cut(otherSig, "gpgsig ")
			sig, _, _ = strings.Cut(sig, "\n\n")
			return []byte(strings.ReplaceAll(sig, "\n ", "\n") + "\n")
		}}), false},
		{"wrong namespace", r.commit(commitOpts{parents: []string{base}, key: alice, ns: "file"}), false},
		{"namespace-limited key", r.commit(commitOpts{parents: []string{base}, key: frank}), false},
		{"unknown key", r.commit(commitOpts{parents: []string{base}, key: eve}), false},
		{"expired key", r.commit(commitOpts{parents: []string{base}, key: dana}), false},
		{"pgp", r.commit(commitOpts{parents: []string{base}, key: alice, sigText: func([]byte) []byte {
			return []byte("-----BEGIN PGP SIGNATURE-----\n\niQEzBAABCAAdFiEE\n-----END PGP SIGNATURE-----\n")
		}}), false},
	}
	// A software key signing through git itself (gpg.format=ssh).
	tree := r.writeTree(files)
	gitSigned := run(t, r.dir, nil, "git", "-c", "gpg.format=ssh", "-c", "user.signingKey="+carol.file,
		"commit-tree", "-S", "-p", base, "-m", "signed by git", tree)
	cases = append(cases, struct {
		name string
		id   string
		good bool
	}{"software key via git", gitSigned, true})

	hexLen := 40
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			_, gitErr := runErr(r.dir, nil, "git", "-c", "gpg.ssh.allowedSignersFile="+allowedFile, "verify-commit", tc.id)
			raw := run(t, r.dir, nil, "git", "cat-file", "commit", tc.id)
			c, err := ParseCommit(tc.id, []byte(raw+"\n"), hexLen)
			if err != nil {
				t.Fatal(err)
			}
			_, _, ours := CheckSignature(c, signers)
			if (gitErr == nil) != tc.good {
				t.Fatalf("git verify-commit: %v, want good=%v", gitErr, tc.good)
			}
			if (ours == nil) != (gitErr == nil) {
				t.Fatalf("disagree with git: ours %v, git %v", ours, gitErr)
			}
			t.Logf("ours: %v", ours)
		})
	}

	// Where we are stricter than git: a FIDO signature without the
	// user-presence flag. ssh-keygen -Y verify does not look at the flag.
	alice.flags = 0
	noTouch := r.commit(commitOpts{parents: []string{base}, key: alice})
	_, gitErr := runErr(r.dir, nil, "git", "-c", "gpg.ssh.allowedSignersFile="+allowedFile, "verify-commit", noTouch)
	raw := run(t, r.dir, nil, "git", "cat-file", "commit", noTouch)
	c, err := ParseCommit(noTouch, []byte(raw+"\n"), hexLen)
	if err != nil {
		t.Fatal(err)
	}
	if _, _, ours := CheckSignature(c, signers); ours == nil || !strings.Contains(ours.Error(), "user-presence") {
		t.Errorf("FIDO signature without user presence: got %v", ours)
	}
	t.Logf("git verify-commit on a FIDO signature without user presence: %v", gitErr)
}
