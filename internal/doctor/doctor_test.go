package doctor

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/hashbang/stack/internal/node"
)

// healthy is a machine with everything stack up needs: each test case
// breaks one thing.
func healthy() *Probes {
	return &Probes{
		Env: "development",
		Host: func() []node.HostCheck {
			return []node.HostCheck{
				{Name: "Linux", Detail: "6.1.0"},
				{Name: "root", Detail: "uid 0"},
				{Name: "overlay filesystem", Detail: "in /proc/filesystems"},
				{Name: "cgroups", Detail: "v2, unified"},
			}
		},
		Ports: func(context.Context) (PortsFound, error) {
			return PortsFound{Checks: []node.PortCheck{{Port: 2321, For: "health"}, {Port: 2379, For: "etcd"}, {Port: 2380, For: "etcd (peer)"}, {Port: 2381, For: "etcd (metrics)"}, {Port: 6443, For: "kube-apiserver"}}}, nil
		},
		Cache:     "/cache",
		FreeSpace: func(p string) (uint64, string, error) { return 70 << 30, p, nil },
		Packages:  func() ([]string, error) { return []string{"git", "runc"}, nil },
		Installed: func(_ context.Context, pkgs []string) (map[string]string, error) {
			return map[string]string{"git": "1:2.39.5", "runc": "1.1.5"}, nil
		},
		LookPath:  func(name string) (string, error) { return "/usr/bin/" + name, nil },
		GoMod:     func() (string, error) { return "1.26.0", nil },
		GoVersion: func(context.Context) (string, error) { return "go version go1.26.8 linux/amd64\n", nil },
		GoProxy:   func(context.Context) string { return "https://proxy.invalid,direct" },
		AptSources: func() ([]string, error) {
			return []string{"http://apt.invalid/debian", "http://apt.invalid/debian-security"}, nil
		},
		NpmRegistry: func(context.Context) (string, error) { return "https://npm.invalid/", nil },
		Reach: func(_ context.Context, u string) (time.Duration, int, error) {
			return 230 * time.Millisecond, 200, nil
		},
	}
}

