package registry

import (
	"bytes"
	"context"
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"errors"
	"io"
	"log/slog"
	"net/http"
	"strings"
	"testing"

	"github.com/distribution/distribution/v3/registry/api/errcode"
	"github.com/google/go-containerregistry/pkg/authn"
	"github.com/sirupsen/logrus"
)

const (
	ociManifest = "application/vnd.oci.image.manifest.v1+json"
	ociIndex    = "application/vnd.oci.image.index.v1+json"
)

// TestBadClientInput sends a real registry requests an attacker or a
// broken client would, through a real HTTP client, and checks each is
// answered with a 4xx and the distribution-spec error code as JSON, and
// that nothing is logged at error level. Distribution answered several
// with a 500 (a config digest of the wrong length first), some with a
// plain-text 404, and logged others as errors.
func TestBadClientInput(t *testing.T) {
	r, logs := startRegistry(t, Config{})
	base := "http://" + r.Addr()
	ctx := context.Background()

	// A real image, so manifests can name blobs the registry has.
	img := ociImage(t, 300)
	if _, err := Push(ctx, img, r.Addr(), "app", PushOptions{Auth: authn.Anonymous}); err != nil {
		t.Fatal(err)
	}
	raw, err := img.RawManifest()
	if err != nil {
		t.Fatal(err)
	}
	// manifest returns the image's manifest changed by edit.
	manifest := func(edit func(m map[string]any)) []byte {
		var m map[string]any
		if err := json.Unmarshal(raw, &m); err != nil {
			t.Fatal(err)
		}
		if edit != nil {
			edit(m)
		}
		b, err := json.Marshal(m)
		if err != nil {
			t.Fatal(err)
		}
		return b
	}
	config := func(m map[string]any) map[string]any { return m["config"].(map[string]any) }
	layer := func(m map[string]any) map[string]any { return m["layers"].([]any)[0].(map[string]any) }
	good := manifest(nil)
	sum := sha256.Sum256(good)
	goodDigest := "sha256:" + hex.EncodeToString(sum[:])
	zeros := "sha256:" + strings.Repeat("0", 64)
	index := func(d string) []byte {
		return []byte(`{"schemaVersion":2,"mediaType":"` + ociIndex + `","manifests":[{"mediaType":"` + ociManifest + `","digest":"` + d + `","size":` + itoa(len(good)) + `}]}`)
	}

	type header map[string]string
	for _, tc := range []struct {
		name   string
		method string
		path   string // {upload} is a new upload's path and query
		header header
		body   []byte
		status int
		code   string
	}{
		{"valid manifest (control)", "PUT", "/v2/app/manifests/v1", header{"Content-Type": ociManifest}, good, 201, ""},

		// Manifests whose descriptors are malformed.
		{"config digest not hex", "PUT", "/v2/app/manifests/t", header{"Content-Type": ociManifest}, manifest(func(m map[string]any) { config(m)["digest"] = "sha256:zzz" }), 400, "DIGEST_INVALID"},
		{"config digest too short", "PUT", "/v2/app/manifests/t", header{"Content-Type": ociManifest}, manifest(func(m map[string]any) { config(m)["digest"] = "sha256:abc" }), 400, "DIGEST_INVALID"},
		{"config digest too long", "PUT", "/v2/app/manifests/t", header{"Content-Type": ociManifest}, manifest(func(m map[string]any) { config(m)["digest"] = zeros + "00" }), 400, "DIGEST_INVALID"},
		{"config digest of an unknown algorithm", "PUT", "/v2/app/manifests/t", header{"Content-Type": ociManifest}, manifest(func(m map[string]any) { config(m)["digest"] = "md5:" + strings.Repeat("0", 32) }), 400, "DIGEST_INVALID"},
		{"config digest empty", "PUT", "/v2/app/manifests/t", header{"Content-Type": ociManifest}, manifest(func(m map[string]any) { config(m)["digest"] = "" }), 400, "DIGEST_INVALID"},
		{"layer digest too short", "PUT", "/v2/app/manifests/t", header{"Content-Type": ociManifest}, manifest(func(m map[string]any) { layer(m)["digest"] = "sha256:abc" }), 400, "DIGEST_INVALID"},
		{"layer digest upper-case", "PUT", "/v2/app/manifests/t", header{"Content-Type": ociManifest}, manifest(func(m map[string]any) { layer(m)["digest"] = "sha256:" + strings.Repeat("A", 64) }), 400, "DIGEST_INVALID"},
		{"subject digest malformed", "PUT", "/v2/app/manifests/t", header{"Content-Type": ociManifest}, manifest(func(m map[string]any) {
			m["subject"] = map[string]any{"mediaType": ociManifest, "digest": "sha256:abc", "size": 2}
		}), 400, "DIGEST_INVALID"},
		{"index entry digest malformed", "PUT", "/v2/app/manifests/i", header{"Content-Type": ociIndex}, index("sha256:abc"), 400, "DIGEST_INVALID"},
		{"docker manifest config digest malformed", "PUT", "/v2/app/manifests/d", header{"Content-Type": "application/vnd.docker.distribution.manifest.v2+json"},
			[]byte(`{"schemaVersion":2,"mediaType":"application/vnd.docker.distribution.manifest.v2+json","config":{"mediaType":"application/vnd.docker.container.image.v1+json","digest":"sha256:abc","size":2},"layers":[]}`), 400, "DIGEST_INVALID"},
		{"docker manifest list entry digest malformed", "PUT", "/v2/app/manifests/d", header{"Content-Type": "application/vnd.docker.distribution.manifest.list.v2+json"},
			[]byte(`{"schemaVersion":2,"mediaType":"application/vnd.docker.distribution.manifest.list.v2+json","manifests":[{"mediaType":"application/vnd.docker.distribution.manifest.v2+json","digest":"foo:bar","size":2}]}`), 400, "DIGEST_INVALID"},
		{"schemaVersion 3", "PUT", "/v2/app/manifests/t", header{"Content-Type": ociManifest}, manifest(func(m map[string]any) { m["schemaVersion"] = 3 }), 400, "MANIFEST_INVALID"},
		{"schemaVersion missing", "PUT", "/v2/app/manifests/t", header{"Content-Type": ociManifest}, manifest(func(m map[string]any) { delete(m, "schemaVersion") }), 400, "MANIFEST_INVALID"},
		{"layer media type malformed", "PUT", "/v2/app/manifests/t", header{"Content-Type": ociManifest}, manifest(func(m map[string]any) { layer(m)["mediaType"] = "not a media type" }), 400, "MANIFEST_INVALID"},
		{"config media type missing", "PUT", "/v2/app/manifests/t", header{"Content-Type": ociManifest}, manifest(func(m map[string]any) { delete(config(m), "mediaType") }), 400, "MANIFEST_INVALID"},
		{"artifactType malformed", "PUT", "/v2/app/manifests/t", header{"Content-Type": ociManifest}, manifest(func(m map[string]any) { m["artifactType"] = "x" }), 400, "MANIFEST_INVALID"},
		{"manifest media type other than Content-Type", "PUT", "/v2/app/manifests/t", header{"Content-Type": ociManifest}, manifest(func(m map[string]any) { m["mediaType"] = ociIndex }), 400, "MANIFEST_INVALID"},
		{"Content-Type unknown", "PUT", "/v2/app/manifests/t", header{"Content-Type": "application/x-nope"}, good, 400, "MANIFEST_INVALID"},
		{"Content-Type missing", "PUT", "/v2/app/manifests/t", nil, good, 400, "MANIFEST_INVALID"},
		{"negative size", "PUT", "/v2/app/manifests/t", header{"Content-Type": ociManifest}, manifest(func(m map[string]any) { layer(m)["size"] = -1 }), 400, "MANIFEST_INVALID"},
		{"size not a number", "PUT", "/v2/app/manifests/t", header{"Content-Type": ociManifest}, manifest(func(m map[string]any) { layer(m)["size"] = "12" }), 400, "MANIFEST_INVALID"},
		{"foreign layer URL", "PUT", "/v2/app/manifests/t", header{"Content-Type": ociManifest}, manifest(func(m map[string]any) {
			layer(m)["mediaType"] = "application/vnd.oci.image.layer.nondistributable.v1.tar+gzip"
			layer(m)["urls"] = []string{"https://example.com/layer"}
		}), 400, "MANIFEST_INVALID"},
		{"layer URL not http", "PUT", "/v2/app/manifests/t", header{"Content-Type": ociManifest}, manifest(func(m map[string]any) { layer(m)["urls"] = []string{"file:///etc/passwd"} }), 400, "MANIFEST_INVALID"},
		{"invalid JSON", "PUT", "/v2/app/manifests/t", header{"Content-Type": ociManifest}, []byte(`{"schemaVersion":2,`), 400, "MANIFEST_INVALID"},
		{"JSON not an object", "PUT", "/v2/app/manifests/t", header{"Content-Type": ociManifest}, []byte(`[]`), 400, "MANIFEST_INVALID"},
		{"huge manifest", "PUT", "/v2/app/manifests/t", header{"Content-Type": ociManifest}, append(good, bytes.Repeat([]byte(" "), 5<<20)...), 400, "MANIFEST_INVALID"},
		{"blob the manifest names is missing", "PUT", "/v2/app/manifests/t", header{"Content-Type": ociManifest}, manifest(func(m map[string]any) { layer(m)["digest"] = zeros }), 400, "MANIFEST_BLOB_UNKNOWN"},

		// Manifest references.
		{"manifest digest mismatch", "PUT", "/v2/app/manifests/" + zeros, header{"Content-Type": ociManifest}, good, 400, "DIGEST_INVALID"},
		{"manifest pushed by its digest (control)", "PUT", "/v2/app/manifests/" + goodDigest, header{"Content-Type": ociManifest}, good, 201, ""},
		{"manifest reference digest malformed", "PUT", "/v2/app/manifests/sha256:zzz", header{"Content-Type": ociManifest}, good, 400, "DIGEST_INVALID"},
		{"manifest reference digest too short", "GET", "/v2/app/manifests/sha256:abc", nil, nil, 400, "DIGEST_INVALID"},
		{"tag too long", "PUT", "/v2/app/manifests/" + strings.Repeat("t", 129), header{"Content-Type": ociManifest}, good, 400, "MANIFEST_INVALID"},
		{"tag dot-dot", "GET", "/v2/app/manifests/..", nil, nil, 404, "MANIFEST_UNKNOWN"},
		{"tag dot-dot escaped", "PUT", "/v2/app/manifests/%2e%2e", header{"Content-Type": ociManifest}, good, 400, "MANIFEST_INVALID"},
		{"tag with escaped slashes", "GET", "/v2/app/manifests/..%2f..%2f..%2fetc%2fpasswd", nil, nil, 400, "NAME_INVALID"},

		// Repository names.
		{"name traversal", "GET", "/v2/../../etc/manifests/latest", nil, nil, 400, "NAME_INVALID"},
		{"name traversal escaped", "GET", "/v2/app/%2e%2e/%2e%2e/manifests/latest", nil, nil, 400, "NAME_INVALID"},
		{"name traversal to a blob", "GET", "/v2/app/blobs/..%2f..%2fetc%2fpasswd", nil, nil, 400, "NAME_INVALID"},
		{"name upper-case", "GET", "/v2/App/tags/list", nil, nil, 400, "NAME_INVALID"},
		{"name empty", "GET", "/v2//tags/list", nil, nil, 400, "NAME_INVALID"},
		{"name too long", "PUT", "/v2/" + strings.Repeat("a", 256) + "/manifests/t", header{"Content-Type": ociManifest}, good, 400, "NAME_INVALID"},
		{"no such endpoint", "GET", "/v2/app/nothing", nil, nil, 404, "UNSUPPORTED"},

		// Blobs and uploads.
		{"blob digest malformed", "GET", "/v2/app/blobs/sha256:zzz", nil, nil, 400, "DIGEST_INVALID"},
		{"blob delete digest too short", "DELETE", "/v2/app/blobs/sha256:abc", nil, nil, 400, "DIGEST_INVALID"},
		{"upload digest= malformed", "PUT", "{upload}&digest=sha256:zzz", nil, []byte("x"), 400, "DIGEST_INVALID"},
		{"upload digest= of an unknown algorithm", "PUT", "{upload}&digest=md5:abc", nil, []byte("x"), 400, "DIGEST_INVALID"},
		{"upload digest= empty", "PUT", "{upload}&digest=", nil, []byte("x"), 400, "DIGEST_INVALID"},
		{"upload digest= missing", "PUT", "{upload}", nil, []byte("x"), 400, "DIGEST_INVALID"},
		{"upload digest= mismatch", "PUT", "{upload}&digest=" + zeros, nil, []byte("x"), 400, "DIGEST_INVALID"},
		{"monolithic upload digest= malformed", "POST", "/v2/app/blobs/uploads/?digest=sha256:abc", header{"Content-Type": "application/octet-stream"}, []byte("x"), 400, "DIGEST_INVALID"},
		{"mount= malformed", "POST", "/v2/app/blobs/uploads/?mount=sha256:zzz&from=other", nil, nil, 400, "DIGEST_INVALID"},
		{"from= traversal", "POST", "/v2/app/blobs/uploads/?mount=" + zeros + "&from=../../etc", nil, nil, 400, "NAME_INVALID"},
		{"chunk Content-Type", "PATCH", "{upload}", header{"Content-Type": "text/plain"}, []byte("x"), 400, "BLOB_UPLOAD_INVALID"},
		{"chunk Content-Range with unit", "PATCH", "{upload}", header{"Content-Range": "bytes 0-0", "Content-Length": "1"}, []byte("x"), 400, "BLOB_UPLOAD_INVALID"},
		{"chunk Content-Range reversed", "PATCH", "{upload}", header{"Content-Range": "5-1", "Content-Length": "1"}, []byte("x"), 400, "BLOB_UPLOAD_INVALID"},
		{"chunk Content-Range overflowing", "PATCH", "{upload}", header{"Content-Range": "0-99999999999999999999", "Content-Length": "1"}, []byte("x"), 400, "BLOB_UPLOAD_INVALID"},
		{"upload id dot-dot", "GET", "/v2/app/blobs/uploads/%2e%2e", nil, nil, 404, "BLOB_UPLOAD_UNKNOWN"},
		{"upload state forged", "PUT", "/v2/app/blobs/uploads/0123?_state=forged&digest=" + zeros, nil, nil, 404, "BLOB_UPLOAD_INVALID"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			path := tc.path
			if strings.HasPrefix(path, "{upload}") {
				path = startUpload(t, base) + strings.TrimPrefix(path, "{upload}")
			}
			req, err := http.NewRequest(tc.method, base+path, bytes.NewReader(tc.body))
			if err != nil {
				t.Fatal(err)
			}
			for k, v := range tc.header {
				req.Header.Set(k, v)
			}
			resp, err := http.DefaultClient.Do(req)
			if err != nil {
				t.Fatal(err)
			}
			body, _ := io.ReadAll(resp.Body)
			resp.Body.Close()
			if resp.StatusCode != tc.status {
				t.Fatalf("%s %s: %s, want %d\n%s", tc.method, path, resp.Status, tc.status, body)
			}
			if tc.code == "" {
				return
			}
			var got struct {
				Errors []struct{ Code, Message string }
			}
			if err := json.Unmarshal(body, &got); err != nil || len(got.Errors) == 0 {
				t.Fatalf("%s %s: body %q is not a spec error: %v", tc.method, path, body, err)
			}
			if got.Errors[0].Code != tc.code {
				t.Errorf("%s %s: error %s, want %s\n%s", tc.method, path, got.Errors[0].Code, tc.code, body)
			}
			if ct := resp.Header.Get("Content-Type"); !strings.HasPrefix(ct, "application/json") {
				t.Errorf("%s %s: Content-Type %q, want JSON", tc.method, path, ct)
			}
		})
	}
	if strings.Contains(logs.String(), "level=ERROR") {
		t.Errorf("bad client input was logged as an error:\n%s", errorLines(logs.String()))
	}
}

