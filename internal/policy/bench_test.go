package policy

import (
	"context"
	"crypto/sha1"
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"testing"
	"time"
)

// benchCommits is the length of the benchmark history.
const benchCommits = 10000

var bench struct {
	once     sync.Once
	dir      string // repository
	root     string
	tip      string
	allowed  string // allowed signers file for git
	admins   string
	setupErr error
}

func cleanupBench() {
	if bench.dir != "" {
		os.RemoveAll(filepath.Dir(bench.dir))
	}
}

// benchHistory builds, once per test binary run, a repository holding a
// root commit and benchCommits commits on top, each signed by a
// (software-fabricated) FIDO key listed in config/admins.
func benchHistory(b *testing.B) {
	bench.once.Do(func() {
		tmp, err := os.MkdirTemp("", "policy-bench-")
		if err != nil {
			bench.setupErr = err
			return
		}
		bench.dir = filepath.Join(tmp, "repo")
		if err := os.Mkdir(bench.dir, 0o755); err != nil {
			bench.setupErr = err
			return
		}
		r := &testRepo{t: b, dir: bench.dir, now: 1700000000}
		run(b, r.dir, nil, "git", "init", "-q", "-b", "production")
		alice := newSKEd25519(b, "alice", FlagUserPresence)
		admins := signersFile(alice)
		bench.allowed = filepath.Join(tmp, "allowed_signers")
		os.WriteFile(bench.allowed, []byte(admins), 0o644)
		files := trustTree(admins, "", "environments:\n  production:\n    quorum: 1\n")
		bench.root = r.commit(commitOpts{files: files, msg: "root", key: alice})
		tree := r.writeTree(files)

		// Write the commits as files and store them with one hash-object.
		objs := filepath.Join(tmp, "objs")
		os.Mkdir(objs, 0o755)
		var paths, ids []string
		parent := bench.root
		for i := 0; i < benchCommits; i++ {
			when := 1700000000 + int64(i+1)*60
			head := fmt.Sprintf("tree %s\nparent %s\nauthor Test <test@example.org> %d +0000\ncommitter Test <test@example.org> %d +0000\n", tree, parent, when, when)
			body := fmt.Sprintf("\ncommit %d\n", i)
			armored := alice.sshsig(b, CommitNamespace, []byte(head+body))
			raw := head + "gpgsig " + strings.ReplaceAll(strings.TrimSuffix(string(armored), "\n"), "\n", "\n ") + "\n" + body
			id := fmt.Sprintf("%x", sha1.Sum([]byte(fmt.Sprintf("commit %d\x00%s", len(raw), raw))))
			p := filepath.Join(objs, id)
			if err := os.WriteFile(p, []byte(raw), 0o644); err != nil {
				bench.setupErr = err
				return
			}
			paths, ids, parent = append(paths, p), append(ids, id), id
		}
		out := run(b, r.dir, []byte(strings.Join(paths, "\n")+"\n"), "git", "hash-object", "-w", "-t", "commit", "--stdin-paths")
		if got := strings.Fields(out); strings.Join(got, " ") != strings.Join(ids, " ") {
			bench.setupErr = fmt.Errorf("git computed other commit ids than expected")
			return
		}
		os.RemoveAll(objs)
		bench.tip = parent
		run(b, r.dir, nil, "git", "update-ref", "refs/heads/production", bench.tip)
		run(b, r.dir, nil, "git", "gc", "-q")
	})
	if bench.setupErr != nil {
		b.Fatal(bench.setupErr)
	}
}

// BenchmarkVerifyHistory verifies the whole history from the trust root
// under the production rules (hardware keys, quorum 1).
func BenchmarkVerifyHistory(b *testing.B) {
	benchHistory(b)
	v := &Verifier{Dir: bench.dir, Root: TrustRoot{Commit: bench.root}}
	b.ResetTimer()
	start := time.Now()
	for i := 0; i < b.N; i++ {
		rep, err := v.VerifyRange(context.Background(), Production, "", bench.tip)
		if err != nil {
			b.Fatal(err)
		}
		if len(rep.Verdicts) != benchCommits+1 || !rep.OK() {
			b.Fatalf("%d verdicts, %d failed: %+v", len(rep.Verdicts), len(rep.Failed()), rep.Failed())
		}
	}
	b.ReportMetric(float64(b.N*benchCommits)/time.Since(start).Seconds(), "commits/s")
}

// BenchmarkGitLogShowSignature is git's own check of the same history for
// comparison: git log --show-signature runs ssh-keygen for each commit.
// Each iteration checks the newest 200 commits.
func BenchmarkGitLogShowSignature(b *testing.B) {
	benchHistory(b)
	const n = 200
	b.ResetTimer()
	start := time.Now()
	for i := 0; i < b.N; i++ {
		out := run(b, bench.dir, nil, "git", "-c", "gpg.ssh.allowedSignersFile="+bench.allowed,
			"log", "--show-signature", "--format=%H", "-n", fmt.Sprint(n), bench.tip)
		if got := strings.Count(out, `Good "git" signature`); got != n {
			b.Fatalf("git found %d good signatures of %d:\n%s", got, n, out[:min(len(out), 2000)])
		}
	}
	b.ReportMetric(float64(b.N*n)/time.Since(start).Seconds(), "commits/s")
}
