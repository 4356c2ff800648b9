package registry

import (
	"bufio"
	"errors"
	"fmt"
	"io"
	"os"
	"strings"

	"golang.org/x/crypto/bcrypt"
)

// maxHtpasswd bounds the size of an htpasswd file.
const maxHtpasswd = 1 << 20

// ReadHtpasswd reads and checks the htpasswd file at path and returns the
// user names it holds. See ParseHtpasswd for what is accepted.
func ReadHtpasswd(path string) ([]string, error) {
	f, err := os.Open(path)
	if err != nil {
		if errors.Is(err, os.ErrNotExist) {
			return nil, fmt.Errorf("htpasswd file %s does not exist: create it with `htpasswd -Bc %s USER`", path, path)
		}
		return nil, fmt.Errorf("htpasswd file: %w", err)
	}
	defer f.Close()
	users, err := ParseHtpasswd(f)
	if err != nil {
		return nil, fmt.Errorf("htpasswd file %s: %w", path, err)
	}
	return users, nil
}

// ParseHtpasswd checks an htpasswd file in the form the registry reads it:
// one USER:HASH a line, blank lines and lines starting with # ignored,
// surrounding space trimmed. Every HASH must be bcrypt (htpasswd -B), every
// user must appear once, and there must be at least one. It returns the
// users in file order. Errors never quote a hash.
func ParseHtpasswd(r io.Reader) ([]string, error) {
	sc := bufio.NewScanner(io.LimitReader(r, maxHtpasswd+1))
	var (
		users []string
		seen  = map[string]int{}
		n     int
		size  int
	)
	for sc.Scan() {
		n++
		size += len(sc.Bytes()) + 1
		if size > maxHtpasswd {
			return nil, fmt.Errorf("larger than %d bytes", maxHtpasswd)
		}
		line := strings.TrimSpace(sc.Text())
		if line == "" || line[0] == '#' {
			continue
		}
		user, hash, ok := strings.Cut(line, ":")
		switch {
		case !ok:
			return nil, fmt.Errorf("line %d: not USER:HASH: make entries with `htpasswd -B FILE USER`", n)
		case user == "":
			return nil, fmt.Errorf("line %d: empty user name", n)
		case strings.ContainsAny(user, " \t"):
			return nil, fmt.Errorf("line %d: user name %q contains white space", n, user)
		case !isBcrypt(hash):
			return nil, fmt.Errorf("line %d: user %q: password hash is not bcrypt: remake it with `htpasswd -B FILE %s`", n, user, user)
		}
		if first, dup := seen[user]; dup {
			return nil, fmt.Errorf("line %d: user %q already appears on line %d: keep one entry per user", n, user, first)
		}
		seen[user] = n
		users = append(users, user)
	}
	if err := sc.Err(); err != nil {
		if errors.Is(err, bufio.ErrTooLong) {
			return nil, fmt.Errorf("line %d is too long", n+1)
		}
		return nil, err
	}
	if len(users) == 0 {
		return nil, errors.New("no users: add one with `htpasswd -B FILE USER`")
	}
	return users, nil
}

// isBcrypt reports whether hash is a well-formed bcrypt hash.
func isBcrypt(hash string) bool {
	if !strings.HasPrefix(hash, "$2a$") && !strings.HasPrefix(hash, "$2b$") && !strings.HasPrefix(hash, "$2y$") {
		return false
	}
	_, err := bcrypt.Cost([]byte(hash))
	return err == nil && len(hash) == 60
}

// HtpasswdLine returns an htpasswd entry for user with a bcrypt hash of
// password, as `htpasswd -nB` prints it (without the newline).
func HtpasswdLine(user, password string) (string, error) {
	if user == "" || strings.ContainsAny(user, ": \t\r\n#") {
		return "", fmt.Errorf("user name %q: must be non-empty without ':', '#' or white space", user)
	}
	h, err := bcrypt.GenerateFromPassword([]byte(password), bcrypt.DefaultCost)
	if err != nil {
		return "", fmt.Errorf("hash password for %s: %w", user, err)
	}
	return user + ":" + string(h), nil
}
