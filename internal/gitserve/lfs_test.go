package gitserve

import (
	"bytes"
	"crypto/rand"
	"crypto/sha256"
	"encoding/hex"
	"fmt"
	"io"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
)

func needLFS(t *testing.T) {
	t.Helper()
	if out, err := exec.Command("git", "lfs", "version").CombinedOutput(); err != nil {
		t.Skipf("git-lfs is not installed (make deps installs it): %v %s", err, out)
	}
}

// lfsObjects lists the objects the server stores for repo.
func (ts *testServer) lfsObjects(repo string) []string {
	var out []string
	root := filepath.Join(RepoRoot(ts.data), repo+".git", "lfs", "objects")
	filepath.WalkDir(root, func(p string, d os.DirEntry, err error) error {
		if err == nil && d.Type().IsRegular() {
			out = append(out, d.Name())
		}
		return nil
	})
	return out
}

// TestLFS pushes LFS-tracked files with real git and git-lfs over SSH (the
// pure-SSH transfer protocol, git-lfs-transfer) and clones them fresh
// elsewhere, byte for byte; a developer, who may read but not write, can
// download but not upload.
func TestLFS(t *testing.T) {
	needLFS(t)
	ts := startServer(t, "")
	ts.git(adminKey, ts.dir, "lfs", "install") // the client's filters, in its HOME
	work := filepath.Join(ts.dir, "work")
	ts.git(adminKey, ts.dir, "clone", "-q", ts.url("stack"), work)
	ts.git(adminKey, work, "lfs", "install", "--local")
	ts.git(adminKey, work, "lfs", "track", "*.bin")
	big := make([]byte, 3<<20)
	rand.Read(big)
	if err := os.WriteFile(filepath.Join(work, "big.bin"), big, 0o644); err != nil {
		t.Fatal(err)
	}
	ts.git(adminKey, work, "add", ".gitattributes", "big.bin")
	ts.git(adminKey, work, "commit", "-q", "-m", "big")
	out := ts.git(adminKey, work, "push", "origin", "HEAD:refs/heads/main")
	sum := sha256.Sum256(big)
	oid := hex.EncodeToString(sum[:])
	if got := ts.lfsObjects("stack"); len(got) != 1 || got[0] != oid {
		t.Fatalf("server objects %v, want [%s]; push said:\n%s\nlog:\n%s", got, oid, out, ts.log.String())
	}
	if !strings.Contains(ts.log.String(), "git-lfs-transfer") {
		t.Errorf("the push did not use git-lfs-transfer:\n%s", ts.log.String())
	}

	// A fresh clone, as a developer, gets the content.
	clone := filepath.Join(ts.dir, "clone")
	ts.git(devKey, ts.dir, "clone", "-q", ts.url("stack"), clone)
	if got, err := os.ReadFile(filepath.Join(clone, "big.bin")); err != nil || !bytes.Equal(got, big) {
		t.Fatalf("cloned big.bin: %d bytes, %v (want the %d bytes pushed)", len(got), err, len(big))
	}

	// The developer may not upload: the LFS push is refused, nothing stored.
	other := make([]byte, 1<<20)
	rand.Read(other)
	os.WriteFile(filepath.Join(clone, "other.bin"), other, 0o644)
	ts.git(devKey, clone, "add", "other.bin")
	ts.git(devKey, clone, "commit", "-q", "-m", "other")
	out, err := ts.run(devKey, clone, nil, "git", "lfs", "push", "origin", "HEAD")
	if err == nil {
		t.Errorf("developer's LFS upload succeeded:\n%s", out)
	}
	if got := ts.lfsObjects("stack"); len(got) != 1 {
		t.Errorf("a refused upload stored objects: %v", got)
	}
	if !strings.Contains(ts.log.String(), "may not push to stack") {
		t.Errorf("the refusal is not logged as one:\n%s", ts.log.String())
	}
}

// pkt is one pkt-line of text (or data) as git writes it.
func pkt(s string) string { return fmt.Sprintf("%04x%s", len(s)+4, s) }

