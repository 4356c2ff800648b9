package ci

// A job's sandbox.
//
// Whoever may push to any branch of any served repository decides what a
// job runs, so a job must not hold the daemon's power. Each job runs
// confined, in four ways:
//
//   - Identity. When the runner is root, the script runs as a user and group
//     of its own, jobUIDBase + job number mod jobUIDs, with no supplementary
//     groups and no_new_privs (no setuid program elevates it); its work
//     directory is chowned to that user. An unprivileged runner runs the
//     job in a user namespace instead, as its own user but with no
//     capabilities over the job's mounts.
//   - View. The job has PID, mount and IPC namespaces of its own. Its root
//     is a fresh read-only tmpfs holding the machine's system directories
//     (systemDirs: /usr, /etc, /bin, /lib..., /opt, /sys) read-only, /dev
//     with a private /dev/shm, its own /proc and a private /tmp, the stack
//     executable read-only, and its work directory DATA/ci/work/ID (src,
//     tmp, home) writable at its own path. Nothing else of the machine is
//     there: no data directory (other repositories, the SSH host key, the
//     registry's blobs, other jobs and their logs), no home directories.
//     Permissions stand behind the view: the daemon keeps DATA and what it
//     holds 0700.
//   - Processes. The job's PID 1 is this executable run again as its init
//     (sandbox_init.go): it reaps, forwards SIGTERM to every process of the
//     namespace, and when the script ends kills what is left. When the
//     init ends, for whatever reason, the kernel kills every process of
//     the namespace, setsid or not: at a timeout the runner sends SIGTERM
//     to the init and, KillGrace later, SIGKILL.
//   - Limits. When the runner is root and the cgroup v1 memory and pids
//     controllers are mounted, each job has a cgroup in each,
//     /sys/fs/cgroup/{memory,pids}/stack-ci/KEY/ID (KEY is derived from the
//     data directory, so that runners of different data directories never
//     touch each other's), limiting its memory (MemoryLimit) and its
//     processes and threads (PidsLimit). The cgroups go when the job ends;
//     a runner starting kills whatever is left in its KEY's cgroups by a
//     runner that died, and removes them.
//
// Secrets are not inherited: the environment is built from nothing (see
// env), and STACK_CI_TOKEN is a random token of the job's own, of which
// the job record keeps only the SHA-256 (JobForToken).
//
// What the sandbox needs is checked once, when the runner starts (probe).
// Where the kernel refuses it, jobs run as before — as the runner's user,
// with the machine in view — and the first line of every job's log says
// "not sandboxed" and why.

import (
	"bufio"
	"crypto/rand"
	"crypto/sha256"
	"crypto/subtle"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"io/fs"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"syscall"
	"time"

	"golang.org/x/sys/unix"
)

// Limits of a job's resources, when the runner can enforce them.
const (
	DefaultMemoryLimit int64 = 2 << 30
	DefaultPidsLimit         = 512
)

// A root runner's jobs run as user and group jobUIDBase + job number mod
// jobUIDs: above the subordinate id ranges useradd hands out on a machine
// with a few users (100000 up, 65536 each), below the 2097151 that tar's
// ustar format can hold.
const (
	jobUIDBase = 1_900_000
	jobUIDs    = 65536
)

// jobUID is the user and group id a root runner runs job number seq as.
func jobUID(seq int64) int { return jobUIDBase + int(seq%jobUIDs) }

type sandboxKind int

const (
	noSandbox   sandboxKind = iota
	rootSandbox             // the runner is root: jobs get a user of their own
	userSandbox             // an unprivileged runner: jobs run in a user namespace
)

// sandbox is how a runner confines its jobs, decided when it starts.
type sandbox struct {
	kind sandboxKind
	why  string // noSandbox: why not
	exe  string // this executable, the sandboxes' init
	data string // the data directory, hidden from jobs
	cg   *cgroups
	// cgWhy says why there are no limits, when cg is nil.
	cgWhy  string
	memory int64
	pids   int
}

// sandboxRefused, when a test sets it, stands for a kernel that refuses
// every sandbox, with this reason: tests cannot take namespaces away from
// the machine they share.
var sandboxRefused string

