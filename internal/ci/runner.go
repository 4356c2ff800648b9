package ci

import (
	"context"
	"fmt"
	"log/slog"
	"os"
	"path/filepath"
	"sync"
	"syscall"
	"time"
)

// Runner runs the queued jobs of one data directory, and queues the jobs
// of timers. Only one runner may work on a data directory at a time.
//
// Each job runs in a fresh checkout of its exact commit under
// <data>/ci/work/<id>/src (git clone --no-hardlinks from the bare
// repository, then git checkout --detach COMMIT: the job has its own copy of
// the objects, so `git log` works inside with nothing of the served
// repository in reach), removed when the job ends. The script runs in a
// sandbox (sandbox.go): a user of its own, its own PID, mount and IPC
// namespaces in which it sees the system directories read-only and its
// work directory, and memory and process limits. At its timeout every
// process of the job gets SIGTERM and, KillGrace later, SIGKILL; what a
// script leaves behind is killed when it exits. The script's environment
// is clean: PATH, HOME and TMPDIR (private directories), CI=true,
// STACK_CI_REPO, STACK_CI_REF, STACK_CI_COMMIT, STACK_CI_JOB,
// STACK_CI_PIPELINE, STACK_CI_TRIGGER, STACK_CI_TOKEN, and Env.
//
// Restart safety: a job left running by a runner that died is marked
// interrupted when the next runner starts (its leftover processes — the
// sandbox's init, found by process group and checked to carry the job's
// STACK_CI_JOB, and whatever is in the job's cgroups — are killed first).
// It is not re-run on its own, since a half-run job may have had effects a
// blind re-run would repeat: queue it again with `stack ci run`. Jobs
// still queued are kept and run. When Run's context ends, running jobs are
// stopped the same way as at a timeout and marked interrupted.
type Runner struct {
	// DataDir holds ci/ (see the package documentation).
	DataDir string
	// Repos lists the repositories whose default branch (HEAD) may declare
	// timers. Nil means no timers.
	Repos func() ([]Repo, error)
	// Concurrency is how many jobs run at once; 0 means 1. One pipeline on
	// one ref never runs twice at once.
	Concurrency int
	// Logger receives the runner's own logs (not the jobs' output).
	Logger *slog.Logger
	// PATH is the jobs' PATH; empty means this process's.
	PATH string
	// Env is added to every job's environment ("NAME=value").
	Env []string
	// Poll is how often the queue is looked at besides when inotify says
	// a job was queued; 0 means 200ms.
	Poll time.Duration
	// TimerTick is how often timers are checked; 0 means 1s.
	TimerTick time.Duration
	// KillGrace is the time between SIGTERM and SIGKILL; 0 means 5s.
	KillGrace time.Duration
	// MaxLog bounds each part of a job's log (see MaxLogPart, the
	// default).
	MaxLog int64
	// MemoryLimit is how many bytes of memory a job's processes may use
	// together; 0 means DefaultMemoryLimit. PidsLimit is how many processes
	// and threads a job may have at once; 0 means DefaultPidsLimit. Both are
	// enforced when the runner is root (cgroup v1), and are the server's to
	// say, not a pipeline's.
	MemoryLimit int64
	PidsLimit   int
	// RequireSandbox refuses to run jobs at all where the kernel refuses
	// the sandbox (a server in a container whose seccomp profile forbids
	// namespaces): each job fails, saying why, instead of running with the
	// server's power.
	RequireSandbox bool

	sb *sandbox
}

// Repo is a bare repository served by the git server.
type Repo struct {
	Name string
	Path string
}

func (r *Runner) defaults() {
	if r.Concurrency <= 0 {
		r.Concurrency = 1
	}
	if r.Logger == nil {
		r.Logger = slog.Default()
	}
	if r.PATH == "" {
		r.PATH = os.Getenv("PATH")
	}
	if r.Poll <= 0 {
		r.Poll = 200 * time.Millisecond
	}
	if r.TimerTick <= 0 {
		r.TimerTick = time.Second
	}
	if r.MaxLog <= 0 {
		r.MaxLog = MaxLogPart
	}
	if r.KillGrace <= 0 {
		r.KillGrace = 5 * time.Second
	}
	if r.MemoryLimit <= 0 {
		r.MemoryLimit = DefaultMemoryLimit
	}
	if r.PidsLimit <= 0 {
		r.PidsLimit = DefaultPidsLimit
	}
}

