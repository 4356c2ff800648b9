package deploy

import (
	"context"
	"encoding/base64"
	"encoding/hex"
	"encoding/json"
	"errors"
	"os/exec"
	"strings"
	"testing"

	"golang.org/x/crypto/ssh"
	"k8s.io/apimachinery/pkg/apis/meta/v1/unstructured"
	"k8s.io/apimachinery/pkg/types"
	"sigs.k8s.io/controller-runtime/pkg/client"
	sigsyaml "sigs.k8s.io/yaml"
)

// genFiles is appFiles with a Secret app declaring generated keys beside a
// key of its own.
func genFiles(t testing.TB, env, ns, generate string) map[string]string {
	files := appFiles(env, ns)
	files["pods/app/kustomization.yaml"] = "namespace: " + ns + "\nresources: [namespace.yaml, config.yaml, secret.yaml, service.yaml, deployment.yaml]\n"
	files["pods/app/secret.yaml"] = secretManifest(t, map[string]string{GenerateAnnotation: generate}, map[string]any{"user": "YWRtaW4="})
	return files
}

func secretManifest(t testing.TB, annotations map[string]string, data map[string]any) string {
	t.Helper()
	obj := map[string]any{"apiVersion": "v1", "kind": "Secret", "type": "Opaque",
		"metadata": map[string]any{"name": "app", "annotations": annotations}}
	if data != nil {
		obj["data"] = data
	}
	b, err := sigsyaml.Marshal(obj)
	if err != nil {
		t.Fatal(err)
	}
	return string(b)
}

// secretOf reads the live Secret ns/app, decoded.
func (f *fixture) secretOf(ns string) map[string][]byte {
	f.t.Helper()
	data, err := f.d.Cluster.SecretData(context.Background(), Key{Namespace: ns, Name: "app"})
	if err != nil || data == nil {
		f.t.Fatalf("Secret %s/app: %v %v", ns, data, err)
	}
	return data
}

// notRecorded checks that no value of secret keys appears, plain or in
// base64, in any commit of the state repo nor in the deploy's output.
func (f *fixture) notRecorded(data map[string][]byte, keys ...string) {
	f.t.Helper()
	history, err := git(context.Background(), f.d.State.Dir, nil, "log", "-p", "--all", "--format=%B")
	if err != nil {
		f.t.Fatal(err)
	}
	if !strings.Contains(string(history), Redacted) {
		f.t.Errorf("the state repo never shows %s:\n%s", Redacted, history)
	}
	for _, k := range keys {
		v := data[k]
		if len(v) == 0 {
			f.t.Fatalf("no value for %s", k)
		}
		for _, s := range []string{string(v), base64.StdEncoding.EncodeToString(v)} {
			if strings.Contains(string(history), s) {
				f.t.Errorf("the state repo holds the value of %s", k)
			}
			if strings.Contains(f.out.String(), s) {
				f.t.Errorf("the deploy's output holds the value of %s", k)
			}
		}
	}
}

