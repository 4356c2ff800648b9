// Package cache owns stack's content-addressed stores of downloaded and
// built artifacts. A Store keeps each blob under blobs/<algorithm>/<hex>, the
// path named by the digest of its content, and accepts a blob only after its
// content has been hashed and found equal to the digest it was asked to
// store: a failed or tampered download never becomes visible in the store.
//
// A blob is a regular file, written by Put. Reading one refuses anything
// else in its place, without blocking: a symbolic link (even to a regular
// file: the store never makes one, so one is not the store's), a FIFO, a
// device or a socket, any of which could make a read hang or never end.
// Directories on the way to the store (a cache/ that is itself a link) are
// followed as usual.
//
// Two stores are used: the local cache (.cache/ by default, ignored by git),
// which also holds the Go module cache of locked sources and build outputs,
// and the in-repo cache (cache/), tracked by git-lfs, of known-working
// artifacts that fetches take before going to the network.
package cache

import (
	"context"
	"errors"
	"fmt"
	"io"
	"io/fs"
	"os"
	"path/filepath"
	"syscall"

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

// Has reports whether a blob with digest d is present: a regular file (not
// a link) at its path. It does not check the content; Verify does.
func (s *Store) Has(d digest.Digest) bool {
	fi, err := os.Lstat(s.Path(d))
	return err == nil && fi.Mode().IsRegular()
}

// NotRegularError says that a path to be read holds something else than a
// regular file.
type NotRegularError struct {
	Path string
	// What it is: "a symbolic link", "a named pipe", ...
	What string
}

func (e *NotRegularError) Error() string {
	return fmt.Sprintf("%s is %s, not a regular file: delete it, then fetch again", e.Path, e.What)
}

// OpenBlob opens the blob d for reading, refusing anything but a regular
// file in its place.
func (s *Store) OpenBlob(d digest.Digest) (*os.File, error) {
	return Open(s.Path(d))
}

// Open opens the file at path for reading as OpenBlob opens a blob:
// refusing a symbolic link at path and anything else than a regular file,
// without blocking. Use it for every file of a cache.
func Open(path string) (*os.File, error) {
	return openRegular(path, false)
}

// OpenRegular opens the file at path for reading, following symbolic links,
// and refuses it unless it is a regular file. It never blocks on a FIFO
// nor reads a device: use it for any file another program handed over.
func OpenRegular(path string) (*os.File, error) {
	return openRegular(path, true)
}

// openRegular opens path, refusing a symbolic link at path unless follow,
// and anything that is not a regular file, without blocking: the file is
// looked at (Lstat) before it is opened, opened with O_NONBLOCK (a FIFO
// does not wait for a writer), and what was opened is checked again.
func openRegular(path string, follow bool) (*os.File, error) {
	stat := os.Lstat
	flags := os.O_RDONLY | syscall.O_NONBLOCK | syscall.O_NOCTTY
	if follow {
		stat = os.Stat
	} else {
		flags |= syscall.O_NOFOLLOW
	}
	fi, err := stat(path)
	if err != nil {
		return nil, err
	}
	if !fi.Mode().IsRegular() {
		return nil, &NotRegularError{Path: path, What: describeMode(fi.Mode())}
	}
	f, err := os.OpenFile(path, flags, 0)
	if errors.Is(err, syscall.ELOOP) && !follow {
		return nil, &NotRegularError{Path: path, What: "a symbolic link"}
	}
	if err != nil {
		return nil, err
	}
	if ofi, err := f.Stat(); err != nil || !ofi.Mode().IsRegular() || !os.SameFile(fi, ofi) {
		f.Close()
		if err != nil {
			return nil, err
		}
		return nil, &NotRegularError{Path: path, What: "replaced while it was being opened"}
	}
	return f, nil
}

func describeMode(m fs.FileMode) string {
	switch {
	case m&fs.ModeSymlink != 0:
		return "a symbolic link"
	case m&fs.ModeNamedPipe != 0:
		return "a named pipe (FIFO)"
	case m&fs.ModeCharDevice != 0:
		return "a character device"
	case m&fs.ModeDevice != 0:
		return "a block device"
	case m&fs.ModeSocket != 0:
		return "a socket"
	case m.IsDir():
		return "a directory"
	}
	return "a special file"
}

// ContextReader returns a reader of r that fails once ctx is done, so that
// long copies and hashes stop promptly on cancellation.
func ContextReader(ctx context.Context, r io.Reader) io.Reader { return ctxReader{ctx, r} }

type ctxReader struct {
	ctx context.Context
	r   io.Reader
}

func (c ctxReader) Read(p []byte) (int, error) {
	if err := c.ctx.Err(); err != nil {
		return 0, err
	}
	return c.r.Read(p)
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

// PutFile stores a copy of the file at path under want, as Put does. The
// file must be a regular file (a link to one is followed); copying stops
// when ctx is done.
func (s *Store) PutFile(ctx context.Context, path string, want digest.Digest) error {
	f, err := OpenRegular(path)
	if err != nil {
		return err
	}
	defer f.Close()
	return s.Put(ctxReader{ctx, f}, want, nil)
}

// CopyFrom stores the blob d from another store, verifying it on the way.
func (s *Store) CopyFrom(ctx context.Context, o *Store, d digest.Digest) error {
	f, err := o.OpenBlob(d)
	if err != nil {
		return err
	}
	defer f.Close()
	return s.Put(ctxReader{ctx, f}, d, nil)
}

// Verify hashes the stored blob d and returns a *MismatchError if it has
// changed, a *NotRegularError if something else than a regular file is in
// its place, or an error wrapping fs.ErrNotExist if it is absent. Hashing
// stops when ctx is done.
func (s *Store) Verify(ctx context.Context, d digest.Digest) error {
	f, err := s.OpenBlob(d)
	if err != nil {
		return err
	}
	defer f.Close()
	got, err := d.Algorithm().FromReader(ctxReader{ctx, f})
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
