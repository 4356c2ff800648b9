package main

import (
	"fmt"

	"github.com/spf13/cobra"

	"github.com/hashbang/stack/internal/doctor"
	"github.com/hashbang/stack/internal/ui"
)

func newDoctorCmd(g *globals) *cobra.Command {
	return &cobra.Command{
		Use:   "doctor [ENV]",
		Short: "Check in seconds that this machine has what stack up and the tests need",
		Long: `doctor checks, without changing anything, what stack up [ENV] (default
development) and the tests need of this machine, each a line
` + "`ok|warn|fail  WHAT  (detail)`" + ` with the fix below a warning or failure:

  - Linux, root (a warning: stack up needs it, doctor does not), the kernel
    features and host tools stack up's preflight checks (overlay,
    br_netfilter, nf_conntrack, the cgroup hierarchy, iptables, ip);
  - the TCP ports stack up needs free: the node's, the environment's host
    ports and the registry's (unless a registry answers there);
  - free space where the cache is: a warning under 20 GiB, a failure under 5;
  - the Debian packages of scripts/packages (and npm), the Go toolchain on
    PATH against go.mod's go line;
  - whether the Go module proxy (go env GOPROXY), the apt sources and the npm
    registry (npm config get registry) answer, each within 3 seconds: a
    warning, not a failure, since a warm cache needs none of them. They are
    named by role, never by host.

It exits 1 if any check failed, 0 otherwise (warnings too); make up runs it
first.`,
		Example: `  stack doctor
  stack doctor -o json`,
		Args:              cobra.MaximumNArgs(1),
		ValidArgsFunction: completeEnvs(g, 1),
		RunE: func(cmd *cobra.Command, args []string) error {
			format, ws, err := g.open()
			if err != nil {
				return err
			}
			r := doctor.Run(cmd.Context(), doctor.Real(ws, envArg(args)))
			if format.Data() {
				if err := ui.Write(stdout(cmd), format, r); err != nil {
					return err
				}
			} else if err := r.WriteText(stdout(cmd)); err != nil {
				return err
			}
			switch {
			case r.OK:
				return nil
			case format.Data():
				return exitCode(exitFailed, fmt.Errorf("doctor: %d of %d checks failed", r.Failed, len(r.Checks)))
			}
			return exitCode(exitFailed, nil) // the summary line said so
		},
	}
}
