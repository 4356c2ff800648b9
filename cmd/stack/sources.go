package main

import (
	"fmt"
	"strings"

	"github.com/spf13/cobra"

	"github.com/hashbang/stack/internal/source"
	"github.com/hashbang/stack/internal/ui"
	"github.com/hashbang/stack/internal/workspace"
)

func newSourcesCmd(g *globals) *cobra.Command {
	cmd := &cobra.Command{
		Use:   "sources",
		Short: "List, fetch, verify and update the hash-locked upstream sources",
		Long: `Every upstream source of the stack is named in config/sources.yaml with an
exact version and the hash that pins its content. Go modules also have their whole
dependency graph locked in config/locks/NAME.mod and NAME.sum.`,
	}
	cmd.AddCommand(newSourcesListCmd(g), newSourcesVerifyCmd(g), newSourcesFetchCmd(g), newSourcesUpdateCmd(g))
	return cmd
}

// loadSources finds the workspace and parses its sources file.
func loadSources(g *globals) (*workspace.Workspace, *source.Config, error) {
	ws, err := g.workspace()
	if err != nil {
		return nil, nil, err
	}
	cfg, err := source.Load(ws.Sources())
	return ws, cfg, err
}

// selectSources is loadSources, then the named sources (all when none).
func selectSources(g *globals, names []string) (*workspace.Workspace, []*source.Source, error) {
	ws, cfg, err := loadSources(g)
	if err != nil {
		return nil, nil, err
	}
	srcs, err := cfg.Select(names)
	return ws, srcs, err
}

func newSourcesListCmd(g *globals) *cobra.Command {
	return &cobra.Command{
		Use:   "list",
		Short: "Show every source: name, kind, version, hash and whether it is cached",
		Args:  cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			format, err := g.format()
			if err != nil {
				return err
			}
			ws, cfg, err := loadSources(g)
			if err != nil {
				return err
			}
			type row struct {
				*source.Source
				Ref    string `json:"ref"`
				Cached bool   `json:"cached"`
			}
			var rows []row
			var table [][]string
			for _, s := range cfg.Sources {
				r := row{Source: s, Ref: s.Ref(), Cached: source.IsCached(ws, s)}
				rows = append(rows, r)
				table = append(table, []string{s.Name, string(s.Kind), s.Version, shortHash(s.Hash), yesNo(r.Cached)})
			}
			if format.Data() {
				return ui.Write(stdout(cmd), format, rows)
			}
			return ui.Table(stdout(cmd), []string{"NAME", "KIND", "VERSION", "HASH", "CACHED"}, table)
		},
	}
}

func newSourcesVerifyCmd(g *globals) *cobra.Command {
	return &cobra.Command{
		Use:               "verify [NAME...]",
		ValidArgsFunction: completeSources(g),
		Short:             "Check, offline, every lock and every cached artifact against sources.yaml",
		Long: `verify works offline. It checks that each Go module source's lock belongs to its
entry in sources.yaml, and hashes every cached artifact (module zips, go.mod files,
extracted module trees, .debs, archives; in the local and the in-repo cache) against
its pin. It lists every mismatch and exits non-zero if there is any. Sources that are
not cached are not errors.`,
		RunE: func(cmd *cobra.Command, args []string) error {
			format, err := g.format()
			if err != nil {
				return err
			}
			ws, srcs, err := selectSources(g, args)
			if err != nil {
				return err
			}
			res := source.Verify(cmd.Context(), ws, srcs)
			var problems []source.Problem
			artifacts := 0
			for _, st := range res {
				problems = append(problems, st.Problems...)
				artifacts += st.Artifacts
			}
			if format.Data() {
				if err := ui.Write(stdout(cmd), format, res); err != nil {
					return err
				}
			} else {
				for _, p := range problems {
					fmt.Fprintln(stdout(cmd), p)
				}
			}
			if len(problems) > 0 {
				return fmt.Errorf("verify: %d problem(s) in %d source(s)", len(problems), countSources(problems))
			}
			if format == ui.Text {
				fmt.Fprintf(stdout(cmd), "ok: %d sources, %d cached artifacts verified\n", len(srcs), artifacts)
			}
			return nil
		},
	}
}

