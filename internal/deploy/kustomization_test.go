package deploy

import (
	"encoding/json"
	"strings"
	"testing"

	"go.yaml.in/yaml/v3"
	sigsyaml "sigs.k8s.io/yaml"
)

// fuzzFields place a value in each path-bearing field of a kustomization:
// the kustomization, and where kustomize reads the value back.
var fuzzFields = []struct {
	field  string
	inline bool // the field also takes inline YAML
	source bool // [KEY=]PATH
	build  func(v string) map[string]any
	get    func(k map[string]any) any
}{
	{field: "resources", build: func(v string) map[string]any { return map[string]any{"resources": []any{v}} }, get: first("resources")},
	{field: "bases", build: func(v string) map[string]any { return map[string]any{"bases": []any{v}} }, get: first("bases")},
	{field: "components", build: func(v string) map[string]any { return map[string]any{"components": []any{v}} }, get: first("components")},
	{field: "crds", build: func(v string) map[string]any { return map[string]any{"crds": []any{v}} }, get: first("crds")},
	{field: "configurations", build: func(v string) map[string]any { return map[string]any{"configurations": []any{v}} }, get: first("configurations")},
	{field: "openapi", build: func(v string) map[string]any { return map[string]any{"openapi": map[string]any{"path": v}} },
		get: func(k map[string]any) any { m, _ := k["openapi"].(map[string]any); return m["path"] }},
	{field: "patches", build: func(v string) map[string]any { return map[string]any{"patches": []any{map[string]any{"path": v}}} }, get: firstKey("patches", "path")},
	{field: "patchesJson6902", build: func(v string) map[string]any {
		return map[string]any{"patchesJson6902": []any{map[string]any{"path": v, "target": map[string]any{"kind": "Pod"}}}}
	}, get: firstKey("patchesJson6902", "path")},
	{field: "patchesStrategicMerge", inline: true, build: func(v string) map[string]any { return map[string]any{"patchesStrategicMerge": []any{v}} }, get: first("patchesStrategicMerge")},
	{field: "replacements", build: func(v string) map[string]any { return map[string]any{"replacements": []any{map[string]any{"path": v}}} }, get: firstKey("replacements", "path")},
	{field: "configMapGenerator", source: true, build: func(v string) map[string]any {
		return map[string]any{"configMapGenerator": []any{map[string]any{"name": "c", "files": []any{v}}}}
	}, get: func(k map[string]any) any { return firstOf(firstKey("configMapGenerator", "files")(k)) }},
	{field: "secretGenerator", build: func(v string) map[string]any {
		return map[string]any{"secretGenerator": []any{map[string]any{"name": "s", "envs": []any{v}}}}
	}, get: func(k map[string]any) any { return firstOf(firstKey("secretGenerator", "envs")(k)) }},
	{field: "configMapGenerator env", build: func(v string) map[string]any {
		return map[string]any{"configMapGenerator": []any{map[string]any{"name": "c", "env": v}}}
	}, get: firstKey("configMapGenerator", "env")},
	{field: "generators", inline: true, build: func(v string) map[string]any { return map[string]any{"generators": []any{v}} }, get: first("generators")},
	{field: "transformers", inline: true, build: func(v string) map[string]any { return map[string]any{"transformers": []any{v}} }, get: first("transformers")},
	{field: "validators", inline: true, build: func(v string) map[string]any { return map[string]any{"validators": []any{v}} }, get: first("validators")},
}

func firstOf(v any) any {
	l, _ := v.([]any)
	if len(l) == 0 {
		return nil
	}
	return l[0]
}

func first(field string) func(map[string]any) any {
	return func(k map[string]any) any { return firstOf(k[field]) }
}

func firstKey(field, key string) func(map[string]any) any {
	return func(k map[string]any) any {
		m, _ := firstOf(k[field]).(map[string]any)
		return m[key]
	}
}

