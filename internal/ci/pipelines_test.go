package ci

import (
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"
)

func TestParse(t *testing.T) {
	const full = `# the repository's CI
pipelines:
  test:
    run: ci/test
    on:
      push: ["refs/heads/*"]
    timeout: 10m
  nightly:
    run: ci/nightly
    on:
      push: refs/tags/v*
      timer: "0 3 * * *"
  deploy:
    run: scripts/deploy.sh
`
	c, err := Parse("ci/pipelines.yaml", []byte(full))
	if err != nil {
		t.Fatal(err)
	}
	if len(c.Pipelines) != 3 {
		t.Fatalf("got %d pipelines, want 3", len(c.Pipelines))
	}
	test, nightly, deploy := c.Pipeline("test"), c.Pipeline("nightly"), c.Pipeline("deploy")
	if test == nil || nightly == nil || deploy == nil || c.Pipeline("nope") != nil {
		t.Fatalf("lookup by name broken: %+v", c.Pipelines)
	}
	if c.Pipelines[0] != test || c.Pipelines[2] != deploy {
		t.Errorf("pipelines not in file order")
	}
	if test.Run != "ci/test" || test.Timeout != 10*time.Minute || test.Timer != "" {
		t.Errorf("test = %+v", test)
	}
	if deploy.Timeout != DefaultTimeout || len(deploy.Push) != 0 || deploy.Timer != "" {
		t.Errorf("deploy = %+v", deploy)
	}
	if len(nightly.Push) != 1 || nightly.Push[0] != "refs/tags/v*" || nightly.Timer != "0 3 * * *" {
		t.Errorf("nightly = %+v", nightly)
	}
	from := time.Date(2026, 1, 2, 12, 0, 0, 0, time.UTC)
	if got, want := nightly.Next(from), time.Date(2026, 1, 3, 3, 0, 0, 0, time.UTC); !got.Equal(want) {
		t.Errorf("nightly.Next(%s) = %s, want %s (UTC)", from, got, want)
	}
	if !test.Next(from).IsZero() {
		t.Errorf("a pipeline without timer has a next firing")
	}
	for ref, want := range map[string]bool{
		"refs/heads/main": true, "refs/heads/feature/x": true, "refs/tags/v1": false,
	} {
		if got := test.MatchesPush(ref); got != want {
			t.Errorf("test.MatchesPush(%s) = %v, want %v", ref, got, want)
		}
	}
	if !nightly.MatchesPush("refs/tags/v1.2") || nightly.MatchesPush("refs/heads/main") || deploy.MatchesPush("refs/heads/main") {
		t.Errorf("push matching of nightly or deploy broken")
	}

	every, err := Parse("f", []byte("pipelines:\n  t:\n    run: t\n    on: {timer: \"@every 90s\"}\n"))
	if err != nil {
		t.Fatal(err)
	}
	if got := every.Pipelines[0].Next(from); !got.Equal(from.Add(90 * time.Second)) {
		t.Errorf("@every 90s from %s = %s", from, got)
	}
	for _, empty := range []string{"pipelines: {}\n", "pipelines:\n"} {
		c, err := Parse("f", []byte(empty))
		if err != nil || len(c.Pipelines) != 0 {
			t.Errorf("Parse(%q) = %v, %v; want no pipelines", empty, c, err)
		}
	}
}

