package gitserve

import (
	"bytes"
	"fmt"
	"strings"
	"unicode/utf8"

	"golang.org/x/crypto/ssh"
)

// Signer is one line of an allowed_signers file: the principals a public key
// speaks for.
type Signer struct {
	// Principals are the names the key belongs to, in file order.
	Principals []string
	// Key is the public key.
	Key ssh.PublicKey
	// Options are the line's options (cert-authority, namespaces="git", ...),
	// as written.
	Options []string
	// Line is the 1-based line number in the file.
	Line int
}

// CertAuthority reports whether the line names a certificate authority rather
// than a key that logs in by itself.
func (s Signer) CertAuthority() bool {
	for _, o := range s.Options {
		if strings.EqualFold(o, "cert-authority") {
			return true
		}
	}
	return false
}

// maxConfigSize bounds every configuration file read from the stack repository.
const maxConfigSize = 1 << 20

// ParseSigners parses a file in git's allowed_signers format (see ssh-keygen(1),
// ALLOWED SIGNERS): one key per line,
//
//	principal[,principal...] [options] keytype base64 [comment]
//
// with blank lines and lines starting with '#' ignored. Any bad line is an
// error naming its line number.
func ParseSigners(data []byte) ([]Signer, error) {
	if len(data) > maxConfigSize {
		return nil, fmt.Errorf("file is %d bytes, more than the %d allowed", len(data), maxConfigSize)
	}
	var out []Signer
	for i, line := range bytes.Split(data, []byte("\n")) {
		n := i + 1
		line = bytes.TrimSpace(line)
		if len(line) == 0 || line[0] == '#' {
			continue
		}
		s, err := parseSignerLine(string(line))
		if err != nil {
			return nil, fmt.Errorf("line %d: %w", n, err)
		}
		s.Line = n
		out = append(out, s)
	}
	return out, nil
}

const signerSyntax = "want: principal[,principal] [options] keytype base64 [comment]"

func parseSignerLine(line string) (Signer, error) {
	var field, rest string
	if strings.HasPrefix(line, `"`) {
		end := strings.IndexByte(line[1:], '"')
		if end < 0 {
			return Signer{}, fmt.Errorf("unterminated quote in principals (%s)", signerSyntax)
		}
		field, rest = line[1:1+end], line[2+end:]
		if rest != "" && rest[0] != ' ' && rest[0] != '\t' {
			return Signer{}, fmt.Errorf("no space after the quoted principals (%s)", signerSyntax)
		}
	} else {
		end := strings.IndexAny(line, " \t")
		if end < 0 {
			return Signer{}, fmt.Errorf("no key after the principals (%s)", signerSyntax)
		}
		field, rest = line[:end], line[end:]
	}
	var principals []string
	for _, p := range strings.Split(field, ",") {
		if err := validPrincipal(p); err != nil {
			return Signer{}, err
		}
		principals = append(principals, p)
	}
	rest = strings.TrimSpace(rest)
	if rest == "" {
		return Signer{}, fmt.Errorf("no key after the principals (%s)", signerSyntax)
	}
	key, _, options, _, err := ssh.ParseAuthorizedKey([]byte(rest))
	if err != nil {
		return Signer{}, fmt.Errorf("no valid public key after the principals (%s): %v", signerSyntax, err)
	}
	return Signer{Principals: principals, Key: key, Options: options}, nil
}

// validPrincipal checks one principal name: not empty, at most 256 bytes,
// printable, without spaces, quotes or commas.
func validPrincipal(p string) error {
	if p == "" {
		return fmt.Errorf("empty principal name (%s)", signerSyntax)
	}
	if len(p) > 256 {
		return fmt.Errorf("principal name longer than 256 bytes")
	}
	if !utf8.ValidString(p) {
		return fmt.Errorf("principal %q is not valid UTF-8", p)
	}
	for _, r := range p {
		if r <= ' ' || r == 0x7f || r == '"' || r == ',' || r == '\\' {
			return fmt.Errorf("principal %q has a space, quote, comma, backslash or control character", p)
		}
	}
	return nil
}