// TestDeployGeneratedSecret: the first deploy generates the declared keys
// with their shape, later deploys keep them, the state repo and the
// output never hold them, a key added to the declaration or deleted in the
// cluster is generated (alone), and drift is compared redacted.
func TestDeployGeneratedSecret(t *testing.T) {
	const decl = "token=alnum:32, key=hex:16, aes=base64:32, host=ssh-ed25519"
	f := newFixture(t, "gen", genFiles(t, "gen", "gen", decl))
	fakeDeploymentController(t, f.d.Cluster.Client, "gen")
	ctx := context.Background()

	res := f.mustDeploy(Options{})
	if got := actions(res)["Secret gen/app"]; got != "created" {
		t.Errorf("first deploy: Secret %s", got)
	}
	first := f.secretOf("gen")
	if len(first) != 6 || string(first["user"]) != "admin" {
		t.Fatalf("keys %v", keysOf(first))
	}
	if v := first["token"]; len(v) != 32 || strings.Trim(string(v), "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789") != "" {
		t.Errorf("token %d bytes, not 32 letters and digits", len(v))
	}
	if b, err := hex.DecodeString(string(first["key"])); err != nil || len(b) != 16 {
		t.Errorf("key is not 16 bytes in hex: %v", err)
	}
	if b, err := base64.StdEncoding.DecodeString(string(first["aes"])); err != nil || len(b) != 32 {
		t.Errorf("aes is not 32 bytes in base64: %v", err)
	}
	signer, err := ssh.ParsePrivateKey(first["host"])
	if err != nil {
		t.Fatalf("host is no OpenSSH private key: %v", err)
	}
	if string(ssh.MarshalAuthorizedKey(signer.PublicKey())) != string(first["host.pub"]) {
		t.Errorf("host.pub %q is not host's public key", first["host.pub"])
	}
	snap := f.stateEqualsLive()
	var recorded map[string]any
	if err := sigsyaml.Unmarshal(snap.Files["gen/secret/app.yaml"], &recorded); err != nil {
		t.Fatal(err)
	}
	wantData := map[string]any{"token": Redacted, "key": Redacted, "aes": Redacted, "host": Redacted,
		"host.pub": base64.StdEncoding.EncodeToString(first["host.pub"]), "user": "YWRtaW4="}
	if got, _ := json.Marshal(recorded["data"]); string(got) != mustJSON(t, wantData) {
		t.Errorf("state repo records data %s, want %s", got, mustJSON(t, wantData))
	}
	f.notRecorded(first, "token", "key", "aes", "host")

	// The second deploy keeps every value and does not even write the
	// Secret.
	rv := f.live("v1", "Secret", "gen", "app").GetResourceVersion()
	res = f.mustDeploy(Options{})
	if got := actions(res)["Secret gen/app"]; got != "unchanged" {
		t.Errorf("second deploy: Secret %s", got)
	}
	if f.live("v1", "Secret", "gen", "app").GetResourceVersion() != rv || fmtData(f.secretOf("gen")) != fmtData(first) {
		t.Error("the second deploy changed the Secret")
	}
	if drift, err := f.d.Diff(ctx, f.render()); err != nil || len(drift.Objects) != 0 {
		t.Errorf("diff after deploy: %+v %v", drift, err)
	}

	// A key added to the declaration: only it is new, and the dry run and
	// the deploy show it redacted.
	f.write(map[string]string{"pods/app/secret.yaml": secretManifest(t, map[string]string{GenerateAnnotation: decl + ", extra=alnum:16"}, map[string]any{"user": "YWRtaW4="})})
	dry := f.mustDeploy(Options{DryRun: true})
	for _, o := range dry.Objects {
		if o.Object != "Secret gen/app" {
			continue
		}
		var changes []string
		for _, c := range o.Changes {
			changes = append(changes, c.String())
		}
		want := `data.extra: (none) → "(generated)"; metadata.annotations["stack.hashbang.sh/generate"]: "` + decl + `" → "` + decl + `, extra=alnum:16"`
		if o.Action != "configured" || strings.Join(changes, "; ") != want {
			t.Errorf("dry run: %s %s\nwant %s", o.Action, strings.Join(changes, "; "), want)
		}
	}
	f.mustDeploy(Options{})
	second := f.secretOf("gen")
	if len(second["extra"]) != 16 {
		t.Errorf("extra: %d bytes", len(second["extra"]))
	}
	delete(second, "extra")
	if fmtData(second) != fmtData(first) {
		t.Error("adding a key changed the others")
	}

	// A key deleted in the cluster: drift says so, redacted; the next
	// deploy generates that key anew and keeps the rest.
	f.kubectl("-n", "gen", "patch", "secret", "app", "--type=json", "-p", `[{"op": "remove", "path": "/data/token"}]`)
	drift, err := f.d.Diff(ctx, f.render())
	if err != nil || len(drift.Objects) != 1 || len(drift.Objects[0].StateToLive) != 1 ||
		drift.Objects[0].StateToLive[0].String() != `data.token: "(generated)" → (none)` || len(drift.Objects[0].LiveToRender) != 1 {
		t.Fatalf("drift %+v %v", drift, err)
	}
	f.mustDeploy(Options{})
	third := f.secretOf("gen")
	if len(third["token"]) != 32 || string(third["token"]) == string(first["token"]) || string(third["host"]) != string(first["host"]) || string(third["aes"]) != string(first["aes"]) {
		t.Error("after the token was deleted: not a new token alone")
	}
	f.stateEqualsLive()
	f.notRecorded(third, "token", "key", "aes", "host", "extra")
	f.notRecorded(first, "token")
}

func fmtData(m map[string][]byte) string {
	b, _ := json.Marshal(m)
	return string(b)
}

func mustJSON(t testing.TB, v any) string {
	b, err := json.Marshal(v)
	if err != nil {
		t.Fatal(err)
	}
	return string(b)
}

