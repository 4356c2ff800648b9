package node

import (
	"errors"
	"fmt"
	"net"
	"os"
	"runtime"
	"slices"
	"sort"
	"strings"
	"testing"
)

// TestHostChecks: every requirement is named, in Preflight's order, and
// each result agrees with what this host has.
func TestHostChecks(t *testing.T) {
	if runtime.GOOS != "linux" {
		cs := HostChecks()
		if len(cs) != 1 || cs[0].Err == nil {
			t.Fatalf("off Linux: %+v", cs)
		}
		return
	}
	cs := HostChecks()
	var names []string
	for _, c := range cs {
		names = append(names, c.Name)
		if c.Detail == "" {
			t.Errorf("%s: no detail", c.Name)
		}
	}
	want := []string{"Linux", "root", "overlay filesystem", "br_netfilter", "nf_conntrack", "cgroups", "iptables", "iptables-save", "iptables-restore", "ip"}
	if !slices.Equal(names, want) {
		t.Fatalf("checks %q, want %q", names, want)
	}
	if cs[0].Err != nil {
		t.Errorf("Linux failed on Linux: %v", cs[0].Err)
	}
	if root := cs[1]; (os.Geteuid() == 0) != (root.Err == nil) || (root.Err != nil && !errors.Is(root.Err, ErrNotRoot)) {
		t.Errorf("root check %v with euid %d", root.Err, os.Geteuid())
	}
	fs, _ := os.ReadFile("/proc/filesystems")
	if has := strings.Contains(string(fs), "\toverlay\n"); has != (cs[2].Err == nil) {
		t.Errorf("overlay: /proc/filesystems lists it: %v, check: %v", has, cs[2].Err)
	}
	for _, c := range cs[3:5] {
		if c.Err == nil {
			if _, err := os.Stat(c.Detail); err != nil {
				t.Errorf("%s passed, but %v", c.Name, err)
			}
		} else if !strings.HasSuffix(c.Detail, " is missing") {
			t.Errorf("%s failed (%v) with detail %q", c.Name, c.Err, c.Detail)
		}
	}
	if cs[5].Err != nil {
		t.Logf("cgroups: %v", cs[5].Err)
	} else if !strings.HasPrefix(cs[5].Detail, "v") && !strings.HasPrefix(cs[5].Detail, "hybrid") {
		t.Errorf("cgroups: %q", cs[5].Detail)
	}
}

func TestCgroupMode(t *testing.T) {
	if got := CgroupMode(t.TempDir()); got != "" {
		t.Errorf("a plain directory is a cgroup hierarchy %q", got)
	}
	if got := CgroupMode("/nonexistent"); got != "" {
		t.Errorf("a missing directory: %q", got)
	}
	if _, err := os.Stat("/sys/fs/cgroup/cgroup.controllers"); err == nil {
		if got := CgroupMode("/sys/fs/cgroup"); got != "v2, unified" {
			t.Errorf("/sys/fs/cgroup has cgroup.controllers (v2) but is %q", got)
		}
	} else if _, err := os.Stat("/sys/fs/cgroup/unified/cgroup.controllers"); err == nil {
		if got := CgroupMode("/sys/fs/cgroup"); !strings.HasPrefix(got, "hybrid") {
			t.Errorf("/sys/fs/cgroup/unified is v2 but the mode is %q", got)
		}
	}
}

// TestPortChecks: every port of the node and the extra ones, in order; one
// held by another process fails naming it; held by a component the node
// records, it is the node's own and in nobody's way.
func TestPortChecks(t *testing.T) {
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer l.Close()
	port := l.Addr().(*net.TCPAddr).Port
	n := testNode(t)
	find := func(cs []PortCheck) PortCheck {
		t.Helper()
		var nums []int
		for _, c := range cs {
			nums = append(nums, c.Port)
		}
		if !sort.IntsAreSorted(nums) || len(nums) != len(Ports)+1 {
			t.Fatalf("ports %v: want the node's %d and %d, sorted", nums, len(Ports), port)
		}
		for _, c := range cs {
			if c.Port == port {
				return c
			}
		}
		t.Fatalf("no check of port %d", port)
		return PortCheck{}
	}
	c := find(n.PortChecks(map[int]string{port: "test service"}))
	me := fmt.Sprintf("(pid %d)", os.Getpid())
	if c.For != "test service" || c.Own || !strings.Contains(c.Holder, me) || c.Err == nil ||
		!strings.Contains(c.Err.Error(), "needed by test service, is taken by") || !strings.Contains(c.Err.Error(), me+", which is not this node's") {
		t.Errorf("taken port: %+v", c)
	}
	st, _ := n.ReadState()
	start, _ := startTime(os.Getpid())
	st.setProc(Proc{Component: "test-service", PID: os.Getpid(), Start: start})
	if err := n.writeState(st); err != nil {
		t.Fatal(err)
	}
	c = find(n.PortChecks(map[int]string{port: "test service"}))
	if !c.Own || c.Err != nil || c.Holder != "test-service "+me {
		t.Errorf("port of the node's own component: %+v", c)
	}
	l.Close()
	c = find(n.PortChecks(map[int]string{port: "test service"}))
	if c.Holder != "" || c.Err != nil || c.Own {
		t.Errorf("free port: %+v", c)
	}
}
