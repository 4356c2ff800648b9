package main

import (
	"fmt"

	"github.com/spf13/cobra"

	"github.com/hashbang/stack/internal/gitserve"
	"github.com/hashbang/stack/internal/ui"
)

func newRepoCmd(g *globals) *cobra.Command {
	cmd := &cobra.Command{
		Use:   "repo",
		Short: "Create and list the git repositories `stack serve` hosts",
		Long: `The git server of ` + "`stack serve`" + ` hosts bare repositories under DATA/git/,
reachable as ssh://git@HOST:PORT/NAME.git by the keys in config/admins and
config/developers, as config/git.yaml allows. Names are NAME or GROUP/NAME,
each [a-z0-9][a-z0-9._-]*.`,
	}
	dataDir := g.dataDir

	create := &cobra.Command{
		Use:   "create NAME",
		Short: "Create an empty repository with the stack hooks installed",
		Example: `  stack repo create stack
  stack repo create infra/dns`,
		Args: cobra.ExactArgs(1),
		RunE: func(cmd *cobra.Command, args []string) error {
			format, err := g.format()
			if err != nil {
				return err
			}
			dir, err := dataDir()
			if err != nil {
				return err
			}
			repo, err := gitserve.Create(dir, args[0])
			if err != nil {
				return err
			}
			if format.Data() {
				return ui.Write(stdout(cmd), format, repo)
			}
			_, err = fmt.Fprintf(stdout(cmd), "created %s at %s\n", repo.Name, repo.Path)
			return err
		},
	}

	list := &cobra.Command{
		Use:   "list",
		Short: "List the repositories",
		Args:  cobra.NoArgs,
		RunE: func(cmd *cobra.Command, args []string) error {
			format, err := g.format()
			if err != nil {
				return err
			}
			dir, err := dataDir()
			if err != nil {
				return err
			}
			repos, err := gitserve.List(dir)
			if err != nil {
				return err
			}
			if format.Data() {
				return ui.Write(stdout(cmd), format, repos)
			}
			rows := make([][]string, 0, len(repos))
			for _, r := range repos {
				commit := "(empty)"
				if r.Commit != "" {
					commit = r.Commit[:12]
				}
				rows = append(rows, []string{r.Name, r.Branch, commit, r.Path})
			}
			return ui.Table(stdout(cmd), []string{"NAME", "BRANCH", "COMMIT", "PATH"}, rows)
		},
	}
	cmd.AddCommand(create, list, newRepoTrustCmd(g, dataDir))
	return cmd
}
