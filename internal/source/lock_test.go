package source

import (
	"strings"
	"testing"
)

func TestConsumerModule(t *testing.T) {
	upstream := `module example.com/big

go 1.22

godebug x509negativeserial=1

require (
	example.com/big/staging v0.0.0
	example.com/other v1.2.0
)

replace example.com/big/staging => ./staging/src/staging
replace example.com/forbidden/v2 => ./FORBIDDEN_DEPENDENCY
replace example.com/tests => ./FORBIDDEN_DEPENDENCY
replace example.com/big/sample => ./staging/src/sample
replace example.com/other => example.com/fork v1.2.1

exclude example.com/broken v1.0.0
`
	s := &Source{Name: "big", Module: "example.com/big", Version: "v1.5.0", ReplaceLocal: "v0.5.0", Packages: []string{"example.com/big/cmd/big"}}
	out, err := consumerModule(s, []byte(upstream))
	if err != nil {
		t.Fatal(err)
	}
	got := string(out)
	for _, want := range []string{
		"module stack.local/source/big",
		"go 1.22",
		"godebug x509negativeserial=1",
		"require example.com/big v1.5.0",
		"replace example.com/big/staging => example.com/big/staging v0.5.0",
		"replace example.com/other => example.com/fork v1.2.1",
		"exclude example.com/broken v1.0.0",
		"tool example.com/big/cmd/big",
	} {
		if !strings.Contains(got, want) {
			t.Errorf("consumer go.mod lacks %q:\n%s", want, got)
		}
	}
	// etcd's guards against a module's use, and Kubernetes' sample modules:
	// directories standing in for modules the source does not require.
	for _, unused := range []string{"forbidden", "example.com/tests", "sample"} {
		if strings.Contains(got, unused) {
			t.Errorf("the local replace of %s, which the source does not require, was kept:\n%s", unused, got)
		}
	}

	s.ReplaceLocal = ""
	if _, err := consumerModule(s, []byte(upstream)); err == nil || !strings.Contains(err.Error(), "set `replace-local:`") {
		t.Errorf("local replace without replace-local: %v", err)
	}
	if _, err := consumerModule(s, []byte("module example.com/big\n\ngo 9.99\n")); err == nil || !strings.Contains(err.Error(), "needs Go 9.99") {
		t.Errorf("too new a go line: %v", err)
	}
}

func TestFollowVersion(t *testing.T) {
	tests := []struct{ local, old, next, want string }{
		{"v0.36.3", "v1.36.3", "v1.36.4", "v0.36.4"},
		{"v3.6.16", "v3.6.16", "v3.6.17", "v3.6.17"},
		{"", "v1.0.0", "v1.1.0", ""},
		{"v0.1.0", "v1.0.0", "v1.0.0", "v0.1.0"},
	}
	for _, tt := range tests {
		got, err := followVersion(tt.local, tt.old, tt.next)
		if err != nil || got != tt.want {
			t.Errorf("followVersion(%q, %q, %q) = %q, %v; want %q", tt.local, tt.old, tt.next, got, err, tt.want)
		}
	}
	if _, err := followVersion("v0.9.9", "v1.36.3", "v1.36.4"); err == nil {
		t.Error("an unrelated replace-local was moved")
	}
}

