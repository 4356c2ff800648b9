package gitserve

import (
	"crypto/sha256"
	"encoding/hex"
	"errors"
	"fmt"
	"io"
	"io/fs"
	"os"
	"path/filepath"
	"strconv"
	"syscall"

	"github.com/charmbracelet/git-lfs-transfer/transfer"
)

// git-lfs over SSH: the pure-SSH transfer protocol git-lfs speaks since 3.0
// (`git-lfs-transfer PATH upload|download`), served in process with
// charmbracelet/git-lfs-transfer's protocol handler. Objects live in the
// bare repository, content-addressed as git-lfs keeps them locally:
//
//	DATA/git/NAME.git/lfs/objects/OID[0:2]/OID[2:4]/OID
//	DATA/git/NAME.git/lfs/tmp/        uploads until they are verified
//
// An upload is read into lfs/tmp, its size and sha256 checked against what
// the client claimed, and only then renamed into objects/: an object whose
// content does not match its oid is refused and stores nothing. Reading
// (download) needs read access to the repository, writing (upload) write
// access, as config/git.yaml says. Locking is not offered.

// LFSTransfer is git-lfs's SSH transfer command.
const LFSTransfer = "git-lfs-transfer"

// MaxLFSObject bounds one uploaded object.
const MaxLFSObject = 16 << 30

// lfsStore is one repository's LFS objects, for one session.
type lfsStore struct {
	dir string // REPO.git/lfs
	// pending are the uploads received and not yet published: the
	// protocol handler publishes an upload only once its size matched,
	// and the session removes what is left when it ends.
	pending map[string]bool
}

func (l *lfsStore) objectPath(oid transfer.Oid) (string, error) {
	if !oid.Valid() {
		return "", fmt.Errorf("%w: %q is not a sha256 object id", transfer.ErrNotAllowed, oid)
	}
	s := string(oid)
	return filepath.Join(l.dir, "objects", s[0:2], s[2:4], s), nil
}

// serveLFS runs the transfer protocol for op ("upload" or "download") on
// the repository at path, over r and w. A panic in the protocol handler
// ends the session, not the server.
func serveLFS(path, op string, r io.Reader, w io.Writer) (err error) {
	defer func() {
		if p := recover(); p != nil {
			err = fmt.Errorf("git-lfs-transfer: bad request (%v)", p)
		}
	}()
	store := &lfsStore{dir: filepath.Join(path, "lfs"), pending: map[string]bool{}}
	defer func() {
		for tmp := range store.pending {
			os.Remove(tmp)
		}
	}()
	for _, d := range []string{"objects", "tmp"} {
		if err := os.MkdirAll(filepath.Join(store.dir, d), 0o700); err != nil {
			return err
		}
	}
	line := transfer.NewPktline(r, w)
	if err := line.WritePacketText("version=1"); err != nil {
		return err
	}
	if err := line.WriteFlush(); err != nil {
		return err
	}
	p := transfer.NewProcessor(line, store)
	if op == "upload" {
		return p.ProcessCommands(transfer.UploadOperation)
	}
	return p.ProcessCommands(transfer.DownloadOperation)
}

// Batch says which objects are present.
func (l *lfsStore) Batch(_ transfer.Operation, oids []transfer.OidWithSize) ([]transfer.BatchItem, error) {
	items := make([]transfer.BatchItem, 0, len(oids))
	for _, o := range oids {
		p, err := l.objectPath(o.Oid)
		if err != nil {
			return nil, err
		}
		fi, err := os.Lstat(p)
		present := err == nil && fi.Mode().IsRegular() && fi.Size() == o.Size
		items = append(items, transfer.BatchItem{Oid: o.Oid, Size: o.Size, Present: present})
	}
	return items, nil
}

// upload is an object being received, in a temporary file.
type upload struct {
	tmp, final string
}

