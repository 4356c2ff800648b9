package main

import (
	"context"
	"fmt"
	"os"
	"os/exec"
	"os/user"
	"strings"
	"time"

	"github.com/spf13/cobra"

	"github.com/hashbang/stack/internal/cluster"
	"github.com/hashbang/stack/internal/deploy"
	"github.com/hashbang/stack/internal/policy"
	"github.com/hashbang/stack/internal/ui"
	"github.com/hashbang/stack/internal/workspace"
)

// deployFlags are the flags deploy and diff share: where the cluster and
// the state repo are, and what to render.
type deployFlags struct {
	kubeconfig string
	data       string
	rev        string
}

func (f *deployFlags) register(cmd *cobra.Command) {
	cmd.Flags().StringVar(&f.kubeconfig, "kubeconfig", "", "kubeconfig of the cluster (default: the environment's; for the local backend CACHE/node/CLUSTER/kubeconfig)")
	cmd.Flags().StringVar(&f.data, "data", "", "data directory of stack serve, holding the state repos (default CACHE/serve)")
	cmd.Flags().StringVar(&f.rev, "commit", "", "render this commit instead of the work tree (protected environments: default the environment's ref, else HEAD)")
}

// deployer connects to env's cluster and opens its state repo.
func (f *deployFlags) deployer(ctx context.Context, ws *workspace.Workspace, env *cluster.Environment) (*deploy.Deployer, error) {
	kc, err := deploy.KubeconfigPath(ws, env, f.kubeconfig)
	if err != nil {
		return nil, err
	}
	cfg, err := deploy.LoadConfig(kc)
	if err != nil {
		return nil, err
	}
	c, err := deploy.Connect(ctx, cfg)
	if err != nil {
		return nil, fmt.Errorf("environment %s: %w", env.Name, err)
	}
	data := f.data
	if data == "" {
		data = serveDataDir(ws.Cache)
	}
	state, err := deploy.OpenState(data, env.Cluster)
	if err != nil {
		return nil, err
	}
	return &deploy.Deployer{Env: env, Cluster: c, State: state, By: deployer(ctx, ws.Root)}, nil
}

// render renders env from the work tree or, for --commit and protected
// environments, from a commit.
func (f *deployFlags) render(ctx context.Context, ws *workspace.Workspace, env *cluster.Environment) (*deploy.Rendered, error) {
	rev := f.rev
	if rev == "" && env.Protected {
		rev = "HEAD"
		if env.Ref != "" {
			if _, err := policy.ResolveCommit(ctx, ws.Root, env.Ref); err == nil {
				rev = env.Ref
			}
		}
	}
	t, err := loadTree(ctx, ws, rev)
	if err != nil {
		return nil, err
	}
	return deploy.Render(t, env)
}

// deployer is who runs the deploy: git's user.name and user.email in the
// repository, else the login name on this host.
func deployer(ctx context.Context, dir string) deploy.Person {
	get := func(key string) string {
		out, err := exec.CommandContext(ctx, "git", "-C", dir, "config", key).Output()
		if err != nil {
			return ""
		}
		return strings.TrimSpace(string(out))
	}
	p := deploy.Person{Name: get("user.name"), Email: get("user.email")}
	if p.Name == "" {
		if u, err := user.Current(); err == nil {
			p.Name = u.Username
		}
	}
	if p.Email == "" {
		host, _ := os.Hostname()
		p.Email = p.Name + "@" + host
	}
	return p
}

func newDeployCmd(g *globals) *cobra.Command {
	var (
		f       deployFlags
		opts    deploy.Options
		root    string
		rootKey string
	)
	cmd := &cobra.Command{
		Use:   "deploy ENV",
		Short: "Apply an environment's manifests to its cluster, prune, wait, and record it in the state repo",
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
			ctx := cmd.Context()
			r, err := f.render(ctx, ws, env)
			if err != nil {
				return err
			}
			d, err := f.deployer(ctx, ws, env)
			if err != nil {
				return err
			}
			d.Out = cmd.ErrOrStderr()
			if env.Protected {
				tr := policy.TrustRoot{Commit: root, Key: rootKey}
				if tr.Commit == "" {
					if tr, err = policy.ConfiguredRoot(ctx, ws.Root); err != nil {
						return err
					}
				}
				if tr.Commit == "" {
					return fmt.Errorf("environment %s is protected: name the trust root with --root COMMIT or `git config stack.policy.root COMMIT`", env.Name)
				}
				v := &policy.Verifier{Dir: ws.Root, Root: tr}
				d.Gate = func(ctx context.Context, commit, last string) error {
					rep, err := v.CheckDeploy(ctx, env.Name, commit, last)
					if err != nil && rep != nil {
						for _, vd := range rep.Failed() {
							fmt.Fprintf(cmd.ErrOrStderr(), "refused %.12s %s: %s\n", vd.Commit, vd.Subject, vd.Reason)
						}
					}
					return err
				}
			}
			res, derr := d.Deploy(ctx, r, opts)
			if format == ui.JSON {
				if err := ui.WriteJSON(stdout(cmd), res); err != nil {
					return err
				}
			} else if res != nil && len(res.Objects) > 0 {
				printDeploy(cmd, res, opts.DryRun)
			}
			if derr != nil {
				return derr
			}
			if !opts.DryRun && format != ui.JSON {
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
	cmd.Flags().StringVar(&root, "root", "", "trust root of the signature policy: a commit (protected environments)")
	cmd.Flags().StringVar(&rootKey, "root-key", "", "SHA256 fingerprint of the key that must have signed --root")
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
