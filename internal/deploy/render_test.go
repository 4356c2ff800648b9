package deploy

import (
	"bytes"
	"context"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"strings"
	"testing"

	"sigs.k8s.io/kustomize/kyaml/filesys"

	"github.com/hashbang/stack/internal/cluster"
	"github.com/hashbang/stack/internal/image"
)

const (
	testDigest  = "sha256:1111111111111111111111111111111111111111111111111111111111111111"
	otherDigest = "sha256:2222222222222222222222222222222222222222222222222222222222222222"
)

// writeTree writes files (path → content) under a new directory.
func writeTree(t testing.TB, files map[string]string) string {
	t.Helper()
	dir := t.TempDir()
	for name, content := range files {
		p := filepath.Join(dir, filepath.FromSlash(name))
		if err := os.MkdirAll(filepath.Dir(p), 0o755); err != nil {
			t.Fatal(err)
		}
		if err := os.WriteFile(p, []byte(content), 0o644); err != nil {
			t.Fatal(err)
		}
	}
	return dir
}

// repoFiles is this repository's pods/ and infra/ overlays, with a test
// images lock.
func repoFiles(t testing.TB) map[string]string {
	t.Helper()
	files := map[string]string{"images/images.lock": "gitea " + testDigest + "\nhealth " + testDigest + "\nstack " + testDigest + "\n"}
	for _, dir := range TreeDirs {
		err := filepath.WalkDir(filepath.Join("..", "..", dir), func(p string, d os.DirEntry, err error) error {
			if err != nil || d.IsDir() {
				return err
			}
			rel, _ := filepath.Rel(filepath.Join("..", ".."), p)
			data, err := os.ReadFile(p)
			files[filepath.ToSlash(rel)] = string(data)
			return err
		})
		if err != nil {
			t.Fatal(err)
		}
	}
	return files
}

// configHash is the suffix kustomize gives the ConfigMap of config/.
var configHash = regexp.MustCompile(`stack-config-[a-z0-9]{10}`)

func testEnv(name string) *cluster.Environment {
	return &cluster.Environment{Name: name, Backend: cluster.Local, Cluster: name, Registry: "registry.localhost:5000", NodeDir: "/cache/node/" + name}
}

// TestNodeVolume: a relative hostPath of a PersistentVolume is under a local
// environment's node directory, and refused elsewhere or when it leaves it.
func TestNodeVolume(t *testing.T) {
	pv := func(p string) string {
		return "apiVersion: v1\nkind: PersistentVolume\nmetadata: {name: data}\nspec:\n  capacity: {storage: 1Gi}\n  accessModes: [ReadWriteOnce]\n  hostPath: {path: " + p + "}\n"
	}
	for _, tc := range []struct {
		path, backend, want, err string
	}{
		{path: "volumes/gitea", backend: "local", want: "/cache/node/development/volumes/gitea"},
		{path: "./volumes//gitea/", backend: "local", want: "/cache/node/development/volumes/gitea"},
		{path: "/srv/gitea", backend: "local", want: "/srv/gitea"},
		{path: "/srv/gitea", backend: "kubeconfig", want: "/srv/gitea"},
		{path: "volumes/gitea", backend: "kubeconfig", err: "only a local environment"},
		{path: "../etcd", backend: "local", err: "below the node's data directory"},
		{path: ".", backend: "local", err: "below the node's data directory"},
	} {
		dir := writeTree(t, map[string]string{
			"images/images.lock":                   "",
			"infra/development/kustomization.yaml": "resources: [pv.yaml]\n",
			"infra/development/pv.yaml":            pv(tc.path),
		})
		env := testEnv("development")
		if tc.backend != "local" {
			env.Backend, env.NodeDir = cluster.Kubeconfig, ""
		}
		r, err := Render(mustTree(t, dir), env)
		if tc.err != "" {
			if err == nil || !strings.Contains(err.Error(), tc.err) {
				t.Errorf("%s on %s: error %v, want %q", tc.path, tc.backend, err, tc.err)
			}
			continue
		}
		if err != nil {
			t.Fatalf("%s on %s: %v", tc.path, tc.backend, err)
		}
		got := r.Objects[0].Object["spec"].(map[string]any)["hostPath"].(map[string]any)["path"]
		if got != tc.want {
			t.Errorf("%s on %s: path %v, want %s", tc.path, tc.backend, got, tc.want)
		}
		if vols := NodeVolumes(r, env); tc.backend == "local" && strings.HasPrefix(tc.want, "/cache/") && (len(vols) != 1 || vols[0] != tc.want) {
			t.Errorf("NodeVolumes = %v, want [%s]", vols, tc.want)
		}
	}
}

