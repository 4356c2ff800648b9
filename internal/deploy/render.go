package deploy

import (
	"bytes"
	"errors"
	"fmt"
	"io/fs"
	"path"
	"path/filepath"
	"sort"
	"strings"

	"github.com/fluxcd/pkg/ssa"
	"go.yaml.in/yaml/v3"
	"k8s.io/apimachinery/pkg/apis/meta/v1/unstructured"
	"sigs.k8s.io/kustomize/api/krusty"
	"sigs.k8s.io/kustomize/api/types"
	sigsyaml "sigs.k8s.io/yaml"

	"github.com/hashbang/stack/internal/cluster"
)

// kustomizationFiles are the names kustomize reads in a directory.
var kustomizationFiles = []string{"kustomization.yaml", "kustomization.yml", "Kustomization"}

// Rendered is an environment's manifests, images pinned, in apply order.
type Rendered struct {
	Env     string
	Commit  string
	Dirty   bool
	Objects []*unstructured.Unstructured
	// Images maps each image of the lock that the objects use to the
	// reference they were pinned to.
	Images map[string]string
}

// Render builds infra/ENV/ of t and pins its images for env's registry.
func Render(t *Tree, env *cluster.Environment) (*Rendered, error) {
	dir := "/infra/" + env.Name
	if !hasKustomization(t, dir) {
		return nil, fmt.Errorf("infra/%s has no kustomization.yaml: add one listing the pods/ it deploys (resources: [../../pods/health])", env.Name)
	}
	if err := checkLocal(t); err != nil {
		return nil, err
	}
	opts := krusty.MakeDefaultOptions()
	opts.LoadRestrictions = types.LoadRestrictionsRootOnly
	opts.PluginConfig = types.DisabledPluginConfig()
	m, err := krusty.MakeKustomizer(opts).Run(t.fs, dir)
	if err != nil {
		return nil, fmt.Errorf("render infra/%s: %s", env.Name, strings.ReplaceAll(err.Error(), "\n", " "))
	}
	r := &Rendered{Env: env.Name, Commit: t.Commit, Dirty: t.Dirty, Images: map[string]string{}}
	seen := map[string]bool{}
	for _, res := range m.Resources() {
		// Through JSON, so that numbers are int64 or float64 as in objects
		// read from the API server.
		data, err := res.MarshalJSON()
		if err != nil {
			return nil, fmt.Errorf("render infra/%s: %w", env.Name, err)
		}
		u := &unstructured.Unstructured{}
		if err := u.UnmarshalJSON(data); err != nil {
			return nil, fmt.Errorf("render infra/%s: %w", env.Name, err)
		}
		if u.GetAPIVersion() == "" || u.GetKind() == "" || u.GetName() == "" {
			return nil, fmt.Errorf("render infra/%s: an object lacks apiVersion, kind or metadata.name: %.200s", env.Name, oneLine(u))
		}
		k := KeyOf(u).String()
		if seen[k] {
			return nil, fmt.Errorf("render infra/%s: %s is rendered twice: keep one", env.Name, k)
		}
		seen[k] = true
		if err := pinImages(u, env.Registry, t.Lock, r.Images); err != nil {
			return nil, err
		}
		if err := nodeVolume(u, env); err != nil {
			return nil, err
		}
		r.Objects = append(r.Objects, u)
	}
	Sort(r.Objects)
	return r, nil
}

// nodeVolume resolves the hostPath of a PersistentVolume of a local
// environment that is relative (volumes/NAME) against the node's data
// directory, so that the data lives with the node (and `stack down --purge`
// deletes it). Elsewhere a relative hostPath is an error: no node directory
// exists to resolve it against.
func nodeVolume(u *unstructured.Unstructured, env *cluster.Environment) error {
	if u.GetKind() != "PersistentVolume" || u.GroupVersionKind().Group != "" {
		return nil
	}
	p, ok, _ := unstructured.NestedString(u.Object, "spec", "hostPath", "path")
	if !ok || path.IsAbs(p) {
		return nil
	}
	clean := path.Clean(p)
	if p == "" || clean == "." || clean == ".." || strings.HasPrefix(clean, "../") {
		return fmt.Errorf("render infra/%s: PersistentVolume %s: hostPath %q must be a directory below the node's data directory (volumes/NAME) or absolute", env.Name, u.GetName(), p)
	}
	if env.Backend != cluster.Local || env.NodeDir == "" {
		return fmt.Errorf("render infra/%s: PersistentVolume %s: hostPath %q is relative, which only a local environment's node resolves: give an absolute path or another volume source", env.Name, u.GetName(), p)
	}
	return unstructured.SetNestedField(u.Object, path.Join(filepath.ToSlash(env.NodeDir), clean), "spec", "hostPath", "path")
}

