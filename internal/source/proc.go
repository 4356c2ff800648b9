package source

import (
	"context"
	"os/exec"
	"syscall"
	"time"
)

// waitDelay is how long a command's output is waited for once it exited or
// was killed: a grandchild that outlived it may hold the pipe open.
const waitDelay = 5 * time.Second

// command is exec.CommandContext for the package clients stack runs (go,
// apt-get, apt-cache, dpkg, dpkg-source, npm), made so that cancelling ctx
// (SIGINT or SIGTERM to stack) ends them promptly, children included:
// apt-get runs its download methods, npm and go their own helpers, which
// CommandContext alone would leave running, holding the output pipe that
// stack waits on. The command runs in a process group of its own, which is
// killed (SIGKILL, as CommandContext kills the command) when ctx is done;
// WaitDelay bounds the wait for pipes anything left holds.
func command(ctx context.Context, name string, args ...string) *exec.Cmd {
	cmd := exec.CommandContext(ctx, name, args...)
	cmd.SysProcAttr = &syscall.SysProcAttr{Setpgid: true}
	cmd.Cancel = func() error {
		// The group's id is the command's pid.
		err := syscall.Kill(-cmd.Process.Pid, syscall.SIGKILL)
		if err == syscall.ESRCH {
			return cmd.Process.Kill()
		}
		return err
	}
	cmd.WaitDelay = waitDelay
	return cmd
}