// TestDeployGeneratedKeepsExisting: a Secret created before stack managed
// it (by kubectl, as older `stack up`s did) keeps its value.
func TestDeployGeneratedKeepsExisting(t *testing.T) {
	f := newFixture(t, "genold", genFiles(t, "genold", "genold", "token=alnum:32"))
	fakeDeploymentController(t, f.d.Cluster.Client, "genold")
	f.kubectl("create", "namespace", "genold")
	f.kubectl("-n", "genold", "create", "secret", "generic", "app", "--from-literal=token=made-before-stack-managed-it")
	res := f.mustDeploy(Options{})
	if got := actions(res)["Secret genold/app"]; got != "configured" {
		t.Errorf("Secret %s", got)
	}
	if data := f.secretOf("genold"); string(data["token"]) != "made-before-stack-managed-it" || string(data["user"]) != "admin" {
		t.Errorf("token %q user %q", data["token"], data["user"])
	}
	f.stateEqualsLive()
	f.notRecorded(f.secretOf("genold"), "token")
}

// TestDeployBadDeclaration: a declaration that does not parse, or sits on
// another kind than a Secret, stops the deploy before anything is written,
// with one line naming the object and the fix.
func TestDeployBadDeclaration(t *testing.T) {
	f := newFixture(t, "genbad", genFiles(t, "genbad", "genbad", "SECRET_KEY=random:64"))
	_, err := f.deploy(Options{})
	want := `Secret genbad/app: annotation stack.hashbang.sh/generate: key "SECRET_KEY": unknown generator "random:64": use hex:BYTES, base64:BYTES, alnum:CHARACTERS or ssh-ed25519`
	if err == nil || err.Error() != want {
		t.Errorf("error %v\nwant %s", err, want)
	}
	f.write(map[string]string{
		"pods/app/secret.yaml": secretManifest(t, map[string]string{GenerateAnnotation: "token=alnum:32"}, nil),
		"pods/app/config.yaml": "apiVersion: v1\nkind: ConfigMap\nmetadata: {name: app, annotations: {stack.hashbang.sh/generate: 'k=hex:32'}}\n",
	})
	_, err = f.deploy(Options{})
	want = "ConfigMap genbad/app: annotation stack.hashbang.sh/generate is for Secrets (apiVersion: v1, kind: Secret): move it to one"
	if err == nil || err.Error() != want {
		t.Errorf("error %v\nwant %s", err, want)
	}
	if f.live("v1", "Namespace", "", "genbad") != nil || f.stateLog() != nil {
		t.Error("a refused deploy changed the cluster or the state repo")
	}
}

// localExec runs a capture's command on this machine: the test control
// plane has no kubelet to exec in a pod. It records the calls.
type localExec struct {
	calls []string
}

func (l *localExec) exec(ctx context.Context, ns, pod, container string, command []string) ([]byte, error) {
	l.calls = append(l.calls, ns+"/"+pod+"/"+container)
	var stderr strings.Builder
	cmd := exec.CommandContext(ctx, command[0], command[1:]...)
	cmd.Stderr = &stderr
	out, err := cmd.Output()
	if err != nil {
		return nil, errors.New(strings.TrimSpace(err.Error() + ": " + stderr.String()))
	}
	return out, nil
}

// A capture that prints a random password, as `gitea admin user create
// --random-password` does.
const testCapture = `key: password
workload: deployment/app
container: app
command: [sh, -c, 'echo created; printf "password is %s\n" "$(tr -dc A-Za-z0-9 </dev/urandom | head -c 24)"']
match: 'password is (\w+)'
help: delete the user first
`

