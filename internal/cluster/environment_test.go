package cluster

import (
	"context"
	"os"
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

// TestOpen checks how each backend is reached: the local node's kubeconfig
// under its data directory, an environment's kubeconfig relative to the
// repository, an override for any backend, and a clear line for what
// cannot be reached.
func TestOpen(t *testing.T) {
	ws, err := workspace.New(t.TempDir(), t.TempDir())
	if err != nil {
		t.Fatal(err)
	}
	kubeconfig := "apiVersion: v1\nkind: Config\nclusters: [{name: a, cluster: {server: \"https://127.0.0.1:6443\"}}, {name: b, cluster: {server: \"https://127.0.0.2:6443\"}}]\n" +
		"contexts: [{name: a, context: {cluster: a}}, {name: b, context: {cluster: b}}]\ncurrent-context: a\n"
	write := func(p string) {
		os.MkdirAll(filepath.Dir(p), 0o755)
		if err := os.WriteFile(p, []byte(kubeconfig), 0o600); err != nil {
			t.Fatal(err)
		}
	}
	ctx := context.Background()
	local := &Environment{Name: "dev", Backend: Local, Cluster: "dev", NodeDir: ws.NodeDir("dev")}
	p, err := Open(ws, local, Access{})
	if err != nil {
		t.Fatal(err)
	}
	if _, err := p.Config(ctx); err == nil || err.Error() != "environment dev: cluster dev is not up (no "+filepath.Join(ws.Cache, "node", "dev", "kubeconfig")+"): run `stack up dev` first, or pass --kubeconfig" {
		t.Errorf("local, not up: %v", err)
	}
	write(filepath.Join(ws.Cache, "node", "dev", "kubeconfig"))
	if cfg, err := p.Config(ctx); err != nil || cfg.Host != "https://127.0.0.1:6443" {
		t.Errorf("local: %v %v", cfg, err)
	}
	kc := &Environment{Name: "kc", Backend: Kubeconfig, Cluster: "kc", Kubeconfig: "infra/kc/kubeconfig", Context: "b"}
	p, _ = Open(ws, kc, Access{})
	if _, err := p.Config(ctx); err == nil || !strings.Contains(err.Error(), "environment kc: kubeconfig infra/kc/kubeconfig: no such file or directory: write it") {
		t.Errorf("kubeconfig missing: %v", err)
	}
	write(ws.Path("infra", "kc", "kubeconfig"))
	if cfg, err := p.Config(ctx); err != nil || cfg.Host != "https://127.0.0.2:6443" {
		t.Errorf("kubeconfig with context b: %v %v", cfg, err)
	}
	p, _ = Open(ws, kc, Access{Context: "a"})
	if cfg, err := p.Config(ctx); err != nil || cfg.Host != "https://127.0.0.1:6443" {
		t.Errorf("--context a: %v %v", cfg, err)
	}
	p, _ = Open(ws, kc, Access{Context: "c"})
	if _, err := p.Config(ctx); err == nil || !strings.Contains(err.Error(), `context "c" does not exist`) {
		t.Errorf("--context c: %v", err)
	}
	do := &Environment{Name: "staging", Backend: DigitalOcean, Cluster: "staging"}
	if _, err := Open(ws, do, Access{}); err == nil || !strings.Contains(err.Error(), "not supported yet: pass --kubeconfig") {
		t.Errorf("digitalocean: %v", err)
	}
	p, err = Open(ws, do, Access{Kubeconfig: ws.Path("infra", "kc", "kubeconfig")})
	if err != nil || p.Backend() != DigitalOcean {
		t.Fatalf("digitalocean with --kubeconfig: %v", err)
	}
	if cfg, err := p.Config(ctx); err != nil || cfg.Host != "https://127.0.0.1:6443" {
		t.Errorf("digitalocean with --kubeconfig: %v %v", cfg, err)
	}
}