// NodeVolumes are the directories of a local environment's node that its
// PersistentVolumes use (hostPaths under env.NodeDir), for `stack up` to
// create.
func NodeVolumes(r *Rendered, env *cluster.Environment) []string {
	var out []string
	if env.NodeDir == "" {
		return nil
	}
	prefix := filepath.ToSlash(env.NodeDir) + "/"
	for _, u := range r.Objects {
		if u.GetKind() != "PersistentVolume" {
			continue
		}
		if p, ok, _ := unstructured.NestedString(u.Object, "spec", "hostPath", "path"); ok && strings.HasPrefix(p, prefix) {
			out = append(out, filepath.FromSlash(p))
		}
	}
	return out
}

// Sort puts objects in apply order: CRDs and namespaces first, then by
// kind, namespace and name (fluxcd/pkg/ssa's order).
func Sort(objs []*unstructured.Unstructured) {
	sort.Stable(ssa.SortableUnstructureds(objs))
}

// YAML is the rendered objects as one YAML stream, keys sorted.
func (r *Rendered) YAML() ([]byte, error) {
	return YAMLStream(r.Objects)
}

// YAMLStream writes objects as YAML documents separated by ---.
func YAMLStream(objs []*unstructured.Unstructured) ([]byte, error) {
	var b bytes.Buffer
	for i, u := range objs {
		data, err := sigsyaml.Marshal(u.Object)
		if err != nil {
			return nil, fmt.Errorf("%s: %w", KeyOf(u), err)
		}
		if i > 0 {
			b.WriteString("---\n")
		}
		b.Write(data)
	}
	return b.Bytes(), nil
}

func hasKustomization(t *Tree, dir string) bool {
	for _, f := range kustomizationFiles {
		if t.fs.Exists(dir + "/" + f) {
			return true
		}
	}
	return false
}

// checkLocal refuses kustomizations that reach beyond the tree: every
// resource, component and base must be a file or directory of pods/ or
// infra/. Remote bases (git URLs) would be fetched from the network,
// unpinned.
func checkLocal(t *Tree) error {
	var files []string
	err := t.fs.Walk("/", func(p string, info fs.FileInfo, err error) error {
		if err != nil {
			return err
		}
		for _, f := range kustomizationFiles {
			if !info.IsDir() && path.Base(p) == f {
				files = append(files, p)
			}
		}
		return nil
	})
	if err != nil {
		return err
	}
	sort.Strings(files)
	for _, f := range files {
		data, err := t.fs.ReadFile(f)
		if err != nil {
			return err
		}
		var k struct {
			Resources  []string `yaml:"resources"`
			Components []string `yaml:"components"`
			Bases      []string `yaml:"bases"`
		}
		if err := yaml.Unmarshal(data, &k); err != nil {
			return fmt.Errorf("%s: %s", strings.TrimPrefix(f, "/"), strings.TrimPrefix(err.Error(), "yaml: "))
		}
		for _, e := range append(append(k.Resources, k.Components...), k.Bases...) {
			p := path.Join(path.Dir(f), e)
			if strings.Contains(e, "://") || strings.HasPrefix(e, "git@") || strings.Contains(e, "?ref=") || !t.fs.Exists(p) {
				return fmt.Errorf("%s: resource %q is not a file or directory of %s/: vendor it into pods/ (remote bases are not pinned)", strings.TrimPrefix(f, "/"), e, strings.Join(TreeDirs, "/ or "))
			}
		}
	}
	return nil
}

func oneLine(u *unstructured.Unstructured) string {
	data, err := sigsyaml.Marshal(u.Object)
	if err != nil {
		return err.Error()
	}
	return strings.Join(strings.Fields(string(data)), " ")
}

// errorList joins errors one per line.
func errorList(errs []error) error {
	return errors.Join(errs...)
}
