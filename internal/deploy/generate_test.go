package deploy

import (
	"encoding/base64"
	"encoding/hex"
	"fmt"
	"reflect"
	"strings"
	"testing"

	"golang.org/x/crypto/ssh"
	"k8s.io/apimachinery/pkg/apis/meta/v1/unstructured"
	sigsyaml "sigs.k8s.io/yaml"
)

func TestParseGenerate(t *testing.T) {
	for _, tc := range []struct {
		in   string
		want string // the entries, String()-joined by ", "
		err  string
	}{
		{in: "secret-key=alnum:64", want: "secret-key=alnum:64"},
		{in: " a=hex:32 , b=base64:16,\nc.key=ssh-ed25519\n", want: "a=hex:32, b=base64:16, c.key=ssh-ed25519"},
		{in: "a=alnum:4096,,\n\n", want: "a=alnum:4096"},
		{in: "", err: "no entry"},
		{in: " , \n", err: "no entry"},
		{in: "secret-key", err: `entry "secret-key" is not KEY=GENERATOR: write e.g. secret-key=alnum:64`},
		{in: "=alnum:64", err: "is not KEY=GENERATOR"},
		{in: "a=", err: "is not KEY=GENERATOR"},
		{in: "a b=alnum:64", err: `key "a b" is not a Secret key`},
		{in: "..a=alnum:64", err: "is not a Secret key"},
		{in: "a=random:64", err: `key "a": unknown generator "random:64": use hex:BYTES, base64:BYTES, alnum:CHARACTERS or ssh-ed25519`},
		{in: "a=alnum", err: `key "a": alnum needs a length: write e.g. a=alnum:32`},
		{in: "a=hex:", err: `length "" is not a number`},
		{in: "a=hex:-32", err: `length "-32" is not a number`},
		{in: "a=hex:+32", err: `length "+32" is not a number`},
		{in: "a=hex:15", err: "length 15 is out of range: use 16 to 4096"},
		{in: "a=base64:4097", err: "out of range"},
		{in: "a=hex:99999999999999999999", err: "is not a number"},
		{in: "a=ssh-ed25519:32", err: "ssh-ed25519 takes no length: write a=ssh-ed25519"},
		{in: "a=hex:32, a=alnum:32", err: `key "a" is generated twice: keep one entry`},
		{in: "k=ssh-ed25519, k.pub=hex:32", err: `key "k.pub" is generated twice`},
		{in: strings.Repeat("k", 250) + "=ssh-ed25519", err: "is not a Secret key"},
	} {
		got, err := ParseGenerate(tc.in)
		if tc.err != "" {
			if err == nil || !strings.Contains(err.Error(), tc.err) {
				t.Errorf("ParseGenerate(%q) = %v, %v; want error with %q", tc.in, got, err, tc.err)
			}
			continue
		}
		if err != nil {
			t.Errorf("ParseGenerate(%q): %v", tc.in, err)
			continue
		}
		var s []string
		for _, g := range got {
			s = append(s, g.String())
		}
		if strings.Join(s, ", ") != tc.want {
			t.Errorf("ParseGenerate(%q) = %s, want %s", tc.in, strings.Join(s, ", "), tc.want)
		}
	}
}

