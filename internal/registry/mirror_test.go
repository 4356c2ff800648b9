package registry

import (
	"flag"
	"os"
	"path/filepath"
	"reflect"
	"strings"
	"testing"
)

var update = flag.Bool("update", false, "rewrite the committed config/registries.yaml")

const devRegistriesYAML = `# Registry mirrors for k3s (/etc/rancher/k3s/registries.yaml), written by
# stack: images named MIRROR/... are pulled from its endpoints, in order.
mirrors:
  registry.localhost:5000:
    endpoint:
      - http://127.0.0.1:5000
`

func TestRegistriesYAML(t *testing.T) {
	b, err := RegistriesYAML(DevMirror(DefaultAddr))
	if err != nil {
		t.Fatal(err)
	}
	if string(b) != devRegistriesYAML {
		t.Errorf("RegistriesYAML =\n%s\nwant\n%s", b, devRegistriesYAML)
	}
	ms, err := ParseRegistriesYAML(strings.NewReader(string(b)))
	if err != nil {
		t.Fatal(err)
	}
	if want := []Mirror{DevMirror(DefaultAddr)}; !reflect.DeepEqual(ms, want) {
		t.Errorf("parsed back %+v, want %+v", ms, want)
	}

	// Several mirrors come out sorted whatever their order.
	a := Mirror{Name: "*", Endpoints: []string{"https://mirror.example"}}
	c := Mirror{Name: "docker.io", Endpoints: []string{"http://127.0.0.1:5001", "https://mirror.example:8443"}}
	b1, err := RegistriesYAML(c, DevMirror("127.0.0.1:5000"), a)
	if err != nil {
		t.Fatal(err)
	}
	b2, _ := RegistriesYAML(a, c, DevMirror("127.0.0.1:5000"))
	if string(b1) != string(b2) {
		t.Errorf("output depends on argument order:\n%s\n%s", b1, b2)
	}
	ms, err = ParseRegistriesYAML(strings.NewReader(string(b1)))
	if err != nil {
		t.Fatal(err)
	}
	if want := []Mirror{a, c, DevMirror("127.0.0.1:5000")}; !reflect.DeepEqual(ms, want) {
		t.Errorf("parsed back %+v, want %+v", ms, want)
	}
}

// TestCommittedRegistriesYAML keeps config/registries.yaml what stack
// writes for the development cluster.
func TestCommittedRegistriesYAML(t *testing.T) {
	path := filepath.Join("..", "..", "config", "registries.yaml")
	if *update {
		if err := WriteMirrors(path, DevMirror(DefaultAddr)); err != nil {
			t.Fatal(err)
		}
	}
	got, err := os.ReadFile(path)
	if err != nil {
		t.Fatal(err)
	}
	if string(got) != devRegistriesYAML {
		t.Errorf("%s differs from what stack writes; regenerate it with go test ./internal/registry -run TestCommittedRegistriesYAML -update", path)
	}
	ms, err := ReadMirrors(path)
	if err != nil {
		t.Fatal(err)
	}
	if len(ms) != 1 || ms[0].Name != DevRegistryName {
		t.Errorf("ReadMirrors(%s) = %+v", path, ms)
	}
}

func TestMirrorErrors(t *testing.T) {
	for _, tc := range []struct {
		m    Mirror
		want string
	}{
		{Mirror{Name: "", Endpoints: []string{"http://127.0.0.1:5000"}}, "name must be"},
		{Mirror{Name: "registry.localhost:5000/path", Endpoints: []string{"http://127.0.0.1:5000"}}, "name must be"},
		{Mirror{Name: "registry.localhost:5000"}, "no endpoints"},
		{Mirror{Name: "r", Endpoints: []string{"127.0.0.1:5000"}}, "http:// or https://"},
		{Mirror{Name: "r", Endpoints: []string{"ftp://127.0.0.1"}}, "http:// or https://"},
		{Mirror{Name: "r", Endpoints: []string{"http://10.0.0.5:5000"}}, "only to loopback"},
		{Mirror{Name: "r", Endpoints: []string{"http://registry.example"}}, "only to loopback"},
		{Mirror{Name: "r", Endpoints: []string{"https://u:p@registry.example"}}, "without user"},
		{Mirror{Name: "r", Endpoints: []string{"https://registry.example/v2"}}, "no path"},
		{Mirror{Name: "r", Endpoints: []string{"https://registry.example?x=1"}}, "without user, query"},
	} {
		err := tc.m.Check()
		if err == nil || !strings.Contains(err.Error(), tc.want) {
			t.Errorf("Check(%+v) = %v, want it to say %q", tc.m, err, tc.want)
		}
		if _, err := RegistriesYAML(tc.m); err == nil {
			t.Errorf("RegistriesYAML(%+v) succeeded", tc.m)
		}
	}
	if _, err := RegistriesYAML(DevMirror(DefaultAddr), DevMirror("127.0.0.1:5001")); err == nil || !strings.Contains(err.Error(), "twice") {
		t.Errorf("RegistriesYAML with a name twice: err = %v", err)
	}
	if _, err := RegistriesYAML(); err == nil {
		t.Errorf("RegistriesYAML of nothing succeeded")
	}
}

