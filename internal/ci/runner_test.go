package ci

import (
	"bytes"
	"context"
	"fmt"
	"io"
	"log/slog"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"strings"
	"syscall"
	"testing"
	"time"
)

func TestRunnerRunsExactCommit(t *testing.T) {
	g := newGitRepo(t)
	data := t.TempDir()
	c1 := g.commit("main", map[string]string{
		"ci/pipelines.yaml": pipelines("test"),
		"version":           "one\n",
		"ci/test": `#!/bin/sh
echo "commit=$STACK_CI_COMMIT"
echo "head=$(git rev-parse HEAD)"
echo "version=$(cat version)"
echo "env: CI=$CI repo=$STACK_CI_REPO ref=$STACK_CI_REF job=$STACK_CI_JOB pipeline=$STACK_CI_PIPELINE trigger=$STACK_CI_TRIGGER"
echo "leak=${SECRET_FROM_SERVER:-none}"
echo "tmp=$TMPDIR pwd=$(pwd)"
git status --porcelain | sed 's/^/dirty: /'
`,
	})
	jobs := g.push(data, "refs/heads/main", c1)
	// The branch moves on before the job runs: the job still sees c1.
	c2 := g.commit("main", map[string]string{"version": "two\n"})
	if c1 == c2 {
		t.Fatal("no second commit")
	}
	t.Setenv("SECRET_FROM_SERVER", "hunter2")
	startRunner(t, &Runner{DataDir: data})
	j := waitJob(t, data, jobs[0].ID, 30*time.Second, final)
	log := jobLog(t, data, j.ID)
	if j.State != Succeeded || j.ExitCode == nil || *j.ExitCode != 0 {
		t.Fatalf("job %s: %s (%s); log:\n%s", j.ID, j.State, j.Error, log)
	}
	for _, want := range []string{
		"commit=" + c1 + "\n",
		"head=" + c1 + "\n",
		"version=one\n",
		fmt.Sprintf("env: CI=true repo=repo ref=refs/heads/main job=%s pipeline=test trigger=push\n", j.ID),
		"leak=none\n",
		"==> succeeded in ",
	} {
		if !strings.Contains(log, want) {
			t.Errorf("log lacks %q:\n%s", want, log)
		}
	}
	if strings.Contains(log, "dirty:") {
		t.Errorf("checkout not clean:\n%s", log)
	}
	m := regexp.MustCompile(`tmp=(\S+) pwd=(\S+)`).FindStringSubmatch(log)
	if m == nil || !strings.HasPrefix(m[1], filepath.Join(data, "ci", "work", j.ID)) || !strings.HasPrefix(m[2], filepath.Join(data, "ci", "work", j.ID)) {
		t.Errorf("job did not run in its own work directory: %v", m)
	}
	if _, err := os.Stat(filepath.Join(data, "ci", "work", j.ID)); !os.IsNotExist(err) {
		t.Errorf("work directory left behind: %v", err)
	}
	if j.Started.Before(j.Queued) || j.Finished.Before(j.Started) || j.RunnerPID != os.Getpid() || j.PID == 0 {
		t.Errorf("times or pids wrong: %+v", j)
	}
}

