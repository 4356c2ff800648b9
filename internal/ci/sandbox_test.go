package ci

import (
	"crypto/sha256"
	"encoding/hex"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"strings"
	"syscall"
	"testing"
	"time"

	"golang.org/x/sys/unix"
)

// needRoot skips a test of what only a root runner does.
func needRoot(t *testing.T) {
	t.Helper()
	if os.Geteuid() != 0 {
		t.Skip("needs root: only a runner running as root gives jobs a user and cgroups of their own")
	}
}

// needCgroups skips a test of the limits where there are none.
func needCgroups(t *testing.T, data string) {
	t.Helper()
	needRoot(t)
	abs, _ := filepath.Abs(data)
	if _, err := openCgroups(abs); err != nil {
		t.Skipf("no job limits here: %v", err)
	}
}

// TestSandboxConfines runs a job that holds a secret in its work tree and
// another that tries to reach what no job may: the SSH host key, another
// repository, the other job's work tree and log, the machine's files. Every
// attempt fails; the job's own work tree, TMPDIR, HOME and /tmp are
// writable; it runs as its own user (as root) or in a user namespace (not
// as root) with no_new_privs, sees only its own processes, and has a token
// that names it while it runs.
func TestSandboxConfines(t *testing.T) {
	g := newGitRepo(t)
	data := t.TempDir()
	hostKey := filepath.Join(data, "ssh", "ssh_host_ed25519_key")
	if err := os.MkdirAll(filepath.Dir(hostKey), 0o700); err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(hostKey, []byte("HOSTKEY-SECRET\n"), 0o600); err != nil {
		t.Fatal(err)
	}
	other := filepath.Join(data, "git", "other.git")
	g.git("", "init", "--quiet", "--bare", other)
	otherConfig, _ := os.ReadFile(filepath.Join(other, "config"))

	c := g.commit("main", map[string]string{
		"ci/pipelines.yaml": pipelines("hold", "probe"),
		"ci/hold":           "#!/bin/sh\necho HELD-SECRET > secret\necho \"token=$STACK_CI_TOKEN\"\necho ready\n" + waitGate,
		"ci/probe": "#!/bin/sh\n" + waitGate + `data=$(cd ../../../.. && pwd)
try() { if out=$("$@" 2>&1); then echo "REACHED: $*: $out"; else echo "refused: $*: $out"; fi; }
try cat "$data/ssh/ssh_host_ed25519_key"
try ls "$data/git"
try sh -c "echo '[core]' >> $data/git/other.git/config"
try mkdir "$data/git/other.git/hooks/x"
try cat "$data/ci/work/$HOLD/src/secret"
try cat "$data/ci/jobs/$HOLD/log"
try ls "$data/ci/jobs"
try touch /usr/x
try touch /etc/x
try touch /x
try ls /root /home /var/lib
echo "id=$(id -u) $(id -g) $(id -G)"
grep NoNewPrivs /proc/self/status
echo "procs=$(ls -d /proc/[0-9]* | wc -l)"
echo "pid1=$(tr '\0' ' ' < /proc/1/cmdline)"
echo mine > mine && touch "$TMPDIR/t" "$HOME/h" /tmp/t /dev/shm/s && echo "writable: yes"
echo "commits=$(git log --oneline | wc -l)"
`,
	})
	jobs := g.push(data, "refs/heads/main", c)
	hold, probe := jobs[0], jobs[1]
	startRunner(t, &Runner{DataDir: data, Concurrency: 2, Env: []string{"HOLD=" + hold.ID}})

	log := waitLogged(t, data, hold.ID, "ready\n")
	m := regexp.MustCompile(`token=(stackci_[0-9a-f]{64})\n`).FindStringSubmatch(log)
	if m == nil {
		t.Fatalf("hold logged no token:\n%s", log)
	}
	token := m[1]
	if j, err := JobForToken(data, token); err != nil || j.ID != hold.ID || j.Repo != "repo" {
		t.Errorf("JobForToken while hold runs: %v, %v", j, err)
	}
	if j, err := JobForToken(data, "stackci_"+strings.Repeat("0", 64)); err == nil {
		t.Errorf("JobForToken of a made-up token: %s", j.ID)
	}
	if log := waitLogged(t, data, probe.ID, "==> "); strings.HasPrefix(log, "==> not sandboxed: ") {
		if os.Geteuid() == 0 {
			t.Fatalf("a root runner does not sandbox:\n%s", log)
		}
		t.Skipf("no sandbox for a runner not running as root here: %s", strings.SplitN(log, "\n", 2)[0])
	}
	openGate(t, data, probe.ID)
	p := waitJob(t, data, probe.ID, 30*time.Second, final)
	openGate(t, data, hold.ID)
	h := waitJob(t, data, hold.ID, 30*time.Second, final)
	plog := jobLog(t, data, p.ID)
	if p.State != Succeeded || h.State != Succeeded {
		t.Fatalf("probe %s (%s), hold %s (%s); probe log:\n%s", p.State, p.Error, h.State, h.Error, plog)
	}
	t.Logf("probe log:\n%s", plog)
	if strings.Contains(plog, "REACHED") || strings.Contains(plog, "SECRET") {
		t.Errorf("the job reached what it must not:\n%s", plog)
	}
	if n := strings.Count(plog, "refused: "); n != 11 {
		t.Errorf("%d refusals, want 11:\n%s", n, plog)
	}
	if b, _ := os.ReadFile(filepath.Join(other, "config")); string(b) != string(otherConfig) {
		t.Errorf("the other repository's config changed:\n%s", b)
	}
	uid, gid, sandbox := jobUID(p.Seq), jobUID(p.Seq), fmt.Sprintf("sandbox: uid %d, no capabilities", jobUID(p.Seq))
	if os.Geteuid() != 0 {
		uid, gid, sandbox = os.Geteuid(), os.Getegid(), fmt.Sprintf("sandbox: a user namespace, as the runner's uid %d", os.Geteuid())
	}
	for _, want := range []string{
		sandbox,
		fmt.Sprintf("id=%d %d %d\n", uid, gid, gid),
		"NoNewPrivs:\t1\n",
		"pid1=" + initArg0 + " \n",
		"writable: yes\n",
		"commits=1\n",
	} {
		if !strings.Contains(plog, want) {
			t.Errorf("probe log lacks %q", want)
		}
	}
	if os.Geteuid() == 0 && (p.UID != uid || h.UID == uid || h.UID < jobUIDBase) {
		t.Errorf("uids: probe %d (want %d), hold %d", p.UID, uid, h.UID)
	}
	if m := regexp.MustCompile(`procs=(\d+)`).FindStringSubmatch(plog); m == nil || len(m[1]) > 1 {
		t.Errorf("the job sees more processes than its own: %v", m)
	}
	sum := sha256.Sum256([]byte(token))
	if h.TokenSHA256 != hex.EncodeToString(sum[:]) || strings.Contains(jobLog(t, data, h.ID), h.TokenSHA256) {
		t.Errorf("hold's record keeps %q, not the token's SHA-256", h.TokenSHA256)
	}
	if _, err := JobForToken(data, token); err == nil {
		t.Errorf("JobForToken accepts the token of a finished job")
	}
}

