package ci

import (
	"context"
	"fmt"
	"io"
	"log/slog"
	"os"
	"os/exec"
	"os/signal"
	"path/filepath"
	"strconv"
	"strings"
	"syscall"
	"testing"
	"time"
)

// TestMain doubles as a runner process for the restart test: with
// STACK_CI_TEST_RUNNER=DATA it runs a Runner on DATA until killed.
func TestMain(m *testing.M) {
	if data := os.Getenv("STACK_CI_TEST_RUNNER"); data != "" {
		ctx, stop := signal.NotifyContext(context.Background(), syscall.SIGTERM, syscall.SIGINT)
		defer stop()
		r := &Runner{DataDir: data, Poll: 20 * time.Millisecond}
		if err := r.Run(ctx); err != nil {
			fmt.Fprintln(os.Stderr, err)
			os.Exit(1)
		}
		os.Exit(0)
	}
	os.Exit(m.Run())
}

// gitRepo is a bare repository and a work tree that pushes to it.
type gitRepo struct {
	t    testing.TB
	bare string
	work string
}

func newGitRepo(t testing.TB) *gitRepo {
	t.Helper()
	dir := t.TempDir()
	g := &gitRepo{t: t, bare: filepath.Join(dir, "repo.git"), work: filepath.Join(dir, "work")}
	g.git("", "init", "--quiet", "--bare", "--initial-branch=main", g.bare)
	g.git("", "init", "--quiet", "--initial-branch=main", g.work)
	return g
}

func (g *gitRepo) git(dir string, args ...string) string {
	g.t.Helper()
	if dir != "" {
		args = append([]string{"-C", dir}, args...)
	}
	cmd := exec.Command("git", append([]string{"-c", "user.name=CI Test", "-c", "user.email=ci@test", "-c", "commit.gpgsign=false"}, args...)...)
	cmd.Env = gitCmd("").Environ()
	out, err := cmd.CombinedOutput()
	if err != nil {
		g.t.Fatalf("git %s: %v\n%s", strings.Join(args, " "), err, out)
	}
	return strings.TrimSpace(string(out))
}

// commit writes files (a path ending in a script name under ci/ other than
// pipelines.yaml is made executable), commits them to branch and pushes.
// It returns the commit id.
func (g *gitRepo) commit(branch string, files map[string]string) string {
	g.t.Helper()
	for name, body := range files {
		p := filepath.Join(g.work, filepath.FromSlash(name))
		if err := os.MkdirAll(filepath.Dir(p), 0o755); err != nil {
			g.t.Fatal(err)
		}
		mode := os.FileMode(0o644)
		if strings.HasPrefix(body, "#!") {
			mode = 0o755
		}
		if err := os.WriteFile(p, []byte(body), mode); err != nil {
			g.t.Fatal(err)
		}
		if err := os.Chmod(p, mode); err != nil {
			g.t.Fatal(err)
		}
	}
	g.git(g.work, "add", "-A")
	g.git(g.work, "commit", "--quiet", "--allow-empty", "-m", "change")
	id := g.git(g.work, "rev-parse", "HEAD")
	g.git(g.work, "push", "--quiet", "--force", g.bare, "HEAD:refs/heads/"+branch)
	return id
}

// push queues the jobs of a push of commit to ref.
func (g *gitRepo) push(data, ref, commit string) []*Job {
	g.t.Helper()
	jobs, err := Enqueue(data, Event{Repo: "repo", RepoPath: g.bare, Ref: ref, New: commit, Trigger: Push})
	if err != nil {
		g.t.Fatalf("Enqueue %s %s: %v", ref, commit, err)
	}
	return jobs
}

// pipelines is a pipelines file with one pipeline per name, each running
// ci/NAME on pushes to any branch, with the given extra lines.
func pipelines(names ...string) string {
	var b strings.Builder
	b.WriteString("pipelines:\n")
	for _, n := range names {
		fmt.Fprintf(&b, "  %s:\n    run: ci/%s\n    on: {push: [\"refs/heads/*\"]}\n", n, n)
	}
	return b.String()
}