// newSandbox finds out how jobs can be confined here: it runs the
// sandbox's init once, in probe mode, in the namespaces jobs would get.
func (r *Runner) newSandbox(s *store) *sandbox {
	sb := &sandbox{data: filepath.Dir(s.dir), memory: r.MemoryLimit, pids: r.PidsLimit}
	if sandboxRefused != "" {
		sb.why = sandboxRefused
		return sb
	}
	exe, err := os.Executable()
	if err != nil {
		sb.why = fmt.Sprintf("cannot find this executable to run as the sandbox's init: %v", err)
		return sb
	}
	sb.exe = exe
	sb.kind = userSandbox
	if os.Geteuid() == 0 {
		sb.kind = rootSandbox
	}
	p, err := sb.startInit(initConfig{Probe: true, Work: s.path("work")}, []string{}, nil, "")
	var end scriptEnd
	if err == nil {
		end = p.wait()
		err = end.err
	}
	if err != nil {
		kind := "PID, mount and IPC namespaces"
		if sb.kind == userSandbox {
			kind = "a user namespace (run stack serve as root, or allow unprivileged user namespaces)"
		}
		sb.kind, sb.why = noSandbox, fmt.Sprintf("the kernel refused %s: %v", kind, err)
		return sb
	}
	if sb.kind == userSandbox {
		sb.cgWhy = "no memory or process limits: cgroups need a runner running as root"
		return sb
	}
	if sb.cg, err = openCgroups(sb.data); err != nil {
		sb.cgWhy = "no memory or process limits: " + err.Error()
	}
	return sb
}

// describe is the line a job's log starts with (after its header).
func (sb *sandbox) describe(j *Job) string {
	var b strings.Builder
	switch sb.kind {
	case noSandbox:
		return "not sandboxed: " + sb.why + "; the job runs as the runner's user and sees what it sees"
	case rootSandbox:
		fmt.Fprintf(&b, "sandbox: uid %d, no capabilities", jobUID(j.Seq))
	case userSandbox:
		fmt.Fprintf(&b, "sandbox: a user namespace, as the runner's uid %d", os.Geteuid())
	}
	b.WriteString("; own PID, mount and IPC namespaces: sees the system directories read-only and its work directory")
	if sb.cg != nil {
		fmt.Fprintf(&b, "; memory %s, %d processes", formatSize(sb.memory), sb.pids)
	} else {
		b.WriteString("; " + sb.cgWhy)
	}
	return b.String()
}

// initProc is a running sandbox init.
type initProc struct {
	cmd    *exec.Cmd
	result *os.File // the read end of the init's result pipe
	cg     *cgroups
	job    string // the job's cgroup name, or ""
}

// scriptEnd is how a job's script ended: it exited with code, or was
// killed by sig, or never ran or was not waited for (err).
type scriptEnd struct {
	code int
	sig  syscall.Signal
	err  error
	// oom: the job's memory cgroup killed a process for lack of memory.
	oom bool
}

func (sb *sandbox) sysProcAttr() *syscall.SysProcAttr {
	attr := &syscall.SysProcAttr{
		Setpgid:    true,
		Cloneflags: syscall.CLONE_NEWPID | syscall.CLONE_NEWNS | syscall.CLONE_NEWIPC,
	}
	if sb.kind == userSandbox {
		attr.Cloneflags |= syscall.CLONE_NEWUSER
		attr.UidMappings = []syscall.SysProcIDMap{{ContainerID: 0, HostID: os.Geteuid(), Size: 1}}
		attr.GidMappings = []syscall.SysProcIDMap{{ContainerID: 0, HostID: os.Getegid(), Size: 1}}
	}
	return attr
}

// startInit starts the sandbox's init with cfg, env and output out. With
// a job cgroup name, the init is put in that cgroup before it is told
// what to run, so that nothing of the job is ever outside it.
func (sb *sandbox) startInit(cfg initConfig, env []string, out *os.File, cgJob string) (*initProc, error) {
	cfgR, cfgW, err := os.Pipe()
	if err != nil {
		return nil, err
	}
	resR, resW, err := os.Pipe()
	if err != nil {
		cfgR.Close()
		cfgW.Close()
		return nil, err
	}
	cmd := &exec.Cmd{Path: sb.exe, Args: []string{initArg0}, Env: env, Dir: "/", ExtraFiles: []*os.File{cfgR, resW}, SysProcAttr: sb.sysProcAttr()}
	if out != nil {
		cmd.Stdout, cmd.Stderr = out, out
	}
	err = cmd.Start()
	cfgR.Close()
	resW.Close()
	if err != nil {
		cfgW.Close()
		resR.Close()
		return nil, err
	}
	p := &initProc{cmd: cmd, result: resR}
	if cgJob != "" && sb.cg != nil {
		p.cg, p.job = sb.cg, cgJob
		if err := sb.cg.add(cgJob, cmd.Process.Pid); err != nil {
			cfgW.Close()
			cmd.Process.Kill()
			p.wait()
			return nil, err
		}
	}
	err = json.NewEncoder(cfgW).Encode(cfg)
	cfgW.Close()
	if err != nil {
		cmd.Process.Kill()
		p.wait()
		return nil, fmt.Errorf("send the sandbox its config: %w", err)
	}
	return p, nil
}

