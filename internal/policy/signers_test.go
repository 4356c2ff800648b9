package policy

import (
	"strings"
	"testing"
	"time"
)

const edKey = "ssh-ed25519 AAAAC3NzaC1lZDI1NTE5AAAAIFWMSH7eLN6WKFMsayQVjIAlMpF2WV9tVC1bf6Zc3Ov/ comment"

func TestParseSigners(t *testing.T) {
	sk := newSKEd25519(t, "alice", FlagUserPresence).authorized()
	tests := []struct {
		name, in string
		check    func(t *testing.T, s *Signer)
	}{
		{"plain", "alice " + edKey, func(t *testing.T, s *Signer) {
			if s.Name() != "alice" || s.Namespaces != "" || s.Key.Type() != "ssh-ed25519" {
				t.Errorf("%+v", s)
			}
		}},
		{"principals", "alice@x,alice  \t" + edKey, func(t *testing.T, s *Signer) {
			if strings.Join(s.Principals, "|") != "alice@x|alice" {
				t.Errorf("principals %q", s.Principals)
			}
		}},
		{"quoted principal", `"alice smith" ` + edKey, func(t *testing.T, s *Signer) {
			if s.Name() != "alice smith" {
				t.Errorf("principal %q", s.Name())
			}
		}},
		{"options", `alice namespaces="git,stack-approve",valid-after="20240101",VALID-BEFORE="20300101123000Z",verify-required ` + sk, func(t *testing.T, s *Signer) {
			if s.Namespaces != "git,stack-approve" || !s.VerifyRequired || s.Key.Type() != "sk-ssh-ed25519@openssh.com" {
				t.Errorf("%+v", s)
			}
			if want := time.Date(2030, 1, 1, 12, 30, 0, 0, time.UTC); !s.ValidBefore.Equal(want) {
				t.Errorf("valid-before %v", s.ValidBefore)
			}
			if want := time.Date(2024, 1, 1, 0, 0, 0, 0, time.Local); !s.ValidAfter.Equal(want) {
				t.Errorf("valid-after %v", s.ValidAfter)
			}
		}},
		{"quoted comma", `alice namespaces="a,b" ` + edKey, func(t *testing.T, s *Signer) {
			if s.Namespaces != "a,b" {
				t.Errorf("namespaces %q", s.Namespaces)
			}
		}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			ss, err := ParseSigners("admins", []byte("# header\n\n   # indented comment\n"+tt.in+"\n"))
			if err != nil {
				t.Fatal(err)
			}
			if len(ss.List) != 1 || ss.List[0].Line != 4 {
				t.Fatalf("got %d lines", len(ss.List))
			}
			tt.check(t, ss.List[0])
		})
	}
}

func TestParseSignersErrors(t *testing.T) {
	tests := []struct{ in, want string }{
		{"alice", "missing key"},
		{"alice AAAA", "missing key after options"},
		{"alice ssh-ed25519", "missing key"},
		{"alice ssh-ed25519 !!!", "not valid base64"},
		{"alice ssh-rsa AAAAC3NzaC1lZDI1NTE5AAAAIFWMSH7eLN6WKFMsayQVjIAlMpF2WV9tVC1bf6Zc3Ov/", "holds a ssh-ed25519 key"},
		{"alice cert-authority " + edKey, "cert-authority is not supported"},
		{"alice no-touch-required " + edKey, "unsupported option"},
		{`alice namespaces=git ` + edKey, "double quotes"},
		{`alice namespaces="git ` + edKey, "unterminated quote"},
		{`alice namespaces="git",namespaces="x" ` + edKey, "given twice"},
		{`alice namespaces="" ` + edKey, "allows no namespace"},
		{`alice valid-after="2024" ` + edKey, "bad time"},
		{`alice valid-after="20241301" ` + edKey, "bad time"},
		{`alice valid-after="20250101",valid-before="20240101" ` + edKey, "not after"},
		{`alice namespaces="git", ` + edKey, "end with a comma"},
		{`alice namespaces="git"x ` + edKey, "expected a comma"},
		{`alice verify-required="yes" ` + edKey, "takes no value"},
		{`"alice ` + edKey, "unterminated quote"},
		{`ali"ce ` + edKey, "unexpected quote"},
		{`alice,,bob ` + edKey, "empty principal"},
		{"alice ssh-ed25519-cert-v01@openssh.com AAAA", "certificate keys"},
		{"alice ssh-dss AAAA", "DSA"},
		{"al\x01ice " + edKey, "control character"},
		{"\"al\tice\" " + edKey, "control character"},
		{"al\xffice " + edKey, "not valid UTF-8"},
		{strings.Repeat("a", 257) + " " + edKey, "longer than 256 bytes"},
	}
	for _, tt := range tests {
		t.Run(tt.want, func(t *testing.T) {
			_, err := ParseSigners("config/admins", []byte("# x\n"+tt.in+"\n"))
			if err == nil || !strings.Contains(err.Error(), tt.want) || !strings.HasPrefix(err.Error(), "config/admins:2: ") {
				t.Errorf("%q: got %v, want config/admins:2: ...%s", tt.in, err, tt.want)
			}
		})
	}
}

