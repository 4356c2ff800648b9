package deploy

import (
	"fmt"
	"net"
	"net/http"
	"net/http/httptest"
	"os"
	"os/exec"
	"reflect"
	"slices"
	"strings"
	"sync"
	"sync/atomic"
	"syscall"
	"testing"
	"time"

	"sigs.k8s.io/kustomize/api/types"
	"sigs.k8s.io/kustomize/kyaml/filesys"

	"github.com/hashbang/stack/internal/image"
)

// hitServer is an HTTP server on 127.0.0.1 that records every request and
// answers each with a manifest that would render, so that a fetch that
// happened could not hide behind an error.
type hitServer struct {
	URL  string
	mu   sync.Mutex
	hits []string
}

func newHitServer(t *testing.T) *hitServer {
	t.Helper()
	h := &hitServer{}
	srv := httptest.NewUnstartedServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		h.mu.Lock()
		h.hits = append(h.hits, r.URL.RequestURI())
		h.mu.Unlock()
		w.Write([]byte("apiVersion: v1\nkind: ConfigMap\nmetadata: {name: fetched}\ndata: {fetched: 'yes'}\n"))
	}))
	srv.Config.ReadHeaderTimeout = 5 * time.Second
	srv.Config.WriteTimeout = 5 * time.Second
	srv.Start() // on 127.0.0.1
	t.Cleanup(srv.Close)
	h.URL = srv.URL
	return h
}

func (h *hitServer) Hits() []string {
	h.mu.Lock()
	defer h.mu.Unlock()
	return slices.Clone(h.hits)
}

// networkCase is a kustomization that names the hit server in one field.
type networkCase struct {
	name string
	// files are added to networkTree's (U is replaced by the server's URL).
	files map[string]string
	// want is what the refusal says: FILE: FIELD...
	want string
	// fetches is whether kustomize, run in this process, reaches the
	// server: the threat the offline renderer removes. helm is disabled
	// by the plugin configuration; none of the others are.
	fetches bool
}

const overlay = "infra/dev/kustomization.yaml"

