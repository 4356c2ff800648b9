package node

import (
	"context"
	"crypto/tls"
	"crypto/x509"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"time"

	"github.com/hashbang/stack/internal/atomicfile"

	"github.com/hashbang/stack/internal/ui"
)

// State is what the node records in state.json: the processes it started
// and what the host looked like before its first start.
type State struct {
	Procs []Proc `json:"procs"`
	// Sysctls are the values of Sysctls found before the first start.
	Sysctls map[string]string `json:"sysctls"`
	// Created are host paths outside the data directory that did not
	// exist before the first start (containerd's shim socket directory,
	// libcni's cache); Down removes them.
	Created []string `json:"created,omitempty"`
	// BridgeCreated says the bridge was made by the node.
	BridgeCreated bool `json:"bridgeCreated"`
	// Tables are the iptables tables that existed before the first start;
	// Down deletes the others once they are empty.
	Tables []string `json:"tables"`
	// Supervisor is the process that restarts components that die.
	Supervisor *Proc `json:"supervisor,omitempty"`
	// Services are what the node keeps running beside its components
	// (StartService).
	Services []Proc `json:"services,omitempty"`
}

// hostPaths are paths outside the data directory that containerd 1.6
// (shim sockets), libcni (its cache) and the kubelet (device-plugins,
// container log links) write to whatever their configuration says.
var hostPaths = []string{"/run/containerd", "/var/lib/cni", "/var/lib/kubelet", "/var/log/containers"}

func (n *Node) statePath() string { return n.path("state.json") }

// ReadState reads state.json; a missing file is an empty state.
func (n *Node) ReadState() (*State, error) {
	data, err := os.ReadFile(n.statePath())
	if errors.Is(err, os.ErrNotExist) {
		return &State{}, nil
	}
	if err != nil {
		return nil, err
	}
	var s State
	if err := json.Unmarshal(data, &s); err != nil {
		return nil, fmt.Errorf("%s: %w (remove it after stopping the node's processes by hand)", n.statePath(), err)
	}
	return &s, nil
}

func (n *Node) writeState(s *State) error {
	data, err := json.MarshalIndent(s, "", "  ")
	if err != nil {
		return err
	}
	return atomicfile.WriteFile(n.statePath(), append(data, '\n'), 0o600)
}

// Proc is the recorded process of component.
func (s *State) Proc(component string) (Proc, bool) {
	for _, p := range s.Procs {
		if p.Component == component {
			return p, true
		}
	}
	return Proc{}, false
}

func (s *State) setProc(p Proc) {
	for i := range s.Procs {
		if s.Procs[i].Component == p.Component {
			s.Procs[i] = p
			return
		}
	}
	s.Procs = append(s.Procs, p)
}

// Running reports whether every component recorded runs.
func (n *Node) Running() bool {
	s, err := n.ReadState()
	if err != nil || len(s.Procs) == 0 {
		return false
	}
	for _, p := range s.Procs {
		if !p.Alive() {
			return false
		}
	}
	return len(s.Procs) == len(n.components())
}

