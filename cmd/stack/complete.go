package main

import (
	"slices"
	"strings"

	"github.com/spf13/cobra"

	"github.com/hashbang/stack/internal/ci"
	"github.com/hashbang/stack/internal/cluster"
	"github.com/hashbang/stack/internal/gitserve"
	"github.com/hashbang/stack/internal/image"
	"github.com/hashbang/stack/internal/source"
)

// Shell completion (`source <(stack completion bash)`): cobra's completion
// command asks these for the names a positional argument can take, each
// read from the repository's own files by the package that owns them. A
// repository that cannot be read completes nothing, quietly.

// completeNames completes the first max positional arguments (max < 0:
// every one) from names(), leaving out those already given; file names
// too when files is true.
func completeNames(max int, files bool, names func() ([]cobra.Completion, error)) cobra.CompletionFunc {
	return func(_ *cobra.Command, args []string, toComplete string) ([]cobra.Completion, cobra.ShellCompDirective) {
		directive := cobra.ShellCompDirectiveNoFileComp
		if files {
			directive = cobra.ShellCompDirectiveDefault
		}
		if max >= 0 && len(args) >= max {
			return nil, cobra.ShellCompDirectiveNoFileComp
		}
		all, err := names()
		if err != nil {
			return nil, directive
		}
		var out []cobra.Completion
		for _, c := range all {
			name, _, _ := strings.Cut(c, "\t")
			if strings.HasPrefix(name, toComplete) && !slices.Contains(args, name) {
				out = append(out, c)
			}
		}
		return out, directive
	}
}

// completeEnvs completes environment names (infra/ENV/environment.yaml).
func completeEnvs(g *globals, max int) cobra.CompletionFunc {
	return completeNames(max, false, func() ([]cobra.Completion, error) {
		ws, err := g.workspace()
		if err != nil {
			return nil, err
		}
		return cluster.Names(ws)
	})
}

// completeImages completes image names (images/NAME/image.yaml), and file
// names when files is true (stack audit takes layouts and tarballs too).
func completeImages(g *globals, files bool) cobra.CompletionFunc {
	return completeNames(-1, files, func() ([]cobra.Completion, error) {
		ws, err := g.workspace()
		if err != nil {
			return nil, err
		}
		return image.Names(ws.Path("images"))
	})
}

// completeSources completes source names (config/sources.yaml), with
// their kind and version.
func completeSources(g *globals) cobra.CompletionFunc {
	return completeNames(-1, false, func() ([]cobra.Completion, error) {
		ws, err := g.workspace()
		if err != nil {
			return nil, err
		}
		cfg, err := source.Load(ws.Sources())
		if err != nil {
			return nil, err
		}
		var out []cobra.Completion
		for _, s := range cfg.Sources {
			out = append(out, cobra.CompletionWithDesc(s.Name, string(s.Kind)+" "+s.Version))
		}
		return out, nil
	})
}

// completeJobs completes CI job ids of the data directory, newest first,
// with their pipeline and state.
func completeJobs(dataDir func() (string, error)) cobra.CompletionFunc {
	return completeNames(1, false, func() ([]cobra.Completion, error) {
		dir, err := dataDir()
		if err != nil {
			return nil, err
		}
		jobs, err := ci.List(dir)
		if err != nil {
			return nil, err
		}
		var out []cobra.Completion
		for i := len(jobs) - 1; i >= 0; i-- {
			j := jobs[i]
			out = append(out, cobra.CompletionWithDesc(j.ID, j.Pipeline+" "+string(j.State)))
		}
		return out, nil
	})
}

// completeRepos completes the names of the repositories stack serve hosts.
func completeRepos(dataDir func() (string, error)) cobra.CompletionFunc {
	return completeNames(1, false, func() ([]cobra.Completion, error) {
		dir, err := dataDir()
		if err != nil {
			return nil, err
		}
		repos, err := gitserve.List(dir)
		if err != nil {
			return nil, err
		}
		var out []cobra.Completion
		for _, r := range repos {
			out = append(out, r.Name)
		}
		return out, nil
	})
}