// wait waits for the init to end and returns how the script ended.
func (p *initProc) wait() scriptEnd {
	werr := p.cmd.Wait()
	b, _ := io.ReadAll(io.LimitReader(p.result, 4096))
	p.result.Close()
	var end scriptEnd
	if p.cg != nil {
		end.oom = p.cg.oomKilled(p.job)
	}
	line := strings.TrimSpace(string(b))
	verb, arg, _ := strings.Cut(line, " ")
	n, nerr := strconv.Atoi(arg)
	switch {
	case verb == "exit" && nerr == nil:
		end.code = n
	case verb == "signal" && nerr == nil:
		end.sig = syscall.Signal(n)
	case verb == "error":
		end.err = errors.New(arg)
	case werr != nil:
		end.err = fmt.Errorf("the sandbox's init ended with %v before the script did", werr)
	default:
		end.err = fmt.Errorf("the sandbox's init ended without saying how the script did (%q)", line)
	}
	return end
}

// jobProc is a job's script while it runs, directly or in its sandbox.
type jobProc struct {
	pid    int // the script, or the sandbox's init: the job record's PID
	wait   func() scriptEnd
	signal func(syscall.Signal)
	// cleanup kills whatever of the job is left and frees its cgroups.
	cleanup func()
}

// start starts job j's script (script, run in dir, both inside work) with
// env and output out, as the sandbox says.
func (sb *sandbox) start(j *Job, work, script, dir string, env []string, out *os.File) (*jobProc, error) {
	if sb.kind == noSandbox {
		return startUnsandboxed(j, script, dir, env, out)
	}
	cfg := initConfig{Script: script, Name: j.Run, Dir: dir, Work: work, Exe: sb.exe, Hide: []string{sb.data}}
	cgJob := ""
	switch sb.kind {
	case rootSandbox:
		cfg.UID, cfg.GID = jobUID(j.Seq), jobUID(j.Seq)
		if err := chownTree(work, cfg.UID, cfg.GID); err != nil {
			return nil, fmt.Errorf("sandbox: give the work directory to uid %d: %w", cfg.UID, err)
		}
		j.UID = cfg.UID
		if sb.cg != nil {
			if err := sb.cg.create(j.ID, sb.memory, sb.pids); err != nil {
				return nil, err
			}
			cgJob = j.ID
		}
	case userSandbox:
		cfg.UID, cfg.GID, cfg.UserNS = os.Geteuid(), os.Getegid(), true
	}
	p, err := sb.startInit(cfg, env, out, cgJob)
	if err != nil {
		if cgJob != "" {
			sb.cg.remove(cgJob)
		}
		return nil, fmt.Errorf("sandbox: start the job's init: %w", err)
	}
	return &jobProc{
		pid:    p.cmd.Process.Pid,
		wait:   p.wait,
		signal: func(sig syscall.Signal) { p.cmd.Process.Signal(sig) },
		cleanup: func() {
			if cgJob != "" {
				sb.cg.remove(cgJob)
			}
		},
	}, nil
}

// startUnsandboxed runs the script as the runner's user, the leader of its
// own process group.
func startUnsandboxed(j *Job, script, dir string, env []string, out *os.File) (*jobProc, error) {
	cmd := exec.Command(script)
	cmd.Dir = dir
	cmd.Env = env
	cmd.Stdout, cmd.Stderr = out, out
	cmd.SysProcAttr = &syscall.SysProcAttr{Setpgid: true}
	if err := cmd.Start(); err != nil {
		var pe *fs.PathError
		if errors.As(err, &pe) {
			err = pe.Err
		}
		return nil, fmt.Errorf("start %s: %v (does it begin with a #! line?)", j.Run, err)
	}
	pgid := cmd.Process.Pid
	return &jobProc{
		pid: pgid,
		wait: func() scriptEnd {
			err := cmd.Wait()
			ws, ok := cmd.ProcessState.Sys().(syscall.WaitStatus)
			switch {
			case !ok:
				return scriptEnd{err: err}
			case ws.Signaled():
				return scriptEnd{sig: ws.Signal()}
			}
			return scriptEnd{code: ws.ExitStatus()}
		},
		signal:  func(sig syscall.Signal) { killGroup(pgid, sig) },
		cleanup: func() { killGroup(pgid, syscall.SIGKILL) },
	}, nil
}

