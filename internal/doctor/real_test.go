package doctor

import (
	"bytes"
	"context"
	"encoding/json"
	"net/url"
	"os/exec"
	"path/filepath"
	"regexp"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/hashbang/stack/internal/source"
	"github.com/hashbang/stack/internal/ui"
	"github.com/hashbang/stack/internal/workspace"
)

// TestRealRun runs every check on this machine: whatever it finds, each
// check is one line of the promised shape, every check is there, it takes
// seconds, and no registry's host name is printed.
func TestRealRun(t *testing.T) {
	ws, err := workspace.New(filepath.Join("..", ".."), t.TempDir())
	if err != nil {
		t.Fatal(err)
	}
	start := time.Now()
	r := Run(context.Background(), Real(ws, "development"))
	took := time.Since(start)
	if took > 15*time.Second {
		t.Errorf("stack doctor took %s", took)
	}
	var text bytes.Buffer
	if err := r.WriteText(&text); err != nil {
		t.Fatal(err)
	}
	t.Logf("%s in %s", text.String(), took)
	lines := strings.Split(strings.TrimSuffix(text.String(), "\n"), "\n")
	check := regexp.MustCompile(`^(ok  |warn|fail)  \S.*?( {2}\(.+\))?$`)
	fix := regexp.MustCompile(`^ {6}→ \S`)
	n := 0
	for _, l := range lines[:len(lines)-1] {
		switch {
		case check.MatchString(l):
			n++
		case fix.MatchString(l):
		default:
			t.Errorf("line %q is neither a check nor a fix", l)
		}
	}
	if n != len(r.Checks) {
		t.Errorf("%d check lines for %d checks", n, len(r.Checks))
	}
	if last := lines[len(lines)-1]; !strings.Contains(last, "stack up can run") && !strings.Contains(last, "failed") {
		t.Errorf("no summary line: %q", last)
	}
	var whats []string
	for _, c := range r.Checks {
		whats = append(whats, c.What)
		if c.Status == Fail && r.OK {
			t.Errorf("%s failed but the report is OK", c.What)
		}
	}
	for _, w := range []string{"Linux", "root", "overlay filesystem", "br_netfilter", "nf_conntrack", "cgroups", "iptables", "disk space (cache)", "Debian packages", "Go toolchain", "Go module proxy", "Debian apt sources", "npm registry"} {
		if !slices.Contains(whats, w) {
			t.Errorf("no check %q in %q", w, whats)
		}
	}
	if !slices.Contains(whats, "ports") && !strings.Contains(text.String(), "fail  port ") {
		t.Errorf("no check of the ports: %q", whats)
	}
	var js bytes.Buffer
	if err := ui.Write(&js, ui.JSON, r); err != nil {
		t.Fatal(err)
	}
	var back Report
	if err := json.Unmarshal(js.Bytes(), &back); err != nil || len(back.Checks) != len(r.Checks) || back.OK != r.OK {
		t.Errorf("JSON %s: %v", js.String(), err)
	}
	// The registries' hosts are this machine's configuration: never printed.
	var hosts []string
	if p, err := FirstProxy(source.GoEnv("GOPROXY")); err == nil {
		hosts = append(hosts, hostOf(p))
	}
	uris, _ := aptSources("/etc/apt")
	for _, u := range uris {
		hosts = append(hosts, hostOf(u))
	}
	if out, err := exec.Command("npm", "config", "get", "registry").Output(); err == nil {
		hosts = append(hosts, hostOf(strings.TrimSpace(string(out))))
	}
	for _, h := range hosts {
		if h != "" && (strings.Contains(text.String(), h) || strings.Contains(js.String(), h)) {
			t.Errorf("the output names a registry's host (%d characters)", len(h))
		}
	}
}

func hostOf(u string) string {
	p, err := url.Parse(u)
	if err != nil {
		return ""
	}
	return p.Hostname()
}