func TestRunnerFailures(t *testing.T) {
	g := newGitRepo(t)
	data := t.TempDir()
	c := g.commit("main", map[string]string{
		"ci/pipelines.yaml": pipelines("fail", "noexec", "missing", "nointerp"),
		"ci/fail":           "#!/bin/sh\necho about to fail\nexit 3\n",
		"ci/noexec":         "echo not executable\n",
		"ci/nointerp":       "#!/nonexistent/interpreter\n",
	})
	jobs := g.push(data, "refs/heads/main", c)
	startRunner(t, &Runner{DataDir: data, Concurrency: 2})
	want := map[string]string{
		"fail":     "exit code 3",
		"noexec":   "ci/noexec is not an executable file: git update-index --chmod=+x ci/noexec",
		"missing":  "ci/missing does not exist at",
		"nointerp": "start ci/nointerp: no such file or directory",
	}
	for _, j := range jobs {
		j = waitJob(t, data, j.ID, 30*time.Second, final)
		if j.State != Failed || !strings.Contains(j.Error, want[j.Pipeline]) {
			t.Errorf("%s: %s %q, want failed with %q", j.Pipeline, j.State, j.Error, want[j.Pipeline])
		}
		if log := jobLog(t, data, j.ID); !strings.Contains(log, "==> failed after ") || !strings.Contains(log, want[j.Pipeline]) {
			t.Errorf("%s: log does not say why it failed:\n%s", j.Pipeline, log)
		}
		if j.Pipeline == "fail" {
			if j.ExitCode == nil || *j.ExitCode != 3 {
				t.Errorf("fail: exit code %v, want 3", j.ExitCode)
			}
			if !strings.Contains(jobLog(t, data, j.ID), "about to fail\n") {
				t.Errorf("fail: output not logged")
			}
		} else if j.ExitCode != nil {
			t.Errorf("%s: exit code %d for a script that never ran", j.Pipeline, *j.ExitCode)
		}
	}
}

func TestRunnerTimeoutKillsProcessGroup(t *testing.T) {
	g := newGitRepo(t)
	data := t.TempDir()
	c := g.commit("main", map[string]string{
		"ci/pipelines.yaml": "pipelines:\n  slow:\n    run: ci/slow\n    on: {push: [refs/heads/*]}\n    timeout: 1s\n",
		"ci/slow":           "#!/bin/sh\nsleep 100 &\nsetsid sleep 100 &\necho ready\nsleep 100\necho never\n",
	})
	jobs := g.push(data, "refs/heads/main", c)
	startRunner(t, &Runner{DataDir: data})
	waitLogged(t, data, jobs[0].ID, "ready\n")
	procs := jobProcs(jobs[0].ID)
	if len(procs) < 4 { // the script, its sleeps, and the sandbox's init
		t.Fatalf("job processes %v, want at least 4", procs)
	}
	j := waitJob(t, data, jobs[0].ID, 30*time.Second, final)
	log := jobLog(t, data, j.ID)
	if j.State != TimedOut || j.ExitCode != nil || !strings.Contains(j.Error, "timed out after 1s") {
		t.Fatalf("job: %s %q exit %v, want timed-out; log:\n%s", j.State, j.Error, j.ExitCode, log)
	}
	if d := j.Finished.Sub(j.Started); d < time.Second || d > 10*time.Second {
		t.Errorf("timed out after %s, want about 1s", d)
	}
	for _, pid := range procs {
		if alive(pid) {
			t.Errorf("process %d of the job still alive after the timeout", pid)
		}
	}
	if strings.Contains(log, "never") || !strings.Contains(log, "==> timed-out after ") {
		t.Errorf("log:\n%s", log)
	}
}

func TestRunnerKillsLeftovers(t *testing.T) {
	g := newGitRepo(t)
	data := t.TempDir()
	c := g.commit("main", map[string]string{
		"ci/pipelines.yaml": pipelines("bg"),
		"ci/bg":             "#!/bin/sh\nsleep 100 > /dev/null 2>&1 &\necho ready\n" + waitGate,
	})
	jobs := g.push(data, "refs/heads/main", c)
	startRunner(t, &Runner{DataDir: data})
	waitLogged(t, data, jobs[0].ID, "ready\n")
	procs := jobProcs(jobs[0].ID)
	openGate(t, data, jobs[0].ID)
	j := waitJob(t, data, jobs[0].ID, 30*time.Second, final)
	if j.State != Succeeded {
		t.Fatalf("job %s", j.State)
	}
	if len(procs) < 2 {
		t.Fatalf("job processes %v, want the script and its sleep at least", procs)
	}
	for _, pid := range procs {
		if alive(pid) {
			t.Errorf("process %d left behind by the job still runs", pid)
		}
	}
}

