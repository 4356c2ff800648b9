package node

import (
	"encoding/base64"
	"encoding/json"
	"fmt"
	"os"
	"path/filepath"
	"strconv"
	"strings"

	"github.com/hashbang/stack/internal/atomicfile"

	"github.com/hashbang/stack/internal/registry"
)

// Paths inside the extracted Debian packages.
const (
	runcPath       = "usr/sbin/runc"
	containerdPath = "usr/bin/containerd"
	ctrPath        = "usr/bin/ctr"
	cniBinDir      = "usr/lib/cni"
)

// writeConfig writes every component's configuration: kubeconfigs,
// containerd's config and registry hosts, the CNI network, the kubelet's
// and kube-proxy's configuration files. It is cheap and idempotent.
func (n *Node) writeConfig() error {
	for _, k := range []struct{ file, cert string }{
		{"kubeconfig", "admin"},
		{"etc/controller-manager.kubeconfig", "controller-manager"},
		{"etc/scheduler.kubeconfig", "scheduler"},
		{"etc/kubelet.kubeconfig", "kubelet"},
		{"etc/kube-proxy.kubeconfig", "kube-proxy"},
	} {
		data, err := n.kubeconfig(k.cert)
		if err != nil {
			return err
		}
		if err := atomicfile.WriteFile(n.path(k.file), data, 0o600); err != nil {
			return err
		}
	}
	files := map[string]string{
		"containerd/config.toml":      n.containerdConfig(),
		"cni/net.d/10-stack.conflist": n.cniConfig(),
		"etc/kubelet.yaml":            n.kubeletConfig(),
		"etc/kube-proxy.yaml":         n.kubeProxyConfig(),
		"etc/resolv.conf":             n.upstreamResolvConf(),
	}
	for name, content := range files {
		if err := atomicfile.WriteFile(n.path(name), []byte(content), 0o644); err != nil {
			return err
		}
	}
	if n.RegistryName != "" {
		m := registry.Mirror{Name: n.RegistryName, Endpoints: []string{"http://" + n.RegistryAddr}}
		if err := registry.WriteHosts(n.path("containerd", "certs.d"), m); err != nil {
			return fmt.Errorf("containerd registry hosts: %w", err)
		}
	}
	return nil
}

// kubeconfig is a kubeconfig that authenticates with the certificate name.
func (n *Node) kubeconfig(name string) ([]byte, error) {
	ca, err := os.ReadFile(n.pki("ca.crt"))
	if err != nil {
		return nil, err
	}
	crt, err := os.ReadFile(n.pki(name + ".crt"))
	if err != nil {
		return nil, err
	}
	key, err := os.ReadFile(n.pki(name + ".key"))
	if err != nil {
		return nil, err
	}
	b64 := base64.StdEncoding.EncodeToString
	user := "stack-" + name
	return []byte(fmt.Sprintf(`apiVersion: v1
kind: Config
clusters:
- name: %[1]s
  cluster:
    server: %[2]s
    certificate-authority-data: %[3]s
users:
- name: %[4]s
  user:
    client-certificate-data: %[5]s
    client-key-data: %[6]s
contexts:
- name: %[1]s
  context:
    cluster: %[1]s
    user: %[4]s
current-context: %[1]s
`, n.Cluster, n.APIServer(), b64(ca), user, b64(crt), b64(key))), nil
}

// containerdConfig keeps every containerd path under the data directory,
// runs runc from the extracted package, never asks for a negative OOM
// score, pulls the sandbox (pause) image from our registry and takes
// registry mirrors from hosts.toml files.
func (n *Node) containerdConfig() string {
	q := strconv.Quote
	return `version = 2
root = ` + q(n.path("containerd", "root")) + `
state = ` + q(n.path("containerd", "state")) + `
oom_score = 0
# Plugins that are not used, or would write outside the data directory.
disabled_plugins = [
  "io.containerd.internal.v1.opt",
  "io.containerd.snapshotter.v1.aufs",
  "io.containerd.snapshotter.v1.btrfs",
  "io.containerd.snapshotter.v1.devmapper",
  "io.containerd.snapshotter.v1.zfs",
  "io.containerd.tracing.processor.v1.otlp",
]

[grpc]
  address = ` + q(n.containerdSocket()) + `

[ttrpc]
  address = ` + q(n.path("containerd", "containerd.sock.ttrpc")) + `

[debug]
  address = ""

[metrics]
  address = ""

[plugins."io.containerd.grpc.v1.cri"]
  sandbox_image = ` + q(n.PauseImage) + `
  restrict_oom_score_adj = true
  netns_mounts_under_state_dir = true
  stream_server_address = "127.0.0.1"
  stream_server_port = "0"
  enable_selinux = false
  max_container_log_line_size = 16384
  [plugins."io.containerd.grpc.v1.cri".containerd]
    snapshotter = "overlayfs"
    default_runtime_name = "runc"
    [plugins."io.containerd.grpc.v1.cri".containerd.runtimes.runc]
      runtime_type = "io.containerd.runc.v2"
      [plugins."io.containerd.grpc.v1.cri".containerd.runtimes.runc.options]
        BinaryName = ` + q(filepath.Join(n.Tools["runc"], runcPath)) + `
        SystemdCgroup = false
  [plugins."io.containerd.grpc.v1.cri".cni]
    bin_dir = ` + q(filepath.Join(n.Tools["cni-plugins"], cniBinDir)) + `
    conf_dir = ` + q(n.path("cni", "net.d")) + `
    max_conf_num = 1
  [plugins."io.containerd.grpc.v1.cri".registry]
    config_path = ` + q(n.path("containerd", "certs.d")) + `
`
}