func newSourcesFetchCmd(g *globals) *cobra.Command {
	return &cobra.Command{
		Use:               "fetch [NAME...]",
		ValidArgsFunction: completeSources(g),
		Short:             "Download sources into the cache, verifying each before it is stored",
		Long: `fetch downloads the named sources (all when none) into the cache: Go modules, with
every module of their lock, through the go command and its proxy settings; Debian
packages with apt-get download; archives over HTTP. Each download is verified against
its pin before it is stored; a mismatch leaves the cache as it was. Artifacts kept in
the in-repo cache (cache/) are taken from there first.`,
		RunE: func(cmd *cobra.Command, args []string) error {
			format, err := g.format()
			if err != nil {
				return err
			}
			ws, srcs, err := selectSources(g, args)
			if err != nil {
				return err
			}
			res, err := source.NewFetcher(ws, progress(cmd)).Fetch(cmd.Context(), srcs)
			if format.Data() {
				if werr := ui.Write(stdout(cmd), format, res); err == nil {
					err = werr
				}
			}
			return err
		},
	}
}

func newSourcesUpdateCmd(g *globals) *cobra.Command {
	var version string
	cmd := &cobra.Command{
		Use:               "update [NAME...]",
		ValidArgsFunction: completeSources(g),
		Short:             "Move sources to their newest release (or --version) and relock them",
		Long: `update resolves the newest release of each named source (all when none) within its
track, or the exact --version given, computes its hash and, for Go modules, locks its
whole dependency graph; then it rewrites sources.yaml in place, keeping comments and
order, writes the locks, and prints what changed. It needs the network. Nothing is
written unless every named source updated. Running it on a source already at its
newest release relocks it: a lock that comes out different is printed as a change
of its file (sha256 before and after), one that comes out the same is left alone, so
"no changes" means nothing was written. Adding an entry without a hash and running
update fills the hash in.`,
		RunE: func(cmd *cobra.Command, args []string) error {
			format, ws, err := g.open()
			if err != nil {
				return err
			}
			changes, err := source.NewUpdater(ws, progress(cmd)).Update(cmd.Context(), args, version)
			if err != nil {
				return err
			}
			if format.Data() {
				return ui.Write(stdout(cmd), format, changes)
			}
			if len(changes) == 0 {
				fmt.Fprintln(stdout(cmd), "no changes: every source is at its newest release")
			}
			for _, c := range changes {
				from, to := c.Old, c.New
				if strings.Contains(c.Field, "/") { // a lock file: its sha256
					to = shortHash(to)
					if from != "" {
						from = shortHash(from)
					}
				}
				fmt.Fprintf(stdout(cmd), "%s: %s %s -> %s\n", c.Source, c.Field, orNone(from), to)
			}
			return nil
		},
	}
	cmd.Flags().StringVar(&version, "version", "", "exact version to move the (single) named source to")
	return cmd
}

// shortHash shortens a pin for a table to its algorithm and the first 12
// characters of its value: ALGO:HEX (sha256:, h1:) or ALGO-BASE64 (npm's
// sha512- integrity); "-" for none.
func shortHash(h string) string {
	if h == "" {
		return "-"
	}
	i := strings.IndexAny(h, ":-")
	if len(h)-(i+1) > 12 {
		return h[:i+1+12] + "…"
	}
	return h
}

func yesNo(b bool) string {
	if b {
		return "yes"
	}
	return "no"
}

func orNone(s string) string {
	if s == "" {
		return "(none)"
	}
	return s
}

func countSources(ps []source.Problem) int {
	seen := map[string]bool{}
	for _, p := range ps {
		seen[p.Source] = true
	}
	return len(seen)
}
