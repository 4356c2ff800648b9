package ci

import (
	"errors"
	"fmt"
	"path"
	"regexp"
	"slices"
	"strings"
	"time"

	"github.com/robfig/cron/v3"
	"go.yaml.in/yaml/v3"

	"github.com/hashbang/stack/internal/yamlfile"
)

// PipelinesFile is where a repository declares its pipelines, relative to
// the repository root. It is always read from a commit, never a work tree.
const PipelinesFile = "ci/pipelines.yaml"

// Limits of the pipelines file.
const (
	maxPipelinesSize = 64 << 10
	DefaultTimeout   = 30 * time.Minute
	MaxTimeout       = 24 * time.Hour
	minEvery         = time.Second
)

// Config is a parsed pipelines file.
//
//	pipelines:
//	  test:
//	    run: ci/test                 # executable in the repository
//	    on:
//	      push: ["refs/heads/*"]     # ref globs; * matches anything, / included
//	      timer: "@every 1h"         # or a 5-field cron line, in UTC
//	    timeout: 30m                 # default 30m, at most 24h
//
// A pipeline without on: runs only when started by hand (stack ci run).
type Config struct {
	Pipelines []*Pipeline
}

// Pipeline is one named script and what starts it.
type Pipeline struct {
	Name    string
	Run     string        // path of the script, relative to the repository root
	Push    []string      // ref patterns whose pushes start it
	Timer   string        // schedule as written, or ""
	Timeout time.Duration // how long a job may run before it is killed

	schedule cron.Schedule
}

// Pipeline returns the pipeline called name, or nil.
func (c *Config) Pipeline(name string) *Pipeline {
	for _, p := range c.Pipelines {
		if p.Name == name {
			return p
		}
	}
	return nil
}

// MatchesPush reports whether a push to ref starts p.
func (p *Pipeline) MatchesPush(ref string) bool {
	for _, pat := range p.Push {
		if matchRef(pat, ref) {
			return true
		}
	}
	return false
}

// Next returns when p's timer fires next after t, or the zero time if p has
// no timer or the schedule never fires again.
func (p *Pipeline) Next(t time.Time) time.Time {
	if p.schedule == nil {
		return time.Time{}
	}
	return p.schedule.Next(t.UTC())
}

// matchRef matches ref against a pattern in which each * stands for any
// run of characters, slashes included (like git's refspec globs).
func matchRef(pattern, ref string) bool {
	parts := strings.Split(pattern, "*")
	if len(parts) == 1 {
		return pattern == ref
	}
	if !strings.HasPrefix(ref, parts[0]) {
		return false
	}
	rest := ref[len(parts[0]):]
	last := parts[len(parts)-1]
	for _, mid := range parts[1 : len(parts)-1] {
		i := strings.Index(rest, mid)
		if i < 0 {
			return false
		}
		rest = rest[i+len(mid):]
	}
	return strings.HasSuffix(rest, last)
}

var (
	nameRE     = regexp.MustCompile(`^[A-Za-z0-9][A-Za-z0-9_.-]{0,62}$`)
	cronParser = cron.NewParser(cron.Minute | cron.Hour | cron.Dom | cron.Month | cron.Dow | cron.Descriptor)
)

// Parse reads a pipelines file. file names it in errors, which look like
// "ci/pipelines.yaml:3: pipeline test: run: ...". The syntax rules are
// every config file's (package yamlfile: one document, no key twice, no
// anchors or aliases); unknown keys and values of the wrong kind are errors
// too.
func Parse(file string, data []byte) (*Config, error) {
	p := &parser{file: file}
	root, err := yamlfile.Parse(file, data, yamlfile.Options{MaxSize: maxPipelinesSize, Empty: "declare at least `pipelines: {}`"})
	if err != nil {
		return nil, yamlfile.First(err) // one problem, as the checks below
	}
	return p.config(root)
}

type parser struct {
	file string
}

