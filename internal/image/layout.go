package image

import (
	"archive/tar"
	"bytes"
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"hash"
	"io"
	"io/fs"
	"os"
	"path/filepath"
	"sort"
	"strings"
	"syscall"
	"time"

	v1 "github.com/google/go-containerregistry/pkg/v1"
	"github.com/google/go-containerregistry/pkg/v1/layout"
	"github.com/google/go-containerregistry/pkg/v1/partial"
	"github.com/google/go-containerregistry/pkg/v1/types"

	"github.com/hashbang/stack/internal/atomicfile"
)

// RefName is the annotation naming an image in an OCI layout's index.
const RefName = "org.opencontainers.image.ref.name"

// maxArchive bounds the size of an OCI tarball read into memory.
const maxArchive = 2 << 30

// Layout is an OCI image layout directory holding named images.
type Layout struct {
	Dir string
}

// Put writes img's blobs into the layout and names it in index.json,
// replacing an earlier image of that name. index.json is replaced
// atomically, under a lock, so concurrent Puts of different names are safe.
func (l Layout) Put(name string, img v1.Image) (v1.Hash, error) {
	if !ValidName(name) {
		return v1.Hash{}, fmt.Errorf("%q is not a valid image name", name)
	}
	p, err := l.init()
	if err != nil {
		return v1.Hash{}, err
	}
	if err := l.dropCorrupt(img); err != nil {
		return v1.Hash{}, fmt.Errorf("write %s to %s: %w", name, l.Dir, err)
	}
	if err := p.WriteImage(img); err != nil {
		return v1.Hash{}, fmt.Errorf("write %s to %s: %w", name, l.Dir, err)
	}
	desc, err := descriptor(name, img)
	if err != nil {
		return v1.Hash{}, err
	}
	unlock, err := l.lock()
	if err != nil {
		return v1.Hash{}, err
	}
	defer unlock()
	idx, err := l.index()
	if err != nil {
		return v1.Hash{}, err
	}
	kept := idx.Manifests[:0]
	for _, m := range idx.Manifests {
		if m.Annotations[RefName] != name {
			kept = append(kept, m)
		}
	}
	idx.Manifests = append(kept, *desc)
	sort.SliceStable(idx.Manifests, func(i, j int) bool {
		return idx.Manifests[i].Annotations[RefName] < idx.Manifests[j].Annotations[RefName]
	})
	b, err := json.MarshalIndent(idx, "", "  ")
	if err != nil {
		return v1.Hash{}, err
	}
	if err := atomicfile.WriteFile(filepath.Join(l.Dir, "index.json"), append(b, '\n'), 0o644); err != nil {
		return v1.Hash{}, fmt.Errorf("write %s index: %w", l.Dir, err)
	}
	return desc.Digest, nil
}

// dropCorrupt removes the blobs of img that the layout holds with other
// content than their digest says: writing an image skips the blobs a layout
// has, so a blob changed on disk would otherwise stay changed.
func (l Layout) dropCorrupt(img v1.Image) error {
	raw, err := img.RawManifest()
	if err != nil {
		return err
	}
	m, err := img.Manifest()
	if err != nil {
		return err
	}
	descs := append([]v1.Descriptor{{Digest: sha256Hash(raw), Size: int64(len(raw))}, m.Config}, m.Layers...)
	for _, d := range descs {
		file := filepath.Join(l.Dir, "blobs", d.Digest.Algorithm, d.Digest.Hex)
		if _, err := os.Stat(file); err != nil {
			continue
		}
		var ce *corruptError
		if err := checkBlob(dirStore(l.Dir), d); errors.As(err, &ce) {
			if err := os.Remove(file); err != nil {
				return fmt.Errorf("remove corrupt blob: %w", err)
			}
		}
	}
	return nil
}

// init makes the layout directory if it does not exist.
func (l Layout) init() (layout.Path, error) {
	if _, err := os.Stat(filepath.Join(l.Dir, "oci-layout")); err == nil {
		return layout.Path(l.Dir), nil
	}
	if err := os.MkdirAll(l.Dir, 0o755); err != nil {
		return "", err
	}
	unlock, err := l.lock()
	if err != nil {
		return "", err
	}
	defer unlock()
	if _, err := os.Stat(filepath.Join(l.Dir, "index.json")); errors.Is(err, fs.ErrNotExist) {
		idx := []byte(`{"schemaVersion":2,"mediaType":"application/vnd.oci.image.index.v1+json","manifests":[]}` + "\n")
		if err := atomicfile.WriteFile(filepath.Join(l.Dir, "index.json"), idx, 0o644); err != nil {
			return "", fmt.Errorf("create OCI layout %s: %w", l.Dir, err)
		}
	}
	if err := atomicfile.WriteFile(filepath.Join(l.Dir, "oci-layout"), ociLayout, 0o644); err != nil {
		return "", fmt.Errorf("create OCI layout %s: %w", l.Dir, err)
	}
	return layout.Path(l.Dir), nil
}

// ociLayout is the content of an OCI layout's oci-layout file.
var ociLayout = []byte(`{"imageLayoutVersion":"1.0.0"}`)

