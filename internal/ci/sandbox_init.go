package ci

import (
	"encoding/json"
	"errors"
	"fmt"
	"io/fs"
	"os"
	"os/signal"
	"path/filepath"
	"runtime"
	"syscall"

	"golang.org/x/sys/unix"
)

// This file is the inside of a job's sandbox: the init that the runner
// starts, as PID 1 of the job's new PID namespace, by running this same
// executable under the name initArg0. See sandbox.go for the whole picture.

// initArg0 is the argv[0] under which this executable (stack, or a test
// binary of a package that links this one) is the init of a job's sandbox.
const initArg0 = "stack-ci-init"

// The file descriptors the runner hands the init: it reads its initConfig
// from the first (the runner writes it once the init is in the job's
// cgroups) and writes its result line to the second.
const (
	initConfigFD = 3
	initResultFD = 4
)

func init() {
	if len(os.Args) > 0 && os.Args[0] == initArg0 {
		os.Exit(sandboxInit())
	}
}

// initConfig is what the runner tells the init of a job's sandbox.
type initConfig struct {
	// Probe: build the job's view of the file system, then exit without
	// running anything (the runner's check that sandboxes work here).
	Probe bool `json:"probe,omitempty"`
	// Script and Dir: what runs, and where. Both lie inside Work.
	Script string `json:"script,omitempty"`
	Dir    string `json:"dir,omitempty"`
	// Name is the script as the pipeline names it, for messages.
	Name string `json:"name,omitempty"`
	// Work is the job's work directory: the one writable directory of this
	// machine the job sees, at its own path.
	Work string `json:"work"`
	// Exe is the stack executable, shown read-only at its own path so
	// that jobs can run stack; "" shows none.
	Exe string `json:"exe,omitempty"`
	// Hide lists directories the job must not see even where they lie
	// under a system directory it sees (the data directory).
	Hide []string `json:"hide,omitempty"`
	// UID and GID are who the script runs as: a job's own when the init
	// is real root, the runner's in a user namespace.
	UID int `json:"uid"`
	GID int `json:"gid"`
	// UserNS: the sandbox is a user namespace of an unprivileged runner, in
	// which the init is root; the script then runs in a nested user
	// namespace as UID and GID, with no capabilities, so it cannot undo
	// the mounts.
	UserNS bool `json:"userns,omitempty"`
}

// systemDirs are the directories of this machine a job sees, read-only
// (symbolic links among them, as /bin on a merged-/usr system, are copied).
var systemDirs = []string{"bin", "etc", "lib", "lib32", "lib64", "libx32", "opt", "sbin", "sys", "usr"}

// sandboxInit is the init of a job's sandbox. It reads its config, builds
// the job's view of the file system, runs the script, reaps every process
// of the namespace, forwards SIGTERM, SIGINT and SIGHUP to all of them,
// and when the script ends kills whatever is left, reports the script's
// wait status on initResultFD ("exit N", "signal N", or "error MESSAGE"),
// and exits — which makes the kernel end the namespace.
func sandboxInit() int {
	// Neither descriptor may reach the script: it could fake the result.
	syscall.CloseOnExec(initConfigFD)
	syscall.CloseOnExec(initResultFD)
	result := os.NewFile(initResultFD, "result")
	fail := func(err error) int {
		fmt.Fprintf(result, "error %v\n", err)
		return 1
	}
	var cfg initConfig
	if err := json.NewDecoder(os.NewFile(initConfigFD, "config")).Decode(&cfg); err != nil {
		return fail(fmt.Errorf("read the sandbox config: %w", err))
	}
	if os.Getpid() != 1 {
		return fail(errors.New("the sandbox init is not PID 1 of a new PID namespace"))
	}
	syscall.Umask(0o022) // the directories made for mount points must be searchable
	if err := buildRoot(cfg); err != nil {
		return fail(err)
	}
	if cfg.Probe {
		fmt.Fprintln(result, "exit 0")
		return 0
	}
	// Nothing of the job (same user in a user namespace) may trace or
	// read the init.
	if err := unix.Prctl(unix.PR_SET_DUMPABLE, 0, 0, 0, 0); err != nil {
		return fail(fmt.Errorf("prctl PR_SET_DUMPABLE: %w", err))
	}
	sigs := make(chan os.Signal, 8)
	signal.Notify(sigs, syscall.SIGTERM, syscall.SIGINT, syscall.SIGHUP)
	go func() {
		for sig := range sigs {
			syscall.Kill(-1, sig.(syscall.Signal)) // every process of the namespace but init
		}
	}()
	script, err := startScript(cfg)
	if err != nil {
		return fail(err)
	}
	var status syscall.WaitStatus
	for {
		var ws syscall.WaitStatus
		pid, err := syscall.Wait4(-1, &ws, 0, nil)
		if err == syscall.EINTR {
			continue
		}
		if err != nil {
			return fail(fmt.Errorf("wait for the script: %w", err))
		}
		if pid == script {
			status = ws
			break
		}
	}
	// The script is done: so is everything it started, setsid or not.
	syscall.Kill(-1, syscall.SIGKILL)
	for {
		var ws syscall.WaitStatus
		if _, err := syscall.Wait4(-1, &ws, 0, nil); err == syscall.ECHILD {
			break
		}
	}
	if status.Signaled() {
		fmt.Fprintf(result, "signal %d\n", int(status.Signal()))
	} else {
		fmt.Fprintf(result, "exit %d\n", status.ExitStatus())
	}
	return 0
}

