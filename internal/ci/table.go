package ci

import (
	"io"
	"strings"
	"time"

	"github.com/hashbang/stack/internal/ui"
)

// WriteTable writes jobs as the table `stack ci list` and `ssh … ci list`
// show: id, pipeline, repository, ref, commit, state, start, duration.
func WriteTable(w io.Writer, jobs []*Job, now time.Time) error {
	rows := make([][]string, 0, len(jobs))
	for _, j := range jobs {
		started, took := "-", "-"
		if !j.Started.IsZero() {
			started = j.Started.Local().Format("2006-01-02 15:04:05")
			took = j.Duration(now).Round(100 * time.Millisecond).String()
		}
		commit := j.Commit
		if len(commit) > 12 {
			commit = commit[:12]
		}
		ref := j.Ref
		for _, p := range []string{"refs/heads/", "refs/tags/"} {
			ref = strings.TrimPrefix(ref, p)
		}
		rows = append(rows, []string{j.ID, j.Pipeline, j.Repo, ref, commit, string(j.State), started, took})
	}
	return ui.Table(w, []string{"ID", "PIPELINE", "REPO", "REF", "COMMIT", "STATE", "STARTED", "DURATION"}, rows)
}
