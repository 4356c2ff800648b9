package cache

import (
	"bytes"
	"errors"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
)

// LFSPattern is the .gitattributes line that puts the in-repo cache under
// git-lfs.
const LFSPattern = "cache/** filter=lfs diff=lfs merge=lfs -text"

// TrackLFS makes sure root/.gitattributes puts the in-repo cache (cache/)
// under git-lfs, keeping every other line of the file. It reports whether
// the file changed. It fails, saying how to fix it, when git-lfs is not
// installed, since the attributes would then store the artifacts as
// ordinary git blobs.
func TrackLFS(root string) (bool, error) {
	if out, err := exec.Command("git", "lfs", "version").CombinedOutput(); err != nil {
		msg := strings.TrimSpace(string(out))
		if msg == "" || errors.Is(err, exec.ErrNotFound) || strings.Contains(msg, "not a git command") {
			return false, fmt.Errorf("git-lfs is not installed: install it (apt-get install git-lfs), run `git lfs install`, then run this again")
		}
		return false, fmt.Errorf("git lfs version: %s", msg)
	}
	path := filepath.Join(root, ".gitattributes")
	old, err := os.ReadFile(path)
	if err != nil && !errors.Is(err, os.ErrNotExist) {
		return false, err
	}
	for _, line := range strings.Split(string(old), "\n") {
		if strings.TrimSpace(line) == LFSPattern {
			return false, nil
		}
	}
	data := bytes.Clone(old)
	if len(data) > 0 && data[len(data)-1] != '\n' {
		data = append(data, '\n')
	}
	data = append(data, "# Known-working tools and images, kept in-repo by `stack cache add`.\n"+LFSPattern+"\n"...)
	return true, os.WriteFile(path, data, 0o644)
}