// descriptor is the index entry naming img.
func descriptor(name string, img v1.Image) (*v1.Descriptor, error) {
	mt, err := img.MediaType()
	if err != nil {
		return nil, err
	}
	raw, err := img.RawManifest()
	if err != nil {
		return nil, err
	}
	return &v1.Descriptor{
		MediaType:   mt,
		Size:        int64(len(raw)),
		Digest:      sha256Hash(raw),
		Annotations: map[string]string{RefName: name},
		Platform:    &v1.Platform{OS: Platform.OS, Architecture: Platform.Architecture},
	}, nil
}

// lock takes an exclusive lock on the layout's index.
func (l Layout) lock() (func(), error) {
	f, err := os.OpenFile(filepath.Join(l.Dir, ".lock"), os.O_CREATE|os.O_RDWR, 0o644)
	if err != nil {
		return nil, err
	}
	if err := syscall.Flock(int(f.Fd()), syscall.LOCK_EX); err != nil {
		f.Close()
		return nil, fmt.Errorf("lock %s: %w", l.Dir, err)
	}
	return func() { f.Close() }, nil
}

func (l Layout) index() (*v1.IndexManifest, error) {
	b, err := os.ReadFile(filepath.Join(l.Dir, "index.json"))
	if err != nil {
		return nil, err
	}
	idx, err := v1.ParseIndexManifest(bytes.NewReader(b))
	if err != nil {
		return nil, fmt.Errorf("%s: %w", filepath.Join(l.Dir, "index.json"), err)
	}
	return idx, nil
}

// Names lists the names of the layout's images, sorted. It reads only the
// index.
func (l Layout) Names() ([]string, error) {
	entries, err := listStore(dirStore(l.Dir), l.Dir)
	if err != nil {
		return nil, err
	}
	names := make([]string, len(entries))
	for i, e := range entries {
		names[i] = e.name
	}
	sort.Strings(names)
	return names, nil
}

// Image returns the image called name. Its manifest is checked against the
// index, and its config and every layer against the manifest (digest and
// size) before Image returns, so an image whose blobs changed after they
// were written is refused with an error naming the image and the blob.
// Layers are checked again as they are read.
func (l Layout) Image(name string) (v1.Image, error) {
	s := dirStore(l.Dir)
	entries, err := listStore(s, l.Dir)
	if err != nil {
		return nil, err
	}
	for _, e := range entries {
		if e.name == name {
			return openEntry(s, l.Dir, e)
		}
	}
	names := make([]string, len(entries))
	for i, e := range entries {
		names[i] = e.name
	}
	return nil, noImage(name, l.Dir, names)
}

// String returns the layout's directory.
func (l Layout) String() string { return l.Dir }

// WriteTarball writes img as an OCI layout tarball (what `skopeo inspect
// oci-archive:FILE` reads) holding one image named name. The tar is
// deterministic: same image, same bytes. The file appears only once
// complete.
func WriteTarball(file, name string, img v1.Image) error {
	if !ValidName(name) {
		return fmt.Errorf("%q is not a valid image name", name)
	}
	desc, err := descriptor(name, img)
	if err != nil {
		return err
	}
	idx := v1.IndexManifest{SchemaVersion: 2, MediaType: types.OCIImageIndex, Manifests: []v1.Descriptor{*desc}}
	rawIdx, err := json.MarshalIndent(idx, "", "  ")
	if err != nil {
		return err
	}
	rawManifest, err := img.RawManifest()
	if err != nil {
		return err
	}
	rawConfig, err := img.RawConfigFile()
	if err != nil {
		return err
	}
	cfgName, err := img.ConfigName()
	if err != nil {
		return err
	}
	layers, err := img.Layers()
	if err != nil {
		return err
	}

	if err := os.MkdirAll(filepath.Dir(file), 0o755); err != nil {
		return err
	}
	tmp, err := os.CreateTemp(filepath.Dir(file), "."+filepath.Base(file)+".tmp-")
	if err != nil {
		return err
	}
	defer os.Remove(tmp.Name())
	tw := tar.NewWriter(tmp)
	epoch := time.Unix(0, 0)
	add := func(name string, size int64, r io.Reader) error {
		h := &tar.Header{Name: name, Typeflag: tar.TypeReg, Mode: 0o644, Size: size, ModTime: epoch, Format: tar.FormatUSTAR}
		if err := tw.WriteHeader(h); err != nil {
			return err
		}
		n, err := io.Copy(tw, r)
		if err == nil && n != size {
			err = fmt.Errorf("%s: wrote %d bytes, want %d", name, n, size)
		}
		return err
	}
	dir := func(name string) error {
		return tw.WriteHeader(&tar.Header{Name: name, Typeflag: tar.TypeDir, Mode: 0o755, ModTime: epoch, Format: tar.FormatUSTAR})
	}
	blob := func(h v1.Hash) string { return "blobs/" + h.Algorithm + "/" + h.Hex }
	err = func() error {
		if err := add("oci-layout", int64(len(ociLayout)), bytes.NewReader(ociLayout)); err != nil {
			return err
		}
		if err := add("index.json", int64(len(rawIdx)), bytes.NewReader(rawIdx)); err != nil {
			return err
		}
		if err := dir("blobs/"); err != nil {
			return err
		}
		if err := dir("blobs/sha256/"); err != nil {
			return err
		}
		written := map[v1.Hash]bool{}
		if err := add(blob(desc.Digest), int64(len(rawManifest)), bytes.NewReader(rawManifest)); err != nil {
			return err
		}
		if err := add(blob(cfgName), int64(len(rawConfig)), bytes.NewReader(rawConfig)); err != nil {
			return err
		}
		written[desc.Digest], written[cfgName] = true, true
		for _, l := range layers {
			d, err := l.Digest()
			if err != nil {
				return err
			}
			if written[d] {
				continue
			}
			written[d] = true
			size, err := l.Size()
			if err != nil {
				return err
			}
			rc, err := l.Compressed()
			if err != nil {
				return err
			}
			err = add(blob(d), size, rc)
			rc.Close()
			if err != nil {
				return err
			}
		}
		return tw.Close()
	}()
	if cerr := tmp.Close(); err == nil {
		err = cerr
	}
	if err != nil {
		return fmt.Errorf("write %s: %w", file, err)
	}
	if err := os.Chmod(tmp.Name(), 0o644); err != nil {
		return err
	}
	return os.Rename(tmp.Name(), file)
}

