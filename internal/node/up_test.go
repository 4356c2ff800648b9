package node

import (
	"context"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/hashbang/stack/internal/build"
	"github.com/hashbang/stack/internal/source"
	"github.com/hashbang/stack/internal/workspace"
)

// TestUpFailureStopsEverything starts a node whose API server cannot start
// (its binary is /bin/false) after a real etcd built from the lock: Up must
// name the component and its log, and leave nothing behind: etcd stopped,
// the bridge gone, the sysctls as they were, no state.
func TestUpFailureStopsEverything(t *testing.T) {
	if os.Geteuid() != 0 {
		t.Skip("the node needs root")
	}
	if err := New(t.TempDir(), "preflight").Preflight(nil); err != nil {
		t.Skipf("this host cannot run a node now: %v", err)
	}
	cache := os.Getenv("STACK_TEST_CACHE")
	if cache == "" {
		cache = filepath.Join(os.TempDir(), "stack-test-cache")
	}
	ws, err := workspace.New(filepath.Join("..", ".."), cache)
	if err != nil {
		t.Fatal(err)
	}
	cfg, err := source.Load(ws.Sources())
	if err != nil {
		t.Fatal(err)
	}
	bins, err := Binaries(cfg)
	if err != nil {
		t.Fatal(err)
	}
	etcd, err := build.NewCache(ws, source.NewPreparer(ws, cfg, nil), nil).Binary(context.Background(), bins["etcd"])
	if err != nil {
		t.Fatal(err)
	}
	n := testNode(t)
	n.Bins = map[string]string{"etcd": etcd, "kube-apiserver": "/bin/false"}
	before := readSysctls(Sysctls)

	err = n.Up(context.Background(), nil)
	if err == nil || !strings.Contains(err.Error(), "kube-apiserver exited while starting: see "+n.LogPath("kube-apiserver")) {
		t.Fatalf("got %v, want the API server named with its log", err)
	}
	if linkExists(n.Bridge) {
		t.Error("the bridge is left")
	}
	if pids := pidsWithArg("--data-dir=" + n.path("etcd")); len(pids) > 0 {
		t.Errorf("etcd still runs: %v", pids)
	}
	after := readSysctls(Sysctls)
	for k, v := range before {
		if after[k] != v {
			t.Errorf("sysctl %s=%s, was %s", k, after[k], v)
		}
	}
	if _, err := os.Stat(n.statePath()); !os.IsNotExist(err) {
		t.Errorf("state left: %v", err)
	}
}
