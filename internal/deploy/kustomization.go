package deploy

import (
	"encoding/json"
	"fmt"
	"io/fs"
	"net/url"
	"path"
	"regexp"
	"slices"
	"strings"

	"go.yaml.in/yaml/v3"
	"sigs.k8s.io/kustomize/api/konfig"
	"sigs.k8s.io/kustomize/api/types"
)

// refKind is what a path-bearing field of a kustomization may name.
type refKind int

const (
	refAny    refKind = iota // a file or a directory (resources, bases)
	refDir                   // a directory (components)
	refFile                  // a file (patches[].path, crds, openapi.path, ...)
	refSource                // [KEY=]PATH, a file or directory (generators' files)
	refPatch                 // an inline patch or a file (patchesStrategicMerge)
	refPlugin                // an inline plugin configuration or a file (transformers, ...)
)

// pathRef is one value of a kustomization that names a path.
type pathRef struct {
	field, value string
	kind         refKind
}

// kustomizationPathFields are the fields of a kustomization (as kustomize
// v0.21.2 names them) that name files or directories; kustomizationRefs
// reads every one. helm's fields are refused outright.
var kustomizationPathFields = []string{
	"resources", "bases", "components", "crds", "configurations", "openapi",
	"patches", "patchesJson6902", "patchesStrategicMerge", "replacements",
	"configMapGenerator", "secretGenerator",
	"generators", "transformers", "validators",
	"helmCharts", "helmGlobals", "helmChartInflationGenerator",
}

// kustomizationRefs lists every value of k that names a path, with the
// field it is in.
func kustomizationRefs(k *types.Kustomization) []pathRef {
	var refs []pathRef
	list := func(field string, kind refKind, values []string) {
		for i, v := range values {
			refs = append(refs, pathRef{fmt.Sprintf("%s[%d]", field, i), v, kind})
		}
	}
	list("resources", refAny, k.Resources)
	list("bases", refAny, k.Bases)
	list("components", refDir, k.Components)
	list("crds", refFile, k.Crds)
	list("configurations", refFile, k.Configurations)
	if p, ok := k.OpenAPI["path"]; ok {
		refs = append(refs, pathRef{"openapi.path", p, refFile})
	}
	for i, p := range k.Patches {
		if p.Path != "" {
			refs = append(refs, pathRef{fmt.Sprintf("patches[%d].path", i), p.Path, refFile})
		}
	}
	for i, p := range k.PatchesJson6902 {
		if p.Path != "" {
			refs = append(refs, pathRef{fmt.Sprintf("patchesJson6902[%d].path", i), p.Path, refFile})
		}
	}
	for i, p := range k.PatchesStrategicMerge {
		refs = append(refs, pathRef{fmt.Sprintf("patchesStrategicMerge[%d]", i), string(p), refPatch})
	}
	for i, r := range k.Replacements {
		if r.Path != "" {
			refs = append(refs, pathRef{fmt.Sprintf("replacements[%d].path", i), r.Path, refFile})
		}
	}
	sources := func(field string, i int, s types.KvPairSources) {
		list(fmt.Sprintf("%s[%d].files", field, i), refSource, s.FileSources)
		list(fmt.Sprintf("%s[%d].envs", field, i), refFile, s.EnvSources)
		if s.EnvSource != "" {
			refs = append(refs, pathRef{fmt.Sprintf("%s[%d].env", field, i), s.EnvSource, refFile})
		}
	}
	for i, g := range k.ConfigMapGenerator {
		sources("configMapGenerator", i, g.KvPairSources)
	}
	for i, g := range k.SecretGenerator {
		sources("secretGenerator", i, g.KvPairSources)
	}
	list("generators", refPlugin, k.Generators)
	list("transformers", refPlugin, k.Transformers)
	list("validators", refPlugin, k.Validators)
	return refs
}

// checkKustomizations refuses a tree that would have kustomize read
// anything but its own files: every kustomization (kustomization.yaml,
// kustomization.yml, Kustomization) anywhere in pods/, infra/ and config/ must name,
// in every field that names a path, a file or directory of the tree, never
// a URL or a git repository; helm is refused; and a builtin plugin's
// configuration, in any file or inline, must not name a URL. The error is
// one line naming the file and the field. The offline renderer
// (offline.go) is what makes fetching impossible; this says which field to
// fix.
func checkKustomizations(t *Tree) error {
	var files []string
	err := t.fs.Walk("/", func(p string, info fs.FileInfo, err error) error {
		if err == nil && !info.IsDir() {
			files = append(files, p)
		}
		return err
	})
	if err != nil {
		return err
	}
	slices.Sort(files)
	for _, f := range files {
		data, err := t.fs.ReadFile(f)
		if err != nil {
			return err
		}
		if slices.Contains(konfig.RecognizedKustomizationFileNames(), path.Base(f)) {
			err = checkKustomization(t, f, data)
		} else {
			err = checkPluginConfigs(strings.TrimPrefix(f, "/"), data)
		}
		if err != nil {
			return err
		}
	}
	return nil
}