func (p *parser) errf(n *yaml.Node, format string, args ...any) error {
	return yamlfile.Errorf(p.file, n, format, args...)
}

// mapping returns the values of mapping n by key, refusing keys not in
// allowed and non-string keys (yamlfile has refused duplicates). where
// prefixes messages; path is the mapping's key path, for unknown keys.
func (p *parser) mapping(n *yaml.Node, where, path string, allowed ...string) (map[string]*yaml.Node, []string, error) {
	if n.Kind != yaml.MappingNode {
		return nil, nil, p.errf(n, "%smust be a mapping (key: value lines), not %s", where, yamlfile.Describe(n))
	}
	vals := map[string]*yaml.Node{}
	var keys []string
	for i := 0; i+1 < len(n.Content); i += 2 {
		k, v := n.Content[i], n.Content[i+1]
		if k.Tag != "!!str" {
			return nil, nil, p.errf(k, "%skeys must be plain names", where)
		}
		if allowed != nil && !slices.Contains(allowed, k.Value) {
			return nil, nil, yamlfile.UnknownKey(p.file, k, path, allowed)
		}
		vals[k.Value] = v
		keys = append(keys, k.Value)
	}
	return vals, keys, nil
}

func (p *parser) str(n *yaml.Node, where string) (string, error) {
	if n.Kind != yaml.ScalarNode || n.Tag != "!!str" {
		return "", p.errf(n, "%smust be a string, not %s", where, yamlfile.Describe(n))
	}
	return n.Value, nil
}

func (p *parser) config(root *yaml.Node) (*Config, error) {
	top, _, err := p.mapping(root, "", "the top level", "pipelines")
	if err != nil {
		return nil, err
	}
	pn, ok := top["pipelines"]
	if !ok {
		return nil, p.errf(root, "no `pipelines:` key: declare pipelines (or `pipelines: {}`)")
	}
	c := &Config{}
	if pn.Kind == yaml.ScalarNode && pn.Tag == "!!null" {
		return c, nil
	}
	vals, names, err := p.mapping(pn, "pipelines: ", "pipelines")
	if err != nil {
		return nil, err
	}
	for _, name := range names {
		v := vals[name]
		if !nameRE.MatchString(name) {
			return nil, p.errf(v, "pipeline name %q: use letters, digits, '.', '_' and '-' (at most 63, starting with a letter or digit)", name)
		}
		pl, err := p.pipeline(name, v)
		if err != nil {
			return nil, err
		}
		c.Pipelines = append(c.Pipelines, pl)
	}
	return c, nil
}

func (p *parser) pipeline(name string, n *yaml.Node) (*Pipeline, error) {
	where := "pipeline " + name + ": "
	vals, _, err := p.mapping(n, where, yamlfile.KeyPath("pipelines", name), "run", "on", "timeout")
	if err != nil {
		return nil, err
	}
	pl := &Pipeline{Name: name, Timeout: DefaultTimeout}

	rn, ok := vals["run"]
	if !ok {
		return nil, p.errf(n, "%sno `run:`: name the script to run, e.g. run: ci/%s", where, name)
	}
	if pl.Run, err = p.str(rn, where+"run: "); err != nil {
		return nil, err
	}
	if err := checkRunPath(pl.Run); err != nil {
		return nil, p.errf(rn, "%srun: %v", where, err)
	}

	if tn, ok := vals["timeout"]; ok {
		s, err := p.str(tn, where+"timeout: ")
		if err != nil {
			return nil, err
		}
		d, err := time.ParseDuration(s)
		if err != nil || d <= 0 || d > MaxTimeout {
			return nil, p.errf(tn, "%stimeout: %q is not a duration between 1s and %s, e.g. 30m or 1h30m", where, s, MaxTimeout)
		}
		pl.Timeout = d
	}

	if on, ok := vals["on"]; ok {
		if err := p.on(pl, on, where+"on: ", yamlfile.KeyPath(yamlfile.KeyPath("pipelines", name), "on")); err != nil {
			return nil, err
		}
	}
	return pl, nil
}

