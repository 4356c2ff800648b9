package registry

import (
	"bufio"
	"errors"
	"fmt"
	"io"
	"os"
	"path/filepath"
	"strings"

	"golang.org/x/crypto/bcrypt"

	"github.com/hashbang/stack/internal/atomicfile"
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

// User is the one user of a registry whose credentials are a password
// file (stack serve --push-password-file, stack registry-proxy
// --password-file): the cluster's own registry, whose password is a
// Secret generated at the first deploy.
const User = "stack"

// Bounds of a password file's password.
const (
	minPassword = 16
	maxPassword = 1024
)

// ReadPassword reads a password file: the password, alone (a trailing
// newline is dropped), at least 16 characters, no white space or control
// characters.
func ReadPassword(path string) (string, error) {
	f, err := os.Open(path)
	if err != nil {
		return "", fmt.Errorf("password file: %w", err)
	}
	defer f.Close()
	data, err := io.ReadAll(io.LimitReader(f, maxPassword+2))
	if err != nil {
		return "", fmt.Errorf("password file %s: %w", path, err)
	}
	pw, err := ParsePassword(data)
	if err != nil {
		return "", fmt.Errorf("password file %s: %w", path, err)
	}
	return pw, nil
}

// ParsePassword checks the contents of a password file (see ReadPassword).
func ParsePassword(data []byte) (string, error) {
	pw := strings.TrimSuffix(strings.TrimSuffix(string(data), "\n"), "\r")
	switch {
	case len(pw) < minPassword:
		return "", fmt.Errorf("the password has %d characters: give at least %d (a generated Secret: alnum:32)", len(pw), minPassword)
	case len(pw) > maxPassword:
		return "", fmt.Errorf("the password is longer than %d bytes: give one line", maxPassword)
	}
	for _, r := range pw {
		if r <= ' ' || r == 0x7f {
			return "", errors.New("the password holds white space or a control character: give it alone on one line")
		}
	}
	return pw, nil
}

// WriteHtpasswd writes an htpasswd file (0600) at path whose one entry is
// User with the password of passwordFile, for Config.HtpasswdFile.
func WriteHtpasswd(path, passwordFile string) error {
	pw, err := ReadPassword(passwordFile)
	if err != nil {
		return err
	}
	line, err := HtpasswdLine(User, pw)
	if err != nil {
		return err
	}
	if err := os.MkdirAll(filepath.Dir(path), 0o700); err != nil {
		return err
	}
	return atomicfile.WriteFile(path, []byte(line+"\n"), 0o600)
}