// TestLFSWrongOid speaks the transfer protocol by hand: an object whose
// content does not match its oid, or whose size differs from the claim, is
// refused and nothing is stored, not even a temporary file; a path-like oid
// never reaches the file system; a malformed command ends the session, not
// the server.
func TestLFSWrongOid(t *testing.T) {
	ts := startServer(t, "")
	content := "hello lfs\n"
	sum := sha256.Sum256([]byte(content))
	good := hex.EncodeToString(sum[:])
	wrong := strings.Repeat("ab", 32)
	put := func(oid, size, data string) string {
		t.Helper()
		in := pkt("version 1\n") + "0000" + pkt("put-object "+oid+"\n") + pkt("size="+size+"\n") + "0001" + pkt(data) + "0000" + pkt("quit\n")
		cmd := exec.Command("ssh", append(ts.sshCommand(adminKey)[1:], "git@127.0.0.1", "git-lfs-transfer", "/stack.git", "upload")...)
		cmd.Env = ts.env(adminKey)
		cmd.Stdin = strings.NewReader(in)
		out, _ := cmd.CombinedOutput()
		return string(out)
	}
	for _, tc := range []struct{ name, oid, size, data string }{
		{"content of another oid", wrong, fmt.Sprint(len(content)), content},
		{"short content", good, fmt.Sprint(len(content) + 5), content},
		{"long content", good, "3", content},
		{"a path as oid", "../../../../etc/passwd", fmt.Sprint(len(content)), content},
	} {
		out := put(tc.oid, tc.size, tc.data)
		if !strings.Contains(out, "status 400") && !strings.Contains(out, "status 500") {
			t.Errorf("%s: not refused:\n%q", tc.name, out)
		}
		if got := ts.lfsObjects("stack"); len(got) != 0 {
			t.Fatalf("%s: stored %v", tc.name, got)
		}
	}
	if tmp, _ := os.ReadDir(filepath.Join(RepoRoot(ts.data), "stack.git", "lfs", "tmp")); len(tmp) != 0 {
		t.Errorf("temporary files left: %v", tmp)
	}
	// The right content under its own oid is stored.
	if out := put(good, fmt.Sprint(len(content)), content); !strings.Contains(out, "status 200") {
		t.Errorf("good object refused:\n%q", out)
	}
	if got := ts.lfsObjects("stack"); len(got) != 1 || got[0] != good {
		t.Errorf("stored %v, want [%s]", got, good)
	}
	// A bare "version" once made the protocol handler index past its
	// arguments: the session ends, the server serves on.
	cmd := exec.Command("ssh", append(ts.sshCommand(adminKey)[1:], "git@127.0.0.1", "git-lfs-transfer", "/stack.git", "download")...)
	cmd.Env = ts.env(adminKey)
	cmd.Stdin = strings.NewReader(pkt("version") + "0000")
	cmd.CombinedOutput()
	if out := put(good, fmt.Sprint(len(content)), content); !strings.Contains(out, "status 200") {
		t.Errorf("the server stopped serving after a malformed command:\n%q", out)
	}
}

// FuzzLFSSession feeds any bytes to the transfer protocol: the session
// ends without a panic escaping, and nothing is written outside lfs/ of
// the repository, nor left in lfs/tmp.
func FuzzLFSSession(f *testing.F) {
	content := "x"
	sum := sha256.Sum256([]byte(content))
	oid := hex.EncodeToString(sum[:])
	f.Add([]byte(pkt("version 1\n") + "0000" + pkt("put-object "+oid+"\n") + pkt("size=1\n") + "0001" + pkt(content) + "0000"))
	f.Add([]byte(pkt("version 1\n") + "0000" + pkt("batch\n") + "0001" + pkt(oid+" 1\n") + "0000"))
	f.Add([]byte(pkt("get-object ../x\n") + "0000"))
	f.Add([]byte(pkt("lock\n") + pkt("path=a\n") + "0000"))
	f.Fuzz(func(t *testing.T, data []byte) {
		repo := t.TempDir()
		for _, op := range []string{"upload", "download"} {
			serveLFS(repo, op, bytes.NewReader(data), io.Discard)
		}
		filepath.WalkDir(repo, func(p string, d os.DirEntry, err error) error {
			rel, _ := filepath.Rel(repo, p)
			switch {
			case err != nil || rel == "." || rel == "lfs" || rel == filepath.Join("lfs", "tmp"):
			case strings.HasPrefix(rel, filepath.Join("lfs", "tmp")+string(filepath.Separator)):
				t.Errorf("left in lfs/tmp: %s", rel)
			case !strings.HasPrefix(rel, filepath.Join("lfs", "objects")):
				t.Errorf("wrote %s", rel)
			}
			return nil
		})
	})
}
