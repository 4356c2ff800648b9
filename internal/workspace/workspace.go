// Package workspace locates the stack repository that a command works on and
// names the places inside it and beside it: the managed stack (config/,
// images/, pods/, infra/), the in-repo cache of known-working artifacts
// (cache/, tracked by git-lfs), the local, ignored cache (.cache/ unless
// moved) and the data directory of `stack serve`. Every path that more than
// one package uses is named here, once:
//
//	CACHE/oci/             the OCI image layout of built images
//	CACHE/node/CLUSTER/    a local cluster's node (its inside: internal/node)
//	  kubeconfig           its admin kubeconfig
//	DATA/                  stack serve's data (default CACHE/serve, or
//	                       $STACK_DATA, or --data): its inside is
//	                       internal/serve's
package workspace

import (
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"strings"
)

// SourcesFile is the path of the sources file, relative to the repository root.
const SourcesFile = "config/sources.yaml"

// Workspace is one stack repository and the cache used with it.
type Workspace struct {
	// Root is the absolute path of the repository: the directory holding
	// config/sources.yaml.
	Root string
	// Cache is the absolute path of the local cache directory.
	Cache string
	// Data, when set, is the data directory of `stack serve` (--data);
	// DataDir says what applies when it is not.
	Data string
}

// DataEnv is the environment variable naming the data directory of
// `stack serve` when --data does not.
const DataEnv = "STACK_DATA"

// Find returns the workspace whose root is dir or its nearest ancestor that
// holds config/sources.yaml. cache overrides the cache directory; when empty,
// $STACK_CACHE is used, and failing that Root/.cache.
func Find(dir, cache string) (*Workspace, error) {
	abs, err := filepath.Abs(dir)
	if err != nil {
		return nil, err
	}
	root := abs
	for {
		if _, err := os.Stat(filepath.Join(root, SourcesFile)); err == nil {
			break
		} else if !errors.Is(err, os.ErrNotExist) {
			return nil, err
		}
		parent := filepath.Dir(root)
		if parent == root {
			return nil, fmt.Errorf("no %s in %s or any parent directory: run stack inside a stack repository or pass --repo DIR", SourcesFile, abs)
		}
		root = parent
	}
	return New(root, cache)
}

// New returns the workspace rooted at root without searching.
func New(root, cache string) (*Workspace, error) {
	root, err := filepath.Abs(root)
	if err != nil {
		return nil, err
	}
	if cache == "" {
		cache = os.Getenv("STACK_CACHE")
	}
	if cache == "" {
		cache = filepath.Join(root, ".cache")
	}
	cache, err = filepath.Abs(cache)
	if err != nil {
		return nil, err
	}
	return &Workspace{Root: root, Cache: cache}, nil
}

// Path joins elem to the repository root.
func (w *Workspace) Path(elem ...string) string {
	return filepath.Join(append([]string{w.Root}, elem...)...)
}

// Rel is path relative to the repository root, with slashes, as people
// name files of the repository (config/locks/etcd.mod); a path outside it
// is returned as it is.
func (w *Workspace) Rel(path string) string {
	rel, err := filepath.Rel(w.Root, path)
	if err != nil || rel == ".." || strings.HasPrefix(rel, ".."+string(filepath.Separator)) {
		return path
	}
	return filepath.ToSlash(rel)
}

// Sources is the path of config/sources.yaml.
func (w *Workspace) Sources() string { return w.Path(SourcesFile) }

// Locks is the directory holding the per-source dependency locks.
func (w *Workspace) Locks() string { return w.Path("config", "locks") }

// RepoCache is the in-repo cache of known-working artifacts, tracked by git-lfs.
func (w *Workspace) RepoCache() string { return w.Path("cache") }

// OCI is the OCI image layout of the images built with the cache cacheDir.
func OCI(cacheDir string) string { return filepath.Join(cacheDir, "oci") }

// OCI is the OCI image layout of built images, CACHE/oci.
func (w *Workspace) OCI() string { return OCI(w.Cache) }

// NodeDir is the data directory of the local cluster's node, CACHE/node/CLUSTER.
func (w *Workspace) NodeDir(cluster string) string {
	return filepath.Join(w.Cache, "node", cluster)
}

// NodeKubeconfig is the admin kubeconfig that a local node keeps in its
// data directory nodeDir.
func NodeKubeconfig(nodeDir string) string { return filepath.Join(nodeDir, "kubeconfig") }

// DataDir is the data directory of `stack serve`: Data when set, else
// $STACK_DATA, else CACHE/serve. It is absolute.
func (w *Workspace) DataDir() (string, error) {
	d := w.Data
	if d == "" {
		d = os.Getenv(DataEnv)
	}
	if d == "" {
		return filepath.Join(w.Cache, "serve"), nil
	}
	return filepath.Abs(d)
}
