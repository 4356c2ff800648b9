package ci

import (
	"encoding/json"
	"errors"
	"fmt"
	"io/fs"
	"log/slog"
	"os"
	"path/filepath"
	"slices"
	"strconv"
	"strings"
	"syscall"
	"time"
)

// store is the <data>/ci directory.
type store struct {
	dir string
}

func openStore(dataDir string) (*store, error) {
	if dataDir == "" {
		return nil, errors.New("no data directory given")
	}
	abs, err := filepath.Abs(dataDir)
	if err != nil {
		return nil, err
	}
	s := &store{dir: filepath.Join(abs, "ci")}
	for _, d := range []string{s.dir, s.path("jobs"), s.path("queue"), s.path("work")} {
		if err := os.MkdirAll(d, 0o700); err != nil {
			return nil, fmt.Errorf("ci data directory: %w", err)
		}
	}
	return s, nil
}

// readStore opens an existing <data>/ci without creating it.
func readStore(dataDir string) (*store, error) {
	abs, err := filepath.Abs(dataDir)
	if err != nil {
		return nil, err
	}
	s := &store{dir: filepath.Join(abs, "ci")}
	if _, err := os.Stat(s.path("jobs")); err != nil {
		if errors.Is(err, fs.ErrNotExist) {
			return nil, fmt.Errorf("no CI jobs in %s: push to a repository of `stack serve` or queue one with `stack ci run`", abs)
		}
		return nil, err
	}
	return s, nil
}

func (s *store) path(elem ...string) string {
	return filepath.Join(append([]string{s.dir}, elem...)...)
}

func (s *store) jobFile(id string) string { return s.path("jobs", id, "job.json") }
func (s *store) logFile(id string) string { return s.path("jobs", id, "log") }

// lock takes the queue lock, which serializes queueing, superseding and
// claiming across processes. It blocks until the lock is free.
func (s *store) lock() (unlock func(), err error) {
	return flock(s.path("lock"), syscall.LOCK_EX)
}

// flock opens (creating) file and locks it with how. The lock goes with the
// returned function or the process: a dead holder never blocks anyone.
func flock(file string, how int) (func(), error) {
	f, err := os.OpenFile(file, os.O_RDWR|os.O_CREATE, 0o600)
	if err != nil {
		return nil, err
	}
	for {
		err = syscall.Flock(int(f.Fd()), how)
		if err != syscall.EINTR {
			break
		}
	}
	if err != nil {
		f.Close()
		return nil, err
	}
	return func() { f.Close() }, nil
}

// runnerLock takes the lock that makes a runner the only one on this data
// directory, waiting up to wait for a briefly held check (RunnerAlive).
func (s *store) runnerLock(wait time.Duration) (func(), error) {
	deadline := time.Now().Add(wait)
	for {
		unlock, err := flock(s.path("runner.lock"), syscall.LOCK_EX|syscall.LOCK_NB)
		if err == nil {
			return unlock, nil
		}
		if err != syscall.EWOULDBLOCK || time.Now().After(deadline) {
			if err == syscall.EWOULDBLOCK {
				return nil, fmt.Errorf("another CI runner is using %s: stop it first (only one `stack serve` per data directory)", filepath.Dir(s.dir))
			}
			return nil, err
		}
		time.Sleep(50 * time.Millisecond)
	}
}

// runnerAlive reports whether some process holds the runner lock.
func (s *store) runnerAlive() bool {
	unlock, err := flock(s.path("runner.lock"), syscall.LOCK_SH|syscall.LOCK_NB)
	if err != nil {
		return err == syscall.EWOULDBLOCK
	}
	unlock()
	return false
}

// RunnerAlive reports whether a runner is working on dataDir now.
func RunnerAlive(dataDir string) bool {
	s, err := readStore(dataDir)
	return err == nil && s.runnerAlive()
}

// writeFile replaces file with data atomically: readers see the old or the
// new content, never a part.
func writeFile(file string, data []byte) error {
	f, err := os.CreateTemp(filepath.Dir(file), "."+filepath.Base(file)+".*")
	if err != nil {
		return err
	}
	tmp := f.Name()
	_, err = f.Write(data)
	if err == nil {
		err = f.Sync()
	}
	if cerr := f.Close(); err == nil {
		err = cerr
	}
	if err == nil {
		err = os.Rename(tmp, file)
	}
	if err != nil {
		os.Remove(tmp)
	}
	return err
}

func (s *store) write(j *Job) error {
	b, err := json.MarshalIndent(j, "", "  ")
	if err != nil {
		return err
	}
	if err := writeFile(s.jobFile(j.ID), append(b, '\n')); err != nil {
		return fmt.Errorf("save job %s: %w", j.ID, err)
	}
	return nil
}

