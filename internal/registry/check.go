package registry

import (
	"context"
	"encoding/json"
	"fmt"
	"net/http"
	"regexp"
	"strconv"
	"strings"
	"sync/atomic"

	"github.com/distribution/distribution/v3"
	"github.com/distribution/distribution/v3/registry/api/errcode"
	repositorymiddleware "github.com/distribution/distribution/v3/registry/middleware/repository"
	"github.com/distribution/reference"
	"github.com/opencontainers/go-digest"
)

// What a client sends is checked here before distribution acts on it.
// Distribution answers some malformed requests with a 500 (a manifest
// whose descriptors have a digest of the wrong length or an unknown
// algorithm, a schemaVersion other than 2, layer URLs, a repository name
// over 255 characters, a chunk with a Content-Type or Content-Range it
// cannot parse), others with a plain-text 404 that names no error (a path
// whose name or reference matches no route, as ../ does), and logs some
// at error level before it answers them with a 4xx. The checks answer
// each with a 4xx and the distribution-spec error code, as JSON:
//
//   - guard, the registry's HTTP handler, checks paths, query parameters
//     and upload headers before distribution sees them;
//   - checkedManifests, a repository middleware, checks a manifest's
//     content once distribution has authorized the request and read the
//     body (it bounds manifests to 4 MiB), before it is verified and
//     stored;
//   - the log bridge (log.go) holds the error entries distribution logs
//     during a request until the response's status says whether they were
//     a server's error or a client's.

// manifestCheck names the repository middleware that checks manifests.
const manifestCheck = "stack-manifest-check"

func init() {
	err := repositorymiddleware.Register(manifestCheck, func(_ context.Context, repo distribution.Repository, _ map[string]any) (distribution.Repository, error) {
		return checkedRepository{repo}, nil
	})
	if err != nil {
		panic(err)
	}
}

// checkedRepository is a repository whose manifest service checks the
// manifests put to it.
type checkedRepository struct{ distribution.Repository }

func (r checkedRepository) Manifests(ctx context.Context, options ...distribution.ManifestServiceOption) (distribution.ManifestService, error) {
	ms, err := r.Repository.Manifests(ctx, options...)
	if err != nil {
		return nil, err
	}
	return checkedManifests{ms}, nil
}

// checkedManifests refuses, with an errcode.Error that distribution's
// handler answers as it is, the manifests checkManifest finds malformed.
type checkedManifests struct{ distribution.ManifestService }

func (m checkedManifests) Put(ctx context.Context, man distribution.Manifest, options ...distribution.ManifestServiceOption) (digest.Digest, error) {
	_, payload, err := man.Payload()
	if err != nil {
		return "", errcode.ErrorCodeManifestInvalid.WithDetail(err.Error())
	}
	if err := checkManifest(payload); err != nil {
		return "", err
	}
	return m.ManifestService.Put(ctx, man, options...)
}

// mediaTypeRE is the form of a media type in the image spec's schema
// (RFC 6838 names, no parameters).
var mediaTypeRE = regexp.MustCompile(`^[A-Za-z0-9][A-Za-z0-9!#$&^_.+-]{0,126}/[A-Za-z0-9][A-Za-z0-9!#$&^_.+-]{0,126}$`)

type manifestDescriptor struct {
	MediaType    string   `json:"mediaType"`
	Digest       string   `json:"digest"`
	Size         int64    `json:"size"`
	URLs         []string `json:"urls"`
	ArtifactType string   `json:"artifactType"`
}

