package gitserve

import (
	"errors"
	"fmt"
	"slices"
	"sort"
	"strings"

	"github.com/hashbang/stack/internal/yamlfile"
)

// Groups are the principals of the allowed_signers files in the config
// directory: "@admins" in git.yaml means everyone in config/admins.
var Groups = []string{"admins", "developers"}

// Identity is who an authenticated key belongs to.
type Identity struct {
	// Principal is the first principal listed for the key: the name the
	// server logs and hooks see as the pusher.
	Principal string
	// Principals are all the principals listed for the key.
	Principals []string
	// Groups are the groups (files) that list the key: "admins", "developers".
	Groups []string
	// Fingerprint is the key's SHA256 fingerprint.
	Fingerprint string
}

// in reports whether the identity matches a member entry of git.yaml:
// "@group" or a principal name.
func (id Identity) in(member string) bool {
	if g, ok := strings.CutPrefix(member, "@"); ok {
		return slices.Contains(id.Groups, g)
	}
	return slices.Contains(id.Principals, member)
}

// Rule says who may read (clone, fetch, archive) and who may write (push) a
// repository. Writers may also read.
type Rule struct {
	Read  []string `yaml:"read,omitempty" json:"read,omitempty"`
	Write []string `yaml:"write,omitempty" json:"write,omitempty"`
}

// Access is the parsed config/git.yaml: a rule per repository pattern.
//
//	repos:
//	  "*":                              # every repository without its own rule
//	    read: ["@developers", "@admins"]
//	    write: ["@admins"]
//	  stack:                            # one repository
//	    read: ["@admins", "alice@example.org"]
//	    write: ["@admins"]
//	  "infra/*":                        # every repository of a group
//	    write: ["@admins"]
//
// Members are "@admins", "@developers" (the principals of those files) or a
// principal name. The most specific pattern wins: NAME, then GROUP/*, then *.
// A repository no pattern matches is closed to everyone.
type Access struct {
	Repos map[string]Rule `yaml:"repos" json:"repos"`
}

// DefaultAccess is used when config/git.yaml does not exist: developers and
// admins read everything, admins write.
func DefaultAccess() *Access {
	return &Access{Repos: map[string]Rule{
		"*": {Read: []string{"@developers", "@admins"}, Write: []string{"@admins"}},
	}}
}

// ParseAccess parses config/git.yaml strictly: unknown fields, unknown
// groups, bad patterns and empty rules are errors. Its errors name the file
// AccessFile; the syntax rules are every config file's (package yamlfile).
func ParseAccess(data []byte) (*Access, error) {
	return parseAccess(AccessFile, data)
}

// parseAccess is ParseAccess for the file named file.
func parseAccess(file string, data []byte) (*Access, error) {
	var raw struct {
		Repos map[string]*Rule `yaml:"repos"`
	}
	o := yamlfile.Options{MaxSize: maxConfigSize, Empty: `give at least one rule under "repos:"`}
	if err := yamlfile.Decode(file, data, &raw, o); err != nil {
		return nil, err
	}
	a, err := accessRules(raw.Repos)
	if err != nil {
		return nil, fmt.Errorf("%s: %w", file, err)
	}
	return a, nil
}

// accessRules checks the rules of git.yaml.
func accessRules(repos map[string]*Rule) (*Access, error) {
	if len(repos) == 0 {
		return nil, errors.New(`no rules: give at least one under "repos:"`)
	}
	a := &Access{Repos: make(map[string]Rule, len(repos))}
	patterns := make([]string, 0, len(repos))
	for p := range repos {
		patterns = append(patterns, p)
	}
	sort.Strings(patterns)
	for _, p := range patterns {
		r := repos[p]
		if err := validPattern(p); err != nil {
			return nil, fmt.Errorf("repos: %w", err)
		}
		if r == nil || (len(r.Read) == 0 && len(r.Write) == 0) {
			return nil, fmt.Errorf("repos.%s: empty rule: give read and/or write members", p)
		}
		for _, list := range []struct {
			name    string
			members []string
		}{{"read", r.Read}, {"write", r.Write}} {
			seen := map[string]bool{}
			for _, m := range list.members {
				if err := validMember(m); err != nil {
					return nil, fmt.Errorf("repos.%s.%s: %w", p, list.name, err)
				}
				if seen[m] {
					return nil, fmt.Errorf("repos.%s.%s: %q listed twice", p, list.name, m)
				}
				seen[m] = true
			}
		}
		a.Repos[p] = *r
	}
	return a, nil
}

func validPattern(p string) error {
	if p == "*" {
		return nil
	}
	if g, ok := strings.CutSuffix(p, "/*"); ok && !strings.Contains(g, "/") {
		if err := validPart(g); err != nil {
			return fmt.Errorf("pattern %q: %w", p, err)
		}
		return nil
	}
	if err := ValidName(p); err != nil {
		return fmt.Errorf("pattern %q: use *, GROUP/* or a repository name: %w", p, err)
	}
	return nil
}

func validMember(m string) error {
	if g, ok := strings.CutPrefix(m, "@"); ok {
		if !slices.Contains(Groups, g) {
			return fmt.Errorf("unknown group %q: use @%s or a principal name", m, strings.Join(Groups, " or @"))
		}
		return nil
	}
	return validPrincipal(m)
}

// Rule returns the rule that applies to the repository name and the pattern
// it came from; ok is false when none does.
func (a *Access) Rule(name string) (rule Rule, pattern string, ok bool) {
	if r, ok := a.Repos[name]; ok {
		return r, name, true
	}
	if g, _, found := strings.Cut(name, "/"); found {
		if r, ok := a.Repos[g+"/*"]; ok {
			return r, g + "/*", true
		}
	}
	if r, ok := a.Repos["*"]; ok {
		return r, "*", true
	}
	return Rule{}, "", false
}

// Allowed reports whether id may read (write false) or push to (write true)
// the repository name.
func (a *Access) Allowed(id Identity, name string, write bool) bool {
	r, _, ok := a.Rule(name)
	if !ok {
		return false
	}
	for _, m := range r.Write {
		if id.in(m) {
			return true
		}
	}
	if write {
		return false
	}
	for _, m := range r.Read {
		if id.in(m) {
			return true
		}
	}
	return false
}
