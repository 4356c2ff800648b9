// Package kubetest starts a real Kubernetes control plane for tests: etcd
// and kube-apiserver built from the locked sources (config/sources.yaml)
// through the binary cache, with the same build flags as the development
// node (internal/node), listening on loopback ports only, with certificates
// made for the occasion, an administrator's kubeconfig, and kubectl.
// Everything lives in a temporary directory and stops when the test ends.
// There is no kubelet, scheduler or controller manager: pods never run, so
// tests make objects ready by writing their status.
package kubetest

import (
	"context"
	"fmt"

	"github.com/hashbang/stack/internal/build"
	"github.com/hashbang/stack/internal/node"
	"github.com/hashbang/stack/internal/source"
	"github.com/hashbang/stack/internal/workspace"
)

// Binaries are the paths of the programs a control plane runs.
type Binaries struct {
	Etcd, APIServer, Kubectl string
}

// Build returns the binaries, building those not yet in the workspace's
// binary cache (kube-apiserver takes minutes the first time).
func Build(ctx context.Context, ws *workspace.Workspace) (*Binaries, error) {
	cfg, err := source.Load(ws.Sources())
	if err != nil {
		return nil, err
	}
	bins, err := node.Binaries(cfg)
	if err != nil {
		return nil, err
	}
	c := build.NewCache(ws, source.NewPreparer(ws, cfg, nil), nil)
	var b Binaries
	for name, out := range map[string]*string{"etcd": &b.Etcd, "kube-apiserver": &b.APIServer, "kubectl": &b.Kubectl} {
		p, err := c.Binary(ctx, bins[name])
		if err != nil {
			return nil, fmt.Errorf("build %s: %w", name, err)
		}
		*out = p
	}
	return &b, nil
}