// startScript starts the job's script with no way to gain privileges:
// no_new_privs (setuid programs do not elevate), and as cfg.UID or, in a
// user namespace, in a nested one where it has no capabilities.
func startScript(cfg initConfig) (int, error) {
	// no_new_privs is per thread and inherited by what the thread
	// starts: set it on the thread that forks.
	runtime.LockOSThread()
	if err := unix.Prctl(unix.PR_SET_NO_NEW_PRIVS, 1, 0, 0, 0); err != nil {
		return 0, fmt.Errorf("prctl PR_SET_NO_NEW_PRIVS: %w", err)
	}
	attr := &syscall.SysProcAttr{}
	if cfg.UserNS {
		attr.Cloneflags = syscall.CLONE_NEWUSER | syscall.CLONE_NEWNS
		attr.UidMappings = []syscall.SysProcIDMap{{ContainerID: cfg.UID, HostID: 0, Size: 1}}
		attr.GidMappings = []syscall.SysProcIDMap{{ContainerID: cfg.GID, HostID: 0, Size: 1}}
	} else {
		attr.Credential = &syscall.Credential{Uid: uint32(cfg.UID), Gid: uint32(cfg.GID), Groups: []uint32{}}
	}
	p, err := os.StartProcess(cfg.Script, []string{cfg.Script}, &os.ProcAttr{
		Dir:   cfg.Dir,
		Env:   os.Environ(),
		Files: []*os.File{os.Stdin, os.Stdout, os.Stderr},
		Sys:   attr,
	})
	if err != nil {
		var pe *fs.PathError
		if errors.As(err, &pe) {
			err = pe.Err
		}
		return 0, fmt.Errorf("start %s: %v (does it begin with a #! line?)", cfg.Name, err)
	}
	return p.Pid, nil
}

