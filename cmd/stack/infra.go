package main

import (
	"errors"
	"fmt"
	"time"

	"github.com/spf13/cobra"

	"github.com/hashbang/stack/internal/cluster"
	"github.com/hashbang/stack/internal/policy"
	"github.com/hashbang/stack/internal/release"
	"github.com/hashbang/stack/internal/ui"
)

func newInfraCmd(g *globals) *cobra.Command {
	cmd := &cobra.Command{
		Use:   "infra",
		Short: "Plan, apply and destroy an environment's cluster from its declaration",
		Long: `infra provisions the cluster of an environment whose backend stack makes
(digitalocean) from the declaration in infra/ENV/environment.yaml, as terraform
does: plan shows what would change, field by field; apply makes it so, waits
until the cluster runs and keeps its credentials under the data directory
(DATA/clusters/CLUSTER/credentials.json, mode 0600); every change is committed
to the cluster's state repo beside its deploys.

The API token comes from $DIGITALOCEAN_TOKEN (or a file named by
$DIGITALOCEAN_TOKEN_FILE), never from the repository; $DIGITALOCEAN_API_URL
overrides the API endpoint. A protected environment is provisioned from a
commit that passes the signature policy (its ref, or --commit), as deploy does.`,
	}
	cmd.AddCommand(newInfraPlanCmd(g), newInfraApplyCmd(g), newInfraDestroyCmd(g))
	return cmd
}

// infraFlags are what the infra commands share: the revision, the trust
// root and the wait.
type infraFlags struct {
	deployFlags
	root    policy.TrustRoot
	timeout time.Duration
	poll    time.Duration
}

func (f *infraFlags) register(cmd *cobra.Command, apply bool) {
	f.deployFlags.register(cmd)
	cmd.Flags().StringVar(&f.root.Commit, "root", "", "trust root of the signature policy: a commit (protected environments; default git config stack.policy.root)")
	cmd.Flags().StringVar(&f.root.Key, "root-key", "", "SHA256 fingerprint of the key that must have signed the trust root (default git config stack.policy.rootKey)")
	if apply {
		cmd.Flags().DurationVar(&f.timeout, "timeout", 30*time.Minute, "how long to wait for the cluster and its pools to run")
		cmd.Flags().DurationVar(&f.poll, "poll", 10*time.Second, "how often to check on provisioning")
	}
}

func (f *infraFlags) open(g *globals, cmd *cobra.Command, name string) (ui.Format, *release.Infra, error) {
	format, ws, env, err := g.environment(name)
	if err != nil {
		return "", nil, err
	}
	o := g.release(f.rev, cmd.ErrOrStderr())
	o.Root = f.root
	in, err := release.OpenInfra(cmd.Context(), ws, env, o)
	return format, in, err
}

func newInfraPlanCmd(g *globals) *cobra.Command {
	var f infraFlags
	cmd := &cobra.Command{
		Use:               "plan ENV",
		ValidArgsFunction: completeEnvs(g, 1),
		Short:             "Show what `stack infra apply` would change, field by field",
		Long: `plan reads the declaration of ENV's cluster and what exists in the account,
and prints each difference: + create, ~ update in place, - delete, and -/+ for
fields the API cannot change on a running cluster (region, VPC, a pool's
droplet size, turning HA off, an older version), which need --replace.

Exit status: 0 nothing to do, 2 changes pending, 1 error (terraform's
-detailed-exitcode). -o json gives the plan as data.`,
		Example: `  stack infra plan staging
  stack infra plan production -o json`,
		Args: cobra.ExactArgs(1),
		RunE: func(cmd *cobra.Command, args []string) error {
			format, in, err := f.open(g, cmd, args[0])
			if err != nil {
				return err
			}
			plan, err := in.Plan(cmd.Context())
			if err != nil {
				return err
			}
			if format.Data() {
				if err := ui.Write(stdout(cmd), format, plan); err != nil {
					return err
				}
			} else {
				fmt.Fprint(stdout(cmd), plan.Text())
			}
			if !plan.Empty() {
				return exitCode(2, nil)
			}
			return nil
		},
	}
	f.register(cmd, false)
	return cmd
}

