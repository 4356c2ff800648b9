package main

import (
	"fmt"
	"os"
	"strings"

	"github.com/spf13/cobra"

	"github.com/hashbang/stack/internal/image"
	"github.com/hashbang/stack/internal/ui"
)

// auditResult is one audited image, as --output json and yaml print it.
type auditResult struct {
	Image    string          `json:"image"`
	Digest   string          `json:"digest"`
	Findings []image.Finding `json:"findings"`
}

func newAuditCmd(g *globals) *cobra.Command {
	return &cobra.Command{
		Use:               "audit IMAGE|DIR|FILE...",
		ValidArgsFunction: completeImages(g, true),
		Short:             "Check that images hold only static binaries, no shell, and run as non-root",
		Long: `audit checks each image against the stack's promises and fails, with the
reason per finding, when an image holds a dynamically linked ELF file, a
shell or package manager, a setuid or setgid file, a world-writable path
other than a sticky /tmp, runs as root, or has layers that stack build did
not make (foreign, non-OCI, or missing from the image's history).

An argument is an image name built into the cache (stack build NAME), an OCI
layout directory (all its images, or DIR:NAME for one), or an OCI tarball
(FILE or FILE:NAME).`,
		Example: `  stack audit health
  stack audit .cache/oci:pause
  stack audit -o json health.tar`,
		Args: cobra.MinimumNArgs(1),
		RunE: func(cmd *cobra.Command, args []string) error {
			format, err := g.format()
			if err != nil {
				return err
			}
			var results []auditResult
			for _, ref := range args {
				cacheLayout, err := auditCacheLayout(g, ref)
				if err != nil {
					return err
				}
				imgs, err := image.OpenAll(cacheLayout, ref)
				if err != nil {
					return fmt.Errorf("audit %s: %w", ref, err)
				}
				for _, n := range imgs {
					d, err := n.Image.Digest()
					if err != nil {
						return fmt.Errorf("audit %s: %w", n.Name, err)
					}
					fs, err := image.Audit(n.Image)
					if err != nil {
						return fmt.Errorf("audit %s: %w", n.Name, err)
					}
					if fs == nil {
						fs = []image.Finding{}
					}
					results = append(results, auditResult{Image: n.Name, Digest: d.String(), Findings: fs})
				}
			}
			if err := printAudit(cmd, format, results); err != nil {
				return err
			}
			var failed, findings int
			for _, r := range results {
				if len(r.Findings) > 0 {
					failed++
					findings += len(r.Findings)
				}
			}
			if failed > 0 {
				return fmt.Errorf("audit failed: %d findings in %d of %d images", findings, failed, len(results))
			}
			return nil
		},
	}
}

// auditCacheLayout returns the cache's OCI layout when ref may be an image
// name; a ref that is a path needs no repository.
func auditCacheLayout(g *globals, ref string) (string, error) {
	loc := ref
	if i := strings.LastIndexByte(ref, ':'); i > 0 {
		if _, err := os.Stat(ref); err != nil {
			loc = ref[:i]
		}
	}
	if _, err := os.Stat(loc); err == nil {
		return "", nil
	}
	ws, err := g.workspace()
	if err != nil {
		return "", fmt.Errorf("audit %s: not a file or directory, and no repository to look the name up in: %w", ref, err)
	}
	return ws.OCI(), nil
}

func printAudit(cmd *cobra.Command, format ui.Format, results []auditResult) error {
	w := stdout(cmd)
	if format.Data() {
		return ui.Write(w, format, results)
	}
	var rows [][]string
	for _, r := range results {
		if len(r.Findings) == 0 {
			fmt.Fprintf(w, "%s@%s: passes audit\n", r.Image, r.Digest)
		}
		for _, f := range r.Findings {
			rows = append(rows, []string{r.Image, f.Path, f.Reason})
		}
	}
	if len(rows) == 0 {
		return nil
	}
	return ui.Table(w, []string{"IMAGE", "PATH", "FINDING"}, rows)
}