func TestLockCheck(t *testing.T) {
	s := &Source{Name: "hello", Module: "example.com/hello", Version: "v1.0.0", Hash: "h1:47DEQpj8HBSa+/TImW+5JCeuQeRkm5NMpJWZG3hSuFU=", Packages: []string{"example.com/hello/cmd/hello"}}
	mod := "module stack.local/source/hello\n\ngo 1.21\n\nrequire example.com/hello v1.0.0\n\ntool example.com/hello/cmd/hello\n"
	sum := "example.com/hello v1.0.0 h1:47DEQpj8HBSa+/TImW+5JCeuQeRkm5NMpJWZG3hSuFU=\nexample.com/hello v1.0.0/go.mod h1:47DEQpj8HBSa+/TImW+5JCeuQeRkm5NMpJWZG3hSuFU=\n"
	if err := (&Lock{Mod: []byte(mod), Sum: []byte(sum)}).Check(s); err != nil {
		t.Fatal(err)
	}
	tests := []struct{ name, mod, sum, want string }{
		{"other version", strings.Replace(mod, "hello v1.0.0", "hello v1.0.1", 1), sum, "locks example.com/hello@v1.0.1 but sources.yaml says v1.0.0"},
		{"other hash", mod, strings.Replace(sum, "h1:47", "h1:48", 1), "but sources.yaml says h1:47"},
		{"no pin", mod, "", "does not pin example.com/hello@v1.0.0"},
		{"other source", strings.Replace(mod, "source/hello", "source/other", 1), sum, "not the lock of this source"},
		{"missing package", strings.Replace(mod, "tool example.com/hello/cmd/hello", "", 1), sum, "does not cover package"},
		{"bad sum line", mod, "example.com/hello v1.0.0\n", "hello.sum:1: want `module version hash`"},
	}
	for _, tt := range tests {
		err := (&Lock{Mod: []byte(tt.mod), Sum: []byte(tt.sum)}).Check(s)
		if err == nil || !strings.Contains(err.Error(), tt.want) {
			t.Errorf("%s: %v, want %q", tt.name, err, tt.want)
		}
	}
}

func FuzzParseSum(f *testing.F) {
	f.Add([]byte("example.com/hello v1.0.0 h1:47DEQpj8HBSa+/TImW+5JCeuQeRkm5NMpJWZG3hSuFU=\nexample.com/hello v1.0.0/go.mod h1:47DEQpj8HBSa+/TImW+5JCeuQeRkm5NMpJWZG3hSuFU=\n"))
	f.Add([]byte("a b c\n\n"))
	f.Fuzz(func(t *testing.T, data []byte) {
		lines, err := ParseSum("f.sum", data)
		if err != nil {
			return
		}
		for _, l := range lines {
			if checkHash(GoMod, l.Hash) != "" || l.Path == "" || l.Version == "" {
				t.Fatalf("accepted a bad line %+v", l)
			}
		}
	})
}

func TestApplyEdits(t *testing.T) {
	data := "sources:\n  # keep me\n  - name: a   # the a\n    kind: deb\n    package: aa\n    version: '1.0-1'  # quoted\n    hash: \"sha256:00\"\n  - {name: b, kind: deb, package: bb, version: 2.0-1}\n"
	cfg, err := parse("f.yaml", []byte(data), false)
	if err == nil || !strings.Contains(err.Error(), "64") {
		t.Fatalf("parse: %v", err) // only the short hash is wrong
	}
	cfg, _ = parse("f.yaml", []byte(strings.Replace(data, "sha256:00", "sha256:"+strings.Repeat("0", 64), 1)), false)
	a, b := cfg.Sources[0], cfg.Sources[1]
	out, err := applyEdits([]byte(data), []edit{{a, "version", "1.1-1"}, {a, "hash", "sha256:11"}, {b, "version", "2.1-1"}})
	if err != nil {
		t.Fatal(err)
	}
	want := "sources:\n  # keep me\n  - name: a   # the a\n    kind: deb\n    package: aa\n    version: '1.1-1'  # quoted\n    hash: \"sha256:11\"\n  - {name: b, kind: deb, package: bb, version: 2.1-1}\n"
	if string(out) != want {
		t.Errorf("got\n%s\nwant\n%s", out, want)
	}
	// A missing hash goes in after the version, at the same indentation.
	data = "sources:\n  - name: a\n    kind: deb\n    package: aa\n    version: 1.0-1\n    arch: all\n"
	cfg, err = parse("f.yaml", []byte(data), false)
	if err != nil {
		t.Fatal(err)
	}
	out, err = applyEdits([]byte(data), []edit{{cfg.Sources[0], "hash", "sha256:" + strings.Repeat("0", 64)}})
	if err != nil {
		t.Fatal(err)
	}
	want = "sources:\n  - name: a\n    kind: deb\n    package: aa\n    version: 1.0-1\n    hash: sha256:" + strings.Repeat("0", 64) + "\n    arch: all\n"
	if string(out) != want {
		t.Errorf("got\n%s\nwant\n%s", out, want)
	}
}
