package node

import (
	"context"
	"crypto/sha256"
	"encoding/hex"
	"errors"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"syscall"
	"time"
)

// Proc is a process the node started, recorded so that it is stopped by
// PID and never by name. Start is the process's start time in clock ticks
// since boot (/proc/PID/stat field 22): a PID reused by another program has
// another start time, so it is never signalled by mistake.
type Proc struct {
	Component string `json:"component"`
	PID       int    `json:"pid"`
	Start     uint64 `json:"start"`
	Log       string `json:"log"`
	// Config hashes the command line and configuration files the process
	// started with; a process whose configuration changed is restarted.
	Config string `json:"config"`
	// Args and Env are what it was started with, so that the supervisor
	// restarts it exactly so.
	Args []string `json:"args,omitempty"`
	Env  []string `json:"env,omitempty"`
	// Restarts are the times (Unix milliseconds) the supervisor restarted it
	// within the last crash-loop window.
	Restarts []int64 `json:"restarts,omitempty"`
	// Failed says why the supervisor gave up restarting it (a crash
	// loop), with the last lines of its log; `stack up` starts it anew.
	Failed string `json:"failed,omitempty"`
}

// component is one program of the node and how to tell it is healthy.
type component struct {
	Name   string
	Args   []string
	Env    []string
	Health func(ctx context.Context) error
	// Wait is how long the component may take to become healthy.
	Wait time.Duration
	// Files are the configuration files it reads at start.
	Files []string
}

// configHash hashes what c starts with: its command line, environment and
// configuration files.
func (c component) configHash() string {
	h := sha256.New()
	for _, a := range append(append([]string{}, c.Args...), c.Env...) {
		fmt.Fprintf(h, "%d:%s\n", len(a), a)
	}
	for _, f := range c.Files {
		data, _ := os.ReadFile(f)
		fmt.Fprintf(h, "%s %d:%s\n", f, len(data), data)
	}
	return hex.EncodeToString(h.Sum(nil))
}

// startProc starts c detached (its own session, outliving stack), output
// appended to its log, and returns its record.
func (n *Node) startProc(c component) (Proc, error) {
	p := Proc{Component: c.Name, Args: c.Args, Env: c.Env, Config: c.configHash()}
	if err := n.spawn(&p, "stack up"); err != nil {
		return Proc{}, err
	}
	return p, nil
}

// spawn starts p's command line detached in the node's directory, output
// appended to its log after a line saying who started it, and records its
// PID, start time and log in p.
func (n *Node) spawn(p *Proc, by string) error {
	logPath := n.LogPath(p.Component)
	if err := os.MkdirAll(filepath.Dir(logPath), 0o755); err != nil {
		return err
	}
	log, err := openLog(logPath)
	if err != nil {
		return err
	}
	defer log.Close()
	fmt.Fprintf(log, "\n--- %s: %s %s\n", by, time.Now().UTC().Format(time.RFC3339), strings.Join(p.Args, " "))
	cmd := exec.Command(p.Args[0], p.Args[1:]...)
	cmd.Dir = n.Dir
	cmd.Stdout, cmd.Stderr = log, log
	cmd.Env = append([]string{"PATH=/usr/sbin:/usr/bin:/sbin:/bin", "HOME=" + n.Dir}, p.Env...)
	cmd.SysProcAttr = &syscall.SysProcAttr{Setsid: true}
	if err := cmd.Start(); err != nil {
		return fmt.Errorf("start %s: %w (log: %s)", p.Component, err, logPath)
	}
	p.PID, p.Log = cmd.Process.Pid, logPath
	p.Start, _ = startTime(p.PID)
	// Reap it if it dies while this process still runs; once it exits,
	// init adopts it.
	go cmd.Wait()
	return nil
}

// waitHealthy polls c's health until it answers, the process exits or the
// wait runs out.
func waitHealthy(ctx context.Context, c component, p Proc) error {
	wait := c.Wait
	if wait == 0 {
		wait = 60 * time.Second
	}
	deadline := time.Now().Add(wait)
	var last error
	for {
		if !p.Alive() {
			return fmt.Errorf("%s exited while starting: see %s", c.Name, p.Log)
		}
		hctx, cancel := context.WithTimeout(ctx, 2*time.Second)
		last = c.Health(hctx)
		cancel()
		if last == nil {
			return nil
		}
		if time.Now().After(deadline) {
			return fmt.Errorf("%s not healthy after %s (%v): see %s", c.Name, wait, last, p.Log)
		}
		select {
		case <-ctx.Done():
			return ctx.Err()
		case <-time.After(250 * time.Millisecond):
		}
	}
}

// Alive reports whether the recorded process still runs (and is the same
// process: same start time, not a zombie).
func (p Proc) Alive() bool {
	if p.PID <= 0 {
		return false
	}
	st, err := startTime(p.PID)
	if err != nil || (p.Start != 0 && st != p.Start) {
		return false
	}
	state, _ := procState(p.PID)
	return state != "Z" && state != "X"
}

// Stop sends SIGTERM, waits up to grace, then SIGKILL, and waits for the
// process to be gone.
func (p Proc) Stop(grace time.Duration) error {
	if !p.Alive() {
		return nil
	}
	proc, _ := os.FindProcess(p.PID)
	proc.Signal(syscall.SIGTERM)
	deadline := time.Now().Add(grace)
	for time.Now().Before(deadline) {
		if !p.Alive() {
			return nil
		}
		time.Sleep(100 * time.Millisecond)
	}
	proc.Signal(syscall.SIGKILL)
	for i := 0; i < 50; i++ {
		if !p.Alive() {
			return nil
		}
		time.Sleep(100 * time.Millisecond)
	}
	return fmt.Errorf("%s (pid %d) did not stop", p.Component, p.PID)
}

// statFields returns the fields of /proc/PID/stat after the command name.
func statFields(pid int) ([]string, error) {
	data, err := os.ReadFile(fmt.Sprintf("/proc/%d/stat", pid))
	if err != nil {
		return nil, err
	}
	s := string(data)
	i := strings.LastIndexByte(s, ')')
	if i < 0 {
		return nil, errors.New("malformed stat")
	}
	return strings.Fields(s[i+1:]), nil
}

// startTime is field 22 of /proc/PID/stat.
func startTime(pid int) (uint64, error) {
	f, err := statFields(pid)
	if err != nil {
		return 0, err
	}
	if len(f) < 20 {
		return 0, errors.New("malformed stat")
	}
	return strconv.ParseUint(f[19], 10, 64)
}

func procState(pid int) (string, error) {
	f, err := statFields(pid)
	if err != nil || len(f) == 0 {
		return "", err
	}
	return f[0], nil
}

// rss is the resident set size of pid in bytes.
func rss(pid int) int64 {
	data, err := os.ReadFile(fmt.Sprintf("/proc/%d/status", pid))
	if err != nil {
		return 0
	}
	for _, line := range strings.Split(string(data), "\n") {
		if strings.HasPrefix(line, "VmRSS:") {
			f := strings.Fields(line)
			if len(f) >= 2 {
				kb, _ := strconv.ParseInt(f[1], 10, 64)
				return kb << 10
			}
		}
	}
	return 0
}
