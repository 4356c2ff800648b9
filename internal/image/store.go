package image

import (
	"archive/tar"
	"bytes"
	"crypto/sha256"
	"encoding/hex"
	"errors"
	"fmt"
	"hash"
	"io"
	"io/fs"
	"os"
	"path/filepath"
	"strings"

	v1 "github.com/google/go-containerregistry/pkg/v1"
	"github.com/google/go-containerregistry/pkg/v1/partial"
	"github.com/google/go-containerregistry/pkg/v1/types"
)

// The verified reading of OCI layouts and tarballs: every blob is checked
// against its descriptor (digest and size) before or while it is read.

// store gives the blobs of a layout, directory or tarball.
type store interface {
	open(h v1.Hash) (io.ReadCloser, error)
	index() ([]byte, error)
}

type dirStore string

func (d dirStore) open(h v1.Hash) (io.ReadCloser, error) {
	if h.Algorithm != "sha256" || len(h.Hex) != 64 {
		return nil, fmt.Errorf("unsupported digest %s", h)
	}
	return os.Open(filepath.Join(string(d), "blobs", h.Algorithm, h.Hex))
}

func (d dirStore) index() ([]byte, error) { return os.ReadFile(filepath.Join(string(d), "index.json")) }

// memStore is an OCI tarball read into memory.
type memStore struct {
	files map[string][]byte
}

func (m memStore) open(h v1.Hash) (io.ReadCloser, error) {
	b, ok := m.files["blobs/"+h.Algorithm+"/"+h.Hex]
	if !ok {
		return nil, fmt.Errorf("blob %s: %w", h, fs.ErrNotExist)
	}
	return io.NopCloser(bytes.NewReader(b)), nil
}

func (m memStore) index() ([]byte, error) {
	b, ok := m.files["index.json"]
	if !ok {
		return nil, fmt.Errorf("no index.json: %w", fs.ErrNotExist)
	}
	return b, nil
}

// readArchive reads an OCI layout tarball.
func readArchive(file string) (memStore, error) {
	f, err := os.Open(file)
	if err != nil {
		return memStore{}, err
	}
	defer f.Close()
	m, err := parseArchive(f)
	if err != nil {
		return memStore{}, fmt.Errorf("%s: %w", file, err)
	}
	return m, nil
}

func parseArchive(r io.Reader) (memStore, error) {
	m := memStore{files: map[string][]byte{}}
	tr := tar.NewReader(r)
	var total int64
	for {
		h, err := tr.Next()
		if errors.Is(err, io.EOF) {
			break
		}
		if err != nil {
			return m, fmt.Errorf("not an OCI tarball: %w", err)
		}
		name := strings.TrimPrefix(h.Name, "./")
		if h.Typeflag == tar.TypeDir {
			continue
		}
		if h.Typeflag != tar.TypeReg {
			return m, fmt.Errorf("not an OCI tarball: %s is not a regular file", h.Name)
		}
		total += h.Size
		if h.Size < 0 || total > maxArchive {
			return m, fmt.Errorf("OCI tarball larger than %d bytes", maxArchive)
		}
		if _, dup := m.files[name]; dup {
			return m, fmt.Errorf("not an OCI tarball: %s appears twice", h.Name)
		}
		b, err := io.ReadAll(tr)
		if err != nil {
			return m, err
		}
		m.files[name] = b
	}
	if _, ok := m.files["oci-layout"]; !ok {
		return m, errors.New("not an OCI tarball: no oci-layout file")
	}
	return m, nil
}

// indexEntry is an image named in a layout's index.
type indexEntry struct {
	name string
	desc v1.Descriptor
}