// checkManifest checks what distribution does not, or answers with a 500,
// in a manifest or index of any media type: schemaVersion 2, well-formed
// media types, and descriptors with a valid digest, a size that is not
// negative, and no URLs (foreign layers: this registry holds every layer
// itself, and distribution refuses them with a 500). It returns an
// errcode.Error: DIGEST_INVALID for a descriptor's digest, MANIFEST_INVALID
// for the rest.
func checkManifest(payload []byte) error {
	var m struct {
		SchemaVersion int                  `json:"schemaVersion"`
		MediaType     string               `json:"mediaType"`
		ArtifactType  string               `json:"artifactType"`
		Config        *manifestDescriptor  `json:"config"`
		Layers        []manifestDescriptor `json:"layers"`
		Manifests     []manifestDescriptor `json:"manifests"`
		Subject       *manifestDescriptor  `json:"subject"`
	}
	if err := json.Unmarshal(payload, &m); err != nil {
		return errcode.ErrorCodeManifestInvalid.WithDetail(err.Error())
	}
	invalid := func(format string, args ...any) error {
		return errcode.ErrorCodeManifestInvalid.WithDetail(fmt.Sprintf(format, args...))
	}
	if m.SchemaVersion != 2 {
		return invalid("schemaVersion is %d: only 2 is supported", m.SchemaVersion)
	}
	if m.MediaType != "" && !mediaTypeRE.MatchString(m.MediaType) {
		return invalid("mediaType %q is not a media type", m.MediaType)
	}
	if m.ArtifactType != "" && !mediaTypeRE.MatchString(m.ArtifactType) {
		return invalid("artifactType %q is not a media type", m.ArtifactType)
	}
	check := func(where string, d manifestDescriptor) error {
		if !mediaTypeRE.MatchString(d.MediaType) {
			return invalid("%s: mediaType %q is not a media type", where, d.MediaType)
		}
		if d.ArtifactType != "" && !mediaTypeRE.MatchString(d.ArtifactType) {
			return invalid("%s: artifactType %q is not a media type", where, d.ArtifactType)
		}
		if _, err := digest.Parse(d.Digest); err != nil {
			return errcode.ErrorCodeDigestInvalid.WithDetail(fmt.Sprintf("%s: digest %q: %v", where, d.Digest, err))
		}
		if d.Size < 0 {
			return invalid("%s: size %d is negative", where, d.Size)
		}
		if len(d.URLs) > 0 {
			return invalid("%s has urls: this registry takes no foreign layers; push the blob itself", where)
		}
		return nil
	}
	if m.Config != nil {
		if err := check("config", *m.Config); err != nil {
			return err
		}
	}
	for i, d := range m.Layers {
		if err := check(fmt.Sprintf("layers[%d]", i), d); err != nil {
			return err
		}
	}
	for i, d := range m.Manifests {
		if err := check(fmt.Sprintf("manifests[%d]", i), d); err != nil {
			return err
		}
	}
	if m.Subject != nil {
		if err := check("subject", *m.Subject); err != nil {
			return err
		}
	}
	return nil
}

// apiError is a distribution-spec error answer.
type apiError struct {
	status int
	code   errcode.ErrorCode
	detail string
}

func (e *apiError) serve(w http.ResponseWriter) {
	w.Header().Set("Content-Type", "application/json; charset=utf-8")
	w.WriteHeader(e.status)
	_ = json.NewEncoder(w).Encode(errcode.Errors{e.code.WithDetail(e.detail)})
}

// route is a request path of the distribution API, split: the
// repository, the endpoint (tags, manifests, blobs, uploads, referrers)
// and what follows it (reference, digest or upload id).
type route struct {
	name, endpoint, ref string
}

var (
	anchoredName = regexp.MustCompile(`^(?:` + reference.NameRegexp.String() + `)$`)
	anchoredTag  = regexp.MustCompile(`^(?:` + reference.TagRegexp.String() + `)$`)
	// uploadIDRE is distribution's pattern of upload ids.
	uploadIDRE = regexp.MustCompile(`^[a-zA-Z0-9-_.=]+$`)
	// contentRangeRE is the spec's Content-Range of a chunk: START-END.
	contentRangeRE = regexp.MustCompile(`^[0-9]{1,18}-[0-9]{1,18}$`)
)

