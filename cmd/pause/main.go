// Command pause waits for SIGINT or SIGTERM and exits 0, like Kubernetes'
// pause container: it holds a pod sandbox's namespaces open. Running as
// PID 1 it also reaps the zombie children that get reparented to it.
package main

import (
	"fmt"
	"os"
	"os/signal"
	"syscall"
)

func main() {
	if len(os.Args) > 1 {
		fmt.Fprintln(os.Stderr, "pause: takes no arguments; it waits for SIGTERM or SIGINT")
		os.Exit(2)
	}
	os.Exit(pause())
}

// pause blocks until SIGINT or SIGTERM and returns the exit code.
func pause() int {
	sigs := make(chan os.Signal, 8)
	signal.Notify(sigs, syscall.SIGINT, syscall.SIGTERM, syscall.SIGCHLD)
	reap()
	for s := range sigs {
		if s == syscall.SIGCHLD {
			reap()
			continue
		}
		return 0
	}
	return 0
}

// reap collects every exited child without blocking. Children only exist
// when pause is PID 1 of a namespace (orphans are reparented to it), but
// reaping is harmless otherwise.
func reap() {
	for {
		var ws syscall.WaitStatus
		pid, err := syscall.Wait4(-1, &ws, syscall.WNOHANG, nil)
		if err == syscall.EINTR {
			continue
		}
		if pid <= 0 || err != nil {
			return
		}
	}
}
