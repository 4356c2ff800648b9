package doctor

import (
	"errors"
	"fmt"
	"go/version"
	"net/url"
	"regexp"
	"slices"
	"strings"
)

// PackagesFile lists the Debian packages scripts/deps installs, relative to
// the repository root: one name a line, # comments.
const PackagesFile = "scripts/packages"

// debName is what Debian allows as a package name.
var debName = regexp.MustCompile(`^[a-z0-9][a-z0-9+.-]+$`)

// ParsePackages reads a packages file: every name, in order; file names
// it in errors.
func ParsePackages(file string, data []byte) ([]string, error) {
	var out []string
	seen := map[string]bool{}
	for i, line := range strings.Split(string(data), "\n") {
		line, _, _ = strings.Cut(line, "#")
		for _, name := range strings.Fields(line) {
			if !debName.MatchString(name) {
				return nil, fmt.Errorf("%s:%d: %q is not a Debian package name: write one name a line (lower-case letters, digits, + - .)", file, i+1, name)
			}
			if !seen[name] {
				seen[name] = true
				out = append(out, name)
			}
		}
	}
	if len(out) == 0 {
		return nil, fmt.Errorf("%s names no package: list the Debian packages scripts/deps installs, one a line", file)
	}
	return out, nil
}

// ParseDpkgQuery reads the output of
// `dpkg-query -W -f='${Package}\t${db:Status-Status}\t${Version}\n'`: the
// version of each package that is installed.
func ParseDpkgQuery(out string) map[string]string {
	got := map[string]string{}
	for _, line := range strings.Split(out, "\n") {
		f := strings.Split(line, "\t")
		if len(f) == 3 && f[1] == "installed" && f[0] != "" {
			got[f[0]] = f[2]
		}
	}
	return got
}

// ParseGoVersion returns the version `go version` printed ("go version
// go1.26.8 linux/amd64", or a development build's "go version devel
// go1.27-abcdef ..."), as go/version names it: go1.26.8.
func ParseGoVersion(out string) (string, error) {
	for _, f := range strings.Fields(out) {
		v, _, _ := strings.Cut(f, "-") // devel go1.27-abcdef
		if strings.HasPrefix(v, "go1") && version.IsValid(v) {
			return v, nil
		}
	}
	return "", fmt.Errorf("`go version` printed %q, which names no Go release: reinstall Go", firstLine(out))
}

func firstLine(s string) string {
	s, _, _ = strings.Cut(strings.TrimSpace(s), "\n")
	if len(s) > 80 {
		s = s[:80] + "…"
	}
	return s
}

// FirstProxy returns the proxy the go command asks first under the GOPROXY
// setting s (entries separated by , or |): an http(s) or file URL. An error
// says why there is none to check: GOPROXY off, direct, or unknown.
func FirstProxy(s string) (string, error) {
	s = strings.TrimSpace(s)
	if s == "" {
		return "", errors.New("GOPROXY is unknown (go env GOPROXY printed nothing): check that go runs")
	}
	entries := strings.FieldsFunc(s, func(r rune) bool { return r == ',' || r == '|' })
	if len(entries) == 0 {
		return "", errors.New("GOPROXY names no proxy: set one with go env -w GOPROXY=...")
	}
	entry := strings.TrimSpace(entries[0])
	switch entry {
	case "off":
		return "", errors.New("GOPROXY is off: stack sources fetch and stack build cannot download modules; set a proxy with go env -w GOPROXY=...")
	case "direct":
		return "", errors.New("GOPROXY is direct: modules come from their version control hosts, which are not checked")
	}
	u, err := url.Parse(entry)
	if err != nil || (u.Scheme != "http" && u.Scheme != "https" && u.Scheme != "file") || (u.Scheme != "file" && u.Host == "") {
		return "", errors.New("GOPROXY's first entry is not an http(s) or file URL: fix it with go env -w GOPROXY=...")
	}
	return entry, nil
}

// ParseAptSources returns the http(s) URIs of the enabled binary (deb)
// sources in an apt sources file: the one-line format of sources.list and
// *.list files, or the deb822 format of *.sources files (deb822 true).
func ParseAptSources(data []byte, deb822 bool) []string {
	var out []string
	add := func(uri string) {
		if u, err := url.Parse(uri); err == nil && (u.Scheme == "http" || u.Scheme == "https") && u.Host != "" {
			out = append(out, uri)
		}
	}
	if !deb822 {
		for _, line := range strings.Split(string(data), "\n") {
			line, _, _ = strings.Cut(line, "#")
			f := strings.Fields(line)
			if len(f) < 3 || f[0] != "deb" {
				continue
			}
			f = f[1:]
			if strings.HasPrefix(f[0], "[") { // [ options ]
				for len(f) > 0 && !strings.HasSuffix(f[0], "]") {
					f = f[1:]
				}
				if len(f) == 0 {
					continue
				}
				f = f[1:]
			}
			if len(f) > 0 {
				add(f[0])
			}
		}
		return out
	}
	for _, para := range deb822Paragraphs(string(data)) {
		if e := para["enabled"]; e != "" && !strings.EqualFold(e, "yes") {
			continue
		}
		if !slices.Contains(strings.Fields(para["types"]), "deb") {
			continue
		}
		for _, uri := range strings.Fields(para["uris"]) {
			add(uri)
		}
	}
	return out
}

// deb822Paragraphs splits deb822 text into paragraphs of fields, keys
// lower-cased, continuation lines joined with a space; comments dropped.
func deb822Paragraphs(s string) []map[string]string {
	var out []map[string]string
	cur := map[string]string{}
	key := ""
	flush := func() {
		if len(cur) > 0 {
			out = append(out, cur)
		}
		cur, key = map[string]string{}, ""
	}
	for _, line := range strings.Split(s, "\n") {
		line = strings.TrimRight(line, "\r")
		switch {
		case strings.HasPrefix(line, "#"):
		case strings.TrimSpace(line) == "":
			flush()
		case line[0] == ' ' || line[0] == '\t':
			if key != "" {
				cur[key] += " " + strings.TrimSpace(line)
			}
		default:
			k, v, ok := strings.Cut(line, ":")
			if !ok {
				key = ""
				continue
			}
			key = strings.ToLower(strings.TrimSpace(k))
			cur[key] = strings.TrimSpace(v)
		}
	}
	flush()
	return out
}
