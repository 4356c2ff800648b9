package source

import (
	"os"
	"path/filepath"
	"strings"
	"testing"
)

func TestParseCommittedSources(t *testing.T) {
	cfg, err := Load(filepath.Join("..", "..", "config", "sources.yaml"))
	if err != nil {
		t.Fatal(err)
	}
	want := []string{"toolchain", "kubernetes", "etcd", "distribution", "gitea", "node", "pnpm", "runc", "containerd", "cni-plugins", "ca-certificates", "git", "zlib"}
	for _, name := range want {
		s, err := cfg.Get(name)
		if err != nil {
			t.Fatal(err)
		}
		if s.Hash == "" || s.Version == "" {
			t.Errorf("%s: version %q hash %q: every committed source must be pinned", name, s.Version, s.Hash)
		}
	}
}

const goodEntry = `sources:
  - name: hello
    kind: gomod
    module: example.com/hello
    version: v1.0.0
    hash: h1:47DEQpj8HBSa+/TImW+5JCeuQeRkm5NMpJWZG3hSuFU=
`

func TestParseErrors(t *testing.T) {
	sha := strings.Repeat("a", 64)
	tests := []struct {
		name string
		yaml string
		want []string // substrings of the error
	}{
		{"unknown kind", "sources:\n  - name: x\n    kind: rpm\n    version: 1\n    hash: sha256:" + sha + "\n",
			[]string{"f.yaml:3:", `unknown kind "rpm"`, "gomod, deb, debsrc, archive or npm"}},
		{"missing hash", "sources:\n  - name: runc\n    kind: deb\n    package: runc\n    version: 1.1.5-1\n",
			[]string{"f.yaml:2:", `source "runc" has no hash`, "stack sources update runc"}},
		{"branch for gomod", strings.Replace(goodEntry, "v1.0.0", "main", 1),
			[]string{"f.yaml:5:", "moving target", "pin an exact version"}},
		{"branch-like gomod", strings.Replace(goodEntry, "v1.0.0", "feature-x", 1),
			[]string{"f.yaml:5:", "not an exact Go module version"}},
		{"latest for deb", "sources:\n  - name: runc\n    kind: deb\n    package: runc\n    version: latest\n    hash: sha256:" + sha + "\n",
			[]string{"f.yaml:5:", "moving target"}},
		{"duplicate name", goodEntry + strings.TrimPrefix(goodEntry, "sources:\n"),
			[]string{"f.yaml:7:", `duplicate source name "hello"`, "first at line 2"}},
		{"short sha256", "sources:\n  - name: a\n    kind: archive\n    url: https://example.com/a.tgz\n    version: 1.0\n    hash: sha256:" + sha[:63] + "\n",
			[]string{"f.yaml:6:", "63 hex digits, want 64"}},
		{"upper-case sha256", "sources:\n  - name: a\n    kind: archive\n    url: https://example.com/a.tgz\n    version: 1.0\n    hash: sha256:" + strings.ToUpper(sha) + "\n",
			[]string{"f.yaml:6:", "lower-case hex"}},
		{"short h1", strings.Replace(goodEntry, "h1:47DEQpj8HBSa+/TImW+5JCeuQeRkm5NMpJWZG3hSuFU=", "h1:47DEQpj8", 1),
			[]string{"f.yaml:6:", "want 32"}},
		{"sha256 for gomod", strings.Replace(goodEntry, "h1:47DEQpj8HBSa+/TImW+5JCeuQeRkm5NMpJWZG3hSuFU=", "sha256:"+sha, 1),
			[]string{"f.yaml:6:", "must be a Go module hash starting with h1:"}},
		{"unknown key", strings.Replace(goodEntry, "kind: gomod", "kind: gomod\n    branch: main", 1),
			[]string{"f.yaml:4:", `unknown key "branch"`}},
		{"key of another kind", strings.Replace(goodEntry, "kind: gomod", "kind: gomod\n    url: https://x", 1),
			[]string{"f.yaml:4:", "`url` does not apply to kind gomod"}},
		{"no kind", "sources:\n  - name: x\n    version: 1\n", []string{"f.yaml:2:", "has no kind"}},
		{"bad name", strings.Replace(goodEntry, "name: hello", "name: Hello World", 1), []string{"f.yaml:2:", "not valid"}},
		{"not yaml", "sources: [\n", []string{"f.yaml:", "invalid YAML"}},
		{"not a list", "sources: {}\n", []string{"f.yaml:1:", "must be a list"}},
		{"top-level typo", "source:\n  - name: x\n", []string{"f.yaml:1:", `unknown key "source"`}},
		{"empty", "", []string{"empty file"}},
		{"credentials in url", "sources:\n  - name: a\n    kind: archive\n    url: https://u:p@example.com/a.tgz\n    version: 1.0\n    hash: sha256:" + sha + "\n",
			[]string{"f.yaml:4:", "must not carry credentials"}},
		{"package outside module", strings.Replace(goodEntry, "kind: gomod", "kind: gomod\n    packages: [example.com/other/cmd]", 1),
			[]string{"f.yaml:4:", "not in module example.com/hello"}},
		{"bad deb version", "sources:\n  - name: runc\n    kind: deb\n    package: runc\n    version: bookworm/1.1\n    hash: sha256:" + sha + "\n",
			[]string{"f.yaml:5:", "not an exact Debian version"}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			_, err := Parse("f.yaml", []byte(tt.yaml))
			if err == nil {
				t.Fatalf("Parse accepted:\n%s", tt.yaml)
			}
			for _, w := range tt.want {
				if !strings.Contains(err.Error(), w) {
					t.Errorf("error %q does not contain %q", err, w)
				}
			}
			for _, line := range strings.Split(err.Error(), "\n") {
				if !strings.HasPrefix(line, "f.yaml") {
					t.Errorf("error line %q does not name the file", line)
				}
			}
		})
	}
}

