package main

import (
	"path"

	"github.com/spf13/cobra"

	"github.com/hashbang/stack/internal/image"
	"github.com/hashbang/stack/internal/ui"
	"github.com/hashbang/stack/internal/version"
	"github.com/hashbang/stack/internal/workspace"
)

// pinFiles are the files whose sha256 `stack version` prints: what the
// repository builds from.
var pinFiles = []string{workspace.SourcesFile, path.Join("images", image.LockFile)}

func newVersionCmd(g *globals) *cobra.Command {
	return &cobra.Command{
		Use:   "version",
		Short: "Print what this stack program is: version, commit, Go toolchain, and the repository's pins",
		Long: `version prints the module version of this stack program, the commit it was
built from and whether that tree had uncommitted changes (dirty), the commit's
time and the Go toolchain, from the build information the go command stamps into
the binary. ` + "`go build`" + ` in a git checkout stamps the commit; a build outside one, with
-buildvcs=false (the stack image) or by go test does not, and it says unknown.

Run inside a stack repository (or with --repo), it also prints the sha256 of
config/sources.yaml and images/images.lock: what the repository builds from.
stack --version prints the same.`,
		Example: `  stack version
  stack version -o json`,
		Args: cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			return printVersion(cmd, g)
		},
	}
}

// printVersion is `stack version` and `stack --version`.
func printVersion(cmd *cobra.Command, g *globals) error {
	format, err := g.format()
	if err != nil {
		return err
	}
	info := version.Read()
	if ws, err := g.workspace(); err == nil { // outside a repository: no pins
		if info.Repository, err = version.ReadRepository(ws.Root, pinFiles...); err != nil {
			return err
		}
	}
	if format.Data() {
		return ui.Write(stdout(cmd), format, info)
	}
	return info.WriteText(stdout(cmd))
}