// StartUpload receives the object into lfs/tmp, checking its sha256 as
// it comes, so that nothing that does not match oid ever reaches objects/.
func (l *lfsStore) StartUpload(oid transfer.Oid, r io.Reader, _ ...string) (any, error) {
	final, err := l.objectPath(oid)
	if err != nil {
		return nil, err
	}
	f, err := os.CreateTemp(filepath.Join(l.dir, "tmp"), "upload-")
	if err != nil {
		return nil, err
	}
	h := sha256.New()
	n, err := io.Copy(io.MultiWriter(f, h), io.LimitReader(r, MaxLFSObject+1))
	if cerr := f.Close(); err == nil {
		err = cerr
	}
	switch {
	case err != nil:
	case n > MaxLFSObject:
		err = fmt.Errorf("%w: object larger than %d bytes", transfer.ErrNotAllowed, int64(MaxLFSObject))
	case hex.EncodeToString(h.Sum(nil)) != string(oid):
		err = fmt.Errorf("%w: content does not match object id %s", transfer.ErrCorruptData, oid)
	}
	if err != nil {
		os.Remove(f.Name())
		return nil, err
	}
	l.pending[f.Name()] = true
	return &upload{tmp: f.Name(), final: final}, nil
}

// FinishUpload publishes a verified upload (the protocol handler has also
// checked its size against the client's claim).
func (l *lfsStore) FinishUpload(state any, _ ...string) error {
	u, ok := state.(*upload)
	if !ok {
		return errors.New("lfs: no upload in progress")
	}
	delete(l.pending, u.tmp)
	if err := os.MkdirAll(filepath.Dir(u.final), 0o700); err != nil {
		os.Remove(u.tmp)
		return err
	}
	if err := os.Rename(u.tmp, u.final); err != nil {
		os.Remove(u.tmp)
		return err
	}
	return nil
}

// Verify checks that the object is stored with the size the client says.
func (l *lfsStore) Verify(oid transfer.Oid, args map[string]string) (transfer.Status, error) {
	p, err := l.objectPath(oid)
	if err != nil {
		return nil, err
	}
	want, err := strconv.ParseInt(args[transfer.SizeKey], 10, 64)
	if err != nil {
		return transfer.NewFailureStatus(transfer.StatusBadRequest, "verify needs a size"), nil
	}
	fi, err := os.Lstat(p)
	switch {
	case errors.Is(err, fs.ErrNotExist):
		return transfer.NewFailureStatus(transfer.StatusNotFound, "object not found"), nil
	case err != nil:
		return nil, err
	case !fi.Mode().IsRegular() || fi.Size() != want:
		return transfer.NewFailureStatus(transfer.StatusConflict, "object size differs"), nil
	}
	return transfer.SuccessStatus(), nil
}

// Download opens a stored object.
func (l *lfsStore) Download(oid transfer.Oid, _ ...string) (fs.File, error) {
	p, err := l.objectPath(oid)
	if err != nil {
		return nil, err
	}
	f, err := os.OpenFile(p, os.O_RDONLY|syscall.O_NOFOLLOW, 0)
	if err != nil {
		return nil, err
	}
	if fi, err := f.Stat(); err != nil || !fi.Mode().IsRegular() {
		f.Close()
		return nil, fs.ErrNotExist
	}
	return f, nil
}

// LockBackend refuses locking, which the server does not offer.
func (l *lfsStore) LockBackend() transfer.LockBackend { return noLocks{} }

type noLocks struct{}

var errNoLocking = fmt.Errorf("%w: this server does not offer git-lfs locking", transfer.ErrNotAllowed)

func (noLocks) Create(string) (transfer.Lock, error)   { return nil, errNoLocking }
func (noLocks) Unlock(transfer.Lock) error             { return errNoLocking }
func (noLocks) FromPath(string) (transfer.Lock, error) { return nil, errNoLocking }
func (noLocks) FromID(string) (transfer.Lock, error)   { return nil, errNoLocking }
func (noLocks) Range(func(transfer.Lock) error) error  { return nil }
