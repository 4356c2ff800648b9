package main

import (
	"errors"

	"github.com/spf13/cobra"

	"github.com/hashbang/stack/internal/gitserve"
	"github.com/hashbang/stack/internal/serve"
)

// newHookCmd is the command the git hooks of served repositories run:
// `stack hook pre-receive` and `stack hook post-receive`.
func newHookCmd(g *globals) *cobra.Command {
	return &cobra.Command{
		Use:    "hook NAME",
		Short:  "Run a git hook of a repository served by stack serve (run by git, not by hand)",
		Hidden: true,
		Args:   cobra.ExactArgs(1),
		RunE: func(cmd *cobra.Command, args []string) error {
			err := gitserve.RunHook(cmd.Context(), args[0], cmd.InOrStdin(), cmd.ErrOrStderr(), serveHooks())
			if errors.Is(err, gitserve.ErrRejected) {
				return exitCode(1, nil) // the reason is already on stderr, for the client
			}
			return err
		},
	}
}

// serveHooks are the callbacks every push goes through: the signature
// policy (pre-receive) and CI (post-receive).
func serveHooks() gitserve.Hooks {
	return serve.Hooks()
}
