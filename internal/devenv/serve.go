package devenv

import (
	"context"
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

// ensureRegistry uses the registry answering at RegistryAddr, or starts
// `stack serve` detached (its own session, outliving stack up), records its
// PID and waits for the registry to answer. It reports whether it started
// stack serve.
func (e *Env) ensureRegistry(ctx context.Context) (bool, error) {
	if registryUp(ctx, e.RegistryAddr) {
		return false, nil
	}
	err := e.startServe(ctx)
	return err == nil, err
}

func (e *Env) startServe(ctx context.Context) error {
	step := e.Progress.Start("start stack serve (registry at %s)", e.RegistryAddr)
	logPath := e.Node.LogPath("serve")
	if err := os.MkdirAll(filepath.Dir(logPath), 0o755); err != nil {
		return step.Done(err)
	}
	log, err := os.OpenFile(logPath, os.O_WRONLY|os.O_CREATE|os.O_APPEND, 0o600)
	if err != nil {
		return step.Done(err)
	}
	defer log.Close()
	cmd := exec.Command(e.Exe, "--repo", e.WS.Root, "--cache", e.WS.Cache, "serve", "--registry-addr", e.RegistryAddr)
	cmd.Stdout, cmd.Stderr = log, log
	cmd.SysProcAttr = &syscall.SysProcAttr{Setsid: true}
	if err := cmd.Start(); err != nil {
		return step.Done(fmt.Errorf("start stack serve: %w", err))
	}
	pid := cmd.Process.Pid
	exited := make(chan struct{})
	go func() { cmd.Wait(); close(exited) }()
	if err := os.WriteFile(e.serveState(), []byte(strconv.Itoa(pid)+"\n"), 0o600); err != nil {
		cmd.Process.Kill()
		return step.Done(err)
	}
	deadline := time.Now().Add(60 * time.Second)
	for !registryUp(ctx, e.RegistryAddr) {
		select {
		case <-exited:
			os.Remove(e.serveState())
			return step.Done(fmt.Errorf("stack serve exited before its registry answered at %s: see %s", e.RegistryAddr, logPath))
		case <-time.After(200 * time.Millisecond):
		}
		if time.Now().After(deadline) {
			e.stopServe()
			return step.Done(fmt.Errorf("the registry of stack serve did not answer at %s within a minute: see %s", e.RegistryAddr, logPath))
		}
	}
	return step.Done(nil)
}

// stopServe stops the `stack serve` that Up started, if any.
func (e *Env) stopServe() error {
	data, err := os.ReadFile(e.serveState())
	if errors.Is(err, os.ErrNotExist) {
		return nil
	}
	if err != nil {
		return err
	}
	pid, err := strconv.Atoi(strings.TrimSpace(string(data)))
	if err != nil || pid <= 1 {
		return fmt.Errorf("%s: not a PID", e.serveState())
	}
	// Only the process we started: its command line is this stack's serve.
	cmdline, _ := os.ReadFile(fmt.Sprintf("/proc/%d/cmdline", pid))
	if strings.Contains(string(cmdline), "serve\x00") {
		syscall.Kill(pid, syscall.SIGTERM)
		for i := 0; i < 100 && syscall.Kill(pid, 0) == nil; i++ {
			time.Sleep(100 * time.Millisecond)
		}
		if syscall.Kill(pid, 0) == nil {
			syscall.Kill(pid, syscall.SIGKILL)
		}
	}
	return os.Remove(e.serveState())
}