// TestGeneratedValues checks each generator's shape, and that two values
// differ.
func TestGeneratedValues(t *testing.T) {
	for _, tc := range []struct {
		spec  string
		check func(v string) error
	}{
		{"hex:32", func(v string) error {
			b, err := hex.DecodeString(v)
			if err != nil || len(b) != 32 || strings.ToLower(v) != v {
				return fmt.Errorf("not 32 bytes of lowercase hex: %v", err)
			}
			return nil
		}},
		{"base64:48", func(v string) error {
			b, err := base64.StdEncoding.DecodeString(v)
			if err != nil || len(b) != 48 {
				return fmt.Errorf("not 48 bytes of base64: %v", err)
			}
			return nil
		}},
		{"alnum:64", func(v string) error {
			if len(v) != 64 || strings.Trim(v, "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789") != "" {
				return fmt.Errorf("not 64 letters and digits")
			}
			return nil
		}},
	} {
		gs, err := ParseGenerate("k=" + tc.spec)
		if err != nil {
			t.Fatal(err)
		}
		a, err := gs[0].value()
		if err != nil {
			t.Fatal(err)
		}
		b, _ := gs[0].value()
		if len(a) != 1 || string(a["k"]) == string(b["k"]) {
			t.Errorf("%s: %d keys, or the same value twice", tc.spec, len(a))
		}
		if err := tc.check(string(a["k"])); err != nil {
			t.Errorf("%s: %q: %v", tc.spec, a["k"], err)
		}
	}
	// Every letter and digit shows up, and nothing else: the alphabet is
	// whole.
	g := Generated{Key: "k", Kind: GenAlnum, Length: 4096}
	v, _ := g.value()
	seen := map[byte]bool{}
	for _, c := range v["k"] {
		seen[c] = true
	}
	if len(seen) != 62 {
		t.Errorf("4096 alnum characters use %d distinct characters, want 62", len(seen))
	}

	// ssh-ed25519: an OpenSSH private key, and its public key line.
	g = Generated{Key: "host", Kind: GenSSHEd25519}
	keys, err := g.value()
	if err != nil {
		t.Fatal(err)
	}
	priv, err := ssh.ParsePrivateKey(keys["host"])
	if err != nil || !strings.HasPrefix(string(keys["host"]), "-----BEGIN OPENSSH PRIVATE KEY-----\n") {
		t.Fatalf("private key %q: %v", keys["host"], err)
	}
	pub, _, _, _, err := ssh.ParseAuthorizedKey(keys["host.pub"])
	if err != nil || pub.Type() != "ssh-ed25519" || string(pub.Marshal()) != string(priv.PublicKey().Marshal()) {
		t.Errorf("public key %q does not match: %v", keys["host.pub"], err)
	}
}

func secret(t testing.TB, y string) *unstructured.Unstructured {
	t.Helper()
	u := &unstructured.Unstructured{}
	if err := sigsyaml.Unmarshal([]byte(y), &u.Object); err != nil {
		t.Fatal(err)
	}
	return u
}

const captureDecl = `
      key: password
      workload: deployment/app
      container: app
      command: [/bin/app, admin, create]
      match: "password is '(.+)'"`

// TestDeclOf: what each bad declaration says, on one line, naming the
// object and the fix.
func TestDeclOf(t *testing.T) {
	for _, tc := range []struct {
		name, obj, err string
	}{
		{"none", "apiVersion: v1\nkind: Secret\nmetadata: {name: s, namespace: ns}\n", ""},
		{"generate", "apiVersion: v1\nkind: Secret\nmetadata: {name: s, namespace: ns, annotations: {stack.hashbang.sh/generate: 'k=alnum:32'}}\ndata: {user: YQ==}\n", ""},
		{"all three", "apiVersion: v1\nkind: Secret\nmetadata:\n  name: s\n  annotations:\n    stack.hashbang.sh/generate: 'k=alnum:32'\n    stack.hashbang.sh/show-once: 'admin {user} / {password}, key {k}'\n    stack.hashbang.sh/capture: |" + captureDecl + "\ndata: {user: YQ==}\n", ""},
		{"not a secret", "apiVersion: v1\nkind: ConfigMap\nmetadata: {name: c, namespace: ns, annotations: {stack.hashbang.sh/generate: 'k=alnum:32'}}\n",
			"ConfigMap ns/c: annotation stack.hashbang.sh/generate is for Secrets (apiVersion: v1, kind: Secret): move it to one"},
		{"bad generator", "apiVersion: v1\nkind: Secret\nmetadata: {name: s, namespace: ns, annotations: {stack.hashbang.sh/generate: 'SECRET_KEY=random:64'}}\n",
			`Secret ns/s: annotation stack.hashbang.sh/generate: key "SECRET_KEY": unknown generator "random:64": use hex:BYTES, base64:BYTES, alnum:CHARACTERS or ssh-ed25519`},
		{"generated and static", "apiVersion: v1\nkind: Secret\nmetadata: {name: s, annotations: {stack.hashbang.sh/generate: 'k=alnum:32'}}\nstringData: {k: v}\n",
			`Secret default/s: annotation stack.hashbang.sh/generate: key "k" is also set by the manifest's data: keep one`},
		{"captured and generated", "apiVersion: v1\nkind: Secret\nmetadata:\n  name: s\n  annotations:\n    stack.hashbang.sh/generate: 'password=alnum:32'\n    stack.hashbang.sh/capture: |" + captureDecl + "\n",
			`annotation stack.hashbang.sh/capture: key "password" is also set by stack.hashbang.sh/generate: keep one`},
		{"show-once unknown key", "apiVersion: v1\nkind: Secret\nmetadata: {name: s, annotations: {stack.hashbang.sh/generate: 'k=alnum:32', stack.hashbang.sh/show-once: 'the key: {key}'}}\n",
			`annotation stack.hashbang.sh/show-once: {key} is no key of the Secret: add it to data, stack.hashbang.sh/generate or stack.hashbang.sh/capture`},
		{"show-once of static keys", "apiVersion: v1\nkind: Secret\nmetadata: {name: s, annotations: {stack.hashbang.sh/show-once: 'user {user}'}}\ndata: {user: YQ==}\n",
			"it shows no generated or captured key"},
		{"bad capture", "apiVersion: v1\nkind: Secret\nmetadata: {name: s, annotations: {stack.hashbang.sh/capture: 'key: k'}}\n",
			"Secret default/s: annotation stack.hashbang.sh/capture: workload, container, match, command missing: give key, workload (deployment/NAME), container, command (a list) and match (a regular expression with one group)"},
	} {
		d, err := DeclOf(secret(t, tc.obj))
		if tc.err == "" {
			if err != nil {
				t.Errorf("%s: %v", tc.name, err)
			} else if (d == nil) != (tc.name == "none") {
				t.Errorf("%s: declarations %+v", tc.name, d)
			}
			continue
		}
		if err == nil || !strings.Contains(err.Error(), tc.err) || strings.Contains(err.Error(), "\n") {
			t.Errorf("%s: error %v\nwant one line with %q", tc.name, err, tc.err)
		}
	}
}

