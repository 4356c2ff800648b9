package policy

import (
	"errors"
	"fmt"
	"path"
	"regexp"
	"sort"
	"strings"

	"github.com/hashbang/stack/internal/yamlfile"
)

// Paths of the trust files, relative to the repository root. They are read
// from the parent commit(s) of the commit being judged, never from the
// commit itself.
const (
	AdminsFile     = "config/admins"
	DevelopersFile = "config/developers"
	PolicyFile     = "config/policy.yaml"
)

// Production is the environment the seed's promise is about: whatever
// config/policy.yaml says, it always requires hardware-key signatures by
// admins.
const Production = "production"

// Who may sign for an environment.
const (
	SignersAdmins     = "admins"     // keys in config/admins
	SignersDevelopers = "developers" // keys in config/admins or config/developers
)

// Rule is what an environment demands of every commit that reaches it.
type Rule struct {
	// Name is the environment.
	Name string `json:"name"`
	// Refs are the protected refs whose pushes are checked under this rule:
	// full ref names, or path.Match patterns like refs/heads/release/*.
	Refs []string `json:"refs"`
	// Signers is admins or developers.
	Signers string `json:"signers"`
	// Hardware requires FIDO keys (sk-ssh-ed25519@openssh.com or
	// sk-ecdsa-sha2-nistp256@openssh.com) with the user-presence flag.
	Hardware bool `json:"hardware"`
	// UserVerification requires the user-verification flag (PIN or
	// biometric) on every FIDO signature, whatever the signer's line says.
	UserVerification bool `json:"user_verification"`
	// Quorum is how many distinct admins (principals and keys) must sign
	// or approve each commit; at least 1.
	Quorum int `json:"quorum"`
}

// Policy is config/policy.yaml: the rules of each protected environment.
type Policy struct {
	Environments map[string]*Rule
}

// DefaultPolicy is the policy when config/policy.yaml is absent: production
// requires a hardware-key signature by one admin; nothing else is protected.
func DefaultPolicy() *Policy {
	return &Policy{Environments: map[string]*Rule{Production: defaultProduction()}}
}

func defaultProduction() *Rule {
	return &Rule{
		Name:     Production,
		Refs:     []string{"refs/heads/" + Production},
		Signers:  SignersAdmins,
		Hardware: true,
		Quorum:   1,
	}
}

// yamlRule is one environment as written in config/policy.yaml.
type yamlRule struct {
	Refs             []string `yaml:"refs"`
	Signers          string   `yaml:"signers"`
	Hardware         *bool    `yaml:"hardware"`
	UserVerification bool     `yaml:"user-verification"`
	Quorum           *int     `yaml:"quorum"`
}

var envName = regexp.MustCompile(`^[a-z0-9][a-z0-9-]{0,62}$`)

// ParsePolicy parses and checks config/policy.yaml. Environments not
// written get no rule, except production, which gets the default. Omitted
// fields default to: refs [refs/heads/ENV], signers admins, quorum 1,
// hardware true for production and false elsewhere; an empty file is the
// default policy. The syntax rules are every config file's (package
// yamlfile).
func ParsePolicy(data []byte) (*Policy, error) {
	var doc struct {
		Environments map[string]*yamlRule `yaml:"environments"`
	}
	if err := yamlfile.Decode(PolicyFile, data, &doc, yamlfile.Options{}); err != nil && !errors.Is(err, yamlfile.ErrEmpty) {
		return nil, err
	}
	p := DefaultPolicy()
	names := make([]string, 0, len(doc.Environments))
	for name := range doc.Environments {
		names = append(names, name)
	}
	sort.Strings(names)
	for _, name := range names {
		y := doc.Environments[name]
		if !envName.MatchString(name) {
			return nil, fmt.Errorf("%s: environment %q: names are lower-case letters, digits and dashes", PolicyFile, name)
		}
		if y == nil {
			y = &yamlRule{}
		}
		r := &Rule{Name: name, Refs: y.Refs, Signers: y.Signers, UserVerification: y.UserVerification, Quorum: 1}
		if len(r.Refs) == 0 {
			r.Refs = []string{"refs/heads/" + name}
		}
		for _, ref := range r.Refs {
			if _, err := path.Match(ref, ref); err != nil || !strings.HasPrefix(ref, "refs/") || strings.ContainsAny(ref, " \t\n") {
				return nil, fmt.Errorf("%s: environment %s: ref %q must be a full ref name or pattern like refs/heads/%s", PolicyFile, name, ref, name)
			}
		}
		switch r.Signers {
		case "":
			r.Signers = SignersAdmins
		case SignersAdmins, SignersDevelopers:
		default:
			return nil, fmt.Errorf("%s: environment %s: signers is %q: use admins or developers", PolicyFile, name, r.Signers)
		}
		r.Hardware = name == Production
		if y.Hardware != nil {
			r.Hardware = *y.Hardware
		}
		if y.Quorum != nil {
			if *y.Quorum < 1 || *y.Quorum > 100 {
				return nil, fmt.Errorf("%s: environment %s: quorum %d: use a number from 1 to 100", PolicyFile, name, *y.Quorum)
			}
			r.Quorum = *y.Quorum
		}
		if name == Production {
			if !r.Hardware {
				return nil, fmt.Errorf("%s: production must keep hardware: true (all production changes are signed by admins' hardware keys)", PolicyFile)
			}
			if r.Signers != SignersAdmins {
				return nil, fmt.Errorf("%s: production signers must be admins", PolicyFile)
			}
		}
		p.Environments[name] = r
	}
	return p, nil
}

// Rule returns the rule of env, or nil when env is not protected.
func (p *Policy) Rule(env string) *Rule { return p.Environments[env] }

// Names lists the protected environments, sorted.
func (p *Policy) Names() []string {
	var out []string
	for n := range p.Environments {
		out = append(out, n)
	}
	sort.Strings(out)
	return out
}

// Protects returns the environments whose refs match ref.
func (p *Policy) Protects(ref string) []string {
	var out []string
	for _, name := range p.Names() {
		for _, pat := range p.Environments[name].Refs {
			if ok, _ := path.Match(pat, ref); ok {
				out = append(out, name)
				break
			}
		}
	}
	return out
}
