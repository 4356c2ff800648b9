package serve

import (
	"errors"
	"fmt"
	"os"
	"os/exec"
	"os/signal"
	"syscall"
)

// envInitChild marks the daemon process that Init started, so it does not
// start another.
const envInitChild = "STACK_SERVE_INIT_CHILD"

// NeedInit reports whether this process is PID 1 (as in the stack image)
// and has not been started by Init: then it should call Init instead of
// serving, so orphaned processes are reaped.
func NeedInit() bool {
	return os.Getpid() == 1 && os.Getenv(envInitChild) == ""
}

// Init is a minimal init for PID 1: it runs this executable again with the
// same arguments as its only child (the daemon), forwards SIGINT, SIGTERM,
// SIGHUP and SIGQUIT to it, and reaps every process that ends — the child,
// and the orphans the kernel hands to PID 1 (a CI job's leftovers), which
// would otherwise stay zombies. It returns the child's exit code once the
// child has exited. The daemon's own children are its to wait for, so the
// reaping never steals their exit status.
func Init() (int, error) {
	sigs := make(chan os.Signal, 8)
	signal.Notify(sigs, syscall.SIGINT, syscall.SIGTERM, syscall.SIGHUP, syscall.SIGQUIT, syscall.SIGCHLD)
	defer signal.Stop(sigs)

	exe, err := os.Executable()
	if err != nil {
		return 1, fmt.Errorf("init: find the stack executable: %w", err)
	}
	cmd := exec.Command(exe, os.Args[1:]...)
	cmd.Stdin, cmd.Stdout, cmd.Stderr = os.Stdin, os.Stdout, os.Stderr
	cmd.Env = append(os.Environ(), envInitChild+"=1")
	if err := cmd.Start(); err != nil {
		return 1, fmt.Errorf("init: start the daemon: %w", err)
	}
	child := cmd.Process.Pid
	for sig := range sigs {
		if sig != syscall.SIGCHLD {
			syscall.Kill(child, sig.(syscall.Signal))
			continue
		}
		for {
			var ws syscall.WaitStatus
			pid, err := syscall.Wait4(-1, &ws, syscall.WNOHANG, nil)
			if errors.Is(err, syscall.EINTR) {
				continue
			}
			if err != nil || pid <= 0 {
				break
			}
			if pid == child {
				switch {
				case ws.Exited():
					return ws.ExitStatus(), nil
				case ws.Signaled():
					return 128 + int(ws.Signal()), nil
				}
			}
		}
	}
	return 1, errors.New("init: signal channel closed")
}