func TestParseSignersTooBig(t *testing.T) {
	data := []byte(strings.Repeat("# padding\n", MaxSignersSize/10+1))
	if _, err := ParseSigners("config/admins", data); err == nil || !strings.HasPrefix(err.Error(), "config/admins: file is ") {
		t.Errorf("%d-byte file: %v", len(data), err)
	}
}

func TestSignerAllows(t *testing.T) {
	ss, err := ParseSigners("a", []byte(`alice namespaces="git,!file,stack-*",valid-after="20240101Z",valid-before="20250101Z" `+edKey))
	if err != nil {
		t.Fatal(err)
	}
	s := ss.List[0]
	in := time.Date(2024, 6, 1, 0, 0, 0, 0, time.UTC)
	tests := []struct {
		ns   string
		at   time.Time
		want string
	}{
		{"git", in, ""},
		{"stack-approve", in, ""},
		{"file", in, "limited to namespaces"},
		{"other", in, "limited to namespaces"},
		{"git", time.Date(2023, 12, 31, 0, 0, 0, 0, time.UTC), "not valid before"},
		{"git", time.Date(2025, 1, 2, 0, 0, 0, 0, time.UTC), "expired"},
	}
	for _, tt := range tests {
		err := s.Allows(tt.ns, tt.at)
		if (err == nil) != (tt.want == "") || err != nil && !strings.Contains(err.Error(), tt.want) {
			t.Errorf("Allows(%s, %v) = %v, want %q", tt.ns, tt.at, err, tt.want)
		}
	}
}

func TestMatchPattern(t *testing.T) {
	tests := []struct {
		s, p string
		want bool
	}{
		{"git", "git", true}, {"git", "g?t", true}, {"git", "*", true}, {"git", "g*", true},
		{"git", "*t", true}, {"git", "gi", false}, {"", "*", true}, {"", "?", false},
		{"stack-approve", "stack-*e", true}, {"aaab", "*a*a*a*c", false}, {"abc", "a**c", true},
	}
	for _, tt := range tests {
		if got := matchPattern(tt.s, tt.p); got != tt.want {
			t.Errorf("matchPattern(%q, %q) = %v", tt.s, tt.p, got)
		}
	}
}

func FuzzParseSigners(f *testing.F) {
	f.Add([]byte("alice " + edKey + "\n"))
	f.Add([]byte(`# c` + "\n" + `"a b",c namespaces="git",valid-after="20240101Z",verify-required ` + edKey))
	f.Add([]byte(`alice namespaces="g\"it" ` + edKey))
	f.Add([]byte("x y z\n\n#"))
	f.Fuzz(func(t *testing.T, in []byte) {
		ss, err := ParseSigners("f", in)
		if err != nil {
			if !strings.HasPrefix(err.Error(), "f:") || strings.Contains(err.Error(), "\n") {
				t.Fatalf("error not of the form file:line: msg: %q", err)
			}
			return
		}
		for _, s := range ss.List {
			if s.Key == nil || len(s.Principals) == 0 {
				t.Fatalf("incomplete signer %+v", s)
			}
			_ = s.Allows("git", time.Unix(0, 0))
			if got := ss.Lookup(s.Key); len(got) == 0 {
				t.Fatal("Lookup misses a listed key")
			}
		}
	})
}