func mustTree(t testing.TB, dir string) *Tree {
	t.Helper()
	tr, err := TreeFromDir(context.Background(), dir)
	if err != nil {
		t.Fatal(err)
	}
	return tr
}

func TestRenderRepository(t *testing.T) {
	dir := writeTree(t, repoFiles(t))
	r, err := Render(mustTree(t, dir), testEnv("development"))
	if err != nil {
		t.Fatal(err)
	}
	var keys []string
	for _, u := range r.Objects {
		keys = append(keys, KeyOf(u).String())
	}
	want := "Namespace gitea, Namespace health, Namespace stack, ConfigMap gitea/gitea-config, ConfigMap stack/stack-config-HASH, Secret gitea/gitea-admin, Secret gitea/gitea-secrets, Secret stack/stack-keys, " +
		"Service gitea/gitea, Service health/health, Service stack/stack, Deployment.apps gitea/gitea, Deployment.apps health/health, Deployment.apps stack/stack, " +
		"PersistentVolume gitea-data, PersistentVolume stack-data, PersistentVolumeClaim gitea/gitea-data, PersistentVolumeClaim stack/stack-data, DaemonSet.apps stack/registry-proxy"
	// The ConfigMap of config/ is named by its contents' hash.
	if got := configHash.ReplaceAllString(strings.Join(keys, ", "), "stack-config-HASH"); got != want {
		t.Errorf("objects %s, want %s", got, want)
	}
	// The Secrets declare their values (generate.go), and no value.
	decls, err := Declarations(r)
	if err != nil || len(decls) != 3 {
		t.Fatalf("declarations %v %v", decls, err)
	}
	if c, g := decls[0].Capture, decls[1].Generate; c == nil || c.Key != "password" || c.WorkloadKind != "Deployment" || decls[0].ShowOnce == nil ||
		len(g) != 1 || g[0].String() != "secret-key=alnum:64" {
		t.Errorf("declarations %+v %+v", decls[0], decls[1])
	}
	// What gitea 1.26's `admin user create --random-password` prints.
	if pw := decls[0].Capture.Find([]byte("generated random password is 'aB3'x9'\nNew user 'stack-admin' has been successfully created!\n")); string(pw) != "aB3'x9" {
		t.Errorf("the admin's capture finds %q", pw)
	}
	out, err := r.YAML()
	if err != nil {
		t.Fatal(err)
	}
	for _, s := range []string{
		"image: registry.localhost:5000/health@" + testDigest,
		"hostPort: 2321", "hostIP: 127.0.0.1",
		"runAsNonRoot: true", "readOnlyRootFilesystem: true", "allowPrivilegeEscalation: false",
	} {
		if !bytes.Contains(out, []byte(s)) {
			t.Errorf("render lacks %q:\n%s", s, out)
		}
	}
	if r.Images["health"] != "registry.localhost:5000/health@"+testDigest {
		t.Errorf("images %v", r.Images)
	}
	// Deterministic: the same tree renders the same bytes.
	for range 3 {
		r2, err := Render(mustTree(t, dir), testEnv("development"))
		if err != nil {
			t.Fatal(err)
		}
		out2, _ := r2.YAML()
		if !bytes.Equal(out, out2) {
			t.Fatal("two renders of the same tree differ")
		}
	}
	prod, err := Render(mustTree(t, dir), testEnv("production"))
	if err != nil {
		t.Fatal(err)
	}
	out, _ = prod.YAML()
	if !bytes.Contains(out, []byte("replicas: 2")) || bytes.Contains(out, []byte("hostPort")) {
		t.Errorf("production render:\n%s", out)
	}
}