// checkKustomization checks the kustomization file f of t, read as
// kustomize reads it.
func checkKustomization(t *Tree, f string, data []byte) error {
	name := strings.TrimPrefix(f, "/")
	var k types.Kustomization
	if err := k.Unmarshal(data); err != nil {
		return fmt.Errorf("%s: %s", name, strings.Join(strings.Fields(err.Error()), " "))
	}
	for field, used := range map[string]bool{
		"helmCharts":                  len(k.HelmCharts) > 0,
		"helmChartInflationGenerator": len(k.HelmChartInflationGenerator) > 0,
		"helmGlobals":                 k.HelmGlobals != nil,
	} {
		if used {
			return fmt.Errorf("%s: %s: helm is not run by the renderer (it would fetch the chart): render the chart once and vendor its manifests into pods/", name, field)
		}
	}
	for _, r := range kustomizationRefs(&k) {
		if err := checkRef(t, path.Dir(f), name+": "+r.field, r); err != nil {
			return err
		}
	}
	return nil
}

// checkRef checks one path-bearing value of a kustomization in dir; where
// names the file and field.
func checkRef(t *Tree, dir, where string, r pathRef) error {
	v := r.value
	inline := (r.kind == refPatch || r.kind == refPlugin) && isInlineYAML(v)
	if fetched(v) || cloned(v) || (!inline && looksLikeURL(v)) {
		return fmt.Errorf("%s: %q is a remote URL: vendor the file into the repository and name its path", where, v)
	}
	if inline {
		if r.kind == refPlugin {
			return checkPluginConfigs(where, []byte(v))
		}
		return nil
	}
	if r.kind == refSource {
		// [KEY=]PATH, as kustomize splits it.
		if _, p, ok := strings.Cut(v, "="); ok && p != "" {
			v = p
		}
	}
	if v == "" {
		return fmt.Errorf("%s: the path is empty: name a file of %s/", where, strings.Join(TreeDirs, "/ or "))
	}
	if path.IsAbs(v) {
		return fmt.Errorf("%s: %q is an absolute path: name it relative to the kustomization's directory", where, v)
	}
	p := path.Join(dir, v)
	if !inTree(p) || !t.fs.Exists(p) {
		return fmt.Errorf("%s: %q is not a file or directory of %s/: vendor it into the repository and name its path", where, v, strings.Join(TreeDirs, "/ or "))
	}
	switch isDir := t.fs.IsDir(p); {
	case r.kind == refDir && !isDir:
		return fmt.Errorf("%s: %q is a file: a component is a directory with a kustomization", where, v)
	case (r.kind == refFile || r.kind == refPatch) && isDir:
		return fmt.Errorf("%s: %q is a directory: name a file", where, v)
	case r.kind == refPlugin && isDir:
		return fmt.Errorf("%s: %q is a directory: name the plugin configuration's file (what a directory renders is not checked)", where, v)
	}
	return nil
}

// inTree reports whether the clean absolute path p is in one of TreeDirs.
func inTree(p string) bool {
	for _, d := range TreeDirs {
		if p == "/"+d || strings.HasPrefix(p, "/"+d+"/") {
			return true
		}
	}
	return false
}

var (
	schemeRE  = regexp.MustCompile(`^[A-Za-z][A-Za-z0-9+.-]*:`)
	schemeURL = regexp.MustCompile(`^[A-Za-z][A-Za-z0-9+.-]*://`)
	scpUserRE = regexp.MustCompile(`^[A-Za-z][A-Za-z0-9-]*@`)
)

// fetched reports whether kustomize's loader fetches v over HTTP: net/url
// parses it with the scheme http or https.
func fetched(v string) bool {
	u, err := url.Parse(v)
	return err == nil && (u.Scheme == "http" || u.Scheme == "https")
}

// cloned reports whether kustomize may take v for a git repository to
// clone: after any "git::", a URL scheme, an SCP-style user@, or
// github.com/ or github.com: (a superset of what kustomize clones).
func cloned(v string) bool {
	for {
		l := strings.ToLower(v)
		if schemeURL.MatchString(v) || scpUserRE.MatchString(v) || strings.HasPrefix(l, "github.com/") || strings.HasPrefix(l, "github.com:") {
			return true
		}
		if len(v) < len("git::") || strings.ToLower(v[:len("git::")]) != "git::" {
			return false
		}
		v = v[len("git::"):]
	}
}

// looksLikeURL reports whether a value that should be a path reads as a
// URL: it has a scheme, or :// anywhere, or starts as ssh: or git@ do.
func looksLikeURL(v string) bool {
	s := strings.TrimSpace(v)
	return strings.Contains(s, "://") || schemeRE.MatchString(s) || cloned(s)
}

