package gitserve

import (
	"errors"
	"fmt"
	"path/filepath"
	"slices"
	"strings"
	"time"

	"golang.org/x/crypto/ssh"

	"github.com/hashbang/stack/internal/policy"
)

// maxConfigSize bounds config/git.yaml. (The allowed_signers files have the
// policy's bound, policy.MaxSignersSize.)
const maxConfigSize = 1 << 20

// logins says which keys log in as whom: config/admins and config/developers
// as the signature policy reads them. There is no second parser: the files
// are parsed by policy.ParseSigners, a key's lines found by Signers.Lookup
// and judged by Signer.Allows, so who may log in is who may sign, line by
// line.
//
// A key logs in when the policy would accept a commit it signs at the time
// of login: some line listing it allows the git namespace
// (policy.CommitNamespace) at that time. So
//
//   - valid-after and valid-before bound logins as they bound signatures: a
//     retired (expired) or not yet valid key is refused;
//   - a key whose lines are limited to other namespaces (namespaces="file")
//     does not log in;
//   - a key that config/admins lists but none of whose admins lines allows
//     it now does not log in, even if config/developers lists it too: the
//     policy does not fall back to developers for a key admins lists, so a
//     key retired in config/admins stays retired;
//   - cert-authority: the policy refuses a file holding a cert-authority
//     line (list each signer's own key), so such a file is refused for
//     login too, as any line the parser refuses: the server does not start,
//     or keeps its last good config. Neither the CA key nor any other key
//     logs in by that file; certificates are not accepted at all;
//   - verify-required: the SSH library checks the FIDO user-presence flag
//     of a login signature (as the policy checks it on every signature) but
//     does not expose the user-verification flag, so login cannot ask for
//     the PIN: verify-required bounds commit and approval signatures only.
type logins struct {
	groups []*policy.Signers // parallel to Groups
}

// errUnknownKey is a key no file lists.
var errUnknownKey = errors.New("unknown public key")

// parseLogins parses the allowed_signers files of a config directory, in
// the order of Groups (nil: a missing file, which lists nobody).
func parseLogins(dir string, files policyFiles) (logins, error) {
	l := logins{groups: make([]*policy.Signers, len(Groups))}
	for i, group := range Groups {
		ss, err := policy.ParseSigners(filepath.Join(dir, group), files[i])
		if err != nil {
			return logins{}, err
		}
		l.groups[i] = ss
	}
	return l, nil
}

// identify returns who key logs in as at time at, or why it may not log in
// (errUnknownKey for a key no file lists). The identity's principals are
// those of the lines allowing the key, admins before developers, in file
// order; its groups are the files with such a line.
func (l logins) identify(key ssh.PublicKey, at time.Time) (Identity, error) {
	id := Identity{Fingerprint: ssh.FingerprintSHA256(key)}
	listed := false
	var why error
	for i, group := range Groups {
		lines := l.groups[i].Lookup(key)
		if len(lines) == 0 {
			continue
		}
		listed = true
		in := false
		for _, s := range lines {
			if err := s.Allows(policy.CommitNamespace, at); err != nil {
				if why == nil {
					why = fmt.Errorf("config/%s:%d: %w", group, s.Line, err)
				}
				continue
			}
			in = true
			for _, p := range s.Principals {
				if !slices.Contains(id.Principals, p) {
					id.Principals = append(id.Principals, p)
				}
			}
		}
		if in {
			id.Groups = append(id.Groups, group)
		} else if group == "admins" {
			return Identity{}, why
		}
	}
	if !listed {
		return Identity{}, errUnknownKey
	}
	if len(id.Groups) == 0 {
		return Identity{}, why
	}
	id.Principal = id.Principals[0]
	return id, nil
}

// keys is the number of distinct keys that may log in at time at.
func (l logins) keys(at time.Time) int {
	seen := map[string]bool{}
	n := 0
	for _, ss := range l.groups {
		for _, s := range ss.List {
			k := string(s.Key.Marshal())
			if seen[k] {
				continue
			}
			seen[k] = true
			if _, err := l.identify(s.Key, at); err == nil {
				n++
			}
		}
	}
	return n
}

// validPrincipal checks a principal named as a member in git.yaml: a valid
// principal of an allowed_signers line (policy.ValidPrincipal) that needs
// no quoting there, so that it reads the same in both files.
func validPrincipal(p string) error {
	if err := policy.ValidPrincipal(p); err != nil {
		return err
	}
	if strings.ContainsAny(p, " \t\\") {
		return fmt.Errorf("principal %q has a space, quote, comma, backslash or control character", p)
	}
	return nil
}
