package node

import (
	"bytes"
	"errors"
	"fmt"
	"net"
	"os"
	"os/exec"
	"path/filepath"
	"runtime"
	"sort"
	"strconv"
	"strings"
	"syscall"
)

// Sysctls are the host settings the node's components may change (the
// kubelet, kube-proxy, the bridge and portmap plugins, and stack itself):
// their values are recorded before the first start and restored by Down.
var Sysctls = []string{
	"net.ipv4.ip_forward",
	"net.ipv6.conf.all.forwarding",
	"net.bridge.bridge-nf-call-iptables",
	"net.bridge.bridge-nf-call-ip6tables",
	"net.ipv4.conf.all.route_localnet",
	"net.netfilter.nf_conntrack_max",
	"net.netfilter.nf_conntrack_tcp_timeout_established",
	"net.netfilter.nf_conntrack_tcp_timeout_close_wait",
	"net.netfilter.nf_conntrack_tcp_be_liberal",
	"vm.overcommit_memory",
	"vm.panic_on_oom",
	"kernel.panic",
	"kernel.panic_on_oops",
	"kernel.keys.root_maxkeys",
	"kernel.keys.root_maxbytes",
}

// Ports are the TCP ports the node listens on.
var Ports = map[int]string{
	2379:    "etcd",
	2380:    "etcd (peer)",
	2381:    "etcd (metrics)",
	APIPort: "kube-apiserver",
	10248:   "kubelet (healthz)",
	10249:   "kube-proxy (metrics)",
	10250:   "kubelet",
	10256:   "kube-proxy (healthz)",
	10257:   "kube-controller-manager",
	10259:   "kube-scheduler",
}

// Preflight checks that the node can run on this host: Linux, root, the
// kernel features the node needs, and ports free (HostChecks, PortChecks).
// Each failure is one line saying what to do.
func (n *Node) Preflight(extraPorts map[int]string) error {
	for _, c := range HostChecks() {
		if c.Err != nil {
			return c.Err
		}
	}
	for _, c := range n.PortChecks(extraPorts) {
		if c.Err != nil {
			return c.Err
		}
	}
	return nil
}

// ErrNotRoot is the error of the root check of HostChecks.
var ErrNotRoot = errors.New("the development node needs root (it runs containerd, the kubelet and changes iptables): run `sudo stack up`")

// HostCheck is one thing the node needs of its host, as found on this one.
type HostCheck struct {
	Name string // what is needed: "Linux", "root", "overlay filesystem", ...
	// Detail is what was found: the kernel's release, the cgroup
	// hierarchy, the path of a tool, or what is missing.
	Detail string
	// Err is nil when the host has it, else the one line Preflight
	// returns: what is missing and what to do (ErrNotRoot for root).
	Err error
}

