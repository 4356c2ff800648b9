package doctor

import (
	"context"
	"errors"
	"fmt"
	"go/version"
	"sort"
	"strconv"
	"strings"
	"sync"
	"time"

	"github.com/hashbang/stack/internal/node"
	"github.com/hashbang/stack/internal/ui"
)

// Probes are how the checks look at the machine: Real returns the real
// ones; tests set their own.
type Probes struct {
	// Env is the environment stack up would bring up.
	Env string
	// Host checks what the node needs of the host (node.HostChecks).
	Host func() []node.HostCheck
	// Ports checks each port stack up needs: the node's and the
	// environment's (node.PortChecks). On an error (Env does not render)
	// the checks are of the node's own ports only.
	Ports func(ctx context.Context) (PortsFound, error)
	// Cache is the cache directory, FreeSpace the bytes free for an
	// unprivileged user on the file system holding a path (or its nearest
	// existing parent).
	Cache     string
	FreeSpace func(path string) (free uint64, at string, err error)
	// Packages lists the Debian packages scripts/deps installs
	// (scripts/packages); Installed the versions of those of pkgs that are
	// installed (dpkg-query -W).
	Packages  func() ([]string, error)
	Installed func(ctx context.Context, pkgs []string) (map[string]string, error)
	// LookPath finds a program on PATH.
	LookPath func(string) (string, error)
	// GoMod is the go directive of the repository's go.mod (1.26.0):
	// the least Go the toolchain on PATH must be.
	GoMod func() (string, error)
	// GoVersion is what `go version` prints.
	GoVersion func(ctx context.Context) (string, error)
	// GoProxy is GOPROXY as the go command sees it (go env GOPROXY).
	GoProxy func(ctx context.Context) string
	// AptSources are the URIs of the enabled apt sources.
	AptSources func() ([]string, error)
	// NpmRegistry is the registry npm uses (npm config get registry).
	NpmRegistry func(ctx context.Context) (string, error)
	// Reach asks url for an answer within ProbeTimeout: how long the
	// answer took and its HTTP status, or an error saying what failed
	// without naming where (see describe).
	Reach func(ctx context.Context, url string) (time.Duration, int, error)
}

// PortsFound is what the Ports probe found.
type PortsFound struct {
	// Running is true when the node of the environment runs: its ports
	// are its own, and stack up checks none.
	Running bool
	// Registry is the address of a registry that answers already, which
	// stack up uses, so its port need not be free; empty when none does.
	Registry string
	Checks   []node.PortCheck
}

func checkHost(_ context.Context, p *Probes) []Check {
	var out []Check
	for _, h := range p.Host() {
		c := Check{Status: OK, What: h.Name, Detail: h.Detail}
		switch {
		case errors.Is(h.Err, node.ErrNotRoot):
			c.Status, c.Detail = Warn, "not root, "+h.Detail
			c.Fix = "stack up needs root (it runs containerd and the kubelet, and changes iptables): run it with sudo; stack doctor itself does not need it"
		case h.Err != nil:
			c.Status, c.Fix = Fail, h.Err.Error()
		}
		out = append(out, c)
	}
	return out
}

func checkPorts(ctx context.Context, p *Probes) []Check {
	found, err := p.Ports(ctx)
	if found.Running {
		return []Check{{Status: OK, What: "ports", Detail: fmt.Sprintf("the node of %s runs: stack up keeps its ports", p.Env)}}
	}
	var out []Check
	if err != nil {
		out = append(out, Check{Status: Fail, What: "environment " + p.Env,
			Detail: "does not render, so its ports are not known", Fix: err.Error()})
	}
	var free, own []int
	for _, c := range found.Checks {
		switch {
		case c.Err != nil:
			out = append(out, Check{Status: Fail, What: fmt.Sprintf("port %d", c.Port),
				Detail: fmt.Sprintf("needed by %s, taken by %s", c.For, c.Holder), Fix: c.Err.Error()})
		case c.Own:
			own = append(own, c.Port)
		default:
			free = append(free, c.Port)
		}
	}
	if len(free)+len(own) > 0 {
		var parts []string
		if len(free) > 0 {
			parts = append(parts, "free: "+portList(free))
		}
		if len(own) > 0 {
			parts = append(parts, "the node's own: "+portList(own))
		}
		if found.Registry != "" {
			parts = append(parts, "a registry answers at "+found.Registry+", which stack up uses")
		}
		out = append([]Check{{Status: OK, What: "ports", Detail: strings.Join(parts, "; ")}}, out...)
	}
	return out
}