func TestParseCapture(t *testing.T) {
	c, err := ParseCapture(captureDecl + "\n      help: delete the user\n")
	if err != nil {
		t.Fatal(err)
	}
	if c.Key != "password" || c.WorkloadKind != "Deployment" || c.WorkloadName != "app" || c.Container != "app" ||
		!reflect.DeepEqual(c.Command, []string{"/bin/app", "admin", "create"}) || c.Help != "delete the user" {
		t.Errorf("parsed %+v", c)
	}
	if got := c.Find([]byte("created\npassword is 'it's s3cret'\n")); string(got) != "it's s3cret" {
		t.Errorf("Find = %q", got)
	}
	if got := c.Find([]byte("no password\n")); got != nil {
		t.Errorf("Find = %q, want nil", got)
	}
	for _, tc := range []struct{ in, err string }{
		{"", "not a YAML mapping"},
		{"[a, b]", "not a YAML mapping"},
		{captureDecl + "\n      extra: 1", "field extra not found"},
		{strings.Replace(captureDecl, "deployment/app", "pod/app", 1), `workload "pod/app": write deployment/NAME, statefulset/NAME or daemonset/NAME`},
		{strings.Replace(captureDecl, "deployment/app", "deployment/App", 1), "workload"},
		{strings.Replace(captureDecl, "container: app", "container: A_p", 1), `container "A_p" is not a container name`},
		{strings.Replace(captureDecl, "'(.+)'", "'.+'", 1), "has 0 groups: it needs exactly one, around the value"},
		{strings.Replace(captureDecl, "'(.+)'", "'(.+)(.)'", 1), "has 2 groups"},
		{strings.Replace(captureDecl, "'(.+)'", "'(.+'", 1), "write a Go regular expression"},
		{strings.Replace(captureDecl, "key: password", "key: pass word", 1), "is not a Secret key"},
		{strings.Replace(captureDecl, "[/bin/app, admin, create]", "[]", 1), "command missing"},
		{strings.Replace(captureDecl, "[/bin/app, admin, create]", "/bin/app", 1), "not a YAML mapping"},
	} {
		if _, err := ParseCapture(tc.in); err == nil || !strings.Contains(err.Error(), tc.err) || strings.Contains(err.Error(), "\n") {
			t.Errorf("ParseCapture(%q): %v, want one line with %q", tc.in, err, tc.err)
		}
	}
}