// TestCapture: the capture step waits for a ready pod, stores what its
// command printed under the key once, later deploys keep it, and the state
// repo and errors never show it.
func TestCapture(t *testing.T) {
	files := genFiles(t, "cap", "cap", "token=alnum:32")
	files["pods/app/secret.yaml"] = secretManifest(t, map[string]string{CaptureAnnotation: testCapture, ShowOnceAnnotation: "admin {user} / {password}"}, map[string]any{"user": "YWRtaW4="})
	f := newFixture(t, "cap", files)
	fakeDeploymentController(t, f.d.Cluster.Client, "cap")
	ctx := context.Background()
	f.mustDeploy(Options{})
	decls, err := Declarations(f.render())
	if err != nil || len(decls) != 1 || decls[0].Capture == nil || decls[0].Secret != (Key{APIVersion: "v1", Kind: "Secret", Namespace: "cap", Name: "app"}) {
		t.Fatalf("declarations %+v %v", decls, err)
	}
	d := decls[0]
	l := &localExec{}

	// No pod runs yet.
	if _, err := f.d.Cluster.Capture(ctx, d, l.exec); err == nil || err.Error() != "Secret cap/app: capture password: no pod of deployment cap/app with container app is running and ready: is it (kubectl -n cap get pods)?" || len(l.calls) != 0 {
		t.Fatalf("before any pod: %v, %d calls", err, len(l.calls))
	}
	// Two pods of the Deployment, one ready; one ready pod of another app.
	// (No controller manager makes the namespace's service account.)
	f.kubectl("-n", "cap", "create", "serviceaccount", "default")
	pod := func(name, app string, ready bool) {
		u := &unstructured.Unstructured{Object: map[string]any{"apiVersion": "v1", "kind": "Pod",
			"metadata": map[string]any{"name": name, "namespace": "cap", "labels": map[string]any{"app": app}},
			"spec":     map[string]any{"containers": []any{map[string]any{"name": "app", "image": "health"}}}}}
		if err := f.d.Cluster.Client.Create(ctx, u); err != nil {
			t.Fatal(err)
		}
		st := "False"
		if ready {
			st = "True"
		}
		patch, _ := json.Marshal(map[string]any{"status": map[string]any{"phase": "Running", "conditions": []any{map[string]any{"type": "Ready", "status": st}}}})
		if err := f.d.Cluster.Client.Status().Patch(ctx, u, client.RawPatch(types.MergePatchType, patch)); err != nil {
			t.Fatal(err)
		}
	}
	pod("app-a", "app", false)
	pod("app-b", "app", true)
	pod("other", "other", true)

	ok, err := f.d.Cluster.Capture(ctx, d, l.exec)
	if err != nil || !ok || strings.Join(l.calls, ",") != "cap/app-b/app" {
		t.Fatalf("capture: %v %v, calls %v", ok, err, l.calls)
	}
	data := f.secretOf("cap")
	if len(data["password"]) != 24 || string(data["user"]) != "admin" {
		t.Errorf("password %d bytes, user %q", len(data["password"]), data["user"])
	}
	if got := d.ShowOnce.Format(data); got != "admin admin / "+string(data["password"]) {
		t.Errorf("show-once %q", got)
	}
	// Captured once: the key exists, the command does not run again.
	if ok, err := f.d.Cluster.Capture(ctx, d, l.exec); ok || err != nil || len(l.calls) != 1 {
		t.Errorf("second capture: %v %v, %d calls", ok, err, len(l.calls))
	}
	// Deploys keep it (stack's apply does not own it), record it redacted.
	res := f.mustDeploy(Options{})
	if got := actions(res)["Secret cap/app"]; got != "unchanged" {
		t.Errorf("deploy after the capture: Secret %s", got)
	}
	if string(f.secretOf("cap")["password"]) != string(data["password"]) {
		t.Error("the deploy changed the captured password")
	}
	snap := f.stateEqualsLive()
	if !strings.Contains(string(snap.Files["cap/secret/app.yaml"]), "password: "+Redacted) {
		t.Errorf("state repo:\n%s", snap.Files["cap/secret/app.yaml"])
	}
	f.notRecorded(data, "password")
	if drift, err := f.d.Diff(ctx, f.render()); err != nil || len(drift.Objects) != 0 {
		t.Errorf("diff: %+v %v", drift, err)
	}

	// A failing command: its error and the declared help. A command whose
	// output does not match: not shown.
	other := *d
	c := *d.Capture
	c.Key, c.Command = "other", []string{"sh", "-c", "echo user already exists >&2; exit 1"}
	other.Capture = &c
	if _, err := f.d.Cluster.Capture(ctx, &other, l.exec); err == nil || !strings.Contains(err.Error(), "Secret cap/app: capture other: sh -c") ||
		!strings.Contains(err.Error(), "in pod cap/app-b: exit status 1: user already exists: delete the user first") || strings.Contains(err.Error(), "\n") {
		t.Errorf("failing command: %v", err)
	}
	c.Command = []string{"sh", "-c", "echo the-output-$((40+2))"}
	if _, err := f.d.Cluster.Capture(ctx, &other, l.exec); err == nil || !strings.Contains(err.Error(), `does not match "password is (\\w+)" (it is not shown`) || strings.Contains(err.Error(), "the-output-42") {
		t.Errorf("output without a match: %v", err)
	}
	if _, ok := f.secretOf("cap")["other"]; ok {
		t.Error("a failed capture stored a value")
	}
}