// chownTree gives dir and everything in it to uid and gid, following no
// symbolic link.
func chownTree(dir string, uid, gid int) error {
	return filepath.WalkDir(dir, func(path string, d fs.DirEntry, err error) error {
		if err != nil {
			return err
		}
		return os.Lchown(path, uid, gid)
	})
}

// newToken makes a job's STACK_CI_TOKEN and the SHA-256 the job record
// keeps of it.
func newToken() (token, sum string) {
	b := make([]byte, 32)
	rand.Read(b) // never fails (crypto/rand)
	token = "stackci_" + hex.EncodeToString(b)
	h := sha256.Sum256([]byte(token))
	return token, hex.EncodeToString(h[:])
}

// JobForToken returns the running job whose STACK_CI_TOKEN token is: what
// a server would check before acting for a job. The token stands for the
// job's repository (Job.Repo) and only while the job runs.
//
// Nothing accepts the tokens yet: the registry and the git server do not
// ask for them. A job has no credentials for either, the registry's
// anonymous pushes on loopback apart.
func JobForToken(dataDir, token string) (*Job, error) {
	if !strings.HasPrefix(token, "stackci_") {
		return nil, errors.New("not a CI job token")
	}
	jobs, err := List(dataDir)
	if err != nil {
		return nil, err
	}
	h := sha256.Sum256([]byte(token))
	sum := []byte(hex.EncodeToString(h[:]))
	for _, j := range jobs {
		if j.State == Running && subtle.ConstantTimeCompare([]byte(j.TokenSHA256), sum) == 1 {
			return j, nil
		}
	}
	return nil, errors.New("the token belongs to no running CI job")
}

// cgroupRoot is where the cgroup hierarchies are mounted.
const cgroupRoot = "/sys/fs/cgroup"

// cgroupControllers are the cgroup v1 controllers a job gets a cgroup in.
var cgroupControllers = []string{"memory", "pids"}

// cgroups are a runner's job cgroups: in each of cgroupControllers,
// stack-ci/KEY/ID for the job ID.
type cgroups struct {
	dirs []string // CONTROLLER/stack-ci/KEY
}

// openCgroups makes the cgroups of the runner of dataDir (not of any job
// yet), or says why it cannot.
func openCgroups(dataDir string) (*cgroups, error) {
	sum := sha256.Sum256([]byte(dataDir))
	key := hex.EncodeToString(sum[:6])
	c := &cgroups{}
	for _, ctrl := range cgroupControllers {
		base := filepath.Join(cgroupRoot, ctrl)
		var st unix.Statfs_t
		if err := unix.Statfs(base, &st); err != nil || st.Type != unix.CGROUP_SUPER_MAGIC {
			return nil, fmt.Errorf("the cgroup v1 %s controller is not mounted at %s (cgroup v2 is not supported yet)", ctrl, base)
		}
		dir := filepath.Join(base, "stack-ci", key)
		if err := os.MkdirAll(dir, 0o755); err != nil {
			return nil, fmt.Errorf("make the CI cgroup: %w", err)
		}
		c.dirs = append(c.dirs, dir)
	}
	return c, nil
}

// create makes job's cgroups with its limits.
func (c *cgroups) create(job string, memory int64, pids int) error {
	for _, d := range c.dirs {
		if err := os.Mkdir(filepath.Join(d, job), 0o755); err != nil && !errors.Is(err, fs.ErrExist) {
			return fmt.Errorf("sandbox: make the job's cgroup: %w", err)
		}
	}
	set := func(ctrl, file, value string, optional bool) error {
		path := filepath.Join(cgroupRoot, ctrl, c.rel(job), file)
		err := os.WriteFile(path, []byte(value), 0o644)
		if err != nil && !(optional && errors.Is(err, fs.ErrNotExist)) {
			c.remove(job)
			return fmt.Errorf("sandbox: set the job's %s: %w", file, err)
		}
		return nil
	}
	m := strconv.FormatInt(memory, 10)
	if err := set("memory", "memory.limit_in_bytes", m, false); err != nil {
		return err
	}
	// With swap accounting, memory and swap together are bounded the same.
	if err := set("memory", "memory.memsw.limit_in_bytes", m, true); err != nil {
		return err
	}
	return set("pids", "pids.max", strconv.Itoa(pids), false)
}