func TestParseShowOnce(t *testing.T) {
	s, err := ParseShowOnce("admin: {username} / {password}")
	if err != nil {
		t.Fatal(err)
	}
	if got := s.Format(map[string][]byte{"username": []byte("root"), "password": []byte("pw")}); got != "admin: root / pw" {
		t.Errorf("Format = %q", got)
	}
	if fmt.Sprint(s.Keys()) != "[username password]" || s.String() != "admin: {username} / {password}" {
		t.Errorf("keys %v, string %q", s.Keys(), s.String())
	}
	for _, tc := range []struct{ in, err string }{
		{"", "names no key"},
		{"no key", "names no key"},
		{"a {b", "a '{' is not closed"},
		{"a } {b}", "a '}' closes no {KEY}"},
		{"{}", "is not a Secret key"},
		{"{a b}", "is not a Secret key"},
		{"{a}\n{b}", "it is one line"},
	} {
		if _, err := ParseShowOnce(tc.in); err == nil || !strings.Contains(err.Error(), tc.err) {
			t.Errorf("ParseShowOnce(%q): %v, want %q", tc.in, err, tc.err)
		}
	}
}

// TestGenerateSecret: the live values are kept, missing ones generated,
// the ssh public key derived when only the private key is live; redaction
// hides generated and captured values and keeps the public key.
func TestGenerateSecret(t *testing.T) {
	u := secret(t, `apiVersion: v1
kind: Secret
metadata:
  name: s
  annotations:
    stack.hashbang.sh/generate: "a=alnum:32, b=hex:16, host=ssh-ed25519"
    stack.hashbang.sh/capture: |`+captureDecl+`
data: {user: YQ==}
`)
	first := u.DeepCopy()
	if err := generateSecret(first, nil); err != nil {
		t.Fatal(err)
	}
	data, _, _ := unstructured.NestedStringMap(first.Object, "data")
	if len(data) != 5 || data["user"] != "YQ==" {
		t.Fatalf("first: %v", data)
	}
	// The cluster keeps a, host; b was deleted there; host.pub too.
	live := first.DeepCopy()
	unstructured.RemoveNestedField(live.Object, "data", "b")
	unstructured.RemoveNestedField(live.Object, "data", "host.pub")
	again := u.DeepCopy()
	if err := generateSecret(again, live); err != nil {
		t.Fatal(err)
	}
	got, _, _ := unstructured.NestedStringMap(again.Object, "data")
	if got["a"] != data["a"] || got["host"] != data["host"] || got["host.pub"] != data["host.pub"] || got["b"] == "" || got["b"] == data["b"] {
		t.Errorf("kept a, host, host.pub and made a new b:\nfirst %v\nagain %v", data, got)
	}
	// A live "private key" that is none cannot give a public key.
	bad := live.DeepCopy()
	unstructured.SetNestedField(bad.Object, base64.StdEncoding.EncodeToString([]byte("junk")), "data", "host")
	if err := generateSecret(u.DeepCopy(), bad); err == nil || !strings.Contains(err.Error(), "Secret default/s: key host holds no OpenSSH private key") || !strings.Contains(err.Error(), "delete the key") {
		t.Errorf("junk private key: %v", err)
	}

	// Redacted: generated and captured keys; not the public key nor the
	// manifest's.
	live = again.DeepCopy()
	unstructured.SetNestedField(live.Object, "c2VjcmV0", "data", "password")
	c := Clean(live)
	red, _, _ := unstructured.NestedStringMap(c.Object, "data")
	want := map[string]string{"a": Redacted, "b": Redacted, "host": Redacted, "password": Redacted, "host.pub": got["host.pub"], "user": "YQ=="}
	if !reflect.DeepEqual(red, want) {
		t.Errorf("redacted %v, want %v", red, want)
	}
	if v, _, _ := unstructured.NestedString(live.Object, "data", "a"); v != got["a"] {
		t.Error("Clean changed the object it was given")
	}
	// A declaration that does not parse hides every value.
	live.SetAnnotations(map[string]string{GenerateAnnotation: "a=what"})
	red, _, _ = unstructured.NestedStringMap(Clean(live).Object, "data")
	for k, v := range red {
		if v != Redacted {
			t.Errorf("bad declaration: %s shown as %q", k, v)
		}
	}
}

// checkOneLine is the invariant of every parser's error: one line.
func checkOneLine(t *testing.T, in string, err error) {
	if err != nil && strings.ContainsAny(err.Error(), "\n\r") {
		t.Fatalf("%q: error on several lines: %q", in, err)
	}
}

