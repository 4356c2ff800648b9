package node

import (
	"context"
	"errors"
	"fmt"
	"os"
	"os/exec"
	"slices"
	"strings"
	"syscall"
	"time"

	"github.com/hashbang/stack/internal/ui"
)

// Down stops every process the node started (the kubelet first, then the
// pods' containers, then the rest in reverse start order), unmounts what
// they mounted under the data directory, removes the iptables chains they
// added, the bridge and its veths, the pod cgroups and the host paths they
// created, restores the recorded sysctls, and checks that nothing is left.
// The data directory stays, unless purge is set.
func (n *Node) Down(ctx context.Context, p *ui.Progress, purge bool) error {
	unlock, err := n.lock(true)
	if err != nil {
		return err
	}
	defer unlock()
	return n.down(ctx, p, purge)
}

// down is Down with the node's lock held.
func (n *Node) down(ctx context.Context, p *ui.Progress, purge bool) error {
	st, err := n.ReadState()
	if err != nil {
		return err
	}
	if len(st.Procs) == 0 && st.Sysctls == nil {
		// This node never started (or was taken down): leave the host
		// alone. Another cluster's bridge and KUBE- chains, even one
		// started from another cache, are not ours to remove. Only
		// services started before the node are stopped.
		if err := n.stopServices(st); err != nil {
			return err
		}
		if purge {
			return os.RemoveAll(n.Dir)
		}
		return nil
	}
	var errs []error
	step := p.Start("stop node %s", n.Cluster)
	// The supervisor first, so that nothing is restarted while stopping.
	if st.Supervisor != nil {
		errs = append(errs, st.Supervisor.Stop(5*time.Second))
	}
	if kubelet, ok := st.Proc("kubelet"); ok {
		errs = append(errs, kubelet.Stop(10*time.Second))
	}
	if ctd, ok := st.Proc("containerd"); ok && ctd.Alive() {
		n.removeContainers(ctx)
	}
	for i := len(st.Procs) - 1; i >= 0; i-- {
		// A development cluster's API server need not drain its
		// watches: its state is in etcd, which gets longer to flush.
		grace := 5 * time.Second
		if st.Procs[i].Component == "etcd" {
			grace = 15 * time.Second
		}
		errs = append(errs, st.Procs[i].Stop(grace))
	}
	// Whatever is left of the pods: their processes (in the kubelet's
	// cgroups) and the shims of our containerd (which carry its socket).
	for _, pid := range append(cgroupPIDs(), pidsWithArg(n.containerdSocket())...) {
		syscall.Kill(pid, syscall.SIGKILL)
	}
	waitGone(append(cgroupPIDs(), pidsWithArg(n.containerdSocket())...), 10*time.Second)
	errs = append(errs, n.stopServices(st))
	step.Done(errors.Join(errs...))

	step = p.Start("restore the host")
	var herrs []error
	herrs = append(herrs, unmountAll(n.Dir))
	herrs = append(herrs, cleanIptables())
	if st.Tables != nil {
		dropNewTables(st.Tables)
	}
	if st.BridgeCreated || len(st.Procs) > 0 {
		herrs = append(herrs, n.deleteLinks())
	}
	removeCgroups()
	for _, hp := range st.Created {
		os.RemoveAll(hp)
	}
	// No pod runs: no address is allocated.
	os.RemoveAll(n.path("cni", "ipam"))
	if st.Sysctls != nil {
		herrs = append(herrs, restoreSysctls(st.Sysctls))
	}
	herrs = append(herrs, n.verifyDown(st))
	if err := errors.Join(herrs...); err != nil {
		return step.Done(err)
	}
	if purge {
		if err := os.RemoveAll(n.Dir); err != nil {
			return step.Done(err)
		}
	} else if err := os.Remove(n.statePath()); err != nil && !errors.Is(err, os.ErrNotExist) {
		return step.Done(err)
	}
	return step.Done(errors.Join(errs...))
}

// stopServices stops the services in reverse start order and records
// that they are gone.
func (n *Node) stopServices(st *State) error {
	var errs []error
	for i := len(st.Services) - 1; i >= 0; i-- {
		errs = append(errs, st.Services[i].Stop(10*time.Second))
	}
	st.Services = nil
	errs = append(errs, n.writeOrRemoveState(st))
	return errors.Join(errs...)
}

// removeContainers kills and deletes every container of the Kubernetes
// namespace of our containerd, so that shims exit and the next start is
// clean.
func (n *Node) removeContainers(ctx context.Context) {
	ctr := func(args ...string) (string, error) {
		cctx, cancel := context.WithTimeout(ctx, 20*time.Second)
		defer cancel()
		out, err := exec.CommandContext(cctx, n.Tools["containerd"]+"/"+ctrPath,
			append([]string{"--address", n.containerdSocket(), "--namespace", "k8s.io"}, args...)...).Output()
		return string(out), err
	}
	tasks, err := ctr("tasks", "ls", "-q")
	if err == nil {
		for _, id := range strings.Fields(tasks) {
			ctr("tasks", "kill", "--all", "--signal", "SIGKILL", id)
		}
		for _, id := range strings.Fields(tasks) {
			for i := 0; i < 20; i++ {
				if _, err := ctr("tasks", "rm", "-f", id); err == nil {
					break
				}
				time.Sleep(100 * time.Millisecond)
			}
		}
	}
	if ids, err := ctr("containers", "ls", "-q"); err == nil {
		for _, id := range strings.Fields(ids) {
			ctr("containers", "rm", id)
		}
	}
}

