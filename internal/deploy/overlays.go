package deploy

import (
	"fmt"
	"sort"

	"k8s.io/apimachinery/pkg/apis/meta/v1/unstructured"

	"github.com/hashbang/stack/internal/cluster"
)

// BaseEnvironment is the environment others are compared with: remote
// environments should deviate from it only through small overlays.
const BaseEnvironment = "development"

// Deviation is how far one environment's render is from the base's.
type Deviation struct {
	Env     string          `json:"env"`
	Objects int             `json:"objects"`
	Added   []string        `json:"added"`
	Removed []string        `json:"removed"`
	Changed []ObjectChanges `json:"changed"`
	// Count is the number of differences: objects added or removed and
	// fields changed.
	Count int `json:"count"`
}

// ObjectChanges are the fields of one object that differ.
type ObjectChanges struct {
	Object  string   `json:"object"`
	Changes []Change `json:"changes"`
}

// Compare renders base and each of envs from t and lists, per environment,
// the objects and fields that differ from base.
func Compare(t *Tree, base *cluster.Environment, envs []*cluster.Environment) ([]Deviation, error) {
	rs, err := renderEnvs(t, append([]*cluster.Environment{base}, envs...))
	if err != nil {
		return nil, err
	}
	var out []Deviation
	for i, env := range envs {
		out = append(out, deviation(env.Name, rs[0].Objects, rs[i+1].Objects))
	}
	return out, nil
}

func deviation(env string, base, objs []*unstructured.Unstructured) Deviation {
	d := Deviation{Env: env, Objects: len(objs), Added: []string{}, Removed: []string{}, Changed: []ObjectChanges{}}
	byID := map[string]*unstructured.Unstructured{}
	for _, u := range base {
		byID[KeyOf(u).ID()] = u
	}
	seen := map[string]bool{}
	for _, u := range objs {
		id := KeyOf(u).ID()
		seen[id] = true
		bu, ok := byID[id]
		if !ok {
			d.Added = append(d.Added, KeyOf(u).String())
			continue
		}
		if ch := Diff(bu.Object, u.Object); len(ch) > 0 {
			d.Changed = append(d.Changed, ObjectChanges{Object: KeyOf(u).String(), Changes: ch})
			d.Count += len(ch)
		}
	}
	for _, u := range base {
		if !seen[KeyOf(u).ID()] {
			d.Removed = append(d.Removed, KeyOf(u).String())
		}
	}
	sort.Strings(d.Added)
	sort.Strings(d.Removed)
	d.Count += len(d.Added) + len(d.Removed)
	return d
}

// Summary is one line: "3 objects, 1 field changed".
func (d Deviation) Summary() string {
	return fmt.Sprintf("%d objects: %d added, %d removed, %d changed (%d differences)", d.Objects, len(d.Added), len(d.Removed), len(d.Changed), d.Count)
}
