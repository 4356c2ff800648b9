package main

import (
	"context"
	"errors"
	"fmt"
	"slices"
	"strings"
	"time"

	"github.com/spf13/cobra"

	"github.com/hashbang/stack/internal/ci"
	"github.com/hashbang/stack/internal/gitserve"
	"github.com/hashbang/stack/internal/ui"
)

func newCICmd(g *globals) *cobra.Command {
	cmd := &cobra.Command{
		Use:   "ci",
		Short: "List, follow and start the CI jobs of the repositories `stack serve` hosts",
		Long: `Each repository declares its pipelines in ci/pipelines.yaml: a script to run,
the pushed refs and the timer that start it, and a timeout.

  pipelines:
    test:
      run: ci/test                 # an executable in the repository
      on:
        push: ["refs/heads/*"]     # ref globs; * matches anything, / included
        timer: "@every 1h"         # or a 5-field cron line, in UTC
      timeout: 30m                 # default 30m, at most 24h

A push queues the pipelines whose patterns match the ref; timers fire on the
default branch; ` + "`stack ci run`" + ` starts one by hand. Each job runs in a clean
checkout of its exact commit with CI=true and STACK_CI_REPO, STACK_CI_REF,
STACK_CI_COMMIT, STACK_CI_JOB, STACK_CI_PIPELINE, STACK_CI_TRIGGER and
STACK_CI_TOKEN set, and a private HOME and TMPDIR. It is sandboxed: as a user
of its own, its processes all ended with it, it sees the system directories
read-only and its work directory, nothing of the data directory.

These commands work on the data directory directly, whether or not
` + "`stack serve`" + ` runs; jobs queued while it is down run when it starts.`,
	}
	dataDir := g.dataDir
	cmd.AddCommand(newCIListCmd(g, dataDir), newCILogsCmd(dataDir), newCIRunCmd(g, dataDir))
	return cmd
}

func newCIListCmd(g *globals, dataDir func() (string, error)) *cobra.Command {
	var limit int
	var state, pipeline string
	cmd := &cobra.Command{
		Use:   "list",
		Short: "List CI jobs, newest first",
		Example: `  stack ci list
  stack ci list --state failed --limit 0
  stack ci list -o json`,
		Args: cobra.NoArgs,
		RunE: func(cmd *cobra.Command, args []string) error {
			format, err := g.format()
			if err != nil {
				return err
			}
			if state != "" && !slices.Contains(jobStates, ci.State(state)) {
				return fmt.Errorf("unknown state %q: use one of %s", state, joinStates())
			}
			if limit < 0 {
				return fmt.Errorf("--limit %d: give a number of jobs, or 0 for all", limit)
			}
			dir, err := dataDir()
			if err != nil {
				return err
			}
			jobs, err := ci.List(dir)
			if err != nil {
				return err
			}
			slices.Reverse(jobs)
			jobs = slices.DeleteFunc(jobs, func(j *ci.Job) bool {
				return state != "" && j.State != ci.State(state) || pipeline != "" && j.Pipeline != pipeline
			})
			if limit > 0 && len(jobs) > limit {
				jobs = jobs[:limit]
			}
			if format.Data() {
				return ui.Write(stdout(cmd), format, jobs)
			}
			return ci.WriteTable(stdout(cmd), jobs, time.Now())
		},
	}
	cmd.Flags().IntVarP(&limit, "limit", "n", 20, "show at most this many jobs (0: all)")
	cmd.Flags().StringVar(&state, "state", "", "show only jobs in this state ("+joinStates()+")")
	cmd.Flags().StringVar(&pipeline, "pipeline", "", "show only jobs of this pipeline")
	return cmd
}

var jobStates = []ci.State{ci.Queued, ci.Running, ci.Succeeded, ci.Failed, ci.TimedOut, ci.Superseded, ci.Interrupted}

func joinStates() string {
	s := make([]string, len(jobStates))
	for i, st := range jobStates {
		s[i] = string(st)
	}
	return strings.Join(s, ", ")
}