// parseRoute splits the path of a request under /v2/ and checks its
// parts with distribution's own patterns, returning the spec error for a
// path no route of distribution would match. The zero route (and no
// error) is the base, the catalog and what is not under /v2/: paths
// distribution answers itself.
func parseRoute(method, path string) (route, *apiError) {
	rest, ok := strings.CutPrefix(path, "/v2/")
	if !ok || rest == "" || rest == "_catalog" {
		return route{}, nil
	}
	// distribution redirects a path with one slash too many.
	segs := strings.Split(strings.TrimSuffix(rest, "/"), "/")
	n := len(segs)
	join := func(k int) string { return strings.Join(segs[:k], "/") }
	var r route
	switch {
	case n >= 2 && segs[n-2] == "tags" && segs[n-1] == "list":
		r = route{name: join(n - 2), endpoint: "tags"}
	case n >= 2 && segs[n-2] == "blobs" && segs[n-1] == "uploads":
		r = route{name: join(n - 2), endpoint: "uploads"}
	case n >= 3 && segs[n-3] == "blobs" && segs[n-2] == "uploads":
		r = route{name: join(n - 3), endpoint: "uploads", ref: segs[n-1]}
	case n >= 2 && (segs[n-2] == "manifests" || segs[n-2] == "blobs" || segs[n-2] == "referrers"):
		r = route{name: join(n - 2), endpoint: segs[n-2], ref: segs[n-1]}
	default:
		if err := checkName(rest); err != nil {
			return route{}, err
		}
		return route{}, &apiError{http.StatusNotFound, errcode.ErrorCodeUnsupported,
			fmt.Sprintf("no API endpoint %s: use /v2/NAME/manifests/REFERENCE, /v2/NAME/blobs/DIGEST, /v2/NAME/blobs/uploads/ or /v2/NAME/tags/list", path)}
	}
	if err := checkName(r.name); err != nil {
		return route{}, err
	}
	switch r.endpoint {
	case "manifests":
		if strings.Contains(r.ref, ":") {
			if err := checkDigest("reference", r.ref); err != nil {
				return route{}, err
			}
		} else if !anchoredTag.MatchString(r.ref) {
			detail := fmt.Sprintf("reference %q is neither a tag (up to 128 letters, digits, _, . and -, not first . or -) nor a digest", r.ref)
			if method == http.MethodPut {
				return route{}, &apiError{http.StatusBadRequest, errcode.ErrorCodeManifestInvalid, detail}
			}
			return route{}, &apiError{http.StatusNotFound, errcode.ErrorCodeManifestUnknown, detail}
		}
	case "blobs", "referrers":
		if err := checkDigest("digest", r.ref); err != nil {
			return route{}, err
		}
	case "uploads":
		if r.ref != "" && (!uploadIDRE.MatchString(r.ref) || r.ref == "." || r.ref == "..") {
			return route{}, &apiError{http.StatusNotFound, errcode.ErrorCodeBlobUploadUnknown, fmt.Sprintf("upload id %q is not one this registry gives", r.ref)}
		}
	}
	return r, nil
}

func checkName(name string) *apiError {
	if len(name) > reference.RepositoryNameTotalLengthMax {
		return &apiError{http.StatusBadRequest, errcode.ErrorCodeNameInvalid,
			fmt.Sprintf("repository name is %d characters long, more than %d", len(name), reference.RepositoryNameTotalLengthMax)}
	}
	if !anchoredName.MatchString(name) {
		return &apiError{http.StatusBadRequest, errcode.ErrorCodeNameInvalid,
			fmt.Sprintf("repository name %q is invalid: use lower-case path components of letters and digits separated by ., _, __ or -", name)}
	}
	return nil
}

func checkDigest(what, s string) *apiError {
	if _, err := digest.Parse(s); err != nil {
		return &apiError{http.StatusBadRequest, errcode.ErrorCodeDigestInvalid, fmt.Sprintf("%s %q: %v", what, s, err)}
	}
	return nil
}

