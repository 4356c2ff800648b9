package registry

import (
	"context"
	"os"
	"os/exec"
	"path/filepath"
	"testing"
	"time"

	"github.com/google/go-containerregistry/pkg/authn"
	"github.com/google/go-containerregistry/pkg/v1/layout"
	"github.com/google/go-containerregistry/pkg/v1/validate"
)

// TestSkopeoCopiesPushedImage checks Push against an independent registry
// client: skopeo copies the pushed image back out, byte for byte.
func TestSkopeoCopiesPushedImage(t *testing.T) {
	skopeo, err := exec.LookPath("skopeo")
	if err != nil {
		t.Skip("skopeo is not installed (Debian: apt-get install -y skopeo); skipping the independent-client check")
	}
	r, _ := startRegistry(t, Config{})
	img := ociImage(t, 4096, 100000)
	pushed, err := Push(context.Background(), img, r.Addr(), "health", PushOptions{Tag: "v1", Auth: authn.Anonymous})
	if err != nil {
		t.Fatal(err)
	}

	tmp := t.TempDir()
	policy := filepath.Join(tmp, "policy.json")
	if err := os.WriteFile(policy, []byte(`{"default":[{"type":"insecureAcceptAnything"}]}`), 0o600); err != nil {
		t.Fatal(err)
	}
	dst := filepath.Join(tmp, "out")
	ctx, cancel := context.WithTimeout(context.Background(), 2*time.Minute)
	defer cancel()
	for _, ref := range []string{r.Addr() + "/health:v1", pushed.Ref} {
		os.RemoveAll(dst)
		cmd := exec.CommandContext(ctx, skopeo, "--policy", policy, "copy", "--src-tls-verify=false", "--preserve-digests",
			"docker://"+ref, "oci:"+dst+":health")
		cmd.Env = append(os.Environ(), "HOME="+tmp) // no stray credentials or registries config
		if out, err := cmd.CombinedOutput(); err != nil {
			t.Fatalf("skopeo copy %s: %v\n%s", ref, err, out)
		}
		p, err := layout.FromPath(dst)
		if err != nil {
			t.Fatal(err)
		}
		ii, err := p.ImageIndex()
		if err != nil {
			t.Fatal(err)
		}
		im, err := ii.IndexManifest()
		if err != nil {
			t.Fatal(err)
		}
		if len(im.Manifests) != 1 || im.Manifests[0].Digest.String() != pushed.Digest {
			t.Fatalf("skopeo copied %s to %+v, want one manifest %s", ref, im.Manifests, pushed.Digest)
		}
		got, err := p.Image(im.Manifests[0].Digest)
		if err != nil {
			t.Fatal(err)
		}
		if err := validate.Image(got); err != nil {
			t.Errorf("image skopeo copied from %s: %v", ref, err)
		}
	}
}