// Named is an image and the name it has in its layout.
type Named struct {
	Name  string
	Image v1.Image
}

// OpenAll reads the images ref points at. ref is, in order of preference:
//
//   - an OCI tarball file (FILE, or FILE:NAME for one image in it);
//   - an OCI layout directory (DIR for all its images, DIR:NAME for one);
//   - the name of an image in cacheLayout, the layout `stack build` writes.
func OpenAll(cacheLayout, ref string) ([]Named, error) {
	if ref == "" {
		return nil, errors.New("no image given: pass an image name, an OCI layout directory or an OCI tarball")
	}
	loc, name := ref, ""
	if _, err := os.Stat(loc); err != nil {
		if i := strings.LastIndexByte(ref, ':'); i > 0 {
			if _, err := os.Stat(ref[:i]); err == nil {
				loc, name = ref[:i], ref[i+1:]
			}
		}
	}
	fi, err := os.Stat(loc)
	switch {
	case err == nil && fi.IsDir():
		if _, err := os.Stat(filepath.Join(loc, "oci-layout")); err != nil {
			return nil, fmt.Errorf("%s is a directory but not an OCI image layout (no oci-layout file)", loc)
		}
		imgs, err := openStore(dirStore(loc), loc)
		if err != nil {
			return nil, err
		}
		return selectNamed(imgs, name, loc)
	case err == nil:
		s, err := readArchive(loc)
		if err != nil {
			return nil, err
		}
		imgs, err := openStore(s, loc)
		if err != nil {
			return nil, err
		}
		return selectNamed(imgs, name, loc)
	}
	if !ValidName(ref) {
		return nil, fmt.Errorf("%s: no such file, directory or image name", ref)
	}
	if _, err := os.Stat(filepath.Join(cacheLayout, "index.json")); err != nil {
		return nil, fmt.Errorf("no images built yet in %s: run stack build %s", cacheLayout, ref)
	}
	img, err := Layout{Dir: cacheLayout}.Image(ref)
	if err != nil {
		return nil, err
	}
	return []Named{{Name: ref, Image: img}}, nil
}

// Open reads the one image ref points at (see OpenAll).
func Open(cacheLayout, ref string) (v1.Image, error) {
	imgs, err := OpenAll(cacheLayout, ref)
	if err != nil {
		return nil, err
	}
	if len(imgs) != 1 {
		var names []string
		for _, n := range imgs {
			names = append(names, n.Name)
		}
		return nil, fmt.Errorf("%s holds %d images (%s): name one as %s:NAME", ref, len(imgs), strings.Join(names, ", "), ref)
	}
	return imgs[0].Image, nil
}

func selectNamed(imgs []Named, name, where string) ([]Named, error) {
	if name == "" {
		if len(imgs) == 0 {
			return nil, fmt.Errorf("%s holds no images", where)
		}
		return imgs, nil
	}
	img, err := pick(imgs, name, where)
	if err != nil {
		return nil, err
	}
	return []Named{{Name: name, Image: img}}, nil
}

func pick(imgs []Named, name, where string) (v1.Image, error) {
	var names []string
	for _, n := range imgs {
		if n.Name == name {
			return n.Image, nil
		}
		names = append(names, n.Name)
	}
	return nil, noImage(name, where, names)
}

// noImage is the error for a name that is not among names, the images at
// where.
func noImage(name, where string, names []string) error {
	if len(names) == 0 {
		return fmt.Errorf("no image %s in %s: it holds no images", name, where)
	}
	sort.Strings(names)
	return fmt.Errorf("no image %s in %s (it holds %s)", name, where, strings.Join(names, ", "))
}

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