func TestRenderErrors(t *testing.T) {
	base := func(extra map[string]string) map[string]string {
		files := map[string]string{
			"images/images.lock":          "health " + testDigest + "\n",
			"pods/app/kustomization.yaml": "resources: [pod.yaml]\n",
			"pods/app/pod.yaml": `apiVersion: v1
kind: Pod
metadata: {name: app, namespace: app}
spec:
  initContainers: [{name: init, image: health}]
  containers: [{name: app, image: IMAGE}]
`,
			"infra/dev/kustomization.yaml": "resources: [../../pods/app]\n",
		}
		for k, v := range extra {
			files[k] = v
		}
		return files
	}
	pod := func(img string) map[string]string {
		return map[string]string{"pods/app/pod.yaml": strings.Replace(base(nil)["pods/app/pod.yaml"], "IMAGE", img, 1)}
	}
	for _, tc := range []struct {
		name  string
		files map[string]string
		want  string
	}{
		{"image not in lock", pod("gitea"), `Pod app/app: container "app": image "gitea" is not in images/images.lock: build it with ` + "`stack build gitea`"},
		{"tag of a lock image", pod("health:latest"), `image "health:latest" names a tag: write "health"`},
		{"other digest", pod("health@" + otherDigest), "pinned to another digest than images/images.lock"},
		{"outside tag", pod("quay.example/app:1.0"), `image "quay.example/app:1.0" is referenced by tag only`},
		{"bad reference", pod("UPPER CASE"), "is not an image reference"},
		{"remote base", map[string]string{"infra/dev/kustomization.yaml": "resources: [../../pods/app, \"https://example.org/repo//base?ref=v1\"]\n"}, `infra/dev/kustomization.yaml: resources[1]: "https://example.org/repo//base?ref=v1" is a remote URL: vendor the file into the repository and name its path`},
		{"missing resource", map[string]string{"infra/dev/kustomization.yaml": "resources: [../../pods/nothing]\n"}, `infra/dev/kustomization.yaml: resources[0]: "../../pods/nothing" is not a file or directory of pods/ or infra/`},
		{"outside the tree", map[string]string{"infra/dev/kustomization.yaml": "resources: [../../images]\n", "images/x.yaml": "a: b\n"}, `resources[0]: "../../images" is not a file or directory of pods/ or infra/ or config/`},
		{"broken overlay", map[string]string{"infra/dev/kustomization.yaml": "resources: [../../pods/app]\npatches: [{path: p.yaml}]\n", "infra/dev/p.yaml": "kind: [\n"}, "render infra/dev:"},
		{"missing patch", map[string]string{"infra/dev/kustomization.yaml": "resources: [../../pods/app]\npatches: [{path: nope.yaml}]\n"}, `infra/dev/kustomization.yaml: patches[0].path: "nope.yaml" is not a file or directory`},
		{"no overlay", map[string]string{"infra/dev/kustomization.yaml": ""}, ""},
		{"duplicate", map[string]string{"infra/dev/kustomization.yaml": "resources: [../../pods/app, ../../pods/app/pod.yaml]\n"}, "render infra/dev:"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			files := base(nil)
			for k, v := range pod("health") {
				files[k] = v
			}
			for k, v := range tc.files {
				files[k] = v
			}
			dir := writeTree(t, files)
			if tc.name == "no overlay" {
				os.Remove(filepath.Join(dir, "infra/dev/kustomization.yaml"))
				tc.want = "infra/dev has no kustomization.yaml"
			}
			_, err := Render(mustTree(t, dir), testEnv("dev"))
			if err == nil || !strings.Contains(err.Error(), tc.want) {
				t.Fatalf("error %v, want %q", err, tc.want)
			}
			if strings.Contains(err.Error(), "\n") && tc.name != "duplicate" {
				t.Errorf("error spans lines: %q", err)
			}
		})
	}
}

func TestRenderPinsNestedAndOutsideImages(t *testing.T) {
	dir := writeTree(t, map[string]string{
		"images/images.lock":           "health " + testDigest + "\n",
		"infra/dev/kustomization.yaml": "resources: [cron.yaml]\n",
		"infra/dev/cron.yaml": `apiVersion: batch/v1
kind: CronJob
metadata: {name: c, namespace: x}
spec:
  schedule: "@daily"
  jobTemplate:
    spec:
      template:
        spec:
          restartPolicy: Never
          containers:
          - {name: a, image: "registry.localhost:5000/health"}
          - {name: b, image: "quay.example/tool@` + otherDigest + `"}
`,
	})
	r, err := Render(mustTree(t, dir), testEnv("dev"))
	if err != nil {
		t.Fatal(err)
	}
	out, _ := r.YAML()
	for _, s := range []string{"image: registry.localhost:5000/health@" + testDigest, "image: quay.example/tool@" + otherDigest} {
		if !bytes.Contains(out, []byte(s)) {
			t.Errorf("render lacks %q:\n%s", s, out)
		}
	}
}