func networkCases() []networkCase {
	k := func(extra string) map[string]string {
		return map[string]string{overlay: "resources: [../../pods/app]\n" + extra}
	}
	remote := ` is a remote URL: vendor the file into the repository and name its path`
	plugin := func(field, config string) map[string]string {
		return map[string]string{overlay: "resources: [../../pods/app]\n" + field + ": [plugin.yaml]\n", "infra/dev/plugin.yaml": config}
	}
	return []networkCase{
		{"resources", map[string]string{overlay: "resources: [../../pods/app, U/r.yaml]\n"}, overlay + `: resources[1]: "U/r.yaml"` + remote, true},
		{"resources git", map[string]string{overlay: "resources:\n- ../../pods/app\n- 'U/org/repo.git//base?ref=v1&timeout=5'\n"}, overlay + `: resources[1]: "U/org/repo.git//base?ref=v1&timeout=5"` + remote, true},
		{"resources upper-case key", map[string]string{overlay: "Resources: [../../pods/app, U/r.yaml]\n"}, overlay + `: resources[1]: "U/r.yaml"` + remote, true},
		{"bases", k("bases: [U/base.yaml]\n"), overlay + `: bases[0]: "U/base.yaml"` + remote, true},
		{"components git", k("components: ['U/org/repo.git//comp?timeout=5']\n"), overlay + `: components[0]: "U/org/repo.git//comp?timeout=5"` + remote, true},
		{"crds", k("crds: [U/crd.yaml]\n"), overlay + `: crds[0]: "U/crd.yaml"` + remote, true},
		{"configurations", k("configurations: [U/config.yaml]\n"), overlay + `: configurations[0]: "U/config.yaml"` + remote, true},
		{"openapi", k("openapi: {path: U/schema.json}\n"), overlay + `: openapi.path: "U/schema.json"` + remote, true},
		{"patches", k("patches: [{path: U/p.yaml}]\n"), overlay + `: patches[0].path: "U/p.yaml"` + remote, true},
		{"patchesJson6902", k("patchesJson6902: [{path: U/p.yaml, target: {kind: Pod, name: app}}]\n"), overlay + `: patchesJson6902[0].path: "U/p.yaml"` + remote, true},
		{"patchesStrategicMerge", k("patchesStrategicMerge: [U/p.yaml]\n"), overlay + `: patchesStrategicMerge[0]: "U/p.yaml"` + remote, true},
		{"replacements", k("replacements: [{path: U/r.yaml}]\n"), overlay + `: replacements[0].path: "U/r.yaml"` + remote, true},
		{"configMapGenerator files", k("configMapGenerator: [{name: c, files: [U/f.txt]}]\n"), overlay + `: configMapGenerator[0].files[0]: "U/f.txt"` + remote, true},
		{"configMapGenerator keyed file", k("configMapGenerator: [{name: c, files: [key=U/f.txt]}]\n"), overlay + `: configMapGenerator[0].files[0]: "key=U/f.txt"` + remote, true},
		{"configMapGenerator envs", k("configMapGenerator: [{name: c, envs: [U/e.env]}]\n"), overlay + `: configMapGenerator[0].envs[0]: "U/e.env"` + remote, true},
		{"configMapGenerator env", k("configMapGenerator: [{name: c, env: U/e.env}]\n"), overlay + `: configMapGenerator[0].env: "U/e.env"` + remote, true},
		{"secretGenerator files", k("secretGenerator: [{name: s, files: [U/f.txt]}]\n"), overlay + `: secretGenerator[0].files[0]: "U/f.txt"` + remote, true},
		{"secretGenerator envs", k("secretGenerator: [{name: s, envs: [U/e.env]}]\n"), overlay + `: secretGenerator[0].envs[0]: "U/e.env"` + remote, true},
		{"secretGenerator env", k("secretGenerator: [{name: s, env: U/e.env}]\n"), overlay + `: secretGenerator[0].env: "U/e.env"` + remote, true},
		{"generators", k("generators: [U/g.yaml]\n"), overlay + `: generators[0]: "U/g.yaml"` + remote, true},
		{"transformers", k("transformers: [U/t.yaml]\n"), overlay + `: transformers[0]: "U/t.yaml"` + remote, true},
		{"validators", k("validators: [U/v.yaml]\n"), overlay + `: validators[0]: "U/v.yaml"` + remote, true},
		{"inline PatchTransformer", k("transformers:\n- |\n  apiVersion: builtin\n  kind: PatchTransformer\n  metadata: {name: p}\n  path: U/p.yaml\n  target: {kind: Pod}\n"),
			overlay + `: transformers[0]: PatchTransformer p: path: "U/p.yaml"` + remote, true},
		{"PatchTransformer file", plugin("transformers", "apiVersion: builtin\nkind: PatchTransformer\nmetadata: {name: p}\npath: U/p.yaml\ntarget: {kind: Pod}\n"),
			`infra/dev/plugin.yaml: PatchTransformer p: path: "U/p.yaml"` + remote, true},
		{"PatchJson6902Transformer file", plugin("transformers", "apiVersion: builtin\nkind: PatchJson6902Transformer\nmetadata: {name: p}\npath: U/p.json\ntarget: {kind: Pod, name: app}\n"),
			`infra/dev/plugin.yaml: PatchJson6902Transformer p: path: "U/p.json"` + remote, true},
		{"PatchStrategicMergeTransformer file", plugin("transformers", "apiVersion: builtin\nkind: PatchStrategicMergeTransformer\nmetadata: {name: p}\npaths: [U/p.yaml]\n"),
			`infra/dev/plugin.yaml: PatchStrategicMergeTransformer p: paths: "U/p.yaml"` + remote, true},
		{"ReplacementTransformer file", plugin("transformers", "apiVersion: builtin\nkind: ReplacementTransformer\nmetadata: {name: r}\nreplacements: [{path: U/r.yaml}]\n"),
			`infra/dev/plugin.yaml: ReplacementTransformer r: replacements: "U/r.yaml"` + remote, true},
		{"ValueAddTransformer file", plugin("transformers", "apiVersion: builtin\nkind: ValueAddTransformer\nmetadata: {name: v}\nvalue: x\ntargetFilePath: U/targets.yaml\n"),
			`infra/dev/plugin.yaml: ValueAddTransformer v: targetFilePath: "U/targets.yaml"` + remote, true},
		{"ConfigMapGenerator file in a List", plugin("generators", "apiVersion: v1\nkind: List\nitems:\n- apiVersion: builtin\n  kind: ConfigMapGenerator\n  metadata: {name: c}\n  files: [U/f.txt]\n"),
			`infra/dev/plugin.yaml: ConfigMapGenerator c: files: "U/f.txt"` + remote, true},
		{"SecretGenerator file", plugin("generators", "apiVersion: builtin\nkind: SecretGenerator\nmetadata: {name: s}\nenvs: [U/e.env]\n"),
			`infra/dev/plugin.yaml: SecretGenerator s: envs: "U/e.env"` + remote, true},
		{"base's kustomization", map[string]string{"pods/app/kustomization.yaml": "resources: [pod.yaml, U/extra.yaml]\n"}, `pods/app/kustomization.yaml: resources[1]: "U/extra.yaml"` + remote, true},
		{"kustomization.yml", map[string]string{"pods/app/kustomization.yaml": absent, "pods/app/kustomization.yml": "resources: [pod.yaml]\npatches: [{path: U/p.yaml}]\n"},
			`pods/app/kustomization.yml: patches[0].path: "U/p.yaml"` + remote, true},
		{"Kustomization", map[string]string{"pods/app/kustomization.yaml": absent, "pods/app/Kustomization": "resources: [pod.yaml, U/r.yaml]\n"},
			`pods/app/Kustomization: resources[1]: "U/r.yaml"` + remote, true},
		{"helmCharts", k("helmCharts: [{name: chart, repo: U/charts, version: 1.0.0}]\n"), overlay + `: helmCharts: helm is not run by the renderer`, false},
		{"helmGlobals", k("helmGlobals: {chartHome: U/charts}\n"), overlay + `: helmGlobals: helm is not run by the renderer`, false},
		{"helmChartInflationGenerator", k("helmChartInflationGenerator: [{chartName: c, chartRepoUrl: U/charts}]\n"), overlay + `: helmChartInflationGenerator: helm is not run by the renderer`, false},
		{"HelmChartInflationGenerator file", plugin("generators", "apiVersion: builtin\nkind: HelmChartInflationGenerator\nmetadata: {name: h}\nname: chart\nrepo: U/charts\n"),
			`infra/dev/plugin.yaml: HelmChartInflationGenerator h: helm is not run by the renderer`, false},
	}
}

