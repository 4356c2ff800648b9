package gitserve

import (
	"fmt"
	"path/filepath"
	"reflect"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/hashbang/stack/internal/policy"
	"github.com/hashbang/stack/internal/policy/policytest"
)

// policySigns is the signature policy's verdict on key as a signer listed
// in the allowed_signers file data: a commit key signs at time at is
// checked by policy.CheckSignature, as git verify-commit would. It returns
// the lines allowing the signature, or the file's parse error.
func policySigns(t *testing.T, data string, key *policytest.Key, at time.Time) (lines []*policy.Signer, parseErr, refused error) {
	t.Helper()
	ss, err := policy.ParseSigners("allowed_signers", []byte(data))
	if err != nil {
		return nil, err, nil
	}
	raw := fmt.Sprintf("tree 4b825dc642cb6eb9a060e54bf8d69288fbee4904\nauthor T <t@example.org> %[1]d +0000\ncommitter T <t@example.org> %[1]d +0000\n\nlogin test\n", at.Unix())
	c, err := policy.ParseCommit(strings.Repeat("1", 40), policytest.SignCommit(t, []byte(raw), key), 40)
	if err != nil {
		t.Fatal(err)
	}
	_, lines, err = policy.CheckSignature(c, ss)
	return lines, nil, err
}

