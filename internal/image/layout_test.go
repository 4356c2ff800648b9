package image

import (
	"archive/tar"
	"bytes"
	"compress/gzip"
	"context"
	"encoding/json"
	"io"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"sync"
	"testing"
	"time"

	v1 "github.com/google/go-containerregistry/pkg/v1"
	"github.com/google/go-containerregistry/pkg/v1/validate"
)

// tinyImage assembles a small image with one file.
func tinyImage(t testing.TB, content string) v1.Image {
	t.Helper()
	def, err := Parse("tiny", "tiny", []byte("files:\n  - path: /etc/tiny\n    content: "+content+"\nuser: 1:1\n"))
	if err != nil {
		t.Fatal(err)
	}
	img, err := Assemble(def, nil, testEpoch)
	if err != nil {
		t.Fatal(err)
	}
	return img
}

func TestLayoutPutAndOpen(t *testing.T) {
	dir := filepath.Join(t.TempDir(), "oci")
	l := Layout{Dir: dir}
	a, b, a2 := tinyImage(t, "a"), tinyImage(t, "b"), tinyImage(t, "a2")
	for _, p := range []struct {
		name string
		img  v1.Image
	}{{"a", a}, {"b", b}, {"a", a2}} {
		h, err := l.Put(p.name, p.img)
		if err != nil {
			t.Fatal(err)
		}
		if h.String() != imageDigest(t, p.img) {
			t.Errorf("Put returned %s, want %s", h, imageDigest(t, p.img))
		}
	}
	// Replacing a leaves one entry per name, sorted.
	raw, err := os.ReadFile(filepath.Join(dir, "index.json"))
	if err != nil {
		t.Fatal(err)
	}
	var idx v1.IndexManifest
	if err := json.Unmarshal(raw, &idx); err != nil {
		t.Fatal(err)
	}
	if len(idx.Manifests) != 2 || idx.Manifests[0].Annotations[RefName] != "a" || idx.Manifests[0].Digest.String() != imageDigest(t, a2) {
		t.Fatalf("index after replacing a: %s", raw)
	}
	if p := idx.Manifests[1].Platform; p == nil || p.OS != "linux" || p.Architecture != "amd64" {
		t.Errorf("index entry without platform: %s", raw)
	}
	if strings.Contains(string(raw), "artifactType") {
		t.Errorf("image entries carry an artifactType: %s", raw)
	}
	for _, f := range []string{"oci-layout", "index.json"} {
		if fi, err := os.Stat(filepath.Join(dir, f)); err != nil || fi.Mode().Perm() != 0o644 {
			t.Errorf("%s: %v %v, want mode 0644", f, fi.Mode(), err)
		}
	}
	names, err := l.Names()
	if err != nil || strings.Join(names, ",") != "a,b" {
		t.Errorf("Names = %v, %v", names, err)
	}

	tarFile := filepath.Join(t.TempDir(), "b.tar")
	if err := WriteTarball(tarFile, "b", b); err != nil {
		t.Fatal(err)
	}
	for _, tt := range []struct{ ref, want string }{
		{"a", imageDigest(t, a2)},       // name in the cache layout
		{dir + ":b", imageDigest(t, b)}, // layout dir and name
		{tarFile, imageDigest(t, b)},
		{tarFile + ":b", imageDigest(t, b)},
	} {
		img, err := Open(dir, tt.ref)
		if err != nil {
			t.Errorf("Open(%s): %v", tt.ref, err)
			continue
		}
		if got := imageDigest(t, img); got != tt.want {
			t.Errorf("Open(%s) = %s, want %s", tt.ref, got, tt.want)
		}
		if err := validate.Image(img); err != nil {
			t.Errorf("Open(%s): invalid image: %v", tt.ref, err)
		}
	}
	all, err := OpenAll(dir, dir)
	if err != nil || len(all) != 2 {
		t.Errorf("OpenAll(dir) = %v, %v", all, err)
	}
	for _, tt := range []struct{ ref, want string }{
		{dir, "holds 2 images (a, b): name one as"},
		{dir + ":c", "no image c in"},
		{"c", "no image c in"},
		{"no/such/path", "no such file, directory or image name"},
		{t.TempDir(), "not an OCI image layout"},
		{"", "no image given"},
		{"../../images/base/image.yaml", "not an OCI tarball"},
	} {
		if _, err := Open(dir, tt.ref); err == nil || !strings.Contains(err.Error(), tt.want) {
			t.Errorf("Open(%q) = %v, want %q", tt.ref, err, tt.want)
		}
	}
	if _, err := Open(filepath.Join(t.TempDir(), "empty"), "a"); err == nil || !strings.Contains(err.Error(), "run stack build a") {
		t.Errorf("Open in an empty cache: %v", err)
	}

	// The tarball is deterministic.
	tar2 := filepath.Join(t.TempDir(), "again.tar")
	if err := WriteTarball(tar2, "b", b); err != nil {
		t.Fatal(err)
	}
	x, _ := os.ReadFile(tarFile)
	y, _ := os.ReadFile(tar2)
	if !bytes.Equal(x, y) {
		t.Error("two tarballs of one image differ")
	}
}