// HostChecks checks what the node needs of this host besides its ports, in
// the order Preflight does: Linux (on any other system nothing else is
// checked), root, the kernel features (the overlay filesystem, br_netfilter,
// nf_conntrack, cgroups) and the tools the kubelet, kube-proxy and the CNI
// plugins run. It only reads: stack doctor shows every result.
func HostChecks() []HostCheck {
	if runtime.GOOS != "linux" {
		return []HostCheck{{Name: "Linux", Detail: runtime.GOOS,
			Err: fmt.Errorf("the development node runs on Linux only, not %s: use a Linux machine or VM", runtime.GOOS)}}
	}
	var uts syscall.Utsname
	release := ""
	if syscall.Uname(&uts) == nil {
		release = utsString(uts.Release[:])
	}
	out := []HostCheck{{Name: "Linux", Detail: release}}
	root := HostCheck{Name: "root", Detail: fmt.Sprintf("uid %d", os.Geteuid())}
	if os.Geteuid() != 0 {
		root.Err = ErrNotRoot
	}
	out = append(out, root)
	overlay := HostCheck{Name: "overlay filesystem", Detail: "in /proc/filesystems"}
	if fs, _ := os.ReadFile("/proc/filesystems"); !bytes.Contains(fs, []byte("\toverlay\n")) {
		overlay.Detail = "not in /proc/filesystems"
		overlay.Err = errors.New("the kernel has no overlay filesystem, which containerd's snapshotter needs: load the overlay module (modprobe overlay) or use a kernel with it")
	}
	out = append(out, overlay)
	for _, f := range []struct{ name, path, what string }{
		{"br_netfilter", "/proc/sys/net/bridge/bridge-nf-call-iptables", "br_netfilter (modprobe br_netfilter)"},
		{"nf_conntrack", "/proc/sys/net/netfilter/nf_conntrack_max", "nf_conntrack (modprobe nf_conntrack)"},
	} {
		c := HostCheck{Name: f.name, Detail: f.path}
		if _, err := os.Stat(f.path); err != nil {
			c.Detail = f.path + " is missing"
			c.Err = fmt.Errorf("the kernel lacks %s: %s is missing", f.what, f.path)
		}
		out = append(out, c)
	}
	cg := HostCheck{Name: "cgroups", Detail: CgroupMode("/sys/fs/cgroup")}
	if cg.Detail == "" {
		cg.Detail = "/sys/fs/cgroup is not mounted"
		cg.Err = errors.New("the kernel lacks cgroups (mount /sys/fs/cgroup): /sys/fs/cgroup is not a cgroup hierarchy")
	}
	out = append(out, cg)
	for _, tool := range []string{"iptables", "iptables-save", "iptables-restore", "ip"} {
		c := HostCheck{Name: tool}
		path, err := exec.LookPath(tool)
		if err != nil {
			c.Detail = "not on PATH"
			c.Err = fmt.Errorf("%s is not installed; the kubelet, kube-proxy and CNI plugins need it: apt-get install iptables iproute2", tool)
		} else {
			c.Detail = path
		}
		out = append(out, c)
	}
	return out
}

// utsString is a NUL-terminated field of syscall.Utsname.
func utsString[T int8 | uint8](field []T) string {
	b := make([]byte, 0, len(field))
	for _, c := range field {
		if c == 0 {
			break
		}
		b = append(b, byte(c))
	}
	return string(b)
}

// Filesystem magic numbers (statfs f_type) of the cgroup hierarchies.
const (
	cgroup2Magic = 0x63677270
	cgroup1Magic = 0x27e0eb
	tmpfsMagic   = 0x01021994
)

// CgroupMode says which cgroup hierarchy is mounted at dir (the host's is
// /sys/fs/cgroup): "v2, unified", "hybrid: v1 controllers, v2 at
// unified/", "v1", or "" when none is.
func CgroupMode(dir string) string {
	magic := func(path string) int64 {
		var st syscall.Statfs_t
		if syscall.Statfs(path, &st) != nil {
			return 0
		}
		return int64(st.Type)
	}
	switch magic(dir) {
	case cgroup2Magic:
		return "v2, unified"
	case cgroup1Magic:
		return "v1"
	case tmpfsMagic:
		if magic(filepath.Join(dir, "unified")) == cgroup2Magic {
			return "hybrid: v1 controllers, v2 at unified/"
		}
		if ents, _ := filepath.Glob(filepath.Join(dir, "*", "cgroup.procs")); len(ents) > 0 {
			return "v1"
		}
	}
	return ""
}

// PortCheck is one TCP port the node needs, as found on this host.
type PortCheck struct {
	Port int
	For  string // what needs it
	// Holder is the process listening there ("etcd (pid 42)", or
	// "something" when it cannot be told); empty when the port is free.
	Holder string
	// Own is true when the holder is this node's own running component
	// (or service), which stack up keeps or restarts: not in its way.
	Own bool
	// Err is nil when stack up can have the port, else the one line
	// Preflight returns.
	Err error
}

