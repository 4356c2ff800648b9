package policy

import (
	"bytes"
	"encoding/base64"
	"errors"
	"fmt"
	"strings"
	"time"
	"unicode"
	"unicode/utf8"

	"golang.org/x/crypto/ssh"
)

// Signer is one line of an allowed_signers file (ssh-keygen(1), section
// ALLOWED SIGNERS): the principals a key speaks for, the options limiting
// it, and the key.
type Signer struct {
	Line       int
	Principals []string
	// Namespaces is the namespaces="..." pattern list; empty means any.
	Namespaces string
	// ValidAfter and ValidBefore bound when the key may sign; zero means
	// unbounded. Signature times are compared as ssh-keygen -Y verify does.
	ValidAfter, ValidBefore time.Time
	// VerifyRequired is a #!stack extension: FIDO signatures by this key must
	// carry the user-verification flag (PIN or biometric). Stock ssh-keygen
	// rejects lines with this option.
	VerifyRequired bool
	Key            ssh.PublicKey
}

// Name is the principals of the line, comma-joined, as people read them.
func (s *Signer) Name() string { return strings.Join(s.Principals, ",") }

// Signers is a parsed allowed_signers file.
type Signers struct {
	List []*Signer
}

// MaxSignersSize bounds an allowed_signers file: a bigger one is refused.
const MaxSignersSize = 1 << 20

// ParseSigners parses data in git's allowed_signers format (one signer a
// line: principals, optional options, key type, base64 key, comment).
// Blank lines and lines starting with # are skipped. Any line that ssh-keygen
// would refuse is an error here too, so a file is either wholly understood or
// refused: name is used in errors.
//
// This is the only reader of config/admins and config/developers: the
// signature policy judges signers by it and the git server (gitserve) lets
// keys log in by it, so who may sign and who may log in never differ by
// how a line is read.
func ParseSigners(name string, data []byte) (*Signers, error) {
	if len(data) > MaxSignersSize {
		return nil, fmt.Errorf("%s: file is %d bytes, more than the %d allowed: remove old keys", name, len(data), MaxSignersSize)
	}
	out := &Signers{}
	for i, line := range strings.Split(string(data), "\n") {
		n := i + 1
		line = strings.TrimRight(line, "\r")
		line = strings.TrimLeft(line, " \t")
		if line == "" || line[0] == '#' {
			continue
		}
		s, err := parseSignerLine(line)
		if err != nil {
			return nil, fmt.Errorf("%s:%d: %w", name, n, err)
		}
		s.Line = n
		out.List = append(out.List, s)
	}
	return out, nil
}

func parseSignerLine(line string) (*Signer, error) {
	principals, rest, err := nextToken(line)
	if err != nil {
		return nil, fmt.Errorf("principals: %w", err)
	}
	if rest == "" {
		return nil, fmt.Errorf("missing key after principals %q: want PRINCIPALS [OPTIONS] KEYTYPE BASE64", principals)
	}
	s := &Signer{}
	for _, p := range strings.Split(principals, ",") {
		if p == "" {
			return nil, fmt.Errorf("empty principal in %q", principals)
		}
		if err := ValidPrincipal(p); err != nil {
			return nil, err
		}
		s.Principals = append(s.Principals, p)
	}
	typ, _, _ := strings.Cut(rest, " ")
	typ, _, _ = strings.Cut(typ, "\t")
	if !knownKeyType(typ) {
		opts, r, err := splitOptions(rest)
		if err != nil {
			return nil, err
		}
		rest = r
		if rest == "" {
			return nil, fmt.Errorf("missing key after options %q", opts)
		}
		if err := s.parseOptions(opts); err != nil {
			return nil, err
		}
	}
	key, err := parseKey(rest)
	if err != nil {
		return nil, err
	}
	s.Key = key
	return s, nil
}

// ValidPrincipal checks one principal name of an allowed_signers line: not
// empty, at most 256 bytes of UTF-8, without quotes, commas or control
// characters (which would garble the logs and reports that name it). Spaces
// are allowed: a principal holding one is written in quotes.
func ValidPrincipal(p string) error {
	switch {
	case p == "":
		return errors.New("empty principal name")
	case len(p) > 256:
		return fmt.Errorf("principal %.20q... is longer than 256 bytes", p)
	case !utf8.ValidString(p):
		return fmt.Errorf("principal %q is not valid UTF-8", p)
	}
	for _, r := range p {
		if r == '"' || r == ',' || unicode.IsControl(r) {
			return fmt.Errorf("principal %q has a quote, comma or control character", p)
		}
	}
	return nil
}