func waitGone(pids []int, timeout time.Duration) {
	deadline := time.Now().Add(timeout)
	for _, pid := range pids {
		for time.Now().Before(deadline) {
			if err := syscall.Kill(pid, 0); err != nil {
				break
			}
			if s, _ := procState(pid); s == "Z" {
				break
			}
			time.Sleep(50 * time.Millisecond)
		}
	}
}

// verifyDown checks that nothing the node started or changed is left.
func (n *Node) verifyDown(st *State) error {
	var left []string
	procs := st.Procs
	if st.Supervisor != nil {
		procs = append(slices.Clip(procs), *st.Supervisor)
	}
	for _, p := range procs {
		if p.Alive() {
			left = append(left, fmt.Sprintf("process %s (pid %d)", p.Component, p.PID))
		}
	}
	for _, pid := range pidsWithArg(n.containerdSocket()) {
		left = append(left, fmt.Sprintf("containerd shim (pid %d)", pid))
	}
	for _, mp := range mountsUnder(n.Dir) {
		left = append(left, "mount "+mp)
	}
	for _, c := range hasOurChains() {
		left = append(left, "iptables chain "+c)
	}
	if linkExists(n.Bridge) {
		left = append(left, "interface "+n.Bridge)
	}
	if st.Sysctls != nil {
		now := readSysctls(keys(st.Sysctls))
		for _, k := range keys(st.Sysctls) {
			if now[k] != st.Sysctls[k] {
				left = append(left, fmt.Sprintf("sysctl %s=%s (was %s)", k, now[k], st.Sysctls[k]))
			}
		}
	}
	if len(left) > 0 {
		return fmt.Errorf("stack down left %s: run stack down again, or remove them by hand", strings.Join(left, ", "))
	}
	return nil
}

// ComponentStatus is one line of `stack status`.
type ComponentStatus struct {
	Component string `json:"component"`
	State     string `json:"state"`
	PID       int    `json:"pid,omitempty"`
	RSS       int64  `json:"rss,omitempty"`
	// Restarts counts the supervisor's restarts in the crash-loop window.
	Restarts int    `json:"restarts,omitempty"`
	Log      string `json:"log"`
}

// Status reports each component: running and healthy, running but not
// healthy, or stopped.
func (n *Node) Status(ctx context.Context) ([]ComponentStatus, error) {
	st, err := n.ReadState()
	if err != nil {
		return nil, err
	}
	var out []ComponentStatus
	for _, c := range n.components() {
		cs := ComponentStatus{Component: c.Name, State: "stopped", Log: n.LogPath(c.Name)}
		p, ok := st.Proc(c.Name)
		if ok && p.Failed != "" && !p.Alive() {
			cs.State = p.Failed
		}
		if ok && len(p.Restarts) > 0 {
			cs.Restarts = len(p.Restarts)
		}
		if ok && p.Alive() {
			cs.PID, cs.RSS = p.PID, rss(p.PID)
			hctx, cancel := context.WithTimeout(ctx, 2*time.Second)
			if err := c.Health(hctx); err != nil {
				cs.State = "unhealthy: " + err.Error()
			} else {
				cs.State = "running"
			}
			cancel()
		}
		out = append(out, cs)
	}
	for _, sp := range st.Services {
		cs := ComponentStatus{Component: sp.Component, State: "stopped", Log: sp.Log, Restarts: len(sp.Restarts)}
		switch {
		case sp.Alive():
			cs.State, cs.PID, cs.RSS = "running", sp.PID, rss(sp.PID)
		case sp.Failed != "":
			cs.State = sp.Failed
		}
		out = append(out, cs)
	}
	// The pods' containers and their shims, started by containerd. The pod
	// cgroups are the host's: count them only while this node has a
	// process alive.
	if !n.anyAlive() {
		return out, nil
	}
	if sp := st.Supervisor; sp != nil {
		cs := ComponentStatus{Component: "supervisor", State: "stopped: components that die are not restarted (run stack up)", Log: n.LogPath("supervisor")}
		if sp.Alive() {
			cs.State, cs.PID, cs.RSS = "running", sp.PID, rss(sp.PID)
		}
		out = append(out, cs)
	}
	if pids := append(cgroupPIDs(), pidsWithArg(n.containerdSocket())...); len(pids) > 0 {
		cs := ComponentStatus{Component: "pods and shims", State: fmt.Sprintf("%d processes", len(pids)), Log: n.path("kubelet", "pod-logs")}
		for _, pid := range pids {
			cs.RSS += rss(pid)
		}
		out = append(out, cs)
	}
	return out, nil
}

// anyAlive reports whether a process this node recorded still runs.
func (n *Node) anyAlive() bool {
	s, err := n.ReadState()
	if err != nil {
		return false
	}
	for _, p := range s.Procs {
		if p.Alive() {
			return true
		}
	}
	return false
}
