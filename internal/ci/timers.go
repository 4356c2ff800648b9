package ci

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io/fs"
	"os"
	"strings"
	"time"

	"github.com/hashbang/stack/internal/gitserve"
)

// timers is the runner's view of the timer pipelines: each repository's
// default branch as last read, and when each timer last fired. The fire
// times are persisted in <data>/ci/timers.json before a timer's job is
// queued, so a restart never fires a timer twice (a crash between the two
// skips one firing instead).
type timers struct {
	file  string
	last  map[string]time.Time // "repo/pipeline" -> last fire (or first sighting)
	heads map[string]repoHead  // repo path -> what its HEAD declares
	warn  map[string]string    // repo -> last warning, to log each once
}

type repoHead struct {
	ref, commit string
	cfg         *Config
}

func loadTimers(file string) (*timers, error) {
	t := &timers{file: file, last: map[string]time.Time{}, heads: map[string]repoHead{}, warn: map[string]string{}}
	b, err := os.ReadFile(file)
	if errors.Is(err, fs.ErrNotExist) {
		return t, nil
	}
	if err != nil {
		return nil, err
	}
	if err := json.Unmarshal(b, &t.last); err != nil {
		return nil, fmt.Errorf("%s: %w (delete it to reset the timers)", file, err)
	}
	return t, nil
}

func (t *timers) save() error {
	b, err := json.MarshalIndent(t.last, "", "  ")
	if err != nil {
		return err
	}
	return writeFile(t.file, append(b, '\n'))
}

func (r *Runner) timerLoop(ctx context.Context, s *store) {
	t, err := loadTimers(s.path("timers.json"))
	if err != nil {
		r.Logger.Error("ci: timers off", "err", err)
		return
	}
	tick := time.NewTicker(r.TimerTick)
	defer tick.Stop()
	for {
		r.checkTimers(ctx, t, time.Now())
		select {
		case <-ctx.Done():
			return
		case <-tick.C:
		}
	}
}

// warnOnce logs a problem with repo unless it is the one logged last.
func (r *Runner) warnOnce(t *timers, repo, msg string, err error) {
	text := msg + ": " + err.Error()
	if t.warn[repo] != text {
		t.warn[repo] = text
		r.Logger.Warn("ci: "+msg, "repo", repo, "err", err)
	}
}

// checkTimers queues the jobs of the timers due at now. A timer seen for the
// first time starts counting from now rather than firing at once.
func (r *Runner) checkTimers(ctx context.Context, t *timers, now time.Time) {
	repos, err := r.Repos()
	if err != nil {
		r.warnOnce(t, "", "list repositories for timers", err)
		return
	}
	dirty := false
	for _, repo := range repos {
		ref, commit, err := head(ctx, repo.Path)
		if err != nil {
			r.warnOnce(t, repo.Name, "read default branch", err)
			continue
		}
		if commit == "" {
			continue // nothing pushed yet
		}
		h, ok := t.heads[repo.Path]
		if !ok || h.commit != commit || h.ref != ref {
			cfg, err := ReadPipelines(ctx, repo.Path, commit)
			if err != nil {
				r.warnOnce(t, repo.Name, "timers off until the pipelines file is fixed", err)
			}
			h = repoHead{ref: ref, commit: commit, cfg: cfg}
			t.heads[repo.Path] = h
		}
		if h.cfg == nil {
			continue
		}
		for _, p := range h.cfg.Pipelines {
			if p.Timer == "" {
				continue
			}
			key := repo.Name + "/" + p.Name
			last, ok := t.last[key]
			if !ok {
				t.last[key], dirty = now.UTC(), true
				continue
			}
			if next := p.Next(last); next.IsZero() || now.Before(next) {
				continue
			}
			t.last[key], dirty = now.UTC(), false
			if err := t.save(); err != nil {
				r.Logger.Error("ci: save timers", "err", err)
				continue
			}
			jobs, err := Enqueue(r.DataDir, Event{
				Repo: repo.Name, RepoPath: repo.Path, Ref: ref, New: commit,
				Trigger: Timer, Pipeline: p.Name,
			})
			if err != nil {
				r.warnOnce(t, repo.Name, "queue timer job", err)
				continue
			}
			for _, j := range jobs {
				r.Logger.Info("ci: timer fired", "job", j.ID, "pipeline", p.Name, "repo", repo.Name, "timer", p.Timer)
			}
		}
	}
	if dirty {
		if err := t.save(); err != nil {
			r.Logger.Error("ci: save timers", "err", err)
		}
	}
}

// ServedRepos lists the repositories the git server serves from the data
// directory dataDir (gitserve.Paths: DATA/git/NAME.git and
// DATA/git/GROUP/NAME.git, named NAME and GROUP/NAME). It suits
// Runner.Repos.
func ServedRepos(dataDir string) func() ([]Repo, error) {
	return func() ([]Repo, error) {
		paths, err := gitserve.Paths(dataDir)
		if err != nil {
			return nil, err
		}
		repos := make([]Repo, len(paths))
		for i, p := range paths {
			repos[i] = Repo{Name: p.Name, Path: p.Path}
		}
		return repos, nil
	}
}

// ServedRepo returns the repository called name (NAME or GROUP/NAME, a
// trailing .git allowed) that the git server serves from dataDir
// (gitserve.Resolve).
func ServedRepo(dataDir, name string) (Repo, error) {
	name = strings.TrimSuffix(name, ".git")
	if err := gitserve.ValidName(name); err != nil {
		return Repo{}, fmt.Errorf("%q is not a repository name: %w", name, err)
	}
	p, err := gitserve.Resolve(dataDir, name)
	if errors.Is(err, fs.ErrNotExist) {
		return Repo{}, fmt.Errorf("no repository %q in %s: see `stack repo list`", name, gitserve.RepoRoot(dataDir))
	}
	if err != nil {
		return Repo{}, err
	}
	return Repo{Name: name, Path: p}, nil
}
