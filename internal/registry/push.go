package registry

import (
	"context"
	"errors"
	"fmt"
	"net/http"
	"slices"
	"strings"

	"github.com/google/go-containerregistry/pkg/authn"
	"github.com/google/go-containerregistry/pkg/name"
	v1 "github.com/google/go-containerregistry/pkg/v1"
	"github.com/google/go-containerregistry/pkg/v1/remote"

	"github.com/hashbang/stack/internal/ui"
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

// Source holds named images, such as image.Layout. Image is expected to
// check what it reads and to refuse an image whose blobs do not match
// their digests.
type Source interface {
	// Names lists the images' names.
	Names() ([]string, error)
	// Image returns the image called name.
	Image(name string) (v1.Image, error)
}

// PushAll pushes the images of src called names (every image of src when
// names is empty; repeats are pushed once) to target/NAME, as Push does
// one, each as a step of p. It reads every image before it pushes any, so
// an unknown name or an image src refuses pushes nothing. It returns what
// it pushed, also when it fails part way. opts.Progress is replaced by the
// steps' progress.
func PushAll(ctx context.Context, src Source, names []string, target string, opts PushOptions, p *ui.Progress) ([]Pushed, error) {
	have, err := src.Names()
	if err != nil {
		return nil, err
	}
	names = dedupe(names)
	if len(names) == 0 {
		if len(have) == 0 {
			return nil, fmt.Errorf("no named images in %s: build the images first", where(src))
		}
		names = have
	}
	for _, n := range names {
		if !slices.Contains(have, n) {
			return nil, missingImage(n, src, have)
		}
	}
	imgs := make([]v1.Image, len(names))
	for i, n := range names {
		step := p.Start("read %s", n)
		imgs[i], err = src.Image(n)
		if err := step.Done(err); err != nil {
			return nil, fmt.Errorf("push %s: %w", n, err)
		}
	}
	var pushed []Pushed
	for i, n := range names {
		step := p.Start("push %s", n)
		opts.Progress = step.Bytes
		res, err := Push(ctx, imgs[i], target, n, opts)
		if err := step.Done(err); err != nil {
			return pushed, err
		}
		pushed = append(pushed, res)
	}
	return pushed, nil
}

// where names a source in messages: its String method, if it has one.
func where(src Source) string {
	if s, ok := src.(fmt.Stringer); ok {
		return s.String()
	}
	return "the image source"
}

func missingImage(name string, src Source, have []string) error {
	if len(have) == 0 {
		return fmt.Errorf("no image %q in %s: it has no named images; build the images first", name, where(src))
	}
	sorted := slices.Sorted(slices.Values(have))
	return fmt.Errorf("no image %q in %s: it has %s", name, where(src), strings.Join(sorted, ", "))
}

// dedupe returns names without repeats, in their first order.
func dedupe(names []string) []string {
	seen := map[string]bool{}
	var out []string
	for _, n := range names {
		if !seen[n] {
			seen[n] = true
			out = append(out, n)
		}
	}
	return out
}

// Push pushes img to the repository target/imageName, e.g.
// 127.0.0.1:5000/health, under opts.Tag. The image is then reachable by
// that tag and by its digest, which Push returns with the reference by
// digest. Plain http is used, and only allowed, for loopback registries.
// Push reads img as it uploads it: an image read from disk should be
// checked by its reader (image.Layout.Image checks every blob).
func Push(ctx context.Context, img v1.Image, target, imageName string, opts PushOptions) (Pushed, error) {
	if img == nil {
		return Pushed{}, fmt.Errorf("push %s: no image given", imageName)
	}
	return push(ctx, img, target, imageName, opts)
}

// PushIndex pushes an image index, and every image it holds, as Push
// pushes an image.
func PushIndex(ctx context.Context, idx v1.ImageIndex, target, imageName string, opts PushOptions) (Pushed, error) {
	if idx == nil {
		return Pushed{}, fmt.Errorf("push %s: no image index given", imageName)
	}
	return push(ctx, idx, target, imageName, opts)
}

// pushable is what remote.Push takes that can name itself by digest: an
// image or an index.
type pushable interface {
	remote.Taggable
	Digest() (v1.Hash, error)
}

func push(ctx context.Context, t pushable, target, imageName string, opts PushOptions) (Pushed, error) {
	if opts.Tag == "" {
		opts.Tag = DefaultTag
	}
	tag, err := pushRef(target, imageName, opts.Tag)
	if err != nil {
		return Pushed{}, err
	}
	digest, err := t.Digest()
	if err != nil {
		return Pushed{}, fmt.Errorf("push %s: %w", imageName, err)
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
		Digest: digest.String(),
		Ref:    tag.Context().Digest(digest.String()).String(),
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