// Up starts the node, or the components of it that are not running, in
// order, each waited for until healthy; then waits for the node to be
// Ready. On failure everything is stopped and the host restored, and the
// error names the component and its log.
func (n *Node) Up(ctx context.Context, p *ui.Progress) error {
	unlock, err := n.lock(true)
	if err != nil {
		return err
	}
	defer unlock()
	st, err := n.ReadState()
	if err != nil {
		return err
	}
	fresh := len(st.Procs) == 0
	if fresh {
		st.Sysctls = readSysctls(Sysctls)
		st.Created = nil
		for _, hp := range hostPaths {
			if _, err := os.Stat(hp); errors.Is(err, os.ErrNotExist) {
				st.Created = append(st.Created, hp)
			}
		}
		st.BridgeCreated = !linkExists(n.Bridge)
		st.Tables = append([]string{}, iptablesTables()...) // [] even when none: recorded
		if err := n.writeState(st); err != nil {
			return err
		}
	}
	// A node that does not come up is stopped entirely, whether this run
	// started all of it or only restarted a part: nothing half-started.
	fail := func(err error) error {
		if derr := n.down(context.WithoutCancel(ctx), nil, false); derr != nil {
			err = fmt.Errorf("%w; stopping what was started also failed: %v", err, derr)
		}
		return err
	}
	step := p.Start("node %s: certificates, configuration, network", n.Cluster)
	err = n.ensurePKI()
	if err == nil {
		err = n.writeConfig()
	}
	if err == nil {
		err = n.ensureBridge()
	}
	if err == nil {
		err = n.guardAddr()
	}
	if err == nil {
		// Services need bridged traffic to pass through iptables, and
		// the node routes between pods and the host.
		err = errors.Join(setSysctl("net.bridge.bridge-nf-call-iptables", "1"), setSysctl("net.ipv4.ip_forward", "1"))
	}
	if err = step.Done(err); err != nil {
		return fail(err)
	}
	for _, c := range n.components() {
		what := "start " + c.Name
		if proc, ok := st.Proc(c.Name); ok && proc.Alive() {
			hctx, cancel := context.WithTimeout(ctx, 5*time.Second)
			herr := c.Health(hctx)
			cancel()
			if herr == nil && proc.Config == c.configHash() {
				continue
			}
			// Unhealthy, or started with another configuration
			// (a new build, a new pause image): restart it.
			what = "restart " + c.Name + " (configuration changed)"
			if herr != nil {
				what = "restart " + c.Name + " (unhealthy)"
			}
			if err := proc.Stop(10 * time.Second); err != nil {
				return fail(err)
			}
		} else if ok {
			what = "start " + c.Name + " (it had stopped)"
			if proc.Failed != "" {
				what = "start " + c.Name + " (the supervisor had given up: " + strings.SplitN(proc.Failed, ";", 2)[0] + ")"
			}
		}
		step := p.Start("%s", what)
		proc, err := n.startProc(c)
		if err == nil {
			st.setProc(proc)
			if werr := n.writeState(st); werr != nil {
				err = werr
			}
		}
		if err == nil {
			err = waitHealthy(ctx, c, proc)
		}
		if err = step.Done(err); err != nil {
			return fail(err)
		}
	}
	if err := n.ensureSupervisor(st); err != nil {
		return fail(fmt.Errorf("start the node's supervisor: %w", err))
	}
	step = p.Start("wait for node %s to be Ready", n.Name)
	err = n.waitReady(ctx, 2*time.Minute)
	if err = step.Done(err); err != nil {
		return fail(err)
	}
	return nil
}

// waitReady waits for the node's Ready condition.
func (n *Node) waitReady(ctx context.Context, timeout time.Duration) error {
	deadline := time.Now().Add(timeout)
	for {
		out, err := n.Kubectl(ctx, nil, "get", "node", n.Name, "-o", `jsonpath={.status.conditions[?(@.type=="Ready")].status}`)
		if err == nil && strings.TrimSpace(out) == "True" {
			return nil
		}
		if time.Now().After(deadline) {
			return fmt.Errorf("node %s not Ready after %s: see %s and %s", n.Name, timeout, n.LogPath("kubelet"), n.LogPath("containerd"))
		}
		select {
		case <-ctx.Done():
			return ctx.Err()
		case <-time.After(time.Second):
		}
	}
}

// Kubectl runs the built kubectl against the cluster with the admin
// kubeconfig and returns its standard output.
func (n *Node) Kubectl(ctx context.Context, stdin io.Reader, args ...string) (string, error) {
	cmd := exec.CommandContext(ctx, n.Bins["kubectl"], append([]string{"--kubeconfig", n.Kubeconfig()}, args...)...)
	cmd.Stdin = stdin
	var out, errb strings.Builder
	cmd.Stdout, cmd.Stderr = &out, &errb
	if err := cmd.Run(); err != nil {
		return out.String(), fmt.Errorf("kubectl %s: %v: %s", strings.Join(args, " "), err, strings.TrimSpace(errb.String()))
	}
	return out.String(), nil
}

