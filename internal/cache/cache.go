// Package cache owns stack's content-addressed stores of downloaded and
// built artifacts. A Store keeps each blob under blobs/<algorithm>/<hex>, the
// path named by the digest of its content, and accepts a blob only after its
// content has been hashed and found equal to the digest it was asked to
// store: a failed or tampered download never becomes visible in the store.
//
// Two stores are used: the local cache (.cache/ by default, ignored by git),
// which also holds the Go module cache of locked sources and build outputs,
// and the in-repo cache (cache/), tracked by git-lfs, of known-working
// artifacts that fetches take before going to the network.
package cache

import (
	"errors"
	"fmt"
	"io"
	"io/fs"
	"os"
	"path/filepath"

	"github.com/opencontainers/go-digest"
)

// Store is a content-addressed directory of blobs.
type Store struct {
	Dir string
}

// MismatchError says that content did not hash to the digest it was pinned to.
type MismatchError struct {
	Want, Got digest.Digest
}

func (e *MismatchError) Error() string {
	return fmt.Sprintf("content does not match its pin: want %s, got %s", e.Want, e.Got)
}

// Path returns where the blob with digest d is (or would be) stored.
func (s *Store) Path(d digest.Digest) string {
	return filepath.Join(s.Dir, "blobs", d.Algorithm().String(), d.Encoded())
}

// Has reports whether a blob with digest d is present. It does not check the
// content; Verify does.
func (s *Store) Has(d digest.Digest) bool {
	fi, err := os.Stat(s.Path(d))
	return err == nil && fi.Mode().IsRegular()
}

// TempDir makes a new directory for work in progress inside the store, on the
// same file system as the blobs so that a finished file can be renamed in.
func (s *Store) TempDir(pattern string) (string, error) {
	tmp := filepath.Join(s.Dir, "tmp")
	if err := os.MkdirAll(tmp, 0o755); err != nil {
		return "", err
	}
	return os.MkdirTemp(tmp, pattern)
}

// Put stores the content read from r under want. The content is written to a
// temporary file and hashed on the way; only if it matches want is it renamed
// into place. On a mismatch a *MismatchError is returned and the store is as
// it was. progress, if not nil, is called with the bytes written so far.
func (s *Store) Put(r io.Reader, want digest.Digest, progress func(n int64)) error {
	if err := want.Validate(); err != nil {
		return fmt.Errorf("invalid digest %q: %w", want, err)
	}
	tmp, err := s.TempDir("put-")
	if err != nil {
		return err
	}
	defer os.RemoveAll(tmp)
	f, err := os.Create(filepath.Join(tmp, "blob"))
	if err != nil {
		return err
	}
	dg := want.Algorithm().Digester()
	var w io.Writer = io.MultiWriter(f, dg.Hash())
	if progress != nil {
		w = &countingWriter{w: w, fn: progress}
	}
	_, err = io.Copy(w, r)
	if cerr := f.Close(); err == nil {
		err = cerr
	}
	if err != nil {
		return err
	}
	if got := dg.Digest(); got != want {
		return &MismatchError{Want: want, Got: got}
	}
	dst := s.Path(want)
	if err := os.MkdirAll(filepath.Dir(dst), 0o755); err != nil {
		return err
	}
	if err := os.Chmod(f.Name(), 0o444); err != nil {
		return err
	}
	return os.Rename(f.Name(), dst)
}

// PutFile stores a copy of the file at path under want, as Put does.
func (s *Store) PutFile(path string, want digest.Digest) error {
	f, err := os.Open(path)
	if err != nil {
		return err
	}
	defer f.Close()
	return s.Put(f, want, nil)
}

// CopyFrom stores the blob d from another store, verifying it on the way.
func (s *Store) CopyFrom(o *Store, d digest.Digest) error {
	return s.PutFile(o.Path(d), d)
}

// Verify hashes the stored blob d and returns a *MismatchError if it has
// changed, or an error wrapping fs.ErrNotExist if it is absent.
func (s *Store) Verify(d digest.Digest) error {
	f, err := os.Open(s.Path(d))
	if err != nil {
		return err
	}
	defer f.Close()
	got, err := d.Algorithm().FromReader(f)
	if err != nil {
		return err
	}
	if got != d {
		return &MismatchError{Want: d, Got: got}
	}
	return nil
}

// IsNotExist reports whether err says a blob is absent.
func IsNotExist(err error) bool { return errors.Is(err, fs.ErrNotExist) }

type countingWriter struct {
	w  io.Writer
	n  int64
	fn func(int64)
}

func (c *countingWriter) Write(p []byte) (int, error) {
	n, err := c.w.Write(p)
	c.n += int64(n)
	c.fn(c.n)
	return n, err
}
