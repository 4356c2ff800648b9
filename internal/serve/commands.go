package serve

import (
	"context"
	"errors"
	"flag"
	"fmt"
	"io"
	"slices"
	"time"

	"github.com/hashbang/stack/internal/ci"
	"github.com/hashbang/stack/internal/gitserve"
	"github.com/hashbang/stack/internal/ui"
)

// The read-only commands the git server offers beside git, Soft Serve
// style, so that a team sees CI without a shell on the server:
//
//	ssh -p 2222 git@HOST repo list            the repositories the key may read
//	ssh -p 2222 git@HOST ci list [-n N]       their CI jobs, newest first
//	ssh -p 2222 git@HOST ci logs [-f] JOB     a job's log; -f follows it
//
// A key sees only what config/git.yaml lets it read: a job of another
// repository is "no such job", as if it did not exist.
func (s *Server) commands(extra map[string]gitserve.CommandFunc) map[string]gitserve.CommandFunc {
	cmds := map[string]gitserve.CommandFunc{"repo": s.repoCommand, "ci": s.ciCommand}
	for name, f := range extra {
		cmds[name] = f
	}
	return cmds
}

// usage ends a command with a usage line.
func usage(sess *gitserve.Session, line string) int {
	fmt.Fprintf(sess.Stderr, "stack: usage: %s\n", line)
	return 2
}

func (s *Server) repoCommand(_ context.Context, sess *gitserve.Session) int {
	if len(sess.Args) != 1 || sess.Args[0] != "list" {
		return usage(sess, "repo list")
	}
	repos, err := gitserve.List(s.cfg.DataDir)
	if err != nil {
		fmt.Fprintf(sess.Stderr, "stack: %v\n", err)
		return 1
	}
	var rows [][]string
	for _, r := range repos {
		if sess.CanRead(r.Name) {
			rows = append(rows, []string{r.Name, r.Branch, shortID(r.Commit)})
		}
	}
	ui.Table(sess.Stdout, []string{"NAME", "HEAD", "COMMIT"}, rows)
	return 0
}

func (s *Server) ciCommand(ctx context.Context, sess *gitserve.Session) int {
	if len(sess.Args) == 0 {
		return usage(sess, "ci list [-n N] | ci logs [-f] JOB")
	}
	fs := flag.NewFlagSet("ci "+sess.Args[0], flag.ContinueOnError)
	fs.SetOutput(io.Discard)
	limit := fs.Int("n", 20, "")
	follow := fs.Bool("f", false, "")
	if err := fs.Parse(sess.Args[1:]); err != nil {
		return usage(sess, "ci list [-n N] | ci logs [-f] JOB")
	}
	jobs, err := ci.List(s.cfg.DataDir)
	if err != nil {
		fmt.Fprintf(sess.Stderr, "stack: %v\n", err)
		return 1
	}
	jobs = slices.DeleteFunc(jobs, func(j *ci.Job) bool { return !sess.CanRead(j.Repo) })
	switch sess.Args[0] {
	case "list":
		if fs.NArg() != 0 || *limit < 0 {
			return usage(sess, "ci list [-n N]")
		}
		slices.Reverse(jobs)
		if *limit > 0 && len(jobs) > *limit {
			jobs = jobs[:*limit]
		}
		ci.WriteTable(sess.Stdout, jobs, time.Now())
		return 0
	case "logs":
		if fs.NArg() != 1 {
			return usage(sess, "ci logs [-f] JOB")
		}
		j, err := ci.Get(s.cfg.DataDir, fs.Arg(0))
		if err != nil || !slices.ContainsFunc(jobs, func(k *ci.Job) bool { return k.ID == j.ID }) {
			fmt.Fprintf(sess.Stderr, "stack: no job %s that you may read: see `ci list`\n", fs.Arg(0))
			return 1
		}
		_, err = ci.Logs(ctx, s.cfg.DataDir, j.ID, sess.Stdout, *follow, 0)
		if err != nil && !errors.Is(err, context.Canceled) {
			fmt.Fprintf(sess.Stderr, "stack: %v\n", err)
			return 1
		}
		return 0
	}
	return usage(sess, "ci list [-n N] | ci logs [-f] JOB")
}