// TestLoginAgreesWithPolicy checks, line by tricky line, that the git
// server's decision whether a key logs in, and as whom, is the signature
// policy's decision whether the key signs, and as whom: the same file,
// read once by the same parser, means the same in both.
func TestLoginAgreesWithPolicy(t *testing.T) {
	soft := policytest.Software(t, t.TempDir(), "alice")
	fido := policytest.FIDO(t, "bob", policy.FlagUserPresence)
	now := time.Now().Truncate(time.Second)
	past, future := "20200101Z", "21000101Z"
	for _, tc := range []struct {
		name string
		// file is the allowed_signers file; {soft} and {fido} stand for
		// the keys.
		file string
		key  *policytest.Key
		// parseErr is part of the error for a file that is refused.
		parseErr string
		// principals are those the key logs in and signs as; nil: it
		// does neither.
		principals []string
	}{
		{name: "plain", file: "alice@example.org {soft}\n", key: soft, principals: []string{"alice@example.org"}},
		{name: "comment after the key", file: "alice {soft} alice's laptop # work\n", key: soft, principals: []string{"alice"}},
		{name: "trailing blanks", file: "alice {soft} \t \n", key: soft, principals: []string{"alice"}},
		{name: "CRLF", file: "# admins\r\nalice {soft} laptop\r\n\r\n", key: soft, principals: []string{"alice"}},
		{name: "CRLF after options", file: "alice namespaces=\"git\" {fido}\r\n", key: fido, principals: []string{"alice"}},
		{name: "several principals", file: "alice,al@example.org {soft}\n", key: soft, principals: []string{"alice", "al@example.org"}},
		{name: "quoted principals", file: `"alice,al" {soft}` + "\n", key: soft, principals: []string{"alice", "al"}},
		{name: "quoted principal with a space", file: `"alice smith" {soft}` + "\n", key: soft, principals: []string{"alice smith"}},
		{name: "tab after principals", file: "alice\t{soft}\n", key: soft, principals: []string{"alice"}},
		{name: "namespaces git", file: `alice namespaces="git" {soft}` + "\n", key: soft, principals: []string{"alice"}},
		{name: "namespaces file", file: `alice namespaces="file" {soft}` + "\n", key: soft},
		{name: "namespaces with a comma", file: `alice namespaces="file,git" {soft}` + "\n", key: soft, principals: []string{"alice"}},
		{name: "namespaces with a space", file: `alice namespaces="file, git" {soft}` + "\n", key: soft},
		{name: "namespaces pattern", file: `alice namespaces="g*" {soft}` + "\n", key: soft, principals: []string{"alice"}},
		{name: "namespaces negated", file: `alice namespaces="*,!git" {soft}` + "\n", key: soft},
		{name: "valid-before past", file: `alice valid-before="` + past + `" {soft}` + "\n", key: soft},
		{name: "valid-before future", file: `alice valid-before="` + future + `" {soft}` + "\n", key: soft, principals: []string{"alice"}},
		{name: "valid-after past", file: `alice valid-after="` + past + `" {soft}` + "\n", key: soft, principals: []string{"alice"}},
		{name: "valid-after future", file: `alice valid-after="` + future + `" {soft}` + "\n", key: soft},
		{name: "valid-after local time", file: `alice valid-after="20200101" {soft}` + "\n", key: soft, principals: []string{"alice"}},
		{name: "several options", file: `alice,al namespaces="git,stack-approve",valid-after="` + past + `",VALID-BEFORE="` + future + `" {fido} yubikey` + "\n", key: fido, principals: []string{"alice", "al"}},
		{name: "several options, expired", file: `alice namespaces="git,stack-approve",valid-after="20190101Z",valid-before="` + past + `" {fido}` + "\n", key: fido},
		{name: "verify-required", file: `alice verify-required {fido}` + "\n", key: fido, principals: []string{"alice"}},
		{name: "expired line, valid line", file: `old valid-before="` + past + `" {soft}` + "\nalice {soft}\n", key: soft, principals: []string{"alice"}},
		{name: "principals of valid lines only", file: "alice {soft}\n" + `later valid-after="` + future + `" {soft}` + "\nal,alice {soft}\n", key: soft, principals: []string{"alice", "al"}},
		{name: "another key", file: "alice {fido}\n", key: soft},
		{name: "comment", file: "# alice {soft}\n", key: soft},
		{name: "indented comment", file: " \t# alice {soft}\n", key: soft},
		{name: "empty", file: "", key: soft},
		{name: "cert-authority", file: "ca cert-authority {soft}\n", key: soft, parseErr: "cert-authority is not supported"},
		{name: "cert-authority with options", file: `ca cert-authority,namespaces="git" {soft}` + "\n", key: soft, parseErr: "cert-authority is not supported"},
		{name: "cert-authority beside a plain line", file: "alice {fido}\nca cert-authority {soft}\n", key: fido, parseErr: "cert-authority is not supported"},
		{name: "unquoted option value", file: "alice valid-after=20200101 {soft}\n", key: soft, parseErr: "double quotes"},
		{name: "unknown option", file: "alice no-touch-required {fido}\n", key: fido, parseErr: "unsupported option"},
		{name: "key type git does not know", file: "alice ssh-foo AAAAC3NzaC1lZDI1NTE5AAAAIJZ8ZbD6j1n1e4v6Vx1DHfbcbkZC1fTQ9Nq2q2Nq3QfM\n", key: soft, parseErr: "unsupported option"},
		{name: "DSA key", file: "alice ssh-dss AAAAB3NzaC1kc3M=\n", key: soft, parseErr: "DSA keys are not supported"},
		{name: "certificate key", file: "alice ssh-ed25519-cert-v01@openssh.com AAAA\n", key: soft, parseErr: "certificate keys are not supported"},
		{name: "key of another type", file: "alice ssh-rsa " + strings.Fields(keyA)[1] + "\n", key: soft, parseErr: "holds a ssh-ed25519 key"},
		{name: "key alone", file: keyA + "\n", key: soft, parseErr: "missing key after options"},
		{name: "no key", file: "alice\n", key: soft, parseErr: "missing key"},
		{name: "no key, CRLF", file: "alice   \r\n", key: soft, parseErr: "missing key"},
		{name: "bad base64", file: "# x\nalice ssh-ed25519 AAAAnotbase64!\n", key: soft, parseErr: ":2: ssh-ed25519 key is not valid base64"},
		{name: "empty principal", file: ",alice {soft}\n", key: soft, parseErr: "empty principal"},
		{name: "unterminated quote", file: `"alice {soft}` + "\n", key: soft, parseErr: "unterminated quote"},
		{name: "text after the quote", file: `"alice"x {soft}` + "\n", key: soft, parseErr: "text right after closing quote"},
		{name: "control character", file: "al\x01ice {soft}\n", key: soft, parseErr: "control character"},
		{name: "bad line after a good one", file: "alice {soft}\nbob\n", key: soft, parseErr: ":2: missing key"},
	} {
		file := strings.NewReplacer("{soft}", soft.Authorized(), "{fido}", fido.Authorized()).Replace(tc.file)
		for i, group := range Groups {
			t.Run(tc.name+"/"+group, func(t *testing.T) {
				dir := t.TempDir()
				writeFile(t, filepath.Join(dir, group), file)
				p, loginErr := LoadPolicy(dir)
				lines, parseErr, refused := policySigns(t, file, tc.key, now)

				// The file is refused by both or by neither, for the same
				// reason.
				if (loginErr != nil) != (parseErr != nil) {
					t.Fatalf("login parse error %v, policy parse error %v", loginErr, parseErr)
				}
				if tc.parseErr != "" {
					if loginErr == nil || !strings.Contains(loginErr.Error(), tc.parseErr) {
						t.Fatalf("login parse error %v, want %q", loginErr, tc.parseErr)
					}
					_, policyMsg, _ := strings.Cut(parseErr.Error(), "allowed_signers")
					if !strings.HasSuffix(loginErr.Error(), filepath.Join(dir, group)+policyMsg) {
						t.Errorf("login and policy read the file differently:\n%v\n%v", loginErr, parseErr)
					}
					return
				}
				if loginErr != nil {
					t.Fatalf("file refused: %v", loginErr)
				}

				id, err := p.Identify(tc.key.Pub, now)
				var signs []string
				for _, l := range lines {
					for _, pr := range l.Principals {
						if !slices.Contains(signs, pr) {
							signs = append(signs, pr)
						}
					}
				}
				// Login and policy agree...
				if (err == nil) != (refused == nil) || !reflect.DeepEqual(id.Principals, signs) {
					t.Fatalf("login: %+v, %v; policy: signs as %q, %v", id, err, signs, refused)
				}
				// ...and are right.
				if !reflect.DeepEqual(id.Principals, tc.principals) {
					t.Fatalf("logs in as %q (%v), want %q", id.Principals, err, tc.principals)
				}
				if err != nil {
					return
				}
				if id.Principal != lines[0].Principals[0] || !reflect.DeepEqual(id.Groups, Groups[i:i+1]) || id.Fingerprint != tc.key.Fingerprint() {
					t.Errorf("identity %+v, want principal %s, group %s, key %s", id, lines[0].Principals[0], group, tc.key.Fingerprint())
				}
			})
		}
	}
}

