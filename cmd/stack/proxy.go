package main

import (
	"errors"
	"fmt"
	"log/slog"
	"net"

	"github.com/spf13/cobra"

	"github.com/hashbang/stack/internal/registry"
)

func newRegistryProxyCmd() *cobra.Command {
	p := &registry.Proxy{}
	var passwordFile string
	cmd := &cobra.Command{
		Use:   "registry-proxy --to HOST:PORT",
		Short: "Forward pulls from a node-local port (127.0.0.1:5000) to the cluster's registry",
		Long: `registry-proxy listens on --listen and forwards pulls (GET and HEAD of /v2/)
to --to, the in-cluster registry's Service, with the credentials of
--password-file (the registry's one user, ` + registry.User + `). Anything else, a push
above all, is refused with 405. Run from a DaemonSet on each node's host
network, it lets containerd pull localhost:5000/NAME@sha256:... over plain
HTTP with no change to the node (containerd treats localhost as insecure by
itself), which is what DigitalOcean's nodes allow. Images stay pinned by
digest: the proxy adds no trust. It stops on SIGINT or SIGTERM.`,
		Example: `  stack registry-proxy --to stack.stack.svc.cluster.local:5000 --password-file /etc/stack/keys/push-password`,
		Args:    cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			if _, _, err := net.SplitHostPort(p.Upstream); err != nil || p.Upstream == "" {
				return errors.New("--to: give the registry as HOST:PORT, like registry.stack.svc.cluster.local:5000")
			}
			if passwordFile != "" {
				pw, err := registry.ReadPassword(passwordFile)
				if err != nil {
					return fmt.Errorf("--password-file: %w", err)
				}
				p.Password = pw
			}
			p.Logger = slog.New(slog.NewTextHandler(cmd.ErrOrStderr(), nil))
			return p.Run(cmd.Context())
		},
	}
	cmd.Flags().StringVar(&p.Listen, "listen", registry.DefaultAddr, "address to listen on")
	cmd.Flags().StringVar(&p.Upstream, "to", "", "the registry to forward to, HOST:PORT")
	cmd.Flags().StringVar(&passwordFile, "password-file", "", "file holding the registry's password for "+registry.User+", sent with every pull")
	return cmd
}
