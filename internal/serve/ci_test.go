package serve

import (
	"os"
	"path/filepath"
	"regexp"
	"strings"
	"testing"
	"time"

	"github.com/hashbang/stack/internal/ci"
)

// ciRepo makes the served repository "stack" and a clone of it holding
// pipelines and scripts (name → body), committed but not pushed.
func ciRepo(t *testing.T, d *daemon, pipelines string, scripts map[string]string) string {
	t.Helper()
	d.createRepo("stack")
	work := filepath.Join(d.dir, "work")
	d.git(d.dir, "init", "-q", "-b", "main", work)
	d.git(work, "remote", "add", "origin", d.url("stack"))
	writeFile(t, filepath.Join(work, "ci", "pipelines.yaml"), pipelines)
	for name, body := range scripts {
		p := filepath.Join(work, "ci", name)
		writeFile(t, p, "#!/bin/sh\n"+body)
		if err := os.Chmod(p, 0o755); err != nil {
			t.Fatal(err)
		}
	}
	d.git(work, "add", "-A")
	d.git(work, "commit", "-q", "-m", "pipelines")
	return work
}

var queuedRE = regexp.MustCompile(`remote: ci: queued job (\S+): (\S+) at ([0-9a-f]+)`)

// TestServeCIPush: a push queues the pipeline, the pusher sees the job id,
// the job runs in a checkout of the pushed commit and `stack ci logs` shows
// it.
func TestServeCIPush(t *testing.T) {
	d := newDaemon(t)
	work := ciRepo(t, d, "pipelines:\n  test:\n    run: ci/test\n    on:\n      push: [\"refs/heads/*\"]\n",
		map[string]string{"test": "echo \"checkout $(git rev-parse HEAD)\"\necho \"env $STACK_CI_COMMIT $STACK_CI_REF $STACK_REGISTRY\"\n"})
	d.start()
	head := d.git(work, "rev-parse", "HEAD")
	out := d.git(work, "push", "origin", "HEAD:refs/heads/main")
	m := queuedRE.FindStringSubmatch(out)
	if m == nil || m[2] != "test" || !strings.HasPrefix(head, m[3]) {
		t.Fatalf("push output does not name the queued job:\n%s", out)
	}
	id := m[1]
	if !strings.Contains(out, "remote: ci: follow it: ssh -p PORT git@HOST ci logs -f 1 ") {
		t.Errorf("push output does not say how to follow the job:\n%s", out)
	}
	d.waitJobs("the pushed job to end", 60*time.Second, func(jobs []*ci.Job) bool {
		return len(jobs) == 1 && jobs[0].State.Final()
	})
	j, err := ci.Get(d.data, id)
	if err != nil {
		t.Fatal(err)
	}
	if j.State != ci.Succeeded || j.Commit != head || j.Trigger != ci.Push {
		t.Fatalf("job %+v", j)
	}
	logs, err := d.stack("ci", "logs", "--data", d.data, id)
	if err != nil {
		t.Fatalf("stack ci logs: %v\n%s", err, logs)
	}
	for _, want := range []string{"checkout " + head, "env " + head + " refs/heads/main " + d.regAddr} {
		if !strings.Contains(logs, want) {
			t.Errorf("logs lack %q:\n%s", want, logs)
		}
	}
	list, err := d.stack("ci", "list", "--data", d.data)
	if err != nil || !strings.Contains(list, id) || !strings.Contains(list, "succeeded") {
		t.Errorf("stack ci list: %v\n%s", err, list)
	}
}

// TestServeCITimer: a timer pipeline on the default branch runs on its
// schedule with nobody pushing.
func TestServeCITimer(t *testing.T) {
	d := newDaemon(t)
	work := ciRepo(t, d, "pipelines:\n  tick:\n    run: ci/tick\n    on:\n      timer: \"@every 1s\"\n",
		map[string]string{"tick": "echo tick\n"})
	d.start()
	out := d.git(work, "push", "origin", "HEAD:refs/heads/main")
	if strings.Contains(out, "queued job") {
		t.Errorf("a timer-only pipeline was queued by a push:\n%s", out)
	}
	start := time.Now()
	jobs := d.waitJobs("two timer jobs to succeed", 60*time.Second, func(jobs []*ci.Job) bool {
		n := 0
		for _, j := range jobs {
			if j.Trigger == ci.Timer && j.State == ci.Succeeded {
				n++
			}
		}
		return n >= 2
	})
	t.Logf("%d timer jobs in %v", len(jobs), time.Since(start).Round(time.Millisecond))
	for _, j := range jobs {
		if j.Pipeline != "tick" || j.Ref != "refs/heads/main" {
			t.Errorf("unexpected job %+v", j)
		}
	}
}

