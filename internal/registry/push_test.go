package registry

import (
	"context"
	"encoding/json"
	"errors"
	"net/http"
	"strings"
	"testing"

	"github.com/google/go-containerregistry/pkg/authn"
	v1 "github.com/google/go-containerregistry/pkg/v1"
)

// mapSource is a Source of images in memory; refused names an image
// whose Image fails, as a reader refuses a corrupt image.
type mapSource struct {
	imgs    map[string]v1.Image
	refused string
}

func (m mapSource) Names() ([]string, error) {
	var names []string
	for n := range m.imgs {
		names = append(names, n)
	}
	return names, nil
}

func (m mapSource) Image(name string) (v1.Image, error) {
	if name == m.refused {
		return nil, errors.New("image " + name + ": blob sha256:0123 is corrupt")
	}
	return m.imgs[name], nil
}

func (mapSource) String() string { return "the test source" }

// tags returns the tags of repository repo in the registry at addr, nil if
// the repository is unknown.
func tags(t *testing.T, addr, repo string) []string {
	t.Helper()
	resp, err := http.Get("http://" + addr + "/v2/" + repo + "/tags/list")
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	if resp.StatusCode == http.StatusNotFound {
		return nil
	}
	var list struct{ Tags []string }
	if err := json.NewDecoder(resp.Body).Decode(&list); err != nil {
		t.Fatal(err)
	}
	return list.Tags
}

func TestPushAll(t *testing.T) {
	r, _ := startRegistry(t, Config{})
	ctx := context.Background()
	app, other := ociImage(t, 100), ociImage(t, 200)
	src := mapSource{imgs: map[string]v1.Image{"app": app, "other": other}}
	opts := PushOptions{Auth: authn.Anonymous, Tag: "v1"}

	// An unknown name, or an image the source refuses, pushes nothing.
	_, err := PushAll(ctx, src, []string{"app", "nope"}, r.Addr(), opts, nil)
	if err == nil || !strings.Contains(err.Error(), `no image "nope" in the test source: it has app, other`) {
		t.Errorf("PushAll of an unknown name: %v", err)
	}
	bad := src
	bad.refused = "other"
	pushed, err := PushAll(ctx, bad, []string{"app", "other"}, r.Addr(), opts, nil)
	if err == nil || !strings.Contains(err.Error(), "push other: image other: blob sha256:0123 is corrupt") || len(pushed) != 0 {
		t.Errorf("PushAll with a refused image: %v, %v", pushed, err)
	}
	for _, repo := range []string{"app", "other"} {
		if got := tags(t, r.Addr(), repo); got != nil {
			t.Errorf("%s has tags %v after failed pushes, want nothing pushed", repo, got)
		}
	}

	// Every image by default; repeats once, in their order.
	pushed, err = PushAll(ctx, src, nil, r.Addr(), opts, nil)
	if err != nil || len(pushed) != 2 {
		t.Fatalf("PushAll of every image: %v, %v", pushed, err)
	}
	pushed, err = PushAll(ctx, src, []string{"other", "app", "other"}, r.Addr()+"/team", opts, nil)
	if err != nil || len(pushed) != 2 || pushed[0].Name != "other" || pushed[1].Name != "app" {
		t.Fatalf("PushAll of named images: %+v, %v", pushed, err)
	}
	if pushed[1].Digest != digestOf(t, app) || pushed[1].Ref != r.Addr()+"/team/app@"+digestOf(t, app) {
		t.Errorf("pushed %+v, want digest %s", pushed[1], digestOf(t, app))
	}
	if got := tags(t, r.Addr(), "team/other"); len(got) != 1 || got[0] != "v1" {
		t.Errorf("team/other tags %v, want [v1]", got)
	}

	if _, err := PushAll(ctx, mapSource{}, nil, r.Addr(), opts, nil); err == nil || !strings.Contains(err.Error(), "no named images in the test source") {
		t.Errorf("PushAll of an empty source: %v", err)
	}
}