// PortChecks checks each port of Ports and extra (more ports stack up
// needs, with what needs them), in order: free, held by this node's own
// component, or taken by another process (Err names it and the fix).
func (n *Node) PortChecks(extra map[int]string) []PortCheck {
	ports := map[int]string{}
	for p, what := range Ports {
		ports[p] = what
	}
	for p, what := range extra {
		ports[p] = what
	}
	var nums []int
	for p := range ports {
		nums = append(nums, p)
	}
	sort.Ints(nums)
	own := map[int]string{}
	if st, err := n.ReadState(); err == nil {
		for _, p := range append(st.Procs, st.Services...) {
			if p.Alive() {
				own[p.PID] = p.Component
			}
		}
		// A pod on the host network (a node's registry proxy) holds its
		// port itself. The kubelet's cgroups are the host's: count their
		// processes as ours only while this node has a component alive.
		if len(own) > 0 {
			for _, pid := range cgroupPIDs() {
				if _, ok := own[pid]; !ok {
					own[pid] = "a pod of this node"
				}
			}
		}
	}
	var out []PortCheck
	for _, p := range nums {
		c := PortCheck{Port: p, For: ports[p]}
		out = append(out, c)
		l, err := net.Listen("tcp", ":"+strconv.Itoa(p))
		if err == nil {
			l.Close()
			continue
		}
		pid := listener(p)
		c.Holder = "something"
		if pid > 0 {
			comm, _ := os.ReadFile(fmt.Sprintf("/proc/%d/comm", pid))
			c.Holder = fmt.Sprintf("%s (pid %d)", strings.TrimSpace(string(comm)), pid)
		}
		if component, ours := own[pid]; ours {
			c.Own, c.Holder = true, fmt.Sprintf("%s (pid %d)", component, pid)
		} else {
			c.Err = fmt.Errorf("port %d, needed by %s, is taken by %s, which is not this node's: stop it (ss -ltnp 'sport = :%d') and run stack up again", p, ports[p], c.Holder, p)
		}
		out[len(out)-1] = c
	}
	return out
}

// listener returns the PID of a process with a socket listening on TCP
// port, or 0 when none is found.
func listener(port int) int {
	inodes := map[string]bool{}
	for _, f := range []string{"/proc/net/tcp", "/proc/net/tcp6"} {
		data, err := os.ReadFile(f)
		if err != nil {
			continue
		}
		for _, line := range strings.Split(string(data), "\n")[1:] {
			fs := strings.Fields(line)
			// sl local_address rem_address st ... inode (field 9)
			if len(fs) < 10 || fs[3] != "0A" {
				continue
			}
			_, hexPort, ok := strings.Cut(fs[1], ":")
			if v, err := strconv.ParseInt(hexPort, 16, 32); ok && err == nil && int(v) == port {
				inodes["socket:["+fs[9]+"]"] = true
			}
		}
	}
	if len(inodes) == 0 {
		return 0
	}
	procs, _ := os.ReadDir("/proc")
	for _, e := range procs {
		pid, err := strconv.Atoi(e.Name())
		if err != nil {
			continue
		}
		fds, _ := os.ReadDir(filepath.Join("/proc", e.Name(), "fd"))
		for _, fd := range fds {
			if target, err := os.Readlink(filepath.Join("/proc", e.Name(), "fd", fd.Name())); err == nil && inodes[target] {
				return pid
			}
		}
	}
	return 0
}

func sysctlPath(name string) string {
	return filepath.Join("/proc/sys", strings.ReplaceAll(name, ".", "/"))
}

// readSysctls returns the current values of names that exist.
func readSysctls(names []string) map[string]string {
	out := map[string]string{}
	for _, n := range names {
		if b, err := os.ReadFile(sysctlPath(n)); err == nil {
			out[n] = strings.TrimSpace(string(b))
		}
	}
	return out
}