// TestParseDuplicateKeys: a key given twice is refused, naming both lines.
// A second `sources:` list used to replace the first without a word.
func TestParseDuplicateKeys(t *testing.T) {
	for _, tc := range []struct{ name, yaml, want string }{
		{"two sources lists", goodEntry + strings.ReplaceAll(goodEntry, "hello", "other"),
			`f.yaml:7: duplicate key "sources" in the top level (first at line 1): keep only one`},
		{"a key twice in a source", goodEntry + "    version: v1.0.1\n",
			`f.yaml:7: duplicate key "version" in sources[0] (first at line 5): keep only one`},
	} {
		t.Run(tc.name, func(t *testing.T) {
			_, err := Parse("f.yaml", []byte(tc.yaml))
			if err == nil || !strings.Contains(err.Error(), tc.want) {
				t.Errorf("Parse = %v, want %q", err, tc.want)
			}
		})
	}
}

func TestParseGood(t *testing.T) {
	cfg, err := Parse("f.yaml", []byte(goodEntry))
	if err != nil {
		t.Fatal(err)
	}
	s := cfg.Sources[0]
	if s.Name != "hello" || s.Kind != GoMod || s.Module != "example.com/hello" || s.Version != "v1.0.0" || s.Line != 2 {
		t.Errorf("parsed %+v", s)
	}
	if s.Ref() != "example.com/hello@v1.0.0" {
		t.Errorf("Ref = %q", s.Ref())
	}
}

// FuzzParse checks that no input makes the parser panic, and that whatever
// it accepts is pinned and survives an in-place rewrite of its versions.
func FuzzParse(f *testing.F) {
	f.Add([]byte(goodEntry))
	f.Add([]byte(npmEntry("@scope/pnpm", "10.33.0", goodIntegrity)))
	if data, err := os.ReadFile(filepath.Join("..", "..", "config", "sources.yaml")); err == nil {
		f.Add(data)
	}
	f.Add([]byte("sources:\n  - {name: a, kind: deb, package: a, version: '1:2.0-1', hash: \"sha256:" + strings.Repeat("0", 64) + "\"}\n"))
	f.Add([]byte("sources: [\n"))
	f.Fuzz(func(t *testing.T, data []byte) {
		cfg, err := Parse("f.yaml", data)
		if err != nil {
			return
		}
		var edits []edit
		for _, s := range cfg.Sources {
			if s.Hash == "" || s.Version == "" {
				t.Fatalf("accepted an unpinned source: %+v", s)
			}
			if checkHash(s.Kind, s.Hash) != "" {
				t.Fatalf("accepted a bad hash %q", s.Hash)
			}
			if _, ok := s.fields["version"]; ok {
				edits = append(edits, edit{src: s, key: "version", value: s.Version})
			}
		}
		out, err := applyEdits(data, edits)
		if err != nil {
			return // values this editor does not rewrite (block scalars, flow maps over lines)
		}
		again, err := Parse("f.yaml", out)
		if err != nil {
			t.Fatalf("rewriting versions in place broke the file: %v\n%s", err, out)
		}
		for i, s := range again.Sources {
			if s.Version != cfg.Sources[i].Version {
				t.Fatalf("version %q became %q", cfg.Sources[i].Version, s.Version)
			}
		}
	})
}
