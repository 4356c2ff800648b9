package image

import (
	"context"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/hashbang/stack/internal/workspace"
)

// builderWorkspace is a stack repository holding only image definitions
// without binaries, so the builder runs no compiler.
func builderWorkspace(t *testing.T, defs map[string]string) *workspace.Workspace {
	t.Helper()
	root := t.TempDir()
	for name, def := range defs {
		dir := filepath.Join(root, "images", name)
		os.MkdirAll(dir, 0o755)
		if err := os.WriteFile(filepath.Join(dir, FileName), []byte(def), 0o644); err != nil {
			t.Fatal(err)
		}
	}
	os.WriteFile(filepath.Join(root, "images", EpochFile), []byte("1767225600\n"), 0o644)
	ws, err := workspace.New(root, filepath.Join(t.TempDir(), "cache"))
	if err != nil {
		t.Fatal(err)
	}
	return ws
}

const filesOnly = "files:\n  - path: /etc/motd\n    content: hello\nuser: 65532:65532\n"

func TestBuilderCachesAndLocks(t *testing.T) {
	ws := builderWorkspace(t, map[string]string{"motd": filesOnly})
	ctx := context.Background()
	first, err := NewBuilder(ws, nil, nil).Build(ctx, nil)
	if err != nil {
		t.Fatal(err)
	}
	if len(first) != 1 || first[0].Cached || first[0].Size == 0 {
		t.Fatalf("first build %+v", first)
	}
	lock, err := ReadLock(ws.Path("images"))
	if err != nil || lock["motd"] != first[0].Digest {
		t.Fatalf("lock %v %v, want motd %s", lock, err, first[0].Digest)
	}
	again, err := NewBuilder(ws, nil, nil).Build(ctx, []string{"motd"})
	if err != nil || !again[0].Cached || again[0].Digest != first[0].Digest {
		t.Fatalf("second build %+v %v, want the cached image", again, err)
	}
	if err := Check(lock, again); err != nil {
		t.Errorf("Check of an unchanged image: %v", err)
	}

	// A changed input is a changed digest, which Check reports.
	os.WriteFile(ws.Path("images", "motd", FileName), []byte(strings.Replace(filesOnly, "hello", "changed", 1)), 0o644)
	changed, err := NewBuilder(ws, nil, nil).Build(ctx, nil)
	if err != nil || changed[0].Cached || changed[0].Digest == first[0].Digest {
		t.Fatalf("build after a change: %+v %v", changed, err)
	}
	if err := Check(lock, changed); err == nil || !strings.Contains(err.Error(), "motd: built "+string(changed[0].Digest)) {
		t.Errorf("Check of a changed image: %v", err)
	}
}

// TestBuilderRefusesFailedAudit: an image that breaks the promises is not
// stored in the layout's name nor recorded in the lock.
func TestBuilderRefusesFailedAudit(t *testing.T) {
	ws := builderWorkspace(t, map[string]string{
		"shell": "files:\n  - path: /bin/sh\n    mode: 0755\n    content: \"#!/bin/sh\\n\"\nuser: 65532:65532\n",
	})
	_, err := NewBuilder(ws, nil, nil).Build(context.Background(), nil)
	if err == nil || !strings.Contains(err.Error(), "audit failed, not recorded: /bin/sh:") {
		t.Fatalf("build of an image with a shell: %v", err)
	}
	if lock, _ := ReadLock(ws.Path("images")); len(lock) != 0 {
		t.Errorf("a failing image was recorded: %v", lock)
	}
	if names, _ := (Layout{Dir: ws.OCI()}).Names(); len(names) != 0 {
		t.Errorf("a failing image was stored: %v", names)
	}
}

func TestEpoch(t *testing.T) {
	dir := t.TempDir()
	if _, err := Epoch(dir); err == nil || !strings.Contains(err.Error(), "write seconds since 1970") {
		t.Errorf("missing epoch: %v", err)
	}
	os.WriteFile(filepath.Join(dir, EpochFile), []byte("yesterday"), 0o644)
	if _, err := Epoch(dir); err == nil || !strings.Contains(err.Error(), "not seconds since 1970") {
		t.Errorf("bad epoch: %v", err)
	}
	os.WriteFile(filepath.Join(dir, EpochFile), []byte("1767225600\n"), 0o644)
	if e, err := Epoch(dir); err != nil || e.Year() != 2026 {
		t.Errorf("epoch %v %v", e, err)
	}
}