// restoreSysctls writes back each recorded value that differs now.
func restoreSysctls(saved map[string]string) error {
	var errs []error
	now := readSysctls(keys(saved))
	for name, v := range saved {
		if now[name] == v {
			continue
		}
		if err := os.WriteFile(sysctlPath(name), []byte(v), 0o644); err != nil {
			errs = append(errs, fmt.Errorf("restore %s=%s: %w", name, v, err))
		}
	}
	return errors.Join(errs...)
}

func setSysctl(name, v string) error {
	if err := os.WriteFile(sysctlPath(name), []byte(v), 0o644); err != nil {
		return fmt.Errorf("sysctl %s=%s: %w", name, v, err)
	}
	return nil
}

func keys(m map[string]string) []string {
	var out []string
	for k := range m {
		out = append(out, k)
	}
	sort.Strings(out)
	return out
}

func run(name string, args ...string) error {
	out, err := exec.Command(name, args...).CombinedOutput()
	if err != nil {
		return fmt.Errorf("%s %s: %v: %s", name, strings.Join(args, " "), err, strings.TrimSpace(string(out)))
	}
	return nil
}

// linkExists reports whether the network interface exists.
func linkExists(name string) bool {
	_, err := net.InterfaceByName(name)
	return err == nil
}

// ensureBridge creates the pod bridge with the node's address, so that the
// API server and the kubelet can listen on it before the first pod.
func (n *Node) ensureBridge() error {
	if !linkExists(n.Bridge) {
		if err := run("ip", "link", "add", n.Bridge, "type", "bridge"); err != nil {
			return err
		}
	}
	_, cidr, err := net.ParseCIDR(n.PodCIDR)
	if err != nil {
		return err
	}
	ones, _ := cidr.Mask.Size()
	if iface, err := net.InterfaceByName(n.Bridge); err == nil {
		addrs, _ := iface.Addrs()
		has := false
		for _, a := range addrs {
			if strings.HasPrefix(a.String(), n.Addr+"/") {
				has = true
			}
		}
		if !has {
			if err := run("ip", "addr", "add", fmt.Sprintf("%s/%d", n.Addr, ones), "dev", n.Bridge); err != nil {
				return err
			}
		}
	}
	return run("ip", "link", "set", n.Bridge, "up")
}

// deleteLinks removes the bridge and any veth still attached to it.
func (n *Node) deleteLinks() error {
	if !linkExists(n.Bridge) {
		return nil
	}
	ifaces, _ := net.Interfaces()
	for _, i := range ifaces {
		master, err := os.Readlink(filepath.Join("/sys/class/net", i.Name, "master"))
		if err == nil && filepath.Base(master) == n.Bridge {
			run("ip", "link", "del", i.Name)
		}
	}
	return run("ip", "link", "del", n.Bridge)
}

// ChainPrefixes are the iptables chains the node and its components add.
var ChainPrefixes = []string{"KUBE-", "CNI-", "STACK-"}

// guardChain keeps the node's address to the host and its pods.
const guardChain = "STACK-NODE-INPUT"

// guardAddr drops traffic to the node's address (where the API server and
// the kubelet listen) unless it comes from the host itself or from a pod:
// another machine routing to it gets nothing.
func (n *Node) guardAddr() error {
	if exec.Command("iptables", "-C", "INPUT", "-j", guardChain).Run() == nil {
		return nil
	}
	for _, args := range [][]string{
		{"-N", guardChain},
		{"-A", guardChain, "-i", "lo", "-j", "RETURN"},
		{"-A", guardChain, "-i", n.Bridge, "-j", "RETURN"},
		{"-A", guardChain, "-d", n.Addr + "/32", "-j", "DROP"},
		{"-I", "INPUT", "-j", guardChain},
	} {
		if err := run("iptables", args...); err != nil && args[0] != "-N" {
			return err
		}
	}
	return nil
}

func ours(chain string) bool {
	for _, p := range ChainPrefixes {
		if strings.HasPrefix(chain, p) {
			return true
		}
	}
	return false
}

