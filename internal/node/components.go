package node

import (
	"context"
	"fmt"

	"github.com/hashbang/stack/internal/build"
	"github.com/hashbang/stack/internal/source"
)

// KubernetesSource and EtcdSource are the gomod sources of config/sources.yaml
// the node's programs are built from.
const (
	KubernetesSource = "kubernetes"
	EtcdSource       = "etcd"
)

// etcdMain wraps etcd's library entry point in a main package.
const etcdMain = `package main

import (
	"os"

	"go.etcd.io/etcd/server/v3/etcdmain"
)

func main() { etcdmain.Main(os.Args) }
`

// Programs are the Go programs of the node, in the order they are built.
var Programs = []string{"etcd", "kube-apiserver", "kube-controller-manager", "kube-scheduler", "kubelet", "kube-proxy", "kubectl"}

// versionFlags are the linker flags that stamp a Kubernetes binary with the
// version of the source it is built from, as upstream's release build does;
// buildDate is fixed so that the binary is reproducible.
func versionFlags(version string) ([]string, error) {
	var major, minor, patch int
	if _, err := fmt.Sscanf(version, "v%d.%d.%d", &major, &minor, &patch); err != nil {
		return nil, fmt.Errorf("kubernetes version %q is not vMAJOR.MINOR.PATCH", version)
	}
	pkg := "k8s.io/component-base/version"
	return []string{
		"-X=" + pkg + ".gitVersion=" + version,
		fmt.Sprintf("-X=%s.gitMajor=%d", pkg, major),
		fmt.Sprintf("-X=%s.gitMinor=%d", pkg, minor),
		"-X=" + pkg + ".gitTreeState=clean",
		"-X=" + pkg + ".buildDate=1970-01-01T00:00:00Z",
	}, nil
}

// Binaries returns the build of each node program, keyed by name.
func Binaries(cfg *source.Config) (map[string]build.Binary, error) {
	k, err := cfg.Get(KubernetesSource)
	if err != nil {
		return nil, fmt.Errorf("node: %w", err)
	}
	if _, err := cfg.Get(EtcdSource); err != nil {
		return nil, fmt.Errorf("node: %w", err)
	}
	flags, err := versionFlags(k.Version)
	if err != nil {
		return nil, err
	}
	bins := map[string]build.Binary{
		"etcd": {Source: EtcdSource, Package: "go.etcd.io/etcd/server/v3/etcdmain", Main: etcdMain},
	}
	for _, name := range Programs[1:] {
		bins[name] = build.Binary{Source: KubernetesSource, Package: "k8s.io/kubernetes/cmd/" + name, LDFlags: flags}
	}
	return bins, nil
}

// Build builds (or finds cached) every node program and returns their paths
// by name.
func Build(ctx context.Context, c *build.Cache, cfg *source.Config) (map[string]string, error) {
	bins, err := Binaries(cfg)
	if err != nil {
		return nil, err
	}
	paths := make(map[string]string, len(bins))
	for _, name := range Programs {
		p, err := c.Binary(ctx, bins[name])
		if err != nil {
			return nil, fmt.Errorf("build %s: %w", name, err)
		}
		paths[name] = p
	}
	return paths, nil
}
