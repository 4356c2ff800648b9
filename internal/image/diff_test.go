package image

import (
	"strings"
	"testing"
	"time"
)

func TestDiff(t *testing.T) {
	a := tinyImage(t, "a")
	d, err := Diff(a, tinyImage(t, "a"))
	if err != nil {
		t.Fatal(err)
	}
	if !d.Equal() {
		t.Errorf("identical images differ: %s", d)
	}

	d, err = Diff(a, tinyImage(t, "bb"))
	if err != nil {
		t.Fatal(err)
	}
	if d.Equal() || len(d.Files) != 1 {
		t.Fatalf("diff of a changed file: %s", d)
	}
	f := d.Files[0]
	if f.Layer != 1 || f.Path != "/etc/tiny" || f.A.Size != 1 || f.B.Size != 2 || f.A.SHA256 == f.B.SHA256 {
		t.Errorf("file change %+v: %v vs %v", f, f.A, f.B)
	}
	if !strings.Contains(d.String(), "layer 1 /etc/tiny: file 0644 0:0 1 sha256:") {
		t.Errorf("String:\n%s", d)
	}

	// Another epoch: every header time and the config's created differ.
	def, _ := Parse("tiny", "tiny", []byte("files:\n  - path: /etc/tiny\n    content: a\nuser: 2:2\n"))
	b, err := Assemble(def, nil, testEpoch.Add(time.Hour))
	if err != nil {
		t.Fatal(err)
	}
	d, err = Diff(a, b)
	if err != nil {
		t.Fatal(err)
	}
	fields := map[string]bool{}
	for _, c := range d.Changes {
		fields[c.Field] = true
	}
	for _, want := range []string{"config.created", "config.config.User", "config.history[0].created", "config digest"} {
		if !fields[want] {
			t.Errorf("no change of %s in %v", want, d.Changes)
		}
	}
	paths := map[string]bool{}
	for _, f := range d.Files {
		paths[f.Path] = true
		if f.A == nil || f.B == nil || !strings.Contains(f.A.Header, "mtime=") || f.A.Header == f.B.Header {
			t.Errorf("change %s: %v vs %v", f.Path, f.A, f.B)
		}
	}
	if !paths["/etc/tiny"] || !paths["/etc"] {
		t.Errorf("changed paths %v", paths)
	}

	// A file only in one image.
	other, _ := Parse("tiny", "tiny", []byte("files:\n  - path: /etc/tiny\n    content: a\n  - path: /etc/more\n    content: m\nuser: 1:1\n"))
	c, _ := Assemble(other, nil, testEpoch)
	d, err = Diff(a, c)
	if err != nil {
		t.Fatal(err)
	}
	found := false
	for _, f := range d.Files {
		if f.Path == "/etc/more" && f.A == nil && f.B != nil {
			found = true
		}
	}
	if !found {
		t.Errorf("added file not reported: %s", d)
	}
}
