package deploy

import (
	"bytes"
	"errors"
	"fmt"
	"path"
	"path/filepath"
	"sort"
	"strings"

	"github.com/fluxcd/pkg/ssa"
	"k8s.io/apimachinery/pkg/apis/meta/v1/unstructured"
	"sigs.k8s.io/kustomize/api/konfig"
	sigsyaml "sigs.k8s.io/yaml"

	"github.com/hashbang/stack/internal/cluster"
)

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
// Every kustomization of t is checked first (checkKustomizations): a path
// that names a URL or leaves the tree is refused. kustomize then runs in
// the offline renderer (offline.go), which cannot reach the network.
func Render(t *Tree, env *cluster.Environment) (*Rendered, error) {
	rs, err := renderEnvs(t, []*cluster.Environment{env})
	if err != nil {
		return nil, err
	}
	return rs[0], nil
}

// renderEnvs renders envs of t with one run of the offline renderer.
func renderEnvs(t *Tree, envs []*cluster.Environment) ([]*Rendered, error) {
	roots := make([]string, len(envs))
	for i, env := range envs {
		roots[i] = "/infra/" + env.Name
		if !hasKustomization(t, roots[i]) {
			return nil, fmt.Errorf("infra/%s has no kustomization.yaml: add one listing the pods/ it deploys (resources: [../../pods/health])", env.Name)
		}
	}
	if err := checkKustomizations(t); err != nil {
		return nil, err
	}
	results, err := kustomizeOffline(t, roots)
	if err != nil {
		return nil, err
	}
	out := make([]*Rendered, len(envs))
	for i, env := range envs {
		if out[i], err = rendered(t, env, results[i]); err != nil {
			return nil, err
		}
	}
	return out, nil
}

// rendered is env's Rendered from the offline renderer's result.
func rendered(t *Tree, env *cluster.Environment, res offlineResult) (*Rendered, error) {
	if res.Error != "" {
		return nil, fmt.Errorf("render infra/%s: %s", env.Name, strings.ReplaceAll(res.Error, "\n", " "))
	}
	r := &Rendered{Env: env.Name, Commit: t.Commit, Dirty: t.Dirty, Images: map[string]string{}}
	seen := map[string]bool{}
	for _, data := range res.Objects {
		// Through JSON, so that numbers are int64 or float64 as in objects
		// read from the API server.
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
	for _, f := range konfig.RecognizedKustomizationFileNames() {
		if t.fs.Exists(dir + "/" + f) {
			return true
		}
	}
	return false
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
