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

// doEnv is an environment.yaml of a digitalocean backend whose
// `digitalocean:` block is block (indented by the caller).
func doEnv(block string) string {
	return "backend: digitalocean\ncluster: staging\nregistry: localhost:5000\ndigitalocean:\n" + block
}

const goodDO = `  region: ams3
  version: 1.36.3-do.0
  maintenance: {day: sunday, start: "03:00"}
  pools:
    - name: workers
      size: s-2vcpu-4gb
      count: 2
`

// TestParseDigitalOcean holds the declaration of a DigitalOcean cluster to
// one line per problem, naming the file, the line and the fix.
func TestParseDigitalOcean(t *testing.T) {
	env, err := Parse("e.yaml", []byte(doEnv(goodDO)))
	if err != nil || env.DigitalOcean == nil || env.DigitalOcean.Pools[0].Count != 2 {
		t.Fatalf("good declaration: %v %+v", err, env)
	}
	for _, tt := range []struct{ in, want string }{
		{"backend: digitalocean\ncluster: staging\nregistry: r:5000\n", "e.yaml: a digitalocean backend needs a `digitalocean:` block"},
		{"backend: local\ncluster: dev\nregistry: r:5000\ndigitalocean: {region: ams3}\n", "e.yaml:4: `digitalocean:` declares a DigitalOcean cluster, but the backend is local"},
		{doEnv(strings.Replace(goodDO, "ams3", "Amsterdam", 1)), `e.yaml:5: region "Amsterdam" is not a region slug`},
		{doEnv(strings.Replace(goodDO, "1.36.3-do.0", "latest", 1)), `e.yaml:6: version "latest" is not pinned: name an exact slug`},
		{doEnv(strings.Replace(goodDO, "1.36.3-do.0", "1.36", 1)), `e.yaml:6: version "1.36" is not an exact version slug`},
		{doEnv(strings.Replace(goodDO, "sunday", "someday", 1)), `e.yaml:7: maintenance day "someday" is not one of any, monday`},
		{doEnv(strings.Replace(goodDO, `"03:00"`, `"25:00"`, 1)), `e.yaml:7: maintenance start "25:00" is not a time HH:MM`},
		{doEnv(strings.Replace(goodDO, "count: 2", "count: 0", 1)), "e.yaml:11: pool workers: count 0 is out of range: give 1 to 512 nodes"},
		{doEnv(strings.Replace(goodDO, "count: 2", "count: 2\n      autoscale: {min: 1, max: 3}", 1)), "e.yaml:11: pool workers: count and autoscale are both given"},
		{doEnv(strings.Replace(goodDO, "count: 2", "autoscale: {min: 4, max: 3}", 1)), "e.yaml:11: pool workers: autoscale min 4, max 3: give 1 <= min <= max <= 512"},
		{doEnv(strings.Replace(goodDO, "s-2vcpu-4gb", "S 2", 1)), `e.yaml:10: pool workers: size "S 2" is not a droplet size slug`},
		{doEnv(goodDO + "    - name: workers\n      size: s-1vcpu-2gb\n      count: 1\n"), `e.yaml:12: pool "workers" is declared twice`},
		{doEnv(goodDO + "      taints: [\"dedicated=db\"]\n"), `e.yaml:12: pool workers: taint "dedicated=db": write key=value:Effect`},
		{doEnv(goodDO + "      labels: {\"bad key!\": x}\n"), `e.yaml:12: pool workers: label key "bad key!"`},
		{doEnv(goodDO + "  vpc: my-vpc\n"), `e.yaml:12: vpc "my-vpc" is not a VPC UUID`},
		{doEnv(goodDO + "  tags: [\"a b\"]\n"), `e.yaml:12: tag "a b" is not a tag`},
		{doEnv(goodDO + "  nodes: 3\n"), `e.yaml:12: unknown key "nodes"`},
		{doEnv("  region: ams3\n  version: 1.36.3-do.0\n  maintenance: {day: any, start: \"00:00\"}\n"), "e.yaml:5: digitalocean: needs `pools:`"},
	} {
		_, err := Parse("e.yaml", []byte(tt.in))
		if err == nil || !strings.Contains(err.Error(), tt.want) || strings.Contains(err.Error(), "\n") {
			t.Errorf("Parse(%q)\n = %v\nwant %q", tt.in, err, tt.want)
		}
	}
}

func FuzzParse(f *testing.F) {
	f.Add([]byte(doEnv(goodDO)))
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
		if (env.Backend == DigitalOcean) != (env.DigitalOcean != nil) {
			t.Fatalf("accepted backend %s with declaration %+v", env.Backend, env.DigitalOcean)
		}
		if d := env.DigitalOcean; d != nil && (d.Version == "latest" || len(d.Pools) == 0 || d.Region == "") {
			t.Fatalf("accepted declaration %+v", d)
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
	p, err = Open(ws, do, Access{})
	if err != nil {
		t.Fatal(err)
	}
	if _, err := p.Config(ctx); err == nil || !strings.Contains(err.Error(), "environment staging: no credentials of cluster staging") || !strings.Contains(err.Error(), "run `stack infra apply staging` first, or pass --kubeconfig") {
		t.Errorf("digitalocean before infra apply: %v", err)
	}
	p, err = Open(ws, do, Access{Kubeconfig: ws.Path("infra", "kc", "kubeconfig")})
	if err != nil || p.Backend() != DigitalOcean {
		t.Fatalf("digitalocean with --kubeconfig: %v", err)
	}
	if cfg, err := p.Config(ctx); err != nil || cfg.Host != "https://127.0.0.1:6443" {
		t.Errorf("digitalocean with --kubeconfig: %v %v", cfg, err)
	}
}