// TestSandboxUnprivileged runs TestSandboxConfines again in a test
// process of an unprivileged user (nobody), whose runner confines jobs
// in a user namespace.
func TestSandboxUnprivileged(t *testing.T) {
	needRoot(t)
	if os.Getenv("STACK_CI_TEST_NOBODY") != "" {
		t.Skip("already the unprivileged run")
	}
	dir := t.TempDir()
	exe, err := os.Executable()
	if err != nil {
		t.Fatal(err)
	}
	bin := filepath.Join(dir, "ci.test")
	if out, err := exec.Command("cp", exe, bin).CombinedOutput(); err != nil {
		t.Fatalf("cp: %v %s", err, out)
	}
	tmp, home := filepath.Join(dir, "tmp"), filepath.Join(dir, "home")
	for _, d := range []string{tmp, home} {
		if err := os.Mkdir(d, 0o700); err != nil {
			t.Fatal(err)
		}
		if err := os.Chown(d, 65534, 65534); err != nil {
			t.Fatal(err)
		}
	}
	// The test's own directories must be searchable by nobody; the
	// system's temporary directory is, or the test cannot run.
	if fi, err := os.Stat(os.TempDir()); err != nil || fi.Mode().Perm()&0o001 == 0 {
		t.Skipf("%s is not searchable by other users", os.TempDir())
	}
	for d := dir; strings.HasPrefix(d, os.TempDir()+"/"); d = filepath.Dir(d) {
		if err := os.Chmod(d, 0o711); err != nil {
			t.Fatal(err)
		}
	}
	cmd := exec.Command(bin, "-test.run=^TestSandboxConfines$", "-test.count=1", "-test.v")
	cmd.Dir = tmp
	cmd.Env = []string{"PATH=" + os.Getenv("PATH"), "HOME=" + home, "TMPDIR=" + tmp, "STACK_CI_TEST_NOBODY=1"}
	cmd.SysProcAttr = &syscall.SysProcAttr{Credential: &syscall.Credential{Uid: 65534, Gid: 65534, Groups: []uint32{}}}
	out, err := cmd.CombinedOutput()
	switch {
	case strings.Contains(string(out), "--- SKIP: TestSandboxConfines"):
		t.Skipf("the unprivileged run skipped:\n%s", out)
	case err != nil || !strings.Contains(string(out), "--- PASS: TestSandboxConfines") || !strings.Contains(string(out), "sandbox: a user namespace"):
		t.Fatalf("as nobody: %v\n%s", err, out)
	}
}