// TestLoginAcrossFiles checks how config/admins and config/developers
// combine: a key both list is in both groups with the principals of both,
// and a key config/admins lists is judged by config/admins alone once none
// of its admins lines allows it, as the policy judges its signatures.
func TestLoginAcrossFiles(t *testing.T) {
	soft := policytest.Software(t, t.TempDir(), "alice")
	now := time.Now()
	for _, tc := range []struct {
		name, admins, developers string
		want                     *Identity
	}{
		{"both", "alice {key}\n", "al {key}\n", &Identity{Principal: "alice", Principals: []string{"alice", "al"}, Groups: []string{"admins", "developers"}}},
		{"developer only", "", "al {key}\n", &Identity{Principal: "al", Principals: []string{"al"}, Groups: []string{"developers"}}},
		{"developer expired", "alice {key}\n", `al valid-before="20200101Z" {key}` + "\n", &Identity{Principal: "alice", Principals: []string{"alice"}, Groups: []string{"admins"}}},
		{"admin expired", `alice valid-before="20200101Z" {key}` + "\n", "al {key}\n", nil},
		{"admin for files only", `alice namespaces="file" {key}` + "\n", "al {key}\n", nil},
	} {
		t.Run(tc.name, func(t *testing.T) {
			dir := t.TempDir()
			key := soft.Authorized()
			writeFile(t, filepath.Join(dir, "admins"), strings.ReplaceAll(tc.admins, "{key}", key))
			writeFile(t, filepath.Join(dir, "developers"), strings.ReplaceAll(tc.developers, "{key}", key))
			p, err := LoadPolicy(dir)
			if err != nil {
				t.Fatal(err)
			}
			id, err := p.Identify(soft.Pub, now)
			if tc.want == nil {
				if err == nil || !strings.Contains(err.Error(), "config/admins:1: alice's key") {
					t.Errorf("Identify = %+v, %v; want refused by config/admins:1", id, err)
				}
				return
			}
			tc.want.Fingerprint = soft.Fingerprint()
			if err != nil || !reflect.DeepEqual(id, *tc.want) {
				t.Errorf("Identify = %+v, %v; want %+v", id, err, *tc.want)
			}
		})
	}
}

// FuzzLogins checks any admins file against the policy's reading of it:
// refused by both or neither, and every listed key logs in exactly when a
// line allows it to sign in the git namespace.
func FuzzLogins(f *testing.F) {
	for _, s := range []string{
		"alice " + keyA,
		`"a,b" namespaces="git" ` + keyB + " c",
		`alice valid-before="20200101Z" ` + keyA + "\r\nbob " + keyA,
		`alice namespaces="file",valid-after="21000101" ` + keyB,
		"# x\n\nbob cert-authority " + keyA,
		"alice", "",
	} {
		f.Add([]byte(s))
	}
	times := []time.Time{time.Unix(0, 0), time.Date(2026, 1, 1, 0, 0, 0, 0, time.UTC), time.Date(2200, 1, 1, 0, 0, 0, 0, time.UTC)}
	f.Fuzz(func(t *testing.T, data []byte) {
		p, err := parsePolicy("config", policyFiles{data, nil, nil})
		ss, perr := policy.ParseSigners("config/admins", data)
		if (err == nil) != (perr == nil) {
			t.Fatalf("login error %v, policy error %v", err, perr)
		}
		if err != nil {
			return
		}
		for _, s := range ss.List {
			for _, at := range times {
				id, err := p.Identify(s.Key, at)
				var first string
				for _, l := range ss.Lookup(s.Key) {
					if l.Allows(policy.CommitNamespace, at) == nil {
						first = l.Principals[0]
						break
					}
				}
				if (err == nil) != (first != "") || id.Principal != first {
					t.Fatalf("at %v: login %+v, %v; policy signer %q", at, id, err, first)
				}
			}
		}
	})
}
