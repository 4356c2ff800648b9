package policy

import (
	"os"
	"path/filepath"
	"reflect"
	"strings"
	"testing"
)

func TestParsePolicy(t *testing.T) {
	p, err := ParsePolicy([]byte(`
environments:
  production:
    refs: [refs/heads/production, refs/tags/v*]
    quorum: 2
    user-verification: true
  staging:
    signers: developers
  next: {}
`))
	if err != nil {
		t.Fatal(err)
	}
	want := map[string]*Rule{
		"production": {Name: "production", Refs: []string{"refs/heads/production", "refs/tags/v*"}, Signers: "admins", Hardware: true, UserVerification: true, Quorum: 2},
		"staging":    {Name: "staging", Refs: []string{"refs/heads/staging"}, Signers: "developers", Quorum: 1},
		"next":       {Name: "next", Refs: []string{"refs/heads/next"}, Signers: "admins", Quorum: 1},
	}
	if !reflect.DeepEqual(p.Environments, want) {
		for k, v := range p.Environments {
			t.Errorf("%s: %+v", k, v)
		}
	}
	if got := p.Protects("refs/tags/v1.2"); !reflect.DeepEqual(got, []string{"production"}) {
		t.Errorf("Protects(tag) = %v", got)
	}
	if got := p.Protects("refs/heads/main"); got != nil {
		t.Errorf("Protects(main) = %v", got)
	}
	for _, in := range []string{"", "# nothing\n", "environments: {}\n"} {
		p, err := ParsePolicy([]byte(in))
		if err != nil {
			t.Fatal(err)
		}
		if !reflect.DeepEqual(p, DefaultPolicy()) {
			t.Errorf("%q: not the default policy", in)
		}
	}
}

func TestParsePolicyErrors(t *testing.T) {
	tests := []struct{ in, want string }{
		{"environments: [a]", "environments is a list, not a mapping"},
		{"environmentz: {}", `unknown key "environmentz"`},
		{"environments: {production: {hardware: false}}", "hardware: true"},
		{"environments: {production: {signers: developers}}", "must be admins"},
		{"environments: {staging: {signers: everyone}}", "use admins or developers"},
		{"environments: {staging: {quorum: 0}}", "quorum 0"},
		{"environments: {Staging: {}}", "lower-case"},
		{"environments: {staging: {refs: [main]}}", "full ref name"},
		{"environments: {staging: {refs: ['refs/heads/[']}}", "full ref name"},
		{"environments: {staging: {typo: 1}}", `unknown key "typo"`},
		{"environments:\n  staging: {quorum: 1}\nenvironments:\n  next: {}\n", `config/policy.yaml:3: duplicate key "environments" in the top level (first at line 1)`},
		{"environments:\n  staging:\n    quorum: 1\n    signers: developers\n    quorum: 2\n", `config/policy.yaml:5: duplicate key "quorum" in environments.staging (first at line 3)`},
	}
	for _, tt := range tests {
		_, err := ParsePolicy([]byte(tt.in))
		if err == nil || !strings.Contains(err.Error(), tt.want) {
			t.Errorf("%q: got %v, want %q", tt.in, err, tt.want)
		}
	}
}

func FuzzParsePolicy(f *testing.F) {
	f.Add([]byte("environments:\n  production:\n    quorum: 2\n  staging:\n    signers: developers\n    refs: [refs/heads/st*]\n"))
	f.Add([]byte("environments: {x: null}"))
	f.Fuzz(func(t *testing.T, in []byte) {
		p, err := ParsePolicy(in)
		if err != nil {
			return
		}
		prod := p.Rule(Production)
		if prod == nil || !prod.Hardware || prod.Signers != SignersAdmins || prod.Quorum < 1 {
			t.Fatalf("production weakened: %+v", prod)
		}
		for _, r := range p.Environments {
			if r.Quorum < 1 || len(r.Refs) == 0 {
				t.Fatalf("bad rule %+v", r)
			}
			_ = p.Protects(r.Refs[0])
		}
	})
}

// TestRepoConfig checks the trust files this repository ships parse.
func TestRepoConfig(t *testing.T) {
	for _, f := range []string{AdminsFile, DevelopersFile} {
		data, err := os.ReadFile(filepath.Join("..", "..", f))
		if err != nil {
			t.Fatal(err)
		}
		if _, err := ParseSigners(f, data); err != nil {
			t.Error(err)
		}
	}
	data, err := os.ReadFile(filepath.Join("..", "..", PolicyFile))
	if err != nil {
		t.Fatal(err)
	}
	p, err := ParsePolicy(data)
	if err != nil {
		t.Fatal(err)
	}
	if got := p.Names(); strings.Join(got, " ") != "next production staging" {
		t.Errorf("environments %v", got)
	}
	if r := p.Rule("staging"); r.Signers != SignersDevelopers || r.Hardware {
		t.Errorf("staging %+v", r)
	}
}