// TestSandboxKillsSetsid: a process a job starts in a session of its own
// is gone the moment the job has ended.
func TestSandboxKillsSetsid(t *testing.T) {
	g := newGitRepo(t)
	data := t.TempDir()
	c := g.commit("main", map[string]string{
		"ci/pipelines.yaml": pipelines("escape"),
		"ci/escape":         "#!/bin/sh\nsetsid sleep 1000 &\nsleep 0.1\necho ready\n" + waitGate,
	})
	jobs := g.push(data, "refs/heads/main", c)
	startRunner(t, &Runner{DataDir: data})
	waitLogged(t, data, jobs[0].ID, "ready\n")
	var escaped int
	for _, pid := range jobProcs(jobs[0].ID) {
		cmdline, _ := os.ReadFile(fmt.Sprintf("/proc/%d/cmdline", pid))
		if string(cmdline) == "sleep\x001000\x00" {
			escaped = pid
		}
	}
	if escaped == 0 {
		t.Fatal("no setsid sleep among the job's processes")
	}
	if sid, err := unix.Getsid(escaped); err != nil || sid != escaped {
		t.Fatalf("the sleep %d is in session %d (%v), not one of its own", escaped, sid, err)
	}
	openGate(t, data, jobs[0].ID)
	j := waitJob(t, data, jobs[0].ID, 30*time.Second, final)
	if j.State != Succeeded {
		t.Fatalf("job %s: %s", j.State, j.Error)
	}
	if alive(escaped) {
		t.Errorf("the setsid sleep %d outlived its job", escaped)
	}
}

