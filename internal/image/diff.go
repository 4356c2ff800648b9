package image

import (
	"archive/tar"
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"reflect"
	"sort"
	"strings"

	v1 "github.com/google/go-containerregistry/pkg/v1"
)

// Entry is one file, directory or link of a layer, as a diff compares it.
type Entry struct {
	Path   string `json:"path"`
	Type   string `json:"type"` // file, dir, symlink, link, other
	Mode   string `json:"mode"` // octal, with setuid/setgid/sticky bits
	Owner  string `json:"owner"`
	Size   int64  `json:"size"`
	SHA256 string `json:"sha256,omitempty"`
	Link   string `json:"link,omitempty"`
	// Header holds the tar header fields that should never vary (times,
	// names, format); a difference there is a difference too.
	Header string `json:"header"`
}

// FileChange is a path that differs between two images' layers. A or B is
// nil when the path is in only one of them.
type FileChange struct {
	Layer int    `json:"layer"` // 1-based
	Path  string `json:"path"`
	A     *Entry `json:"a,omitempty"`
	B     *Entry `json:"b,omitempty"`
}

// Change is a difference in the manifest, config or layer blobs.
type Change struct {
	Field string `json:"field"`
	A     string `json:"a"`
	B     string `json:"b"`
}

// Difference explains why two images differ.
type Difference struct {
	DigestA string       `json:"digest_a"`
	DigestB string       `json:"digest_b"`
	Changes []Change     `json:"changes,omitempty"`
	Files   []FileChange `json:"files,omitempty"`
}

// Equal reports whether nothing differs.
func (d *Difference) Equal() bool {
	return d.DigestA == d.DigestB && len(d.Changes) == 0 && len(d.Files) == 0
}

// String prints the difference for people, one change a line.
func (d *Difference) String() string {
	var b strings.Builder
	fmt.Fprintf(&b, "image digests: %s vs %s\n", d.DigestA, d.DigestB)
	for _, c := range d.Changes {
		fmt.Fprintf(&b, "%s: %s vs %s\n", c.Field, c.A, c.B)
	}
	for _, f := range d.Files {
		fmt.Fprintf(&b, "layer %d %s: %s vs %s\n", f.Layer, f.Path, f.A, f.B)
	}
	return b.String()
}

func (e *Entry) String() string {
	if e == nil {
		return "absent"
	}
	s := fmt.Sprintf("%s %s %s %d", e.Type, e.Mode, e.Owner, e.Size)
	if e.SHA256 != "" {
		s += " sha256:" + e.SHA256[:16]
	}
	if e.Link != "" {
		s += " -> " + e.Link
	}
	return s + " " + e.Header
}

// Diff compares two images: manifest and layer blobs, config fields, and
// layer by layer every file's type, mode, owner, size, content hash and
// header fields.
func Diff(a, b v1.Image) (*Difference, error) {
	da, err := a.Digest()
	if err != nil {
		return nil, err
	}
	db, err := b.Digest()
	if err != nil {
		return nil, err
	}
	d := &Difference{DigestA: da.String(), DigestB: db.String()}
	change := func(field string, x, y any) {
		sx, sy := fmt.Sprint(x), fmt.Sprint(y)
		if sx != sy {
			d.Changes = append(d.Changes, Change{Field: field, A: sx, B: sy})
		}
	}
	ma, err := a.Manifest()
	if err != nil {
		return nil, err
	}
	mb, err := b.Manifest()
	if err != nil {
		return nil, err
	}
	change("manifest media type", ma.MediaType, mb.MediaType)
	change("config digest", ma.Config.Digest, mb.Config.Digest)
	change("layer count", len(ma.Layers), len(mb.Layers))
	change("manifest annotations", ma.Annotations, mb.Annotations)

	ca, err := a.RawConfigFile()
	if err != nil {
		return nil, err
	}
	cb, err := b.RawConfigFile()
	if err != nil {
		return nil, err
	}
	var ja, jb any
	if err := json.Unmarshal(ca, &ja); err != nil {
		return nil, fmt.Errorf("config: %w", err)
	}
	if err := json.Unmarshal(cb, &jb); err != nil {
		return nil, fmt.Errorf("config: %w", err)
	}
	jsonDiff("config", ja, jb, change)

	la, err := a.Layers()
	if err != nil {
		return nil, err
	}
	lb, err := b.Layers()
	if err != nil {
		return nil, err
	}
	for i := 0; i < max(len(la), len(lb)); i++ {
		var ea, eb map[string]*Entry
		var ga, gb string
		if i < len(la) {
			if ea, ga, err = layerEntries(la[i]); err != nil {
				return nil, fmt.Errorf("first image, layer %d: %w", i+1, err)
			}
		}
		if i < len(lb) {
			if eb, gb, err = layerEntries(lb[i]); err != nil {
				return nil, fmt.Errorf("second image, layer %d: %w", i+1, err)
			}
		}
		before := len(d.Files)
		for _, p := range unionKeys(ea, eb) {
			x, y := ea[p], eb[p]
			if x == nil || y == nil || *x != *y {
				d.Files = append(d.Files, FileChange{Layer: i + 1, Path: p, A: x, B: y})
			}
		}
		if len(d.Files) == before && i < len(la) && i < len(lb) {
			// Same files: the difference, if any, is in the tar or gzip
			// bytes around them.
			change(fmt.Sprintf("layer %d uncompressed digest", i+1), ga, gb)
			za, _ := la[i].Digest()
			zb, _ := lb[i].Digest()
			change(fmt.Sprintf("layer %d compressed digest", i+1), za, zb)
		}
	}
	return d, nil
}