// TestRunnerOnePerRef checks that a pipeline runs once at a time per ref,
// in parallel across refs, and that a push supersedes a queued job even
// while an older one runs.
func TestRunnerOnePerRef(t *testing.T) {
	g := newGitRepo(t)
	data := t.TempDir()
	c := g.commit("main", map[string]string{
		"ci/pipelines.yaml": pipelines("test"),
		"ci/test":           "#!/bin/sh\necho start\n" + waitGate + "echo end\n",
	})
	g.git(g.work, "push", "--quiet", g.bare, "HEAD:refs/heads/dev")
	startRunner(t, &Runner{DataDir: data, Concurrency: 3})
	first := g.push(data, "refs/heads/main", c)[0]
	waitLogged(t, data, first.ID, "start\n")
	second := g.push(data, "refs/heads/main", c)[0]
	third := g.push(data, "refs/heads/main", c)[0]
	dev := g.push(data, "refs/heads/dev", c)[0]
	waitLogged(t, data, dev.ID, "start\n")
	if j, _ := Get(data, second.ID); j.State != Superseded || j.SupersededBy != third.ID {
		t.Errorf("second: %s by %q, want superseded by %s", j.State, j.SupersededBy, third.ID)
	}
	time.Sleep(200 * time.Millisecond) // ten polls: the third must not start
	if j, _ := Get(data, third.ID); j.State != Queued {
		t.Errorf("third is %s while the first runs on the same ref, want queued", j.State)
	}
	openGate(t, data, first.ID)
	openGate(t, data, dev.ID)
	f := waitJob(t, data, first.ID, 30*time.Second, final)
	waitLogged(t, data, third.ID, "start\n")
	openGate(t, data, third.ID)
	th := waitJob(t, data, third.ID, 30*time.Second, final)
	d := waitJob(t, data, dev.ID, 30*time.Second, final)
	if f.State != Succeeded || th.State != Succeeded || d.State != Succeeded {
		t.Fatalf("states %s %s %s, want succeeded", f.State, th.State, d.State)
	}
	if th.Started.Before(f.Finished) {
		t.Errorf("third started %s before the first finished %s", th.Started, f.Finished)
	}
}

func TestRunnerTimer(t *testing.T) {
	g := newGitRepo(t)
	data := t.TempDir()
	g.commit("main", map[string]string{
		"ci/pipelines.yaml": "pipelines:\n  tick:\n    run: ci/tick\n    on: {timer: \"@every 1s\"}\n",
		"ci/tick":           "#!/bin/sh\necho \"tick $STACK_CI_TRIGGER $STACK_CI_REF\"\n",
	})
	repos := func() ([]Repo, error) { return []Repo{{Name: "repo", Path: g.bare}}, nil }
	startRunner(t, &Runner{DataDir: data, Repos: repos, TimerTick: 100 * time.Millisecond})
	var done []*Job
	for end := time.Now().Add(20 * time.Second); len(done) < 2; time.Sleep(50 * time.Millisecond) {
		if time.Now().After(end) {
			t.Fatalf("timer jobs after 20s: %v", done)
		}
		jobs, _ := List(data)
		done = done[:0]
		for _, j := range jobs {
			if j.State == Succeeded {
				done = append(done, j)
			}
		}
	}
	for _, j := range done {
		if j.Trigger != Timer || j.Pipeline != "tick" || j.Ref != "refs/heads/main" {
			t.Errorf("timer job %+v", j)
		}
		if log := jobLog(t, data, j.ID); !strings.Contains(log, "tick timer refs/heads/main\n") {
			t.Errorf("log:\n%s", log)
		}
	}
	if gap := done[1].Queued.Sub(done[0].Queued); gap < 500*time.Millisecond || gap > 5*time.Second {
		t.Errorf("timer fired %s apart, want about 1s", gap)
	}
}

