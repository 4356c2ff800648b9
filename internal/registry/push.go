package registry

import (
	"context"
	"errors"
	"fmt"
	"io/fs"
	"net/http"
	"os"
	"path/filepath"
	"sort"
	"strings"

	"github.com/google/go-containerregistry/pkg/authn"
	"github.com/google/go-containerregistry/pkg/name"
	v1 "github.com/google/go-containerregistry/pkg/v1"
	"github.com/google/go-containerregistry/pkg/v1/layout"
	"github.com/google/go-containerregistry/pkg/v1/remote"
	ocispec "github.com/opencontainers/image-spec/specs-go/v1"
)

// DefaultTag is the tag Push gives an image unless told otherwise.
const DefaultTag = "latest"

// PushOptions tune Push. The zero value pushes with tag "latest" and the
// credentials of the user's container tool configuration (as docker login
// writes them), if any.
type PushOptions struct {
	// Tag is the tag the image gets besides its digest; DefaultTag when
	// empty.
	Tag string
	// Auth authenticates to the registry; authn.DefaultKeychain when nil.
	Auth authn.Authenticator
	// Progress, if set, is called as bytes are uploaded with the bytes done
	// and the total to upload.
	Progress func(done, total int64)
	// Transport carries the requests; remote.DefaultTransport when nil.
	// Whatever it is, plain http is refused to non-loopback hosts.
	Transport http.RoundTripper
}

// Pushed is an image Push delivered.
type Pushed struct {
	// Name is the image's name in the layout and its repository's last
	// path element.
	Name string `json:"name"`
	// Digest is the manifest (or index) digest, sha256:...
	Digest string `json:"digest"`
	// Ref names the pushed image by digest: TARGET/NAME@sha256:...
	Ref string `json:"ref"`
	// Tag is the tag the image was given.
	Tag string `json:"tag"`
}

// Images returns the names of the images in the OCI image layout at dir,
// sorted: the org.opencontainers.image.ref.name annotations of its index.
func Images(dir string) ([]string, error) {
	p, err := openLayout(dir)
	if err != nil {
		return nil, err
	}
	im, err := indexManifest(p)
	if err != nil {
		return nil, err
	}
	seen := map[string]bool{}
	var names []string
	for _, d := range im.Manifests {
		if n := d.Annotations[ocispec.AnnotationRefName]; n != "" && !seen[n] {
			seen[n] = true
			names = append(names, n)
		}
	}
	sort.Strings(names)
	return names, nil
}

// Push pushes the image called imageName in the OCI image layout at
// layoutDir (the index entry whose org.opencontainers.image.ref.name
// annotation is imageName; an image or an image index) to the repository
// target/imageName, e.g. 127.0.0.1:5000/health, under opts.Tag. The image
// is then reachable by that tag and by its digest, which Push returns with
// the reference by digest. Plain http is used, and only allowed, for
// loopback registries.
func Push(ctx context.Context, layoutDir, imageName, target string, opts PushOptions) (Pushed, error) {
	if opts.Tag == "" {
		opts.Tag = DefaultTag
	}
	tag, err := pushRef(target, imageName, opts.Tag)
	if err != nil {
		return Pushed{}, err
	}
	p, err := openLayout(layoutDir)
	if err != nil {
		return Pushed{}, err
	}
	desc, err := findImage(p, imageName)
	if err != nil {
		return Pushed{}, err
	}

	var t remote.Taggable
	switch {
	case desc.MediaType.IsIndex():
		ii, err := p.ImageIndex()
		if err == nil {
			t, err = ii.ImageIndex(desc.Digest)
		}
		if err != nil {
			return Pushed{}, fmt.Errorf("push %s: read index from %s: %w", imageName, layoutDir, err)
		}
	case desc.MediaType.IsImage():
		img, err := p.Image(desc.Digest)
		if err != nil {
			return Pushed{}, fmt.Errorf("push %s: read image from %s: %w", imageName, layoutDir, err)
		}
		t = img
	default:
		return Pushed{}, fmt.Errorf("push %s: %s has media type %q, neither an image nor an index", imageName, desc.Digest, desc.MediaType)
	}

	base := opts.Transport
	if base == nil {
		base = remote.DefaultTransport
	}
	ropts := []remote.Option{
		remote.WithContext(ctx),
		remote.WithTransport(loopbackOnlyHTTP{base}),
	}
	if opts.Auth != nil {
		ropts = append(ropts, remote.WithAuth(opts.Auth))
	} else {
		ropts = append(ropts, remote.WithAuthFromKeychain(authn.DefaultKeychain))
	}
	var stop func()
	if opts.Progress != nil {
		var updates chan<- v1.Update
		updates, stop = relayProgress(opts.Progress)
		ropts = append(ropts, remote.WithProgress(updates))
	}
	err = remote.Push(tag, t, ropts...)
	if stop != nil {
		stop()
	}
	if err != nil {
		return Pushed{}, fmt.Errorf("push %s to %s: %w", imageName, tag, err)
	}
	return Pushed{
		Name:   imageName,
		Digest: desc.Digest.String(),
		Ref:    tag.Context().Digest(desc.Digest.String()).String(),
		Tag:    opts.Tag,
	}, nil
}

