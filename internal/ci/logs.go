package ci

import (
	"context"
	"errors"
	"fmt"
	"io"
	"io/fs"
	"os"
	"time"
)

// ErrNoRunner is returned when following a job that is marked running but
// whose runner is gone.
var ErrNoRunner = errors.New("no CI runner is alive")

// Logs writes the log of job id (a job id or number, as Get takes) to w.
// With follow it goes on writing what the job appends, polling every poll
// (0 means 200ms), until the job ends, ctx ends, or the job is running with
// no live runner to end it (ErrNoRunner). It returns the job as last read.
func Logs(ctx context.Context, dataDir, id string, w io.Writer, follow bool, poll time.Duration) (*Job, error) {
	if poll <= 0 {
		poll = 200 * time.Millisecond
	}
	s, err := readStore(dataDir)
	if err != nil {
		return nil, err
	}
	j, err := s.find(id)
	if err != nil {
		return nil, err
	}
	var f *os.File
	defer func() {
		if f != nil {
			f.Close()
		}
	}()
	var copyNew func() error
	copyNew = func() error {
		if f == nil {
			f, err = os.Open(s.logFile(j.ID))
			if errors.Is(err, fs.ErrNotExist) {
				f = nil
				return nil // not started yet
			}
			if err != nil {
				return err
			}
		}
		if _, err := io.Copy(w, f); err != nil {
			return err
		}
		// Rotated (MaxLogPart): what was copied is the old part, to its
		// end; the new part is read from its start next time.
		if cur, err := os.Stat(s.logFile(j.ID)); err == nil {
			if open, err := f.Stat(); err == nil && !os.SameFile(cur, open) {
				f.Close()
				f = nil
				return copyNew()
			}
		}
		return nil
	}
	for {
		// Read the state before the log: a job writes its last log line
		// before it records its end, so a final state here means the log
		// copied next is complete.
		if j, err = s.read(j.ID); err != nil {
			return nil, err
		}
		if err := copyNew(); err != nil {
			return j, fmt.Errorf("log of job %s: %w", j.ID, err)
		}
		if !follow || j.State.Final() {
			return j, nil
		}
		if j.State == Running && !s.runnerAlive() {
			// The runner may have just finished it and exited.
			if j2, err := s.read(j.ID); err == nil && j2.State.Final() {
				j = j2
				continue
			}
			return j, fmt.Errorf("job %s is marked running but %w: it will be marked interrupted when `stack serve` starts again", j.ID, ErrNoRunner)
		}
		select {
		case <-ctx.Done():
			return j, ctx.Err()
		case <-time.After(poll):
		}
	}
}