// components are the node's programs in start order.
func (n *Node) components() []component {
	pki := n.pki
	etc := func(f string) string { return n.path("etc", f) }
	bin := func(name string) string { return n.Bins[name] }
	tool := func(src, rel string) string { return filepath.Join(n.Tools[src], rel) }
	local := "127.0.0.1"
	return []component{
		{
			Name: "etcd",
			Args: []string{bin("etcd"),
				"--name=" + n.Name, "--data-dir=" + n.path("etcd"),
				"--listen-client-urls=https://127.0.0.1:2379", "--advertise-client-urls=https://127.0.0.1:2379",
				"--listen-peer-urls=http://127.0.0.1:2380", "--initial-advertise-peer-urls=http://127.0.0.1:2380",
				"--initial-cluster=" + n.Name + "=http://127.0.0.1:2380",
				"--listen-metrics-urls=http://127.0.0.1:2381",
				"--cert-file=" + pki("etcd.crt"), "--key-file=" + pki("etcd.key"),
				"--trusted-ca-file=" + pki("ca.crt"), "--client-cert-auth=true",
				"--log-level=warn",
			},
			Health: httpHealth(nil, "http://127.0.0.1:2381/health"),
		},
		{
			Name: "kube-apiserver",
			Args: []string{bin("kube-apiserver"),
				"--advertise-address=" + n.Addr, "--bind-address=" + n.Addr, fmt.Sprintf("--secure-port=%d", APIPort),
				"--etcd-servers=https://127.0.0.1:2379", "--etcd-cafile=" + pki("ca.crt"),
				"--etcd-certfile=" + pki("apiserver-etcd-client.crt"), "--etcd-keyfile=" + pki("apiserver-etcd-client.key"),
				"--client-ca-file=" + pki("ca.crt"),
				"--tls-cert-file=" + pki("apiserver.crt"), "--tls-private-key-file=" + pki("apiserver.key"),
				"--kubelet-client-certificate=" + pki("apiserver-kubelet-client.crt"),
				"--kubelet-client-key=" + pki("apiserver-kubelet-client.key"),
				"--kubelet-certificate-authority=" + pki("ca.crt"),
				"--kubelet-preferred-address-types=InternalIP",
				"--service-account-issuer=https://kubernetes.default.svc." + n.Domain,
				"--service-account-key-file=" + pki("sa.pub"), "--service-account-signing-key-file=" + pki("sa.key"),
				"--service-cluster-ip-range=" + n.ServiceCIDR,
				"--authorization-mode=Node,RBAC", "--enable-admission-plugins=NodeRestriction",
				"--allow-privileged=false", "--profiling=false",
				"--cert-dir=" + n.path("etc", "apiserver-certs"),
			},
			Health: n.apiHealth(),
			Wait:   2 * time.Minute,
		},
		{
			Name: "kube-controller-manager",
			Args: []string{bin("kube-controller-manager"),
				"--kubeconfig=" + etc("controller-manager.kubeconfig"),
				"--authentication-kubeconfig=" + etc("controller-manager.kubeconfig"),
				"--authorization-kubeconfig=" + etc("controller-manager.kubeconfig"),
				"--bind-address=" + local, "--secure-port=10257", "--cert-dir=" + n.path("etc", "controller-manager-certs"),
				"--cluster-signing-cert-file=" + pki("ca.crt"), "--cluster-signing-key-file=" + pki("ca.key"),
				"--root-ca-file=" + pki("ca.crt"), "--service-account-private-key-file=" + pki("sa.key"),
				"--use-service-account-credentials=true", "--service-cluster-ip-range=" + n.ServiceCIDR,
				"--allocate-node-cidrs=false", "--leader-elect=false", "--profiling=false",
			},
			Health: httpHealth(insecureLoopback(), "https://127.0.0.1:10257/healthz"),
		},
		{
			Name: "kube-scheduler",
			Args: []string{bin("kube-scheduler"),
				"--kubeconfig=" + etc("scheduler.kubeconfig"),
				"--authentication-kubeconfig=" + etc("scheduler.kubeconfig"),
				"--authorization-kubeconfig=" + etc("scheduler.kubeconfig"),
				"--bind-address=" + local, "--secure-port=10259", "--cert-dir=" + n.path("etc", "scheduler-certs"),
				"--leader-elect=false", "--profiling=false",
			},
			Health: httpHealth(insecureLoopback(), "https://127.0.0.1:10259/healthz"),
		},
		{
			Name:   "containerd",
			Args:   []string{tool("containerd", containerdPath), "--config", n.path("containerd", "config.toml")},
			Files:  []string{n.path("containerd", "config.toml")},
			Env:    []string{"PATH=" + tool("containerd", "usr/bin") + ":" + tool("runc", "usr/sbin") + ":/usr/sbin:/usr/bin:/sbin:/bin"},
			Health: socketHealth(n.containerdSocket()),
		},
		{
			Name: "kubelet",
			Args: []string{bin("kubelet"),
				"--config=" + etc("kubelet.yaml"), "--kubeconfig=" + etc("kubelet.kubeconfig"),
				"--root-dir=" + n.path("kubelet", "root"), "--cert-dir=" + n.path("kubelet", "pki"),
				"--node-ip=" + n.Addr, "--hostname-override=" + n.Name,
			},
			Files:  []string{etc("kubelet.yaml")},
			Health: httpHealth(nil, "http://127.0.0.1:10248/healthz"),
			Wait:   2 * time.Minute,
		},
		{
			Name:   "kube-proxy",
			Args:   []string{bin("kube-proxy"), "--config=" + etc("kube-proxy.yaml")},
			Files:  []string{etc("kube-proxy.yaml")},
			Health: httpHealth(nil, "http://127.0.0.1:10256/livez"),
		},
	}
}