// TestSandboxTimeoutKillsStubborn: a job ignoring SIGTERM, with a child in
// a session of its own ignoring it too, is killed whole KillGrace after its
// timeout.
func TestSandboxTimeoutKillsStubborn(t *testing.T) {
	g := newGitRepo(t)
	data := t.TempDir()
	stubborn := "trap '' TERM; while :; do sleep 0.1; done"
	c := g.commit("main", map[string]string{
		"ci/pipelines.yaml": "pipelines:\n  stubborn:\n    run: ci/stubborn\n    on: {push: [refs/heads/*]}\n    timeout: 1s\n",
		"ci/stubborn":       "#!/bin/sh\nsetsid sh -c \"" + stubborn + "\" &\necho ready\n" + stubborn + "\n",
	})
	jobs := g.push(data, "refs/heads/main", c)
	startRunner(t, &Runner{DataDir: data, KillGrace: time.Second})
	waitLogged(t, data, jobs[0].ID, "ready\n")
	procs := jobProcs(jobs[0].ID)
	j := waitJob(t, data, jobs[0].ID, 30*time.Second, final)
	if j.State != TimedOut {
		t.Fatalf("job %s (%s), want timed-out", j.State, j.Error)
	}
	if d := j.Finished.Sub(j.Started); d < 2*time.Second || d > 10*time.Second {
		t.Errorf("ended after %s, want the timeout and the grace, about 2s", d)
	}
	if len(procs) < 3 {
		t.Fatalf("job processes %v, want the init and both shells at least", procs)
	}
	for _, pid := range procs {
		if alive(pid) {
			t.Errorf("process %d of the job outlived its SIGKILL", pid)
		}
	}
}

// TestSandboxPidsLimit: a job starting more processes than it may fails,
// and all it started goes.
func TestSandboxPidsLimit(t *testing.T) {
	g := newGitRepo(t)
	data := t.TempDir()
	needCgroups(t, data)
	c := g.commit("main", map[string]string{
		"ci/pipelines.yaml": pipelines("bomb"),
		"ci/bomb":           "#!/bin/sh\ni=0\nwhile [ $i -lt 600 ]; do sleep 60 & i=$((i+1)); done\necho \"started $i\"\n",
	})
	jobs := g.push(data, "refs/heads/main", c)
	startRunner(t, &Runner{DataDir: data})
	j := waitJob(t, data, jobs[0].ID, 60*time.Second, final)
	log := jobLog(t, data, j.ID)
	if j.State != Failed || strings.Contains(log, "started 600") || !strings.Contains(strings.ToLower(log), "fork") {
		t.Fatalf("job %s (%s), want failed for want of processes; log:\n%s", j.State, j.Error, log)
	}
	if !strings.Contains(log, fmt.Sprintf("%d processes", DefaultPidsLimit)) {
		t.Errorf("the log does not say the limit:\n%s", log)
	}
	if left := jobProcs(j.ID); len(left) > 0 {
		t.Errorf("processes of the job left: %v", left)
	}
	if err := exec.Command("true").Run(); err != nil {
		t.Errorf("this machine cannot start a process after the job: %v", err)
	}
	t.Logf("%s in %s", j.Error, j.Finished.Sub(j.Started).Round(time.Millisecond))
}

// TestSandboxMemoryLimit: a job using more memory than it may is killed,
// and the job says why.
func TestSandboxMemoryLimit(t *testing.T) {
	g := newGitRepo(t)
	data := t.TempDir()
	needCgroups(t, data)
	c := g.commit("main", map[string]string{
		"ci/pipelines.yaml": pipelines("hog"),
		"ci/hog":            "#!/bin/sh\nx=$(head -c 300000000 /dev/zero | tr '\\0' a)\necho \"held ${#x}\"\n",
	})
	jobs := g.push(data, "refs/heads/main", c)
	startRunner(t, &Runner{DataDir: data, MemoryLimit: 64 << 20})
	j := waitJob(t, data, jobs[0].ID, 60*time.Second, final)
	log := jobLog(t, data, j.ID)
	if j.State != Failed || j.ExitCode == nil || *j.ExitCode != 128+9 || !strings.Contains(j.Error, "out of memory (a job may use 64MiB") {
		t.Fatalf("job %s (%s, exit %v), want killed for memory; log:\n%s", j.State, j.Error, j.ExitCode, log)
	}
	if strings.Contains(log, "held ") || !strings.Contains(log, "memory 64MiB") {
		t.Errorf("log:\n%s", log)
	}
}

