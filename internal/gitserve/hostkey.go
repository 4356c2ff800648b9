package gitserve

import (
	"crypto/ed25519"
	"crypto/rand"
	"encoding/pem"
	"errors"
	"fmt"
	"io/fs"
	"os"
	"path/filepath"
	"strings"

	"golang.org/x/crypto/ssh"

	"github.com/hashbang/stack/internal/atomicfile"
)

// HostKeyPath is where the server's SSH host key lives in a data directory.
func HostKeyPath(dataDir string) string {
	return filepath.Join(dataDir, "ssh", "ssh_host_ed25519_key")
}

// LoadHostKey reads the host key at path, or generates an ed25519 key there
// (mode 0600, with the public half in path.pub) when there is none. A key
// that others can read is refused.
func LoadHostKey(path string) (ssh.Signer, error) {
	data, err := os.ReadFile(path)
	if errors.Is(err, fs.ErrNotExist) {
		return generateHostKey(path)
	}
	return hostKey(path, data, err, 0o077, "is accessible by others (mode %04o): chmod 600 it", "remove it to have a new one generated")
}

// hostKey checks and parses the host key data read from path (err: the
// read's error): no permission bit of forbidden may be set (modeFault says
// so, given the mode), and parseFix is what to do with a key that does not
// parse.
func hostKey(path string, data []byte, err error, forbidden fs.FileMode, modeFault, parseFix string) (ssh.Signer, error) {
	if err != nil {
		return nil, fmt.Errorf("read host key: %w", err)
	}
	fi, err := os.Stat(path)
	if err != nil {
		return nil, fmt.Errorf("read host key: %w", err)
	}
	if fi.Mode().Perm()&forbidden != 0 {
		return nil, fmt.Errorf("host key %s "+modeFault, path, fi.Mode().Perm())
	}
	signer, err := ssh.ParsePrivateKey(data)
	if err != nil {
		return nil, fmt.Errorf("host key %s: %v: %s", path, err, parseFix)
	}
	return signer, nil
}

// ReadHostKey reads a given host key: it must exist, and others (not its
// owner or group) must not be able to read it.
func ReadHostKey(path string) (ssh.Signer, error) {
	data, err := os.ReadFile(path)
	return hostKey(path, data, err, 0o007, "is readable by everyone (mode %04o): chmod o-rwx it (a Secret volume: defaultMode 0440)", "give an OpenSSH private key")
}

func generateHostKey(path string) (ssh.Signer, error) {
	_, priv, err := ed25519.GenerateKey(rand.Reader)
	if err != nil {
		return nil, fmt.Errorf("generate host key: %w", err)
	}
	block, err := ssh.MarshalPrivateKey(priv, "stack serve host key")
	if err != nil {
		return nil, fmt.Errorf("generate host key: %w", err)
	}
	signer, err := ssh.NewSignerFromKey(priv)
	if err != nil {
		return nil, fmt.Errorf("generate host key: %w", err)
	}
	dir := filepath.Dir(path)
	if err := os.MkdirAll(dir, 0o700); err != nil {
		return nil, fmt.Errorf("generate host key: %w", err)
	}
	if err := atomicfile.WriteFile(path+".pub", ssh.MarshalAuthorizedKey(signer.PublicKey()), 0o644); err != nil {
		return nil, fmt.Errorf("generate host key: %w", err)
	}
	if err := atomicfile.WriteFile(path, pem.EncodeToMemory(block), 0o600); err != nil {
		return nil, fmt.Errorf("generate host key: %w", err)
	}
	return signer, nil
}

// ReadPublicKey reads an SSH public key file: one authorized_keys line.
func ReadPublicKey(path string) (ssh.PublicKey, error) {
	data, err := os.ReadFile(path)
	if err != nil {
		return nil, err
	}
	key, _, _, rest, err := ssh.ParseAuthorizedKey(data)
	if err != nil {
		return nil, fmt.Errorf("%s: %v: give one public key line (ssh-ed25519 AAAA...)", path, err)
	}
	if len(strings.TrimSpace(string(rest))) > 0 {
		return nil, fmt.Errorf("%s holds more than one key: give one", path)
	}
	return key, nil
}