// nextToken returns the first whitespace-delimited token of s (which may be
// a "quoted string") and the rest, with leading whitespace removed.
func nextToken(s string) (tok, rest string, err error) {
	if strings.HasPrefix(s, `"`) {
		end := strings.IndexByte(s[1:], '"')
		if end < 0 {
			return "", "", fmt.Errorf("unterminated quote in %q", s)
		}
		tok, rest = s[1:1+end], s[2+end:]
		if rest != "" && rest[0] != ' ' && rest[0] != '\t' {
			return "", "", fmt.Errorf("text right after closing quote in %q", s)
		}
	} else {
		i := strings.IndexAny(s, " \t")
		if i < 0 {
			tok, rest = s, ""
		} else {
			tok, rest = s[:i], s[i:]
		}
		if strings.Contains(tok, `"`) {
			return "", "", fmt.Errorf("unexpected quote in %q", tok)
		}
	}
	if tok == "" {
		return "", "", fmt.Errorf("empty value")
	}
	return tok, strings.TrimLeft(rest, " \t"), nil
}

// splitOptions splits the options field (up to the first whitespace outside
// quotes) from the rest of the line.
func splitOptions(s string) (opts, rest string, err error) {
	quoted := false
	for i := 0; i < len(s); i++ {
		switch c := s[i]; {
		case c == '\\' && quoted && i+1 < len(s):
			i++
		case c == '"':
			quoted = !quoted
		case (c == ' ' || c == '\t') && !quoted:
			return s[:i], strings.TrimLeft(s[i:], " \t"), nil
		}
	}
	if quoted {
		return "", "", fmt.Errorf("unterminated quote in options %q", s)
	}
	return s, "", nil
}

func (s *Signer) parseOptions(opts string) error {
	seen := map[string]bool{}
	for opts != "" {
		name, val, hasVal, rest, err := nextOption(opts)
		if err != nil {
			return err
		}
		opts = rest
		name = strings.ToLower(name)
		if seen[name] {
			return fmt.Errorf("option %s given twice", name)
		}
		seen[name] = true
		switch name {
		case "cert-authority":
			return fmt.Errorf("cert-authority is not supported: list each signer's own key instead of a certificate authority")
		case "verify-required":
			if hasVal {
				return fmt.Errorf("option verify-required takes no value")
			}
			s.VerifyRequired = true
		case "namespaces", "valid-after", "valid-before":
			if !hasVal {
				return fmt.Errorf(`option %s needs a quoted value: %s="..."`, name, name)
			}
			switch name {
			case "namespaces":
				if val == "" {
					return fmt.Errorf(`namespaces="" allows no namespace: remove the option or list namespaces, e.g. namespaces="git"`)
				}
				s.Namespaces = val
			case "valid-after":
				if s.ValidAfter, err = parseSignerTime(val); err != nil {
					return fmt.Errorf("valid-after: %w", err)
				}
			case "valid-before":
				if s.ValidBefore, err = parseSignerTime(val); err != nil {
					return fmt.Errorf("valid-before: %w", err)
				}
			}
		default:
			return fmt.Errorf("unsupported option %q: allowed are namespaces, valid-after, valid-before and verify-required", name)
		}
	}
	if !s.ValidAfter.IsZero() && !s.ValidBefore.IsZero() && !s.ValidBefore.After(s.ValidAfter) {
		return fmt.Errorf("valid-before is not after valid-after")
	}
	return nil
}

// nextOption reads one name or name="value" option and the comma after it.
func nextOption(s string) (name, val string, hasVal bool, rest string, err error) {
	i := strings.IndexAny(s, "=,")
	if i < 0 {
		return s, "", false, "", nil
	}
	name = s[:i]
	if name == "" {
		return "", "", false, "", fmt.Errorf("empty option in %q", s)
	}
	if s[i] == ',' {
		rest = s[i+1:]
		if rest == "" {
			return "", "", false, "", fmt.Errorf("options end with a comma")
		}
		return name, "", false, rest, nil
	}
	s = s[i+1:]
	if !strings.HasPrefix(s, `"`) {
		return "", "", false, "", fmt.Errorf(`option %s: value must be in double quotes`, name)
	}
	var b strings.Builder
	j := 1
	for ; j < len(s); j++ {
		c := s[j]
		if c == '\\' && j+1 < len(s) && s[j+1] == '"' {
			b.WriteByte('"')
			j++
			continue
		}
		if c == '"' {
			break
		}
		b.WriteByte(c)
	}
	if j >= len(s) {
		return "", "", false, "", fmt.Errorf("option %s: unterminated quote", name)
	}
	rest = s[j+1:]
	if rest != "" {
		if rest[0] != ',' {
			return "", "", false, "", fmt.Errorf("option %s: expected a comma after the value", name)
		}
		rest = rest[1:]
		if rest == "" {
			return "", "", false, "", fmt.Errorf("options end with a comma")
		}
	}
	return name, b.String(), true, rest, nil
}

