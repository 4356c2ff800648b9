package main

import (
	"fmt"
	"io"
	"os"
	"path/filepath"

	"github.com/spf13/cobra"

	"github.com/hashbang/stack/internal/ui"
	"github.com/hashbang/stack/internal/workspace"
)

// globals are the flags every command shares.
type globals struct {
	repo       string
	cache      string
	data       string
	output     string
	kubeconfig string
	context    string
}

func newRootCmd() *cobra.Command {
	g := &globals{}
	var showVersion bool
	root := &cobra.Command{
		Use:   "stack",
		Short: "Build, serve and deploy a hash-locked, self-hosted Kubernetes stack",
		Long: `stack takes an infrastructure repository from zero to running services.

Every upstream source is pinned in config/sources.yaml and verified before use;
every tool and image is built here, deterministically, FROM scratch; git,
registry and CI are served by stack itself; production changes must be signed
by whitelisted admins' hardware keys.

Commands find the repository by looking for config/sources.yaml in the current
directory and its parents (or take --repo). Downloads and builds live in the
cache: .cache/ in the repository unless --cache or $STACK_CACHE say otherwise.`,
		SilenceUsage:  true,
		SilenceErrors: true,
		RunE: func(cmd *cobra.Command, _ []string) error {
			if showVersion {
				return printVersion(cmd, g)
			}
			return cmd.Help()
		},
	}
	root.Flags().BoolVar(&showVersion, "version", false, "print what this program is, as stack version does")
	root.PersistentFlags().StringVarP(&g.repo, "repo", "C", ".", "the stack repository (or a directory inside it)")
	root.PersistentFlags().StringVar(&g.cache, "cache", "", "cache directory (default $STACK_CACHE, else REPO/.cache)")
	root.PersistentFlags().StringVar(&g.data, "data", "", "data directory of stack serve: repositories, state repos, registry, CI (default $STACK_DATA, else CACHE/serve)")
	root.PersistentFlags().StringVarP(&g.output, "output", "o", "text", "result format: text, json or yaml")
	root.PersistentFlags().StringVar(&g.kubeconfig, "kubeconfig", "", "kubeconfig of the environment's cluster, instead of its backend's (local: CACHE/node/CLUSTER/kubeconfig)")
	root.PersistentFlags().StringVar(&g.context, "context", "", "kubeconfig context to use (default the environment's `context:`, else the file's current one)")
	root.AddCommand(
		newSourcesCmd(g),
		newCacheCmd(g),
		newBuildCmd(g),
		newReproCmd(g),
		newAuditCmd(g),
		newPolicyCmd(g),
		newPushCmd(g),
		newRepoCmd(g),
		newHookCmd(g),
		newCICmd(g),
		newRenderCmd(g),
		newOverlaysCmd(g),
		newDeployCmd(g),
		newInfraCmd(g),
		newRegistryProxyCmd(),
		newDiffCmd(g),
		newServeCmd(g),
		newVersionCmd(g),
		newDoctorCmd(g),
		newUpCmd(g), newDownCmd(g), newStatusCmd(g), newKubeconfigCmd(g), newSuperviseCmd(),
	)
	return root
}

// workspace finds the repository the command works on.
func (g *globals) workspace() (*workspace.Workspace, error) {
	ws, err := workspace.Find(g.repo, g.cache)
	if err != nil {
		return nil, err
	}
	ws.Data = g.data
	return ws, nil
}

// gitDir is where a command that needs only git works (policy verify and
// approve): --repo as given, absolute. git finds the repository from any
// directory inside it, so it need not be a stack repository, and a clone
// nested inside one is that clone, not the stack repository around it.
func (g *globals) gitDir() (string, error) {
	dir, err := filepath.Abs(g.repo)
	if err != nil {
		return "", err
	}
	if fi, err := os.Stat(dir); err != nil || !fi.IsDir() {
		return "", fmt.Errorf("--repo %s: not a directory: give a directory inside a git repository", g.repo)
	}
	return dir, nil
}

// dataDir is the data directory of stack serve: --data, else $STACK_DATA,
// else the workspace's CACHE/serve. Only the last needs a workspace.
func (g *globals) dataDir() (string, error) {
	if g.data != "" || os.Getenv(workspace.DataEnv) != "" {
		return (&workspace.Workspace{Data: g.data}).DataDir()
	}
	ws, err := g.workspace()
	if err != nil {
		return "", fmt.Errorf("%w (or give --data DIR)", err)
	}
	return ws.DataDir()
}

// open returns the --output format and the workspace: what most commands
// start with.
func (g *globals) open() (ui.Format, *workspace.Workspace, error) {
	format, err := g.format()
	if err != nil {
		return "", nil, err
	}
	ws, err := g.workspace()
	return format, ws, err
}

// format returns the --output format.
func (g *globals) format() (ui.Format, error) {
	return ui.ParseFormat(g.output)
}

// progress returns where a command shows its progress.
func progress(cmd *cobra.Command) *ui.Progress {
	return ui.NewProgress(cmd.ErrOrStderr())
}

// stdout is where a command prints its results.
func stdout(cmd *cobra.Command) io.Writer { return cmd.OutOrStdout() }
