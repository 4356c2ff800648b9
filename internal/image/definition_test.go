package image

import (
	"os"
	"path/filepath"
	"strings"
	"testing"
)

func TestParse(t *testing.T) {
	def, err := Parse("x/image.yaml", "x", []byte(`
from: base
binaries:
  - package: ./cmd/health
    path: /bin/health
  - source: kubernetes
    package: k8s.io/kubernetes/cmd/kubelet
    path: /bin/kubelet
    ldflags: [-X=main.v=1]
    tags: [providerless]
files:
  - path: /etc/a
    content: "hi\n"
  - path: /etc/b
    mode: 0600
    owner: 1:2
    src: b.txt
dirs:
  - path: /tmp
    mode: 1777
  - path: /var/x
    mode: 0o750
user: 65532:65532
entrypoint: [/bin/health]
cmd: []
env: {PATH: /bin, A_1: "x=y"}
ports: [8080, 53/udp, "9090/tcp"]
volumes: [/var/x]
workdir: /var/x
labels: {org.opencontainers.image.title: x}
`))
	if err != nil {
		t.Fatal(err)
	}
	if def.From != "base" || len(def.Binaries) != 2 || def.Binaries[1].Source != "kubernetes" {
		t.Errorf("binaries: %+v", def.Binaries)
	}
	if string(def.Files[0].Data) != "hi\n" || def.Files[0].Mode != 0o644 || def.Files[1].Mode != 0o600 || def.Files[1].Owner != (Owner{1, 2}) {
		t.Errorf("files: %+v", def.Files)
	}
	if def.Dirs[0].Mode != 0o1777 || def.Dirs[1].Mode != 0o750 {
		t.Errorf("dirs: %+v", def.Dirs)
	}
	if *def.User != (Owner{65532, 65532}) || def.Entrypoint[0] != "/bin/health" || !def.Set["cmd"] || len(def.Cmd) != 0 {
		t.Errorf("run: %+v %v %v", def.User, def.Entrypoint, def.Cmd)
	}
	if strings.Join(def.Ports, ",") != "8080/tcp,53/udp,9090/tcp" {
		t.Errorf("ports: %v", def.Ports)
	}
	if def.Env["A_1"] != "x=y" || def.Labels["org.opencontainers.image.title"] != "x" {
		t.Errorf("env/labels: %v %v", def.Env, def.Labels)
	}
}

func TestParseErrors(t *testing.T) {
	tests := []struct{ yaml, want string }{
		{"frm: base\n", `f:1: unknown key "frm" in definition: remove it or fix its spelling (known: binaries, cmd`},
		{"files:\n  - path: /a\n    content: x\n    mod: 0644\n", `f:4: unknown key "mod" in file`},
		{"user: 0:0\n", "f:1: user: 0:0 is root"},
		{"user: 10:0\n", "f:1: user: 10:0 is root"},
		{"user: stack\n", `f:1: user: "stack" is not a numeric uid:gid`},
		{"user: -1:5\n", "not a numeric uid:gid"},
		{"files:\n  - path: etc/a\n    content: x\n", `f:2: path: "etc/a" must be an absolute path`},
		{"files:\n  - path: /etc/../a\n    content: x\n", "is not clean: write /a"},
		{"files:\n  - path: /etc/a b\n    content: x\n", "holds characters other than"},
		{"files:\n  - path: /.wh.a\n    content: x\n", "reserved name"},
		{"dirs:\n  - path: /\n", "/ itself cannot be declared"},
		{"files:\n  - path: /a\n", "file /a needs content or src"},
		{"files:\n  - path: /a\n    content: x\n    src: y\n", "both content and src"},
		{"files:\n  - path: /a\n    src: ../y\n", "must be a path inside the definition's directory"},
		{"files:\n  - path: /a\n    src: /etc/passwd\n", "must be a path inside"},
		{"files:\n  - path: /a\n    mode: 0999\n    content: x\n", `"0999" is not an octal mode`},
		{"files:\n  - path: /a\n    mode: 17777\n    content: x\n", "not an octal mode"},
		{"files:\n  - path: /a\n    content: 5\n", "content must be a string, not int: quote it"},
		{"files:\n  - {path: /a, content: x}\n  - {path: /a, content: y}\n", "f:3: /a is already declared at line 2"},
		{"binaries:\n  - path: /bin/x\n", "binary needs a package"},
		{"binaries:\n  - package: ./cmd/x\n", "needs a path in the image, such as /bin/x"},
		{"binaries:\n  - package: github.com/x/y\n    path: /bin/y\n", "without source, package must be ./path"},
		{"binaries:\n  - package: ./x\n    source: k8s\n    path: /bin/y\n", "with source, package must be an import path"},
		{"binaries:\n  - package: ./x\n    path: /bin/y\n    ldflags: [-X main.v=1]\n", "must be one flag without spaces"},
		{"ports: [0]\n", `"0" is not a port`},
		{"ports: [70000]\n", "is not a port"},
		{"ports: [80/icmp]\n", "is not a port"},
		{"ports: [80, 80/tcp]\n", "80/tcp listed twice"},
		{"env: {A: true}\n", "env A must be a string, not bool: quote it"},
		{"env: {1A: x}\n", `"1A" is not a variable name`},
		{"env: [A=b]\n", "env must be a mapping"},
		{"entrypoint: /bin/x\n", "entrypoint must be a list"},
		{"from: x\n", "x cannot be its own base"},
		{"from: Base\n", `from: "Base" is not an image name`},
		{"from: base\nfrom: other\n", `f:2: duplicate key "from" in the top level (first at line 1)`},
		{"files:\n  - path: /a\n    content: x\n    path: /b\n", `f:4: duplicate key "path" in files[0] (first at line 2)`},
		{"env:\n  A: x\n  B: y\n  A: z\n", `f:4: duplicate key "A" in env (first at line 2)`},
		{"entrypoint: &a [x]\n", "anchors and aliases are not supported"},
		{"~\n", "empty file"},
		{"entrypoint: &a [x]\ncmd: *a\n", "anchors and aliases are not supported"},
		{"entrypoint: !custom [x]\n", "custom YAML tag"},
		{"from: base\n---\nfrom: other\n", "more than one YAML document"},
		{"", "empty file"},
		{"- a\n", "definition must be a mapping"},
		{"from: [\n", "f:1: invalid YAML"},
		{"workdir: relative\n", "must be an absolute path"},
		{"labels: {\"bad key\": x}\n", "is not a label key"},
	}
	for _, tt := range tests {
		_, err := Parse("f", "x", []byte(tt.yaml))
		if err == nil {
			t.Errorf("Parse(%q) succeeded, want error %q", tt.yaml, tt.want)
			continue
		}
		if !strings.Contains(err.Error(), tt.want) {
			t.Errorf("Parse(%q) = %q, want it to contain %q", tt.yaml, err, tt.want)
		}
		if strings.Contains(err.Error(), "\n") {
			t.Errorf("Parse(%q) error spans lines: %q", tt.yaml, err)
		}
	}
	if _, err := Parse("f", "Bad/Name", []byte("from: base\n")); err == nil {
		t.Error("Parse accepted an invalid name")
	}
	if _, err := Parse("f", "x", []byte("# nothing but a comment\n")); err == nil || !strings.Contains(err.Error(), "empty file") {
		t.Errorf("comment-only definition: %v", err)
	}
}