// startRunner runs r in the background until the test ends.
func startRunner(t testing.TB, r *Runner) (stop func()) {
	t.Helper()
	if r.Logger == nil {
		r.Logger = slog.New(slog.NewTextHandler(io.Discard, nil))
	}
	if r.Poll == 0 {
		r.Poll = 20 * time.Millisecond
	}
	if r.KillGrace == 0 {
		r.KillGrace = time.Second
	}
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan error, 1)
	go func() { done <- r.Run(ctx) }()
	stopped := false
	stop = func() {
		if stopped {
			return
		}
		stopped = true
		cancel()
		select {
		case err := <-done:
			if err != nil {
				t.Errorf("runner: %v", err)
			}
		case <-time.After(30 * time.Second):
			t.Errorf("runner did not stop")
		}
	}
	t.Cleanup(stop)
	return stop
}

// waitJob polls job id until ok says yes, failing the test after d.
func waitJob(t *testing.T, data, id string, d time.Duration, ok func(*Job) bool) *Job {
	t.Helper()
	end := time.Now().Add(d)
	for {
		j, err := Get(data, id)
		if err != nil {
			t.Fatal(err)
		}
		if ok(j) {
			return j
		}
		if time.Now().After(end) {
			log, _ := os.ReadFile(filepath.Join(data, "ci", "jobs", j.ID, "log"))
			t.Fatalf("job %s still %s after %s; log:\n%s", j.ID, j.State, d, log)
		}
		time.Sleep(20 * time.Millisecond)
	}
}

func final(j *Job) bool { return j.State.Final() }

func jobLog(t *testing.T, data, id string) string {
	t.Helper()
	b, err := os.ReadFile(filepath.Join(data, "ci", "jobs", id, "log"))
	if err != nil {
		t.Fatal(err)
	}
	return string(b)
}

// logSoFar is a job's log as far as it is written, "" before it exists:
// for conditions polled while the job starts.
func logSoFar(data, id string) string {
	b, _ := os.ReadFile(filepath.Join(data, "ci", "jobs", id, "log"))
	return string(b)
}

// alive reports whether pid is a live (not zombie) process.
func alive(pid int) bool {
	b, err := os.ReadFile(fmt.Sprintf("/proc/%d/stat", pid))
	if err != nil {
		return false
	}
	i := strings.LastIndexByte(string(b), ')')
	f := strings.Fields(string(b[i+1:]))
	return len(f) > 0 && f[0] != "Z" && f[0] != "X"
}

// jobProcs returns the live processes of this machine that carry job id's
// STACK_CI_JOB: the job's sandbox init and every process of the job, as
// this machine numbers them (a job's own $$ and $! count in its PID
// namespace).
func jobProcs(id string) []int {
	ents, _ := os.ReadDir("/proc")
	var pids []int
	for _, e := range ents {
		pid, err := strconv.Atoi(e.Name())
		if err == nil && alive(pid) && hasEnv(pid, "STACK_CI_JOB="+id) {
			pids = append(pids, pid)
		}
	}
	return pids
}

// waitGate is a shell line that waits until the test calls openGate for
// the job: the file is in the job's work directory, the one place both see.
const waitGate = "while [ ! -e ../gate ]; do sleep 0.05; done\n"

// openGate lets job id, waiting in waitGate, go on.
func openGate(t *testing.T, data, id string) {
	t.Helper()
	if err := os.WriteFile(filepath.Join(data, "ci", "work", id, "gate"), nil, 0o644); err != nil {
		t.Fatal(err)
	}
}

// waitLogged waits until job id's log holds s, and returns the log.
func waitLogged(t *testing.T, data, id, s string) string {
	t.Helper()
	var log string
	waitJob(t, data, id, 30*time.Second, func(j *Job) bool {
		b, _ := os.ReadFile(filepath.Join(data, "ci", "jobs", id, "log"))
		log = string(b)
		if j.State.Final() && !strings.Contains(log, s) {
			t.Fatalf("job %s ended (%s: %s) without logging %q:\n%s", id, j.State, j.Error, s, log)
		}
		return strings.Contains(log, s)
	})
	return log
}
