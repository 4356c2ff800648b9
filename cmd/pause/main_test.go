package main

import (
	"bytes"
	"errors"
	"fmt"
	"os"
	"os/exec"
	"strconv"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"
)

// TestMain lets the tests run this binary's main as a real process. With
// PAUSE_TEST_CHILD=1 it first starts a child that exits at once and prints
// its pid, so that there is a zombie for pause to reap.
func TestMain(m *testing.M) {
	switch os.Getenv("PAUSE_TEST_MAIN") {
	case "1":
		main()
		return
	case "exit":
		os.Exit(0)
	case "child":
		c := exec.Command(os.Args[0])
		c.Env = []string{"PAUSE_TEST_MAIN=exit"}
		if err := c.Start(); err != nil {
			fmt.Fprintln(os.Stderr, err)
			os.Exit(3)
		}
		// Not waited for: the exited child stays a zombie unless reaped.
		fmt.Printf("%d\n", c.Process.Pid)
		os.Args = os.Args[:1]
		main()
		return
	}
	os.Exit(m.Run())
}

// syncBuffer is a bytes.Buffer safe to read while a process writes to it.
type syncBuffer struct {
	mu sync.Mutex
	b  bytes.Buffer
}

func (s *syncBuffer) Write(p []byte) (int, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.b.Write(p)
}

func (s *syncBuffer) String() string {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.b.String()
}

func start(t *testing.T, mode string, attr *syscall.SysProcAttr) (*exec.Cmd, chan error, *syncBuffer) {
	t.Helper()
	cmd := exec.Command(os.Args[0])
	cmd.Env = append(os.Environ(), "PAUSE_TEST_MAIN="+mode)
	cmd.SysProcAttr = attr
	out := new(syncBuffer)
	cmd.Stdout = out
	cmd.Stderr = out
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	done := make(chan error, 1)
	go func() { done <- cmd.Wait() }()
	t.Cleanup(func() {
		if cmd.ProcessState == nil {
			cmd.Process.Kill()
			<-done
		}
	})
	return cmd, done, out
}

func wait(t *testing.T, done chan error, out *syncBuffer) {
	t.Helper()
	select {
	case err := <-done:
		if err != nil {
			t.Fatalf("exit: %v\n%s", err, out)
		}
	case <-time.After(10 * time.Second):
		t.Fatal("did not exit")
	}
}

func TestExitsOnSignal(t *testing.T) {
	for _, sig := range []syscall.Signal{syscall.SIGTERM, syscall.SIGINT} {
		t.Run(sig.String(), func(t *testing.T) {
			cmd, done, out := start(t, "1", nil)
			// Give it time to install its handler; without one the
			// signal kills it and Wait reports that as an error.
			time.Sleep(200 * time.Millisecond)
			select {
			case err := <-done:
				t.Fatalf("exited before the signal: %v\n%s", err, out)
			default:
			}
			cmd.Process.Signal(sig)
			wait(t, done, out)
		})
	}
}

func TestRejectsArguments(t *testing.T) {
	cmd := exec.Command(os.Args[0], "x")
	cmd.Env = append(os.Environ(), "PAUSE_TEST_MAIN=1")
	out, err := cmd.CombinedOutput()
	var ee *exec.ExitError
	if !errors.As(err, &ee) || ee.ExitCode() != 2 || !strings.Contains(string(out), "takes no arguments") {
		t.Fatalf("pause x: %v %q", err, out)
	}
}

// zombie reports whether pid is a zombie child (or has gone: false).
func zombie(pid int) bool {
	b, err := os.ReadFile(fmt.Sprintf("/proc/%d/stat", pid))
	if err != nil {
		return false
	}
	s := string(b)
	i := strings.LastIndexByte(s, ')')
	return i > 0 && len(s) > i+2 && s[i+2] == 'Z'
}

func TestReapsChildren(t *testing.T) {
	cmd, done, out := start(t, "child", nil)
	pid := childPid(t, out, done)
	// The child exits at once; it disappears from /proc only once reaped.
	deadline := time.Now().Add(10 * time.Second)
	for {
		if _, err := os.Stat(fmt.Sprintf("/proc/%d", pid)); err != nil {
			break
		}
		if time.Now().After(deadline) {
			t.Fatalf("child %d not reaped (zombie: %v)", pid, zombie(pid))
		}
		time.Sleep(10 * time.Millisecond)
	}
	cmd.Process.Signal(syscall.SIGTERM)
	wait(t, done, out)
}

// TestPID1 runs pause as PID 1 of a new PID namespace (needs root).
func TestPID1(t *testing.T) {
	if os.Geteuid() != 0 {
		t.Skip("a new PID namespace needs root")
	}
	cmd, done, out := start(t, "child", &syscall.SysProcAttr{Cloneflags: syscall.CLONE_NEWPID})
	// The child's pid is in the namespace; watch the host's view instead.
	childPid(t, out, done)
	deadline := time.Now().Add(10 * time.Second)
	for {
		b, _ := os.ReadFile(fmt.Sprintf("/proc/%d/task/%d/children", cmd.Process.Pid, cmd.Process.Pid))
		if len(bytes.TrimSpace(b)) == 0 {
			break
		}
		if time.Now().After(deadline) {
			t.Fatalf("PID 1 still has children %s", b)
		}
		time.Sleep(10 * time.Millisecond)
	}
	cmd.Process.Signal(syscall.SIGTERM)
	wait(t, done, out)
}

func childPid(t *testing.T, out *syncBuffer, done chan error) int {
	t.Helper()
	deadline := time.Now().Add(5 * time.Second)
	for {
		if s, ok := strings.CutSuffix(out.String(), "\n"); ok {
			pid, err := strconv.Atoi(s)
			if err != nil {
				t.Fatalf("helper printed %q", out)
			}
			return pid
		}
		select {
		case err := <-done:
			t.Fatalf("helper exited: %v\n%s", err, out)
		default:
		}
		if time.Now().After(deadline) {
			t.Fatal("helper printed no pid")
		}
		time.Sleep(10 * time.Millisecond)
	}
}
