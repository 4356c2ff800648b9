package main

import (
	"fmt"
	"io"
	"strings"
	"time"

	"github.com/spf13/cobra"

	"github.com/hashbang/stack/internal/cluster"
	"github.com/hashbang/stack/internal/deploy"
	"github.com/hashbang/stack/internal/policy"
	"github.com/hashbang/stack/internal/release"
	"github.com/hashbang/stack/internal/ui"
	"github.com/hashbang/stack/internal/workspace"
)

// deployFlags are the flags deploy and diff share: what to render.
type deployFlags struct {
	rev string
}

func (f *deployFlags) register(cmd *cobra.Command) {
	cmd.Flags().StringVar(&f.rev, "commit", "", "render this commit instead of the work tree (protected environments: default the environment's ref, else HEAD)")
}

func newDeployCmd(g *globals) *cobra.Command {
	var (
		f    deployFlags
		opts deploy.Options
		root policy.TrustRoot
	)
	cmd := &cobra.Command{
		Use:               "deploy ENV",
		ValidArgsFunction: completeEnvs(g, 1),
		Short:             "Apply an environment's manifests to its cluster, prune, wait, and record it in the state repo",
		Long: `deploy renders ENV (as stack render does) and applies it to the environment's
cluster with server-side apply (field manager "stack"):

  - every object is validated by a server-side dry run before the first write;
    a refused object, a field another manager owns (a conflict) or a change to
    an immutable field stops the deploy with nothing applied;
  - namespaces and CRDs first, then the rest; unchanged objects are untouched;
  - objects deployed before and no longer rendered are deleted (pruned);
  - then it waits until every object is ready (--timeout), one line per object.

Afterwards the cluster's state repo (DATA/git/state/CLUSTER.git, served by
stack serve) gets a commit holding exactly what is live, the source commit and
who deployed. A deploy that fails after changing the cluster is committed as
FAILED with what is live; a refused one commits nothing. Exit status is
non-zero on any failure.

A protected environment deploys a commit (its ref, or --commit), never a work
tree, and only one that passes the signature policy from the trust root
(--root, or git config stack.policy.root) and descends from the last deploy.`,
		Example: `  stack deploy development
  stack deploy development --dry-run
  stack deploy production --commit production --root 4f2a...`,
		Args: cobra.ExactArgs(1),
		RunE: func(cmd *cobra.Command, args []string) error {
			format, ws, env, err := g.environment(args[0])
			if err != nil {
				return err
			}
			o := g.release(f.rev, cmd.ErrOrStderr())
			o.Root = root
			res, d, derr := release.Deploy(cmd.Context(), ws, env, o, opts)
			if format.Data() {
				if err := ui.Write(stdout(cmd), format, res); err != nil {
					return err
				}
			} else if res != nil && len(res.Objects) > 0 {
				printDeploy(cmd, res, opts.DryRun)
			}
			if derr != nil {
				return derr
			}
			if !opts.DryRun && !format.Data() {
				fmt.Fprintf(cmd.ErrOrStderr(), "deployed %s at %s: %s; state repo %s at %.12s\n", env.Name, shortCommit(res.Commit), res.Counts(), d.State.Dir, res.StateCommit)
			}
			return nil
		},
	}
	f.register(cmd)
	cmd.Flags().BoolVar(&opts.DryRun, "dry-run", false, "validate and show what would change against the live cluster, changing nothing")
	cmd.Flags().BoolVar(&opts.Force, "force", false, "recreate objects whose change touches an immutable field")
	cmd.Flags().BoolVar(&opts.ForceConflicts, "force-conflicts", false, "take over fields other field managers own")
	cmd.Flags().DurationVar(&opts.Timeout, "timeout", 5*time.Minute, "how long to wait for every object to be ready")
	cmd.Flags().StringVar(&root.Commit, "root", "", "trust root of the signature policy: a commit (protected environments; default git config stack.policy.root)")
	cmd.Flags().StringVar(&root.Key, "root-key", "", "SHA256 fingerprint of the key that must have signed the trust root (default git config stack.policy.rootKey)")
	return cmd
}

func printDeploy(cmd *cobra.Command, res *deploy.Result, dryRun bool) {
	var rows [][]string
	for _, o := range res.Objects {
		st := o.Status
		if o.Message != "" && st != "Current" {
			st = strings.TrimSpace(st + " " + o.Message)
		}
		rows = append(rows, []string{o.Object, o.Action, st})
	}
	ui.Table(stdout(cmd), []string{"OBJECT", "ACTION", "STATUS"}, rows)
	for _, o := range res.Objects {
		for _, c := range o.Changes {
			if dryRun {
				fmt.Fprintf(stdout(cmd), "  ~ %s %s\n", o.Object, c)
			}
		}
		for _, t := range o.TakenOver {
			fmt.Fprintf(stdout(cmd), "  ! %s: took over %s\n", o.Object, t)
		}
	}
}

func shortCommit(c string) string {
	if len(c) > 12 {
		return c[:12]
	}
	if c == "" {
		return "(no commit)"
	}
	return c
}

// environment returns the output format, the workspace and its environment
// name: what every command about one environment starts with.
func (g *globals) environment(name string) (ui.Format, *workspace.Workspace, *cluster.Environment, error) {
	format, ws, err := g.open()
	if err != nil {
		return "", nil, nil, err
	}
	env, err := cluster.Load(ws, name)
	return format, ws, env, err
}

// release returns the options of a command that renders revision rev of
// an environment and reaches its cluster as the global flags say; the
// gate's refusals go to log.
func (g *globals) release(rev string, log io.Writer) release.Options {
	return release.Options{Access: cluster.Access{Kubeconfig: g.kubeconfig, Context: g.context}, Rev: rev, Log: log}
}