// TestServeCIRestart kills stack serve with SIGKILL during a job: after a
// restart the job is interrupted (its processes gone), and a job queued
// while the daemon was down runs. Then SIGTERM during a job stops the daemon
// cleanly with the job interrupted and its processes gone.
func TestServeCIRestart(t *testing.T) {
	d := newDaemon(t)
	work := ciRepo(t, d, `pipelines:
  slow:
    run: ci/slow
    on:
      push: ["refs/heads/*"]
  fast:
    run: ci/fast
`, map[string]string{"slow": "echo started\nsleep 120\n", "fast": "echo fast done\n"})
	d.start()
	d.git(work, "push", "-q", "origin", "HEAD:refs/heads/main")
	running := func(jobs []*ci.Job) bool {
		return len(jobs) > 0 && jobs[len(jobs)-1].State == ci.Running && jobs[len(jobs)-1].PID > 0
	}
	jobs := d.waitJobs("the slow job to run", 60*time.Second, running)
	slow := jobs[0]
	if !waitLog(t, d.data, slow.ID, "started") {
		t.Fatal("slow job never started its script")
	}
	d.kill()

	// While the daemon is down, a job is queued by hand.
	out, err := d.stack("ci", "run", "--data", d.data, "fast", "main")
	if err != nil || !strings.Contains(out, "queued") {
		t.Fatalf("stack ci run: %v\n%s", err, out)
	}
	d.start()
	jobs = d.waitJobs("the interrupted and the queued job", 60*time.Second, func(jobs []*ci.Job) bool {
		return len(jobs) == 2 && jobs[0].State.Final() && jobs[1].State.Final()
	})
	if jobs[0].ID != slow.ID || jobs[0].State != ci.Interrupted {
		t.Errorf("slow job after the restart: %+v", jobs[0])
	}
	if jobs[1].Pipeline != "fast" || jobs[1].State != ci.Succeeded {
		t.Errorf("queued job after the restart: %+v", jobs[1])
	}
	if alive(slow.PID) {
		t.Errorf("the interrupted job's script (pid %d) still runs", slow.PID)
	}

	// SIGTERM during a job.
	writeFile(t, filepath.Join(work, "again"), "again\n")
	d.git(work, "add", "again")
	d.git(work, "commit", "-q", "-m", "again")
	d.git(work, "push", "-q", "origin", "HEAD:refs/heads/main")
	jobs = d.waitJobs("the second slow job to run", 60*time.Second, running)
	second := jobs[len(jobs)-1]
	waitLog(t, d.data, second.ID, "started")
	d.stop()
	if !d.cmd.ProcessState.Success() {
		t.Fatalf("stack serve exited with %v", d.cmd.ProcessState)
	}
	j, err := ci.Get(d.data, second.ID)
	if err != nil || j.State != ci.Interrupted {
		t.Errorf("job after SIGTERM: %+v %v", j, err)
	}
	if alive(second.PID) {
		t.Errorf("the job's script (pid %d) outlived stack serve", second.PID)
	}
	if ci.RunnerAlive(d.data) {
		t.Error("a runner is still alive after stack serve stopped")
	}
	if !strings.Contains(d.out.String(), "stack serve stopped") {
		t.Errorf("no clean stop logged:\n%s", d.out.String())
	}
}

// waitLog waits until the log of job id contains s.
func waitLog(t *testing.T, data, id, s string) bool {
	t.Helper()
	deadline := time.Now().Add(30 * time.Second)
	for time.Now().Before(deadline) {
		b, _ := os.ReadFile(filepath.Join(data, "ci", "jobs", id, "log"))
		if strings.Contains(string(b), s) {
			return true
		}
		time.Sleep(20 * time.Millisecond)
	}
	return false
}

// TestServeDataDirPrivate: a data directory made looser than 0700 (by an
// older stack, or by hand) is made private at start, and what the daemon
// makes is private too: a CI job's user could read nothing of it even
// outside the job's sandbox.
func TestServeDataDirPrivate(t *testing.T) {
	d := newDaemon(t)
	for _, dir := range []string{d.data, filepath.Join(d.data, "ci")} {
		if err := os.MkdirAll(dir, 0o755); err != nil {
			t.Fatal(err)
		}
		if err := os.Chmod(dir, 0o755); err != nil {
			t.Fatal(err)
		}
	}
	d.start()
	d.createRepo("group/app")
	for _, dir := range []string{".", "git", "ssh", "registry", "ci"} {
		fi, err := os.Stat(filepath.Join(d.data, dir))
		if err != nil {
			t.Fatal(err)
		}
		if fi.Mode().Perm() != 0o700 {
			t.Errorf("DATA/%s is %v, want 0700", dir, fi.Mode().Perm())
		}
	}
	if n := strings.Count(d.out.String(), "made a data directory private"); n != 2 {
		t.Errorf("%d tightenings logged, want 2 (DATA and DATA/ci):\n%s", n, d.out.String())
	}
	// `stack repo create` before any daemon makes them private as well.
	fresh := filepath.Join(t.TempDir(), "fresh")
	if out, err := d.stack("repo", "create", "group/app", "--data", fresh); err != nil {
		t.Fatalf("stack repo create: %v\n%s", err, out)
	}
	for _, dir := range []string{fresh, filepath.Join(fresh, "git")} {
		fi, err := os.Stat(dir)
		if err != nil {
			t.Fatal(err)
		}
		if fi.Mode().Perm() != 0o700 {
			t.Errorf("%s is %v, want 0700", dir, fi.Mode().Perm())
		}
	}
}