// startUpload starts a blob upload in repository app and returns its
// location's path and query.
func startUpload(t *testing.T, base string) string {
	t.Helper()
	resp, err := http.Post(base+"/v2/app/blobs/uploads/", "", nil)
	if err != nil {
		t.Fatal(err)
	}
	resp.Body.Close()
	loc := resp.Header.Get("Location")
	if resp.StatusCode != http.StatusAccepted || !strings.HasPrefix(loc, base) {
		t.Fatalf("start upload: %s, location %q", resp.Status, loc)
	}
	return strings.TrimPrefix(loc, base)
}

func errorLines(logs string) string {
	var out []string
	for _, l := range strings.Split(logs, "\n") {
		if strings.Contains(l, "level=ERROR") {
			out = append(out, l)
		}
	}
	return strings.Join(out, "\n")
}

func itoa(n int) string { b, _ := json.Marshal(n); return string(b) }

// TestHeldLogs checks that an error distribution logs during a request
// is logged as an error when the request ends with a 5xx or no response,
// and as debug detail when it ends with a 4xx, and that entries naming a
// status, or of other levels, pass at once.
func TestHeldLogs(t *testing.T) {
	for _, tc := range []struct {
		status int
		want   string
	}{
		{500, "level=ERROR"},
		{503, "level=ERROR"},
		{0, "level=ERROR"},
		{400, "level=DEBUG"},
		{404, "level=DEBUG"},
		{499, "level=DEBUG"},
	} {
		var buf syncBuffer
		l := slog.New(slog.NewTextHandler(&buf, &slog.HandlerOptions{Level: slog.LevelDebug}))
		id := newInstanceID()
		bridgeLogs(id, l)
		reqID := id + "/1"
		h := holdLogs(reqID, l)
		logrus.WithField("instance.id", reqID).Error("payload digest does not match")
		logrus.WithField("instance.id", reqID).Warn("a warning")
		logrus.WithFields(logrus.Fields{"instance.id": reqID, "http.response.status": 500}).Error("response completed with error")
		if got := buf.String(); strings.Contains(got, "payload digest") || !strings.Contains(got, "a warning") || !strings.Contains(got, "response completed") {
			t.Errorf("status %d: before the request ended, logs are:\n%s", tc.status, got)
		}
		h.release(tc.status)
		logrus.WithField("instance.id", reqID).Error("after the end")
		forgetLogs(id)
		var line, after string
		for _, s := range strings.Split(buf.String(), "\n") {
			if strings.Contains(s, "payload digest") {
				line = s
			}
			if strings.Contains(s, "after the end") {
				after = s
			}
		}
		if !strings.Contains(line, tc.want) {
			t.Errorf("status %d: held entry logged as %q, want %s", tc.status, line, tc.want)
		}
		if !strings.Contains(after, "level=ERROR") {
			t.Errorf("status %d: an entry after the request ended was logged as %q, want it at its level", tc.status, after)
		}
	}
}

