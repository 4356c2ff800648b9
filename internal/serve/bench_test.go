package serve

import (
	"fmt"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/hashbang/stack/internal/ci"
)

// BenchmarkPushToJobStart measures, through the real daemon, the time from
// `git push` returning to the pushed pipeline's script running (the script
// prints the clock as its first act). It also reports how long the push
// itself took, its hooks included.
func BenchmarkPushToJobStart(b *testing.B) {
	d := newDaemon(b)
	d.createRepo("stack")
	work := filepath.Join(d.dir, "work")
	d.git(d.dir, "init", "-q", "-b", "main", work)
	d.git(work, "remote", "add", "origin", d.url("stack"))
	writeFile(b, filepath.Join(work, "ci", "pipelines.yaml"), "pipelines:\n  start:\n    run: ci/start\n    on:\n      push: [\"refs/heads/*\"]\n")
	writeFile(b, filepath.Join(work, "ci", "start"), "#!/bin/sh\necho START $(date +%s%N)\n")
	if err := os.Chmod(filepath.Join(work, "ci", "start"), 0o755); err != nil {
		b.Fatal(err)
	}
	d.start()
	var toStart, push time.Duration
	b.ResetTimer()
	for i := range b.N {
		writeFile(b, filepath.Join(work, "n"), strconv.Itoa(i))
		d.git(work, "add", "-A")
		d.git(work, "commit", "-q", "-m", fmt.Sprint("push ", i))
		t0 := time.Now()
		d.git(work, "push", "-q", "origin", "HEAD:refs/heads/main")
		returned := time.Now()
		push += returned.Sub(t0)
		jobs := d.waitJobs("the job", time.Minute, func(jobs []*ci.Job) bool {
			return len(jobs) == i+1 && jobs[i].State.Final()
		})
		log, err := os.ReadFile(filepath.Join(d.data, "ci", "jobs", jobs[i].ID, "log"))
		if err != nil {
			b.Fatal(err)
		}
		_, ns, ok := strings.Cut(string(log), "\nSTART ")
		ns, _, _ = strings.Cut(ns, "\n")
		n, err := strconv.ParseInt(ns, 10, 64)
		if !ok || err != nil {
			b.Fatalf("job log %q", log)
		}
		toStart += time.Unix(0, n).Sub(returned)
	}
	b.StopTimer()
	b.ReportMetric(float64(toStart.Microseconds())/1000/float64(b.N), "ms-push-to-start")
	b.ReportMetric(float64(push.Microseconds())/1000/float64(b.N), "ms-push")
}

// BenchmarkIdleRSS reports the resident memory of an idle stack serve
// (VmRSS of /proc/PID/status) serving one repository.
func BenchmarkIdleRSS(b *testing.B) {
	var rss float64
	for range b.N {
		d := newDaemon(b)
		d.createRepo("stack")
		d.start()
		time.Sleep(2 * time.Second)
		status, err := os.ReadFile(fmt.Sprintf("/proc/%d/status", d.cmd.Process.Pid))
		if err != nil {
			b.Fatal(err)
		}
		for _, line := range strings.Split(string(status), "\n") {
			if v, ok := strings.CutPrefix(line, "VmRSS:"); ok {
				kb, err := strconv.ParseFloat(strings.TrimSuffix(strings.TrimSpace(v), " kB"), 64)
				if err != nil {
					b.Fatalf("VmRSS %q", v)
				}
				rss += kb
			}
		}
		d.stop()
	}
	b.ReportMetric(rss/1024/float64(b.N), "MiB-VmRSS")
}