func newCILogsCmd(dataDir func() (string, error)) *cobra.Command {
	var follow bool
	cmd := &cobra.Command{
		Use:               "logs JOB",
		ValidArgsFunction: completeJobs(dataDir),
		Short:             "Print a job's output; with -f, follow it until the job ends",
		Long: `Print the combined output of a CI job. JOB is an id from ` + "`stack ci list`" + `, or
just its number (the digits after the last dash). With -f, keep printing what
the job writes until it ends.`,
		Example: `  stack ci logs 42
  stack ci logs -f 20260102-150405-000042`,
		Args: cobra.ExactArgs(1),
		RunE: func(cmd *cobra.Command, args []string) error {
			dir, err := dataDir()
			if err != nil {
				return err
			}
			if follow {
				if j, err := ci.Get(dir, args[0]); err == nil && j.State == ci.Queued && !ci.RunnerAlive(dir) {
					fmt.Fprintf(cmd.ErrOrStderr(), "job %s is queued and no runner is alive: it starts with `stack serve`\n", j.ID)
				}
			}
			_, err = ci.Logs(cmd.Context(), dir, args[0], stdout(cmd), follow, 0)
			if errors.Is(err, context.Canceled) {
				return nil // interrupted by the user
			}
			return err
		},
	}
	cmd.Flags().BoolVarP(&follow, "follow", "f", false, "keep printing the output until the job ends")
	return cmd
}

func newCIRunCmd(g *globals, dataDir func() (string, error)) *cobra.Command {
	var repoName string
	cmd := &cobra.Command{
		Use:   "run PIPELINE [REF]",
		Short: "Queue a pipeline by hand on a branch or tag (default: the default branch)",
		Long: `Queue PIPELINE at the commit REF points to now in a repository served by
stack serve. REF is a branch or tag (main, v1.2, refs/heads/main); without it,
the repository's default branch. The pipeline must be declared in
ci/pipelines.yaml at that commit; its on: triggers do not matter. A job of the
same pipeline and ref still waiting in the queue is superseded.`,
		Example: `  stack ci run test
  stack ci run deploy v1.2 --repo-name infra/dns`,
		Args: cobra.RangeArgs(1, 2),
		RunE: func(cmd *cobra.Command, args []string) error {
			format, err := g.format()
			if err != nil {
				return err
			}
			dir, err := dataDir()
			if err != nil {
				return err
			}
			repo, err := pickRepo(dir, repoName)
			if err != nil {
				return err
			}
			rev := ""
			if len(args) == 2 {
				rev = args[1]
			}
			ref, commit, err := ci.ResolveRef(cmd.Context(), repo.Path, rev)
			if err != nil {
				return err
			}
			jobs, err := ci.Enqueue(dir, ci.Event{
				Repo: repo.Name, RepoPath: repo.Path, Ref: ref, New: commit,
				Trigger: ci.Manual, Pipeline: args[0],
			})
			if err != nil {
				return err
			}
			if !ci.RunnerAlive(dir) {
				fmt.Fprintln(cmd.ErrOrStderr(), "no runner is alive: the job starts with `stack serve`")
			}
			j := jobs[0]
			if format.Data() {
				return ui.Write(stdout(cmd), format, j)
			}
			_, err = fmt.Fprintf(stdout(cmd), "queued %s: %s of %s at %s %s\n", j.ID, j.Pipeline, j.Repo, ci.ShortRef(j.Ref), short(j.Commit))
			return err
		},
	}
	cmd.Flags().StringVar(&repoName, "repo-name", "", "the served repository (NAME or GROUP/NAME; default: the only one)")
	return cmd
}

// pickRepo finds the served repository called name, or the only one.
func pickRepo(dataDir, name string) (ci.Repo, error) {
	if name != "" {
		return ci.ServedRepo(dataDir, name)
	}
	repos, err := ci.ServedRepos(dataDir)()
	if err != nil {
		return ci.Repo{}, err
	}
	switch len(repos) {
	case 0:
		return ci.Repo{}, fmt.Errorf("no repositories in %s: create one with `stack repo create NAME` and push", gitserve.RepoRoot(dataDir))
	case 1:
		return repos[0], nil
	}
	names := make([]string, len(repos))
	for i, r := range repos {
		names[i] = r.Name
	}
	return ci.Repo{}, fmt.Errorf("%d repositories are served: give --repo-name (one of %s)", len(repos), strings.Join(names, ", "))
}

func short(commit string) string {
	if len(commit) > 12 {
		return commit[:12]
	}
	return commit
}
