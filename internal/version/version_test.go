package version

import (
	"bytes"
	"os"
	"path/filepath"
	"runtime/debug"
	"strings"
	"testing"
)

func buildInfo(version string, settings ...string) *debug.BuildInfo {
	bi := &debug.BuildInfo{GoVersion: "go1.26.8", Path: "github.com/hashbang/stack/cmd/stack",
		Main: debug.Module{Path: "github.com/hashbang/stack", Version: version}}
	for i := 0; i+1 < len(settings); i += 2 {
		bi.Settings = append(bi.Settings, debug.BuildSetting{Key: settings[i], Value: settings[i+1]})
	}
	return bi
}

const rev = "543c48f1d0c4e5a3b2f1e0d9c8b7a6f5e4d3c2b1"

func TestFromBuildInfo(t *testing.T) {
	platform := []string{"GOOS", "linux", "GOARCH", "amd64"}
	tests := []struct {
		name string
		bi   *debug.BuildInfo
		text string
	}{
		{"clean checkout", buildInfo("v0.0.0-20261126120000-543c48f1d0c4",
			append(platform, "vcs", "git", "vcs.revision", rev, "vcs.time", "2026-11-26T12:00:00Z", "vcs.modified", "false")...),
			"stack        v0.0.0-20261126120000-543c48f1d0c4\n" +
				"module       github.com/hashbang/stack\n" +
				"commit       " + rev + " (clean)\n" +
				"commit time  2026-11-26T12:00:00Z\n" +
				"go           go1.26.8 linux/amd64\n"},
		{"dirty checkout", buildInfo("v0.0.0-20261126120000-543c48f1d0c4+dirty",
			append(platform, "vcs.revision", rev, "vcs.modified", "true")...),
			"stack   v0.0.0-20261126120000-543c48f1d0c4+dirty\n" +
				"module  github.com/hashbang/stack\n" +
				"commit  " + rev + " (dirty: built with uncommitted changes)\n" +
				"go      go1.26.8 linux/amd64\n"},
		{"go test, or -buildvcs=false", buildInfo("(devel)", platform...),
			"stack   (devel)\n" +
				"module  github.com/hashbang/stack\n" +
				"commit  unknown (no commit in the build information: built outside a git checkout, with -buildvcs=false, or by go test)\n" +
				"go      go1.26.8 linux/amd64\n"},
		{"revision without modified", buildInfo("(devel)", "vcs.revision", rev),
			"stack   (devel)\n" +
				"module  github.com/hashbang/stack\n" +
				"commit  " + rev + "\n" +
				"go      go1.26.8 unknown\n"},
		{"no build information", nil,
			"stack   unknown\n" +
				"module  unknown\n" +
				"commit  unknown (no commit in the build information: built outside a git checkout, with -buildvcs=false, or by go test)\n" +
				"go      unknown unknown\n"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			var b bytes.Buffer
			if err := FromBuildInfo(tt.bi).WriteText(&b); err != nil {
				t.Fatal(err)
			}
			if b.String() != tt.text {
				t.Errorf("got\n%s\nwant\n%s", b.String(), tt.text)
			}
		})
	}
	i := FromBuildInfo(buildInfo("(devel)", "vcs.revision", rev, "vcs.modified", "true"))
	if i.Dirty == nil || !*i.Dirty || i.Commit != rev {
		t.Errorf("dirty build: %+v", i)
	}
	if i := FromBuildInfo(buildInfo("(devel)", "vcs.modified", "maybe")); i.Dirty != nil {
		t.Errorf("vcs.modified=maybe read as %v", *i.Dirty)
	}
}

func TestReadRepository(t *testing.T) {
	root := t.TempDir()
	os.MkdirAll(filepath.Join(root, "config"), 0o755)
	os.WriteFile(filepath.Join(root, "config", "sources.yaml"), []byte("sources: []\n"), 0o644)
	r, err := ReadRepository(root, "config/sources.yaml", "images/images.lock")
	if err != nil {
		t.Fatal(err)
	}
	// printf 'sources: []\n' | sha256sum
	want := File{"config/sources.yaml", "sha256:f306b85b98942b7695337e5c1fe3613d282c917f3521216eb7be71e770e4259d"}
	if r.Root != root || len(r.Files) != 1 || r.Files[0] != want {
		t.Fatalf("repository %+v, want only %+v", r, want)
	}
	var b bytes.Buffer
	Info{Module: "m", Version: "v", Commit: Unknown, Go: "go", Platform: "p", Repository: r}.WriteText(&b)
	if !strings.Contains(b.String(), "repository           "+root+"\nconfig/sources.yaml  "+want.SHA256+"\n") || strings.Contains(b.String(), "images.lock") {
		t.Errorf("text:\n%s", b.String())
	}

	os.Remove(filepath.Join(root, "config", "sources.yaml"))
	os.Mkdir(filepath.Join(root, "config", "sources.yaml"), 0o755) // unreadable as a file
	if _, err := ReadRepository(root, "config/sources.yaml"); err == nil {
		t.Error("a directory in place of a file was hashed")
	}
}
