package doctor

import (
	"context"
	"crypto/tls"
	"crypto/x509"
	"errors"
	"fmt"
	"io"
	"net"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"syscall"
	"time"

	"golang.org/x/mod/modfile"

	"github.com/hashbang/stack/internal/devenv"
	"github.com/hashbang/stack/internal/node"
	"github.com/hashbang/stack/internal/source"
	"github.com/hashbang/stack/internal/workspace"
)

// Real returns the probes of this machine, for the environment env of ws.
func Real(ws *workspace.Workspace, env string) *Probes {
	return &Probes{
		Env:  env,
		Host: node.HostChecks,
		Ports: func(ctx context.Context) (PortsFound, error) {
			e, err := devenv.Open(ws, env, nil)
			if err != nil {
				return PortsFound{Checks: node.New(ws.NodeDir(env), env).PortChecks(nil)}, err
			}
			if e.Node.Running() {
				return PortsFound{Running: true}, nil
			}
			extra, err := e.NeededPorts(ctx)
			found := PortsFound{Checks: e.Node.PortChecks(extra)}
			if _, p, _ := net.SplitHostPort(e.RegistryAddr); err == nil && p != "" {
				if n, _ := strconv.Atoi(p); extra[n] == "" {
					found.Registry = e.RegistryAddr
				}
			}
			return found, err
		},
		Cache:     ws.Cache,
		FreeSpace: freeSpace,
		Packages: func() ([]string, error) {
			data, err := os.ReadFile(ws.Path(PackagesFile))
			if err != nil {
				return nil, fmt.Errorf("%v: the repository lists the Debian packages it needs there", err)
			}
			return ParsePackages(PackagesFile, data)
		},
		Installed: func(ctx context.Context, pkgs []string) (map[string]string, error) {
			args := append([]string{"-W", "-f=${Package}\t${db:Status-Status}\t${Version}\n"}, pkgs...)
			out, err := command(ctx, "dpkg-query", args...)
			var ee *exec.ExitError
			if errors.As(err, &ee) && ee.ExitCode() == 1 {
				err = nil // some are not known: they are missing
			}
			return ParseDpkgQuery(out), err
		},
		LookPath: exec.LookPath,
		GoMod: func() (string, error) {
			data, err := os.ReadFile(ws.Path("go.mod"))
			if err != nil {
				return "", err
			}
			f, err := modfile.ParseLax("go.mod", data, nil)
			if err != nil {
				return "", err
			}
			if f.Go == nil {
				return "", errors.New("go.mod has no go directive: add one (go mod edit -go=1.26.0)")
			}
			return f.Go.Version, nil
		},
		GoVersion: func(ctx context.Context) (string, error) { return command(ctx, "go", "version") },
		GoProxy:   func(context.Context) string { return source.GoEnv("GOPROXY") },
		AptSources: func() ([]string, error) {
			return aptSources("/etc/apt")
		},
		NpmRegistry: func(ctx context.Context) (string, error) {
			if _, err := exec.LookPath("npm"); err != nil {
				return "", errors.New("npm is not installed, so its registry is not checked: make deps installs it")
			}
			out, err := command(ctx, "npm", "config", "get", "registry")
			if err != nil {
				return "", fmt.Errorf("npm config get registry: %v", err)
			}
			return strings.TrimSpace(out), nil
		},
		Reach: reachURL,
	}
}

// command runs a program bounded by ProbeTimeout and returns its stdout.
func command(ctx context.Context, name string, args ...string) (string, error) {
	ctx, cancel := context.WithTimeout(ctx, ProbeTimeout)
	defer cancel()
	out, err := exec.CommandContext(ctx, name, args...).Output()
	if ctx.Err() != nil {
		err = fmt.Errorf("%s did not finish within %s", name, ProbeTimeout)
	}
	return string(out), err
}