// FuzzKustomizationPaths puts any value in any path-bearing field: the
// check never panics, and never accepts a value that kustomize, reading
// the same file, would fetch or clone.
func FuzzKustomizationPaths(f *testing.F) {
	for _, v := range []string{
		"http://127.0.0.1/x.yaml", "HTTPS://example.org/x", " https://example.org/x", "https:example.org", "github.com/org/repo//base",
		"GITHUB.COM:org/repo", "git@example.org:org/repo.git", "git::git::https://example.org/r", "ssh:example.org/r", "file:///etc",
		"key=http://example.org/f", "=http://x", "../../pods/app", "../../pods/app/pod.yaml", "pod.yaml", "",
		"apiVersion: builtin\nkind: PatchTransformer\nmetadata: {name: p}\npath: http://example.org/p\n",
		"{apiVersion: builtin, kind: PatchTransformer, path: 'http://example.org/p'}", "http://x:1/a: b",
	} {
		for i := range fuzzFields {
			f.Add(uint8(i), v)
		}
	}
	f.Fuzz(func(t *testing.T, field uint8, v string) {
		ff := fuzzFields[int(field)%len(fuzzFields)]
		data, err := yaml.Marshal(ff.build(v))
		if err != nil {
			return
		}
		tr := networkTree("http://127.0.0.1:1", map[string]string{overlay: string(data)})
		if checkKustomizations(tr) != nil {
			return
		}
		// Accepted: read the value back as kustomize does.
		j, err := sigsyaml.YAMLToJSON(data)
		if err != nil {
			t.Fatalf("accepted a kustomization kustomize cannot read: %v", err)
		}
		var k map[string]any
		if err := json.Unmarshal(j, &k); err != nil {
			return
		}
		got, ok := ff.get(k).(string)
		if !ok {
			return
		}
		bad := fetched(got) || cloned(got) || (!ff.inline && strings.Contains(got, "://"))
		if _, p, ok := strings.Cut(got, "="); ff.source && ok && (fetched(p) || cloned(p)) {
			bad = true
		}
		if bad {
			t.Fatalf("%s: accepted %q", ff.field, got)
		}
	})
}

// skipKeys are keys inside path-bearing fields whose values are not paths.
var skipKeys = []string{"patch", "target", "options", "literals", "name", "namespace", "behavior", "type", "version", "source", "targets", "kind"}

// fetchedIn reports a string under v (not under skipKeys) that kustomize
// would fetch.
func fetchedIn(v any) (string, bool) {
	switch v := v.(type) {
	case string:
		return v, fetched(v)
	case []any:
		for _, e := range v {
			if s, ok := fetchedIn(e); ok {
				return s, true
			}
		}
	case map[string]any:
		for key, e := range v {
			if slicesContainsFold(skipKeys, key) {
				continue
			}
			if s, ok := fetchedIn(e); ok {
				return s, true
			}
		}
	}
	return "", false
}

func slicesContainsFold(list []string, s string) bool {
	for _, e := range list {
		if strings.EqualFold(e, s) {
			return true
		}
	}
	return false
}

// FuzzKustomizationFile checks any overlay: never a panic, and an
// accepted one has, in no path-bearing field (keys matched as kustomize
// matches them, ignoring case), a URL kustomize would fetch.
func FuzzKustomizationFile(f *testing.F) {
	f.Add([]byte("resources: [../../pods/app]\n"))
	f.Add([]byte("Resources: [http://example.org/r.yaml]\n"))
	f.Add([]byte("resources: [../../pods/app]\npatches: [{path: http://example.org/p.yaml}]\n"))
	f.Add([]byte("a: &a http://example.org/r.yaml\nresources: [*a]\n"))
	f.Add([]byte("configMapGenerator: [{name: c, files: [k=https://example.org/f]}]\n"))
	f.Add([]byte("openapi: {path: https://example.org/s.json, version: v1}\n"))
	f.Add([]byte("transformers: ['{apiVersion: builtin, kind: PatchTransformer, metadata: {name: p}, path: http://example.org/p}']\n"))
	f.Add([]byte("resources: [../../pods/app]\nresources: [http://example.org/r.yaml]\n"))
	f.Fuzz(func(t *testing.T, data []byte) {
		tr := networkTree("http://127.0.0.1:1", map[string]string{overlay: string(data)})
		if checkKustomizations(tr) != nil {
			return
		}
		j, err := sigsyaml.YAMLToJSON(data)
		if err != nil {
			t.Fatalf("accepted a kustomization kustomize cannot read: %v", err)
		}
		var k map[string]any
		if json.Unmarshal(j, &k) != nil {
			return
		}
		for key, v := range k {
			if !slicesContainsFold(kustomizationPathFields, key) {
				continue
			}
			if s, ok := fetchedIn(v); ok {
				t.Fatalf("%s: accepted %q", key, s)
			}
		}
	})
}
