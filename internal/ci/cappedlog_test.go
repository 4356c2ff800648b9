package ci

import (
	"bytes"
	"context"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"
)

// TestCappedLog: past its bound the log rotates, the newest output always
// in log, one older part in log.1, nothing more on disk.
func TestCappedLog(t *testing.T) {
	path := filepath.Join(t.TempDir(), "log")
	l, err := openCappedLog(path, 1000)
	if err != nil {
		t.Fatal(err)
	}
	for i := 0; i < 100; i++ {
		if _, err := l.Write([]byte(strings.Repeat("x", 40) + " line " + string(rune('a'+i%26)) + "\n")); err != nil {
			t.Fatal(err)
		}
	}
	l.Write([]byte("the last line\n"))
	l.Close()
	cur, _ := os.ReadFile(path)
	old, _ := os.ReadFile(path + ".1")
	if len(cur) > 1000+200 || len(old) > 1000+200 || len(old) == 0 {
		t.Errorf("parts of %d and %d bytes, bound 1000", len(cur), len(old))
	}
	if !bytes.HasPrefix(cur, []byte("==> log rotated at ")) || !bytes.HasSuffix(cur, []byte("the last line\n")) {
		t.Errorf("current part:\n%s", cur)
	}
	if ents, _ := os.ReadDir(filepath.Dir(path)); len(ents) != 2 {
		t.Errorf("files: %v", ents)
	}
}

// TestJobLogCapped runs a job that writes 3 MiB against a 1 MiB bound: the
// job succeeds, its log holds the newest output and a rotation line, and
// `stack ci logs` (Logs) shows the current part.
func TestJobLogCapped(t *testing.T) {
	g := newGitRepo(t)
	data := t.TempDir()
	c := g.commit("main", map[string]string{
		"ci/pipelines.yaml": pipelines("loud"),
		"ci/loud":           "#!/bin/sh\ni=0\nwhile [ $i -lt 3000 ]; do printf '%01023d\\n' $i; i=$((i+1)); done\necho the end\n",
	})
	jobs := g.push(data, "refs/heads/main", c)
	startRunner(t, &Runner{DataDir: data, MaxLog: 1 << 20})
	j := waitJob(t, data, jobs[0].ID, 60*time.Second, final)
	if j.State != Succeeded {
		t.Fatalf("job %s: %s", j.State, j.Error)
	}
	dir := filepath.Join(data, "ci", "jobs", j.ID)
	for _, f := range []string{"log", "log.1"} {
		if fi, err := os.Stat(filepath.Join(dir, f)); err != nil || fi.Size() > 1<<20+4096 {
			t.Errorf("%s: %v %v", f, fi, err)
		}
	}
	var b bytes.Buffer
	if _, err := Logs(context.Background(), data, j.ID, &b, true, 0); err != nil {
		t.Fatal(err)
	}
	if !strings.HasPrefix(b.String(), "==> log rotated at ") || !strings.Contains(b.String(), "the end\n==> succeeded") {
		t.Errorf("logs: %.200s … %s", b.String(), b.String()[max(0, b.Len()-200):])
	}
}