func (p *parser) on(pl *Pipeline, n *yaml.Node, where, path string) error {
	vals, _, err := p.mapping(n, where, path, "push", "timer")
	if err != nil {
		return err
	}
	if pn, ok := vals["push"]; ok {
		items := []*yaml.Node{pn}
		if pn.Kind == yaml.SequenceNode {
			items = pn.Content
		}
		for _, it := range items {
			s, err := p.str(it, where+"push: ")
			if err != nil {
				return err
			}
			if err := checkRefPattern(s); err != nil {
				return p.errf(it, "%spush: %v", where, err)
			}
			pl.Push = append(pl.Push, s)
		}
	}
	if tn, ok := vals["timer"]; ok {
		s, err := p.str(tn, where+"timer: ")
		if err != nil {
			return err
		}
		sched, err := parseSchedule(s)
		if err != nil {
			return p.errf(tn, "%stimer: %v", where, err)
		}
		pl.Timer, pl.schedule = s, sched
	}
	return nil
}

// parseSchedule accepts "@every DURATION" (at least 1s), the descriptors
// @hourly, @daily, @weekly, @monthly, @yearly, and 5-field cron lines.
// Schedules are evaluated in UTC.
func parseSchedule(s string) (cron.Schedule, error) {
	const hint = `use "@every 1h", "@daily" or a 5-field cron line like "0 3 * * *" (UTC)`
	t := strings.TrimSpace(s)
	if t == "" {
		return nil, fmt.Errorf("empty schedule: %s", hint)
	}
	if strings.HasPrefix(t, "TZ=") || strings.HasPrefix(t, "CRON_TZ=") {
		return nil, fmt.Errorf("%q: time zones are not supported, schedules are UTC", s)
	}
	if rest, ok := strings.CutPrefix(t, "@every "); ok {
		d, err := time.ParseDuration(strings.TrimSpace(rest))
		if err != nil || d < minEvery {
			return nil, fmt.Errorf("%q: the interval must be a duration of at least %s, e.g. @every 5m", s, minEvery)
		}
		return cron.Every(d), nil
	}
	sched, err := cronParser.Parse(t)
	if err != nil {
		return nil, fmt.Errorf("%q: %v: %s", s, err, hint)
	}
	if spec, ok := sched.(*cron.SpecSchedule); ok {
		spec.Location = time.UTC
	}
	return sched, nil
}

// checkRunPath accepts a clean relative path inside the repository.
func checkRunPath(s string) error {
	switch {
	case s == "":
		return errors.New("empty: name the script, e.g. ci/test")
	case strings.HasPrefix(s, "/"):
		return fmt.Errorf("%q is absolute: give a path inside the repository, e.g. ci/test", s)
	case strings.ContainsAny(s, "\x00\\") || hasControl(s):
		return fmt.Errorf("%q holds a control character or backslash", s)
	case path.Clean(s) != s || s == "." || s == ".." || strings.HasPrefix(s, "../"):
		return fmt.Errorf("%q is not a clean path inside the repository, e.g. ci/test", s)
	}
	return nil
}

// checkRefPattern accepts a full ref name in which * may stand for any run
// of characters.
func checkRefPattern(s string) error {
	if !strings.HasPrefix(s, "refs/") {
		return fmt.Errorf("%q is not a full ref: write refs/heads/%s, refs/tags/* or refs/heads/*", s, strings.TrimPrefix(s, "/"))
	}
	if hasControl(s) || strings.ContainsAny(s, " ~^:?[\\") || strings.Contains(s, "..") || strings.Contains(s, "//") {
		return fmt.Errorf("%q is not a valid ref pattern: only * is special", s)
	}
	return nil
}

func hasControl(s string) bool {
	for _, r := range s {
		if r < 0x20 || r == 0x7f {
			return true
		}
	}
	return false
}
