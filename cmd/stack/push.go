package main

import (
	"errors"
	"fmt"
	"path/filepath"
	"syscall"

	"github.com/spf13/cobra"

	"github.com/hashbang/stack/internal/registry"
	"github.com/hashbang/stack/internal/ui"
)

func newPushCmd(g *globals) *cobra.Command {
	var (
		target string
		tag    string
		dir    string
	)
	cmd := &cobra.Command{
		Use:   "push [NAME...]",
		Short: "Push built images from the local OCI layout to a registry, by digest and tag",
		Long: `Push copies images from the OCI image layout the build writes (CACHE/oci) to
REGISTRY/NAME, where they are reachable by digest and by --tag. With no NAME every
image in the layout is pushed. It prints the reference by digest of each image.

The registry is the one ` + "`stack serve`" + ` runs on 127.0.0.1:5000 unless --registry says
otherwise. Plain http is used only for loopback registries; others need https, and
credentials come from the container tools' login configuration (docker login).`,
		Example: `  stack push
  stack push health --tag v1
  stack push -o json`,
		RunE: func(cmd *cobra.Command, args []string) error {
			format, err := g.format()
			if err != nil {
				return err
			}
			if dir == "" {
				ws, err := g.workspace()
				if err != nil {
					return err
				}
				dir = filepath.Join(ws.Cache, "oci")
			}
			names := dedupe(args)
			if len(names) == 0 {
				if names, err = registry.Images(dir); err != nil {
					return err
				}
				if len(names) == 0 {
					return fmt.Errorf("no named images in %s: build the images first", dir)
				}
			}
			p := progress(cmd)
			var pushed []registry.Pushed
			for _, name := range names {
				step := p.Start("push %s", name)
				res, err := registry.Push(cmd.Context(), dir, name, target, registry.PushOptions{
					Tag:      tag,
					Progress: step.Bytes,
				})
				if err := step.Done(err); err != nil {
					if errors.Is(err, syscall.ECONNREFUSED) {
						return fmt.Errorf("%w: is `stack serve` running and listening on %s?", err, target)
					}
					return err
				}
				pushed = append(pushed, res)
				if format == ui.Text {
					fmt.Fprintln(stdout(cmd), res.Ref)
				}
			}
			if format == ui.JSON {
				return ui.WriteJSON(stdout(cmd), pushed)
			}
			return nil
		},
	}
	cmd.Flags().StringVar(&target, "registry", registry.DefaultAddr, "registry to push to: HOST:PORT[/PATH]")
	cmd.Flags().StringVar(&tag, "tag", registry.DefaultTag, "tag to give each pushed image")
	cmd.Flags().StringVar(&dir, "layout", "", "OCI image layout to push from (default CACHE/oci)")
	return cmd
}

// dedupe returns names without repeats, in their first order.
func dedupe(names []string) []string {
	seen := map[string]bool{}
	var out []string
	for _, n := range names {
		if !seen[n] {
			seen[n] = true
			out = append(out, n)
		}
	}
	return out
}