// writeDefs writes definitions into a new images directory.
func writeDefs(t testing.TB, defs map[string]string) string {
	t.Helper()
	dir := t.TempDir()
	for name, body := range defs {
		p := filepath.Join(dir, filepath.FromSlash(name))
		if !strings.Contains(name, "/") {
			p = filepath.Join(dir, name, FileName)
		}
		if err := os.MkdirAll(filepath.Dir(p), 0o755); err != nil {
			t.Fatal(err)
		}
		if err := os.WriteFile(p, []byte(body), 0o644); err != nil {
			t.Fatal(err)
		}
	}
	return dir
}

func TestLoad(t *testing.T) {
	dir := writeDefs(t, map[string]string{
		"base":           "files:\n  - path: /etc/passwd\n    src: passwd\ndirs:\n  - path: /tmp\n    mode: 1777\nuser: 1:1\n",
		"base/passwd":    "stack:x:1:1::/:/nonexistent\n",
		"mid":            "from: base\nenv: {A: b}\n",
		"leaf":           "from: mid\nbinaries:\n  - package: ./cmd/x\n    path: /bin/x\n",
		"notes/README":   "",
		"notes/image.md": "",
	})
	os.Remove(filepath.Join(dir, "notes", "README"))
	def, err := Load(dir, "leaf")
	if err != nil {
		t.Fatal(err)
	}
	var names []string
	for _, d := range def.Chain() {
		names = append(names, d.Name)
	}
	if strings.Join(names, ",") != "base,mid,leaf" {
		t.Errorf("chain = %v", names)
	}
	if string(def.Base.Base.Files[0].Data) != "stack:x:1:1::/:/nonexistent\n" {
		t.Errorf("src not read: %q", def.Base.Base.Files[0].Data)
	}
	if len(def.AllBinaries()) != 1 {
		t.Errorf("AllBinaries = %v", def.AllBinaries())
	}
	// The digest covers the chain, file contents included.
	d1 := def.Digest()
	os.WriteFile(filepath.Join(dir, "base", "passwd"), []byte("changed\n"), 0o644)
	def2, err := Load(dir, "leaf")
	if err != nil {
		t.Fatal(err)
	}
	if def2.Digest() == d1 || !strings.HasPrefix(d1, "sha256:") {
		t.Errorf("digest did not change with a base file: %s", d1)
	}

	if _, err := LoadAll(dir); err == nil || !strings.Contains(err.Error(), "notes has no image.yaml") {
		t.Errorf("LoadAll with a stray directory: %v", err)
	}
	os.RemoveAll(filepath.Join(dir, "notes"))
	all, err := LoadAll(dir)
	if err != nil {
		t.Fatal(err)
	}
	if len(all) != 3 || all[0].Name != "base" || all[2].Name != "mid" || all[1].Base != all[2] {
		t.Errorf("LoadAll = %v", all)
	}
}

