package ci

import (
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/hashbang/stack/internal/gitserve"
)

func TestEnqueuePushMatchesRefs(t *testing.T) {
	g := newGitRepo(t)
	data := t.TempDir()
	c := g.commit("main", map[string]string{
		"ci/pipelines.yaml": `pipelines:
  test:
    run: ci/test
    on: {push: ["refs/heads/*"]}
  release:
    run: ci/release
    on: {push: ["refs/tags/v*"]}
  deploy:
    run: ci/deploy
`,
	})
	for _, tc := range []struct {
		ref  string
		want []string
	}{
		{"refs/heads/main", []string{"test"}},
		{"refs/heads/feature/deep", []string{"test"}},
		{"refs/tags/v1.0", []string{"release"}},
		{"refs/tags/nightly", nil},
		{"refs/notes/commits", nil},
	} {
		jobs := g.push(data, tc.ref, c)
		var got []string
		for _, j := range jobs {
			got = append(got, j.Pipeline)
			if j.State != Queued || j.Commit != c || j.Ref != tc.ref || j.Trigger != Push || j.Repo != "repo" {
				t.Errorf("job %+v", j)
			}
			if _, err := os.Stat(filepath.Join(data, "ci", "queue", j.ID)); err != nil {
				t.Errorf("job %s not marked queued: %v", j.ID, err)
			}
		}
		if strings.Join(got, ",") != strings.Join(tc.want, ",") {
			t.Errorf("push to %s queued %v, want %v", tc.ref, got, tc.want)
		}
	}
	all, err := List(data)
	if err != nil {
		t.Fatal(err)
	}
	if len(all) != 3 {
		t.Fatalf("List has %d jobs, want 3", len(all))
	}
	for i := 1; i < len(all); i++ {
		if all[i-1].Seq >= all[i].Seq || all[i-1].ID >= all[i].ID {
			t.Errorf("jobs not in order: %s then %s", all[i-1].ID, all[i].ID)
		}
	}
	// A job is found by id or by number.
	if j, err := Get(data, "2"); err != nil || j.ID != all[1].ID {
		t.Errorf("Get(2) = %v, %v; want %s", j, err, all[1].ID)
	}
	for _, bad := range []string{"../x", "0", "-1", "x", "20260101-000000-"} {
		if _, err := Get(data, bad); err == nil {
			t.Errorf("Get(%q) found a job", bad)
		}
	}

	// The manual-only pipeline runs only when named.
	jobs, err := Enqueue(data, Event{Repo: "repo", RepoPath: g.bare, Ref: "refs/heads/main", New: c, Trigger: Manual, Pipeline: "deploy"})
	if err != nil || len(jobs) != 1 || jobs[0].Pipeline != "deploy" || jobs[0].Trigger != Manual {
		t.Errorf("manual deploy: %v, %v", jobs, err)
	}
	if _, err := Enqueue(data, Event{Repo: "repo", RepoPath: g.bare, Ref: "refs/heads/main", New: c, Trigger: Manual, Pipeline: "nope"}); err == nil || !strings.Contains(err.Error(), `no pipeline "nope"`) {
		t.Errorf("manual run of a missing pipeline: %v", err)
	}
}

func TestEnqueueNothingToDo(t *testing.T) {
	g := newGitRepo(t)
	data := t.TempDir()
	plain := g.commit("main", map[string]string{"README": "no CI here\n"})
	if jobs := g.push(data, "refs/heads/main", plain); len(jobs) != 0 {
		t.Errorf("a commit without %s queued %v", PipelinesFile, jobs)
	}
	if jobs := g.push(data, "refs/heads/main", strings.Repeat("0", 40)); len(jobs) != 0 {
		t.Errorf("a deleted ref queued %v", jobs)
	}
	if _, err := os.Stat(filepath.Join(data, "ci")); !os.IsNotExist(err) {
		t.Errorf("nothing queued but %s/ci was made", data)
	}
	if jobs, err := List(data); err != nil || len(jobs) != 0 {
		t.Errorf("List of a data directory without jobs: %v, %v", jobs, err)
	}
	if _, err := List(filepath.Join(data, "missing")); err == nil {
		t.Errorf("List of a missing data directory: no error")
	}
}

