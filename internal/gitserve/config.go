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
	"strings"
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
	// from, when set, is where the files are read instead of dir, once
	// it exists: config/ at a ref of a served repository.
	from *ConfigRef
	// at is the commit of from the files were last read at; where is
	// where the policy in force was read.
	at, where string

	mu    sync.Mutex
	files policyFiles
	cur   *Policy
	bad   policyFiles // last contents that failed, logged once
}

func newPolicySource(dir string, from *ConfigRef, log *slog.Logger) (*policySource, error) {
	s := &policySource{dir: dir, from: from, log: log}
	where, files, err := s.read()
	if err != nil {
		return nil, err
	}
	p, err := parsePolicy(where, files)
	if err != nil {
		return nil, err
	}
	s.files, s.cur, s.where = files, p, where
	log.Info("access configuration", "from", where)
	return s, nil
}

// ConfigRef names the config/ directory at a ref of a served repository:
// the access configuration only signed pushes change, which a checkout of
// the stack repository's work tree cannot widen.
type ConfigRef struct {
	DataDir, Repo, Ref string
	git                string
}

func (c *ConfigRef) String() string {
	return c.Repo + "@" + strings.TrimPrefix(c.Ref, "refs/heads/") + ":config"
}

// read returns the files and where they were read: config/ at the ref
// when it exists, else the directory (until the first push creates it).
func (s *policySource) read() (string, policyFiles, error) {
	if s.from != nil {
		if path, err := Resolve(s.from.DataDir, s.from.Repo); err == nil {
			out, err := gitCmd(s.from.git, s.from.DataDir, "--git-dir", path, "rev-parse", "--verify", "-q", s.from.Ref+"^{commit}").Output()
			if commit := strings.TrimSpace(string(out)); err == nil && commit != "" {
				if commit == s.at && s.files != nil {
					return s.from.String(), s.files, nil
				}
				files, err := readRefFiles(s.from, path, commit)
				if err == nil {
					s.at = commit
				}
				return s.from.String(), files, err
			}
		}
		if s.at != "" {
			// The ref was there and is gone: fail closed, as when a file
			// disappears.
			return s.from.String(), nil, fmt.Errorf("%s no longer exists", s.from)
		}
	}
	files, err := readPolicyFiles(s.dir)
	return s.dir, files, err
}

// readRefFiles reads the config files at commit of the repository at path.
func readRefFiles(c *ConfigRef, path, commit string) (policyFiles, error) {
	var files policyFiles
	for _, name := range append(slices.Clone(Groups), AccessFile) {
		cmd := gitCmd(c.git, c.DataDir, "--git-dir", path, "cat-file", "blob", commit+":config/"+name)
		data, err := cmd.Output()
		if err != nil {
			// Missing at that commit (cat-file says so on stderr).
			files = append(files, nil)
			continue
		}
		files = append(files, data)
	}
	return files, nil
}

func (s *policySource) current() *Policy {
	s.mu.Lock()
	defer s.mu.Unlock()
	where, files, err := s.read()
	if err != nil {
		s.log.Warn("config unreadable; keeping the last good one", "from", where, "err", err)
		return s.cur
	}
	if files.equal(s.files) || files.equal(s.bad) {
		return s.cur
	}
	// Fail closed: a file that disappears (a missing git.yaml would mean
	// the permissive default) keeps the last good policy, as an invalid
	// one does.
	for i, name := range append(slices.Clone(Groups), AccessFile) {
		// (Moving from the work tree to the ref is not disappearing.)
		if where == s.where && s.files[i] != nil && files[i] == nil {
			s.bad = files
			s.log.Error("config file disappeared; keeping the last good config: restore it", "file", filepath.Join(where, name))
			return s.cur
		}
	}
	p, err := parsePolicy(where, files)
	if err != nil {
		s.bad = files
		s.log.Error("config changed but is invalid; keeping the last good one", "err", err)
		return s.cur
	}
	s.files, s.cur, s.bad, s.where = files, p, nil, where
	s.log.Info("config reloaded", "from", where, "keys", p.Keys())
	return p
}
