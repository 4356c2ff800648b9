package main

import (
	"fmt"
	"log/slog"
	"os"
	"sort"

	"github.com/spf13/cobra"

	"github.com/hashbang/stack/internal/cluster"
	"github.com/hashbang/stack/internal/devenv"
	"github.com/hashbang/stack/internal/release"
	"github.com/hashbang/stack/internal/ui"
)

const defaultEnv = "development"

func envArg(args []string) string {
	if len(args) == 1 {
		return args[0]
	}
	return defaultEnv
}

func newUpCmd(g *globals) *cobra.Command {
	return &cobra.Command{
		Use:               "up [ENV]",
		ValidArgsFunction: completeEnvs(g, 1),
		Short:             "Bring a development environment up: a local Kubernetes node built from locked sources, its registry, images and services",
		Long: `up brings the local environment ENV (default development, from infra/ENV/) up on
this machine, as root:

  - fetches and verifies the node's sources (runc, containerd and the CNI
    plugins from their pinned Debian packages; etcd and Kubernetes built from
    their locked modules, once: later runs reuse the built binaries);
  - uses the registry answering at 127.0.0.1:5000, or starts stack serve;
  - builds every image of images/ and pushes it there;
  - starts etcd, kube-apiserver, kube-controller-manager, kube-scheduler,
    containerd, the kubelet and kube-proxy, each waited for until healthy,
    with logs in CACHE/node/CLUSTER/logs/; applies the cluster DNS (CoreDNS);
  - deploys pods/ through infra/ENV/ and waits until every workload is ready;
  - prints the services' URLs and the kubeconfig path.

Run again, it only checks what runs and re-applies what changed. stack down
stops everything and restores the host.`,
		Example: `  sudo stack up
  sudo stack up development -o json`,
		Args: cobra.MaximumNArgs(1),
		RunE: func(cmd *cobra.Command, args []string) error {
			format, ws, err := g.open()
			if err != nil {
				return err
			}
			e, err := devenv.Open(ws, envArg(args), progress(cmd))
			if err != nil {
				return err
			}
			res, err := e.Up(cmd.Context())
			if err != nil {
				return err
			}
			if format.Data() {
				return ui.Write(stdout(cmd), format, res)
			}
			var names []string
			for n := range res.Services {
				names = append(names, n)
			}
			sort.Strings(names)
			var rows [][]string
			for _, n := range names {
				rows = append(rows, []string{n, res.Services[n]})
			}
			if err := ui.Table(stdout(cmd), []string{"SERVICE", "URL"}, rows); err != nil {
				return err
			}
			fmt.Fprintf(stdout(cmd), "\n%s is up: kubectl --kubeconfig %s get pods -A\n", res.Env, res.Kubeconfig)
			for _, n := range res.Notes {
				fmt.Fprintln(stdout(cmd), n)
			}
			return nil
		},
	}
}

func newDownCmd(g *globals) *cobra.Command {
	var purge bool
	cmd := &cobra.Command{
		Use:               "down [ENV]",
		ValidArgsFunction: completeEnvs(g, 1),
		Short:             "Stop the local environment and restore the host as it was",
		Long: `down stops every process stack up started (the node's components, the pods'
containers, and stack serve if up started it), unmounts what they mounted,
removes the iptables chains they added (KUBE-*, CNI-*), the pod bridge and its
interfaces, restores the sysctls they changed, and checks that nothing is left.
The cluster's data (certificates, etcd, images) stays for the next stack up,
unless --purge.`,
		Example: `  sudo stack down
  sudo stack down --purge`,
		Args: cobra.MaximumNArgs(1),
		RunE: func(cmd *cobra.Command, args []string) error {
			ws, err := g.workspace()
			if err != nil {
				return err
			}
			e, err := devenv.Open(ws, envArg(args), progress(cmd))
			if err != nil {
				return err
			}
			return e.Down(cmd.Context(), purge)
		},
	}
	cmd.Flags().BoolVar(&purge, "purge", false, "also delete the cluster's data (certificates, etcd, containerd's images)")
	return cmd
}

func newStatusCmd(g *globals) *cobra.Command {
	return &cobra.Command{
		Use:               "status [ENV]",
		ValidArgsFunction: completeEnvs(g, 1),
		Short:             "Show an environment: its deploys from the state repo, and a local node's components",
		Long: `status shows what the cluster's state repo says of ENV (default development):
the deployed commit, who deployed it and when, its images, the last
infrastructure change and the recent history (deploys, drift, infra). For a
local environment it first lists each component of its node: running,
unhealthy (why) or stopped, with PID, memory and log.`,
		Args: cobra.MaximumNArgs(1),
		RunE: func(cmd *cobra.Command, args []string) error {
			format, ws, env, err := g.environment(envArg(args))
			if err != nil {
				return err
			}
			data, err := ws.DataDir()
			if err != nil {
				return err
			}
			state, err := release.ReadStatus(cmd.Context(), data, env)
			if err != nil {
				return err
			}
			var comps any // the node's components, for a local environment
			var rows [][]string
			if env.Backend == cluster.Local {
				e, err := devenv.Open(ws, env.Name, nil)
				if err != nil {
					return err
				}
				st, err := e.Node.Status(cmd.Context())
				if err != nil {
					return err
				}
				comps = st
				for _, s := range st {
					pid, mem := "-", "-"
					if s.PID > 0 {
						pid = fmt.Sprint(s.PID)
					}
					if s.RSS > 0 {
						mem = ui.Size(s.RSS)
					}
					rows = append(rows, []string{s.Component, s.State, pid, mem, s.Log})
				}
			}
			if format.Data() {
				return ui.Write(stdout(cmd), format, struct {
					*release.Status
					Node any `json:"node,omitempty"`
				}{state, comps})
			}
			if comps != nil {
				if err := ui.Table(stdout(cmd), []string{"COMPONENT", "STATE", "PID", "RSS", "LOG"}, rows); err != nil {
					return err
				}
				fmt.Fprintln(stdout(cmd))
			}
			state.Write(stdout(cmd))
			return nil
		},
	}
}

func newKubeconfigCmd(g *globals) *cobra.Command {
	return &cobra.Command{
		Use:               "kubeconfig [ENV]",
		ValidArgsFunction: completeEnvs(g, 1),
		Short:             "Print the path of the local environment's admin kubeconfig",
		Example:           `  kubectl --kubeconfig "$(stack kubeconfig)" get pods -A`,
		Args:              cobra.MaximumNArgs(1),
		RunE: func(cmd *cobra.Command, args []string) error {
			ws, err := g.workspace()
			if err != nil {
				return err
			}
			e, err := devenv.Open(ws, envArg(args), nil)
			if err != nil {
				return err
			}
			path := e.Node.Kubeconfig()
			if _, err := os.Stat(path); err != nil {
				return fmt.Errorf("%s has no kubeconfig yet (%s): run stack up %s", e.Env.Name, path, e.Env.Name)
			}
			fmt.Fprintln(stdout(cmd), path)
			return nil
		},
	}
}

// newSuperviseCmd is the supervisor of a development node, which stack up
// starts in the background: `stack supervise NODE-DIR`.
func newSuperviseCmd() *cobra.Command {
	return &cobra.Command{
		Use:    "supervise NODE-DIR",
		Short:  "Restart the components of a local node that die (started by stack up, not by hand)",
		Hidden: true,
		Args:   cobra.ExactArgs(1),
		RunE: func(cmd *cobra.Command, args []string) error {
			return devenv.Supervise(cmd.Context(), args[0], slog.New(slog.NewTextHandler(cmd.ErrOrStderr(), nil)))
		},
	}
}
