package serve

import (
	"encoding/json"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/hashbang/stack/internal/image"
)

// TestServeRegistry pushes an image from an OCI layout with `stack push`
// to the served registry and copies it back out with skopeo: same digest.
func TestServeRegistry(t *testing.T) {
	d := newDaemon(t)
	d.start()
	def, err := image.Parse("tiny/image.yaml", "tiny", []byte("files:\n  - path: /etc/tiny\n    content: tiny\nuser: 1:1\n"))
	if err != nil {
		t.Fatal(err)
	}
	img, err := image.Assemble(def, nil, time.Unix(1700000000, 0))
	if err != nil {
		t.Fatal(err)
	}
	layout := filepath.Join(d.dir, "oci")
	h, err := image.Layout{Dir: layout}.Put("tiny", img)
	if err != nil {
		t.Fatal(err)
	}
	out, err := d.runIn(d.dir, nil, "", stackBin, "push", "tiny", "-C", d.repo, "--layout", layout, "--registry", d.regAddr, "-o", "json")
	if err != nil {
		t.Fatalf("stack push: %v\n%s", err, out)
	}
	var pushed []struct{ Digest, Ref string }
	if err := json.Unmarshal([]byte(out), &pushed); err != nil || len(pushed) != 1 || pushed[0].Digest != h.String() {
		t.Fatalf("stack push printed %s (%v), want digest %s", out, err, h)
	}

	dest := filepath.Join(d.dir, "copy")
	out, err = d.run("admin", d.dir, "skopeo", "--insecure-policy", "copy", "--src-tls-verify=false",
		"docker://"+d.regAddr+"/tiny:latest", "oci:"+dest+":tiny")
	if err != nil {
		t.Fatalf("skopeo copy: %v\n%s", err, out)
	}
	var index struct {
		Manifests []struct{ Digest string }
	}
	data, err := os.ReadFile(filepath.Join(dest, "index.json"))
	if err != nil {
		t.Fatal(err)
	}
	if err := json.Unmarshal(data, &index); err != nil || len(index.Manifests) != 1 {
		t.Fatalf("skopeo's index.json: %v\n%s", err, data)
	}
	if got := index.Manifests[0].Digest; got != h.String() {
		t.Errorf("skopeo copied %s, stack pushed %s", got, h)
	}
	// By digest too.
	out, err = d.run("admin", d.dir, "skopeo", "inspect", "--tls-verify=false", "--raw", "docker://"+d.regAddr+"/tiny@"+h.String())
	if err != nil || !strings.Contains(out, "schemaVersion") {
		t.Errorf("skopeo inspect by digest: %v\n%s", err, out)
	}
}
