package image

import (
	"bufio"
	"bytes"
	"fmt"
	"os"
	"path/filepath"
	"sort"
	"strings"

	"github.com/opencontainers/go-digest"

	"github.com/hashbang/stack/internal/atomicfile"
)

// LockFile is the committed record of every image's digest, relative to
// the images directory. A change in any input of an image shows up in
// review as a changed line; deployments pin images by these digests.
const LockFile = "images.lock"

// Lock maps image names to their manifest digests.
type Lock map[string]digest.Digest

const lockHeader = "# Image digests written by `stack build`: NAME DIGEST, one image a line.\n# A changed line is a changed image; deployments pin images by these digests.\n"

// ReadLock reads images/images.lock from imagesDir. A missing file is an
// empty lock.
func ReadLock(imagesDir string) (Lock, error) {
	file := filepath.Join(imagesDir, LockFile)
	data, err := os.ReadFile(file)
	if os.IsNotExist(err) {
		return Lock{}, nil
	}
	if err != nil {
		return nil, err
	}
	return ParseLock(file, data)
}

// ParseLock parses the content of an images lock; file names it in errors.
func ParseLock(file string, data []byte) (Lock, error) {
	l := Lock{}
	sc := bufio.NewScanner(bytes.NewReader(data))
	for n := 1; sc.Scan(); n++ {
		line := strings.TrimSpace(sc.Text())
		if line == "" || strings.HasPrefix(line, "#") {
			continue
		}
		f := strings.Fields(line)
		if len(f) != 2 {
			return nil, fmt.Errorf("%s:%d: want `NAME sha256:DIGEST`; run `stack build` to rewrite the lock", file, n)
		}
		if !ValidName(f[0]) {
			return nil, fmt.Errorf("%s:%d: %q is not an image name", file, n, f[0])
		}
		d, err := digest.Parse(f[1])
		if err != nil || d.Algorithm() != digest.SHA256 {
			return nil, fmt.Errorf("%s:%d: %q is not a sha256 digest; run `stack build %s` to rewrite it", file, n, f[1], f[0])
		}
		if _, dup := l[f[0]]; dup {
			return nil, fmt.Errorf("%s:%d: image %s listed twice", file, n, f[0])
		}
		l[f[0]] = d
	}
	return l, sc.Err()
}

// Bytes formats the lock, sorted by name.
func (l Lock) Bytes() []byte {
	names := make([]string, 0, len(l))
	for n := range l {
		names = append(names, n)
	}
	sort.Strings(names)
	var b bytes.Buffer
	b.WriteString(lockHeader)
	for _, n := range names {
		fmt.Fprintf(&b, "%s %s\n", n, l[n])
	}
	return b.Bytes()
}

// Write writes the lock into imagesDir atomically.
func (l Lock) Write(imagesDir string) error {
	return atomicfile.WriteFile(filepath.Join(imagesDir, LockFile), l.Bytes(), 0o644)
}
