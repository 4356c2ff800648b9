// Package cluster owns the environments of the stack (infra/<env>/) and
// the backends that provide their clusters: the local development node,
// a cluster reached by kubeconfig, DigitalOcean Kubernetes and machines of
// our own (baremetal). An environment is a small file naming its backend
// and cluster, next to a kustomize overlay over pods/. Open gives an
// environment's Provider, which says how to reach its cluster's API: the
// deploy engine takes that connection and knows no backend.
package cluster

import (
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"regexp"
	"sort"
	"strings"

	"go.yaml.in/yaml/v3"

	"github.com/hashbang/stack/internal/cluster/digitalocean"
	"github.com/hashbang/stack/internal/workspace"
	"github.com/hashbang/stack/internal/yamlfile"
)

// EnvironmentFile is the name of an environment's definition in its
// directory under infra/.
const EnvironmentFile = "environment.yaml"

// Backend is the kind of cluster an environment runs on.
type Backend string

// The backends.
const (
	// Local is the single-node development cluster that `stack up` runs.
	Local Backend = "local"
	// Kubeconfig is any cluster reached through a kubeconfig file.
	Kubeconfig Backend = "kubeconfig"
	// DigitalOcean is DigitalOcean Kubernetes.
	DigitalOcean Backend = "digitalocean"
	// Baremetal is K3S on machines of our own.
	Baremetal Backend = "baremetal"
)

// Environment is one infra/<env>/environment.yaml.
type Environment struct {
	// Name is the environment's directory name.
	Name string `yaml:"-" json:"name"`
	// Dir is the environment's directory, holding its kustomize overlay.
	Dir string `yaml:"-" json:"dir"`
	// Backend provides the cluster.
	Backend Backend `yaml:"backend" json:"backend"`
	// Cluster names the cluster; its state repo is named after it.
	Cluster string `yaml:"cluster" json:"cluster"`
	// Registry is the registry the cluster pulls the stack's images from.
	Registry string `yaml:"registry" json:"registry"`
	// Protected environments accept only deploys that pass the signature
	// policy (config/policy.yaml) and descend from the last deploy.
	Protected bool `yaml:"protected" json:"protected"`
	// Kubeconfig is the kubeconfig file of a kubeconfig or baremetal
	// backend, relative to the repository root or absolute.
	Kubeconfig string `yaml:"kubeconfig,omitempty" json:"kubeconfig,omitempty"`
	// Context is the kubeconfig context to use (default: the file's
	// current context).
	Context string `yaml:"context,omitempty" json:"context,omitempty"`
	// Ref is the git ref whose commits are deployed to the environment.
	Ref string `yaml:"ref,omitempty" json:"ref,omitempty"`
	// NodeDir is the data directory of a local environment's node,
	// CACHE/node/CLUSTER (internal/node's layout): relative hostPaths of
	// its PersistentVolumes are under it.
	NodeDir string `yaml:"-" json:"nodeDir,omitempty"`
	// DigitalOcean declares the cluster of a digitalocean backend.
	DigitalOcean *digitalocean.Spec `yaml:"digitalocean,omitempty" json:"digitalocean,omitempty"`

	// file and node are where the declaration was read, for the errors
	// of checks made later (against the provider's offer).
	file string
	node *yaml.Node
}

var (
	nameRE    = regexp.MustCompile(`^[a-z0-9][a-z0-9-]*$`)
	backends  = []Backend{Local, Kubeconfig, DigitalOcean, Baremetal}
	errNoEnvs = errors.New("no environments: add infra/<env>/" + EnvironmentFile)
)

