package main

import "github.com/spf13/cobra"

func newCacheCmd(g *globals) *cobra.Command {
	return &cobra.Command{Use: "cache", Short: "Manage the in-repo cache of known-working artifacts (git-lfs)"}
}