// cniConfig is the pod network: a bridge whose gateway is the node's
// address, host-local addresses of PodCIDR, masquerading for traffic
// leaving the node, and portmap for hostPorts (127.0.0.1 ones included).
func (n *Node) cniConfig() string {
	conf := map[string]any{
		"cniVersion": "1.0.0",
		"name":       "stack",
		"plugins": []any{
			map[string]any{
				"type":        "bridge",
				"bridge":      n.Bridge,
				"isGateway":   true,
				"ipMasq":      true,
				"hairpinMode": true,
				"ipam": map[string]any{
					"type":    "host-local",
					"ranges":  [][]map[string]string{{{"subnet": n.PodCIDR, "gateway": n.Addr}}},
					"routes":  []map[string]string{{"dst": "0.0.0.0/0"}},
					"dataDir": n.path("cni", "ipam"),
				},
			},
			map[string]any{"type": "portmap", "capabilities": map[string]bool{"portMappings": true}},
		},
	}
	b, _ := json.MarshalIndent(conf, "", "  ")
	return string(b) + "\n"
}

// kubeletConfig is the kubelet's configuration: cgroup v1 with the
// cgroupfs driver (this host's hybrid hierarchy cannot be switched to v2),
// no negative OOM score, authenticated and authorized API only, on the
// node's address.
func (n *Node) kubeletConfig() string {
	return `apiVersion: kubelet.config.k8s.io/v1beta1
kind: KubeletConfiguration
failCgroupV1: false
cgroupDriver: cgroupfs
containerRuntimeEndpoint: unix://` + n.containerdSocket() + `
address: ` + n.Addr + `
port: 10250
readOnlyPort: 0
healthzBindAddress: 127.0.0.1
healthzPort: 10248
oomScoreAdj: 0
failSwapOn: false
protectKernelDefaults: false
rotateCertificates: false
serverTLSBootstrap: false
tlsCertFile: ` + n.pki("kubelet-server.crt") + `
tlsPrivateKeyFile: ` + n.pki("kubelet-server.key") + `
authentication:
  anonymous:
    enabled: false
  webhook:
    enabled: true
  x509:
    clientCAFile: ` + n.pki("ca.crt") + `
authorization:
  mode: Webhook
clusterDomain: ` + n.Domain + `
clusterDNS:
- ` + n.DNSIP + `
resolvConf: ` + n.path("etc", "resolv.conf") + `
podLogsDir: ` + n.path("kubelet", "pod-logs") + `
imageGCHighThresholdPercent: 95
imageGCLowThresholdPercent: 90
evictionHard:
  memory.available: 100Mi
  nodefs.available: 2%
  imagefs.available: 2%
maxPods: 110
`
}

// kubeProxyConfig is kube-proxy in iptables mode. It leaves conntrack
// sysctls and route_localnet as they are and serves only on loopback.
func (n *Node) kubeProxyConfig() string {
	return `apiVersion: kubeproxy.config.k8s.io/v1alpha1
kind: KubeProxyConfiguration
clientConnection:
  kubeconfig: ` + n.path("etc", "kube-proxy.kubeconfig") + `
hostnameOverride: ` + n.Name + `
mode: iptables
clusterCIDR: ` + n.PodCIDR + `
bindAddress: 127.0.0.1
healthzBindAddress: 127.0.0.1:10256
metricsBindAddress: 127.0.0.1:10249
oomScoreAdj: 0
nodePortAddresses:
- ` + n.Addr + `/32
iptables:
  localhostNodePorts: false
conntrack:
  maxPerCore: 0
  min: 0
  tcpEstablishedTimeout: 0s
  tcpCloseWaitTimeout: 0s
`
}

// upstreamResolvConf is what pods with the Default DNS policy (CoreDNS)
// forward to: the host's nameservers, except loopback ones, which a pod
// cannot reach.
func (n *Node) upstreamResolvConf() string {
	data, _ := os.ReadFile("/etc/resolv.conf")
	var b strings.Builder
	for _, line := range strings.Split(string(data), "\n") {
		f := strings.Fields(line)
		if len(f) >= 2 && f[0] == "nameserver" && (strings.HasPrefix(f[1], "127.") || f[1] == "::1") {
			continue
		}
		if len(f) > 0 && (f[0] == "nameserver" || f[0] == "options") {
			b.WriteString(line + "\n")
		}
	}
	if b.Len() == 0 {
		// No reachable upstream: names outside the cluster do not
		// resolve, cluster names still do.
		b.WriteString("# no non-loopback nameserver on the host\n")
	}
	return b.String()
}