func FuzzParseGenerate(f *testing.F) {
	for _, s := range []string{"secret-key=alnum:64", "a=hex:32, b=base64:16\nc=ssh-ed25519", "a=hex:15", "k=ssh-ed25519,k.pub=hex:16", "=", ",,", "a=alnum:0016", "a=\u00e9:32"} {
		f.Add(s)
	}
	f.Fuzz(func(t *testing.T, s string) {
		gs, err := ParseGenerate(s)
		checkOneLine(t, s, err)
		if err != nil {
			return
		}
		// What parses prints back to what parses the same.
		var parts []string
		for _, g := range gs {
			if checkSecretKey(g.Key) != nil || (g.Kind != GenSSHEd25519 && (g.Length < MinGenLength || g.Length > MaxGenLength)) {
				t.Fatalf("%q: accepted %+v", s, g)
			}
			parts = append(parts, g.String())
		}
		again, err := ParseGenerate(strings.Join(parts, ","))
		if err != nil || !reflect.DeepEqual(again, gs) {
			t.Fatalf("%q → %q → %+v, %v", s, strings.Join(parts, ","), again, err)
		}
	})
}

func FuzzParseCapture(f *testing.F) {
	f.Add(captureDecl)
	f.Add("key: k\nworkload: statefulset/db\ncontainer: db\ncommand: [a]\nmatch: '(x)'\nhelp: h\n")
	f.Add("{key: k, workload: daemonset/d, container: c, command: [a, b], match: '(?m)^(.*)$'}")
	f.Add("key: [1]")
	f.Fuzz(func(t *testing.T, s string) {
		c, err := ParseCapture(s)
		checkOneLine(t, s, err)
		if err != nil {
			return
		}
		if checkSecretKey(c.Key) != nil || c.WorkloadKind == "" || c.WorkloadName == "" || len(c.Command) == 0 || c.re.NumSubexp() != 1 {
			t.Fatalf("%q: accepted %+v", s, c)
		}
		c.Find([]byte(s))
	})
}

func FuzzParseShowOnce(f *testing.F) {
	for _, s := range []string{"gitea admin: {username} / {password}", "{a}", "a {b", "}{", "{a}{b}c", "{a.b_c-d}"} {
		f.Add(s)
	}
	f.Fuzz(func(t *testing.T, s string) {
		so, err := ParseShowOnce(s)
		checkOneLine(t, s, err)
		if err != nil {
			return
		}
		if so.String() != s || len(so.Keys()) == 0 {
			t.Fatalf("%q: string %q, keys %v", s, so.String(), so.Keys())
		}
		data := map[string][]byte{}
		for _, k := range so.Keys() {
			data[k] = []byte("")
		}
		if strings.ContainsAny(so.Format(data), "{}") {
			t.Fatalf("%q: braces left in %q", s, so.Format(data))
		}
	})
}

// FuzzDeclOf: any annotations on a Secret either declare something
// consistent or fail on one line naming the object.
func FuzzDeclOf(f *testing.F) {
	f.Add("k=alnum:32", captureDecl, "{k} {password} {user}", true)
	f.Add("password=hex:16", captureDecl, "{password}", false)
	f.Add("", "", "", true)
	f.Fuzz(func(t *testing.T, gen, capture, show string, static bool) {
		u := &unstructured.Unstructured{Object: map[string]any{"apiVersion": "v1", "kind": "Secret", "metadata": map[string]any{"name": "s", "namespace": "ns"}}}
		a := map[string]string{}
		for k, v := range map[string]string{GenerateAnnotation: gen, CaptureAnnotation: capture, ShowOnceAnnotation: show} {
			if v != "" {
				a[k] = v
			}
		}
		u.SetAnnotations(a)
		if static {
			unstructured.SetNestedField(u.Object, "YQ==", "data", "user")
		}
		d, err := DeclOf(u)
		checkOneLine(t, gen+capture+show, err)
		if err != nil {
			if !strings.HasPrefix(err.Error(), "Secret ns/s: annotation stack.hashbang.sh/") {
				t.Fatalf("error does not name the object and annotation: %v", err)
			}
			return
		}
		if (d == nil) != (len(a) == 0) {
			t.Fatalf("declarations %+v for %v", d, a)
		}
		if d == nil {
			return
		}
		// Filling works, and Clean hides what was filled.
		if err := generateSecret(u, nil); err != nil {
			t.Fatal(err)
		}
		data, _, _ := unstructured.NestedStringMap(Clean(u).Object, "data")
		for _, g := range d.Generate {
			if data[g.Key] != Redacted {
				t.Fatalf("%s shown as %q", g.Key, data[g.Key])
			}
		}
	})
}
