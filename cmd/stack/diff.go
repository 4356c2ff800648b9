package main

import (
	"errors"
	"fmt"

	"github.com/spf13/cobra"

	"github.com/hashbang/stack/internal/deploy"
	"github.com/hashbang/stack/internal/release"
	"github.com/hashbang/stack/internal/ui"
)

func newDiffCmd(g *globals) *cobra.Command {
	var (
		f      deployFlags
		record bool
	)
	cmd := &cobra.Command{
		Use:               "diff ENV",
		ValidArgsFunction: completeEnvs(g, 1),
		Short:             "Compare the live cluster with its state repo and with what the checkout renders",
		Long: `diff reads every object of ENV's inventory and render from the live cluster and
names each object and field that differs:

  state → live    changed behind stack's back since the last deploy (drift)
  live → render   what a deploy of the checkout would change

Fields the cluster owns (status, resourceVersion, managedFields, uid,
controllers' annotations) are ignored; the render is compared as the API
server would apply it (server-side dry run), so defaults do not show.

With --record, only live and state repo are compared, and drift is committed
to the state repo as its own commit (Stack-Status: drift), so it shows in its
git log; the drift pipeline of ci/pipelines.yaml runs this on a timer.

Exit status: 0 when nothing differs (or drift was recorded), 2 when
something differs, 1 on an error.`,
		Example: `  stack diff development
  stack diff development --record
  stack diff production -o json`,
		Args: cobra.ExactArgs(1),
		RunE: func(cmd *cobra.Command, args []string) error {
			format, ws, env, err := g.environment(args[0])
			if err != nil {
				return err
			}
			ctx := cmd.Context()
			o := g.release(f.rev, nil)
			var r *deploy.Rendered
			if !record {
				if r, err = release.Render(ctx, ws, env, o.Rev); err != nil {
					return err
				}
			}
			d, err := release.Open(ctx, ws, env, o)
			if err != nil {
				return err
			}
			drift, err := d.Diff(ctx, r)
			if err != nil {
				return err
			}
			if record {
				if drift.Recorded, err = d.RecordDrift(ctx, drift); err != nil {
					return err
				}
			}
			if format.Data() {
				if err := ui.Write(stdout(cmd), format, drift); err != nil {
					return err
				}
			} else {
				printDrift(cmd, drift)
			}
			switch {
			case record && drift.Recorded != "":
				fmt.Fprintf(cmd.ErrOrStderr(), "recorded drift of %d objects in %s at %.12s\n", drift.Drifted(), d.State.Dir, drift.Recorded)
				return nil
			case len(drift.Objects) > 0:
				return differences(errors.New(plural(len(drift.Objects), "object differs", "objects differ")))
			}
			return nil
		},
	}
	f.register(cmd)
	cmd.Flags().BoolVar(&record, "record", false, "commit drift (live ≠ state repo) to the state repo")
	return cmd
}

func printDrift(cmd *cobra.Command, d *deploy.Drift) {
	w := stdout(cmd)
	for _, o := range d.Objects {
		switch {
		case o.State && !o.Live:
			fmt.Fprintf(w, "%s: in the state repo, not live (deleted behind stack's back)\n", o.Object)
		case o.Live && !o.State && o.Rendered:
			fmt.Fprintf(w, "%s: live, not in the state repo\n", o.Object)
		case !o.Live && o.Rendered:
			fmt.Fprintf(w, "%s: rendered, not deployed\n", o.Object)
		case o.Live && !o.Rendered:
			fmt.Fprintf(w, "%s: live, no longer rendered (a deploy prunes it)\n", o.Object)
		default:
			fmt.Fprintf(w, "%s\n", o.Object)
		}
		for _, c := range o.StateToLive {
			fmt.Fprintf(w, "  state → live:   %s\n", c)
		}
		for _, c := range o.LiveToRender {
			fmt.Fprintf(w, "  live → render:  %s\n", c)
		}
	}
	if len(d.Objects) == 0 {
		fmt.Fprintf(w, "%s: live objects match the state repo", d.Env)
		if d.StateCommit != "" {
			fmt.Fprintf(w, " (%.12s)", d.StateCommit)
		}
		fmt.Fprintln(w)
	}
}

func plural(n int, one, many string) string {
	if n == 1 {
		return "1 " + one
	}
	return fmt.Sprintf("%d %s", n, many)
}