func TestParseRegistriesYAMLErrors(t *testing.T) {
	for _, tc := range []struct{ in, want string }{
		{"", "empty"},
		{"mirrors: {}\n", "no mirrors"},
		{"mirrors:\n  r:\n    endpoint: [http://10.0.0.1]\n", "only to loopback"},
		{"mirrors:\n  r:\n    endpoint: [https://a]\n    rewrite: {x: y}\n", "only mirrors.HOST.endpoint"},
		{"configs:\n  r:\n    auth: {username: u, password: p}\n", "only mirrors.HOST.endpoint"},
		{"mirrors:\n  r: {endpoint: [https://a]}\n  r: {endpoint: [https://b]}\n", "already defined"},
		{"mirrors: [1, 2]\n", "only mirrors.HOST.endpoint"},
		{"mirrors:\n  r: {endpoint: [https://a]}\n---\nmirrors: {}\n", "more than one"},
		{"\tbad", "registries.yaml"},
	} {
		_, err := ParseRegistriesYAML(strings.NewReader(tc.in))
		if err == nil || !strings.Contains(err.Error(), tc.want) || strings.Contains(err.Error(), "\n") {
			t.Errorf("ParseRegistriesYAML(%q) = %v, want a one-line error saying %q", tc.in, err, tc.want)
		}
	}
}

func TestHostsTOML(t *testing.T) {
	b, err := HostsTOML(Mirror{Name: DevRegistryName, Endpoints: []string{"http://127.0.0.1:5000/", "https://mirror.example"}})
	if err != nil {
		t.Fatal(err)
	}
	want := `# containerd registry host configuration, written by stack: images named
# registry.localhost:5000/... are pulled from the endpoints below, in order.
server = "http://127.0.0.1:5000"

[host."http://127.0.0.1:5000"]
  capabilities = ["pull", "resolve"]

[host."https://mirror.example"]
  capabilities = ["pull", "resolve"]
`
	if string(b) != want {
		t.Errorf("HostsTOML =\n%s\nwant\n%s", b, want)
	}

	dir := t.TempDir()
	if err := WriteHosts(dir, DevMirror(DefaultAddr), Mirror{Name: "*", Endpoints: []string{"https://mirror.example"}}); err != nil {
		t.Fatal(err)
	}
	for _, sub := range []string{"registry.localhost:5000", "_default"} {
		if _, err := os.Stat(filepath.Join(dir, sub, "hosts.toml")); err != nil {
			t.Errorf("WriteHosts: %v", err)
		}
	}
	if got := tomlString("a\"b\\c\n"); got != `"a\"b\\c\u000A"` {
		t.Errorf("tomlString = %s", got)
	}
}

func FuzzParseRegistriesYAML(f *testing.F) {
	f.Add(devRegistriesYAML)
	f.Add("mirrors:\n  \"*\":\n    endpoint: [https://mirror.example]\n  docker.io:\n    endpoint: [http://127.0.0.1:5001, https://m.example:8443/]\n")
	f.Add("mirrors: {}\n")
	f.Add("configs: {}\n")
	f.Add("mirrors:\n  r: {endpoint: [http://10.0.0.1]}\n")
	f.Add("mirrors:\n  r: &a {endpoint: [https://a]}\n  s: *a\n")
	f.Fuzz(func(t *testing.T, in string) {
		ms, err := ParseRegistriesYAML(strings.NewReader(in))
		if err != nil {
			if strings.Contains(err.Error(), "\n") {
				t.Errorf("multi-line error: %q", err)
			}
			return
		}
		// What is accepted can be written, and reads back the same.
		b, err := RegistriesYAML(ms...)
		if err != nil {
			t.Fatalf("accepted %+v but cannot write it: %v", ms, err)
		}
		again, err := ParseRegistriesYAML(strings.NewReader(string(b)))
		if err != nil {
			t.Fatalf("cannot read back what was written:\n%s\n%v", b, err)
		}
		if !reflect.DeepEqual(ms, again) {
			t.Fatalf("round trip changed %+v into %+v", ms, again)
		}
		for _, m := range ms {
			if _, err := HostsTOML(m); err != nil {
				t.Errorf("accepted %+v but HostsTOML fails: %v", m, err)
			}
		}
	})
}