func TestEnqueueErrors(t *testing.T) {
	g := newGitRepo(t)
	data := t.TempDir()
	bad := g.commit("main", map[string]string{"ci/pipelines.yaml": "pipelines:\n  test:\n    run: /bin/true\n"})
	_, err := Enqueue(data, Event{Repo: "repo", RepoPath: g.bare, Ref: "refs/heads/main", New: bad, Trigger: Push})
	if err == nil || !strings.Contains(err.Error(), "ci/pipelines.yaml:3: pipeline test: run:") {
		t.Errorf("broken pipelines file: %v", err)
	}
	ok := Event{Repo: "repo", RepoPath: g.bare, Ref: "refs/heads/main", New: bad, Trigger: Push}
	for name, mod := range map[string]func(*Event){
		"no repo":        func(e *Event) { e.Repo = "" },
		"no path":        func(e *Event) { e.RepoPath = "" },
		"not a repo":     func(e *Event) { e.RepoPath = t.TempDir() },
		"short ref":      func(e *Event) { e.Ref = "main" },
		"bad object":     func(e *Event) { e.New = "HEAD" },
		"bad trigger":    func(e *Event) { e.Trigger = "cron" },
		"bad pipeline":   func(e *Event) { e.Pipeline = "../x" },
		"unknown commit": func(e *Event) { e.New = strings.Repeat("1", 40) },
	} {
		ev := ok
		mod(&ev)
		if _, err := Enqueue(data, ev); err == nil {
			t.Errorf("%s: accepted", name)
		} else if strings.Contains(err.Error(), "\n") {
			t.Errorf("%s: error not one line: %q", name, err)
		}
	}
}

func TestEnqueueSupersedesQueued(t *testing.T) {
	g := newGitRepo(t)
	data := t.TempDir()
	files := map[string]string{"ci/pipelines.yaml": pipelines("test", "lint")}
	c1 := g.commit("main", files)
	first := g.push(data, "refs/heads/main", c1)
	other := g.push(data, "refs/heads/dev", c1)
	c2 := g.commit("main", map[string]string{"x": "2"})
	second := g.push(data, "refs/heads/main", c2)
	if len(first) != 2 || len(second) != 2 || len(other) != 2 {
		t.Fatalf("queued %d, %d, %d jobs; want 2 each", len(first), len(second), len(other))
	}
	for i, j := range first {
		j, err := Get(data, j.ID)
		if err != nil {
			t.Fatal(err)
		}
		if j.State != Superseded || j.SupersededBy != second[i].ID || j.Finished.IsZero() {
			t.Errorf("older job %s: state %s by %q, want superseded by %s", j.ID, j.State, j.SupersededBy, second[i].ID)
		}
		if _, err := os.Stat(filepath.Join(data, "ci", "queue", j.ID)); !os.IsNotExist(err) {
			t.Errorf("superseded job %s still marked queued", j.ID)
		}
	}
	for _, j := range append(other, second...) {
		if j, _ := Get(data, j.ID); j.State != Queued {
			t.Errorf("job %s (%s %s) is %s, want queued", j.ID, j.Pipeline, j.Ref, j.State)
		}
	}
}

func TestServedRepos(t *testing.T) {
	data := t.TempDir()
	root := gitserve.RepoRoot(data)
	for _, name := range []string{"stack.git", "infra/dns.git", "infra/web.git", "Upper.git"} {
		g := &gitRepo{t: t}
		g.git("", "init", "--quiet", "--bare", filepath.Join(root, filepath.FromSlash(name)))
	}
	os.MkdirAll(filepath.Join(root, "notarepo.git"), 0o755)
	os.MkdirAll(filepath.Join(root, ".new-123"), 0o755)
	repos, err := ServedRepos(data)()
	if err != nil {
		t.Fatal(err)
	}
	var names []string
	for _, r := range repos {
		names = append(names, r.Name)
		if _, err := os.Stat(filepath.Join(r.Path, "HEAD")); err != nil {
			t.Errorf("%s: %s is not a bare repository", r.Name, r.Path)
		}
	}
	// Upper.git is no name the git server serves, so CI does not see it.
	if got := strings.Join(names, ","); got != "infra/dns,infra/web,stack" {
		t.Errorf("ServedRepos = %s", got)
	}
	if repos, err := ServedRepos(filepath.Join(data, "missing"))(); err != nil || len(repos) != 0 {
		t.Errorf("ServedRepos of a missing directory: %v, %v", repos, err)
	}
	for name, want := range map[string]string{
		"stack": "stack.git", "stack.git": "stack.git", "infra/dns": "infra/dns.git",
		"nope": "", "notarepo": "", "../stack": "", "/stack": "", "a/b/c": "", "infra/../stack": "", "": "", "Upper": "",
	} {
		r, err := ServedRepo(data, name)
		switch {
		case want == "" && err == nil:
			t.Errorf("ServedRepo(%q) = %+v, want an error", name, r)
		case want != "" && (err != nil || r.Path != filepath.Join(root, filepath.FromSlash(want))):
			t.Errorf("ServedRepo(%q) = %+v, %v; want %s", name, r, err, want)
		}
	}
	if _, err := ServedRepo(data, "nope"); err == nil || err.Error() != `no repository "nope" in `+root+": see `stack repo list`" {
		t.Errorf("ServedRepo(nope) = %v", err)
	}
	if _, err := ServedRepo(data, "../stack"); err == nil || !strings.HasPrefix(err.Error(), `"../stack" is not a repository name`) {
		t.Errorf("ServedRepo(../stack) = %v", err)
	}
}