// TestTreeFromCommit renders a commit's tree, not the work tree, and tells
// a dirty work tree.
func TestTreeFromCommit(t *testing.T) {
	dir := writeTree(t, repoFiles(t))
	run := func(args ...string) string {
		cmd := exec.Command("git", args...)
		cmd.Dir = dir
		cmd.Env = append(os.Environ(), "GIT_AUTHOR_NAME=t", "GIT_AUTHOR_EMAIL=t@example.org", "GIT_COMMITTER_NAME=t", "GIT_COMMITTER_EMAIL=t@example.org")
		out, err := cmd.CombinedOutput()
		if err != nil {
			t.Fatalf("git %v: %v\n%s", args, err, out)
		}
		return strings.TrimSpace(string(out))
	}
	run("init", "-q")
	run("add", ".")
	run("commit", "-q", "-m", "stack")
	head := run("rev-parse", "HEAD")
	wt := mustTree(t, dir)
	if wt.Commit != head || wt.Dirty {
		t.Errorf("work tree: commit %s dirty %v, want %s clean", wt.Commit, wt.Dirty, head)
	}
	// Change the work tree: the commit's tree stays as committed.
	os.WriteFile(filepath.Join(dir, "infra/development/kustomization.yaml"), []byte("resources: [../../pods/health]\n"), 0o644)
	if !mustTree(t, dir).Dirty {
		t.Error("changed overlay: work tree not dirty")
	}
	ct, err := TreeFromCommit(context.Background(), dir, "HEAD")
	if err != nil {
		t.Fatal(err)
	}
	if ct.Commit != head || ct.Lock["health"].String() != testDigest {
		t.Errorf("commit tree %s lock %v", ct.Commit, ct.Lock)
	}
	r, err := Render(ct, testEnv("development"))
	if err != nil {
		t.Fatal(err)
	}
	out, _ := r.YAML()
	if !bytes.Contains(out, []byte("hostPort: 2321")) {
		t.Errorf("commit render lost the committed overlay:\n%s", out)
	}
	if _, err := TreeFromCommit(context.Background(), dir, "nope"); err == nil || !strings.Contains(err.Error(), `"nope" names no commit`) {
		t.Errorf("bad rev: %v", err)
	}
}

func TestTreeRefusesSymlinks(t *testing.T) {
	dir := writeTree(t, map[string]string{"infra/dev/kustomization.yaml": "resources: [x.yaml]\n"})
	os.Symlink("/etc/passwd", filepath.Join(dir, "infra/dev/x.yaml"))
	_, err := TreeFromDir(context.Background(), dir)
	if err == nil || !strings.Contains(err.Error(), "infra/dev/x.yaml is a symbolic link") {
		t.Errorf("error %v", err)
	}
}

func TestPinImage(t *testing.T) {
	lock := image.Lock{}
	lock["health"] = mustDigest(testDigest)
	for _, tc := range []struct{ ref, want, name, err string }{
		{"health", "reg:5000/health@" + testDigest, "health", ""},
		{"reg:5000/health", "reg:5000/health@" + testDigest, "health", ""},
		{"health@" + testDigest, "reg:5000/health@" + testDigest, "health", ""},
		{"other.example/health@" + otherDigest, "other.example/health@" + otherDigest, "", ""},
		{"other.example/health:1", "", "", "tag only"},
		{"reg:5000/gitea", "", "", "tag only"},
		{"gitea", "", "", "stack build gitea"},
		{"", "", "", "no image"},
	} {
		got, name, err := PinImage(tc.ref, "reg:5000", lock)
		if tc.err != "" {
			if err == nil || !strings.Contains(err.Error(), tc.err) {
				t.Errorf("%q: error %v, want %q", tc.ref, err, tc.err)
			}
			continue
		}
		if err != nil || got != tc.want || name != tc.name {
			t.Errorf("%q: %q %q %v, want %q %q", tc.ref, got, name, err, tc.want, tc.name)
		}
	}
}

func FuzzPinImage(f *testing.F) {
	for _, s := range []string{"health", "health:1", "reg:5000/health", "a/b/c@" + testDigest, "Bad Ref", "health@sha256:12", ":", "@"} {
		f.Add(s)
	}
	lock := image.Lock{"health": mustDigest(testDigest)}
	f.Fuzz(func(t *testing.T, ref string) {
		got, _, err := PinImage(ref, "reg:5000", lock)
		if err != nil {
			if strings.Contains(err.Error(), "\n") {
				t.Errorf("error spans lines: %q", err)
			}
			return
		}
		if !strings.Contains(got, "@sha256:") {
			t.Errorf("%q pinned to %q, without a digest", ref, got)
		}
	})
}

