package source

import (
	"bytes"
	"encoding/json"
	"io"
	"net/http"
	"net/http/httptest"
	"os"
	"path/filepath"
	"sort"
	"strings"
	"testing"
	"time"

	"golang.org/x/mod/module"
	modzip "golang.org/x/mod/zip"

	"github.com/hashbang/stack/internal/workspace"
)

// testModule is one module version served by a testProxy.
type testModule struct {
	path, version string
	files         map[string]string // file name → content; go.mod included
}

// zipFile is an in-memory file for golang.org/x/mod/zip.
type zipFile struct {
	name string
	data []byte
}

func (f zipFile) Path() string                { return f.name }
func (f zipFile) Lstat() (os.FileInfo, error) { return zipInfo{f}, nil }
func (f zipFile) Open() (io.ReadCloser, error) {
	return io.NopCloser(bytes.NewReader(f.data)), nil
}

type zipInfo struct{ f zipFile }

func (i zipInfo) Name() string       { return filepath.Base(i.f.name) }
func (i zipInfo) Size() int64        { return int64(len(i.f.data)) }
func (i zipInfo) Mode() os.FileMode  { return 0o644 }
func (i zipInfo) ModTime() time.Time { return time.Time{} }
func (i zipInfo) IsDir() bool        { return false }
func (i zipInfo) Sys() any           { return nil }

// testProxy serves modules with the GOPROXY protocol from a directory, over
// a real HTTP server on loopback, and returns its URL and the directory
// (so tests can tamper with what it serves).
func testProxy(t *testing.T, mods ...testModule) (string, string) {
	t.Helper()
	dir := t.TempDir()
	versions := map[string][]string{}
	for _, m := range mods {
		mv := module.Version{Path: m.path, Version: m.version}
		base := downloadPath(dir, mv, "")
		if err := os.MkdirAll(filepath.Dir(base), 0o755); err != nil {
			t.Fatal(err)
		}
		var files []modzip.File
		names := make([]string, 0, len(m.files))
		for n := range m.files {
			names = append(names, n)
		}
		sort.Strings(names)
		for _, n := range names {
			files = append(files, zipFile{name: n, data: []byte(m.files[n])})
		}
		var zb bytes.Buffer
		if err := modzip.Create(&zb, mv, files); err != nil {
			t.Fatal(err)
		}
		write(t, base+".zip", zb.String())
		write(t, base+".mod", m.files["go.mod"])
		info, _ := json.Marshal(map[string]string{"Version": m.version, "Time": "2026-01-01T00:00:00Z"})
		write(t, base+".info", string(info))
		versions[m.path] = append(versions[m.path], m.version)
	}
	for p, vs := range versions {
		ep, _ := module.EscapePath(p)
		write(t, filepath.Join(dir, ep, "@v", "list"), strings.Join(vs, "\n")+"\n")
	}
	srv := httptest.NewServer(http.FileServer(http.Dir(dir)))
	t.Cleanup(srv.Close)
	return srv.URL, dir
}

// useProxy points the go command at url, with no checksum database (the
// test modules are not in it), for the rest of the test.
func useProxy(t *testing.T, url string) {
	t.Setenv("GOPROXY", url)
	t.Setenv("GOSUMDB", "off")
	t.Setenv("GOFLAGS", "")
}

// newWorkspace makes a stack repository in a temp dir holding sources.
func newWorkspace(t *testing.T, sources string) *workspace.Workspace {
	t.Helper()
	root := t.TempDir()
	write(t, filepath.Join(root, "config", "sources.yaml"), sources)
	ws, err := workspace.New(root, filepath.Join(t.TempDir(), "cache"))
	if err != nil {
		t.Fatal(err)
	}
	return ws
}

func write(t *testing.T, path, content string) {
	t.Helper()
	if err := os.MkdirAll(filepath.Dir(path), 0o755); err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(path, []byte(content), 0o644); err != nil {
		t.Fatal(err)
	}
}

// helloModules are a tool, example.com/hello, at three releases, and the
// library it imports.
func helloModules() []testModule {
	dep := testModule{"example.com/dep", "v1.0.0", map[string]string{
		"go.mod": "module example.com/dep\n\ngo 1.21\n",
		"dep.go": "package dep\n\nfunc Greeting() string { return \"hello from dep\" }\n",
	}}
	hello := func(version, word string) testModule {
		return testModule{"example.com/hello", version, map[string]string{
			"go.mod":            "module example.com/hello\n\ngo 1.21\n\nrequire example.com/dep v1.0.0\n",
			"cmd/hello/main.go": "package main\n\nimport (\n\t\"fmt\"\n\n\t\"example.com/dep\"\n)\n\nfunc main() { fmt.Println(dep.Greeting(), \"" + word + "\") }\n",
		}}
	}
	return []testModule{dep, hello("v1.0.0", "one"), hello("v1.1.0", "two"), hello("v1.2.0-rc.1", "three"), hello("v2.0.0+incompatible", "four")}
}

const helloSources = `# Sources of the test stack.
sources:
  # The hello tool.
  - name: hello
    kind: gomod
    module: example.com/hello
    version: v1.0.0   # the first release
    track: v1.
    packages:
      - example.com/hello/cmd/hello
`
