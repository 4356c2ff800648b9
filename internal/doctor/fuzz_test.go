package doctor

import (
	"go/version"
	"net/url"
	"strings"
	"testing"
)

// FuzzParsePackages: whatever the file holds, every name returned is a
// Debian package name, once; an error names the file.
func FuzzParsePackages(f *testing.F) {
	for _, s := range []string{"git\n", "# c\ngit git-lfs # x\n", "", "Git\n", "a\x00b\n", "g++\nlibc6-dev\n", "x\r\ny\n"} {
		f.Add([]byte(s))
	}
	f.Fuzz(func(t *testing.T, data []byte) {
		pkgs, err := ParsePackages("scripts/packages", data)
		if err != nil {
			if !strings.HasPrefix(err.Error(), "scripts/packages") {
				t.Errorf("error does not name the file: %v", err)
			}
			return
		}
		seen := map[string]bool{}
		for _, p := range pkgs {
			if !debName.MatchString(p) || seen[p] {
				t.Errorf("%q: bad or repeated name", p)
			}
			seen[p] = true
		}
	})
}

// FuzzParseAptSources: only http(s) URIs with a host come out, in either
// format.
func FuzzParseAptSources(f *testing.F) {
	for _, s := range []string{
		"deb http://a.invalid/debian bookworm main\n",
		"deb [arch=amd64] https://b.invalid/ x y\n",
		"deb [ a=b\n",
		"Types: deb\nURIs: http://c.invalid/\n  http://d.invalid/\n\nEnabled: no\nTypes: deb\nURIs: http://e.invalid/\n",
		"URIs: file:///x\nTypes: deb\n",
		" continuation\n:\n",
	} {
		f.Add([]byte(s), false)
		f.Add([]byte(s), true)
	}
	f.Fuzz(func(t *testing.T, data []byte, deb822 bool) {
		for _, u := range ParseAptSources(data, deb822) {
			p, err := url.Parse(u)
			if err != nil || (p.Scheme != "http" && p.Scheme != "https") || p.Host == "" {
				t.Errorf("returned %q", u)
			}
		}
	})
}

// FuzzParseGoVersion: a version found is one go/version knows; a GOPROXY
// entry found is an http(s) or file URL; dpkg-query lines never panic.
func FuzzParseGoVersion(f *testing.F) {
	for _, s := range []string{"go version go1.26.8 linux/amd64", "go version devel go1.27-abc x", "go1", "gox", "", "off", "https://p.invalid,direct", ",|", "file:///x|off"} {
		f.Add(s)
	}
	f.Fuzz(func(t *testing.T, s string) {
		if v, err := ParseGoVersion(s); err == nil && !version.IsValid(v) {
			t.Errorf("ParseGoVersion(%q) = %q", s, v)
		}
		if p, err := FirstProxy(s); err == nil {
			u, perr := url.Parse(p)
			if perr != nil || (u.Scheme != "http" && u.Scheme != "https" && u.Scheme != "file") {
				t.Errorf("FirstProxy(%q) = %q", s, p)
			}
		}
		for pkg := range ParseDpkgQuery(s) {
			if pkg == "" || strings.ContainsAny(pkg, "\t\n") {
				t.Errorf("ParseDpkgQuery(%q) has package %q", s, pkg)
			}
		}
	})
}