// checkRequest returns the spec error for a request whose path, query
// parameters or upload headers distribution would answer with a 500, a
// plain-text 404 or an error log; nil for the rest.
func checkRequest(req *http.Request) *apiError {
	r, err := parseRoute(req.Method, req.URL.Path)
	if err != nil || r.endpoint != "uploads" {
		return err
	}
	q := req.URL.Query()
	switch req.Method {
	case http.MethodPost:
		for _, d := range q["digest"] {
			if err := checkDigest("digest", d); err != nil {
				return err
			}
		}
		for _, d := range q["mount"] {
			if err := checkDigest("mount", d); err != nil {
				return err
			}
		}
		for _, from := range q["from"] {
			if err := checkName(from); err != nil {
				err.detail = "from: " + err.detail
				return err
			}
		}
	case http.MethodPatch, http.MethodPut:
		if req.Method == http.MethodPut {
			for _, d := range q["digest"] {
				if err := checkDigest("digest", d); err != nil {
					return err
				}
			}
		}
		if ct := req.Header.Get("Content-Type"); req.Method == http.MethodPatch && ct != "" && ct != "application/octet-stream" {
			return &apiError{http.StatusBadRequest, errcode.ErrorCodeBlobUploadInvalid, fmt.Sprintf("chunk Content-Type %q: send application/octet-stream", ct)}
		}
		if cr := req.Header.Get("Content-Range"); cr != "" {
			start, end, ok := strings.Cut(cr, "-")
			s, serr := strconv.ParseInt(start, 10, 64)
			e, eerr := strconv.ParseInt(end, 10, 64)
			if !ok || !contentRangeRE.MatchString(cr) || serr != nil || eerr != nil || s > e {
				return &apiError{http.StatusBadRequest, errcode.ErrorCodeBlobUploadInvalid, fmt.Sprintf("Content-Range %q: send START-END, the chunk's first and last byte offsets", cr)}
			}
		}
	}
	return nil
}

// requests numbers the requests of every registry, to tell their logs
// apart.
var requests atomic.Uint64

// guard is the registry's HTTP handler: requests checkRequest refuses are
// answered with the spec error; the rest go to distribution under a
// context whose instance id routes distribution's logs of the request
// through a hold that decides their level by the response's status.
func (r *Registry) guard(w http.ResponseWriter, req *http.Request) {
	if err := checkRequest(req); err != nil {
		r.log.Debug("refused a malformed request", "method", req.Method, "uri", req.URL.RequestURI(),
			"status", err.status, "code", err.code.String(), "detail", err.detail)
		err.serve(w)
		return
	}
	id := fmt.Sprintf("%s/%d", r.id, requests.Add(1))
	hold := holdLogs(id, r.log)
	sw := &statusWriter{ResponseWriter: w}
	defer func() { hold.release(sw.status) }()
	// distribution looks the instance id up by this exact string key.
	ctx := context.WithValue(req.Context(), "instance.id", id) //nolint:staticcheck // distribution's key
	r.app.ServeHTTP(sw, req.WithContext(ctx))
}

// statusWriter records the status of a response.
type statusWriter struct {
	http.ResponseWriter
	status int
}

func (w *statusWriter) WriteHeader(code int) {
	if w.status == 0 && code >= 200 {
		w.status = code
	}
	w.ResponseWriter.WriteHeader(code)
}

func (w *statusWriter) Write(b []byte) (int, error) {
	if w.status == 0 {
		w.status = http.StatusOK
	}
	return w.ResponseWriter.Write(b)
}

func (w *statusWriter) Flush() {
	if f, ok := w.ResponseWriter.(http.Flusher); ok {
		f.Flush()
	}
}

func (w *statusWriter) Unwrap() http.ResponseWriter { return w.ResponseWriter }