// StripChains returns iptables-save output without the chains the node
// added and without every rule in or jumping to them, and whether anything
// was removed. The result is iptables-restore input.
func StripChains(save []byte) ([]byte, bool) {
	var out bytes.Buffer
	changed := false
	for _, line := range strings.SplitAfter(string(save), "\n") {
		l := strings.TrimRight(line, "\n")
		switch {
		case strings.HasPrefix(l, ":"):
			if f := strings.Fields(l[1:]); len(f) > 0 && ours(f[0]) {
				changed = true
				continue
			}
		case strings.HasPrefix(l, "-A "):
			f := strings.Fields(l)
			drop := len(f) > 1 && ours(f[1])
			for i := 2; i+1 < len(f) && !drop; i++ {
				if (f[i] == "-j" || f[i] == "-g" || f[i] == "--jump" || f[i] == "--goto") && ours(f[i+1]) {
					drop = true
				}
			}
			if drop {
				changed = true
				continue
			}
		}
		out.WriteString(line)
	}
	return out.Bytes(), changed
}

// cleanIptables removes the node's chains from the IPv4 and IPv6 tables.
func cleanIptables() error {
	var errs []error
	for _, family := range []string{"iptables", "ip6tables"} {
		save, err := exec.Command(family + "-save").Output()
		if err != nil {
			continue // no such family on this host
		}
		stripped, changed := StripChains(save)
		if !changed {
			continue
		}
		cmd := exec.Command(family + "-restore")
		cmd.Stdin = bytes.NewReader(stripped)
		if out, err := cmd.CombinedOutput(); err != nil {
			errs = append(errs, fmt.Errorf("%s-restore: %v: %s", family, err, strings.TrimSpace(string(out))))
		}
	}
	return errors.Join(errs...)
}

// hasOurChains reports whether any chain of ChainPrefixes is left.
func hasOurChains() []string {
	var left []string
	for _, family := range []string{"iptables", "ip6tables"} {
		save, err := exec.Command(family + "-save").Output()
		if err != nil {
			continue
		}
		for _, l := range strings.Split(string(save), "\n") {
			if f := strings.Fields(strings.TrimPrefix(l, ":")); strings.HasPrefix(l, ":") && len(f) > 0 && ours(f[0]) {
				left = append(left, family+" "+f[0])
			}
		}
	}
	return left
}

// mountsUnder lists mount points at or under any of dirs, deepest first.
func mountsUnder(dirs ...string) []string {
	data, err := os.ReadFile("/proc/self/mountinfo")
	if err != nil {
		return nil
	}
	var out []string
	for _, line := range strings.Split(string(data), "\n") {
		f := strings.Fields(line)
		if len(f) < 5 {
			continue
		}
		mp := unescapeMount(f[4])
		for _, d := range dirs {
			if mp == d || strings.HasPrefix(mp, d+"/") {
				out = append(out, mp)
				break
			}
		}
	}
	sort.Slice(out, func(i, j int) bool { return len(out[i]) > len(out[j]) })
	return out
}