// listStore reads a layout's index.json: its images and their names.
func listStore(s store, where string) ([]indexEntry, error) {
	raw, err := s.index()
	if errors.Is(err, fs.ErrNotExist) {
		return nil, fmt.Errorf("no OCI image layout at %s (no index.json): build the images first", where)
	}
	if err != nil {
		return nil, fmt.Errorf("%s: %w", where, err)
	}
	idx, err := v1.ParseIndexManifest(bytes.NewReader(raw))
	if err != nil {
		return nil, fmt.Errorf("%s: index.json: %w", where, err)
	}
	var out []indexEntry
	count := map[string]int{}
	for i, d := range idx.Manifests {
		if !d.MediaType.IsImage() {
			return nil, fmt.Errorf("%s: index entry %d is a %s, not an image manifest", where, i, d.MediaType)
		}
		name := d.Annotations[RefName]
		if name == "" {
			name = d.Digest.String()
		}
		if count[name]++; count[name] == 1 {
			out = append(out, indexEntry{name: name, desc: d})
		}
	}
	for _, e := range out {
		if n := count[e.name]; n > 1 {
			return nil, fmt.Errorf("%s: image %q appears %d times: rebuild it so the layout names it once", where, e.name, n)
		}
	}
	return out, nil
}

// openStore opens every image of a layout, checked as Layout.Image checks
// one.
func openStore(s store, where string) ([]Named, error) {
	entries, err := listStore(s, where)
	if err != nil {
		return nil, err
	}
	out := make([]Named, 0, len(entries))
	for _, e := range entries {
		img, err := openEntry(s, where, e)
		if err != nil {
			return nil, err
		}
		out = append(out, Named{Name: e.name, Image: img})
	}
	return out, nil
}

// openEntry opens one image of a layout, naming it and the layout in its
// errors.
func openEntry(s store, where string, e indexEntry) (v1.Image, error) {
	img, err := openImage(s, e.desc)
	var ce *corruptError
	switch {
	case errors.As(err, &ce):
		return nil, fmt.Errorf("%s: image %s: %w: the layout changed after it was written; rebuild the image", where, e.name, err)
	case err != nil:
		return nil, fmt.Errorf("%s: image %s: %w", where, e.name, err)
	}
	return img, nil
}

// maxMetadata bounds the size of a manifest or config blob.
const maxMetadata = 8 << 20

// openImage reads an image's manifest (checked against d, its index
// entry) and config, and checks every layer's content against its
// descriptor. Layers are checked again as they are read.
func openImage(s store, d v1.Descriptor) (v1.Image, error) {
	rawManifest, err := readBlob(s, d, maxMetadata)
	if err != nil {
		return nil, fmt.Errorf("manifest %w", err)
	}
	m, err := v1.ParseManifest(bytes.NewReader(rawManifest))
	if err != nil {
		return nil, fmt.Errorf("manifest %s: %w", d.Digest, err)
	}
	if m.MediaType != "" && d.MediaType != "" && m.MediaType != d.MediaType {
		return nil, fmt.Errorf("manifest %s is a %s but the index says %s", d.Digest, m.MediaType, d.MediaType)
	}
	rawConfig, err := readBlob(s, m.Config, maxMetadata)
	if err != nil {
		return nil, fmt.Errorf("config %w", err)
	}
	if _, err := v1.ParseConfigFile(bytes.NewReader(rawConfig)); err != nil {
		return nil, fmt.Errorf("config %s: %w", m.Config.Digest, err)
	}
	checked := map[v1.Hash]bool{}
	for _, l := range m.Layers {
		if checked[l.Digest] {
			continue
		}
		if err := checkBlob(s, l); err != nil {
			return nil, fmt.Errorf("layer %w", err)
		}
		checked[l.Digest] = true
	}
	mt := m.MediaType
	if mt == "" {
		mt = d.MediaType
	}
	return partial.CompressedToImage(&storedImage{s: s, manifest: m, rawManifest: rawManifest, rawConfig: rawConfig, mediaType: mt})
}

// readBlob reads the blob d describes, of at most max bytes, checking its
// size and digest. Its errors start with the blob's digest.
func readBlob(s store, d v1.Descriptor, max int64) ([]byte, error) {
	if d.Size < 0 || d.Size > max {
		return nil, fmt.Errorf("%s: size %d is not between 0 and %d bytes", d.Digest, d.Size, max)
	}
	rc, err := s.open(d.Digest)
	if err != nil {
		return nil, fmt.Errorf("%s: %w", d.Digest, err)
	}
	defer rc.Close()
	b, err := io.ReadAll(verified(rc, d))
	if err != nil {
		return nil, err
	}
	return b, nil
}