// parseSignerTime parses YYYYMMDD[HHMM[SS]] with an optional Z or UTC suffix
// for UTC; without it the time is local, as ssh-keygen reads it.
func parseSignerTime(v string) (time.Time, error) {
	loc := time.Local
	s := v
	switch {
	case len(s) > 1 && strings.EqualFold(s[len(s)-1:], "z"):
		s, loc = s[:len(s)-1], time.UTC
	case len(s) > 3 && strings.EqualFold(s[len(s)-3:], "utc"):
		s, loc = s[:len(s)-3], time.UTC
	}
	layouts := map[int]string{8: "20060102", 12: "200601021504", 14: "20060102150405"}
	layout, ok := layouts[len(s)]
	if !ok || strings.Trim(s, "0123456789") != "" {
		return time.Time{}, fmt.Errorf("bad time %q: want YYYYMMDD, YYYYMMDDHHMM or YYYYMMDDHHMMSS, with Z for UTC", v)
	}
	t, err := time.ParseInLocation(layout, s, loc)
	if err != nil {
		return time.Time{}, fmt.Errorf("bad time %q: %w", v, err)
	}
	return t, nil
}

// knownKeyType reports whether s names an SSH public key type.
func knownKeyType(s string) bool {
	switch s {
	case ssh.KeyAlgoED25519, ssh.KeyAlgoRSA, ssh.KeyAlgoECDSA256, ssh.KeyAlgoECDSA384,
		ssh.KeyAlgoECDSA521, ssh.KeyAlgoSKED25519, ssh.KeyAlgoSKECDSA256, ssh.KeyAlgoDSA:
		return true
	}
	return strings.HasSuffix(s, "-cert-v01@openssh.com")
}

// parseKey parses "KEYTYPE BASE64 [COMMENT]".
func parseKey(s string) (ssh.PublicKey, error) {
	fields := strings.Fields(s)
	if len(fields) < 2 {
		return nil, fmt.Errorf("missing key: want KEYTYPE BASE64 after the principals")
	}
	typ := fields[0]
	if !knownKeyType(typ) {
		return nil, fmt.Errorf("unknown key type %q", typ)
	}
	if strings.HasSuffix(typ, "-cert-v01@openssh.com") {
		return nil, fmt.Errorf("certificate keys are not supported: list the plain public key")
	}
	if typ == ssh.KeyAlgoDSA {
		return nil, fmt.Errorf("DSA keys are not supported: use ed25519 or a FIDO key")
	}
	raw, err := base64.StdEncoding.DecodeString(fields[1])
	if err != nil {
		return nil, fmt.Errorf("%s key is not valid base64", typ)
	}
	key, err := ssh.ParsePublicKey(raw)
	if err != nil {
		return nil, fmt.Errorf("%s key: %w", typ, err)
	}
	if key.Type() != typ {
		return nil, fmt.Errorf("key says %s but holds a %s key", typ, key.Type())
	}
	return key, nil
}

// Lookup returns the lines listing key, in file order.
func (ss *Signers) Lookup(key ssh.PublicKey) []*Signer {
	if ss == nil {
		return nil
	}
	want := key.Marshal()
	var out []*Signer
	for _, s := range ss.List {
		if bytes.Equal(s.Key.Marshal(), want) {
			out = append(out, s)
		}
	}
	return out
}

// Allows reports why the line does not allow a signature in namespace made
// at time t, or nil when it does.
func (s *Signer) Allows(namespace string, t time.Time) error {
	if s.Namespaces != "" && matchPatternList(namespace, s.Namespaces) != 1 {
		return fmt.Errorf("%s's key is limited to namespaces %q, not %q", s.Name(), s.Namespaces, namespace)
	}
	if !s.ValidAfter.IsZero() && t.Before(s.ValidAfter) {
		return fmt.Errorf("%s's key is not valid before %s (signed at %s)", s.Name(), s.ValidAfter.UTC().Format(time.RFC3339), t.UTC().Format(time.RFC3339))
	}
	if !s.ValidBefore.IsZero() && t.After(s.ValidBefore) {
		return fmt.Errorf("%s's key expired at %s (signed at %s)", s.Name(), s.ValidBefore.UTC().Format(time.RFC3339), t.UTC().Format(time.RFC3339))
	}
	return nil
}

// matchPatternList matches s against a comma-separated list of patterns with
// * and ? wildcards, as OpenSSH's match_pattern_list does: 1 if a pattern
// matches, -1 if a negated (!pattern) one does, 0 if none.
func matchPatternList(s, list string) int {
	got := 0
	for _, p := range strings.Split(list, ",") {
		neg := strings.HasPrefix(p, "!")
		if neg {
			p = p[1:]
		}
		if matchPattern(s, p) {
			if neg {
				return -1
			}
			got = 1
		}
	}
	return got
}

// matchPattern matches s against a pattern with * (any run) and ? (any
// byte), in time proportional to len(s)*len(p).
func matchPattern(s, p string) bool {
	si, pi := 0, 0
	star, mark := -1, 0
	for si < len(s) {
		switch {
		case pi < len(p) && (p[pi] == '?' || p[pi] == s[si]) && p[pi] != '*':
			si++
			pi++
		case pi < len(p) && p[pi] == '*':
			star, mark = pi, si
			pi++
		case star >= 0:
			mark++
			si, pi = mark, star+1
		default:
			return false
		}
	}
	for pi < len(p) && p[pi] == '*' {
		pi++
	}
	return pi == len(p)
}