func TestLayoutConcurrentPut(t *testing.T) {
	l := Layout{Dir: filepath.Join(t.TempDir(), "oci")}
	var wg sync.WaitGroup
	names := []string{"p", "q", "r", "s"}
	imgs := map[string]v1.Image{}
	for _, n := range names {
		imgs[n] = tinyImage(t, n)
	}
	for _, n := range names {
		wg.Add(1)
		go func() {
			defer wg.Done()
			if _, err := l.Put(n, imgs[n]); err != nil {
				t.Error(err)
			}
		}()
	}
	wg.Wait()
	got, err := l.Names()
	if err != nil || strings.Join(got, ",") != "p,q,r,s" {
		t.Errorf("Names after concurrent Puts = %v, %v", got, err)
	}
}

func TestOpenDetectsCorruptBlob(t *testing.T) {
	dir := t.TempDir()
	l := Layout{Dir: dir}
	img := tinyImage(t, "x")
	if _, err := l.Put("x", img); err != nil {
		t.Fatal(err)
	}
	got, err := Open(dir, dir+":x")
	if err != nil {
		t.Fatal(err)
	}
	layers, _ := img.Layers()
	d, _ := layers[0].Digest()
	blob := filepath.Join(dir, "blobs", "sha256", d.Hex)
	good, _ := os.ReadFile(blob)
	// The same tar, compressed otherwise: valid gzip, wrong digest.
	zr, err := gzip.NewReader(bytes.NewReader(good))
	if err != nil {
		t.Fatal(err)
	}
	raw, _ := io.ReadAll(zr)
	var buf bytes.Buffer
	zw, _ := gzip.NewWriterLevel(&buf, gzip.BestSpeed)
	zw.Write(raw)
	zw.Close()
	bad := buf.Bytes()
	os.Chmod(blob, 0o644)
	os.WriteFile(blob, bad, 0o644)
	// An image opened before its blob changed checks the layer as it reads.
	if _, err := Audit(got); err == nil || !strings.Contains(err.Error(), "corrupt") {
		t.Errorf("Audit of a corrupt layer: %v", err)
	}
	// Opened after, it is refused.
	if _, err := Open(dir, dir+":x"); err == nil || !strings.Contains(err.Error(), "image x: layer blob "+d.String()+" is corrupt") {
		t.Errorf("Open of a layout with a corrupt layer: %v", err)
	}
}

