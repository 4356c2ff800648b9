package deploy

import (
	"fmt"
	"strings"

	"github.com/distribution/reference"
	"k8s.io/apimachinery/pkg/apis/meta/v1/unstructured"

	"github.com/hashbang/stack/internal/image"
)

// containerLists are the fields holding containers in a pod spec.
var containerLists = []string{"initContainers", "containers", "ephemeralContainers"}

// pinImages rewrites every image of u's containers (wherever a pod spec is
// nested: Pod, Deployment, CronJob, custom resources) that names an image
// of the lock to registry/NAME@DIGEST, and refuses any other reference that
// is not pinned by digest. used collects the images of the lock it pinned.
func pinImages(u *unstructured.Unstructured, registry string, lock image.Lock, used map[string]string) error {
	var errs []error
	walkContainers(u.Object, func(c map[string]any) {
		ref, _ := c["image"].(string)
		name, _ := c["name"].(string)
		pinned, lockName, err := PinImage(ref, registry, lock)
		if err != nil {
			errs = append(errs, fmt.Errorf("%s: container %q: %w", KeyOf(u), name, err))
			return
		}
		c["image"] = pinned
		if lockName != "" {
			used[lockName] = pinned
		}
	})
	return errorList(errs)
}

// walkContainers calls f on every container of every container list in v.
func walkContainers(v any, f func(map[string]any)) {
	switch v := v.(type) {
	case map[string]any:
		for k, e := range v {
			if list, ok := e.([]any); ok && contains(containerLists, k) {
				for _, c := range list {
					if c, ok := c.(map[string]any); ok {
						if _, ok := c["image"]; ok {
							f(c)
							continue
						}
					}
					walkContainers(c, f)
				}
				continue
			}
			walkContainers(e, f)
		}
	case []any:
		for _, e := range v {
			walkContainers(e, f)
		}
	}
}

// PinImage returns the reference a container must use for ref, and the
// name of the lock's image it is (empty for an outside image):
//
//   - an image of the lock, written as NAME or REGISTRY/NAME (the
//     environment's registry), optionally with the lock's digest, becomes
//     REGISTRY/NAME@DIGEST;
//   - any other reference must carry a digest and is kept as written.
//
// A tag, a digest other than the lock's, or an unpinned outside image is
// an error saying how to fix it.
func PinImage(ref, registry string, lock image.Lock) (string, string, error) {
	if ref == "" {
		return "", "", fmt.Errorf("no image: name an image of images/ (`image: health`)")
	}
	parsed, err := reference.Parse(ref)
	if err != nil {
		return "", "", fmt.Errorf("image %q is not an image reference: %v", ref, err)
	}
	named, ok := parsed.(reference.Named)
	if !ok {
		return "", "", fmt.Errorf("image %q has no name: name an image of images/ (`image: health`)", ref)
	}
	domain, repo := reference.Domain(named), reference.Path(named)
	var tag, dig string
	if t, ok := parsed.(reference.Tagged); ok {
		tag = t.Tag()
	}
	if d, ok := parsed.(reference.Digested); ok {
		dig = d.Digest().String()
	}
	if domain == "" || domain == registry {
		if want, ok := lock[repo]; ok {
			switch {
			case tag != "":
				return "", "", fmt.Errorf("image %q names a tag: write %q, the images lock pins it by digest", ref, repo)
			case dig != "" && dig != want.String():
				return "", "", fmt.Errorf("image %q is pinned to another digest than images/images.lock (%s): write %q and let the lock pin it", ref, want, repo)
			}
			return registry + "/" + repo + "@" + want.String(), repo, nil
		}
		if domain == "" && dig == "" {
			return "", "", fmt.Errorf("image %q is not in images/images.lock: build it with `stack build %s` (or pin an outside image by digest)", ref, repo)
		}
	}
	if dig == "" {
		return "", "", fmt.Errorf("image %q is referenced by tag only: build it here (images/NAME, `stack build NAME`) or pin it by digest (NAME@sha256:...)", ref)
	}
	return ref, "", nil
}

func contains(list []string, s string) bool {
	for _, e := range list {
		if e == s {
			return true
		}
	}
	return false
}

// trimDigest shortens a pinned reference for people: NAME@sha256:0123456789ab.
func trimDigest(ref string) string {
	if i := strings.Index(ref, "@sha256:"); i >= 0 && len(ref) > i+20 {
		return ref[:i+20]
	}
	return ref
}