// TestTimersNoDoubleFire drives the timer logic with a fake clock across a
// restart: the persisted fire time keeps a new runner from firing again.
func TestTimersNoDoubleFire(t *testing.T) {
	g := newGitRepo(t)
	data := t.TempDir()
	g.commit("main", map[string]string{
		"ci/pipelines.yaml": "pipelines:\n  hourly:\n    run: ci/h\n    on: {timer: \"@every 1h\"}\n  plain:\n    run: ci/p\n",
	})
	r := &Runner{DataDir: data, Repos: func() ([]Repo, error) { return []Repo{{Name: "repo", Path: g.bare}}, nil }}
	r.defaults()
	r.Logger = slog.New(slog.NewTextHandler(io.Discard, nil))
	s, err := openStore(data)
	if err != nil {
		t.Fatal(err)
	}
	file := s.path("timers.json")
	count := func() int {
		jobs, _ := List(data)
		return len(jobs)
	}
	t0 := time.Date(2026, 3, 1, 10, 0, 0, 0, time.UTC)
	tm, err := loadTimers(file)
	if err != nil {
		t.Fatal(err)
	}
	ctx := context.Background()
	for _, step := range []struct {
		at      time.Duration
		restart bool
		jobs    int
	}{
		{0, false, 0},                             // first sighting: counting starts
		{30 * time.Minute, false, 0},              // not yet
		{time.Hour + time.Second, false, 1},       // fires
		{time.Hour + 2*time.Second, true, 1},      // a restart right after: no second job
		{90 * time.Minute, false, 1},              // not due again
		{2*time.Hour + 2*time.Second, false, 2},   // due again
		{10 * time.Hour, true, 3},                 // down for hours: fires once, not eight times
		{10*time.Hour + time.Minute, false, 3},    // and not again right away
		{11*time.Hour + time.Minute, false, 4},    // an hour after the last firing
		{11*time.Hour + 2*time.Minute, true, 4},   // restart
		{12*time.Hour + 30*time.Second, false, 4}, // counts from 11:01, not from the restart
		{12*time.Hour + 2*time.Minute, false, 5},
	} {
		if step.restart {
			if tm, err = loadTimers(file); err != nil {
				t.Fatal(err)
			}
		}
		r.checkTimers(ctx, tm, t0.Add(step.at))
		if got := count(); got != step.jobs {
			t.Fatalf("at +%s (restart %v): %d jobs, want %d", step.at, step.restart, got, step.jobs)
		}
	}
	jobs, _ := List(data)
	for _, j := range jobs {
		if j.Pipeline != "hourly" || j.Trigger != Timer {
			t.Errorf("job %+v", j)
		}
	}
}

