package node

import (
	"bytes"
	"context"
	"fmt"
	"io"
	"log/slog"
	"os"
	"path/filepath"
	"strings"
	"syscall"
	"time"
)

// The supervisor's bounds: a component that died is restarted at once,
// then after a backoff that doubles from restartBackoff up to maxBackoff;
// one that died maxRestarts times within crashWindow is in a crash loop
// and left stopped, reported by `stack status` with its last log lines.
const (
	restartBackoff = time.Second
	maxBackoff     = 30 * time.Second
	maxRestarts    = 5
	crashWindow    = 2 * time.Minute
	superviseTick  = 500 * time.Millisecond
	// maxLog is the size past which a component's log is rotated when it
	// (re)starts: the newest part is kept in LOG, the one before in LOG.1.
	maxLog = 16 << 20
)

// lock takes the node's lock, held by Up, Down and each round of the
// supervisor, so that only one of them starts or stops components at a
// time. With wait false it fails at once when the lock is held.
func (n *Node) lock(wait bool) (unlock func(), err error) {
	if err := os.MkdirAll(n.Dir, 0o700); err != nil {
		return nil, err
	}
	f, err := os.OpenFile(n.path("node.lock"), os.O_CREATE|os.O_RDWR, 0o600)
	if err != nil {
		return nil, err
	}
	how := syscall.LOCK_EX
	if !wait {
		how |= syscall.LOCK_NB
	}
	if err := syscall.Flock(int(f.Fd()), how); err != nil {
		f.Close()
		return nil, err
	}
	return func() { f.Close() }, nil
}

// Supervise runs the node's supervisor until ctx ends or the node no
// longer names this process as its supervisor: every component recorded
// in state.json that died is started again with the command line it had,
// with backoff, and given up on in a crash loop. `stack up` starts it
// (`stack supervise DIR`) once the components are healthy.
func (n *Node) Supervise(ctx context.Context, log *slog.Logger) error {
	t := time.NewTicker(superviseTick)
	defer t.Stop()
	for {
		done, err := n.superviseOnce(time.Now(), log)
		if err != nil {
			log.Error("supervise", "err", err)
		}
		if done {
			return nil
		}
		select {
		case <-ctx.Done():
			return nil
		case <-t.C:
		}
	}
}

// superviseOnce is one round of the supervisor at now; done reports that
// this process is no longer the node's supervisor.
func (n *Node) superviseOnce(now time.Time, log *slog.Logger) (done bool, err error) {
	unlock, err := n.lock(false)
	if err != nil {
		return false, nil // up or down is at work: next round
	}
	defer unlock()
	st, err := n.ReadState()
	if err != nil {
		return false, err
	}
	if st.Supervisor == nil || st.Supervisor.PID != os.Getpid() {
		return true, nil
	}
	changed := false
	procs := make([]*Proc, 0, len(st.Procs)+len(st.Services))
	for i := range st.Procs {
		procs = append(procs, &st.Procs[i])
	}
	for i := range st.Services {
		procs = append(procs, &st.Services[i])
	}
	for _, p := range procs {
		if p.Failed != "" || len(p.Args) == 0 || p.Alive() {
			continue
		}
		// Forget restarts older than the window.
		recent := p.Restarts[:0]
		for _, r := range p.Restarts {
			if now.Sub(time.UnixMilli(r)) < crashWindow {
				recent = append(recent, r)
			}
		}
		p.Restarts = recent
		if len(p.Restarts) >= maxRestarts {
			p.Failed = fmt.Sprintf("crash loop: exited %d times within %s, not restarted (stack up starts it again); last lines of %s: %s",
				len(p.Restarts)+1, crashWindow, p.Log, tailLines(p.Log, 5))
			log.Error("crash loop", "component", p.Component, "restarts", len(p.Restarts), "log", p.Log)
			changed = true
			continue
		}
		if n := len(p.Restarts); n > 0 {
			wait := min(restartBackoff<<(n-1), maxBackoff)
			if now.Sub(time.UnixMilli(p.Restarts[n-1])) < wait {
				continue
			}
		}
		old := p.PID
		if err := n.spawn(p, "stack supervise"); err != nil {
			p.Failed = err.Error()
			log.Error("restart failed", "component", p.Component, "err", err)
		} else {
			log.Info("restarted", "component", p.Component, "old_pid", old, "pid", p.PID)
		}
		p.Restarts = append(p.Restarts, now.UnixMilli())
		changed = true
	}
	if changed {
		return false, n.writeState(st)
	}
	return false, nil
}

// ensureSupervisor starts the supervisor when none runs for this node.
// The caller holds the node's lock.
func (n *Node) ensureSupervisor(st *State) error {
	if len(n.SupervisorArgs) == 0 || (st.Supervisor != nil && st.Supervisor.Alive()) {
		return nil
	}
	p := Proc{Component: "supervisor", Args: n.SupervisorArgs}
	if err := n.spawn(&p, "stack up"); err != nil {
		return err
	}
	st.Supervisor = &p
	return n.writeState(st)
}

// openLog opens a component's log for appending, rotating it first when
// it has grown past maxLog.
func openLog(path string) (*os.File, error) {
	if fi, err := os.Stat(path); err == nil && fi.Size() > maxLog {
		if err := os.Rename(path, path+".1"); err != nil {
			return nil, err
		}
	}
	return os.OpenFile(path, os.O_WRONLY|os.O_CREATE|os.O_APPEND, 0o600)
}

// tailLines returns the last n non-empty lines of the file at path, joined
// by " | ", each cut to 200 bytes.
func tailLines(path string, n int) string {
	f, err := os.Open(path)
	if err != nil {
		return "(no log)"
	}
	defer f.Close()
	const tail = 16 << 10
	if fi, err := f.Stat(); err == nil && fi.Size() > tail {
		f.Seek(-tail, io.SeekEnd)
	}
	data, _ := io.ReadAll(f)
	var lines []string
	for _, l := range bytes.Split(data, []byte("\n")) {
		if l = bytes.TrimSpace(l); len(l) > 0 {
			if len(l) > 200 {
				l = l[:200]
			}
			lines = append(lines, string(l))
		}
	}
	if len(lines) > n {
		lines = lines[len(lines)-n:]
	}
	if len(lines) == 0 {
		return "(empty log)"
	}
	return strings.Join(lines, " | ")
}

// SuperviseDir runs the supervisor of the node whose data directory is dir.
func SuperviseDir(ctx context.Context, dir string, log *slog.Logger) error {
	if _, err := os.Stat(filepath.Join(dir, "state.json")); err != nil {
		return fmt.Errorf("supervise %s: no node there (%v): start the node with stack up", dir, err)
	}
	return (&Node{Dir: dir}).Supervise(ctx, log)
}
