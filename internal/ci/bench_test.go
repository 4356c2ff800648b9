package ci

import (
	"io"
	"log/slog"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"testing"
	"time"
)

// BenchmarkPushToJobStart measures what a pusher waits for: how long
// Enqueue takes (the post-receive hook runs it before `git push` returns)
// and the time from Enqueue returning to the job's script starting (the
// runner's pick-up at its default 200ms poll, plus the checkout and the
// sandbox). It reports them as enqueue-ms and start-ms.
func BenchmarkPushToJobStart(b *testing.B) {
	g := newGitRepo(b)
	data := b.TempDir()
	c := g.commit("main", map[string]string{
		"ci/pipelines.yaml": pipelines("bench"),
		"ci/bench":          "#!/bin/sh\necho \"START $(date +%s%N)\"\n",
	})
	r := &Runner{DataDir: data, Logger: slog.New(slog.NewTextHandler(io.Discard, nil))}
	r.defaults() // the default poll, as stack serve runs it
	stop := startRunner(b, r)
	defer stop()
	var enqueue, start time.Duration
	b.ResetTimer()
	for i := 0; i < b.N; i++ {
		t0 := time.Now()
		jobs, err := Enqueue(data, Event{Repo: "repo", RepoPath: g.bare, Ref: "refs/heads/main", New: c, Trigger: Push})
		t1 := time.Now()
		if err != nil || len(jobs) != 1 {
			b.Fatalf("Enqueue: %v, %v", jobs, err)
		}
		enqueue += t1.Sub(t0)
		log := filepath.Join(data, "ci", "jobs", jobs[0].ID, "log")
		var ns int64
		for end := time.Now().Add(30 * time.Second); ; time.Sleep(time.Millisecond) {
			s, _ := os.ReadFile(log)
			if _, stamp, ok := strings.Cut(string(s), "\nSTART "); ok && strings.Contains(stamp, "\n") {
				stamp, _, _ = strings.Cut(stamp, "\n")
				ns, _ = strconv.ParseInt(stamp, 10, 64)
				break
			}
			if time.Now().After(end) {
				b.Fatalf("job %s did not start in 30s", jobs[0].ID)
			}
		}
		start += time.Unix(0, ns).Sub(t1)
		for j, _ := Get(data, jobs[0].ID); !j.State.Final(); j, _ = Get(data, jobs[0].ID) {
			time.Sleep(time.Millisecond)
		}
	}
	b.ReportMetric(float64(enqueue.Microseconds())/1000/float64(b.N), "enqueue-ms")
	b.ReportMetric(float64(start.Microseconds())/1000/float64(b.N), "start-ms")
}