// absent, as a file's content, removes the file from networkTree.
const absent = "\x00absent"

// networkTree is a tree with an overlay infra/dev over pods/app, files
// added, U replaced by url.
func networkTree(url string, files map[string]string) *Tree {
	all := map[string]string{
		overlay:                       "resources: [../../pods/app]\n",
		"pods/app/kustomization.yaml": "resources: [pod.yaml]\n",
		"pods/app/pod.yaml":           "apiVersion: v1\nkind: Pod\nmetadata: {name: app, namespace: app}\nspec: {containers: [{name: app, image: health}]}\n",
	}
	for name, content := range files {
		all[name] = content
	}
	t := &Tree{Lock: image.Lock{"health": mustDigest(testDigest)}, fs: filesys.MakeFsInMemory()}
	for name, content := range all {
		if content == absent {
			continue
		}
		t.fs.MkdirAll("/" + name[:strings.LastIndex(name, "/")])
		t.fs.WriteFile("/"+name, []byte(strings.ReplaceAll(content, "U/", url+"/")))
	}
	return t
}

// TestRenderNetworkRefused: for every field of a kustomization that names a
// path, and every builtin plugin's, a URL is refused with one line naming
// the file and the field, and the server it names gets no request.
func TestRenderNetworkRefused(t *testing.T) {
	for _, tc := range networkCases() {
		t.Run(tc.name, func(t *testing.T) {
			srv := newHitServer(t)
			_, err := Render(networkTree(srv.URL, tc.files), testEnv("dev"))
			want := strings.ReplaceAll(tc.want, "U/", srv.URL+"/")
			if err == nil || !strings.HasPrefix(err.Error(), want) {
				t.Fatalf("error %v\nwant %s", err, want)
			}
			if strings.Contains(err.Error(), "\n") {
				t.Errorf("error spans lines: %q", err)
			}
			if h := srv.Hits(); len(h) != 0 {
				t.Errorf("the server got %d requests: %v", len(h), h)
			}
		})
	}
}

