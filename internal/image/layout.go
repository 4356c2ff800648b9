package image

import (
	"archive/tar"
	"bytes"
	"encoding/json"
	"errors"
	"fmt"
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