// unescapeMount undoes mountinfo's octal escapes (\040 for a space).
func unescapeMount(s string) string {
	if !strings.Contains(s, `\`) {
		return s
	}
	var b strings.Builder
	for i := 0; i < len(s); i++ {
		if s[i] == '\\' && i+3 < len(s) {
			if v, err := strconv.ParseUint(s[i+1:i+4], 8, 8); err == nil {
				b.WriteByte(byte(v))
				i += 3
				continue
			}
		}
		b.WriteByte(s[i])
	}
	return b.String()
}

// mntDetach is Linux's MNT_DETACH, spelled out so that the package builds
// (and Preflight says "Linux only") elsewhere.
const mntDetach = 0x2

// unmountAll detaches every mount under dirs.
func unmountAll(dirs ...string) error {
	var errs []error
	for _, mp := range mountsUnder(dirs...) {
		if err := syscall.Unmount(mp, mntDetach); err != nil && !errors.Is(err, syscall.EINVAL) && !errors.Is(err, syscall.ENOENT) {
			errs = append(errs, fmt.Errorf("unmount %s: %w", mp, err))
		}
	}
	return errors.Join(errs...)
}

// cgroupRoots are the kubelet's cgroups (cgroupfs driver) in each v1
// hierarchy and the v2 one.
func cgroupRoots() []string {
	matches, _ := filepath.Glob("/sys/fs/cgroup/*/kubepods")
	if _, err := os.Stat("/sys/fs/cgroup/kubepods"); err == nil {
		matches = append(matches, "/sys/fs/cgroup/kubepods")
	}
	return matches
}

// cgroupPIDs lists the processes in the kubelet's pod cgroups.
func cgroupPIDs() []int {
	seen := map[int]bool{}
	var out []int
	for _, root := range cgroupRoots() {
		filepath.WalkDir(root, func(p string, d os.DirEntry, err error) error {
			if err != nil || !d.IsDir() {
				return nil
			}
			data, _ := os.ReadFile(filepath.Join(p, "cgroup.procs"))
			for _, f := range strings.Fields(string(data)) {
				if pid, err := strconv.Atoi(f); err == nil && !seen[pid] {
					seen[pid] = true
					out = append(out, pid)
				}
			}
			return nil
		})
	}
	return out
}

// removeCgroups removes the kubelet's pod cgroups, deepest first.
func removeCgroups() {
	for _, root := range cgroupRoots() {
		var dirs []string
		filepath.WalkDir(root, func(p string, d os.DirEntry, err error) error {
			if err == nil && d.IsDir() {
				dirs = append(dirs, p)
			}
			return nil
		})
		for i := len(dirs) - 1; i >= 0; i-- {
			os.Remove(dirs[i])
		}
	}
}

// pidsWithArg lists processes whose command line holds arg: the shims
// our containerd started carry its socket path, unique to this node.
func pidsWithArg(arg string) []int {
	entries, _ := os.ReadDir("/proc")
	var out []int
	for _, e := range entries {
		pid, err := strconv.Atoi(e.Name())
		if err != nil || pid == os.Getpid() {
			continue
		}
		cmdline, err := os.ReadFile(filepath.Join("/proc", e.Name(), "cmdline"))
		if err != nil {
			continue
		}
		for _, a := range bytes.Split(cmdline, []byte{0}) {
			if string(a) == arg {
				out = append(out, pid)
				break
			}
		}
	}
	return out
}

// iptablesTables lists the tables iptables and ip6tables hold now, as
// "iptables nat", "ip6tables filter", ...: with iptables-nft they are
// nftables tables, which the node's components create when the host had
// none.
func iptablesTables() []string {
	var out []string
	for _, family := range []string{"iptables", "ip6tables"} {
		save, err := exec.Command(family + "-save").Output()
		if err != nil {
			continue
		}
		for _, l := range strings.Split(string(save), "\n") {
			if strings.HasPrefix(l, "*") {
				out = append(out, family+" "+l[1:])
			}
		}
	}
	sort.Strings(out)
	return out
}

// dropNewTables deletes the iptables tables that did not exist before the
// node started (before) and hold no rule now. Only iptables-nft tables can
// be deleted; with legacy iptables they stay, empty.
func dropNewTables(before []string) {
	had := map[string]bool{}
	for _, t := range before {
		had[t] = true
	}
	for _, family := range []string{"iptables", "ip6tables"} {
		save, err := exec.Command(family + "-save").Output()
		if err != nil {
			continue
		}
		rules := map[string]int{}
		table := ""
		for _, l := range strings.Split(string(save), "\n") {
			switch {
			case strings.HasPrefix(l, "*"):
				table = l[1:]
				rules[table] += 0
			case strings.HasPrefix(l, "-A "):
				rules[table]++
			}
		}
		nftFamily := map[string]string{"iptables": "ip", "ip6tables": "ip6"}[family]
		for t, n := range rules {
			if n == 0 && !had[family+" "+t] {
				run("nft", "delete", "table", nftFamily, t)
			}
		}
	}
}