func TestRun(t *testing.T) {
	notRoot := fmt.Errorf("needs root: %w", node.ErrNotRoot)
	tests := []struct {
		name   string
		breaks func(p *Probes)
		what   string // the check that changes
		want   Status
		// detail and fix must contain these (empty: anything)
		detail, fix string
	}{
		{"healthy", func(*Probes) {}, "ports", OK, "free: 2321 2379-2381 6443", ""},
		{"not root is a warning", func(p *Probes) {
			p.Host = func() []node.HostCheck { return []node.HostCheck{{Name: "root", Detail: "uid 1000", Err: notRoot}} }
		}, "root", Warn, "not root, uid 1000", "run it with sudo"},
		{"a kernel feature missing fails", func(p *Probes) {
			p.Host = func() []node.HostCheck {
				return []node.HostCheck{{Name: "br_netfilter", Detail: "/proc/sys/net/bridge/bridge-nf-call-iptables is missing", Err: errors.New("the kernel lacks br_netfilter (modprobe br_netfilter)")}}
			}
		}, "br_netfilter", Fail, "is missing", "modprobe br_netfilter"},
		{"a port taken", func(p *Probes) {
			p.Ports = func(context.Context) (PortsFound, error) {
				return PortsFound{Checks: []node.PortCheck{{Port: 2379, For: "etcd"}, {Port: 6443, For: "kube-apiserver", Holder: "nginx (pid 7)", Err: errors.New("port 6443 ... stop it")}}}, nil
			}
		}, "port 6443", Fail, "needed by kube-apiserver, taken by nginx (pid 7)", "stop it"},
		{"ports of the node's own components", func(p *Probes) {
			p.Ports = func(context.Context) (PortsFound, error) {
				return PortsFound{Checks: []node.PortCheck{{Port: 2379, For: "etcd", Own: true, Holder: "etcd (pid 3)"}, {Port: 2321, For: "health"}}}, nil
			}
		}, "ports", OK, "free: 2321; the node's own: 2379", ""},
		{"a registry answers", func(p *Probes) {
			p.Ports = func(context.Context) (PortsFound, error) {
				return PortsFound{Registry: "127.0.0.1:5000", Checks: []node.PortCheck{{Port: 2379, For: "etcd"}}}, nil
			}
		}, "ports", OK, "free: 2379; a registry answers at 127.0.0.1:5000, which stack up uses", ""},
		{"the node runs", func(p *Probes) {
			p.Ports = func(context.Context) (PortsFound, error) { return PortsFound{Running: true}, nil }
		}, "ports", OK, "the node of development runs", ""},
		{"the environment does not render", func(p *Probes) {
			p.Ports = func(context.Context) (PortsFound, error) {
				return PortsFound{Checks: []node.PortCheck{{Port: 2379, For: "etcd"}}}, errors.New("infra/development/kustomization.yaml: bad")
			}
		}, "environment development", Fail, "does not render", "kustomization.yaml: bad"},
		{"disk under 20 GiB", func(p *Probes) {
			p.FreeSpace = func(string) (uint64, string, error) { return 12 << 30, "/", nil }
		}, "disk space (cache)", Warn, "12.0 GiB free for /cache", "about 20.0 GiB"},
		{"disk under 5 GiB", func(p *Probes) {
			p.FreeSpace = func(string) (uint64, string, error) { return 3 << 30, "/", nil }
		}, "disk space (cache)", Fail, "3.0 GiB free", "at least 5.0 GiB"},
		{"disk space unknown", func(p *Probes) {
			p.FreeSpace = func(string) (uint64, string, error) { return 0, "/cache", errors.New("permission denied") }
		}, "disk space (cache)", Fail, "cannot tell", "permission denied"},
		{"packages installed", func(*Probes) {}, "Debian packages", OK, "the 2 of scripts/packages installed, and npm at /usr/bin/npm", ""},
		{"a package missing", func(p *Probes) {
			p.Installed = func(context.Context, []string) (map[string]string, error) { return map[string]string{"git": "1"}, nil }
		}, "Debian packages", Fail, "missing: runc", "make deps"},
		{"npm missing", func(p *Probes) {
			p.LookPath = func(name string) (string, error) {
				if name == "npm" {
					return "", errors.New("not found")
				}
				return "/usr/bin/" + name, nil
			}
		}, "Debian packages", Fail, "missing: npm", "apt-get install --no-install-recommends npm"},
		{"not Debian", func(p *Probes) {
			p.LookPath = func(name string) (string, error) {
				if name == "dpkg-query" {
					return "", errors.New("not found")
				}
				return "/usr/bin/" + name, nil
			}
		}, "Debian packages", Fail, "no dpkg-query", "Debian system"},
		{"a bad packages file", func(p *Probes) {
			p.Packages = func() ([]string, error) { return ParsePackages(PackagesFile, []byte("git\nGit Lfs\n")) }
		}, "Debian packages", Fail, "cannot tell", "scripts/packages:2:"},
		{"go new enough", func(*Probes) {}, "Go toolchain", OK, "go1.26.8 at /usr/bin/go; go.mod wants 1.26.0", ""},
		{"go too old", func(p *Probes) {
			p.GoVersion = func(context.Context) (string, error) { return "go version go1.25.4 linux/amd64", nil }
		}, "Go toolchain", Fail, "go1.25.4", "install Go 1.26.0 or newer"},
		{"go devel", func(p *Probes) {
			p.GoVersion = func(context.Context) (string, error) {
				return "go version devel go1.27-1b2c3d4 Tue Jan 6 2026 linux/amd64", nil
			}
		}, "Go toolchain", OK, "go1.27 at", ""},
		{"no go", func(p *Probes) {
			p.LookPath = func(name string) (string, error) {
				if name == "go" {
					return "", errors.New("not found")
				}
				return "/usr/bin/" + name, nil
			}
		}, "Go toolchain", Fail, "no go on PATH", "install Go 1.26.0"},
		{"proxy reachable", func(*Probes) {}, "Go module proxy", OK, "reachable in 230 ms", ""},
		{"proxy unreachable", func(p *Probes) {
			p.Reach = func(_ context.Context, u string) (time.Duration, int, error) {
				if strings.Contains(u, "proxy") {
					return 0, 0, errors.New("no answer within 3s")
				}
				return time.Millisecond, 200, nil
			}
		}, "Go module proxy", Warn, "unreachable: no answer within 3s", "go env GOPROXY"},
		{"proxy server error", func(p *Probes) {
			p.Reach = func(_ context.Context, u string) (time.Duration, int, error) {
				if strings.Contains(u, "proxy") {
					return time.Millisecond, 502, nil
				}
				return time.Millisecond, 200, nil
			}
		}, "Go module proxy", Warn, "answers HTTP 502", ""},
		{"GOPROXY off", func(p *Probes) {
			p.GoProxy = func(context.Context) string { return "off" }
		}, "Go module proxy", Warn, "not checked", "GOPROXY is off"},
		{"GOPROXY a directory", func(p *Probes) {
			p.GoProxy = func(context.Context) string { return "file:///srv/goproxy" }
		}, "Go module proxy", OK, "a local directory", ""},
		{"apt sources reachable", func(p *Probes) {
			p.Reach = func(_ context.Context, u string) (time.Duration, int, error) {
				if strings.HasSuffix(u, "security") {
					return 410 * time.Millisecond, 404, nil
				}
				return 120 * time.Millisecond, 200, nil
			}
		}, "Debian apt sources", OK, "all 2 reachable, the slowest in 410 ms", ""},
		{"an apt source unreachable", func(p *Probes) {
			p.Reach = func(_ context.Context, u string) (time.Duration, int, error) {
				if strings.HasSuffix(u, "security") {
					return 0, 0, errors.New("connection refused")
				}
				return time.Millisecond, 200, nil
			}
		}, "Debian apt sources", Warn, "1 of 2 unreachable: source 2: connection refused", "sources.list"},
		{"no apt sources", func(p *Probes) {
			p.AptSources = func() ([]string, error) { return nil, nil }
		}, "Debian apt sources", Warn, "not checked", "no enabled deb source"},
		{"npm registry", func(*Probes) {}, "npm registry", OK, "reachable in 230 ms", ""},
		{"npm not installed", func(p *Probes) {
			p.NpmRegistry = func(context.Context) (string, error) { return "", errors.New("npm is not installed") }
		}, "npm registry", Warn, "not checked", "npm is not installed"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			p := healthy()
			tt.breaks(p)
			r := Run(context.Background(), p)
			var got *Check
			for i, c := range r.Checks {
				if c.What == tt.what {
					got = &r.Checks[i]
				} else if c.Status != OK {
					t.Errorf("%s: %s (%s) though only %s was broken", c.What, c.Status, c.Detail, tt.what)
				}
			}
			if got == nil {
				t.Fatalf("no check %q in %+v", tt.what, r.Checks)
			}
			if got.Status != tt.want || !strings.Contains(got.Detail, tt.detail) || !strings.Contains(got.Fix, tt.fix) {
				t.Errorf("%s: got %s (%s) fix %q; want %s, detail with %q, fix with %q", tt.what, got.Status, got.Detail, got.Fix, tt.want, tt.detail, tt.fix)
			}
			if got.Status != OK && got.Fix == "" {
				t.Errorf("%s is %s with no fix", got.What, got.Status)
			}
			if r.OK != (tt.want != Fail) {
				t.Errorf("report OK = %v with %s", r.OK, tt.want)
			}
			var out bytes.Buffer
			if err := r.WriteText(&out); err != nil {
				t.Fatal(err)
			}
			if strings.Contains(out.String(), ".invalid") {
				t.Errorf("the text names a registry's host:\n%s", out.String())
			}
		})
	}
}

