package image

import (
	"archive/tar"
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"testing"
	"time"

	v1 "github.com/google/go-containerregistry/pkg/v1"
)

// unpack writes an image's layers into dir, as a container runtime would
// (no whiteouts: our images have none).
func unpack(t *testing.T, img v1.Image, dir string) {
	t.Helper()
	layers, err := img.Layers()
	if err != nil {
		t.Fatal(err)
	}
	for _, l := range layers {
		rc, err := l.Uncompressed()
		if err != nil {
			t.Fatal(err)
		}
		tr := tar.NewReader(rc)
		for {
			h, err := tr.Next()
			if errors.Is(err, io.EOF) {
				break
			}
			if err != nil {
				t.Fatal(err)
			}
			p := filepath.Join(dir, filepath.FromSlash(h.Name))
			if !strings.HasPrefix(p, dir+string(filepath.Separator)) {
				t.Fatalf("entry %q leaves the rootfs", h.Name)
			}
			mode := os.FileMode(h.Mode & 0o777)
			if h.Mode&0o1000 != 0 {
				mode |= os.ModeSticky
			}
			switch h.Typeflag {
			case tar.TypeDir:
				if err := os.MkdirAll(p, 0o755); err != nil {
					t.Fatal(err)
				}
			case tar.TypeReg:
				f, err := os.OpenFile(p, os.O_CREATE|os.O_TRUNC|os.O_WRONLY, 0o600)
				if err != nil {
					t.Fatal(err)
				}
				_, err = io.Copy(f, tr)
				f.Close()
				if err != nil {
					t.Fatal(err)
				}
			default:
				t.Fatalf("unexpected entry %q type %c", h.Name, h.Typeflag)
			}
			if err := os.Lchown(p, h.Uid, h.Gid); err != nil {
				t.Fatal(err)
			}
			if err := os.Chmod(p, mode); err != nil {
				t.Fatal(err)
			}
		}
		rc.Close()
	}
}

// runcSpec is the OCI runtime config of a hardened container: non-root,
// read-only root, no new privileges, no capabilities, the host's network.
func runcSpec(cfg *v1.ConfigFile, env []string) ([]byte, error) {
	uid, gid, _ := strings.Cut(cfg.Config.User, ":")
	u, err := strconv.Atoi(uid)
	if err != nil {
		return nil, err
	}
	g, err := strconv.Atoi(gid)
	if err != nil {
		return nil, err
	}
	none := []string{}
	spec := map[string]any{
		"ociVersion": "1.0.2",
		"process": map[string]any{
			"terminal":        false,
			"user":            map[string]any{"uid": u, "gid": g},
			"args":            append(append([]string{}, cfg.Config.Entrypoint...), cfg.Config.Cmd...),
			"env":             append(append([]string{}, cfg.Config.Env...), env...),
			"cwd":             "/",
			"noNewPrivileges": true,
			"capabilities":    map[string]any{"bounding": none, "effective": none, "permitted": none, "inheritable": none, "ambient": none},
			"rlimits":         []any{map[string]any{"type": "RLIMIT_NOFILE", "hard": 1024, "soft": 1024}},
		},
		"root":     map[string]any{"path": "rootfs", "readonly": true},
		"hostname": "health",
		"mounts": []any{
			map[string]any{"destination": "/proc", "type": "proc", "source": "proc", "options": []string{"nosuid", "noexec", "nodev"}},
			map[string]any{"destination": "/dev", "type": "tmpfs", "source": "tmpfs", "options": []string{"nosuid", "strictatime", "mode=755", "size=65536k"}},
			map[string]any{"destination": "/sys", "type": "sysfs", "source": "sysfs", "options": []string{"nosuid", "noexec", "nodev", "ro"}},
			map[string]any{"destination": "/tmp", "type": "tmpfs", "source": "tmpfs", "options": []string{"nosuid", "nodev", "noexec", "mode=1777", "size=16m"}},
		},
		"linux": map[string]any{
			"namespaces": []any{
				map[string]any{"type": "pid"}, map[string]any{"type": "ipc"},
				map[string]any{"type": "uts"}, map[string]any{"type": "mount"},
			},
			"maskedPaths":   []string{"/proc/kcore", "/proc/keys", "/proc/timer_list", "/sys/firmware"},
			"readonlyPaths": []string{"/proc/bus", "/proc/fs", "/proc/irq", "/proc/sys", "/proc/sysrq-trigger"},
		},
	}
	return json.MarshalIndent(spec, "", "  ")
}