func TestParseErrors(t *testing.T) {
	for _, tc := range []struct {
		name, in, want string
	}{
		{"empty", "", "f: empty file: declare at least `pipelines: {}`"},
		{"not a mapping", "- a\n", "f:1: must be a mapping"},
		{"no pipelines key", "other: 1\n", `f:1: unknown key "other"`},
		{"unknown pipeline key", "pipelines:\n  t:\n    run: ci/t\n    runs: x\n", `f:4: unknown key "runs" in pipelines.t: remove it or fix its spelling (known: on, run, timeout)`},
		{"unknown on key", "pipelines:\n  t:\n    run: ci/t\n    on:\n      pull: [a]\n", `f:5: unknown key "pull" in pipelines.t.on`},
		{"missing run", "pipelines:\n  t:\n    timeout: 1m\n", "f:3: pipeline t: no `run:`"},
		{"run not a string", "pipelines:\n  t:\n    run: [a]\n", "f:3: pipeline t: run: must be a string, not a list"},
		{"run a number", "pipelines:\n  t:\n    run: 5\n", `f:3: pipeline t: run: must be a string, not int "5"`},
		{"absolute run", "pipelines:\n  t:\n    run: /bin/sh\n", `f:3: pipeline t: run: "/bin/sh" is absolute`},
		{"escaping run", "pipelines:\n  t:\n    run: ../x\n", `f:3: pipeline t: run: "../x" is not a clean path`},
		{"unclean run", "pipelines:\n  t:\n    run: ci//t\n", `"ci//t" is not a clean path`},
		{"bad timeout", "pipelines:\n  t:\n    run: t\n    timeout: soon\n", `f:4: pipeline t: timeout: "soon" is not a duration`},
		{"zero timeout", "pipelines:\n  t:\n    run: t\n    timeout: 0s\n", `timeout: "0s" is not a duration`},
		{"huge timeout", "pipelines:\n  t:\n    run: t\n    timeout: 48h\n", `timeout: "48h" is not a duration between 1s and 24h0m0s`},
		{"short ref", "pipelines:\n  t:\n    run: t\n    on: {push: main}\n", `f:4: pipeline t: on: push: "main" is not a full ref: write refs/heads/main`},
		{"bad ref chars", "pipelines:\n  t:\n    run: t\n    on: {push: [\"refs/heads/a?\"]}\n", `"refs/heads/a?" is not a valid ref pattern`},
		{"push map", "pipelines:\n  t:\n    run: t\n    on: {push: {a: b}}\n", "push: must be a string, not a mapping"},
		{"bad cron", "pipelines:\n  t:\n    run: t\n    on: {timer: \"* * *\"}\n", `f:4: pipeline t: on: timer: "* * *": expected exactly 5 fields`},
		{"six fields", "pipelines:\n  t:\n    run: t\n    on: {timer: \"0 * * * * *\"}\n", "expected exactly 5 fields"},
		{"fast every", "pipelines:\n  t:\n    run: t\n    on: {timer: \"@every 10ms\"}\n", "at least 1s"},
		{"time zone", "pipelines:\n  t:\n    run: t\n    on: {timer: \"TZ=x\"}\n", "time zones are not supported"},
		{"unquoted at", "pipelines:\n  t:\n    run: t\n    on:\n      timer: @every 1h\n", `f:5: invalid YAML: found character that cannot start any token: quote values`},
		{"bad name", "pipelines:\n  \"a b\":\n    run: t\n", `f:3: pipeline name "a b"`},
		{"duplicate", "pipelines:\n  t:\n    run: t\n  t:\n    run: u\n", `f:4: duplicate key "t" in pipelines (first at line 2)`},
		{"duplicate field", "pipelines:\n  t:\n    run: t\n    run: u\n", `f:4: duplicate key "run" in pipelines.t (first at line 3)`},
		{"duplicate in on", "pipelines:\n  t:\n    run: t\n    on:\n      push: [refs/heads/a]\n      push: [refs/heads/b]\n", `f:6: duplicate key "push" in pipelines.t.on (first at line 5)`},
		{"alias", "pipelines:\n  t: &a\n    run: t\n  u: *a\n", "f:2: YAML anchor &a: anchors and aliases are not supported"},
		{"two documents", "pipelines: {}\n---\npipelines: {}\n", "f:2: more than one YAML document"},
		{"pipelines a list", "pipelines: [a]\n", "f:1: pipelines: must be a mapping"},
		{"syntax", "pipelines:\n  t: [\n", "f:2: invalid YAML"},
		{"too big", "pipelines: {}\n#" + strings.Repeat("x", maxPipelinesSize), "larger than the 65536 allowed"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			c, err := Parse("f", []byte(tc.in))
			if err == nil {
				t.Fatalf("Parse accepted it: %+v", c)
			}
			if !strings.Contains(err.Error(), tc.want) {
				t.Fatalf("error %q does not contain %q", err, tc.want)
			}
			if strings.Contains(err.Error(), "\n") {
				t.Errorf("error is not one line: %q", err)
			}
		})
	}
}