// TestRunnerRestart kills a runner process in the middle of a job, as a
// killed `stack serve` would be, then starts another: the job is marked
// interrupted, its leftover processes are gone, and the job queued in the
// meantime runs. Nothing is lost.
func TestRunnerRestart(t *testing.T) {
	g := newGitRepo(t)
	data := t.TempDir()
	c := g.commit("main", map[string]string{
		"ci/pipelines.yaml": pipelines("slow", "quick"),
		"ci/slow":           "#!/bin/sh\nsetsid sleep 100 &\necho started\nsleep 100\necho never\n",
		"ci/quick":          "#!/bin/sh\necho quick done\n",
	})
	jobs := g.push(data, "refs/heads/main", c)
	slow, quick := jobs[0], jobs[1]

	child := exec.Command(os.Args[0], "-test.run=^$")
	child.Env = append(os.Environ(), "STACK_CI_TEST_RUNNER="+data)
	var childErr bytes.Buffer
	child.Stderr = &childErr
	if err := child.Start(); err != nil {
		t.Fatal(err)
	}
	defer func() {
		child.Process.Kill()
		child.Wait()
	}()
	// The child runs one job at a time: slow first, then it is killed
	// before quick can start.
	j := waitJob(t, data, slow.ID, 30*time.Second, func(j *Job) bool {
		return j.State == Running && j.PID != 0 && strings.Contains(logSoFar(data, j.ID), "started\n")
	})
	if j.RunnerPID != child.Process.Pid {
		t.Fatalf("job run by %d, want the child runner %d", j.RunnerPID, child.Process.Pid)
	}
	procs := jobProcs(slow.ID) // the sandbox's init, the script, a setsid sleep, a sleep
	if len(procs) < 3 {
		t.Fatalf("job processes %v, want at least 3", procs)
	}
	if !RunnerAlive(data) {
		t.Errorf("RunnerAlive is false while the child runs")
	}
	if err := child.Process.Signal(syscall.SIGKILL); err != nil {
		t.Fatal(err)
	}
	child.Wait()
	if RunnerAlive(data) {
		t.Errorf("RunnerAlive is true after the runner was killed")
	}
	// The job's script outlived its runner, as after a real crash.
	if !alive(j.PID) {
		t.Fatalf("script %d died with its runner: the test shows nothing", j.PID)
	}
	if j, _ := Get(data, slow.ID); j.State != Running {
		t.Fatalf("slow is %s right after the kill, want running (as left)", j.State)
	}
	var followed bytes.Buffer
	if _, err := Logs(context.Background(), data, slow.ID, &followed, true, 0); err == nil || !strings.Contains(err.Error(), "no CI runner is alive") {
		t.Errorf("following a job of a dead runner: %v", err)
	}
	// Queued while no runner runs.
	late, err := Enqueue(data, Event{Repo: "repo", RepoPath: g.bare, Ref: "refs/heads/dev", New: c, Trigger: Manual, Pipeline: "quick"})
	if err != nil {
		t.Fatal(err)
	}

	startRunner(t, &Runner{DataDir: data})
	s := waitJob(t, data, slow.ID, 30*time.Second, final)
	if s.State != Interrupted || !strings.Contains(s.Error, fmt.Sprintf("runner (pid %d) stopped", child.Process.Pid)) {
		t.Errorf("slow: %s %q, want interrupted", s.State, s.Error)
	}
	if !strings.Contains(s.Error, "leftover processes were killed") {
		t.Errorf("slow: leftovers not reported killed: %q", s.Error)
	}
	if alive(s.PID) {
		t.Errorf("slow's script %d still runs after the restart", s.PID)
	}
	for _, pid := range procs {
		if alive(pid) {
			t.Errorf("process %d of slow still runs after the restart", pid)
		}
	}
	if log := jobLog(t, data, s.ID); !strings.Contains(log, "started\n") || !strings.Contains(log, "==> interrupted: ") || strings.Contains(log, "never") {
		t.Errorf("slow log:\n%s", log)
	}
	for _, q := range append([]*Job{quick}, late...) {
		if q := waitJob(t, data, q.ID, 30*time.Second, final); q.State != Succeeded {
			t.Errorf("%s on %s: %s, want succeeded", q.Pipeline, q.Ref, q.State)
		}
	}
}

func TestRunnerShutdownInterruptsAndSecondRunnerRefused(t *testing.T) {
	g := newGitRepo(t)
	data := t.TempDir()
	c := g.commit("main", map[string]string{
		"ci/pipelines.yaml": pipelines("slow"),
		"ci/slow":           "#!/bin/sh\necho started\nsleep 100\n",
	})
	jobs := g.push(data, "refs/heads/main", c)
	stop := startRunner(t, &Runner{DataDir: data})
	j := waitJob(t, data, jobs[0].ID, 30*time.Second, func(j *Job) bool {
		return j.State == Running && strings.Contains(logSoFar(data, j.ID), "started")
	})
	err := (&Runner{DataDir: data, Logger: slog.New(slog.NewTextHandler(io.Discard, nil))}).Run(context.Background())
	if err == nil || !strings.Contains(err.Error(), "another CI runner is using") {
		t.Errorf("second runner: %v", err)
	}
	stop()
	j, _ = Get(data, j.ID)
	if j.State != Interrupted || alive(j.PID) {
		t.Errorf("after shutdown: %s, script alive %v; want interrupted and gone", j.State, alive(j.PID))
	}
}

