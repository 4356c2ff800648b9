package deploy

import (
	"strings"
	"testing"

	"k8s.io/apimachinery/pkg/apis/meta/v1/unstructured"
)

func TestKeyPath(t *testing.T) {
	for _, tc := range []struct {
		k          Key
		path, name string
	}{
		{Key{"v1", "Namespace", "", "health"}, "_cluster/namespace/health.yaml", "Namespace health"},
		{Key{"apps/v1", "Deployment", "health", "health"}, "health/deployment.apps/health.yaml", "Deployment.apps health/health"},
		{Key{"rbac.authorization.k8s.io/v1", "ClusterRole", "", "view"}, "_cluster/clusterrole.rbac.authorization.k8s.io/view.yaml", "ClusterRole.rbac.authorization.k8s.io view"},
		{Key{"v1", "ConfigMap", "a", "b"}, "a/configmap/b.yaml", "ConfigMap a/b"},
	} {
		if got := tc.k.Path(); got != tc.path {
			t.Errorf("%v: path %s, want %s", tc.k, got, tc.path)
		}
		if got := tc.k.String(); got != tc.name {
			t.Errorf("%v: name %s, want %s", tc.k, got, tc.name)
		}
	}
}

func TestClean(t *testing.T) {
	u := &unstructured.Unstructured{Object: map[string]any{
		"apiVersion": "apps/v1", "kind": "Deployment",
		"metadata": map[string]any{
			"name": "a", "namespace": "b", "uid": "x", "resourceVersion": "1", "generation": int64(2),
			"creationTimestamp": "2026-01-01T00:00:00Z", "managedFields": []any{},
			"annotations": map[string]any{"deployment.kubernetes.io/revision": "3"},
			"labels":      map[string]any{"app": "a"},
		},
		"spec":   map[string]any{"replicas": int64(1)},
		"status": map[string]any{"replicas": int64(1)},
	}}
	c := Clean(u)
	want := map[string]any{"apiVersion": "apps/v1", "kind": "Deployment",
		"metadata": map[string]any{"name": "a", "namespace": "b", "labels": map[string]any{"app": "a"}},
		"spec":     map[string]any{"replicas": int64(1)}}
	if ch := Diff(want, c.Object); len(ch) > 0 {
		t.Errorf("clean: %v", ch)
	}
	if _, ok := u.Object["status"]; !ok {
		t.Error("Clean changed its argument")
	}
}

func TestDiff(t *testing.T) {
	a := map[string]any{
		"spec": map[string]any{
			"replicas": int64(1),
			"containers": []any{
				map[string]any{"name": "web", "image": "a", "ports": []any{map[string]any{"containerPort": int64(80)}}},
				map[string]any{"name": "side", "image": "s"},
			},
			"args": []any{"x", "y"},
		},
		"metadata": map[string]any{"labels": map[string]any{"app.kubernetes.io/name": "web"}},
	}
	b := map[string]any{
		"spec": map[string]any{
			"replicas": float64(1), // same number, other type
			"containers": []any{
				map[string]any{"name": "side", "image": "s2"},
				map[string]any{"name": "web", "image": "a", "ports": []any{map[string]any{"containerPort": int64(8080)}}},
			},
			"args": []any{"x"},
			"new":  true,
		},
		"metadata": map[string]any{"labels": map[string]any{"app.kubernetes.io/name": "api"}},
	}
	var got []string
	for _, c := range Diff(a, b) {
		got = append(got, c.String())
	}
	want := []string{
		`metadata.labels["app.kubernetes.io/name"]: "web" → "api"`,
		`spec.args: [x y] → [x]`,
		`spec.containers[side].image: "s" → "s2"`,
		`spec.containers[web].ports[0].containerPort: 80 → 8080`,
		`spec.new: (none) → true`,
	}
	if strings.Join(got, "\n") != strings.Join(want, "\n") {
		t.Errorf("diff:\n%s\nwant:\n%s", strings.Join(got, "\n"), strings.Join(want, "\n"))
	}
}