func TestWriteText(t *testing.T) {
	r := &Report{Failed: 1, Warnings: 1, Checks: []Check{
		{Status: OK, What: "Linux", Detail: "6.1.0"},
		{Status: Warn, What: "root", Detail: "uid 1000", Fix: "run it with sudo"},
		{Status: Fail, What: "port 6443", Detail: "taken", Fix: "stop it"},
		{Status: OK, What: "ports"},
	}}
	var b bytes.Buffer
	if err := r.WriteText(&b); err != nil {
		t.Fatal(err)
	}
	want := `ok    Linux      (6.1.0)
warn  root       (uid 1000)
      → run it with sudo
fail  port 6443  (taken)
      → stop it
ok    ports
1 check failed, 1 warning: fix the failures above, then run stack doctor again
`
	if b.String() != want {
		t.Errorf("got\n%s\nwant\n%s", b.String(), want)
	}
}

func TestPortList(t *testing.T) {
	for _, tt := range []struct {
		in   []int
		want string
	}{
		{[]int{6443}, "6443"},
		{[]int{2380, 2379}, "2379 2380"},
		{[]int{10259, 2381, 2379, 2380, 5000, 10248, 10249, 10250, 10256, 10257}, "2379-2381 5000 10248-10250 10256 10257 10259"},
	} {
		if got := portList(tt.in); got != tt.want {
			t.Errorf("portList(%v) = %q, want %q", tt.in, got, tt.want)
		}
	}
}