// FuzzRender renders an overlay whose resource file is the fuzzer's input:
// any manifest gives objects or an error, never a panic, and what renders
// has every image pinned.
func FuzzRender(f *testing.F) {
	f.Add("apiVersion: v1\nkind: Pod\nmetadata: {name: a}\nspec: {containers: [{name: a, image: health}]}\n")
	f.Add("apiVersion: v1\nkind: ConfigMap\nmetadata: {name: a}\ndata: {a: '1'}\n---\napiVersion: v1\nkind: Namespace\nmetadata: {name: b}\n")
	f.Add("kind: List\nitems: []\n")
	f.Add("{")
	f.Add("apiVersion: apps/v1\nkind: Deployment\nmetadata: {name: d}\nspec: {template: {spec: {initContainers: [{name: i, image: 'x:1'}]}}}\n")
	env := testEnv("dev")
	f.Fuzz(func(t *testing.T, manifest string) {
		tr := &Tree{Lock: image.Lock{"health": mustDigest(testDigest)}, fs: filesys.MakeFsInMemory()}
		tr.fs.MkdirAll("/infra/dev")
		tr.fs.WriteFile("/infra/dev/kustomization.yaml", []byte("resources: [r.yaml]\n"))
		tr.fs.WriteFile("/infra/dev/r.yaml", []byte(manifest))
		r, err := Render(tr, env)
		if err != nil {
			return
		}
		for _, u := range r.Objects {
			walkContainers(u.Object, func(c map[string]any) {
				if s, _ := c["image"].(string); !strings.Contains(s, "@sha256:") {
					t.Errorf("%s: image %q not pinned", KeyOf(u), s)
				}
			})
		}
	})
}

// TestCompare shows how far this repository's environments are from
// development: production by the hostPort, its no-surge rollout and its
// replicas, the others by the hostPort and the rollout only; gitea runs in
// development alone (the seed's services table lists it N/A elsewhere), and
// so does the cluster's own stack serve until remote clusters can bootstrap
// it.
func TestCompare(t *testing.T) {
	tr := mustTree(t, writeTree(t, repoFiles(t)))
	devs, err := Compare(tr, testEnv("development"), []*cluster.Environment{testEnv("production"), testEnv("staging")})
	if err != nil {
		t.Fatal(err)
	}
	got := map[string][]string{}
	for _, d := range devs {
		for _, c := range d.Changed {
			for _, ch := range c.Changes {
				got[d.Env] = append(got[d.Env], c.Object+" "+ch.String())
			}
		}
		if len(d.Added) != 0 || configHash.ReplaceAllString(fmt.Sprint(d.Removed), "stack-config-HASH") != "[ConfigMap gitea/gitea-config ConfigMap stack/stack-config-HASH DaemonSet.apps stack/registry-proxy Deployment.apps gitea/gitea Deployment.apps stack/stack Namespace gitea Namespace stack PersistentVolume gitea-data PersistentVolume stack-data PersistentVolumeClaim gitea/gitea-data PersistentVolumeClaim stack/stack-data Secret gitea/gitea-admin Secret gitea/gitea-secrets Secret stack/stack-keys Service gitea/gitea Service stack/stack]" {
			t.Errorf("%s: added %v removed %v", d.Env, d.Added, d.Removed)
		}
	}
	port := "Deployment.apps health/health spec.template.spec.containers[health].ports[http]."
	strategy := "Deployment.apps health/health spec.strategy: map[rollingUpdate:map[maxSurge:0 maxUnavailable:1] type:R... → (none)"
	want := map[string][]string{
		"production": {"Deployment.apps health/health spec.replicas: 1 → 2", strategy, port + `hostIP: "127.0.0.1" → (none)`, port + "hostPort: 2321 → (none)"},
		"staging":    {strategy, port + `hostIP: "127.0.0.1" → (none)`, port + "hostPort: 2321 → (none)"},
	}
	if fmt.Sprint(got) != fmt.Sprint(want) {
		t.Errorf("deviations:\n%v\nwant:\n%v", got, want)
	}
	if devs[0].Count != 20 || devs[1].Count != 19 {
		t.Errorf("counts %d %d", devs[0].Count, devs[1].Count)
	}
}
