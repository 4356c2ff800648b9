package source

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"os"
	"os/exec"
	"strings"
)

// goCmd runs the machine's go command for module work (resolving, locking
// and downloading sources) against the stack's own module cache. The proxy
// and checksum database settings are the user's, so that the repository pins
// what is fetched and never where from; everything that could change what a
// command means (GOFLAGS, workspaces, toolchain switching) is fixed.
type goCmd struct {
	// modCache is the GOMODCACHE of locked sources.
	modCache string
	// proxyFirst, when set, is a GOPROXY entry tried before the user's
	// (the in-repo cache, as a file:// proxy).
	proxyFirst string
	// offline sets GOPROXY=off.
	offline bool
}

// env returns the environment for one go command; mod is the -mod mode.
func (g *goCmd) env(mod string) []string {
	var env []string
	for _, kv := range os.Environ() {
		k, _, _ := strings.Cut(kv, "=")
		switch k {
		case "GOFLAGS", "GOMODCACHE", "GOTOOLCHAIN", "GOWORK", "GO111MODULE", "GOPROXY", "GOOS", "GOARCH", "GOENV":
			continue
		}
		env = append(env, kv)
	}
	proxy := GoEnv("GOPROXY")
	if g.proxyFirst != "" {
		proxy = g.proxyFirst + "," + proxy
	}
	if g.offline {
		proxy = "off"
	}
	return append(env,
		"GOMODCACHE="+g.modCache,
		"GOFLAGS=-mod="+mod+" -modcacherw",
		"GOTOOLCHAIN=local",
		"GOWORK=off",
		"GO111MODULE=on",
		"GOPROXY="+proxy,
	)
}

// run runs go with args in dir and returns its standard output. On failure
// the error carries the command's standard error.
func (g *goCmd) run(ctx context.Context, dir, mod string, args ...string) ([]byte, error) {
	cmd := command(ctx, "go", args...)
	cmd.Dir = dir
	cmd.Env = g.env(mod)
	var stdout, stderr bytes.Buffer
	cmd.Stdout, cmd.Stderr = &stdout, &stderr
	if err := cmd.Run(); err != nil {
		msg := summarize(stderr.String(), 8)
		if msg == "" {
			msg = err.Error()
		}
		if errors.Is(err, exec.ErrNotFound) {
			msg = "the go command is not installed: install Go 1.26 and put it on PATH"
		}
		return stdout.Bytes(), fmt.Errorf("go %s: %s", args[0]+" "+args[1], msg)
	}
	return stdout.Bytes(), nil
}

// modDownload is one object of `go mod download -json` output.
type modDownload struct {
	Path, Version    string
	Error            string
	Info, GoMod, Zip string
	Dir              string
	Sum, GoModSum    string
}

// download runs `go mod download -json` for mods in dir and returns one
// result per module. Modules that failed carry their Error.
func (g *goCmd) download(ctx context.Context, dir, mod string, mods ...string) ([]modDownload, error) {
	out, err := g.run(ctx, dir, mod, append([]string{"mod", "download", "-json"}, mods...)...)
	var res []modDownload
	dec := json.NewDecoder(bytes.NewReader(out))
	for {
		var m modDownload
		if derr := dec.Decode(&m); derr == io.EOF {
			break
		} else if derr != nil {
			if err != nil {
				return nil, err
			}
			return nil, fmt.Errorf("go mod download: reading its output: %w", derr)
		}
		res = append(res, m)
	}
	if err != nil && len(res) == 0 {
		return nil, err
	}
	return res, nil
}

// GoEnv returns the value of a go environment setting as the user's go
// command sees it (environment or go env file).
func GoEnv(key string) string {
	if v := os.Getenv(key); v != "" {
		return v
	}
	out, err := exec.Command("go", "env", key).Output()
	if err != nil {
		return ""
	}
	return strings.TrimSpace(string(out))
}

// summarize keeps the first max lines of a go command's error output that
// say something (not its download chatter), noting how many it left out.
func summarize(out string, max int) string {
	var keep []string
	more := 0
	for _, line := range strings.Split(out, "\n") {
		if strings.TrimSpace(line) == "" || strings.HasPrefix(line, "go: downloading ") || strings.HasPrefix(line, "go: finding ") {
			continue
		}
		if len(keep) == max {
			more++
			continue
		}
		keep = append(keep, line)
	}
	if more > 0 {
		keep = append(keep, fmt.Sprintf("(%d more lines)", more))
	}
	return strings.Join(keep, "\n")
}