// layerEntries reads a layer's entries and its uncompressed digest.
func layerEntries(l v1.Layer) (map[string]*Entry, string, error) {
	rc, err := l.Uncompressed()
	if err != nil {
		return nil, "", err
	}
	defer rc.Close()
	whole := sha256.New()
	tr := tar.NewReader(io.TeeReader(rc, whole))
	ents := map[string]*Entry{}
	for {
		h, err := tr.Next()
		if errors.Is(err, io.EOF) {
			break
		}
		if err != nil {
			return nil, "", err
		}
		p := "/" + strings.TrimSuffix(strings.TrimPrefix(strings.TrimPrefix(h.Name, "./"), "/"), "/")
		e := &Entry{
			Path:  p,
			Mode:  fmt.Sprintf("%04o", h.Mode&0o7777),
			Owner: fmt.Sprintf("%d:%d", h.Uid, h.Gid),
			Size:  h.Size,
			Link:  h.Linkname,
			Header: fmt.Sprintf("mtime=%d uname=%q gname=%q format=%v pax=%d",
				h.ModTime.Unix(), h.Uname, h.Gname, h.Format, len(h.PAXRecords)),
		}
		switch h.Typeflag {
		case tar.TypeReg:
			e.Type = "file"
			fh := sha256.New()
			if _, err := io.Copy(fh, tr); err != nil {
				return nil, "", err
			}
			e.SHA256 = hex.EncodeToString(fh.Sum(nil))
		case tar.TypeDir:
			e.Type = "dir"
		case tar.TypeSymlink:
			e.Type = "symlink"
		case tar.TypeLink:
			e.Type = "link"
		default:
			e.Type = fmt.Sprintf("type %q", h.Typeflag)
		}
		if prev, dup := ents[p]; dup {
			e.Header += " (also " + prev.String() + ")"
		}
		ents[p] = e
	}
	io.Copy(whole, rc) // padding after the end of the archive
	return ents, "sha256:" + hex.EncodeToString(whole.Sum(nil)), nil
}

// jsonDiff reports the leaves that differ between two decoded JSON values.
func jsonDiff(at string, a, b any, change func(field string, x, y any)) {
	ma, oka := a.(map[string]any)
	mb, okb := b.(map[string]any)
	if oka && okb {
		for _, k := range unionKeys(ma, mb) {
			jsonDiff(at+"."+k, ma[k], mb[k], change)
		}
		return
	}
	sa, oka := a.([]any)
	sb, okb := b.([]any)
	if oka && okb && len(sa) == len(sb) {
		for i := range sa {
			jsonDiff(fmt.Sprintf("%s[%d]", at, i), sa[i], sb[i], change)
		}
		return
	}
	if !reflect.DeepEqual(a, b) {
		change(at, compact(a), compact(b))
	}
}

func compact(v any) string {
	if v == nil {
		return "absent"
	}
	b, _ := json.Marshal(v)
	return string(b)
}

func unionKeys[V any](a, b map[string]V) []string {
	var ks []string
	for k := range a {
		ks = append(ks, k)
	}
	for k := range b {
		if _, ok := a[k]; !ok {
			ks = append(ks, k)
		}
	}
	sort.Strings(ks)
	return ks
}