// running is what a runner has in flight: the keys of running jobs.
type running struct {
	mu   sync.Mutex
	busy map[string]bool
	wake chan struct{}
}

// poke makes the runner look at the queue now.
func (rs *running) poke() {
	select {
	case rs.wake <- struct{}{}:
	default:
	}
}

// Run works until ctx ends, then stops the running jobs and returns. It
// fails at once if another runner holds the data directory.
func (r *Runner) Run(ctx context.Context) error {
	r.defaults()
	s, err := openStore(r.DataDir)
	if err != nil {
		return err
	}
	unlock, err := s.runnerLock(3 * time.Second)
	if err != nil {
		return err
	}
	defer unlock()
	r.sb = r.newSandbox(s)
	if r.sb.kind == noSandbox {
		r.Logger.Warn("ci: jobs are not sandboxed", "why", r.sb.why)
	} else if r.sb.cg == nil {
		r.Logger.Warn("ci: jobs are sandboxed without limits", "why", r.sb.cgWhy)
	}
	if r.sb.cg != nil {
		defer r.sb.cg.close()
	}
	if err := r.recover(s); err != nil {
		return fmt.Errorf("recover CI jobs: %w", err)
	}

	rs := &running{busy: map[string]bool{}, wake: make(chan struct{}, 1)}
	var wg sync.WaitGroup
	defer wg.Wait()
	if r.Repos != nil {
		wg.Add(1)
		go func() {
			defer wg.Done()
			r.timerLoop(ctx, s)
		}()
	}
	if stop, err := watchDir(s.path("queue"), rs.poke); err != nil {
		r.Logger.Warn("ci: cannot watch the queue, polling only", "every", r.Poll, "err", err)
	} else {
		defer stop()
	}
	tick := time.NewTicker(r.Poll)
	defer tick.Stop()
	for {
		r.dispatch(ctx, s, rs, &wg)
		select {
		case <-ctx.Done():
			return nil
		case <-tick.C:
		case <-rs.wake:
		}
	}
}

// recover settles what a dead runner left: running jobs become interrupted,
// queued jobs get their markers back, work directories go.
func (r *Runner) recover(s *store) error {
	unlock, err := s.lock()
	if err != nil {
		return err
	}
	defer unlock()
	jobs, err := s.list()
	if err != nil {
		return err
	}
	for _, j := range jobs {
		switch j.State {
		case Running:
			j.State, j.Finished = Interrupted, time.Now().UTC()
			j.Error = fmt.Sprintf("the runner (pid %d) stopped while the job was running", j.RunnerPID)
			killed := killLeftovers(j)
			if killed {
				waitGone(j.PID, 5*time.Second)
			}
			if r.sb.cg != nil && r.sb.cg.remove(j.ID) > 0 {
				killed = true
			}
			if killed {
				j.Error += "; its leftover processes were killed"
			}
			appendLog(s.logFile(j.ID), "==> interrupted: "+j.Error+"\n")
			if err := s.write(j); err != nil {
				return err
			}
			r.Logger.Warn("ci: job interrupted by a runner restart", "job", j.ID, "pipeline", j.Pipeline, "repo", j.Repo)
		case Queued:
			if err := s.mark(j.ID); err != nil {
				return err
			}
		}
	}
	if r.sb.cg != nil {
		// Cgroups of jobs no record says were running: a runner died
		// between making them and saving the job.
		for _, job := range r.sb.cg.leftovers() {
			if n := r.sb.cg.remove(job); n > 0 {
				r.Logger.Warn("ci: killed the leftover processes of a job", "job", job, "processes", n)
			}
		}
	}
	ents, err := os.ReadDir(s.path("work"))
	if err != nil {
		return err
	}
	for _, e := range ents {
		if err := os.RemoveAll(s.path("work", e.Name())); err != nil {
			return err
		}
	}
	return nil
}

// waitGone waits until process group pgid has no live member, or d passed.
func waitGone(pgid int, d time.Duration) {
	for end := time.Now().Add(d); len(groupMembers(pgid)) > 0 && time.Now().Before(end); {
		time.Sleep(20 * time.Millisecond)
	}
}

func appendLog(file, line string) {
	f, err := os.OpenFile(file, os.O_WRONLY|os.O_APPEND|os.O_CREATE, 0o600)
	if err != nil {
		return
	}
	f.WriteString(line)
	f.Close()
}