func httpHealth(c *http.Client, url string) func(context.Context) error {
	if c == nil {
		c = http.DefaultClient
	}
	return func(ctx context.Context) error {
		req, err := http.NewRequestWithContext(ctx, http.MethodGet, url, nil)
		if err != nil {
			return err
		}
		resp, err := c.Do(req)
		if err != nil {
			return err
		}
		defer resp.Body.Close()
		body, _ := io.ReadAll(io.LimitReader(resp.Body, 512))
		if resp.StatusCode != http.StatusOK {
			return fmt.Errorf("%s: %s %s", url, resp.Status, strings.TrimSpace(string(body)))
		}
		return nil
	}
}

// insecureLoopback is a client for the loopback health endpoints of the
// controller-manager and scheduler, which serve a self-signed certificate.
func insecureLoopback() *http.Client {
	return &http.Client{Transport: &http.Transport{TLSClientConfig: &tls.Config{InsecureSkipVerify: true}}}
}

// apiHealth asks the API server's /readyz as the admin.
func (n *Node) apiHealth() func(context.Context) error {
	return func(ctx context.Context) error {
		c, err := n.adminClient()
		if err != nil {
			return err
		}
		return httpHealth(c, n.APIServer()+"/readyz")(ctx)
	}
}

func (n *Node) adminClient() (*http.Client, error) {
	pair, err := tls.LoadX509KeyPair(n.pki("admin.crt"), n.pki("admin.key"))
	if err != nil {
		return nil, err
	}
	ca, err := os.ReadFile(n.pki("ca.crt"))
	if err != nil {
		return nil, err
	}
	pool := x509.NewCertPool()
	pool.AppendCertsFromPEM(ca)
	return &http.Client{Transport: &http.Transport{TLSClientConfig: &tls.Config{
		Certificates: []tls.Certificate{pair}, RootCAs: pool,
	}}}, nil
}

func socketHealth(path string) func(context.Context) error {
	return func(ctx context.Context) error {
		var d net.Dialer
		c, err := d.DialContext(ctx, "unix", path)
		if err != nil {
			return err
		}
		return c.Close()
	}
}
