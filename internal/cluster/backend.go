package cluster

import (
	"context"
	"errors"
	"fmt"
	"os"
	"path/filepath"

	"k8s.io/client-go/rest"
	"k8s.io/client-go/tools/clientcmd"

	"github.com/hashbang/stack/internal/workspace"
)

// A Provider provides an environment's cluster: it says how to reach the
// cluster's API server. Each backend has one (local, kubeconfig,
// digitalocean, baremetal); the backends that stack provisions itself will
// also plan and apply their cluster here.
type Provider interface {
	// Backend is the kind of backend.
	Backend() Backend
	// Config returns how to reach the cluster's API server, or an error
	// saying what to do when the cluster cannot be reached yet.
	Config(ctx context.Context) (*rest.Config, error)
}

// Access overrides how a cluster is reached: what --kubeconfig and
// --context say. $KUBECONFIG is not taken implicitly: set for another
// cluster, it would send a deploy there.
type Access struct {
	// Kubeconfig is a kubeconfig file that replaces the backend's.
	Kubeconfig string
	// Context is the kubeconfig context to use instead of the file's
	// current one (and of the environment's `context:`).
	Context string
}

// Open returns the provider of env's cluster in workspace ws. An Access
// with a kubeconfig replaces the backend's way in, whatever the backend.
func Open(ws *workspace.Workspace, env *Environment, a Access) (Provider, error) {
	ctxName := env.Context
	if a.Context != "" {
		ctxName = a.Context
	}
	if a.Kubeconfig != "" {
		return &kubeconfigFile{backend: env.Backend, path: a.Kubeconfig, context: ctxName, missing: "fix --kubeconfig"}, nil
	}
	switch env.Backend {
	case Local:
		return &kubeconfigFile{
			backend: Local,
			path:    workspace.NodeKubeconfig(env.NodeDir),
			context: ctxName,
			notUp:   fmt.Sprintf("environment %s: cluster %s is not up (no %s): run `stack up %s` first, or pass --kubeconfig", env.Name, env.Cluster, workspace.NodeKubeconfig(env.NodeDir), env.Name),
		}, nil
	case Kubeconfig, Baremetal:
		p := env.Kubeconfig
		if !filepath.IsAbs(p) {
			p = ws.Path(filepath.FromSlash(p))
		}
		return &kubeconfigFile{backend: env.Backend, path: p, context: ctxName, name: env.Kubeconfig, env: env.Name, missing: "write it, or pass --kubeconfig"}, nil
	case DigitalOcean:
		return newDigitalOcean(ws, env)
	}
	return nil, fmt.Errorf("environment %s: unknown backend %q", env.Name, env.Backend)
}

// kubeconfigFile reaches a cluster through a kubeconfig file.
type kubeconfigFile struct {
	backend Backend
	path    string
	context string
	// name is the file as the environment names it, env the environment:
	// for messages.
	name, env string
	// notUp is the whole message when the file is missing; missing is
	// what to do about it otherwise.
	notUp, missing string
}

func (k *kubeconfigFile) Backend() Backend { return k.backend }

func (k *kubeconfigFile) Config(context.Context) (*rest.Config, error) {
	if _, err := os.Stat(k.path); err != nil {
		switch {
		case k.notUp != "" && errors.Is(err, os.ErrNotExist):
			return nil, errors.New(k.notUp)
		case k.env != "":
			return nil, fmt.Errorf("environment %s: kubeconfig %s: %w: %s", k.env, k.name, errors.Unwrap(err), k.missing)
		}
		return nil, fmt.Errorf("kubeconfig %s: %w: %s", k.path, errors.Unwrap(err), k.missing)
	}
	rules := &clientcmd.ClientConfigLoadingRules{ExplicitPath: k.path}
	cfg, err := clientcmd.NewNonInteractiveDeferredLoadingClientConfig(rules, &clientcmd.ConfigOverrides{CurrentContext: k.context}).ClientConfig()
	if err != nil {
		return nil, fmt.Errorf("kubeconfig %s: %w", k.path, err)
	}
	return cfg, nil
}