func TestLoadErrors(t *testing.T) {
	tests := []struct {
		defs map[string]string
		load string
		want string
	}{
		{map[string]string{"a": "from: nope\n"}, "a", `image a: base "nope" is not defined`},
		{map[string]string{"a": "from: b\n", "b": "from: c\n", "c": "from: a\n"}, "a", "base cycle a -> b -> c -> a"},
		{map[string]string{"a": "from: b\n"}, "zz", "image zz is not defined"},
		{map[string]string{"a": "x"}, "../a", "not a valid image name"},
		{map[string]string{
			"a": "from: b\nfiles:\n  - path: /etc/passwd\n    content: x\n",
			"b": "files:\n  - path: /etc/passwd\n    content: y\n",
		}, "a", "/etc/passwd is already declared by b at"},
		{map[string]string{
			"a": "from: b\ndirs:\n  - path: /etc/passwd/x\n",
			"b": "files:\n  - path: /etc/passwd\n    content: y\n",
		}, "a", "/etc/passwd/x is below /etc/passwd, which b declares as a file"},
		{map[string]string{"a": "files:\n  - path: /x\n    src: missing\n"}, "a", "src missing"},
		{map[string]string{"a": "files:\n  - path: /x\n    src: sub\n", "a/sub/f": ""}, "a", "not a regular file"},
	}
	for _, tt := range tests {
		dir := writeDefs(t, tt.defs)
		_, err := Load(dir, tt.load)
		if err == nil || !strings.Contains(err.Error(), tt.want) {
			t.Errorf("Load(%v, %s) = %v, want %q", tt.defs, tt.load, err, tt.want)
		}
	}
}

func TestLoadSrcSymlinkEscape(t *testing.T) {
	dir := writeDefs(t, map[string]string{"a": "files:\n  - path: /x\n    src: link\n"})
	secret := filepath.Join(t.TempDir(), "secret")
	os.WriteFile(secret, []byte("secret"), 0o600)
	if err := os.Symlink(secret, filepath.Join(dir, "a", "link")); err != nil {
		t.Fatal(err)
	}
	if _, err := Load(dir, "a"); err == nil || !strings.Contains(err.Error(), "src link") {
		t.Errorf("Load followed a symlink out of the definition: %v", err)
	}
}

// TestRepoDefinitions loads the repository's own images/.
func TestRepoDefinitions(t *testing.T) {
	defs, err := LoadAll("../../images")
	if err != nil {
		t.Fatal(err)
	}
	byName := map[string]*Definition{}
	for _, d := range defs {
		byName[d.Name] = d
	}
	for _, name := range []string{"base", "health", "pause", "stack"} {
		if byName[name] == nil {
			t.Fatalf("images/%s missing", name)
		}
	}
	for _, name := range []string{"health", "pause", "stack"} {
		d := byName[name]
		if d.Base != byName["base"] {
			t.Errorf("%s is not built on base", name)
		}
		if len(d.Binaries) == 0 || d.Binaries[0].Package != "./cmd/"+name || d.Binaries[0].Path != "/bin/"+name {
			t.Errorf("%s binaries: %+v", name, d.Binaries)
		}
		if d.User == nil || d.User.UID != 65532 {
			t.Errorf("%s user: %v", name, d.User)
		}
	}
}

func FuzzParse(f *testing.F) {
	for _, s := range []string{
		"from: base\nbinaries:\n  - package: ./cmd/health\n    path: /bin/health\nuser: 65532:65532\n",
		"files:\n  - path: /etc/passwd\n    mode: 0644\n    content: |\n      x\ndirs:\n  - path: /tmp\n    mode: 1777\n",
		"env: {A: b}\nlabels: {a: b}\nports: [8080, 53/udp]\nvolumes: [/v]\nworkdir: /w\n",
		"entrypoint: &a [x]\ncmd: *a\n",
		"a: [\n",
		"",
	} {
		f.Add([]byte(s))
	}
	if b, err := os.ReadFile("../../images/base/image.yaml"); err == nil {
		f.Add(b)
	}
	f.Fuzz(func(t *testing.T, data []byte) {
		def, err := Parse("f", "x", data)
		if err != nil {
			if strings.Contains(err.Error(), "\n") {
				t.Errorf("multi-line error %q", err)
			}
			return
		}
		for _, p := range def.paths() {
			if err := checkPath(p.path); err != nil {
				t.Errorf("accepted bad path: %v", err)
			}
		}
		if def.User != nil && (def.User.UID == 0 || def.User.GID == 0) {
			t.Errorf("accepted root user %v", def.User)
		}
		def.Digest()
	})
}
