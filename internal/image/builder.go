package image

import (
	"context"
	"crypto/sha256"
	"encoding/hex"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"time"

	v1 "github.com/google/go-containerregistry/pkg/v1"
	"github.com/opencontainers/go-digest"

	"github.com/hashbang/stack/internal/atomicfile"
	"github.com/hashbang/stack/internal/build"
	"github.com/hashbang/stack/internal/ui"
	"github.com/hashbang/stack/internal/workspace"
)

// EpochFile, in the images directory, holds the one timestamp (seconds
// since 1970, as SOURCE_DATE_EPOCH) that every file, layer, config and
// history entry of every image carries, so that time never changes a digest.
const EpochFile = "SOURCE_DATE_EPOCH"

// builderVersion changes when assembly changes, so that images made the
// old way are not reused from the cache.
const builderVersion = "stack-image-1"

// Builder turns image definitions into images: it builds their binaries
// through the binary cache, assembles each image, audits it, stores it in
// the cache's OCI layout and records its digest in images/images.lock.
// An image whose inputs (definition chain, binaries, epoch) are unchanged
// is taken from the layout without being assembled again.
type Builder struct {
	ws       *workspace.Workspace
	bins     *build.Cache
	progress *ui.Progress
}

// NewBuilder returns a Builder for the workspace.
func NewBuilder(ws *workspace.Workspace, bins *build.Cache, p *ui.Progress) *Builder {
	return &Builder{ws: ws, bins: bins, progress: p}
}

// Result is one built image.
type Result struct {
	Name   string        `json:"name"`
	Digest digest.Digest `json:"digest"`
	// Size is the compressed size of the image: manifest, config, layers.
	Size int64 `json:"size"`
	// Cached is true when the image was taken from the cache unchanged.
	Cached bool     `json:"cached"`
	Image  v1.Image `json:"-"`
}

// Epoch reads the images directory's epoch.
func Epoch(imagesDir string) (time.Time, error) {
	file := filepath.Join(imagesDir, EpochFile)
	data, err := os.ReadFile(file)
	if err != nil {
		return time.Time{}, fmt.Errorf("read the build epoch: %w (write seconds since 1970 into %s)", err, file)
	}
	secs, err := strconv.ParseInt(strings.TrimSpace(string(data)), 10, 64)
	if err != nil || secs < 0 {
		return time.Time{}, fmt.Errorf("%s: %q is not seconds since 1970", file, strings.TrimSpace(string(data)))
	}
	return time.Unix(secs, 0).UTC(), nil
}

// Build builds the named images (all when names is empty), in name order,
// and records their digests in the lock. It stops at the first image that
// fails to build or fails the audit; that image is not recorded.
func (b *Builder) Build(ctx context.Context, names []string) ([]Result, error) {
	imagesDir := b.ws.Path("images")
	defs, err := b.definitions(imagesDir, names)
	if err != nil {
		return nil, err
	}
	epoch, err := Epoch(imagesDir)
	if err != nil {
		return nil, err
	}
	lock, err := ReadLock(imagesDir)
	if err != nil {
		return nil, err
	}
	var out []Result
	for _, def := range defs {
		step := b.progress.Start("image %s", def.Name)
		r, err := b.one(ctx, def, epoch)
		if err = step.Done(err); err != nil {
			return out, fmt.Errorf("build image %s: %w", def.Name, err)
		}
		out = append(out, *r)
		lock[r.Name] = r.Digest
		if err := lock.Write(imagesDir); err != nil {
			return out, err
		}
	}
	return out, nil
}

func (b *Builder) definitions(imagesDir string, names []string) ([]*Definition, error) {
	if len(names) == 0 {
		return LoadAll(imagesDir)
	}
	var defs []*Definition
	for _, n := range names {
		def, err := Load(imagesDir, n)
		if err != nil {
			return nil, err
		}
		defs = append(defs, def)
	}
	return defs, nil
}

// one builds a single image.
func (b *Builder) one(ctx context.Context, def *Definition, epoch time.Time) (*Result, error) {
	binaries := map[string]string{}
	key := sha256.New()
	fmt.Fprintf(key, "%s\n%s\n%d\n", builderVersion, def.Digest(), epoch.Unix())
	for _, bin := range def.AllBinaries() {
		path, err := b.bins.Binary(ctx, build.Binary{Source: bin.Source, Package: bin.Package, LDFlags: bin.LDFlags, Tags: bin.Tags, Recipe: bin.Recipe})
		if err != nil {
			return nil, err
		}
		binaries[bin.Path] = path
		f, err := os.Open(path)
		if err != nil {
			return nil, err
		}
		d, err := digest.SHA256.FromReader(f)
		f.Close()
		if err != nil {
			return nil, err
		}
		fmt.Fprintf(key, "%s %s\n", bin.Path, d)
	}
	inputs := hex.EncodeToString(key.Sum(nil))
	layout := Layout{Dir: b.ws.OCI()}
	keyFile := filepath.Join(b.ws.Cache, "images", def.Name+".inputs")
	if prev, err := os.ReadFile(keyFile); err == nil {
		if want, got, ok := strings.Cut(strings.TrimSpace(string(prev)), " "); ok && want == inputs {
			if img, err := layout.Image(def.Name); err == nil {
				if h, err := img.Digest(); err == nil && h.String() == got {
					return result(def.Name, img, true)
				}
			}
		}
	}
	img, err := Assemble(def, binaries, epoch)
	if err != nil {
		return nil, err
	}
	findings, err := Audit(img)
	if err != nil {
		return nil, err
	}
	if len(findings) > 0 {
		msgs := make([]string, len(findings))
		for i, f := range findings {
			msgs[i] = f.Path + ": " + f.Reason
		}
		return nil, fmt.Errorf("audit failed, not recorded: %s", strings.Join(msgs, "; "))
	}
	h, err := layout.Put(def.Name, img)
	if err != nil {
		return nil, err
	}
	if err := os.MkdirAll(filepath.Dir(keyFile), 0o755); err != nil {
		return nil, err
	}
	if err := atomicfile.WriteFile(keyFile, []byte(inputs+" "+h.String()+"\n"), 0o644); err != nil {
		return nil, err
	}
	return result(def.Name, img, false)
}

func result(name string, img v1.Image, cached bool) (*Result, error) {
	h, err := img.Digest()
	if err != nil {
		return nil, err
	}
	size, err := CompressedSize(img)
	if err != nil {
		return nil, err
	}
	return &Result{Name: name, Digest: digest.Digest(h.String()), Size: size, Cached: cached, Image: img}, nil
}

// CompressedSize is what the image weighs in a registry: manifest, config
// and compressed layers.
func CompressedSize(img v1.Image) (int64, error) {
	m, err := img.Manifest()
	if err != nil {
		return 0, err
	}
	raw, err := img.RawManifest()
	if err != nil {
		return 0, err
	}
	n := int64(len(raw)) + m.Config.Size
	for _, l := range m.Layers {
		n += l.Size
	}
	return n, nil
}

// Check compares the lock with images just built and returns an error
// naming every image whose digest differs from the committed one.
func Check(committed Lock, built []Result) error {
	var errs []error
	for _, r := range built {
		switch want, ok := committed[r.Name]; {
		case !ok:
			errs = append(errs, fmt.Errorf("%s: not in %s; commit the lock `stack build` wrote", r.Name, LockFile))
		case want != r.Digest:
			errs = append(errs, fmt.Errorf("%s: built %s but %s says %s: an input changed; review and commit the new lock", r.Name, r.Digest, LockFile, want))
		}
	}
	return errors.Join(errs...)
}
