package main

import (
	"errors"
	"fmt"
	"os"

	"github.com/spf13/cobra"

	"github.com/hashbang/stack/internal/build"
	"github.com/hashbang/stack/internal/image"
	"github.com/hashbang/stack/internal/ui"
)

func newBuildCmd(g *globals) *cobra.Command {
	var tar string
	var check bool
	cmd := &cobra.Command{
		Use:               "build [NAME...]",
		ValidArgsFunction: completeImages(g, false),
		Short:             "Build images FROM scratch, deterministically, and record their digests",
		Long: `build builds the images defined under images/ (all when no NAME is given): each
binary statically with the toolchain pinned in config/sources.yaml (Go modules of
sources offline, from their locks), then the image FROM scratch with normalized
layers and one epoch (images/SOURCE_DATE_EPOCH) for every timestamp. Each image
is audited; one that fails is not recorded. Images go into the cache's OCI layout
(CACHE/oci) and their digests into images/images.lock. Binaries and images whose
inputs did not change are taken from the cache without rebuilding.

It prints NAME@DIGEST per image; --output json (or yaml) prints a list of
{name, digest, size, cached}. With --check it exits 2 when a digest differs
from the committed images/images.lock (1 is for errors).`,
		RunE: func(cmd *cobra.Command, args []string) error {
			format, err := g.format()
			if err != nil {
				return err
			}
			if tar != "" && len(args) != 1 {
				return errors.New("--tar writes one image: name exactly one")
			}
			ws, err := g.workspace()
			if err != nil {
				return err
			}
			committed, err := image.ReadLock(ws.Path("images"))
			if err != nil {
				return err
			}
			bins, err := build.ForWorkspace(ws, progress(cmd))
			if err != nil {
				return err
			}
			res, err := image.NewBuilder(ws, bins, progress(cmd)).Build(cmd.Context(), args)
			if err != nil {
				return err
			}
			if tar != "" {
				if err := image.WriteTarball(tar, res[0].Name, res[0].Image); err != nil {
					return err
				}
			}
			if format.Data() {
				err = ui.Write(stdout(cmd), format, res)
			} else {
				for _, r := range res {
					fmt.Fprintf(stdout(cmd), "%s@%s\n", r.Name, r.Digest)
				}
			}
			if err != nil {
				return err
			}
			if check {
				if err := image.Check(committed, res); err != nil {
					return differences(err)
				}
			}
			return nil
		},
	}
	cmd.Flags().StringVar(&tar, "tar", "", "also write the (single) image as an OCI layout tarball to `FILE`")
	cmd.Flags().BoolVar(&check, "check", false, "fail if a digest differs from the committed images/images.lock (for CI)")
	return cmd
}

func newReproCmd(g *globals) *cobra.Command {
	return &cobra.Command{
		Use:               "repro NAME...",
		ValidArgsFunction: completeImages(g, false),
		Short:             "Build images twice in isolation and fail, with a file-by-file diff, if they differ",
		Long: `repro is the reproducibility gate: for each NAME it copies the repository to two
temporary directories at different paths and builds the image in each with this
stack program, under different time zones, umasks and clock times, with fresh
Go build and image caches (only the verified source downloads are shared). It exits
2 when the two digests differ, printing every differing file (name, mode, size,
hash) and config field, and 1 on an error. It also says whether the result matches
images/images.lock.`,
		Args: cobra.MinimumNArgs(1),
		RunE: func(cmd *cobra.Command, args []string) error {
			format, ws, err := g.open()
			if err != nil {
				return err
			}
			exe, err := os.Executable()
			if err != nil {
				return err
			}
			var results []*image.ReproResult
			var failed []string
			for _, name := range args {
				r, err := image.Repro(cmd.Context(), ws, exe, name, progress(cmd))
				if err != nil {
					return err
				}
				results = append(results, r)
				if !r.Same {
					failed = append(failed, name)
				}
				if format == ui.Text {
					printRepro(cmd, r)
				}
			}
			if format.Data() {
				if err := ui.Write(stdout(cmd), format, results); err != nil {
					return err
				}
			}
			if len(failed) > 0 {
				return differences(fmt.Errorf("repro: %d of %d images are not reproducible: %v", len(failed), len(args), failed))
			}
			return nil
		},
	}
}

func printRepro(cmd *cobra.Command, r *image.ReproResult) {
	w := stdout(cmd)
	if r.Same {
		fmt.Fprintf(w, "%s: reproducible, %s\n", r.Name, r.Builds[0].Digest)
	} else {
		fmt.Fprintf(w, "%s: NOT reproducible: %s vs %s\n%s", r.Name, r.Builds[0].Digest, r.Builds[1].Digest, r.Diff)
	}
	switch {
	case r.Locked == "":
		fmt.Fprintf(w, "%s: not in images/images.lock\n", r.Name)
	case !r.MatchLock:
		fmt.Fprintf(w, "%s: differs from images/images.lock (%s): run stack build and commit the lock\n", r.Name, r.Locked)
	}
}