// dispatch claims queued jobs while there are free slots and starts them.
func (r *Runner) dispatch(ctx context.Context, s *store, rs *running, wg *sync.WaitGroup) {
	if ctx.Err() != nil {
		return
	}
	rs.mu.Lock()
	free := r.Concurrency - len(rs.busy)
	rs.mu.Unlock()
	if free <= 0 {
		return
	}
	ids, err := s.queued()
	if err != nil || len(ids) == 0 {
		if err != nil {
			r.Logger.Error("ci: read queue", "err", err)
		}
		return
	}
	unlock, err := s.lock()
	if err != nil {
		r.Logger.Error("ci: lock queue", "err", err)
		return
	}
	defer unlock()
	for _, id := range ids {
		if free == 0 {
			return
		}
		j, err := s.read(id)
		if err != nil {
			r.Logger.Error("ci: dropping unreadable queued job", "job", id, "err", err)
			s.unmark(id)
			continue
		}
		if j.State != Queued {
			s.unmark(id)
			continue
		}
		key := j.key()
		rs.mu.Lock()
		busy := rs.busy[key]
		rs.mu.Unlock()
		if busy {
			continue // one job per pipeline and ref at a time
		}
		j.State, j.Started, j.RunnerPID = Running, time.Now().UTC(), os.Getpid()
		if err := s.write(j); err != nil {
			r.Logger.Error("ci: claim job", "job", id, "err", err)
			continue
		}
		s.unmark(id)
		rs.mu.Lock()
		rs.busy[key] = true
		rs.mu.Unlock()
		free--
		wg.Add(1)
		go func() {
			defer wg.Done()
			r.execute(ctx, s, j)
			rs.mu.Lock()
			delete(rs.busy, key)
			rs.mu.Unlock()
			rs.poke()
		}()
	}
}

// outcome is how a job ended.
type outcome struct {
	state State
	code  *int
	why   string
}

// execute runs a claimed job to its end and records how it ended.
func (r *Runner) execute(ctx context.Context, s *store, j *Job) {
	log := r.Logger.With("job", j.ID, "pipeline", j.Pipeline, "repo", j.Repo, "ref", j.Ref)
	log.Info("ci: job started", "commit", j.Commit, "trigger", j.Trigger)
	var out outcome
	lf, err := openCappedLog(s.logFile(j.ID), r.MaxLog)
	if err != nil {
		out = outcome{state: Failed, why: fmt.Sprintf("open log: %v", err)}
	} else {
		defer lf.Close()
		if r.sb.kind == noSandbox {
			fmt.Fprintf(lf, "==> %s\n", r.sb.describe(j))
		}
		fmt.Fprintf(lf, "==> job %s: pipeline %s (%s) of %s at %s %s, %s trigger\n",
			j.ID, j.Pipeline, j.Run, j.Repo, j.Ref, j.Commit, j.Trigger)
		out = r.runJob(ctx, s, j, lf)
	}
	j.State, j.ExitCode, j.Error = out.state, out.code, out.why
	j.Finished = time.Now().UTC()
	d := j.Duration(j.Finished).Round(time.Millisecond)
	if lf != nil {
		// The last line goes before the final state: whoever sees the
		// job end has all of its log.
		switch {
		case out.state == Succeeded:
			fmt.Fprintf(lf, "==> succeeded in %s\n", d)
		case out.why != "":
			fmt.Fprintf(lf, "==> %s after %s: %s\n", out.state, d, out.why)
		default:
			fmt.Fprintf(lf, "==> %s after %s\n", out.state, d)
		}
	}
	if err := s.write(j); err != nil {
		log.Error("ci: save job", "err", err)
	}
	log.Info("ci: job ended", "state", j.State, "duration", d)
}