func TestCheckManifestAcceptsValid(t *testing.T) {
	for _, m := range []string{
		`{"schemaVersion":2,"mediaType":"` + ociManifest + `","config":{"mediaType":"application/vnd.oci.empty.v1+json","digest":"sha256:44136fa355b3678a1146ad16f7e8649e94fb4fc21fe77e8310c060f61caaff8a","size":2},"layers":[]}`,
		`{"schemaVersion":2,"mediaType":"` + ociIndex + `","manifests":[]}`,
		`{"schemaVersion":2,"manifests":[{"mediaType":"` + ociManifest + `","digest":"sha512:` + strings.Repeat("a", 128) + `","size":0,"platform":{"os":"linux","architecture":"amd64"}}]}`,
	} {
		if err := checkManifest([]byte(m)); err != nil {
			t.Errorf("checkManifest(%s) = %v, want nil", m, err)
		}
	}
}

// FuzzCheckManifest feeds arbitrary manifests to the manifest check: it
// never panics and refuses only with MANIFEST_INVALID or DIGEST_INVALID.
func FuzzCheckManifest(f *testing.F) {
	f.Add([]byte(`{"schemaVersion":2,"mediaType":"` + ociManifest + `","config":{"mediaType":"application/vnd.oci.empty.v1+json","digest":"sha256:44136fa355b3678a1146ad16f7e8649e94fb4fc21fe77e8310c060f61caaff8a","size":2},"layers":[{"mediaType":"application/vnd.oci.image.layer.v1.tar+gzip","digest":"sha256:zzz","size":1}]}`))
	f.Add([]byte(`{"schemaVersion":2,"manifests":[{"mediaType":"a/b","digest":"foo:bar","size":-1,"urls":["x"]}],"subject":{"digest":""}}`))
	f.Add([]byte(`[]`))
	f.Fuzz(func(t *testing.T, payload []byte) {
		err := checkManifest(payload)
		if err == nil {
			return
		}
		var e errcode.Error
		if !errors.As(err, &e) || (e.Code != errcode.ErrorCodeManifestInvalid && e.Code != errcode.ErrorCodeDigestInvalid) {
			t.Fatalf("checkManifest: %v (%T), want a MANIFEST_INVALID or DIGEST_INVALID errcode.Error", err, err)
		}
	})
}

// FuzzParseRoute feeds arbitrary request paths to the route check: it
// never panics, refuses with a 4xx, and passes a route only with a valid
// repository name.
func FuzzParseRoute(f *testing.F) {
	for _, p := range []string{"/v2/", "/v2/_catalog", "/v2/a/b/manifests/latest", "/v2/a/blobs/sha256:abc", "/v2/../x/tags/list", "/v2/a/blobs/uploads/", "/v2/a/blobs/uploads/0-1=", "/v2/a/referrers/sha256:x", "/v2/A//manifests/..", "/other"} {
		f.Add("GET", p)
	}
	f.Fuzz(func(t *testing.T, method, path string) {
		r, err := parseRoute(method, path)
		if err != nil {
			if err.status < 400 || err.status > 499 {
				t.Fatalf("parseRoute(%q) answers %d", path, err.status)
			}
			return
		}
		if r.endpoint != "" && (!anchoredName.MatchString(r.name) || len(r.name) > 255) {
			t.Fatalf("parseRoute(%q) passed name %q", path, r.name)
		}
	})
}
