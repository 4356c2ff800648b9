package image

import (
	"archive/tar"
	"bytes"
	"compress/gzip"
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"fmt"
	"maps"
	"os"
	"path"
	"sort"
	"strings"
	"time"

	v1 "github.com/google/go-containerregistry/pkg/v1"
	"github.com/google/go-containerregistry/pkg/v1/types"
)

// CreatedByPrefix starts the history entry of every layer this package
// makes; the audit refuses layers whose history says otherwise.
const CreatedByPrefix = "stack build: "

// Platform is the only platform images are built for.
var Platform = v1.Platform{OS: "linux", Architecture: "amd64"}

// gzipLevel is fixed: the compressed bytes, and so the layer digests, depend
// on it. 6 is the standard default; 9 made the health image 0.3% smaller
// and its assembly 3.5 times slower.
const gzipLevel = 6

// Assemble builds def's image FROM scratch: one layer per definition in the
// chain that declares files or dirs (base first), then one layer holding
// every binary of the chain. binaries maps each binary's path in the image
// to the built file; it must name exactly the chain's binaries. Every
// timestamp in the image is epoch; nothing else (file times, owners on
// disk, umask, time zone) reaches it.
func Assemble(def *Definition, binaries map[string]string, epoch time.Time) (v1.Image, error) {
	epoch = epoch.UTC().Truncate(time.Second)
	if epoch.Unix() < 0 || epoch.Year() > 2200 {
		return nil, fmt.Errorf("assemble %s: epoch %s is out of range", def.Name, epoch)
	}
	chain := def.Chain()
	want := map[string]Binary{}
	for _, b := range def.AllBinaries() {
		want[b.Path] = b
	}
	for p := range binaries {
		if _, ok := want[p]; !ok {
			return nil, fmt.Errorf("assemble %s: a binary was given for %s, which no definition in its chain declares", def.Name, p)
		}
	}
	for p, b := range want {
		if _, ok := binaries[p]; !ok {
			return nil, fmt.Errorf("assemble %s: no built binary given for %s (%s)", def.Name, p, b.Package)
		}
	}

	var (
		layers  []*builtLayer
		history []v1.History
		dirs    = map[string]Dir{} // declared so far, for implicit parents
	)
	for _, d := range chain {
		for _, dir := range d.Dirs {
			dirs[dir.Path] = dir
		}
		h := v1.History{Created: v1.Time{Time: epoch}, CreatedBy: CreatedByPrefix + d.Name}
		if len(d.Files) == 0 && len(d.Dirs) == 0 {
			h.EmptyLayer = true
			history = append(history, h)
			continue
		}
		var ents []entry
		for _, dir := range d.Dirs {
			ents = append(ents, entry{path: dir.Path, dir: true, mode: dir.Mode, owner: dir.Owner})
		}
		for _, f := range d.Files {
			ents = append(ents, entry{path: f.Path, mode: f.Mode, owner: f.Owner, data: f.Data})
		}
		l, err := layer(ents, dirs, epoch)
		if err != nil {
			return nil, fmt.Errorf("assemble %s: layer of %s: %w", def.Name, d.Name, err)
		}
		h.Comment = fmt.Sprintf("%d files and directories from images/%s", len(ents), d.Name)
		layers = append(layers, l)
		history = append(history, h)
	}
	if len(want) > 0 {
		var ents []entry
		var what []string
		for _, p := range sortedKeys(want) {
			data, err := os.ReadFile(binaries[p])
			if err != nil {
				return nil, fmt.Errorf("assemble %s: binary %s: %w", def.Name, p, err)
			}
			ents = append(ents, entry{path: p, mode: 0o755, data: data})
			b := want[p]
			for _, l := range b.Links {
				ents = append(ents, entry{path: l, mode: 0o755, link: p})
			}
			src := b.Package
			if b.Source != "" {
				src = b.Source + ":" + b.Package
			}
			what = append(what, src+" -> "+p)
		}
		l, err := layer(ents, dirs, epoch)
		if err != nil {
			return nil, fmt.Errorf("assemble %s: binaries layer: %w", def.Name, err)
		}
		h := v1.History{
			Created:   v1.Time{Time: epoch},
			CreatedBy: CreatedByPrefix + def.Name + " binaries",
			Comment:   strings.Join(what, ", "),
		}
		layers = append(layers, l)
		history = append(history, h)
	}

	img, err := image(layers, &v1.ConfigFile{
		Architecture: Platform.Architecture,
		OS:           Platform.OS,
		Created:      v1.Time{Time: epoch},
		RootFS:       v1.RootFS{Type: "layers"},
		History:      history,
		Config:       runConfig(chain),
	})
	if err != nil {
		return nil, fmt.Errorf("assemble %s: %w", def.Name, err)
	}
	return img, nil
}