// buildRoot makes the job's root directory and moves the init into it:
// a fresh tmpfs holding the system directories read-only, a new /proc (of
// the job's PID namespace), the machine's /dev with a private /dev/shm, a
// private /tmp, the stack executable read-only and the work directory
// writable, both at their own paths. Nothing else of the machine — the
// data directory, other repositories and jobs, home directories — is in
// it. The old root is detached, and the new one made read-only.
func buildRoot(cfg initConfig) error {
	// What the job sees of the machine's own files is opened first: the
	// mounts below may cover the paths (a data directory under /tmp).
	work, err := unix.Open(cfg.Work, unix.O_PATH|unix.O_DIRECTORY|unix.O_CLOEXEC, 0)
	if err != nil {
		return fmt.Errorf("open the work directory: %w", err)
	}
	defer unix.Close(work)
	exe := -1
	if cfg.Exe != "" {
		if exe, err = unix.Open(cfg.Exe, unix.O_PATH|unix.O_CLOEXEC, 0); err != nil {
			return fmt.Errorf("open the stack executable: %w", err)
		}
		defer unix.Close(exe)
	}
	// Nothing mounted here may show outside.
	if err := unix.Mount("", "/", "", unix.MS_REC|unix.MS_PRIVATE, ""); err != nil {
		return fmt.Errorf("make the sandbox's mounts private: %w", err)
	}
	const root = "/tmp" // where the new root is built; any directory would do
	if err := mountTmpfs(root, "mode=0755,size=4m,nr_inodes=4096"); err != nil {
		return err
	}
	for _, name := range systemDirs {
		host, dst := "/"+name, root+"/"+name
		fi, err := os.Lstat(host)
		switch {
		case err != nil:
			continue
		case fi.Mode()&fs.ModeSymlink != 0:
			target, err := os.Readlink(host)
			if err == nil {
				err = os.Symlink(target, dst)
			}
			if err != nil {
				return fmt.Errorf("sandbox: %s: %w", host, err)
			}
		case fi.IsDir():
			if err := bindDir(host, dst, true); err != nil {
				return err
			}
		}
	}
	var hidden []string
	for _, h := range cfg.Hide {
		if fi, err := os.Stat(root + h); err == nil && fi.IsDir() {
			if err := mountTmpfs(root+h, "mode=0755,size=64k,nr_inodes=256"); err != nil {
				return err
			}
			hidden = append(hidden, root+h)
		}
	}
	if err := bindDir("/dev", root+"/dev", false); err != nil {
		return err
	}
	if _, err := os.Stat(root + "/dev/shm"); err == nil {
		if err := mountTmpfs(root+"/dev/shm", "mode=1777,size=64m"); err != nil {
			return err
		}
	}
	// The machine's POSIX message queues are not the job's either: its own
	// IPC namespace's, or none.
	if _, err := os.Stat(root + "/dev/mqueue"); err == nil {
		if unix.Mount("mqueue", root+"/dev/mqueue", "mqueue", unix.MS_NOSUID|unix.MS_NODEV|unix.MS_NOEXEC, "") != nil {
			if err := mountTmpfs(root+"/dev/mqueue", "mode=0755,size=4k"); err != nil {
				return err
			}
		}
	}
	if err := os.MkdirAll(root+"/proc", 0o755); err != nil {
		return fmt.Errorf("sandbox: %w", err)
	}
	if err := unix.Mount("proc", root+"/proc", "proc", unix.MS_NOSUID|unix.MS_NODEV|unix.MS_NOEXEC, ""); err != nil {
		return fmt.Errorf("mount /proc of the job's PID namespace: %w", err)
	}
	if err := mountTmpfs(root+"/tmp", "mode=1777,size=256m"); err != nil {
		return err
	}
	if err := bindFD(work, root+cfg.Work, true, false); err != nil {
		return err
	}
	if exe >= 0 {
		if _, err := os.Lstat(root + cfg.Exe); err != nil { // not under a system directory
			if err := bindFD(exe, root+cfg.Exe, false, true); err != nil {
				return err
			}
		}
	}
	// Read-only where a directory was made for a mount point inside.
	for _, h := range hidden {
		if err := readOnly(h, false); err != nil {
			return err
		}
	}
	if err := os.Chdir(root); err != nil {
		return fmt.Errorf("sandbox: %w", err)
	}
	// pivot_root(".", ".") puts the old root on top of the new one; the
	// lazy unmount then takes it away.
	if err := unix.PivotRoot(".", "."); err != nil {
		return fmt.Errorf("pivot_root into the sandbox: %w", err)
	}
	if err := unix.Unmount(".", unix.MNT_DETACH); err != nil {
		return fmt.Errorf("detach the machine's root from the sandbox: %w", err)
	}
	if err := os.Chdir("/"); err != nil {
		return fmt.Errorf("sandbox: %w", err)
	}
	return readOnly("/", false)
}

func mountTmpfs(dir, opts string) error {
	if err := os.MkdirAll(dir, 0o755); err != nil {
		return fmt.Errorf("sandbox: %w", err)
	}
	if err := unix.Mount("tmpfs", dir, "tmpfs", unix.MS_NOSUID|unix.MS_NODEV, opts); err != nil {
		return fmt.Errorf("sandbox: mount a tmpfs on %s: %w", dir, err)
	}
	return nil
}

// bindDir shows the directory src at dst, with what is mounted below it.
func bindDir(src, dst string, ro bool) error {
	if err := os.MkdirAll(dst, 0o755); err != nil {
		return fmt.Errorf("sandbox: %w", err)
	}
	if err := unix.Mount(src, dst, "", unix.MS_BIND|unix.MS_REC, ""); err != nil {
		return fmt.Errorf("sandbox: bind %s: %w", src, err)
	}
	if ro {
		return readOnly(dst, true)
	}
	return nil
}

// bindFD shows what the O_PATH descriptor fd names at dst, a directory
// or a file made for it.
func bindFD(fd int, dst string, dir, ro bool) error {
	if err := os.MkdirAll(filepath.Dir(dst), 0o755); err != nil {
		return fmt.Errorf("sandbox: %w", err)
	}
	var err error
	if dir {
		err = os.Mkdir(dst, 0o755)
	} else {
		err = os.WriteFile(dst, nil, 0o555)
	}
	if err != nil && !errors.Is(err, fs.ErrExist) {
		return fmt.Errorf("sandbox: %w", err)
	}
	if err := unix.Mount(fmt.Sprintf("/proc/self/fd/%d", fd), dst, "", unix.MS_BIND, ""); err != nil {
		return fmt.Errorf("sandbox: bind %s: %w", dst, err)
	}
	if ro {
		return readOnly(dst, false)
	}
	return nil
}

// readOnly makes the mount at dir read-only, with the mounts below it if
// recursive.
func readOnly(dir string, recursive bool) error {
	var flags uint
	if recursive {
		flags = unix.AT_RECURSIVE
	}
	if err := unix.MountSetattr(unix.AT_FDCWD, dir, flags, &unix.MountAttr{Attr_set: unix.MOUNT_ATTR_RDONLY}); err != nil {
		return fmt.Errorf("sandbox: make %s read-only (mount_setattr, Linux 5.12 or later): %w", dir, err)
	}
	return nil
}