// freeSpace is the space free for unprivileged users on the file system
// of path, or of its nearest existing parent when path is not made yet.
func freeSpace(path string) (uint64, string, error) {
	for {
		var st syscall.Statfs_t
		err := syscall.Statfs(path, &st)
		if err == nil {
			return st.Bavail * uint64(st.Bsize), path, nil
		}
		parent := filepath.Dir(path)
		if !errors.Is(err, syscall.ENOENT) || parent == path {
			return 0, path, err
		}
		path = parent
	}
}

// aptSources reads the enabled http(s) URIs of the apt sources under dir
// (sources.list, sources.list.d/*.list and *.sources), each once.
func aptSources(dir string) ([]string, error) {
	files := []string{filepath.Join(dir, "sources.list")}
	for _, pattern := range []string{"*.list", "*.sources"} {
		m, _ := filepath.Glob(filepath.Join(dir, "sources.list.d", pattern))
		files = append(files, m...)
	}
	var out []string
	seen := map[string]bool{}
	read := 0
	for _, f := range files {
		data, err := os.ReadFile(f)
		if err != nil {
			continue
		}
		read++
		for _, u := range ParseAptSources(data, strings.HasSuffix(f, ".sources")) {
			if u = strings.TrimSuffix(u, "/"); !seen[u] {
				seen[u] = true
				out = append(out, u)
			}
		}
	}
	if read == 0 {
		return nil, errors.New("no apt sources file can be read in /etc/apt")
	}
	return out, nil
}

// reachURL asks u for an answer within ProbeTimeout, through the proxy the
// environment names, as the package clients would. Any HTTP answer counts;
// redirects are not followed (they may lead elsewhere).
func reachURL(ctx context.Context, u string) (time.Duration, int, error) {
	ctx, cancel := context.WithTimeout(ctx, ProbeTimeout)
	defer cancel()
	req, err := http.NewRequestWithContext(ctx, http.MethodGet, u, nil)
	if err != nil {
		return 0, 0, errors.New("not a URL")
	}
	c := &http.Client{
		Transport:     &http.Transport{Proxy: http.ProxyFromEnvironment, TLSHandshakeTimeout: ProbeTimeout},
		CheckRedirect: func(*http.Request, []*http.Request) error { return http.ErrUseLastResponse },
	}
	defer c.CloseIdleConnections()
	start := time.Now()
	resp, err := c.Do(req)
	if err != nil {
		return 0, 0, describe(err)
	}
	took := time.Since(start)
	io.Copy(io.Discard, io.LimitReader(resp.Body, 64<<10))
	resp.Body.Close()
	return took, resp.StatusCode, nil
}

// describe says what went wrong reaching a server in words that do not
// name it: net/http's errors carry the URL and host, which stack doctor
// never prints.
func describe(err error) error {
	var dns *net.DNSError
	var unknownCA x509.UnknownAuthorityError
	var hostname x509.HostnameError
	var invalid x509.CertificateInvalidError
	var verify *tls.CertificateVerificationError
	var record tls.RecordHeaderError
	var nerr net.Error
	switch {
	case errors.Is(err, context.DeadlineExceeded), errors.As(err, &nerr) && nerr.Timeout():
		return fmt.Errorf("no answer within %s", ProbeTimeout)
	case errors.Is(err, context.Canceled):
		return errors.New("interrupted")
	case errors.As(err, &dns):
		if dns.IsNotFound {
			return errors.New("its name does not resolve")
		}
		return errors.New("name lookup failed")
	case errors.Is(err, syscall.ECONNREFUSED):
		return errors.New("connection refused")
	case errors.Is(err, syscall.ENETUNREACH), errors.Is(err, syscall.EHOSTUNREACH):
		return errors.New("no route to it")
	case errors.Is(err, syscall.ECONNRESET):
		return errors.New("connection reset")
	case errors.As(err, &unknownCA), errors.As(err, &hostname), errors.As(err, &invalid), errors.As(err, &verify):
		return errors.New("its TLS certificate is not trusted here")
	case errors.As(err, &record):
		return errors.New("it does not speak TLS")
	}
	return errors.New("cannot connect")
}