// TestOfflineRendererHasNoNetwork runs each case through the offline
// renderer alone, without the check that refuses it: no request leaves,
// whatever the field. In this process, kustomize reaches the server for
// the same kustomizations (the control), over HTTP and by running git for
// a remote component: the test would see a fetch.
func TestOfflineRendererHasNoNetwork(t *testing.T) {
	t.Setenv("NO_PROXY", "127.0.0.1") // for git in the control
	// kustomize clones into a directory of TMPDIR and, its cleanup working
	// on the in-memory file system, leaves it there.
	t.Setenv("TMPDIR", t.TempDir())
	for _, tc := range networkCases() {
		t.Run(tc.name, func(t *testing.T) {
			srv := newHitServer(t)
			tr := networkTree(srv.URL, tc.files)
			results, err := kustomizeOffline(tr, []string{"/infra/dev"})
			if err != nil {
				t.Fatal(err)
			}
			if h := srv.Hits(); len(h) != 0 {
				t.Fatalf("the offline renderer made %d requests: %v", len(h), h)
			}
			if !tc.fetches {
				return
			}
			if results[0].Error == "" {
				t.Errorf("rendered %d objects, want an error", len(results[0].Objects))
			}
			req, err := treeRequest(tr, []string{"/infra/dev"})
			if err != nil {
				t.Fatal(err)
			}
			if _, err := kustomizeTree(req); err != nil {
				t.Fatal(err)
			}
			h := srv.Hits()
			if len(h) == 0 {
				t.Fatal("control: kustomize in this process did not reach the server either: the case proves nothing")
			}
			if strings.HasPrefix(tc.name, "components git") && !slices.ContainsFunc(h, func(s string) bool { return strings.Contains(s, "/info/refs") }) {
				t.Errorf("control: git did not fetch: %v", h)
			}
		})
	}
}

// TestOfflineRendererRefusesHTTP: the error the offline renderer gives a
// fetch says it has no network.
func TestOfflineRendererRefusesHTTP(t *testing.T) {
	srv := newHitServer(t)
	results, err := kustomizeOffline(networkTree(srv.URL, map[string]string{overlay: "resources: [U/r.yaml]\n"}), []string{"/infra/dev"})
	if err != nil {
		t.Fatal(err)
	}
	if !strings.Contains(results[0].Error, errNoNetwork.Error()) || len(srv.Hits()) != 0 {
		t.Errorf("error %q, %d requests", results[0].Error, len(srv.Hits()))
	}
}

