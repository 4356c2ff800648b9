package cluster

import (
	"path/filepath"
	"strings"
	"testing"

	"github.com/hashbang/stack/internal/workspace"
)

func TestCommittedEnvironments(t *testing.T) {
	ws, err := workspace.New(filepath.Join("..", ".."), t.TempDir())
	if err != nil {
		t.Fatal(err)
	}
	names, err := Names(ws)
	if err != nil {
		t.Fatal(err)
	}
	if strings.Join(names, " ") != "development next production staging" {
		t.Errorf("environments %v", names)
	}
	want := map[string]Backend{"development": Local, "staging": DigitalOcean, "production": DigitalOcean, "next": Baremetal}
	for _, n := range names {
		env, err := Load(ws, n)
		if err != nil {
			t.Fatal(err)
		}
		if env.Backend != want[n] {
			t.Errorf("%s: backend %s, want %s", n, env.Backend, want[n])
		}
		if (n == "production") != env.Protected && n != "next" {
			t.Errorf("%s: protected = %v", n, env.Protected)
		}
	}
	if _, err := Load(ws, "prod"); err == nil || !strings.Contains(err.Error(), "environments: development, next, production, staging") {
		t.Errorf("unknown environment: %v", err)
	}
}

func TestParseErrors(t *testing.T) {
	for _, tt := range []struct{ in, want string }{
		{"backend: k3d\ncluster: dev\nregistry: r:5000\n", `backend "k3d" is not one of`},
		{"backend: local\ncluster: Dev\nregistry: r:5000\n", `cluster "Dev" is not a name`},
		{"backend: local\ncluster: dev\n", `registry "" must be`},
		{"backend: local\ncluster: dev\nregistry: r:5000\nextra: 1\n", `e.yaml:4: unknown key "extra" in the top level`},
		{"backend: local\ncluster: dev\nregistry: r:5000\ncluster: prod\n", `e.yaml:4: duplicate key "cluster" in the top level (first at line 2)`},
		{"backend: baremetal\ncluster: next\nregistry: r:5000\n", "needs `kubeconfig:`"},
		{"backend: local\ncluster: dev\nregistry: r:5000\nref: main\n", "must be a full ref"},
		{"", "empty"},
		{"backend: local\ncluster: dev\nregistry: r:5000\n---\nbackend: local\n", "more than one YAML document"},
	} {
		if _, err := Parse("e.yaml", []byte(tt.in)); err == nil || !strings.Contains(err.Error(), tt.want) || !strings.HasPrefix(err.Error(), "e.yaml:") {
			t.Errorf("Parse(%q) = %v, want %q", tt.in, err, tt.want)
		}
	}
}

func FuzzParse(f *testing.F) {
	f.Add([]byte("backend: local\ncluster: development\nregistry: registry.localhost:5000\n"))
	f.Add([]byte("backend: baremetal\ncluster: next\nregistry: r\nkubeconfig: k\nprotected: true\nref: refs/heads/next\n"))
	f.Fuzz(func(t *testing.T, data []byte) {
		env, err := Parse("e.yaml", data)
		if err != nil {
			return
		}
		if !nameRE.MatchString(env.Cluster) || env.Registry == "" {
			t.Fatalf("accepted %+v", env)
		}
	})
}