// portList writes sorted ports compactly: runs of three or more
// consecutive ports as a range (2379-2381).
func portList(ports []int) string {
	sort.Ints(ports)
	var parts []string
	for i := 0; i < len(ports); {
		j := i
		for j+1 < len(ports) && ports[j+1] == ports[j]+1 {
			j++
		}
		switch {
		case j-i >= 2:
			parts = append(parts, fmt.Sprintf("%d-%d", ports[i], ports[j]))
		default:
			for k := i; k <= j; k++ {
				parts = append(parts, strconv.Itoa(ports[k]))
			}
		}
		i = j + 1
	}
	return strings.Join(parts, " ")
}

func checkDisk(_ context.Context, p *Probes) []Check {
	c := Check{Status: OK, What: "disk space (cache)"}
	free, _, err := p.FreeSpace(p.Cache)
	if err != nil {
		c.Status, c.Detail = Fail, "cannot tell"
		c.Fix = fmt.Sprintf("statfs %s: %v: give a cache directory that exists or can be made (--cache, $STACK_CACHE)", p.Cache, err)
		return []Check{c}
	}
	c.Detail = fmt.Sprintf("%s free for %s", ui.Size(int64(free)), p.Cache)
	switch {
	case free < FailFree:
		c.Status = Fail
		c.Fix = fmt.Sprintf("stack up needs at least %s there, and about %s with the tests' caches: free space or move the cache (--cache, $STACK_CACHE)", ui.Size(FailFree), ui.Size(WarnFree))
	case free < WarnFree:
		c.Status = Warn
		c.Fix = fmt.Sprintf("a first stack up and the tests' caches take up to about %s: free space or move the cache (--cache, $STACK_CACHE)", ui.Size(WarnFree))
	}
	return []Check{c}
}

func checkPackages(ctx context.Context, p *Probes) []Check {
	c := Check{Status: OK, What: "Debian packages"}
	pkgs, err := p.Packages()
	if err != nil {
		c.Status, c.Detail, c.Fix = Fail, "cannot tell which", err.Error()
		return []Check{c}
	}
	if _, err := p.LookPath("dpkg-query"); err != nil {
		c.Status, c.Detail = Fail, "no dpkg-query"
		c.Fix = "stack up and scripts/deps need a Debian system (12, bookworm) with dpkg and apt"
		return []Check{c}
	}
	installed, err := p.Installed(ctx, pkgs)
	if err != nil {
		c.Status, c.Detail, c.Fix = Fail, "dpkg-query failed", err.Error()
		return []Check{c}
	}
	var missing []string
	for _, pkg := range pkgs {
		if _, ok := installed[pkg]; !ok {
			missing = append(missing, pkg)
		}
	}
	// scripts/deps takes any npm on PATH, Debian's only when there is none.
	npm := "npm"
	if path, err := p.LookPath("npm"); err != nil {
		missing = append(missing, "npm")
	} else {
		npm = "npm at " + path
	}
	if len(missing) > 0 {
		c.Status = Fail
		c.Detail = "missing: " + strings.Join(missing, " ")
		c.Fix = "make deps installs them (or: sudo apt-get install --no-install-recommends " + strings.Join(missing, " ") + ")"
		return []Check{c}
	}
	c.Detail = fmt.Sprintf("the %d of scripts/packages installed, and %s", len(pkgs), npm)
	return []Check{c}
}

func checkGo(ctx context.Context, p *Probes) []Check {
	c := Check{Status: OK, What: "Go toolchain"}
	want, err := p.GoMod()
	if err != nil {
		c.Status, c.Detail, c.Fix = Fail, "cannot tell which Go the repository wants", err.Error()
		return []Check{c}
	}
	path, err := p.LookPath("go")
	if err != nil {
		c.Status, c.Detail = Fail, "no go on PATH"
		c.Fix = fmt.Sprintf("install Go %s or newer and put its bin directory on PATH", want)
		return []Check{c}
	}
	out, err := p.GoVersion(ctx)
	if err != nil {
		c.Status, c.Detail, c.Fix = Fail, "go version failed", fmt.Sprintf("%s version: %v: reinstall Go %s or newer", path, err, want)
		return []Check{c}
	}
	have, err := ParseGoVersion(out)
	if err != nil {
		c.Status, c.Detail, c.Fix = Fail, "unknown version", err.Error()
		return []Check{c}
	}
	c.Detail = fmt.Sprintf("%s at %s; go.mod wants %s", have, path, want)
	if version.Compare(have, "go"+want) < 0 {
		c.Status = Fail
		c.Fix = fmt.Sprintf("go.mod says go %s: install Go %s or newer and put it first on PATH", want, want)
	}
	return []Check{c}
}