// TestSandboxCleansLeftoverCgroups: a runner starting finds a job cgroup
// with a process in it, left by a runner that died; it kills the process
// and removes the cgroup.
func TestSandboxCleansLeftoverCgroups(t *testing.T) {
	data := t.TempDir()
	needCgroups(t, data)
	abs, _ := filepath.Abs(data)
	cg, err := openCgroups(abs)
	if err != nil {
		t.Fatal(err)
	}
	const job = "20260101-000000-000007"
	if err := cg.create(job, 64<<20, 16); err != nil {
		t.Fatal(err)
	}
	sleep := exec.Command("setsid", "sleep", "1000")
	if err := sleep.Start(); err != nil {
		t.Fatal(err)
	}
	defer func() {
		sleep.Process.Kill()
		sleep.Wait()
	}()
	if err := cg.add(job, sleep.Process.Pid); err != nil {
		t.Fatal(err)
	}
	stop := startRunner(t, &Runner{DataDir: data})
	for end := time.Now().Add(10 * time.Second); ; time.Sleep(20 * time.Millisecond) {
		_, err := os.Stat(filepath.Join(cg.dirs[0], job))
		if !alive(sleep.Process.Pid) && os.IsNotExist(err) {
			break
		}
		if time.Now().After(end) {
			t.Fatalf("after a runner started: leftover alive %v, cgroup %v", alive(sleep.Process.Pid), err)
		}
	}
	stop()
	for _, d := range cg.dirs {
		if _, err := os.Stat(d); !os.IsNotExist(err) {
			t.Errorf("the runner's cgroup %s is left after it stopped: %v", d, err)
		}
	}
}

func TestParseSize(t *testing.T) {
	for _, tc := range []struct {
		in   string
		want int64
		ok   bool
	}{
		{"2GiB", 2 << 30, true},
		{"512MiB", 512 << 20, true},
		{"64KiB", 64 << 10, true},
		{"1TiB", 1 << 40, true},
		{"1048576", 1 << 20, true},
		{"0", 0, true},
		{"", 0, false},
		{"GiB", 0, false},
		{"2G", 0, false},
		{"2 GiB", 0, false},
		{"-1GiB", 0, false},
		{"+1GiB", 0, false},
		{"1.5GiB", 0, false},
		{"9999999999TiB", 0, false},
	} {
		got, err := ParseSize(tc.in)
		if (err == nil) != tc.ok || got != tc.want {
			t.Errorf("ParseSize(%q) = %d, %v; want %d, ok %v", tc.in, got, err, tc.want, tc.ok)
		}
		if err == nil && tc.want > 0 {
			if back, err := ParseSize(formatSize(got)); err != nil || back != got {
				t.Errorf("formatSize(%d) = %q, which reads back as %d, %v", got, formatSize(got), back, err)
			}
		}
	}
}

func FuzzParseSize(f *testing.F) {
	for _, s := range []string{"2GiB", "512MiB", "1", "", "-3KiB", "99999999999999999999", "1TiB"} {
		f.Add(s)
	}
	f.Fuzz(func(t *testing.T, s string) {
		n, err := ParseSize(s)
		if err != nil {
			return
		}
		if n < 0 {
			t.Fatalf("ParseSize(%q) = %d < 0", s, n)
		}
		if back, err := ParseSize(formatSize(n)); n > 0 && (err != nil || back != n) {
			t.Fatalf("ParseSize(%q) = %d; formatSize gives %q, read back as %d, %v", s, n, formatSize(n), back, err)
		}
	})
}