func TestInventory(t *testing.T) {
	text := "# comment\napps/v1 Deployment health health\nv1 Namespace - health\n\nv1 Service health health\n"
	inv, err := ParseInventory("inv", []byte(text))
	if err != nil {
		t.Fatal(err)
	}
	want := "v1 Namespace - health\nv1 Service health health\napps/v1 Deployment health health\n"
	if got := string(inv.Bytes()); got != want {
		t.Errorf("bytes:\n%s\nwant:\n%s", got, want)
	}
	again, err := ParseInventory("inv", inv.Bytes())
	if err != nil || string(again.Bytes()) != want {
		t.Errorf("round trip: %v", err)
	}
	other := Inventory{{"v1", "Service", "health", "health"}, {"v1", "ConfigMap", "x", "y"}}
	if got := string(inv.Minus(other).Bytes()); got != "v1 Namespace - health\napps/v1 Deployment health health\n" {
		t.Errorf("minus: %s", got)
	}
	if got := len(inv.Union(other)); got != 4 {
		t.Errorf("union: %d", got)
	}
	for _, bad := range []string{
		"v1 Namespace health",
		"v1 Namespace - Health",
		"v1 Service a b\nv1 Service a b",
		"a/b/c Kind - x",
		"v1 Kind/x - x",
		"v1 Service ../x y",
	} {
		if _, err := ParseInventory("inv", []byte(bad)); err == nil || !strings.HasPrefix(err.Error(), "inv:") {
			t.Errorf("%q: error %v", bad, err)
		}
	}
}

func FuzzParseInventory(f *testing.F) {
	f.Add([]byte("apps/v1 Deployment health health\nv1 Namespace - health\n"))
	f.Add([]byte("# x\n\nv1 ConfigMap a b\n"))
	f.Add([]byte("v1 Service a\n"))
	f.Add([]byte("v1 A - b\nv1 A - b\n"))
	f.Fuzz(func(t *testing.T, data []byte) {
		inv, err := ParseInventory("inv", data)
		if err != nil {
			if strings.Contains(err.Error(), "\n") {
				t.Errorf("error spans lines: %q", err)
			}
			return
		}
		again, err := ParseInventory("inv", inv.Bytes())
		if err != nil || string(again.Bytes()) != string(inv.Bytes()) {
			t.Errorf("round trip of %q: %v", inv.Bytes(), err)
		}
		for _, k := range inv {
			p := k.Path()
			for _, seg := range strings.Split(p, "/") {
				if seg == "" || seg == "." || seg == ".." {
					t.Errorf("object %v has path %q with segment %q", k, p, seg)
				}
			}
			if strings.HasPrefix(p, "_stack/") || strings.Count(p, "/") != 2 {
				t.Errorf("object %v has path %q outside the state repo's object tree", k, p)
			}
		}
	})
}

func TestParseRecord(t *testing.T) {
	r, err := ParseRecord([]byte("environment: development\ncluster: development\ncommit: " + strings.Repeat("a", 40) + "\nimages:\n  health: r/health@sha256:1\n"))
	if err != nil || r.Images["health"] != "r/health@sha256:1" {
		t.Fatalf("%+v %v", r, err)
	}
	for _, bad := range []string{"", "environment: x\n", "environment: x\ncluster: y\ncommit: main\n", "environment: x\ncluster: y\nextra: 1\n"} {
		if _, err := ParseRecord([]byte(bad)); err == nil {
			t.Errorf("%q parsed", bad)
		}
	}
}

func FuzzParseRecord(f *testing.F) {
	f.Add([]byte("environment: development\ncluster: development\ncommit: " + strings.Repeat("a", 40) + "\n"))
	f.Add([]byte("environment: x\ncluster: y\ndirty: true\nimages: {a: b}\n"))
	f.Add([]byte("{"))
	f.Fuzz(func(t *testing.T, data []byte) {
		r, err := ParseRecord(data)
		if err == nil && (r.Environment == "" || r.Cluster == "") {
			t.Errorf("record without environment or cluster: %+v", r)
		}
	})
}