func newInfraApplyCmd(g *globals) *cobra.Command {
	var (
		f       infraFlags
		replace bool
	)
	cmd := &cobra.Command{
		Use:               "apply ENV",
		ValidArgsFunction: completeEnvs(g, 1),
		Short:             "Make ENV's cluster match its declaration, wait until it runs, keep its credentials",
		Long: `apply makes the account match the plan (see stack infra plan), idempotently:
a second apply changes nothing. It refuses changes that need replacement
unless --replace is given, waits until the cluster and its pools run, fetches
the cluster's short-lived credentials (renewed by later commands before they
expire) into DATA/clusters/CLUSTER/credentials.json (mode 0600), and commits
what exists (id, version, endpoint, pools) to the cluster's state repo.

One apply or deploy runs per cluster at a time. An apply that failed part way
leaves nothing recorded that does not exist; run it again to converge.`,
		Example: `  stack infra apply staging && stack deploy staging
  stack infra apply production --commit production --root 4f2a...`,
		Args: cobra.ExactArgs(1),
		RunE: func(cmd *cobra.Command, args []string) error {
			format, in, err := f.open(g, cmd, args[0])
			if err != nil {
				return err
			}
			res, err := in.Apply(cmd.Context(), cluster.ApplyOptions{Replace: replace, Out: cmd.ErrOrStderr(), Poll: f.poll, Timeout: f.timeout})
			if err != nil {
				return err
			}
			return printInfra(cmd, format, res)
		},
	}
	f.register(cmd, true)
	cmd.Flags().BoolVar(&replace, "replace", false, "allow changes that delete and recreate the cluster or a pool, with what runs on it")
	return cmd
}

func newInfraDestroyCmd(g *globals) *cobra.Command {
	var (
		f   infraFlags
		yes bool
	)
	cmd := &cobra.Command{
		Use:               "destroy ENV",
		ValidArgsFunction: completeEnvs(g, 1),
		Short:             "Delete ENV's cluster (only with --yes)",
		Long: `destroy deletes the cluster of ENV with everything that runs on it, waits until
it is gone, deletes its stored credentials and records that in the state repo.
It does nothing without --yes; a protected environment passes the signature
gate first, as apply does.`,
		Args: cobra.ExactArgs(1),
		RunE: func(cmd *cobra.Command, args []string) error {
			if !yes {
				return errors.New("destroy deletes the cluster and everything on it: pass --yes to do it")
			}
			format, in, err := f.open(g, cmd, args[0])
			if err != nil {
				return err
			}
			res, err := in.Destroy(cmd.Context(), cluster.ApplyOptions{Out: cmd.ErrOrStderr(), Poll: f.poll, Timeout: f.timeout})
			if err != nil {
				return err
			}
			if res.Provisioned == nil && !format.Data() {
				fmt.Fprintf(cmd.ErrOrStderr(), "cluster %s does not exist: nothing to destroy\n", in.Env.Cluster)
				return nil
			}
			return printInfra(cmd, format, res)
		},
	}
	f.register(cmd, true)
	cmd.Flags().BoolVar(&yes, "yes", false, "really delete the cluster")
	return cmd
}

func printInfra(cmd *cobra.Command, format ui.Format, res *release.InfraResult) error {
	if format.Data() {
		return ui.Write(stdout(cmd), format, res)
	}
	fmt.Fprintln(stdout(cmd), res.Provisioned.Summary)
	if res.StateCommit != "" {
		fmt.Fprintf(cmd.ErrOrStderr(), "recorded in state repo %s at %.12s\n", res.State, res.StateCommit)
	} else {
		fmt.Fprintf(cmd.ErrOrStderr(), "no change to record (state repo %s)\n", res.State)
	}
	return nil
}