// runConfig merges the chain's run settings: a later definition's user,
// entrypoint, cmd and workdir replace its base's (setting entrypoint also
// drops an inherited cmd, as Docker does); env and labels are merged by
// name; ports and volumes are united.
func runConfig(chain []*Definition) v1.Config {
	var c v1.Config
	env := map[string]string{}
	labels := map[string]string{}
	ports := map[string]struct{}{}
	vols := map[string]struct{}{}
	for _, d := range chain {
		if d.User != nil {
			c.User = d.User.String()
		}
		if d.Set["entrypoint"] {
			c.Entrypoint = d.Entrypoint
			c.Cmd = nil
		}
		if d.Set["cmd"] {
			c.Cmd = d.Cmd
		}
		if d.Workdir != "" {
			c.WorkingDir = d.Workdir
		}
		maps.Copy(env, d.Env)
		maps.Copy(labels, d.Labels)
		for _, p := range d.Ports {
			ports[p] = struct{}{}
		}
		for _, v := range d.Volumes {
			vols[v] = struct{}{}
		}
	}
	if len(c.Entrypoint) == 0 {
		c.Entrypoint = nil
	}
	if len(c.Cmd) == 0 {
		c.Cmd = nil
	}
	for _, k := range sortedKeys(env) {
		c.Env = append(c.Env, k+"="+env[k])
	}
	if len(labels) > 0 {
		c.Labels = labels
	}
	if len(ports) > 0 {
		c.ExposedPorts = ports
	}
	if len(vols) > 0 {
		c.Volumes = vols
	}
	return c
}

// entry is one file or directory of a layer.
type entry struct {
	path  string // absolute
	dir   bool
	mode  Mode
	owner Owner
	data  []byte
	link  string // when set, a hard link to this absolute path of the layer
}

// layer writes entries, and every parent directory they need, as a tar
// with normalized headers, compresses it and returns it as an OCI layer.
// A parent directory not among the entries takes its mode and owner from
// dirs (the chain's declarations so far), else 0755 root.
func layer(ents []entry, dirs map[string]Dir, epoch time.Time) (*builtLayer, error) {
	all := map[string]entry{}
	for _, e := range ents {
		all[e.path] = e
	}
	for _, e := range ents {
		for p := path.Dir(e.path); p != "/"; p = path.Dir(p) {
			if _, ok := all[p]; ok {
				continue
			}
			parent := entry{path: p, dir: true, mode: 0o755}
			if d, ok := dirs[p]; ok {
				parent.mode, parent.owner = d.Mode, d.Owner
			}
			all[p] = parent
		}
	}
	// Hard links come after everything else, so that their targets are
	// written before them.
	names := sortedKeys(all)
	sort.SliceStable(names, func(i, j int) bool { return all[names[i]].link == "" && all[names[j]].link != "" })
	var raw bytes.Buffer
	tw := tar.NewWriter(&raw)
	for _, name := range names {
		e := all[name]
		h := &tar.Header{
			Name:    strings.TrimPrefix(e.path, "/"),
			Mode:    int64(e.mode),
			Uid:     e.owner.UID,
			Gid:     e.owner.GID,
			ModTime: epoch,
			Format:  tar.FormatUSTAR,
		}
		switch {
		case e.dir:
			h.Typeflag = tar.TypeDir
			h.Name += "/"
		case e.link != "":
			if _, ok := all[e.link]; !ok || all[e.link].dir || all[e.link].link != "" {
				return nil, fmt.Errorf("%s: hard link to %s, which is not a file of the layer", e.path, e.link)
			}
			h.Typeflag = tar.TypeLink
			h.Linkname = strings.TrimPrefix(e.link, "/")
		default:
			h.Typeflag = tar.TypeReg
			h.Size = int64(len(e.data))
		}
		if err := tw.WriteHeader(h); err != nil {
			return nil, fmt.Errorf("%s: %w", e.path, err)
		}
		if _, err := tw.Write(e.data); err != nil {
			return nil, fmt.Errorf("%s: %w", e.path, err)
		}
	}
	if err := tw.Close(); err != nil {
		return nil, err
	}
	var gz bytes.Buffer
	zw, err := gzip.NewWriterLevel(&gz, gzipLevel)
	if err != nil {
		return nil, err
	}
	if _, err := zw.Write(raw.Bytes()); err != nil {
		return nil, err
	}
	if err := zw.Close(); err != nil {
		return nil, err
	}
	return &builtLayer{blob: gz.Bytes(), diffID: sha256Hash(raw.Bytes())}, nil
}

// builtLayer is a compressed layer and the digest of its uncompressed tar.
type builtLayer struct {
	blob   []byte
	diffID v1.Hash
}

func sha256Hash(b []byte) v1.Hash {
	sum := sha256.Sum256(b)
	return v1.Hash{Algorithm: "sha256", Hex: hex.EncodeToString(sum[:])}
}

// image writes the manifest and config of layers and returns the image,
// held in memory.
func image(layers []*builtLayer, cfg *v1.ConfigFile) (v1.Image, error) {
	s := memStore{files: map[string][]byte{}}
	put := func(b []byte) v1.Hash {
		h := sha256Hash(b)
		s.files["blobs/sha256/"+h.Hex] = b
		return h
	}
	m := v1.Manifest{SchemaVersion: 2, MediaType: types.OCIManifestSchema1}
	for _, l := range layers {
		cfg.RootFS.DiffIDs = append(cfg.RootFS.DiffIDs, l.diffID)
		m.Layers = append(m.Layers, v1.Descriptor{MediaType: types.OCILayer, Size: int64(len(l.blob)), Digest: put(l.blob)})
	}
	rawConfig, err := json.Marshal(cfg)
	if err != nil {
		return nil, err
	}
	m.Config = v1.Descriptor{MediaType: types.OCIConfigJSON, Size: int64(len(rawConfig)), Digest: put(rawConfig)}
	rawManifest, err := json.Marshal(m)
	if err != nil {
		return nil, err
	}
	return openImage(s, v1.Descriptor{MediaType: types.OCIManifestSchema1, Size: int64(len(rawManifest)), Digest: put(rawManifest)})
}

func sortedKeys[V any](m map[string]V) []string { return keys(m) }
