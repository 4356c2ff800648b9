package ci

import (
	"context"
	"fmt"
	"os"
	"path/filepath"
	"regexp"
	"strings"
	"time"
)

// Event is something that may start pipelines: a ref update received by
// git, a timer firing, or a person asking.
type Event struct {
	Repo     string  // the repository's name, as the git server knows it
	RepoPath string  // the bare repository on disk
	Ref      string  // the full ref name: refs/heads/main
	Old      string  // the ref's commit before a push ("" or zeros if new)
	New      string  // the ref's object after the push or now
	Trigger  Trigger // Push, Timer or Manual
	// Pipeline, when set, queues only that pipeline, whatever its triggers
	// (manual runs and timers). When empty, the pipelines whose on.push
	// patterns match Ref are queued.
	Pipeline string
}

var objectRE = regexp.MustCompile(`^([0-9a-f]{40}|[0-9a-f]{64})$`)

// enqueueTimeout bounds the git commands of one Enqueue.
const enqueueTimeout = time.Minute

// Enqueue queues the jobs ev starts and returns them. It reads the
// pipelines from ev.New itself (git cat-file against the bare repository,
// never a work tree) and writes the jobs to dataDir/ci, where a runner in
// any process picks them up. A queued job for the same repository,
// pipeline and ref that has not started is marked superseded by the new one.
//
// A deleted ref, a commit without ci/pipelines.yaml or a push no pipeline
// matches queue nothing and are not errors; a broken pipelines file is an
// error saying file:line (a post-receive hook shows it to the pusher).
func Enqueue(dataDir string, ev Event) ([]*Job, error) {
	ctx, cancel := context.WithTimeout(context.Background(), enqueueTimeout)
	defer cancel()
	if err := ev.check(); err != nil {
		return nil, err
	}
	if strings.Trim(ev.New, "0") == "" {
		return nil, nil // the ref was deleted
	}
	repoPath, err := filepath.Abs(ev.RepoPath)
	if err != nil {
		return nil, err
	}
	if _, err := os.Stat(filepath.Join(repoPath, "HEAD")); err != nil {
		return nil, fmt.Errorf("repository %s: %s is not a bare git repository", ev.Repo, repoPath)
	}
	commit, err := commitOf(ctx, repoPath, ev.New)
	if err != nil {
		return nil, err
	}
	if commit == "" {
		if _, err := git(ctx, repoPath, "cat-file", "-e", ev.New); err != nil {
			return nil, fmt.Errorf("repository %s has no object %s (for %s)", ev.Repo, ev.New, ev.Ref)
		}
		return nil, nil // a tag of a tree or blob: nothing to check out
	}
	cfg, err := ReadPipelines(ctx, repoPath, commit)
	if err != nil {
		return nil, err
	}
	var pipelines []*Pipeline
	switch {
	case ev.Pipeline != "":
		var p *Pipeline
		if cfg != nil {
			p = cfg.Pipeline(ev.Pipeline)
		}
		if p == nil {
			return nil, fmt.Errorf("no pipeline %q in %s at %s (%.12s): see its %s", ev.Pipeline, ev.Repo, ev.Ref, commit, PipelinesFile)
		}
		pipelines = append(pipelines, p)
	case cfg != nil:
		for _, p := range cfg.Pipelines {
			if p.MatchesPush(ev.Ref) {
				pipelines = append(pipelines, p)
			}
		}
	}
	if len(pipelines) == 0 {
		return nil, nil
	}

	s, err := openStore(dataDir)
	if err != nil {
		return nil, err
	}
	unlock, err := s.lock()
	if err != nil {
		return nil, fmt.Errorf("lock CI queue: %w", err)
	}
	defer unlock()
	waiting, err := s.queuedJobs()
	if err != nil {
		return nil, err
	}
	var jobs []*Job
	for _, p := range pipelines {
		seq, err := s.nextSeq()
		if err != nil {
			return jobs, fmt.Errorf("number a job: %w", err)
		}
		now := time.Now().UTC()
		j := &Job{
			ID: jobID(now, seq), Seq: seq,
			Repo: ev.Repo, RepoPath: repoPath,
			Pipeline: p.Name, Run: p.Run, Timeout: Duration(p.Timeout),
			Ref: ev.Ref, Commit: commit, Trigger: ev.Trigger,
			State: Queued, Queued: now,
		}
		if err := os.Mkdir(filepath.Dir(s.jobFile(j.ID)), 0o700); err != nil {
			return jobs, fmt.Errorf("job %s: %w", j.ID, err)
		}
		if err := s.write(j); err != nil {
			return jobs, err
		}
		if err := s.mark(j.ID); err != nil {
			return jobs, err
		}
		for _, old := range waiting {
			if old.State == Queued && old.key() == j.key() {
				old.State, old.Finished, old.SupersededBy = Superseded, now, j.ID
				if err := s.write(old); err != nil {
					return jobs, err
				}
				s.unmark(old.ID)
			}
		}
		waiting = append(waiting, j)
		jobs = append(jobs, j)
	}
	return jobs, nil
}

// queuedJobs reads the jobs marked queued. Hold the queue lock.
func (s *store) queuedJobs() ([]*Job, error) {
	ids, err := s.queued()
	if err != nil {
		return nil, err
	}
	var jobs []*Job
	for _, id := range ids {
		if j, err := s.read(id); err == nil {
			jobs = append(jobs, j)
		}
	}
	return jobs, nil
}

func (ev *Event) check() error {
	switch {
	case ev.Repo == "" || hasControl(ev.Repo):
		return fmt.Errorf("CI event without a valid repository name (%q)", ev.Repo)
	case ev.RepoPath == "":
		return fmt.Errorf("CI event for %s without the repository's path", ev.Repo)
	case !strings.HasPrefix(ev.Ref, "refs/") && ev.Ref != "HEAD" || hasControl(ev.Ref):
		return fmt.Errorf("CI event for %s: %q is not a full ref name like refs/heads/main", ev.Repo, ev.Ref)
	case !objectRE.MatchString(ev.New):
		return fmt.Errorf("CI event for %s %s: %q is not an object id", ev.Repo, ev.Ref, ev.New)
	case ev.Trigger != Push && ev.Trigger != Timer && ev.Trigger != Manual:
		return fmt.Errorf("CI event for %s %s: unknown trigger %q (push, timer or manual)", ev.Repo, ev.Ref, ev.Trigger)
	case ev.Pipeline != "" && !nameRE.MatchString(ev.Pipeline):
		return fmt.Errorf("%q is not a pipeline name", ev.Pipeline)
	}
	return nil
}
