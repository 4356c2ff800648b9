package deploy

// The offline renderer: kustomize runs in a child process of this program
// that has no means to reach the network, whatever the kustomizations say.
//
// kustomize v0.21.2 reaches the network in exactly two ways, neither of
// which its API lets a caller replace: its file loader fetches http(s)
// paths with a zero http.Client (so through http.DefaultTransport), and it
// clones remote bases by running the git program found on PATH. In the
// child, http.DefaultTransport is a RoundTripper that refuses every request
// before any connection is made, and PATH is empty, so neither git nor any
// other program can be started. Where the kernel allows it (root, or user
// namespaces), the child also runs in a network namespace of its own with
// no interface up, so that no connection can be made at all. The child is this same executable, started
// with offlineEnv set: package deploy's init runs the renderer and exits
// before anything else of the program runs.

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"io/fs"
	"net/http"
	"os"
	"os/exec"
	"strings"
	"sync/atomic"
	"syscall"
	"time"

	"sigs.k8s.io/kustomize/api/krusty"
	"sigs.k8s.io/kustomize/api/types"
	"sigs.k8s.io/kustomize/kyaml/filesys"
)

// offlineEnv, set to offlineToken, makes this program the offline renderer.
const (
	offlineEnv   = "STACK_OFFLINE_RENDERER"
	offlineToken = "kustomize-v1"
)

// offlineTimeout bounds one child: rendering reads only memory.
const offlineTimeout = 5 * time.Minute

// errNoNetwork is what every HTTP request of the offline renderer gets.
var errNoNetwork = errors.New("the renderer has no network: vendor the file into the repository and name its path")

func init() {
	if os.Getenv(offlineEnv) != offlineToken {
		return
	}
	os.Exit(offlineMain(os.Stdin, os.Stdout))
}

// offlineRequest is what the parent sends the child: the tree's files and
// directories, and the kustomization directories to build.
type offlineRequest struct {
	Dirs  []string          `json:"dirs"`
	Files map[string][]byte `json:"files"`
	Roots []string          `json:"roots"`
}

// offlineResult is one root's objects (JSON, as kustomize marshals them),
// or the error kustomize gave.
type offlineResult struct {
	Objects []json.RawMessage `json:"objects,omitempty"`
	Error   string            `json:"error,omitempty"`
}

// refuseAll is the child's only HTTP transport.
type refuseAll struct{}

func (refuseAll) RoundTrip(r *http.Request) (*http.Response, error) {
	if r.Body != nil {
		r.Body.Close()
	}
	return nil, fmt.Errorf("%s: %w", r.URL.Redacted(), errNoNetwork)
}

// disconnect takes away the process's means to reach the network that
// kustomize has: HTTP through the default transport, and programs (git)
// found on PATH.
func disconnect() {
	http.DefaultTransport = refuseAll{}
	http.DefaultClient.Transport = refuseAll{}
	os.Setenv("PATH", "")
}

// offlineMain is the child: it reads an offlineRequest from in and writes
// one offlineResult per root to out as a JSON array.
func offlineMain(in io.Reader, out io.Writer) int {
	disconnect()
	var req offlineRequest
	if err := json.NewDecoder(in).Decode(&req); err != nil {
		fmt.Fprintf(os.Stderr, "offline renderer: read the request: %v\n", err)
		return 2
	}
	results, err := kustomizeTree(&req)
	if err != nil {
		fmt.Fprintf(os.Stderr, "offline renderer: %v\n", err)
		return 2
	}
	if err := json.NewEncoder(out).Encode(results); err != nil {
		fmt.Fprintf(os.Stderr, "offline renderer: write the result: %v\n", err)
		return 2
	}
	return 0
}

// kustomizeTree builds each root of req from an in-memory copy of its
// files, plugins disabled and loads restricted to each kustomization's
// directory.
func kustomizeTree(req *offlineRequest) ([]offlineResult, error) {
	fsys := filesys.MakeFsInMemory()
	for _, d := range req.Dirs {
		if err := fsys.MkdirAll(d); err != nil {
			return nil, err
		}
	}
	for name, data := range req.Files {
		if err := fsys.WriteFile(name, data); err != nil {
			return nil, err
		}
	}
	opts := krusty.MakeDefaultOptions()
	opts.LoadRestrictions = types.LoadRestrictionsRootOnly
	opts.PluginConfig = types.DisabledPluginConfig()
	results := make([]offlineResult, len(req.Roots))
	for i, root := range req.Roots {
		m, err := krusty.MakeKustomizer(opts).Run(fsys, root)
		if err != nil {
			results[i].Error = err.Error()
			continue
		}
		for _, res := range m.Resources() {
			data, err := res.MarshalJSON()
			if err != nil {
				results[i] = offlineResult{Error: err.Error()}
				break
			}
			results[i].Objects = append(results[i].Objects, data)
		}
	}
	return results, nil
}

