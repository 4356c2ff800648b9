// Package devenv owns bringing a development environment (an environment of
// the local backend) up and down as one operation: the locked sources
// fetched and the node's programs built, the registry (`stack serve`)
// started or reused, the images built and pushed to it, the local node
// started (internal/node), the cluster DNS applied and the environment's
// manifests deployed, then the services' URLs printed. Down reverses it.
package devenv

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"net"
	"net/http"
	"os"
	"path/filepath"
	"slices"
	"sort"
	"time"

	"k8s.io/apimachinery/pkg/apis/meta/v1/unstructured"

	"github.com/hashbang/stack/internal/build"
	"github.com/hashbang/stack/internal/cluster"
	"github.com/hashbang/stack/internal/deploy"
	"github.com/hashbang/stack/internal/image"
	"github.com/hashbang/stack/internal/node"
	"github.com/hashbang/stack/internal/registry"
	"github.com/hashbang/stack/internal/release"
	"github.com/hashbang/stack/internal/source"
	"github.com/hashbang/stack/internal/ui"
	"github.com/hashbang/stack/internal/workspace"
)

// DebSources are the Debian packages the node runs from.
var DebSources = []string{"runc", "containerd", "cni-plugins"}

// Env is a development environment on this machine.
type Env struct {
	WS   *workspace.Workspace
	Env  *cluster.Environment
	Node *node.Node
	// Exe is the stack executable, run as `stack serve` when no registry
	// answers.
	Exe string
	// RegistryAddr is where the registry listens (127.0.0.1:5000).
	RegistryAddr string
	Progress     *ui.Progress
}

// Open loads the environment name of the workspace; it must be of the local
// backend.
func Open(ws *workspace.Workspace, name string, p *ui.Progress) (*Env, error) {
	env, err := cluster.Load(ws, name)
	if err != nil {
		return nil, err
	}
	if env.Backend != cluster.Local {
		return nil, fmt.Errorf("environment %s runs on the %s backend: stack up brings up local environments only (use stack deploy %s)", name, env.Backend, name)
	}
	exe, err := os.Executable()
	if err != nil {
		return nil, err
	}
	n := node.New(env.NodeDir, env.Cluster)
	n.RegistryName = env.Registry
	n.RegistryAddr = registry.DefaultAddr
	n.SupervisorArgs = []string{exe, "supervise", env.NodeDir} // runs Supervise
	return &Env{WS: ws, Env: env, Node: n, Exe: exe, RegistryAddr: registry.DefaultAddr, Progress: p}, nil
}

// Result is what Up reports.
type Result struct {
	Env        string            `json:"env"`
	Kubeconfig string            `json:"kubeconfig"`
	APIServer  string            `json:"apiServer"`
	Services   map[string]string `json:"services"`
	// Notes are what the user must read once, such as the gitea admin's
	// generated password the first time.
	Notes []string `json:"notes,omitempty"`
}