func TestMatchRef(t *testing.T) {
	for _, tc := range []struct {
		pattern, ref string
		want         bool
	}{
		{"refs/heads/main", "refs/heads/main", true},
		{"refs/heads/main", "refs/heads/main2", false},
		{"refs/heads/*", "refs/heads/a", true},
		{"refs/heads/*", "refs/heads/a/b", true},
		{"refs/heads/*", "refs/tags/a", false},
		{"refs/heads/*", "refs/heads/", true},
		{"refs/heads/release-*", "refs/heads/release-1.2", true},
		{"refs/heads/release-*", "refs/heads/hotfix-1", false},
		{"refs/*/v*", "refs/tags/v1", true},
		{"refs/*/v*", "refs/tags/x1", false},
		{"refs/heads/*-fix", "refs/heads/a-fix", true},
		{"refs/heads/*-fix", "refs/heads/-fi", false},
		{"refs/heads/*a*a", "refs/heads/aa", true},
		{"refs/heads/*a*a", "refs/heads/a", false},
		{"*", "anything", true},
	} {
		if got := matchRef(tc.pattern, tc.ref); got != tc.want {
			t.Errorf("matchRef(%q, %q) = %v, want %v", tc.pattern, tc.ref, got, tc.want)
		}
	}
}

func FuzzParse(f *testing.F) {
	for _, s := range []string{
		"pipelines:\n  test:\n    run: ci/test\n    on:\n      push: [\"refs/heads/*\"]\n      timer: \"@every 1h\"\n    timeout: 30m\n",
		"pipelines:\n  n:\n    run: ci/n\n    on: {timer: \"0 3 * * 1-5\"}\n",
		"pipelines:\n  n:\n    run: ci/n\n    on: {timer: \"@daily\", push: refs/tags/*}\n",
		"pipelines: {}\n",
		"pipelines:\n  t: &a\n    run: t\n  u: *a\n",
		"pipelines:\n  t:\n    run: t\n    on: {timer: \"TZ=\"}\n",
		"pipelines:\n  t:\n    run: t\n    on: {timer: \"@every -1s\"}\n",
		"pipelines:\n  t:\n    run: t\n    on: {timer: \"*/0 * * * *\"}\n",
		"a: [\n",
		"",
	} {
		f.Add([]byte(s))
	}
	f.Fuzz(func(t *testing.T, data []byte) {
		c, err := Parse("ci/pipelines.yaml", data)
		if err != nil {
			if !strings.HasPrefix(err.Error(), "ci/pipelines.yaml:") {
				t.Fatalf("error without the file name: %q", err)
			}
			return
		}
		seen := map[string]bool{}
		for _, p := range c.Pipelines {
			if !nameRE.MatchString(p.Name) || seen[p.Name] {
				t.Fatalf("bad or repeated name %q accepted", p.Name)
			}
			seen[p.Name] = true
			if err := checkRunPath(p.Run); err != nil {
				t.Fatalf("bad run path accepted: %v", err)
			}
			if p.Timeout <= 0 || p.Timeout > MaxTimeout {
				t.Fatalf("timeout %s accepted", p.Timeout)
			}
			for _, pat := range p.Push {
				if checkRefPattern(pat) != nil {
					t.Fatalf("bad pattern %q accepted", pat)
				}
			}
			if (p.Timer == "") != (p.schedule == nil) {
				t.Fatalf("timer %q without schedule", p.Timer)
			}
			p.Next(time.Date(2026, 1, 1, 0, 0, 0, 0, time.UTC))
		}
	})
}

// TestOwnPipelines checks this repository's own pipelines file.
func TestOwnPipelines(t *testing.T) {
	data, err := os.ReadFile(filepath.Join("..", "..", PipelinesFile))
	if err != nil {
		t.Fatal(err)
	}
	c, err := Parse(PipelinesFile, data)
	if err != nil {
		t.Fatal(err)
	}
	p := c.Pipeline("test")
	if p == nil || !p.MatchesPush("refs/heads/main") || !p.MatchesPush("refs/heads/some/branch") || p.MatchesPush("refs/tags/v1") {
		t.Fatalf("test pipeline %+v: want it on pushes to every branch", p)
	}
	st, err := os.Stat(filepath.Join("..", "..", filepath.FromSlash(p.Run)))
	if err != nil || st.Mode()&0o111 == 0 {
		t.Errorf("%s is not an executable: %v", p.Run, err)
	}
}
