// Package version says what a stack program is and what it runs against:
// the module version, the commit it was built from and whether that tree
// had uncommitted changes, the Go toolchain, all read from the build
// information the go command stamps into every binary
// (runtime/debug.ReadBuildInfo); and the sha256 of files of the repository
// it runs in (the command names those that pin everything a repository
// builds from: config/sources.yaml and images/images.lock).
//
// `go build` in a git checkout stamps the commit (vcs.revision,
// vcs.modified, vcs.time); a build with -buildvcs=false (the stack image),
// outside a checkout, or by `go test` does not, and the commit is then
// Unknown.
package version

import (
	"crypto/sha256"
	"encoding/hex"
	"errors"
	"fmt"
	"io"
	"os"
	"path/filepath"
	"runtime/debug"
	"text/tabwriter"
)

// Unknown stands for what the build information does not say.
const Unknown = "unknown"

// sourceTree is set by stack's own builder (internal/build, with -X) in
// every program it builds from this repository: the hash of the Go source
// tree it was built from, the same key its cache and images.lock follow.
// It keeps the build reproducible (no commit, no time) and still says
// which source a binary is: the stack image's binary reports it.
var sourceTree string

// Info is what a stack program is.
type Info struct {
	// Module is the main module's path.
	Module string `json:"module"`
	// Version is the main module's version: a tag, a pseudo-version
	// (with +dirty for a modified tree), or "(devel)".
	Version string `json:"version"`
	// Commit is the full id of the commit built from, or Unknown.
	Commit string `json:"commit"`
	// Dirty says whether the work tree had uncommitted changes; nil when
	// the build information does not say.
	Dirty *bool `json:"dirty"`
	// CommitTime is the commit's time (RFC 3339), if known.
	CommitTime string `json:"commit_time,omitempty"`
	// Go is the toolchain that built the program, and Platform its
	// GOOS/GOARCH.
	Go       string `json:"go"`
	Platform string `json:"platform"`
	// SourceTree is the sha256 of the Go source tree the program was built
	// from, when stack's builder made it (the stack image); see sourceTree.
	SourceTree string `json:"source_tree,omitempty"`
	// Repository is the repository the program runs in, if any.
	Repository *Repository `json:"repository,omitempty"`
}

// Repository is a repository the program runs in, and the sha256 of
// some of its files.
type Repository struct {
	Root  string `json:"root"`
	Files []File `json:"files"`
}

// File is one file of a Repository: its path relative to the root, with
// slashes, and "sha256:HEX" of its content.
type File struct {
	Path   string `json:"path"`
	SHA256 string `json:"sha256"`
}

// Read returns the Info of the running program.
func Read() Info {
	bi, ok := debug.ReadBuildInfo()
	if !ok {
		bi = nil
	}
	return FromBuildInfo(bi)
}

// FromBuildInfo returns the Info that bi tells; nil bi (a program built
// without module support) tells nothing but the fields' Unknown.
func FromBuildInfo(bi *debug.BuildInfo) Info {
	info := Info{Module: Unknown, Version: Unknown, Commit: Unknown, Go: Unknown, Platform: Unknown}
	if sourceTree != "" {
		info.SourceTree = "sha256:" + sourceTree
	}
	if bi == nil {
		return info
	}
	if bi.Main.Path != "" {
		info.Module = bi.Main.Path
	}
	if bi.Main.Version != "" {
		info.Version = bi.Main.Version
	}
	if bi.GoVersion != "" {
		info.Go = bi.GoVersion
	}
	var goos, goarch string
	for _, s := range bi.Settings {
		switch s.Key {
		case "vcs.revision":
			if s.Value != "" {
				info.Commit = s.Value
			}
		case "vcs.modified":
			switch s.Value {
			case "true", "false":
				dirty := s.Value == "true"
				info.Dirty = &dirty
			}
		case "vcs.time":
			info.CommitTime = s.Value
		case "GOOS":
			goos = s.Value
		case "GOARCH":
			goarch = s.Value
		}
	}
	if goos != "" && goarch != "" {
		info.Platform = goos + "/" + goarch
	}
	return info
}

// ReadRepository hashes the files paths (relative, with slashes) of the
// repository at root; a file it lacks is left out.
func ReadRepository(root string, paths ...string) (*Repository, error) {
	r := &Repository{Root: root, Files: []File{}}
	for _, p := range paths {
		data, err := os.ReadFile(filepath.Join(root, filepath.FromSlash(p)))
		if errors.Is(err, os.ErrNotExist) {
			continue
		}
		if err != nil {
			return nil, err
		}
		h := sha256.Sum256(data)
		r.Files = append(r.Files, File{Path: p, SHA256: "sha256:" + hex.EncodeToString(h[:])})
	}
	return r, nil
}

// Describe is the commit in words: its id, then whether its tree was
// dirty, or why it is not known.
func (i Info) Describe() string {
	if i.Commit == Unknown {
		return Unknown + " (no commit in the build information: built outside a git checkout, with -buildvcs=false, or by go test)"
	}
	switch {
	case i.Dirty == nil:
		return i.Commit
	case *i.Dirty:
		return i.Commit + " (dirty: built with uncommitted changes)"
	}
	return i.Commit + " (clean)"
}

// WriteText prints i for people, one "what  value" line each.
func (i Info) WriteText(w io.Writer) error {
	tw := tabwriter.NewWriter(w, 0, 4, 2, ' ', 0)
	fmt.Fprintf(tw, "stack\t%s\n", i.Version)
	fmt.Fprintf(tw, "module\t%s\n", i.Module)
	fmt.Fprintf(tw, "commit\t%s\n", i.Describe())
	if i.CommitTime != "" {
		fmt.Fprintf(tw, "commit time\t%s\n", i.CommitTime)
	}
	if i.SourceTree != "" {
		fmt.Fprintf(tw, "source tree\t%s (the Go sources stack's builder built it from)\n", i.SourceTree)
	}
	fmt.Fprintf(tw, "go\t%s %s\n", i.Go, i.Platform)
	if r := i.Repository; r != nil {
		fmt.Fprintf(tw, "repository\t%s\n", r.Root)
		for _, f := range r.Files {
			fmt.Fprintf(tw, "%s\t%s\n", f.Path, f.SHA256)
		}
	}
	return tw.Flush()
}
