package main

import "github.com/spf13/cobra"

func newSourcesCmd(g *globals) *cobra.Command {
	return &cobra.Command{Use: "sources", Short: "List, fetch, verify and update the locked upstream sources"}
}
