package ci

import (
	"context"
	"errors"
	"fmt"
	"io/fs"
	"log/slog"
	"os"
	"os/exec"
	"path/filepath"
	"sync"
	"syscall"
	"time"
)

// Runner runs the queued jobs of one data directory, and queues the jobs
// of timers. Only one runner may work on a data directory at a time.
//
// Each job runs in a fresh checkout of its exact commit under
// <data>/ci/work/<id>/src (git clone --no-checkout --shared from the bare
// repository, then git checkout --detach COMMIT: the objects are shared, not
// copied, and `git rev-parse HEAD` works inside), removed when the job ends.
// The script is the leader of its own process group; at its timeout the
// group gets SIGTERM and, KillGrace later, SIGKILL. Processes a script
// leaves behind are killed when it exits. The script's environment is
// clean: PATH, HOME, TMPDIR (a private directory), CI=true, STACK_CI_REPO,
// STACK_CI_REF, STACK_CI_COMMIT, STACK_CI_JOB, STACK_CI_PIPELINE,
// STACK_CI_TRIGGER, and Env.
//
// Restart safety: a job left running by a runner that died is marked
// interrupted when the next runner starts (its leftover processes, found by
// process group and checked to carry the job's STACK_CI_JOB, are killed
// first). It is not re-run on its own, since a half-run job may have had
// effects a blind re-run would repeat: queue it again with `stack ci run`.
// Jobs still queued are kept and run. When Run's context ends, running jobs
// are stopped the same way as at a timeout and marked interrupted.
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
	if r.KillGrace <= 0 {
		r.KillGrace = 5 * time.Second
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
			if killLeftovers(j) {
				j.Error += "; its leftover processes were killed"
				waitGone(j.PID, 5*time.Second)
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
	lf, err := os.OpenFile(s.logFile(j.ID), os.O_WRONLY|os.O_APPEND|os.O_CREATE, 0o600)
	if err != nil {
		out = outcome{state: Failed, why: fmt.Sprintf("open log: %v", err)}
	} else {
		defer lf.Close()
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
func (r *Runner) runJob(ctx context.Context, s *store, j *Job, lf *os.File) outcome {
	work := s.path("work", j.ID)
	src, tmp := filepath.Join(work, "src"), filepath.Join(work, "tmp")
	defer os.RemoveAll(work)
	if err := os.MkdirAll(tmp, 0o700); err != nil {
		return outcome{state: Failed, why: fmt.Sprintf("make work directory: %v", err)}
	}
	jctx, cancel := context.WithDeadline(ctx, j.Started.Add(time.Duration(j.Timeout)))
	defer cancel()
	stopped := func() (State, string) {
		if ctx.Err() != nil {
			return Interrupted, "the runner stopped during the job"
		}
		return TimedOut, fmt.Sprintf("timed out after %s: the job's process group was killed", time.Duration(j.Timeout))
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

	cmd := exec.Command(script)
	cmd.Dir = src
	cmd.Env = r.env(j, tmp)
	cmd.Stdin = nil
	cmd.Stdout, cmd.Stderr = lf, lf
	cmd.SysProcAttr = &syscall.SysProcAttr{Setpgid: true}
	if err := cmd.Start(); err != nil {
		var pe *fs.PathError
		if errors.As(err, &pe) {
			err = pe.Err
		}
		return outcome{state: Failed, why: fmt.Sprintf("start %s: %v (does it begin with a #! line?)", j.Run, err)}
	}
	pgid := cmd.Process.Pid
	j.PID = pgid
	if err := s.write(j); err != nil {
		r.Logger.Error("ci: save job", "job", j.ID, "err", err)
	}

	done := make(chan error, 1)
	go func() { done <- cmd.Wait() }()
	var stop State
	var why string
	select {
	case <-done:
	case <-jctx.Done():
		stop, why = stopped()
		killGroup(pgid, syscall.SIGTERM)
		select {
		case <-done:
		case <-time.After(r.KillGrace):
			killGroup(pgid, syscall.SIGKILL)
			<-done
		}
	}
	// Whatever the script left behind in its group goes with it.
	killGroup(pgid, syscall.SIGKILL)
	if stop != "" {
		return outcome{state: stop, why: why}
	}
	ws := cmd.ProcessState.Sys().(syscall.WaitStatus)
	code := ws.ExitStatus()
	if ws.Signaled() {
		code = 128 + int(ws.Signal())
		return outcome{state: Failed, code: &code, why: fmt.Sprintf("killed by signal %s", ws.Signal())}
	}
	if code != 0 {
		return outcome{state: Failed, code: &code, why: fmt.Sprintf("exit code %d", code)}
	}
	return outcome{state: Succeeded, code: &code}
}

// env is a job's whole environment.
func (r *Runner) env(j *Job, tmp string) []string {
	env := []string{"PATH=" + r.PATH}
	if home := os.Getenv("HOME"); home != "" {
		env = append(env, "HOME="+home)
	}
	env = append(env,
		"TMPDIR="+tmp,
		"CI=true",
		"STACK_CI_REPO="+j.Repo,
		"STACK_CI_REF="+j.Ref,
		"STACK_CI_COMMIT="+j.Commit,
		"STACK_CI_JOB="+j.ID,
		"STACK_CI_PIPELINE="+j.Pipeline,
		"STACK_CI_TRIGGER="+string(j.Trigger),
	)
	return append(env, r.Env...)
}
