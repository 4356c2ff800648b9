package policy

import (
	"bytes"
	"errors"
	"fmt"
	"strconv"
	"strings"
	"time"
)

// Commit is a parsed git commit object.
type Commit struct {
	ID        string
	Tree      string
	Parents   []string
	Author    string
	Committer string
	// Time is the committer time: the time a signature is judged at, as
	// git verify-commit does.
	Time    time.Time
	Message string
	// Signature is the text of the signature header (gpgsig, or
	// gpgsig-sha256 in a SHA-256 repository), nil when unsigned.
	Signature []byte
	// Payload is the object without its signature headers: the bytes the
	// signature covers.
	Payload []byte
}

// Subject is the first line of the message.
func (c *Commit) Subject() string {
	s, _, _ := strings.Cut(strings.TrimLeft(c.Message, "\n"), "\n")
	return s
}

// sigHeader names the signature header of a repository's hash: git signs
// with gpgsig in SHA-1 repositories and gpgsig-sha256 in SHA-256 ones.
func sigHeader(hexLen int) string {
	if hexLen == 64 {
		return "gpgsig-sha256"
	}
	return "gpgsig"
}

// ParseCommit parses the raw body of commit id (as git cat-file commit
// prints it). Object ids have hexLen hex digits (40 for SHA-1, 64 for
// SHA-256). The signed payload is split out as git does it: the signature
// header of the repository's hash and its continuation lines (those starting
// with a space) are removed, and so are headers holding signatures for the
// other hash. A commit carrying two signature headers is refused.
func ParseCommit(id string, raw []byte, hexLen int) (*Commit, error) {
	c := &Commit{ID: id}
	header := sigHeader(hexLen)
	var payload, sig bytes.Buffer
	inSig, otherSig, sawSig := false, false, false
	rest := raw
	line := 0
	for len(rest) > 0 {
		var l []byte
		if i := bytes.IndexByte(rest, '\n'); i >= 0 {
			l, rest = rest[:i+1], rest[i+1:]
		} else {
			l, rest = rest, nil
		}
		if len(l) == 1 && l[0] == '\n' || len(l) == 0 {
			payload.Write(l)
			c.Message = string(rest)
			payload.Write(rest)
			rest = nil
			break
		}
		line++
		text := strings.TrimSuffix(string(l), "\n")
		switch {
		case inSig && text[0] == ' ':
			sig.WriteString(text[1:] + "\n")
			continue
		case strings.HasPrefix(text, header+" "):
			if sawSig {
				return nil, errors.New("commit has more than one signature header")
			}
			sig.WriteString(text[len(header)+1:] + "\n")
			inSig, sawSig, otherSig = true, true, false
			continue
		case strings.HasPrefix(text, "gpgsig"):
			inSig, otherSig = false, true
			continue
		case otherSig && text[0] == ' ':
			continue
		}
		inSig, otherSig = false, false
		payload.Write(l)
		if text[0] == ' ' {
			continue // continuation of another header, e.g. mergetag
		}
		key, val, _ := strings.Cut(text, " ")
		switch key {
		case "tree":
			if line != 1 || !isHex(val, hexLen) {
				return nil, fmt.Errorf("bad tree line %q", text)
			}
			c.Tree = val
		case "parent":
			if c.Tree == "" || c.Author != "" || !isHex(val, hexLen) {
				return nil, fmt.Errorf("bad parent line %q", text)
			}
			c.Parents = append(c.Parents, val)
		case "author":
			if c.Tree == "" || c.Author != "" {
				return nil, fmt.Errorf("misplaced author line")
			}
			c.Author = val
		case "committer":
			if c.Author == "" || c.Committer != "" {
				return nil, fmt.Errorf("misplaced committer line")
			}
			t, err := identTime(val)
			if err != nil {
				return nil, fmt.Errorf("committer: %w", err)
			}
			c.Committer, c.Time = val, t
		default:
			if c.Committer == "" {
				return nil, fmt.Errorf("unexpected header %q before committer", key)
			}
		}
	}
	if c.Tree == "" || c.Author == "" || c.Committer == "" {
		return nil, errors.New("commit lacks tree, author or committer")
	}
	if sawSig {
		c.Signature = sig.Bytes()
	}
	c.Payload = payload.Bytes()
	return c, nil
}

// identTime reads the time of an ident line: "Name <email> 1700000000 +0100".
func identTime(ident string) (time.Time, error) {
	i := strings.LastIndexByte(ident, '>')
	if i < 0 {
		return time.Time{}, fmt.Errorf("no <email> in %q", ident)
	}
	f := strings.Fields(ident[i+1:])
	if len(f) != 2 {
		return time.Time{}, fmt.Errorf("no timestamp and zone in %q", ident)
	}
	sec, err := strconv.ParseInt(f[0], 10, 64)
	if err != nil {
		return time.Time{}, fmt.Errorf("bad timestamp %q", f[0])
	}
	tz := f[1]
	if len(tz) != 5 || (tz[0] != '+' && tz[0] != '-') || strings.Trim(tz[1:], "0123456789") != "" {
		return time.Time{}, fmt.Errorf("bad zone %q", tz)
	}
	h, _ := strconv.Atoi(tz[1:3])
	m, _ := strconv.Atoi(tz[3:5])
	off := h*3600 + m*60
	if tz[0] == '-' {
		off = -off
	}
	return time.Unix(sec, 0).In(time.FixedZone(tz, off)), nil
}

func isHex(s string, n int) bool {
	if len(s) != n {
		return false
	}
	for i := 0; i < len(s); i++ {
		c := s[i]
		if !('0' <= c && c <= '9' || 'a' <= c && c <= 'f') {
			return false
		}
	}
	return true
}