func TestAptSources(t *testing.T) {
	dir := t.TempDir()
	must := func(name, data string) {
		t.Helper()
		if err := os.MkdirAll(filepath.Dir(filepath.Join(dir, name)), 0o755); err != nil {
			t.Fatal(err)
		}
		if err := os.WriteFile(filepath.Join(dir, name), []byte(data), 0o644); err != nil {
			t.Fatal(err)
		}
	}
	if _, err := aptSources(dir); err == nil {
		t.Error("no sources file at all: no error")
	}
	must("sources.list", "# comment\ndeb http://a.invalid/debian bookworm main\ndeb-src http://src.invalid/debian bookworm main\n")
	must("sources.list.d/x.list", "deb [arch=amd64 signed-by=/k.gpg] https://b.invalid/repo stable main\ndeb [ trusted=yes ] http://a.invalid/debian/ bookworm main\n")
	must("sources.list.d/d.sources", "Types: deb deb-src\nURIs: http://c.invalid/debian\n  http://d.invalid/debian\nSuites: bookworm\n\nTypes: deb\nEnabled: no\nURIs: http://off.invalid/\n")
	must("sources.list.d/old.sources.disabled", "Types: deb\nURIs: http://disabled.invalid/\n")
	got, err := aptSources(dir)
	if err != nil {
		t.Fatal(err)
	}
	want := "http://a.invalid/debian https://b.invalid/repo http://c.invalid/debian http://d.invalid/debian"
	if strings.Join(got, " ") != want {
		t.Errorf("got %q, want %q", got, want)
	}
}

func TestParsers(t *testing.T) {
	pkgs, err := ParsePackages("f", []byte("# c\ngit  # the git server\n\ngit-lfs\ngit\nlibc6-dev g++\n"))
	if err != nil || strings.Join(pkgs, " ") != "git git-lfs libc6-dev g++" {
		t.Errorf("ParsePackages = %q, %v", pkgs, err)
	}
	for _, bad := range []string{"", "# only\n", "Git\n", "-x\n", "a/b\n"} {
		if _, err := ParsePackages("f", []byte(bad)); err == nil || !strings.HasPrefix(err.Error(), "f") {
			t.Errorf("ParsePackages(%q): %v", bad, err)
		}
	}
	got := ParseDpkgQuery("git\tinstalled\t1:2.39.5\nrunc\tconfig-files\t1.1\nskopeo\tinstalled\t1.9\n\nbad line\n")
	if len(got) != 2 || got["git"] != "1:2.39.5" || got["skopeo"] != "1.9" {
		t.Errorf("ParseDpkgQuery = %v", got)
	}
	for out, want := range map[string]string{
		"go version go1.26.8 linux/amd64":                      "go1.26.8",
		"go version go1.26rc1 linux/amd64":                     "go1.26rc1",
		"go version go1.26 linux/arm64\n":                      "go1.26",
		"go version devel go1.27-abcdef Tue Jan 1 linux/amd64": "go1.27",
		"go: command not found":                                "",
		"":                                                     "",
	} {
		v, err := ParseGoVersion(out)
		if v != want || (err == nil) != (want != "") {
			t.Errorf("ParseGoVersion(%q) = %q, %v; want %q", out, v, err, want)
		}
	}
	for setting, want := range map[string]string{
		"https://p.invalid,direct":    "https://p.invalid",
		"https://p.invalid|https://q": "https://p.invalid",
		"file:///srv/mods":            "file:///srv/mods",
		"off":                         "",
		"direct":                      "",
		"":                            "",
		",":                           "",
		"p.invalid":                   "",
	} {
		if got, err := FirstProxy(setting); got != want || (err == nil) != (want != "") {
			t.Errorf("FirstProxy(%q) = %q, %v; want %q", setting, got, err, want)
		}
	}
}

func TestDescribe(t *testing.T) {
	ctx, cancel := context.WithTimeout(context.Background(), time.Nanosecond)
	defer cancel()
	<-ctx.Done()
	// A closed port on loopback refuses; a cancelled request times out.
	for _, tt := range []struct {
		url, want string
		ctx       context.Context
	}{
		{"http://127.0.0.1:1/", "connection refused", context.Background()},
		{"http://127.0.0.1:1/", "no answer within 3s", ctx},
	} {
		_, _, err := reachURL(tt.ctx, tt.url)
		if err == nil || err.Error() != tt.want {
			t.Errorf("%s: %v, want %q", tt.url, err, tt.want)
		}
		if err != nil && strings.Contains(err.Error(), "127.0.0.1") {
			t.Errorf("the error names the host: %v", err)
		}
	}
}
