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
		rows = append(rows, []string{j.ID, j.Pipeline, j.Repo, ShortRef(j.Ref), commit, string(j.State), started, took})
	}
	return ui.Table(w, []string{"ID", "PIPELINE", "REPO", "REF", "COMMIT", "STATE", "STARTED", "DURATION"}, rows)
}

// ShortRef is a ref as people write it: a branch or tag without its
// refs/heads/ or refs/tags/ prefix, any other ref whole.
func ShortRef(ref string) string {
	for _, p := range []string{"refs/heads/", "refs/tags/"} {
		if s, ok := strings.CutPrefix(ref, p); ok {
			return s
		}
	}
	return ref
}
