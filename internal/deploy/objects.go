package deploy

import (
	"fmt"
	"reflect"
	"sort"
	"strconv"
	"strings"

	"k8s.io/apimachinery/pkg/apis/meta/v1/unstructured"
	"k8s.io/apimachinery/pkg/runtime/schema"
)

// Key names one object: its API version and kind, namespace (empty for a
// cluster-scoped object) and name.
type Key struct {
	APIVersion string `json:"apiVersion"`
	Kind       string `json:"kind"`
	Namespace  string `json:"namespace,omitempty"`
	Name       string `json:"name"`
}

// KeyOf returns the key of u.
func KeyOf(u *unstructured.Unstructured) Key {
	return Key{APIVersion: u.GetAPIVersion(), Kind: u.GetKind(), Namespace: u.GetNamespace(), Name: u.GetName()}
}

// GroupKind is the key's API group and kind.
func (k Key) GroupKind() schema.GroupKind {
	return schema.FromAPIVersionAndKind(k.APIVersion, k.Kind).GroupKind()
}

// ID is the key without the API version: the same object read through
// another version has the same ID.
func (k Key) ID() string {
	gk := k.GroupKind()
	return gk.Group + "/" + gk.Kind + "/" + k.Namespace + "/" + k.Name
}

// String names the object for people: Deployment.apps health/health,
// Namespace health.
func (k Key) String() string {
	kind := k.Kind
	if g := k.GroupKind().Group; g != "" {
		kind += "." + g
	}
	if k.Namespace == "" {
		return kind + " " + k.Name
	}
	return kind + " " + k.Namespace + "/" + k.Name
}

// ClusterDir is the state repo directory of cluster-scoped objects; no
// namespace can be called so.
const ClusterDir = "_cluster"

// Path is where the object is kept in the state repo:
// NAMESPACE/KIND[.GROUP]/NAME.yaml, cluster-scoped ones under _cluster/.
func (k Key) Path() string {
	ns := k.Namespace
	if ns == "" {
		ns = ClusterDir
	}
	kind := strings.ToLower(k.Kind)
	if g := k.GroupKind().Group; g != "" {
		kind += "." + g
	}
	return ns + "/" + kind + "/" + k.Name + ".yaml"
}

// clusterOwned are the metadata fields the API server writes; they are
// neither deployed nor recorded nor compared.
var clusterOwned = []string{"uid", "resourceVersion", "generation", "creationTimestamp", "managedFields", "selfLink", "deletionTimestamp", "deletionGracePeriodSeconds"}

// controllerAnnotations are annotations controllers write on objects they
// reconcile.
var controllerAnnotations = []string{
	"deployment.kubernetes.io/revision",
	"kubectl.kubernetes.io/last-applied-configuration",
}

// Clean returns a copy of a live object without what the cluster owns:
// status, server-written metadata and controllers' annotations, and with
// the values of a Secret's generated and captured keys redacted. What is
// left is what the state repo records and diff compares.
func Clean(u *unstructured.Unstructured) *unstructured.Unstructured {
	c := u.DeepCopy()
	delete(c.Object, "status")
	for _, f := range clusterOwned {
		unstructured.RemoveNestedField(c.Object, "metadata", f)
	}
	if a := c.GetAnnotations(); a != nil {
		for _, k := range controllerAnnotations {
			delete(a, k)
		}
		if len(a) == 0 {
			unstructured.RemoveNestedField(c.Object, "metadata", "annotations")
		} else {
			c.SetAnnotations(a)
		}
	}
	redactSecret(c) // generated and captured values (generate.go)
	return c
}

// Change is one field that differs between two versions of an object.
// From or To is nil where the field is absent.
type Change struct {
	Path string `json:"path"`
	From any    `json:"from"`
	To   any    `json:"to"`
}

// String is "PATH: FROM → TO".
func (c Change) String() string {
	return c.Path + ": " + showValue(c.From) + " → " + showValue(c.To)
}

func showValue(v any) string {
	if v == nil {
		return "(none)"
	}
	switch v := v.(type) {
	case string:
		return strconv.Quote(v)
	case map[string]any, []any:
		s := fmt.Sprintf("%v", v)
		if len(s) > 60 {
			s = s[:57] + "..."
		}
		return s
	}
	return fmt.Sprint(v)
}

// Diff lists the fields in which b differs from a, sorted by path. Lists of
// objects that all carry a name (containers, ports, env) are compared by
// name (containers[health].image), other lists by index.
func Diff(a, b map[string]any) []Change {
	var out []Change
	diffValue("", a, b, &out)
	sort.SliceStable(out, func(i, j int) bool { return out[i].Path < out[j].Path })
	return out
}

func diffValue(p string, a, b any, out *[]Change) {
	if a == nil && b == nil {
		return
	}
	am, aok := a.(map[string]any)
	bm, bok := b.(map[string]any)
	if aok && bok {
		keys := map[string]bool{}
		for k := range am {
			keys[k] = true
		}
		for k := range bm {
			keys[k] = true
		}
		for k := range keys {
			diffValue(joinPath(p, k), am[k], bm[k], out)
		}
		return
	}
	al, aok := a.([]any)
	bl, bok := b.([]any)
	if aok && bok {
		if an, bn := names(al), names(bl); an != nil && bn != nil {
			seen := map[string]bool{}
			for _, n := range append(an.order, bn.order...) {
				if seen[n] {
					continue
				}
				seen[n] = true
				diffValue(p+"["+n+"]", an.items[n], bn.items[n], out)
			}
			return
		}
		if len(al) == len(bl) {
			for i := range al {
				diffValue(p+"["+strconv.Itoa(i)+"]", al[i], bl[i], out)
			}
			return
		}
	}
	if !equalValue(a, b) {
		*out = append(*out, Change{Path: p, From: a, To: b})
	}
}

// equalValue compares decoded JSON values, taking numbers of different Go
// types (int64 from the API, float64 from YAML) as equal when they are.
func equalValue(a, b any) bool {
	if af, ok := number(a); ok {
		bf, ok := number(b)
		return ok && af == bf
	}
	return reflect.DeepEqual(a, b)
}

func number(v any) (float64, bool) {
	switch v := v.(type) {
	case int:
		return float64(v), true
	case int32:
		return float64(v), true
	case int64:
		return float64(v), true
	case float64:
		return v, true
	case float32:
		return float64(v), true
	}
	return 0, false
}

type named struct {
	order []string
	items map[string]any
}

// names indexes a list of objects by their "name" field; nil when some item
// has none or two share one.
func names(l []any) *named {
	if len(l) == 0 {
		return nil
	}
	n := &named{items: map[string]any{}}
	for _, e := range l {
		m, ok := e.(map[string]any)
		if !ok {
			return nil
		}
		s, ok := m["name"].(string)
		if !ok || n.items[s] != nil {
			return nil
		}
		n.order = append(n.order, s)
		n.items[s] = m
	}
	return n
}

func joinPath(p, k string) string {
	if strings.ContainsAny(k, ".[]") {
		k = "[" + strconv.Quote(k) + "]"
		return p + k
	}
	if p == "" {
		return k
	}
	return p + "." + k
}
