package main

import (
	"encoding/json"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/hashbang/stack/internal/image"
	"github.com/hashbang/stack/internal/workspace"
)

// auditFixture writes a passing image "good" and a failing image "bad" into
// the OCI layout of a new cache directory, and "bad" into a tarball.
func auditFixture(t *testing.T) (cache, tarball string) {
	t.Helper()
	cache = t.TempDir()
	l := image.Layout{Dir: workspace.OCI(cache)}
	epoch := time.Unix(1700000000, 0)
	for name, yaml := range map[string]string{
		"good": "files:\n  - path: /etc/motd\n    content: hi\nuser: 65532:65532\n",
		"bad":  "files:\n  - path: /bin/sh\n    content: x\n  - path: /bin/su\n    mode: 4755\n    content: x\nuser: 65532:65532\n",
	} {
		def, err := image.Parse(name, name, []byte(yaml))
		if err != nil {
			t.Fatal(err)
		}
		img, err := image.Assemble(def, nil, epoch)
		if err != nil {
			t.Fatal(err)
		}
		if _, err := l.Put(name, img); err != nil {
			t.Fatal(err)
		}
		if name == "bad" {
			tarball = filepath.Join(t.TempDir(), "bad.tar")
			if err := image.WriteTarball(tarball, name, img); err != nil {
				t.Fatal(err)
			}
		}
	}
	return cache, tarball
}

func TestAuditCommand(t *testing.T) {
	cache, tarball := auditFixture(t)
	layout := workspace.OCI(cache)

	out, _, err := run(t, "audit", layout+":good")
	if err != nil {
		t.Fatalf("audit of a good image: %v\n%s", err, out)
	}
	if !strings.HasPrefix(out, "good@sha256:") || !strings.HasSuffix(out, ": passes audit\n") {
		t.Errorf("output %q", out)
	}

	// By name, from the repository's cache.
	out, _, err = run(t, "-C", repoRoot(t), "--cache", cache, "audit", "good")
	if err != nil || !strings.Contains(out, "passes audit") {
		t.Errorf("audit good by name: %v %q", err, out)
	}

	for _, ref := range []string{layout, tarball} {
		out, _, err = run(t, "audit", ref)
		if err == nil || err.Error() != "audit failed: 2 findings in 1 of "+map[string]string{layout: "2", tarball: "1"}[ref]+" images" {
			t.Errorf("audit %s: error %v", ref, err)
		}
		for _, want := range []string{"IMAGE", "bad", "/bin/sh", `shell "sh" present`, "/bin/su", "setuid file"} {
			if !strings.Contains(out, want) {
				t.Errorf("audit %s output lacks %q:\n%s", ref, want, out)
			}
		}
	}

	out, _, err = run(t, "audit", "-o", "json", layout)
	if err == nil {
		t.Error("audit -o json of a bad image succeeded")
	}
	var results []auditResult
	if err := json.Unmarshal([]byte(out), &results); err != nil {
		t.Fatalf("%v\n%s", err, out)
	}
	if len(results) != 2 || results[0].Image != "bad" || len(results[0].Findings) != 2 || results[1].Image != "good" || len(results[1].Findings) != 0 {
		t.Errorf("json results %+v", results)
	}
	if !strings.HasPrefix(results[1].Digest, "sha256:") {
		t.Errorf("digest %q", results[1].Digest)
	}

	for _, tt := range []struct {
		args []string
		want string
	}{
		{[]string{"audit"}, "requires at least 1 arg"},
		{[]string{"audit", layout + ":nope"}, "no image nope in"},
		{[]string{"-C", repoRoot(t), "--cache", cache, "audit", "nope"}, "no image nope in"},
		{[]string{"-C", t.TempDir(), "audit", "nope"}, "no repository to look the name up in"},
	} {
		if _, _, err := run(t, tt.args...); err == nil || !strings.Contains(err.Error(), tt.want) {
			t.Errorf("stack %v: %v, want %q", tt.args, err, tt.want)
		}
	}
}