// isInlineYAML reports whether v is YAML content (a mapping or a sequence,
// or several lines) rather than a path, as kustomize tells an inline patch
// or plugin configuration from a file name.
func isInlineYAML(v string) bool {
	if strings.Contains(v, "\n") {
		return true
	}
	var n yaml.Node
	if yaml.Unmarshal([]byte(v), &n) != nil || len(n.Content) == 0 {
		return false
	}
	return n.Content[0].Kind == yaml.MappingNode || n.Content[0].Kind == yaml.SequenceNode
}

// pluginPathFields are the fields of kustomize's builtin plugins'
// configurations that name a file (PatchTransformer, PatchJson6902Transformer:
// path; PatchStrategicMergeTransformer: paths; ReplacementTransformer:
// replacements[].path; ConfigMapGenerator, SecretGenerator: files, envs,
// env; ValueAddTransformer: targetFilePath).
var pluginPathFields = []string{"path", "paths", "replacements", "files", "envs", "env", "targetFilePath"}

// checkPluginConfigs checks every YAML document of data that configures a
// builtin plugin (apiVersion: builtin), and those in a list's items: none
// of their path fields may name a URL, and helm's is refused. where names
// the file (and field, for an inline configuration). data that is not YAML
// is not a plugin configuration: kustomize refuses it or reads it as
// something else.
func checkPluginConfigs(where string, data []byte) error {
	dec := yaml.NewDecoder(strings.NewReader(string(data)))
	for {
		var doc any
		if dec.Decode(&doc) != nil {
			return nil // the end, or not YAML
		}
		raw, err := json.Marshal(doc)
		if err != nil {
			continue
		}
		if err := checkPluginDoc(where, raw, 0); err != nil {
			return err
		}
	}
}

// maxItemsDepth bounds how deep lists of lists are searched.
const maxItemsDepth = 8

func checkPluginDoc(where string, raw json.RawMessage, depth int) error {
	var m map[string]json.RawMessage
	if json.Unmarshal(raw, &m) != nil || depth > maxItemsDepth {
		return nil
	}
	for _, items := range foldFields(m, "items") {
		var list []json.RawMessage
		_ = json.Unmarshal(items, &list)
		for _, it := range list {
			if err := checkPluginDoc(where, it, depth+1); err != nil {
				return err
			}
		}
	}
	if !slices.Contains(stringFields(m, "apiVersion"), konfig.BuiltinPluginApiVersion) {
		return nil
	}
	kind := strings.Join(stringFields(m, "kind"), "")
	var meta struct {
		Name string `json:"name"`
	}
	for _, md := range foldFields(m, "metadata") {
		_ = json.Unmarshal(md, &meta)
	}
	what := strings.TrimSpace(where + ": " + kind + " " + meta.Name)
	if strings.Contains(strings.ToLower(kind), "helm") {
		return fmt.Errorf("%s: helm is not run by the renderer (it would fetch the chart): render the chart once and vendor its manifests into pods/", what)
	}
	for _, field := range pluginPathFields {
		for _, v := range pluginValues(m, field) {
			if fetched(v) || cloned(v) || (field != "paths" && looksLikeURL(v)) || (field == "paths" && !isInlineYAML(v) && looksLikeURL(v)) {
				return fmt.Errorf("%s: %s: %q is a remote URL: vendor the file into the repository and name its path", what, field, v)
			}
		}
	}
	return nil
}

// foldFields are the values of m's keys equal to name under Unicode case
// folding: encoding/json, and so kustomize, matches keys so.
func foldFields(m map[string]json.RawMessage, name string) []json.RawMessage {
	var out []json.RawMessage
	for k, v := range m {
		if strings.EqualFold(k, name) {
			out = append(out, v)
		}
	}
	return out
}

// stringFields are the string values of m's keys that fold to name.
func stringFields(m map[string]json.RawMessage, name string) []string {
	var out []string
	for _, raw := range foldFields(m, name) {
		var s string
		if json.Unmarshal(raw, &s) == nil {
			out = append(out, s)
		}
	}
	return out
}

// pluginValues are the strings of a plugin configuration's field: the
// value itself, the items of a list, or each replacement's path.
func pluginValues(m map[string]json.RawMessage, field string) []string {
	var out []string
	for _, raw := range foldFields(m, field) {
		var s string
		var list []string
		var objs []map[string]json.RawMessage
		switch {
		case json.Unmarshal(raw, &s) == nil:
			out = append(out, s)
		case json.Unmarshal(raw, &list) == nil:
			out = append(out, list...)
		case json.Unmarshal(raw, &objs) == nil:
			for _, o := range objs {
				out = append(out, stringFields(o, "path")...)
			}
		}
	}
	return out
}