func TestLogsFollow(t *testing.T) {
	g := newGitRepo(t)
	data := t.TempDir()
	c := g.commit("main", map[string]string{
		"ci/pipelines.yaml": pipelines("talk"),
		"ci/talk":           "#!/bin/sh\nfor i in 1 2 3 4 5; do echo line $i; sleep 0.1; done\n",
	})
	jobs := g.push(data, "refs/heads/main", c)
	var out bytes.Buffer
	type result struct {
		j   *Job
		err error
	}
	res := make(chan result, 1)
	go func() { // started before the runner: follows a queued job
		j, err := Logs(context.Background(), data, jobs[0].ID, &out, true, 20*time.Millisecond)
		res <- result{j, err}
	}()
	startRunner(t, &Runner{DataDir: data})
	select {
	case r := <-res:
		if r.err != nil || r.j.State != Succeeded {
			t.Fatalf("Logs: %v, %v", r.j, r.err)
		}
	case <-time.After(30 * time.Second):
		t.Fatal("Logs -f did not return when the job ended")
	}
	if got := out.String(); got != jobLog(t, data, jobs[0].ID) || !strings.Contains(got, "line 1\nline 2\nline 3\nline 4\nline 5\n==> succeeded") {
		t.Errorf("followed log:\n%s", got)
	}
	var once bytes.Buffer
	if _, err := Logs(context.Background(), data, "1", &once, false, 0); err != nil || once.String() != out.String() {
		t.Errorf("Logs without follow: %v\n%s", err, once.String())
	}
}

// TestRunnerWakesOnEnqueue: with a poll too slow to matter, a job still
// starts because the runner watches the queue.
func TestRunnerWakesOnEnqueue(t *testing.T) {
	g := newGitRepo(t)
	data := t.TempDir()
	c := g.commit("main", map[string]string{
		"ci/pipelines.yaml": pipelines("test"),
		"ci/test":           "#!/bin/sh\necho ok\n",
	})
	startRunner(t, &Runner{DataDir: data, Poll: time.Hour})
	time.Sleep(100 * time.Millisecond) // let the runner pass its first look at the queue
	jobs := g.push(data, "refs/heads/main", c)
	if j := waitJob(t, data, jobs[0].ID, 30*time.Second, final); j.State != Succeeded {
		t.Fatalf("job %s", j.State)
	}
}

// TestRunnerRequireSandbox: where the sandbox is unavailable (a kernel
// that refuses it, stood for by sandboxRefused), a runner that requires
// it fails each job, saying why, and runs none of its script; one that
// does not runs it unsandboxed and says so.
func TestRunnerRequireSandbox(t *testing.T) {
	sandboxRefused = "the kernel refused a user namespace (test)"
	t.Cleanup(func() { sandboxRefused = "" })
	for _, require := range []bool{true, false} {
		g := newGitRepo(t)
		data := t.TempDir()
		marker := filepath.Join(t.TempDir(), "ran")
		c := g.commit("main", map[string]string{
			"ci/pipelines.yaml": pipelines("job"),
			"ci/job":            "#!/bin/sh\ntouch " + marker + "\n",
		})
		jobs := g.push(data, "refs/heads/main", c)
		startRunner(t, &Runner{DataDir: data, RequireSandbox: require})
		j := waitJob(t, data, jobs[0].ID, 30*time.Second, final)
		_, err := os.Stat(marker)
		ran := err == nil
		log := jobLog(t, data, j.ID)
		if require {
			if j.State != Failed || !strings.Contains(j.Error, "sandbox is required") || ran {
				t.Errorf("required: %s %q, script ran: %v", j.State, j.Error, ran)
			}
			if !strings.Contains(log, "==> not run: the sandbox is required (--require-sandbox) and unavailable: the kernel refused") {
				t.Errorf("required: the log does not say why:\n%s", log)
			}
		} else if j.State != Succeeded || !ran || !strings.Contains(log, "not sandboxed") {
			t.Errorf("not required: %s %q, script ran: %v, log:\n%s", j.State, j.Error, ran, log)
		}
	}
}