// Load reads the environment name of the workspace.
func Load(ws *workspace.Workspace, name string) (*Environment, error) {
	if !nameRE.MatchString(name) {
		return nil, fmt.Errorf("%q is not an environment name: use lower-case letters, digits and dashes", name)
	}
	dir := ws.Path("infra", name)
	file := filepath.Join(dir, EnvironmentFile)
	data, err := os.ReadFile(file)
	if errors.Is(err, os.ErrNotExist) {
		names, _ := Names(ws)
		return nil, fmt.Errorf("no environment %q: infra/%s/%s does not exist (environments: %s)", name, name, EnvironmentFile, strings.Join(names, ", "))
	}
	if err != nil {
		return nil, err
	}
	env, err := Parse(filepath.Join("infra", name, EnvironmentFile), data)
	if err != nil {
		return nil, err
	}
	env.Name, env.Dir = name, dir
	if env.Backend == Local {
		env.NodeDir = ws.NodeDir(env.Cluster)
	}
	return env, nil
}

// Names lists the environments of the workspace, sorted.
func Names(ws *workspace.Workspace) ([]string, error) {
	files, err := filepath.Glob(ws.Path("infra", "*", EnvironmentFile))
	if err != nil {
		return nil, err
	}
	var names []string
	for _, f := range files {
		names = append(names, filepath.Base(filepath.Dir(f)))
	}
	sort.Strings(names)
	if len(names) == 0 {
		return nil, errNoEnvs
	}
	return names, nil
}

// Parse parses the content of an environment file; file names it in errors.
// The syntax rules are every config file's (package yamlfile).
func Parse(file string, data []byte) (*Environment, error) {
	env := &Environment{file: file}
	o := yamlfile.Options{Empty: "it must name at least a backend, a cluster and a registry"}
	if err := yamlfile.Decode(file, data, env, o); err != nil {
		return nil, err
	}
	root, err := yamlfile.Parse(file, data, o)
	if err != nil {
		return nil, err
	}
	switch {
	case !contains(backends, env.Backend):
		return nil, fmt.Errorf("%s: backend %q is not one of local, kubeconfig, digitalocean, baremetal", file, env.Backend)
	case !nameRE.MatchString(env.Cluster):
		return nil, fmt.Errorf("%s: cluster %q is not a name: use lower-case letters, digits and dashes", file, env.Cluster)
	case env.Registry == "" || strings.Contains(env.Registry, "://") || strings.ContainsAny(env.Registry, " \t"):
		return nil, fmt.Errorf("%s: registry %q must be a registry host[:port], like registry.localhost:5000", file, env.Registry)
	case (env.Backend == Kubeconfig || env.Backend == Baremetal) && env.Kubeconfig == "":
		return nil, fmt.Errorf("%s: a %s backend needs `kubeconfig:` naming the cluster's kubeconfig file", file, env.Backend)
	case env.Ref != "" && !strings.HasPrefix(env.Ref, "refs/"):
		return nil, fmt.Errorf("%s: ref %q must be a full ref like refs/heads/production", file, env.Ref)
	case env.Backend == DigitalOcean && env.DigitalOcean == nil:
		return nil, fmt.Errorf("%s: a digitalocean backend needs a `digitalocean:` block declaring its cluster (region, version, maintenance, pools): see the README", file)
	case env.Backend != DigitalOcean && env.DigitalOcean != nil:
		return nil, yamlfile.Errorf(file, keyNode(root, "digitalocean"), "`digitalocean:` declares a DigitalOcean cluster, but the backend is %s: remove the block or set `backend: digitalocean`", env.Backend)
	}
	if env.DigitalOcean != nil {
		env.node = valueNode(root, "digitalocean")
		if err := env.DigitalOcean.Validate(file, env.node); err != nil {
			return nil, err
		}
	}
	return env, nil
}

// keyNode and valueNode find key's key and value in mapping n.
func keyNode(n *yaml.Node, key string) *yaml.Node {
	for i := 0; i+1 < len(n.Content); i += 2 {
		if n.Content[i].Value == key {
			return n.Content[i]
		}
	}
	return n
}

func valueNode(n *yaml.Node, key string) *yaml.Node {
	for i := 0; i+1 < len(n.Content); i += 2 {
		if n.Content[i].Value == key {
			return n.Content[i+1]
		}
	}
	return n
}

func contains(list []Backend, b Backend) bool {
	for _, e := range list {
		if e == b {
			return true
		}
	}
	return false
}