func (s *store) read(id string) (*Job, error) {
	b, err := os.ReadFile(s.jobFile(id))
	if err != nil {
		if errors.Is(err, fs.ErrNotExist) {
			return nil, fmt.Errorf("no job %s: see `stack ci list`", id)
		}
		return nil, err
	}
	j, err := decodeJob(b)
	if err != nil {
		return nil, fmt.Errorf("job %s: %s: %w", id, s.jobFile(id), err)
	}
	return j, nil
}

// list returns every readable job, oldest first. Unreadable ones are logged
// and skipped.
func (s *store) list() ([]*Job, error) {
	ents, err := os.ReadDir(s.path("jobs"))
	if err != nil {
		return nil, err
	}
	var jobs []*Job
	for _, e := range ents {
		if !e.IsDir() || seqOf(e.Name()) < 0 {
			continue
		}
		j, err := s.read(e.Name())
		if err != nil {
			slog.Warn("ci: skipping unreadable job", "job", e.Name(), "err", err)
			continue
		}
		jobs = append(jobs, j)
	}
	slices.SortFunc(jobs, func(a, b *Job) int { return cmpInt(a.Seq, b.Seq) })
	return jobs, nil
}

// queued returns the ids marked queued, oldest first. It is the runner's
// poll: one directory read, no job file opened.
func (s *store) queued() ([]string, error) {
	f, err := os.Open(s.path("queue"))
	if err != nil {
		return nil, err
	}
	names, err := f.Readdirnames(-1)
	f.Close()
	if err != nil {
		return nil, err
	}
	ids := names[:0]
	for _, n := range names {
		if seqOf(n) >= 0 {
			ids = append(ids, n)
		}
	}
	slices.SortFunc(ids, func(a, b string) int { return cmpInt(seqOf(a), seqOf(b)) })
	return ids, nil
}

func (s *store) mark(id string) error {
	return os.WriteFile(s.path("queue", id), nil, 0o600)
}

func (s *store) unmark(id string) {
	if err := os.Remove(s.path("queue", id)); err != nil && !errors.Is(err, fs.ErrNotExist) {
		slog.Warn("ci: remove queue marker", "job", id, "err", err)
	}
}

// nextSeq hands out the next job number. Hold the queue lock.
func (s *store) nextSeq() (int64, error) {
	var n int64
	b, err := os.ReadFile(s.path("seq"))
	switch {
	case err == nil:
		n, err = strconv.ParseInt(strings.TrimSpace(string(b)), 10, 64)
		if err != nil {
			return 0, fmt.Errorf("%s: %w", s.path("seq"), err)
		}
	case errors.Is(err, fs.ErrNotExist):
		// A new directory, or a lost counter: continue after the last job.
		ents, err := os.ReadDir(s.path("jobs"))
		if err != nil {
			return 0, err
		}
		for _, e := range ents {
			n = max(n, seqOf(e.Name()))
		}
	default:
		return 0, err
	}
	n++
	if err := writeFile(s.path("seq"), []byte(strconv.FormatInt(n, 10)+"\n")); err != nil {
		return 0, err
	}
	return n, nil
}

func cmpInt(a, b int64) int {
	switch {
	case a < b:
		return -1
	case a > b:
		return 1
	}
	return 0
}

// List returns the jobs in dataDir, oldest first: none if dataDir exists
// but never had a job, an error if dataDir does not exist.
func List(dataDir string) ([]*Job, error) {
	s, err := readStore(dataDir)
	if err != nil {
		if _, serr := os.Stat(dataDir); serr == nil {
			return nil, nil
		}
		return nil, err
	}
	return s.list()
}

// Get returns one job. id is a full job id or just its number (the digits
// after the last dash, with or without leading zeros).
func Get(dataDir, id string) (*Job, error) {
	s, err := readStore(dataDir)
	if err != nil {
		return nil, err
	}
	return s.find(id)
}

func (s *store) find(id string) (*Job, error) {
	if seqOf(id) >= 0 {
		return s.read(id)
	}
	n, err := strconv.ParseInt(id, 10, 64)
	if err != nil || n <= 0 || strings.HasPrefix(id, "+") {
		return nil, fmt.Errorf("%q is not a job id: give one from `stack ci list` (e.g. 20260102-150405-000042, or 42)", id)
	}
	ents, err := os.ReadDir(s.path("jobs"))
	if err != nil {
		return nil, err
	}
	for _, e := range ents {
		if seqOf(e.Name()) == n {
			return s.read(e.Name())
		}
	}
	return nil, fmt.Errorf("no job number %d: see `stack ci list`", n)
}