// TestLayoutRefusesTamperedBlobs changes each kind of blob of a written
// layout, or the index entry that points at the manifest, and checks that
// the image is refused with an error naming it and the blob, that the
// index can still be listed, and that writing the image again repairs it.
func TestLayoutRefusesTamperedBlobs(t *testing.T) {
	img := healthImage(t)
	manifest, _ := img.Digest()
	config, _ := img.ConfigName()
	layers, _ := img.Layers()
	layer, _ := layers[1].Digest()
	flip := func(b []byte) []byte { b[len(b)/2] ^= 1; return b }
	for _, tc := range []struct {
		name   string
		blob   v1.Hash
		change func([]byte) []byte
		want   string
	}{
		{"layer byte flipped", layer, flip, "layer blob " + layer.String() + " is corrupt: its content hashes to sha256:"},
		{"layer grown", layer, func(b []byte) []byte { return append(b, 0) }, "layer blob " + layer.String() + " is corrupt: it holds more than"},
		{"layer truncated", layer, func(b []byte) []byte { return b[:len(b)-1] }, "layer blob " + layer.String() + " is corrupt: it holds"},
		{"layer emptied", layer, func([]byte) []byte { return nil }, "layer blob " + layer.String() + " is corrupt: it holds 0 bytes"},
		{"config byte flipped", config, flip, "config blob " + config.String() + " is corrupt"},
		{"manifest byte flipped", manifest, flip, "manifest blob " + manifest.String() + " is corrupt"},
		{"layer removed", layer, nil, "layer " + layer.String() + ": open"},
		{"index size", v1.Hash{}, nil, "manifest blob " + manifest.String() + " is corrupt: it holds more than"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			dir := filepath.Join(t.TempDir(), "oci")
			l := Layout{Dir: dir}
			if _, err := l.Put("health", img); err != nil {
				t.Fatal(err)
			}
			if _, err := l.Put("tiny", tinyImage(t, "t")); err != nil {
				t.Fatal(err)
			}
			if tc.blob == (v1.Hash{}) {
				index := filepath.Join(dir, "index.json")
				raw, _ := os.ReadFile(index)
				var idx v1.IndexManifest
				json.Unmarshal(raw, &idx)
				idx.Manifests[0].Size--
				raw, _ = json.Marshal(idx)
				os.WriteFile(index, raw, 0o644)
			} else {
				file := filepath.Join(dir, "blobs", tc.blob.Algorithm, tc.blob.Hex)
				if tc.change == nil {
					os.Remove(file)
				} else {
					b, err := os.ReadFile(file)
					if err != nil {
						t.Fatal(err)
					}
					os.WriteFile(file, tc.change(b), 0o644)
				}
			}
			_, err := l.Image("health")
			if err == nil || !strings.Contains(err.Error(), dir+": image health: "+tc.want) || strings.Contains(err.Error(), "\n") {
				t.Fatalf("Image of a layout with a %s: %v, want it to say %q", tc.name, err, tc.want)
			}
			if _, err := OpenAll(dir, dir); err == nil || !strings.Contains(err.Error(), tc.want) {
				t.Errorf("OpenAll of a layout with a %s: %v", tc.name, err)
			}
			if _, err := l.Image("tiny"); err != nil {
				t.Errorf("the other image of the layout: %v", err)
			}
			if names, err := l.Names(); err != nil || strings.Join(names, ",") != "health,tiny" {
				t.Errorf("Names = %v, %v", names, err)
			}
			if _, err := l.Put("health", img); err != nil {
				t.Fatal(err)
			}
			got, err := l.Image("health")
			if err != nil {
				t.Fatalf("Image after writing the image again: %v", err)
			}
			if err := validate.Image(got); err != nil {
				t.Errorf("image after writing it again: %v", err)
			}
		})
	}
}

func TestLayoutErrors(t *testing.T) {
	dir := t.TempDir()
	if _, err := (Layout{Dir: dir}).Names(); err == nil || !strings.Contains(err.Error(), "no OCI image layout at "+dir) {
		t.Errorf("Names of a directory without a layout: %v", err)
	}
	l := Layout{Dir: filepath.Join(dir, "oci")}
	if _, err := l.Put("a", tinyImage(t, "a")); err != nil {
		t.Fatal(err)
	}
	if _, err := l.Image("b"); err == nil || !strings.Contains(err.Error(), "no image b in "+l.Dir+" (it holds a)") {
		t.Errorf("Image of an unknown name: %v", err)
	}
	// Two index entries of one name are ambiguous.
	index := filepath.Join(l.Dir, "index.json")
	raw, _ := os.ReadFile(index)
	var idx v1.IndexManifest
	json.Unmarshal(raw, &idx)
	idx.Manifests = append(idx.Manifests, idx.Manifests[0])
	raw, _ = json.Marshal(idx)
	os.WriteFile(index, raw, 0o644)
	for _, err := range []error{second(l.Names()), second(l.Image("a"))} {
		if err == nil || !strings.Contains(err.Error(), `image "a" appears 2 times`) {
			t.Errorf("a name appearing twice: %v", err)
		}
	}
}

func second[T any](_ T, err error) error { return err }

