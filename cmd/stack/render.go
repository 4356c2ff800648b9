package main

import (
	"fmt"
	"strings"

	"github.com/spf13/cobra"

	"github.com/hashbang/stack/internal/cluster"
	"github.com/hashbang/stack/internal/deploy"
	"github.com/hashbang/stack/internal/release"
	"github.com/hashbang/stack/internal/ui"
)

func newRenderCmd(g *globals) *cobra.Command {
	var rev string
	cmd := &cobra.Command{
		Use:               "render ENV",
		ValidArgsFunction: completeEnvs(g, 1),
		Short:             "Print an environment's manifests: kustomize of infra/ENV/, images pinned by digest",
		Long: `render builds infra/ENV/ (a kustomize overlay over pods/) and prints the
objects a deploy would apply, in apply order. Every container image naming an
image of images/images.lock becomes REGISTRY/NAME@sha256:..., REGISTRY being
the environment's; any other image must already be pinned by digest.

Only pods/ and infra/ are readable by the overlay: no remote bases, no
plugins. With --commit, the tree of that commit is rendered instead of the
work tree.`,
		Example: `  stack render development
  stack render production --commit production
  stack render staging -o json`,
		Args: cobra.ExactArgs(1),
		RunE: func(cmd *cobra.Command, args []string) error {
			format, ws, env, err := g.environment(args[0])
			if err != nil {
				return err
			}
			t, err := release.Tree(cmd.Context(), ws, rev)
			if err != nil {
				return err
			}
			r, err := deploy.Render(t, env)
			if err != nil {
				return err
			}
			if format.Data() {
				items := make([]any, len(r.Objects))
				for i, u := range r.Objects {
					items[i] = u.Object
				}
				return ui.Write(stdout(cmd), format, map[string]any{"apiVersion": "v1", "kind": "List", "items": items})
			}
			data, err := r.YAML()
			if err != nil {
				return err
			}
			_, err = stdout(cmd).Write(data)
			return err
		},
	}
	cmd.Flags().StringVar(&rev, "commit", "", "render this commit's tree instead of the work tree")
	return cmd
}

func newOverlaysCmd(g *globals) *cobra.Command {
	var rev string
	cmd := &cobra.Command{
		Use:               "overlays [ENV...]",
		ValidArgsFunction: completeEnvs(g, -1),
		Short:             "Show how far each environment deviates from development",
		Long: `overlays renders development and every other environment (or those named)
and lists, per environment, the objects added or removed and each field that
differs from development, with a count, so that "remote infrastructure
deviates from local only via small overlays" is something to review.`,
		RunE: func(cmd *cobra.Command, args []string) error {
			format, ws, err := g.open()
			if err != nil {
				return err
			}
			base, err := cluster.Load(ws, deploy.BaseEnvironment)
			if err != nil {
				return err
			}
			names := args
			if len(names) == 0 {
				all, err := cluster.Names(ws)
				if err != nil {
					return err
				}
				for _, n := range all {
					if n != deploy.BaseEnvironment {
						names = append(names, n)
					}
				}
			}
			var envs []*cluster.Environment
			for _, n := range names {
				env, err := cluster.Load(ws, n)
				if err != nil {
					return err
				}
				envs = append(envs, env)
			}
			t, err := release.Tree(cmd.Context(), ws, rev)
			if err != nil {
				return err
			}
			devs, err := deploy.Compare(t, base, envs)
			if err != nil {
				return err
			}
			if format.Data() {
				return ui.Write(stdout(cmd), format, devs)
			}
			var rows [][]string
			for _, d := range devs {
				rows = append(rows, []string{d.Env, fmt.Sprint(d.Objects), fmt.Sprint(len(d.Added)), fmt.Sprint(len(d.Removed)), fmt.Sprint(len(d.Changed)), fmt.Sprint(d.Count)})
			}
			if err := ui.Table(stdout(cmd), []string{"ENV", "OBJECTS", "ADDED", "REMOVED", "CHANGED", "DIFFERENCES"}, rows); err != nil {
				return err
			}
			for _, d := range devs {
				var lines []string
				for _, a := range d.Added {
					lines = append(lines, "  + "+a)
				}
				for _, r := range d.Removed {
					lines = append(lines, "  - "+r)
				}
				for _, c := range d.Changed {
					for _, ch := range c.Changes {
						lines = append(lines, "  ~ "+c.Object+" "+ch.String())
					}
				}
				if len(lines) > 0 {
					fmt.Fprintf(stdout(cmd), "\n%s (vs %s):\n%s\n", d.Env, deploy.BaseEnvironment, strings.Join(lines, "\n"))
				}
			}
			return nil
		},
	}
	cmd.Flags().StringVar(&rev, "commit", "", "compare this commit's tree instead of the work tree")
	return cmd
}