// TestKustomizationPathFieldsComplete: every field of kustomize's
// Kustomization is either read by kustomizationRefs (or refused, helm) or
// known to name no file, so that a kustomize upgrade adding a path field
// fails here.
func TestKustomizationPathFieldsComplete(t *testing.T) {
	noPath := []string{
		"apiVersion", "kind", "metadata", "namePrefix", "nameSuffix", "namespace", "commonLabels", "labels",
		"commonAnnotations", "images", "imageTags", "replicas", "vars", "sortOptions", "generatorOptions", "buildMetadata",
	}
	var fields []string
	var walk func(reflect.Type)
	walk = func(typ reflect.Type) {
		for i := range typ.NumField() {
			f := typ.Field(i)
			name, _, _ := strings.Cut(f.Tag.Get("json"), ",")
			if name == "" && f.Anonymous {
				walk(f.Type)
				continue
			}
			fields = append(fields, name)
		}
	}
	walk(reflect.TypeFor[types.Kustomization]())
	for _, f := range fields {
		if slices.Contains(kustomizationPathFields, f) == slices.Contains(noPath, f) {
			t.Errorf("field %q: list it in kustomizationPathFields (and read it in kustomizationRefs) or in noPath", f)
		}
	}
	for _, f := range kustomizationPathFields {
		if !slices.ContainsFunc(networkCases(), func(c networkCase) bool { return strings.Contains(c.want, ": "+f) }) {
			t.Errorf("no network case refuses a URL in %s", f)
		}
	}
	for _, f := range append(slices.Clone(kustomizationPathFields), noPath...) {
		if !slices.Contains(fields, f) {
			t.Errorf("%q is no field of kustomize's Kustomization", f)
		}
	}
}

// TestKustomizationLocalPaths: paths must be files or directories of the
// tree, of the kind the field takes; a value kustomize would clone is
// refused even when a directory of that name exists; URLs inside inline
// patches and in fields that name no file render.
func TestKustomizationLocalPaths(t *testing.T) {
	for _, tc := range []struct {
		name  string
		files map[string]string
		want  string // "" renders
	}{
		{"outside the tree", map[string]string{overlay: "resources: [../../../etc]\n"}, overlay + `: resources[0]: "../../../etc" is not a file or directory of pods/ or infra/`},
		{"absolute", map[string]string{overlay: "resources: [/pods/app]\n"}, overlay + `: resources[0]: "/pods/app" is an absolute path`},
		{"component file", map[string]string{overlay: "resources: [../../pods/app]\ncomponents: [../../pods/app/pod.yaml]\n"}, overlay + `: components[0]: "../../pods/app/pod.yaml" is a file`},
		{"patch directory", map[string]string{overlay: "resources: [../../pods/app]\npatches: [{path: ../../pods/app}]\n"}, overlay + `: patches[0].path: "../../pods/app" is a directory`},
		{"transformer directory", map[string]string{overlay: "resources: [../../pods/app]\ntransformers: [t]\n", "infra/dev/t/kustomization.yaml": "resources: []\n"}, overlay + `: transformers[0]: "t" is a directory: name the plugin configuration's file`},
		{"empty source", map[string]string{overlay: "resources: [../../pods/app]\nconfigMapGenerator: [{name: c, files: ['']}]\n"}, overlay + `: configMapGenerator[0].files[0]: the path is empty`},
		{"github", map[string]string{overlay: "resources: [github.com/org/repo//base]\n"}, overlay + `: resources[0]: "github.com/org/repo//base" is a remote URL`},
		{"github directory", map[string]string{overlay: "resources: [GitHub.com/org/repo]\n", "infra/dev/GitHub.com/org/repo/kustomization.yaml": "resources: [../../../../../pods/app]\n"}, overlay + `: resources[0]: "GitHub.com/org/repo" is a remote URL`},
		{"scp", map[string]string{overlay: "resources: ['git@example.org:org/repo.git']\n"}, overlay + `: resources[0]: "git@example.org:org/repo.git" is a remote URL`},
		{"ssh", map[string]string{overlay: "resources: ['ssh://example.org/org/repo']\n"}, overlay + `: resources[0]: "ssh://example.org/org/repo" is a remote URL`},
		{"ssh scheme", map[string]string{overlay: "resources: ['ssh:example.org/repo']\n"}, overlay + `: resources[0]: "ssh:example.org/repo" is a remote URL`},
		{"go-getter", map[string]string{overlay: "resources: ['git::https://example.org/org/repo']\n"}, overlay + `: resources[0]: "git::https://example.org/org/repo" is a remote URL`},
		{"file URL", map[string]string{overlay: "resources: ['file:///etc/repo']\n"}, overlay + `: resources[0]: "file:///etc/repo" is a remote URL`},
		{"upper-case scheme", map[string]string{overlay: "patches: [{path: 'HTTPS://example.org/p.yaml'}]\n"}, overlay + `: patches[0].path: "HTTPS://example.org/p.yaml" is a remote URL`},
		{"inline patch naming a URL", map[string]string{overlay: "resources: [../../pods/app]\npatchesStrategicMerge:\n- |\n  apiVersion: v1\n  kind: Pod\n  metadata: {name: app, namespace: app, annotations: {docs: 'https://example.org/app'}}\n"}, ""},
		{"inline JSON patch naming a URL", map[string]string{overlay: "resources: [../../pods/app]\npatches:\n- patch: '[{\"op\": \"add\", \"path\": \"/metadata/annotations\", \"value\": {\"docs\": \"https://example.org\"}}]'\n  target: {kind: Pod}\n"}, ""},
		{"inline transformer naming a URL", map[string]string{overlay: "resources: [../../pods/app]\ntransformers:\n- |\n  apiVersion: builtin\n  kind: AnnotationsTransformer\n  metadata: {name: a}\n  annotations: {docs: 'https://example.org/app'}\n  fieldSpecs: [{path: metadata/annotations, create: true}]\n"}, ""},
		{"literals and annotations", map[string]string{overlay: "resources: [../../pods/app]\ncommonAnnotations: {docs: 'https://example.org'}\nconfigMapGenerator: [{name: c, literals: ['url=https://example.org'], files: [key=f.txt]}]\n", "infra/dev/f.txt": "x\n"}, ""},
	} {
		t.Run(tc.name, func(t *testing.T) {
			_, err := Render(networkTree("http://127.0.0.1:1", tc.files), testEnv("dev"))
			switch {
			case tc.want == "" && err != nil:
				t.Fatal(err)
			case tc.want != "" && (err == nil || !strings.HasPrefix(err.Error(), tc.want)):
				t.Fatalf("error %v\nwant %s", err, tc.want)
			}
		})
	}
}

