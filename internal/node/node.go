// Package node owns the local single-node Kubernetes of the development
// backend: the node's programs (etcd and the Kubernetes components built
// from their locked sources, containerd, runc and the CNI plugins extracted
// from pinned Debian packages), its CA and certificates, the configuration
// of every component, a supervisor that starts them in order and waits for
// each to be healthy, and the bookkeeping that lets `stack down` stop what
// `stack up` started and restore the host as it was (sysctls, iptables
// chains, mounts, interfaces).
//
// Everything lives under one data directory, <cache>/node/<cluster> (named
// by internal/workspace):
//
//	pki/             CA, certificates (0644) and keys (0600)
//	kubeconfig       the admin kubeconfig printed by `stack kubeconfig`
//	etc/             kubeconfigs and config files of the components
//	etcd/            etcd's data
//	containerd/      containerd's root, state, socket and registry hosts
//	kubelet/         the kubelet's root directory and pod logs
//	cni/             CNI configuration and IP allocations
//	logs/<c>.log     each component's output
//	state.json       PIDs started, host settings found before the first start
package node

import (
	"fmt"
	"path/filepath"

	"github.com/hashbang/stack/internal/workspace"
)

// Defaults of the development node's network. Pods get addresses of
// PodCIDR on the bridge, whose gateway address is the node's own address
// (the API server and the kubelet listen there, reachable from the host and
// from pods, not from the network); Services get addresses of ServiceCIDR.
const (
	DefaultBridge       = "stack0"
	DefaultAddr         = "10.88.0.1"
	DefaultPodCIDR      = "10.88.0.0/16"
	DefaultServiceCIDR  = "10.96.0.0/16"
	DefaultAPIServiceIP = "10.96.0.1"
	DefaultDNSIP        = "10.96.0.10"
	DefaultDomain       = "cluster.local"
	APIPort             = 6443
)

// Node is one local single-node cluster.
type Node struct {
	// Cluster is the cluster's name; the node is called the same.
	Cluster string
	Name    string
	// Dir is the data directory, <cache>/node/<cluster>.
	Dir string

	Bridge       string
	Addr         string
	PodCIDR      string
	ServiceCIDR  string
	APIServiceIP string
	DNSIP        string
	Domain       string

	// RegistryName is the registry host images are named after
	// (registry.localhost:5000); RegistryAddr is where it is served
	// (127.0.0.1:5000).
	RegistryName string
	RegistryAddr string
	// PauseImage is the sandbox image reference, pinned by digest.
	PauseImage string

	// Bins are the built programs by name (see Programs); Tools are the
	// extracted Debian packages by source name (runc, containerd,
	// cni-plugins).
	Bins  map[string]string
	Tools map[string]string

	// SupervisorArgs is the command line of the node's supervisor
	// (`stack supervise DIR`), which Up starts once the components are
	// healthy; empty: no supervisor.
	SupervisorArgs []string
}

// New returns the node of cluster with its data in dir (the workspace's
// NodeDir) and the default network.
func New(dir, cluster string) *Node {
	return &Node{
		Cluster:      cluster,
		Name:         cluster,
		Dir:          dir,
		Bridge:       DefaultBridge,
		Addr:         DefaultAddr,
		PodCIDR:      DefaultPodCIDR,
		ServiceCIDR:  DefaultServiceCIDR,
		APIServiceIP: DefaultAPIServiceIP,
		DNSIP:        DefaultDNSIP,
		Domain:       DefaultDomain,
	}
}

// Kubeconfig is the admin kubeconfig's path (where the workspace names it,
// so that the local backend finds it).
func (n *Node) Kubeconfig() string { return workspace.NodeKubeconfig(n.Dir) }

// LogPath is where a component's output goes.
func (n *Node) LogPath(component string) string { return n.path("logs", component+".log") }

// APIServer is the URL of the API server.
func (n *Node) APIServer() string { return fmt.Sprintf("https://%s:%d", n.Addr, APIPort) }

func (n *Node) path(elem ...string) string { return filepath.Join(append([]string{n.Dir}, elem...)...) }
func (n *Node) pki(name string) string     { return n.path("pki", name) }

// containerdSocket is containerd's CRI and API socket.
func (n *Node) containerdSocket() string { return n.path("containerd", "containerd.sock") }
