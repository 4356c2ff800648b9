package ci

import (
	"fmt"
	"io"
	"os"
	"sync"
	"time"
)

// MaxLogPart bounds a job's log: past it the log is rotated, its current
// part renamed to log.1 (replacing an older one) and the log begun anew
// with a line saying so. A job keeps at most two parts on disk, the newest
// output always in log.
const MaxLogPart = 32 << 20

// cappedLog is a job's log file, rotated past max bytes.
type cappedLog struct {
	mu   sync.Mutex
	path string
	max  int64
	f    *os.File
	n    int64
	cut  int // rotations so far
}

func openCappedLog(path string, max int64) (*cappedLog, error) {
	f, err := os.OpenFile(path, os.O_WRONLY|os.O_APPEND|os.O_CREATE, 0o600)
	if err != nil {
		return nil, err
	}
	l := &cappedLog{path: path, max: max, f: f}
	if fi, err := f.Stat(); err == nil {
		l.n = fi.Size()
	}
	return l, nil
}

func (l *cappedLog) Write(p []byte) (int, error) {
	l.mu.Lock()
	defer l.mu.Unlock()
	if l.n > 0 && l.n+int64(len(p)) > l.max {
		if err := l.rotate(); err != nil {
			return 0, err
		}
	}
	n, err := l.f.Write(p)
	l.n += int64(n)
	return n, err
}

// rotate moves the current part to log.1 and starts a new one (l.mu held).
func (l *cappedLog) rotate() error {
	if err := os.Rename(l.path, l.path+".1"); err != nil {
		return err
	}
	f, err := os.OpenFile(l.path, os.O_WRONLY|os.O_APPEND|os.O_CREATE|os.O_EXCL, 0o600)
	if err != nil {
		return err
	}
	l.f.Close()
	l.f, l.n = f, 0
	l.cut++
	w, err := fmt.Fprintf(f, "==> log rotated at %s (part %d): the previous %d MiB are in %s.1, older output was dropped\n",
		time.Now().UTC().Format(time.RFC3339), l.cut+1, l.max>>20, "log")
	l.n += int64(w)
	return err
}

func (l *cappedLog) Close() error {
	l.mu.Lock()
	defer l.mu.Unlock()
	return l.f.Close()
}

// pipeTo returns a pipe whose writing end a job's processes write to; what
// they write is copied into w. wait closes this process's copy of the
// writing end and waits (at most grace) for the copy to end: when every
// process holding the pipe is gone.
func pipeTo(w io.Writer, grace time.Duration) (out *os.File, wait func(), err error) {
	r, pw, err := os.Pipe()
	if err != nil {
		return nil, nil, err
	}
	done := make(chan struct{})
	go func() {
		io.Copy(w, r)
		close(done)
	}()
	return pw, func() {
		pw.Close()
		select {
		case <-done:
		case <-time.After(grace):
		}
		r.Close()
		<-done
	}, nil
}
