// Package doctor owns `stack doctor`: a check, in seconds, that this machine
// has what `stack up` and the tests need, made before they run for minutes
// and stop half way. Each check is one result, ok, warn or fail, with what
// it looked at, what it saw and, when not ok, how to fix it:
//
//   - the host the development node needs: Linux, root, the kernel
//     features and the host tools (node.HostChecks, the checks stack up's
//     preflight makes), the cgroup hierarchy;
//   - the TCP ports stack up needs free (node.PortChecks over the node's
//     ports and the environment's, devenv.Env.NeededPorts);
//   - free space where the cache is;
//   - the Debian packages scripts/deps installs (scripts/packages), the Go
//     toolchain on PATH against the go directive of go.mod;
//   - whether the package registries the sources come through answer: the
//     Go module proxy (go env GOPROXY), the apt sources, the npm registry
//     (npm config get registry), each bounded in time, in parallel. They
//     are named by role only: where they are is the machine's
//     configuration, never printed.
//
// It composes what other packages own and only reads and probes: it
// changes nothing on the host. Probes are functions, so tests replace them.
package doctor

import (
	"context"
	"fmt"
	"io"
	"strings"
	"sync"
	"time"
)

// Status is the outcome of one check.
type Status string

// The outcomes: ok; warn, something that may bite but does not stop stack
// up; fail, something that does.
const (
	OK   Status = "ok"
	Warn Status = "warn"
	Fail Status = "fail"
)

// Check is the result of one check.
type Check struct {
	Status Status `json:"status"`
	What   string `json:"what"`
	Detail string `json:"detail,omitempty"`
	// Fix is what to do when Status is not OK.
	Fix string `json:"fix,omitempty"`
}

// Report is every check, in a fixed order.
type Report struct {
	// OK is true when no check failed (warnings allowed).
	OK       bool    `json:"ok"`
	Failed   int     `json:"failed"`
	Warnings int     `json:"warnings"`
	Checks   []Check `json:"checks"`
}

// Disk space thresholds for the cache: below WarnFree a cold stack up and
// the tests may run out (the node's programs, images, the Go build cache);
// below FailFree they will.
const (
	WarnFree = 20 << 30
	FailFree = 5 << 30
)

// ProbeTimeout bounds each registry probe.
const ProbeTimeout = 3 * time.Second

// Run makes every check with p's probes, the independent ones in
// parallel, and returns them in a fixed order.
func Run(ctx context.Context, p *Probes) *Report {
	groups := []func(context.Context, *Probes) []Check{
		checkHost,
		checkPorts,
		checkDisk,
		checkPackages,
		checkGo,
		checkGoProxy,
		checkApt,
		checkNpm,
	}
	results := make([][]Check, len(groups))
	var wg sync.WaitGroup
	for i, g := range groups {
		wg.Add(1)
		go func() {
			defer wg.Done()
			results[i] = g(ctx, p)
		}()
	}
	wg.Wait()
	r := &Report{Checks: []Check{}}
	for _, cs := range results {
		for _, c := range cs {
			switch c.Status {
			case Fail:
				r.Failed++
			case Warn:
				r.Warnings++
			}
			r.Checks = append(r.Checks, c)
		}
	}
	r.OK = r.Failed == 0
	return r
}

// WriteText prints the report for people: `STATUS  WHAT  (detail)` a line,
// each fix indented below its check, then a summary line.
func (r *Report) WriteText(w io.Writer) error {
	width := 0
	for _, c := range r.Checks {
		width = max(width, len(c.What))
	}
	var b strings.Builder
	for _, c := range r.Checks {
		line := fmt.Sprintf("%-4s  %-*s", c.Status, width, c.What)
		if c.Detail != "" {
			line += "  (" + c.Detail + ")"
		}
		b.WriteString(strings.TrimRight(line, " ") + "\n")
		if c.Status != OK && c.Fix != "" {
			fmt.Fprintf(&b, "%s  → %s\n", strings.Repeat(" ", 4), c.Fix)
		}
	}
	switch {
	case r.Failed > 0:
		fmt.Fprintf(&b, "%s, %s: fix the failures above, then run stack doctor again\n", plural(r.Failed, "check failed", "checks failed"), plural(r.Warnings, "warning", "warnings"))
	case r.Warnings > 0:
		fmt.Fprintf(&b, "nothing failed, %s: stack up can run\n", plural(r.Warnings, "warning", "warnings"))
	default:
		b.WriteString("everything checked is in place: stack up can run\n")
	}
	_, err := io.WriteString(w, b.String())
	return err
}

func plural(n int, one, many string) string {
	if n == 1 {
		return "1 " + one
	}
	return fmt.Sprintf("%d %s", n, many)
}
