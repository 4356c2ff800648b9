package main

import (
	"fmt"

	"github.com/spf13/cobra"

	"github.com/hashbang/stack/internal/cache"
	"github.com/hashbang/stack/internal/source"
)

func newCacheCmd(g *globals) *cobra.Command {
	cmd := &cobra.Command{
		Use:   "cache",
		Short: "Keep known-working artifacts in the repository (cache/, via git-lfs)",
		Long: `The in-repo cache, cache/, holds known-working sources (Go modules laid out as a
module proxy, .debs and archives by sha256) so that a clone builds without reaching
upstream. It is tracked by git-lfs; fetch takes artifacts from it first and verifies
them like any download.`,
	}
	cmd.AddCommand(&cobra.Command{
		Use:   "lfs",
		Short: "Write .gitattributes so that cache/ is tracked by git-lfs",
		Args:  cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			ws, err := g.workspace()
			if err != nil {
				return err
			}
			changed, err := cache.TrackLFS(ws.Root)
			if err != nil {
				return err
			}
			if changed {
				fmt.Fprintln(stdout(cmd), "cache/ is now tracked by git-lfs (.gitattributes updated)")
			} else {
				fmt.Fprintln(stdout(cmd), "cache/ is already tracked by git-lfs")
			}
			return nil
		},
	}, &cobra.Command{
		Use:               "add [NAME...]",
		ValidArgsFunction: completeSources(g),
		Short:             "Copy fetched sources, verified, into the in-repo cache",
		RunE: func(cmd *cobra.Command, args []string) error {
			ws, srcs, err := selectSources(g, args)
			if err != nil {
				return err
			}
			n, err := source.Save(cmd.Context(), ws, srcs)
			if err != nil {
				return err
			}
			fmt.Fprintf(stdout(cmd), "copied %d file(s) into %s\n", n, ws.RepoCache())
			return nil
		},
	})
	return cmd
}
