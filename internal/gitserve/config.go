package gitserve

import (
	"bytes"
	"errors"
	"fmt"
	"io/fs"
	"log/slog"
	"os"
	"path/filepath"
	"slices"
	"sync"
	"time"

	"golang.org/x/crypto/ssh"
)

// AccessFile is the name of the permissions file in the config directory.
const AccessFile = "git.yaml"

// Policy is the server's view of its config directory at one moment: which
// keys log in as whom, and who may do what to which repository.
type Policy struct {
	logins logins
	Access *Access
}

// Identify returns who a public key logs in as at time at, or why it may
// not (see logins).
func (p *Policy) Identify(key ssh.PublicKey, at time.Time) (Identity, error) {
	return p.logins.identify(key, at)
}

// Keys is the number of keys that may log in now.
func (p *Policy) Keys() int { return p.logins.keys(time.Now()) }

// LoadPolicy reads DIR/admins, DIR/developers (allowed_signers format; a
// missing file lists nobody) and DIR/git.yaml (missing: DefaultAccess).
func LoadPolicy(dir string) (*Policy, error) {
	files, err := readPolicyFiles(dir)
	if err != nil {
		return nil, err
	}
	return parsePolicy(dir, files)
}

// policyFiles are the contents of the files of a config directory, in the
// order Groups then AccessFile; nil for a missing file.
type policyFiles [][]byte

func readPolicyFiles(dir string) (policyFiles, error) {
	var files policyFiles
	for _, name := range append(slices.Clone(Groups), AccessFile) {
		data, err := os.ReadFile(filepath.Join(dir, name))
		if errors.Is(err, fs.ErrNotExist) {
			files = append(files, nil)
			continue
		}
		if err != nil {
			return nil, fmt.Errorf("read config: %w", err)
		}
		if data == nil {
			data = []byte{}
		}
		files = append(files, data)
	}
	return files, nil
}

func (f policyFiles) equal(g policyFiles) bool {
	if len(f) != len(g) {
		return false
	}
	for i := range f {
		if (f[i] == nil) != (g[i] == nil) || !bytes.Equal(f[i], g[i]) {
			return false
		}
	}
	return true
}

func parsePolicy(dir string, files policyFiles) (*Policy, error) {
	p := &Policy{Access: DefaultAccess()}
	var err error
	if p.logins, err = parseLogins(dir, files); err != nil {
		return nil, err
	}
	if data := files[len(Groups)]; data != nil {
		a, err := parseAccess(filepath.Join(dir, AccessFile), data)
		if err != nil {
			return nil, err // its lines name the file
		}
		p.Access = a
	}
	return p, nil
}

// policySource rereads the config directory when asked and its files
// changed. A change that does not parse is logged and the last good policy
// stays in force.
type policySource struct {
	dir string
	log *slog.Logger

	mu    sync.Mutex
	files policyFiles
	cur   *Policy
	bad   policyFiles // last contents that failed, logged once
}

func newPolicySource(dir string, log *slog.Logger) (*policySource, error) {
	files, err := readPolicyFiles(dir)
	if err != nil {
		return nil, err
	}
	p, err := parsePolicy(dir, files)
	if err != nil {
		return nil, err
	}
	return &policySource{dir: dir, log: log, files: files, cur: p}, nil
}

func (s *policySource) current() *Policy {
	s.mu.Lock()
	defer s.mu.Unlock()
	files, err := readPolicyFiles(s.dir)
	if err != nil {
		s.log.Warn("config unreadable; keeping the last good one", "dir", s.dir, "err", err)
		return s.cur
	}
	if files.equal(s.files) || files.equal(s.bad) {
		return s.cur
	}
	// Fail closed: a file that disappears (a missing git.yaml would mean
	// the permissive default) keeps the last good policy, as an invalid
	// one does.
	for i, name := range append(slices.Clone(Groups), AccessFile) {
		if s.files[i] != nil && files[i] == nil {
			s.bad = files
			s.log.Error("config file disappeared; keeping the last good config: restore it", "file", filepath.Join(s.dir, name))
			return s.cur
		}
	}
	p, err := parsePolicy(s.dir, files)
	if err != nil {
		s.bad = files
		s.log.Error("config changed but is invalid; keeping the last good one", "err", err)
		return s.cur
	}
	s.files, s.cur, s.bad = files, p, nil
	s.log.Info("config reloaded", "dir", s.dir, "keys", p.Keys())
	return p
}
