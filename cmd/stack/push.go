package main

import (
	"errors"
	"fmt"
	"syscall"

	"github.com/spf13/cobra"

	"github.com/hashbang/stack/internal/image"
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
		Use:               "push [NAME...]",
		ValidArgsFunction: completeImages(g, false),
		Short:             "Push built images from the local OCI layout to a registry, by digest and tag",
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
				dir = ws.OCI()
			}
			pushed, err := registry.PushAll(cmd.Context(), image.Layout{Dir: dir}, args, target, registry.PushOptions{Tag: tag}, progress(cmd))
			if format == ui.Text {
				for _, res := range pushed {
					fmt.Fprintln(stdout(cmd), res.Ref)
				}
			}
			if errors.Is(err, syscall.ECONNREFUSED) {
				return fmt.Errorf("%w: is `stack serve` running and listening on %s?", err, target)
			}
			if err != nil {
				return err
			}
			if format.Data() {
				return ui.Write(stdout(cmd), format, pushed)
			}
			return nil
		},
	}
	cmd.Flags().StringVar(&target, "registry", registry.DefaultAddr, "registry to push to: HOST:PORT[/PATH]")
	cmd.Flags().StringVar(&tag, "tag", registry.DefaultTag, "tag to give each pushed image")
	cmd.Flags().StringVar(&dir, "layout", "", "OCI image layout to push from (default CACHE/oci)")
	return cmd
}