func TestParseArchiveErrors(t *testing.T) {
	mk := func(files map[string]string) []byte {
		var buf bytes.Buffer
		tw := tar.NewWriter(&buf)
		for n, c := range files {
			tw.WriteHeader(&tar.Header{Name: n, Mode: 0o644, Size: int64(len(c)), Typeflag: tar.TypeReg})
			tw.Write([]byte(c))
		}
		tw.Close()
		return buf.Bytes()
	}
	for _, tt := range []struct {
		data []byte
		want string
	}{
		{[]byte("garbage"), "not an OCI tarball"},
		{mk(map[string]string{"index.json": "{}"}), "no oci-layout file"},
	} {
		if _, err := parseArchive(bytes.NewReader(tt.data)); err == nil || !strings.Contains(err.Error(), tt.want) {
			t.Errorf("parseArchive: %v, want %q", err, tt.want)
		}
	}
	s, err := parseArchive(bytes.NewReader(mk(map[string]string{"oci-layout": "{}", "index.json": `{"schemaVersion":2,"manifests":[{"mediaType":"application/vnd.oci.image.index.v1+json","digest":"sha256:0000000000000000000000000000000000000000000000000000000000000000","size":1}]}`})))
	if err != nil {
		t.Fatal(err)
	}
	if _, err := openStore(s, "t"); err == nil || !strings.Contains(err.Error(), "not an image manifest") {
		t.Errorf("nested index: %v", err)
	}
}

// FuzzOpenArchive feeds arbitrary bytes to the OCI tarball reader.
func FuzzOpenArchive(f *testing.F) {
	var buf bytes.Buffer
	tw := tar.NewWriter(&buf)
	tw.WriteHeader(&tar.Header{Name: "oci-layout", Mode: 0o644, Size: 2, Typeflag: tar.TypeReg})
	tw.Write([]byte("{}"))
	idx := `{"schemaVersion":2,"manifests":[]}`
	tw.WriteHeader(&tar.Header{Name: "index.json", Mode: 0o644, Size: int64(len(idx)), Typeflag: tar.TypeReg})
	tw.Write([]byte(idx))
	tw.Close()
	f.Add(buf.Bytes())
	f.Add([]byte("not a tar"))
	f.Fuzz(func(t *testing.T, data []byte) {
		s, err := parseArchive(bytes.NewReader(data))
		if err != nil {
			return
		}
		imgs, err := openStore(s, "fuzz")
		if err != nil {
			return
		}
		for _, n := range imgs {
			Audit(n.Image)
		}
	})
}

// TestSkopeo checks a real OCI client reads our layout and tarball and
// agrees with our digest.
func TestSkopeo(t *testing.T) {
	skopeo, err := exec.LookPath("skopeo")
	if err != nil {
		t.Skip("skopeo is not installed (Debian package skopeo: apt-get install -y skopeo); skipping the check with a real OCI client")
	}
	img := healthImage(t)
	want := imageDigest(t, img)
	dir := filepath.Join(t.TempDir(), "oci")
	if _, err := (Layout{Dir: dir}).Put("health", img); err != nil {
		t.Fatal(err)
	}
	if _, err := (Layout{Dir: dir}).Put("tiny", tinyImage(t, "t")); err != nil {
		t.Fatal(err)
	}
	tarFile := filepath.Join(t.TempDir(), "health.tar")
	if err := WriteTarball(tarFile, "health", img); err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
	defer cancel()
	for _, ref := range []string{"oci:" + dir + ":health", "oci-archive:" + tarFile, "oci-archive:" + tarFile + ":health"} {
		out, err := exec.CommandContext(ctx, skopeo, "inspect", ref).Output()
		if err != nil {
			var stderr []byte
			if ee, ok := err.(*exec.ExitError); ok {
				stderr = ee.Stderr
			}
			t.Fatalf("skopeo inspect %s: %v\n%s", ref, err, stderr)
		}
		var got struct {
			Digest       string
			Architecture string
			Os           string
			Layers       []string
		}
		if err := json.Unmarshal(out, &got); err != nil {
			t.Fatal(err)
		}
		if got.Digest != want || got.Architecture != "amd64" || got.Os != "linux" || len(got.Layers) != 2 {
			t.Errorf("skopeo inspect %s = %+v, want digest %s", ref, got, want)
		}
	}
}