// Up brings the environment up; when it already runs and nothing changed
// it only checks so.
func (e *Env) Up(ctx context.Context) (_ *Result, err error) {
	p := e.Progress
	// Render first: a broken overlay fails before anything starts.
	rendered, err := e.render(ctx)
	if err != nil {
		return nil, err
	}
	ports := hostPorts(rendered)
	if !e.Node.Running() {
		extra := map[int]string{}
		for port, svc := range ports {
			extra[port] = svc
		}
		if !registryUp(ctx, e.RegistryAddr) {
			extra[portOf(e.RegistryAddr)] = "the registry (stack serve)"
		}
		if err := e.Node.Preflight(extra); err != nil {
			return nil, err
		}
	}
	cfg, err := source.Load(e.WS.Sources())
	if err != nil {
		return nil, err
	}
	srcs, err := cfg.Select(DebSources)
	if err != nil {
		return nil, err
	}
	if _, err := source.NewFetcher(e.WS, p).Fetch(ctx, srcs); err != nil {
		return nil, err
	}
	e.Node.Tools = map[string]string{}
	for _, s := range srcs {
		dir, err := source.Extract(ctx, e.WS, s)
		if err != nil {
			return nil, err
		}
		e.Node.Tools[s.Name] = dir
	}
	bins := build.NewCache(e.WS, source.NewPreparer(e.WS, cfg, p), p)
	if e.Node.Bins, err = node.Build(ctx, bins, cfg); err != nil {
		return nil, err
	}
	startedServe, err := e.ensureRegistry(ctx)
	if err != nil {
		return nil, err
	}
	// Nothing half-started: if this run started stack serve and then
	// fails, it stops it again (the node's Up cleans up after itself).
	defer func() {
		if err != nil && startedServe {
			e.stopServe()
		}
	}()
	names := []string{"pause", "coredns"}
	for name := range rendered.Images {
		names = append(names, name)
	}
	refs, err := e.images(ctx, bins, names)
	if err != nil {
		return nil, err
	}
	// Building may have changed digests in images/images.lock: render again,
	// so the deploy pins the images just built and pushed.
	if rendered, err = e.render(ctx); err != nil {
		return nil, err
	}
	pause, ok := refs["pause"]
	if !ok {
		return nil, errors.New("images/pause is missing: the node's pod sandbox is our pause image")
	}
	dns, ok := refs["coredns"]
	if !ok {
		return nil, errors.New("images/coredns is missing: the cluster DNS is our CoreDNS image")
	}
	e.Node.PauseImage = pause
	if err := e.Node.Up(ctx, p); err != nil {
		return nil, err
	}
	if err := e.Node.ApplyDNS(ctx, p, dns); err != nil {
		return nil, err
	}
	if err := e.prepareVolumes(rendered); err != nil {
		return nil, err
	}
	gitea := deploysGitea(rendered)
	if gitea {
		if err := e.giteaSecretKey(ctx); err != nil {
			return nil, fmt.Errorf("gitea's secret key: %w", err)
		}
	}
	if err := e.deploy(ctx, rendered); err != nil {
		return nil, err
	}
	if err := e.waitPorts(ctx, ports); err != nil {
		return nil, err
	}
	res := &Result{
		Env:        e.Env.Name,
		Kubeconfig: e.Node.Kubeconfig(),
		APIServer:  e.Node.APIServer(),
		Services:   map[string]string{},
	}
	if gitea {
		step := p.Start("gitea admin %s", GiteaAdmin)
		pw, err := e.giteaAdmin(ctx)
		if err = step.Done(err); err != nil {
			return nil, err
		}
		if pw != "" {
			res.Notes = append(res.Notes, fmt.Sprintf("gitea admin: %s / %s (shown once; kubectl --kubeconfig %s -n %s get secret %s -o jsonpath='{.data.password}' | base64 -d)",
				GiteaAdmin, pw, e.Node.Kubeconfig(), giteaNamespace, giteaAdminSecret))
		}
	}
	for port, svc := range ports {
		res.Services[svc] = fmt.Sprintf("http://localhost:%d", port)
	}
	return res, nil
}

// images builds the named images of images/ and pushes them to the
// registry, returning each one's reference by digest under the
// environment's registry name.
func (e *Env) images(ctx context.Context, bins *build.Cache, names []string) (map[string]string, error) {
	sort.Strings(names)
	names = slices.Compact(names)
	built, err := image.NewBuilder(e.WS, bins, e.Progress).Build(ctx, names)
	if err != nil {
		return nil, err
	}
	refs := map[string]string{}
	for _, r := range built {
		step := e.Progress.Start("push %s", r.Name)
		pushed, err := registry.Push(ctx, r.Image, e.RegistryAddr, r.Name, registry.PushOptions{})
		if err = step.Done(err); err != nil {
			return nil, fmt.Errorf("push %s to %s: %w", r.Name, e.RegistryAddr, err)
		}
		refs[r.Name] = e.Env.Registry + "/" + r.Name + "@" + pushed.Digest
	}
	return refs, nil
}

// render renders infra/<env>/ over pods/.
func (e *Env) render(ctx context.Context) (*deploy.Rendered, error) {
	return release.Render(ctx, e.WS, e.Env, "")
}