// rel is job's cgroup relative to a controller's root.
func (c *cgroups) rel(job string) string {
	rel, _ := filepath.Rel(filepath.Join(cgroupRoot, cgroupControllers[0]), filepath.Join(c.dirs[0], job))
	return rel
}

// add puts process pid, and so whatever it starts, in job's cgroups.
func (c *cgroups) add(job string, pid int) error {
	for _, d := range c.dirs {
		if err := os.WriteFile(filepath.Join(d, job, "cgroup.procs"), []byte(strconv.Itoa(pid)), 0o644); err != nil {
			return fmt.Errorf("sandbox: put the job in its cgroup: %w", err)
		}
	}
	return nil
}

// procs lists the processes in job's cgroups.
func (c *cgroups) procs(job string) []int {
	var pids []int
	for _, d := range c.dirs {
		b, _ := os.ReadFile(filepath.Join(d, job, "cgroup.procs"))
		for _, f := range strings.Fields(string(b)) {
			if pid, err := strconv.Atoi(f); err == nil && pid > 1 {
				pids = append(pids, pid)
			}
		}
	}
	return pids
}

// remove kills every process in job's cgroups until none is left (forks
// in between included), then removes the cgroups. It returns how many
// processes it killed.
func (c *cgroups) remove(job string) int {
	killed := 0
	for end := time.Now().Add(5 * time.Second); time.Now().Before(end); time.Sleep(10 * time.Millisecond) {
		pids := c.procs(job)
		if len(pids) == 0 {
			break
		}
		for _, pid := range pids {
			if syscall.Kill(pid, syscall.SIGKILL) == nil {
				killed++
			}
		}
	}
	for _, d := range c.dirs {
		dir := filepath.Join(d, job)
		// A killed process leaves its cgroup a moment after the signal.
		for end := time.Now().Add(2 * time.Second); ; time.Sleep(10 * time.Millisecond) {
			err := os.Remove(dir)
			if err == nil || errors.Is(err, fs.ErrNotExist) || time.Now().After(end) {
				break
			}
		}
	}
	return killed
}

// leftovers lists the job cgroups there are.
func (c *cgroups) leftovers() []string {
	seen := map[string]bool{}
	var jobs []string
	for _, d := range c.dirs {
		ents, _ := os.ReadDir(d)
		for _, e := range ents {
			if e.IsDir() && !seen[e.Name()] {
				seen[e.Name()] = true
				jobs = append(jobs, e.Name())
			}
		}
	}
	return jobs
}

// oomKilled reports whether the memory cgroup of job killed a process
// for want of memory.
func (c *cgroups) oomKilled(job string) bool {
	f, err := os.Open(filepath.Join(cgroupRoot, "memory", c.rel(job), "memory.oom_control"))
	if err != nil {
		return false
	}
	defer f.Close()
	sc := bufio.NewScanner(f)
	for sc.Scan() {
		if n, ok := strings.CutPrefix(sc.Text(), "oom_kill "); ok {
			return n != "0"
		}
	}
	return false
}

// close removes the runner's (empty) cgroup directories.
func (c *cgroups) close() {
	for _, d := range c.dirs {
		os.Remove(d)
	}
}

// ParseSize reads a size in bytes written as an integer with an optional
// binary unit: 512MiB, 2GiB, 1073741824. It is how the memory a job may
// use is given (stack serve --job-memory).
func ParseSize(s string) (int64, error) {
	num, mult := s, int64(1)
	for _, u := range []struct {
		suffix string
		mult   int64
	}{{"KiB", 1 << 10}, {"MiB", 1 << 20}, {"GiB", 1 << 30}, {"TiB", 1 << 40}} {
		if n, ok := strings.CutSuffix(s, u.suffix); ok {
			num, mult = n, u.mult
			break
		}
	}
	n, err := strconv.ParseInt(num, 10, 64)
	if err != nil || n < 0 || num == "" || num[0] == '+' || n > (1<<62)/mult {
		return 0, fmt.Errorf("%q is not a size: write a whole number with KiB, MiB, GiB or TiB (2GiB), or bytes", s)
	}
	return n * mult, nil
}

// formatSize writes n bytes in the largest binary unit that divides it, as
// ParseSize reads it.
func formatSize(n int64) string {
	for _, u := range []struct {
		suffix string
		mult   int64
	}{{"TiB", 1 << 40}, {"GiB", 1 << 30}, {"MiB", 1 << 20}, {"KiB", 1 << 10}} {
		if n >= u.mult && n%u.mult == 0 {
			return strconv.FormatInt(n/u.mult, 10) + u.suffix
		}
	}
	return strconv.FormatInt(n, 10)
}