func checkGoProxy(ctx context.Context, p *Probes) []Check {
	c := Check{Status: OK, What: "Go module proxy"}
	setting := p.GoProxy(ctx)
	first, err := FirstProxy(setting)
	if err != nil {
		c.Status, c.Detail = Warn, "not checked"
		c.Fix = err.Error()
		return []Check{c}
	}
	if path, ok := strings.CutPrefix(first, "file://"); ok {
		if _, _, err := p.FreeSpace(path); err != nil {
			c.Status, c.Detail, c.Fix = Warn, "a local directory that cannot be read", fmt.Sprintf("GOPROXY's first entry is a directory: %v", err)
			return []Check{c}
		}
		c.Detail = "a local directory"
		return []Check{c}
	}
	return []Check{reach(ctx, p, c, first, "stack sources fetch and stack build download modules through it: check the network and go env GOPROXY")}
}

func checkApt(ctx context.Context, p *Probes) []Check {
	c := Check{Status: OK, What: "Debian apt sources"}
	uris, err := p.AptSources()
	if err == nil && len(uris) == 0 {
		err = errors.New("no enabled deb source with an http(s) URI in /etc/apt/sources.list or /etc/apt/sources.list.d/")
	}
	if err != nil {
		c.Status, c.Detail = Warn, "not checked"
		c.Fix = err.Error() + ": stack sources fetch downloads the pinned .debs with apt-get"
		return []Check{c}
	}
	type result struct {
		took   time.Duration
		status int
		err    error
	}
	results := make([]result, len(uris))
	var wg sync.WaitGroup
	for i, u := range uris {
		wg.Add(1)
		go func() {
			defer wg.Done()
			r := &results[i]
			r.took, r.status, r.err = p.Reach(ctx, u)
		}()
	}
	wg.Wait()
	var bad []string
	var slowest time.Duration
	for i, r := range results {
		switch {
		case r.err != nil:
			bad = append(bad, fmt.Sprintf("source %d: %v", i+1, r.err))
		case r.status >= 500:
			bad = append(bad, fmt.Sprintf("source %d answers HTTP %d", i+1, r.status))
		default:
			slowest = max(slowest, r.took)
		}
	}
	if len(bad) > 0 {
		c.Status = Warn
		c.Detail = fmt.Sprintf("%d of %d unreachable: %s", len(bad), len(uris), strings.Join(bad, "; "))
		c.Fix = "stack sources fetch downloads the pinned .debs through them: check the network and /etc/apt/sources.list(.d)"
		return []Check{c}
	}
	if len(uris) == 1 {
		c.Detail = fmt.Sprintf("reachable in %d ms", slowest.Milliseconds())
	} else {
		c.Detail = fmt.Sprintf("all %d reachable, the slowest in %d ms", len(uris), slowest.Milliseconds())
	}
	return []Check{c}
}

func checkNpm(ctx context.Context, p *Probes) []Check {
	c := Check{Status: OK, What: "npm registry"}
	u, err := p.NpmRegistry(ctx)
	if err != nil {
		c.Status, c.Detail, c.Fix = Warn, "not checked", err.Error()
		return []Check{c}
	}
	return []Check{reach(ctx, p, c, u, "stack sources fetch gets Node.js and pnpm through it (gitea's web assets): check the network and npm config get registry")}
}

// reach probes u and fills c: ok with the time the answer took; a warning
// when none came or it was a server error. Neither says where u is.
func reach(ctx context.Context, p *Probes, c Check, u, fix string) Check {
	took, status, err := p.Reach(ctx, u)
	switch {
	case err != nil:
		c.Status, c.Detail = Warn, "unreachable: "+err.Error()
	case status >= 500:
		c.Status, c.Detail = Warn, fmt.Sprintf("answers HTTP %d", status)
	default:
		c.Detail = fmt.Sprintf("reachable in %d ms", took.Milliseconds())
		return c
	}
	c.Fix = fix
	return c
}