// TestRunHealthWithRunc unpacks the health image and runs it for real.
func TestRunHealthWithRunc(t *testing.T) {
	runc, err := exec.LookPath("runc")
	if err != nil {
		t.Skip("runc is not installed (Debian package runc: apt-get install -y runc); skipping the real container run")
	}
	if os.Geteuid() != 0 {
		t.Skip("running a container with runc needs root here")
	}
	img := healthImage(t)
	cfg, err := img.ConfigFile()
	if err != nil {
		t.Fatal(err)
	}

	// Short paths: runc's state socket paths are length-limited.
	tmp, err := os.MkdirTemp("", "runc-")
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { os.RemoveAll(tmp) })
	bundle, state := filepath.Join(tmp, "b"), filepath.Join(tmp, "s")
	rootfs := filepath.Join(bundle, "rootfs")
	if err := os.MkdirAll(rootfs, 0o755); err != nil {
		t.Fatal(err)
	}
	unpack(t, img, rootfs)
	for _, d := range []string{"proc", "dev", "sys"} {
		os.Mkdir(filepath.Join(rootfs, d), 0o755)
	}

	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	addr := ln.Addr().String()
	ln.Close()
	spec, err := runcSpec(cfg, []string{"HEALTH_ADDR=" + addr})
	if err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(filepath.Join(bundle, "config.json"), spec, 0o644); err != nil {
		t.Fatal(err)
	}

	id := fmt.Sprintf("stack-test-health-%d", os.Getpid())
	ctx, cancel := context.WithTimeout(context.Background(), 60*time.Second)
	defer cancel()
	runcCmd := func(args ...string) *exec.Cmd {
		return exec.CommandContext(ctx, runc, append([]string{"--root", state}, args...)...)
	}
	logf, err := os.Create(filepath.Join(tmp, "log"))
	if err != nil {
		t.Fatal(err)
	}
	defer logf.Close()
	pidFile := filepath.Join(tmp, "pid")
	run := runcCmd("run", "--detach", "--bundle", bundle, "--pid-file", pidFile, id)
	run.Stdout, run.Stderr = logf, logf
	if err := run.Run(); err != nil {
		log, _ := os.ReadFile(logf.Name())
		t.Fatalf("runc run: %v\n%s", err, log)
	}
	t.Cleanup(func() {
		// The container is killed by its id; its process is ours alone.
		c, cancel := context.WithTimeout(context.Background(), 20*time.Second)
		defer cancel()
		exec.CommandContext(c, runc, "--root", state, "kill", id, "KILL").Run()
		if out, err := exec.CommandContext(c, runc, "--root", state, "delete", "--force", id).CombinedOutput(); err != nil {
			t.Errorf("runc delete: %v\n%s", err, out)
		}
	})

	pidb, err := os.ReadFile(pidFile)
	if err != nil {
		t.Fatal(err)
	}
	pid := strings.TrimSpace(string(pidb))
	status, err := os.ReadFile("/proc/" + pid + "/status")
	if err != nil {
		t.Fatal(err)
	}
	for _, line := range strings.Split(string(status), "\n") {
		f := strings.Fields(line)
		if len(f) < 2 {
			continue
		}
		switch f[0] {
		case "Uid:", "Gid:":
			if f[1] != "65532" {
				t.Errorf("container runs with %s", line)
			}
		case "CapEff:", "CapPrm:":
			if strings.Trim(f[1], "0") != "" {
				t.Errorf("container has capabilities: %s", line)
			}
		case "NoNewPrivs:":
			if f[1] != "1" {
				t.Errorf("container may gain privileges: %s", line)
			}
		}
	}

	var body string
	client := &http.Client{Timeout: 2 * time.Second}
	for deadline := time.Now().Add(15 * time.Second); ; {
		resp, err := client.Get("http://" + addr + "/")
		if err == nil {
			b, _ := io.ReadAll(resp.Body)
			resp.Body.Close()
			if resp.StatusCode != 200 {
				t.Fatalf("GET / = %d %q", resp.StatusCode, b)
			}
			body = string(b)
			break
		}
		if time.Now().After(deadline) {
			log, _ := os.ReadFile(logf.Name())
			t.Fatalf("container never answered on %s: %v\n%s", addr, err, log)
		}
		time.Sleep(50 * time.Millisecond)
	}
	if body != "healthy\n" {
		t.Errorf("GET / = %q, want healthy", body)
	}

	// The root file system is read-only even where the image says
	// writable: only the /tmp mount can be written... by a shell, which the
	// image does not have. Check from the host side instead: the process's
	// root is mounted read-only.
	mounts, err := os.ReadFile("/proc/" + pid + "/mounts")
	if err != nil {
		t.Fatal(err)
	}
	for _, line := range strings.Split(string(mounts), "\n") {
		f := strings.Fields(line)
		if len(f) >= 4 && f[1] == "/" && !strings.HasPrefix(f[3], "ro") && !strings.Contains(","+f[3]+",", ",ro,") {
			t.Errorf("container root mounted %s", f[3])
		}
	}

	// SIGTERM stops it gracefully.
	if out, err := runcCmd("kill", id, "TERM").CombinedOutput(); err != nil {
		t.Fatalf("runc kill TERM: %v\n%s", err, out)
	}
	for deadline := time.Now().Add(15 * time.Second); ; {
		out, _ := runcCmd("state", id).Output()
		var st struct{ Status string }
		json.Unmarshal(out, &st)
		if st.Status == "stopped" {
			break
		}
		if time.Now().After(deadline) {
			t.Fatalf("container still %s after SIGTERM", st.Status)
		}
		time.Sleep(50 * time.Millisecond)
	}
	if log, _ := os.ReadFile(logf.Name()); !bytes.Contains(log, []byte("shutting down")) {
		t.Errorf("no graceful shutdown in the log:\n%s", log)
	}
}