// TestRendererNetns holds the offline renderer's network namespace to what
// the kernel does: a child started with netnsAttr cannot connect even to
// loopback, while the same child without it can (the control).
func TestRendererNetns(t *testing.T) {
	if addr := os.Getenv("STACK_NETNS_PROBE"); addr != "" {
		c, err := net.DialTimeout("tcp", addr, 2*time.Second)
		if err == nil {
			c.Close()
			fmt.Println("connected")
		} else {
			fmt.Println("refused:", err)
		}
		return
	}
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer l.Close()
	var accepted atomic.Int32
	go func() {
		for {
			c, err := l.Accept()
			if err != nil {
				return
			}
			accepted.Add(1)
			c.Close()
		}
	}()
	probe := func(attr *syscall.SysProcAttr) string {
		cmd := exec.Command(os.Args[0], "-test.run=^TestRendererNetns$")
		cmd.Env = []string{"STACK_NETNS_PROBE=" + l.Addr().String()}
		cmd.SysProcAttr = attr
		out, err := cmd.Output()
		if err != nil {
			t.Skipf("cannot start a child in a network namespace here (%v): the renderer falls back to its refusing transport", err)
		}
		return string(out)
	}
	if out := probe(nil); !strings.Contains(out, "connected") {
		t.Fatalf("control: the child without a namespace did not connect: %s", out)
	}
	before := accepted.Load()
	if out := probe(netnsAttr()); !strings.Contains(out, "refused:") {
		t.Errorf("the child in its network namespace connected: %s", out)
	}
	time.Sleep(100 * time.Millisecond)
	if accepted.Load() != before {
		t.Error("the loopback server saw a connection from the namespaced child")
	}
}