// treeRequest is the request that builds roots of t.
func treeRequest(t *Tree, roots []string) (*offlineRequest, error) {
	req := &offlineRequest{Files: map[string][]byte{}, Roots: roots}
	err := t.fs.Walk("/", func(p string, info fs.FileInfo, err error) error {
		if err != nil {
			return err
		}
		if info.IsDir() {
			req.Dirs = append(req.Dirs, p)
			return nil
		}
		data, err := t.fs.ReadFile(p)
		req.Files[p] = data
		return err
	})
	return req, err
}

// noNetns is set once starting the child in a network namespace of its
// own failed: later renders do not try again.
var noNetns atomic.Bool

// netnsAttr starts the child in a network namespace of its own, where no
// interface is up, not even loopback: the kernel then refuses every
// connection, whatever code runs. Root gets one directly; anyone else
// inside a user namespace mapping them to themselves, where the kernel
// allows it.
func netnsAttr() *syscall.SysProcAttr {
	if os.Geteuid() == 0 {
		return &syscall.SysProcAttr{Cloneflags: syscall.CLONE_NEWNET}
	}
	return &syscall.SysProcAttr{
		Cloneflags:  syscall.CLONE_NEWNET | syscall.CLONE_NEWUSER,
		UidMappings: []syscall.SysProcIDMap{{ContainerID: os.Geteuid(), HostID: os.Geteuid(), Size: 1}},
		GidMappings: []syscall.SysProcIDMap{{ContainerID: os.Getegid(), HostID: os.Getegid(), Size: 1}},
	}
}

// selfExecutable is this program's file. On Linux it is /proc/self/exe,
// the very file that runs even if a build has since replaced it on disk,
// so that the child is the same build as the parent.
func selfExecutable() (string, error) {
	if _, err := os.Stat("/proc/self/exe"); err == nil {
		return "/proc/self/exe", nil
	}
	exe, err := os.Executable()
	if err != nil {
		return "", fmt.Errorf("start the offline renderer: %w: run stack from a file", err)
	}
	return exe, nil
}

// kustomizeOffline builds roots (kustomization directories of t) in the
// offline renderer and returns each root's objects or kustomize's error.
// An error is the renderer failing, not a kustomization.
func kustomizeOffline(t *Tree, roots []string) ([]offlineResult, error) {
	req, err := treeRequest(t, roots)
	if err != nil {
		return nil, err
	}
	body, err := json.Marshal(req)
	if err != nil {
		return nil, err
	}
	exe, err := selfExecutable()
	if err != nil {
		return nil, err
	}
	ctx, cancel := context.WithTimeout(context.Background(), offlineTimeout)
	defer cancel()
	cmd := exec.CommandContext(ctx, exe)
	// Nothing of this process's environment: no PATH (no programs), no
	// proxies, no GODEBUG.
	cmd.Env = []string{offlineEnv + "=" + offlineToken, "PATH="}
	cmd.Stdin = bytes.NewReader(body)
	var stdout, stderr bytes.Buffer
	cmd.Stdout, cmd.Stderr = &stdout, &stderr
	isolated := !noNetns.Load()
	if isolated {
		cmd.SysProcAttr = netnsAttr()
	}
	err = cmd.Start()
	if err != nil && isolated {
		// No network namespace for us here (no root, user namespaces
		// off): the child is still disconnected as above.
		noNetns.Store(true)
		cmd = exec.CommandContext(ctx, exe)
		cmd.Env, cmd.Stdin, cmd.Stdout, cmd.Stderr = []string{offlineEnv + "=" + offlineToken, "PATH="}, bytes.NewReader(body), &stdout, &stderr
		err = cmd.Start()
	}
	if err == nil {
		err = cmd.Wait()
	}
	if err != nil {
		msg := strings.Join(strings.Fields(stderr.String()), " ")
		if ctx.Err() != nil {
			msg = fmt.Sprintf("timed out after %s", offlineTimeout)
		}
		return nil, fmt.Errorf("offline renderer (%s): %v: %.500s", exe, err, msg)
	}
	// kustomize's warnings (deprecated fields), as when it ran in process.
	os.Stderr.Write(stderr.Bytes())
	var results []offlineResult
	if err := json.Unmarshal(stdout.Bytes(), &results); err != nil || len(results) != len(roots) {
		return nil, fmt.Errorf("offline renderer (%s): unreadable result (%v): is it this program's build?", exe, err)
	}
	return results, nil
}