// runJob checks out the commit and runs the script.
func (r *Runner) runJob(ctx context.Context, s *store, j *Job, lf *cappedLog) outcome {
	work := s.path("work", j.ID)
	src, tmp, home := filepath.Join(work, "src"), filepath.Join(work, "tmp"), filepath.Join(work, "home")
	defer os.RemoveAll(work)
	for _, d := range []string{tmp, home} {
		if err := os.MkdirAll(d, 0o700); err != nil {
			return outcome{state: Failed, why: fmt.Sprintf("make work directory: %v", err)}
		}
	}
	jctx, cancel := context.WithDeadline(ctx, j.Started.Add(time.Duration(j.Timeout)))
	defer cancel()
	stopped := func() (State, string) {
		if ctx.Err() != nil {
			return Interrupted, "the runner stopped during the job"
		}
		return TimedOut, fmt.Sprintf("timed out after %s: the job's processes were killed", time.Duration(j.Timeout))
	}

	if err := checkout(jctx, j.RepoPath, j.Commit, src, lf); err != nil {
		if jctx.Err() != nil {
			st, why := stopped()
			return outcome{state: st, why: why}
		}
		return outcome{state: Failed, why: fmt.Sprintf("check out %.12s from %s: %v", j.Commit, j.RepoPath, err)}
	}
	script := filepath.Join(src, filepath.FromSlash(j.Run))
	st, err := os.Stat(script)
	switch {
	case err != nil:
		return outcome{state: Failed, why: fmt.Sprintf("%s does not exist at %.12s: add it or fix run: in %s", j.Run, j.Commit, PipelinesFile)}
	case !st.Mode().IsRegular() || st.Mode()&0o111 == 0:
		return outcome{state: Failed, why: fmt.Sprintf("%s is not an executable file: git update-index --chmod=+x %s, commit and push", j.Run, j.Run)}
	}

	if r.sb.kind == noSandbox && r.RequireSandbox {
		why := "not run: the sandbox is required (--require-sandbox) and unavailable: " + r.sb.why
		fmt.Fprintf(lf, "==> %s\n", why)
		return outcome{state: Failed, why: why}
	}
	if r.sb.kind != noSandbox {
		fmt.Fprintf(lf, "==> %s\n", r.sb.describe(j))
	}
	token, sum := newToken()
	j.TokenSHA256 = sum
	out, flush, err := pipeTo(lf, 5*time.Second)
	if err != nil {
		return outcome{state: Failed, why: fmt.Sprintf("log pipe: %v", err)}
	}
	p, err := r.sb.start(j, work, script, src, r.env(j, tmp, home, token), out)
	if err != nil {
		flush()
		return outcome{state: Failed, why: err.Error()}
	}
	j.PID = p.pid
	if err := s.write(j); err != nil {
		r.Logger.Error("ci: save job", "job", j.ID, "err", err)
	}

	done := make(chan scriptEnd, 1)
	go func() { done <- p.wait() }()
	var end scriptEnd
	var stop State
	var why string
	select {
	case end = <-done:
	case <-jctx.Done():
		stop, why = stopped()
		p.signal(syscall.SIGTERM)
		select {
		case end = <-done:
		case <-time.After(r.KillGrace):
			p.signal(syscall.SIGKILL)
			end = <-done
		}
	}
	// Whatever the script left behind goes with it, and then all it
	// wrote is in the log.
	p.cleanup()
	flush()
	switch {
	case stop != "":
		return outcome{state: stop, why: why}
	case end.err != nil:
		return outcome{state: Failed, why: end.err.Error()}
	case end.sig != 0:
		code := 128 + int(end.sig)
		why := fmt.Sprintf("killed by signal %s", end.sig)
		if end.oom {
			why += fmt.Sprintf(": out of memory (a job may use %s; stack serve --job-memory sets it)", formatSize(r.MemoryLimit))
		}
		return outcome{state: Failed, code: &code, why: why}
	case end.code != 0:
		return outcome{state: Failed, code: &end.code, why: fmt.Sprintf("exit code %d", end.code)}
	}
	return outcome{state: Succeeded, code: &end.code}
}

// env is a job's whole environment: nothing of the runner's but PATH.
func (r *Runner) env(j *Job, tmp, home, token string) []string {
	env := []string{"PATH=" + r.PATH}
	env = append(env,
		"HOME="+home,
		"TMPDIR="+tmp,
		"CI=true",
		"STACK_CI_REPO="+j.Repo,
		"STACK_CI_REF="+j.Ref,
		"STACK_CI_COMMIT="+j.Commit,
		"STACK_CI_JOB="+j.ID,
		"STACK_CI_PIPELINE="+j.Pipeline,
		"STACK_CI_TRIGGER="+string(j.Trigger),
		"STACK_CI_TOKEN="+token,
	)
	return append(env, r.Env...)
}