// checkBlob reads the whole blob d describes, checking its size and
// digest. Its errors start with the blob's digest.
func checkBlob(s store, d v1.Descriptor) error {
	rc, err := s.open(d.Digest)
	if err != nil {
		return fmt.Errorf("%s: %w", d.Digest, err)
	}
	defer rc.Close()
	_, err = io.Copy(io.Discard, verified(rc, d))
	return err
}

type storedImage struct {
	s           store
	manifest    *v1.Manifest
	rawManifest []byte
	rawConfig   []byte
	mediaType   types.MediaType
}

func (i *storedImage) RawManifest() ([]byte, error)        { return i.rawManifest, nil }
func (i *storedImage) RawConfigFile() ([]byte, error)      { return i.rawConfig, nil }
func (i *storedImage) MediaType() (types.MediaType, error) { return i.mediaType, nil }

func (i *storedImage) LayerByDigest(h v1.Hash) (partial.CompressedLayer, error) {
	if h == i.manifest.Config.Digest {
		return &storedLayer{s: i.s, desc: i.manifest.Config}, nil
	}
	for _, l := range i.manifest.Layers {
		if l.Digest == h {
			return &storedLayer{s: i.s, desc: l}, nil
		}
	}
	return nil, fmt.Errorf("no layer %s in manifest", h)
}

type storedLayer struct {
	s    store
	desc v1.Descriptor
}

func (l *storedLayer) Digest() (v1.Hash, error)            { return l.desc.Digest, nil }
func (l *storedLayer) Size() (int64, error)                { return l.desc.Size, nil }
func (l *storedLayer) MediaType() (types.MediaType, error) { return l.desc.MediaType, nil }
func (l *storedLayer) Descriptor() (*v1.Descriptor, error) { d := l.desc; return &d, nil }
func (l *storedLayer) Compressed() (io.ReadCloser, error) {
	rc, err := l.s.open(l.desc.Digest)
	if err != nil {
		return nil, err
	}
	return struct {
		io.Reader
		io.Closer
	}{verified(rc, l.desc), rc}, nil
}

// corruptError says a blob's content does not match its descriptor.
type corruptError struct {
	digest v1.Hash
	reason string
}

func (e *corruptError) Error() string {
	return "blob " + e.digest.String() + " is corrupt: " + e.reason
}

// verified returns a reader of r, the content of the blob d describes,
// that fails as soon as r holds more than d.Size bytes, and at the end if
// it holds fewer or does not hash to d.Digest.
func verified(r io.Reader, d v1.Descriptor) io.Reader {
	return &verifier{r: r, want: d, h: sha256.New()}
}

type verifier struct {
	r    io.Reader
	want v1.Descriptor
	n    int64
	h    hash.Hash
}

func (v *verifier) Read(p []byte) (int, error) {
	if v.want.Digest.Algorithm != "sha256" {
		return 0, fmt.Errorf("blob %s: unsupported digest algorithm %q", v.want.Digest, v.want.Digest.Algorithm)
	}
	n, err := v.r.Read(p)
	v.h.Write(p[:n])
	v.n += int64(n)
	if v.n > v.want.Size {
		return n, &corruptError{v.want.Digest, fmt.Sprintf("it holds more than the %d bytes its descriptor says", v.want.Size)}
	}
	if errors.Is(err, io.EOF) {
		if v.n != v.want.Size {
			return n, &corruptError{v.want.Digest, fmt.Sprintf("it holds %d bytes, its descriptor says %d", v.n, v.want.Size)}
		}
		if got := hex.EncodeToString(v.h.Sum(nil)); got != v.want.Digest.Hex {
			return n, &corruptError{v.want.Digest, "its content hashes to sha256:" + got}
		}
	}
	return n, err
}