// deploy deploys the rendered environment with the deploy engine
// (server-side apply, prune, wait for readiness) and records it in the
// cluster's state repo, served by stack serve.
func (e *Env) deploy(ctx context.Context, r *deploy.Rendered) error {
	step := e.Progress.Start("deploy %s", e.Env.Name)
	d, err := release.Open(ctx, e.WS, e.Env, release.Options{})
	if err != nil {
		return step.Done(err)
	}
	if _, err := d.Deploy(ctx, r, deploy.Options{Timeout: 3 * time.Minute}); err != nil {
		if errors.Is(err, deploy.ErrNotReady) {
			err = fmt.Errorf("%w (kubelet log: %s)", err, e.Node.LogPath("kubelet"))
		}
		return step.Done(err)
	}
	return step.Done(nil)
}

// waitPorts waits until every published host port answers HTTP: after a
// restart a Deployment's status can say ready before its new pod serves.
func (e *Env) waitPorts(ctx context.Context, ports map[int]string) error {
	for port, svc := range ports {
		step := e.Progress.Start("wait for %s on http://localhost:%d", svc, port)
		deadline := time.Now().Add(2 * time.Minute)
		for {
			rctx, cancel := context.WithTimeout(ctx, 2*time.Second)
			req, _ := http.NewRequestWithContext(rctx, http.MethodGet, fmt.Sprintf("http://127.0.0.1:%d/", port), nil)
			resp, err := http.DefaultClient.Do(req)
			cancel()
			if err == nil {
				resp.Body.Close()
				step.Done(nil)
				break
			}
			if time.Now().After(deadline) {
				return step.Done(fmt.Errorf("%s does not answer on http://localhost:%d: %v (kubectl --kubeconfig %s describe pods -A; kubelet log: %s)", svc, port, err, e.Node.Kubeconfig(), e.Node.LogPath("kubelet")))
			}
			select {
			case <-ctx.Done():
				return step.Done(ctx.Err())
			case <-time.After(500 * time.Millisecond):
			}
		}
	}
	return nil
}

// Down takes the environment down: the node, then the registry if Up
// started it.
func (e *Env) Down(ctx context.Context, purge bool) error {
	err := e.Node.Down(ctx, e.Progress, purge)
	if serr := e.stopServe(); serr != nil {
		err = errors.Join(err, serr)
	}
	return err
}

// serveState is where Up records the `stack serve` it started.
func (e *Env) serveState() string { return filepath.Join(e.Node.Dir, "serve.pid") }

func registryUp(ctx context.Context, addr string) bool {
	ctx, cancel := context.WithTimeout(ctx, 2*time.Second)
	defer cancel()
	req, _ := http.NewRequestWithContext(ctx, http.MethodGet, "http://"+addr+"/v2/", nil)
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		return false
	}
	resp.Body.Close()
	return resp.StatusCode == http.StatusOK || resp.StatusCode == http.StatusUnauthorized
}

func portOf(addr string) int {
	_, p, _ := net.SplitHostPort(addr)
	var n int
	fmt.Sscanf(p, "%d", &n)
	return n
}

// hostPorts are the ports the rendered workloads publish on the host
// (containers' hostPort), by port, with the name of their workload.
func hostPorts(r *deploy.Rendered) map[int]string {
	out := map[int]string{}
	for _, o := range r.Objects {
		containers, _, _ := unstructured.NestedSlice(o.Object, "spec", "template", "spec", "containers")
		for _, c := range containers {
			ports, _, _ := unstructured.NestedSlice(c.(map[string]any), "ports")
			for _, p := range ports {
				if hp, ok, _ := unstructured.NestedInt64(p.(map[string]any), "hostPort"); ok && hp > 0 {
					out[int(hp)] = o.GetName()
				}
			}
		}
	}
	return out
}

// Supervise runs the supervisor of the local node whose data directory is
// dir (what `stack supervise DIR`, started by Up, does) until ctx ends or
// the node is taken down.
func Supervise(ctx context.Context, dir string, log *slog.Logger) error {
	return node.SuperviseDir(ctx, dir, log)
}