// pushRef checks and joins target, image name and tag.
func pushRef(target, imageName, tag string) (name.Tag, error) {
	target = strings.TrimSuffix(target, "/")
	if target == "" {
		return name.Tag{}, errors.New("push: no target registry given: use HOST:PORT such as " + DefaultAddr)
	}
	if strings.Contains(target, "://") {
		return name.Tag{}, fmt.Errorf("push: target %q has a scheme: give HOST:PORT[/PATH] such as %s", target, DefaultAddr)
	}
	if imageName == "" || strings.ContainsAny(imageName, ":@") {
		return name.Tag{}, fmt.Errorf("push: image name %q must be a repository name without tag or digest", imageName)
	}
	host, _, _ := strings.Cut(target, "/")
	var nopts []name.Option
	nopts = append(nopts, name.StrictValidation)
	if hostIsLoopback(host) {
		nopts = append(nopts, name.Insecure)
	}
	t, err := name.NewTag(target+"/"+imageName+":"+tag, nopts...)
	if err != nil {
		return name.Tag{}, fmt.Errorf("push %s: %w", imageName, err)
	}
	return t, nil
}

// openLayout opens the OCI image layout at dir with a clear error when
// there is none.
func openLayout(dir string) (layout.Path, error) {
	if _, err := os.Stat(filepath.Join(dir, "index.json")); err != nil {
		if errors.Is(err, fs.ErrNotExist) {
			return "", fmt.Errorf("no OCI image layout at %s (no index.json): build the images first", dir)
		}
		return "", fmt.Errorf("OCI image layout: %w", err)
	}
	p, err := layout.FromPath(dir)
	if err != nil {
		return "", fmt.Errorf("OCI image layout %s: %w", dir, err)
	}
	return p, nil
}

func indexManifest(p layout.Path) (*v1.IndexManifest, error) {
	ii, err := p.ImageIndex()
	if err != nil {
		return nil, fmt.Errorf("OCI image layout %s: %w", p, err)
	}
	im, err := ii.IndexManifest()
	if err != nil {
		return nil, fmt.Errorf("OCI image layout %s: index.json: %w", p, err)
	}
	return im, nil
}

// findImage returns the one index entry named imageName.
func findImage(p layout.Path, imageName string) (v1.Descriptor, error) {
	im, err := indexManifest(p)
	if err != nil {
		return v1.Descriptor{}, err
	}
	var found []v1.Descriptor
	var names []string
	for _, d := range im.Manifests {
		n := d.Annotations[ocispec.AnnotationRefName]
		if n == imageName {
			found = append(found, d)
		} else if n != "" {
			names = append(names, n)
		}
	}
	switch len(found) {
	case 1:
		return found[0], nil
	case 0:
		sort.Strings(names)
		have := "it has no named images"
		if len(names) > 0 {
			have = "it has " + strings.Join(names, ", ")
		}
		return v1.Descriptor{}, fmt.Errorf("no image %q in %s: %s", imageName, p, have)
	default:
		return v1.Descriptor{}, fmt.Errorf("image %q appears %d times in %s: rebuild it so the layout names it once", imageName, len(found), p)
	}
}

// relayProgress returns a channel for remote.WithProgress whose updates
// reach fn, and a stop function to call once the push has returned.
func relayProgress(fn func(done, total int64)) (chan<- v1.Update, func()) {
	ch := make(chan v1.Update, 64)
	quit, done := make(chan struct{}), make(chan struct{})
	go func() {
		defer close(done)
		for {
			select {
			case u, ok := <-ch:
				if !ok {
					return
				}
				if u.Error == nil {
					fn(u.Complete, u.Total)
				}
			case <-quit:
				return
			}
		}
	}()
	return ch, func() { close(quit); <-done }
}

// loopbackOnlyHTTP refuses plain http requests to hosts that are not
// loopback, so credentials and images never cross a network unencrypted.
type loopbackOnlyHTTP struct{ base http.RoundTripper }

func (t loopbackOnlyHTTP) RoundTrip(req *http.Request) (*http.Response, error) {
	if req.URL.Scheme != "https" && !hostIsLoopback(req.URL.Host) {
		if req.Body != nil {
			req.Body.Close()
		}
		return nil, fmt.Errorf("refusing plain %s to %s: only loopback registries may be reached without TLS", req.URL.Scheme, req.URL.Host)
	}
	return t.base.RoundTrip(req)
}
