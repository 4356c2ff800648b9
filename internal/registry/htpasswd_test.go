package registry

import (
	"reflect"
	"strings"
	"testing"

	"golang.org/x/crypto/bcrypt"
)

// A bcrypt hash (cost 4) of "secret".
const testHash = "$2a$04$REd9zqidnLnT77x.P53u/uv55PLuYRXwp/tVmLguwFt3p1ZrdKLEq"

func TestParseHtpasswd(t *testing.T) {
	if err := bcrypt.CompareHashAndPassword([]byte(testHash), []byte("secret")); err != nil {
		t.Fatalf("test hash: %v", err)
	}
	for _, tc := range []struct {
		in    string
		users []string
		err   string
	}{
		{in: "alice:" + testHash + "\n", users: []string{"alice"}},
		{in: "# admins\n\n  alice:" + testHash + "  \r\nbob:" + testHash, users: []string{"alice", "bob"}},
		{in: "", err: "no users"},
		{in: "# only a comment\n", err: "no users"},
		{in: "alice\n", err: "line 1: not USER:HASH"},
		{in: ":" + testHash, err: "empty user name"},
		{in: "al ice:" + testHash, err: "white space"},
		{in: "alice:plaintext", err: "not bcrypt"},
		{in: "alice:{SHA}W6ph5Mm5Pz8GgiULbPgzG37mj9g=", err: "not bcrypt"},
		{in: "alice:$apr1$abcdefgh$0123456789abcdefghijkl", err: "not bcrypt"},
		{in: "alice:$2y$04$short", err: "not bcrypt"},
		{in: "alice:" + testHash + "\nalice:" + testHash, err: "already appears on line 1"},
		{in: "alice:" + strings.Repeat("x", 70000), err: "too long"},
	} {
		users, err := ParseHtpasswd(strings.NewReader(tc.in))
		if tc.err != "" {
			if err == nil || !strings.Contains(err.Error(), tc.err) {
				t.Errorf("ParseHtpasswd(%.40q) = %v, want error %q", tc.in, err, tc.err)
			}
			if err != nil && strings.Contains(err.Error(), "$2a$") {
				t.Errorf("error quotes a hash: %v", err)
			}
			continue
		}
		if err != nil || !reflect.DeepEqual(users, tc.users) {
			t.Errorf("ParseHtpasswd(%.40q) = %v, %v; want %v", tc.in, users, err, tc.users)
		}
	}
}

func TestHtpasswdLine(t *testing.T) {
	line, err := HtpasswdLine("alice", "pw")
	if err != nil {
		t.Fatal(err)
	}
	users, err := ParseHtpasswd(strings.NewReader(line))
	if err != nil || len(users) != 1 || users[0] != "alice" {
		t.Fatalf("ParseHtpasswd(HtpasswdLine) = %v, %v", users, err)
	}
	_, hash, _ := strings.Cut(line, ":")
	if bcrypt.CompareHashAndPassword([]byte(hash), []byte("pw")) != nil {
		t.Errorf("hash does not match the password")
	}
	for _, bad := range []string{"", "a:b", "a b", "#a"} {
		if _, err := HtpasswdLine(bad, "pw"); err == nil {
			t.Errorf("HtpasswdLine(%q) succeeded", bad)
		}
	}
}

func FuzzParseHtpasswd(f *testing.F) {
	f.Add("alice:" + testHash + "\n")
	f.Add("# c\n\nalice:" + testHash + "\nbob:" + testHash + "\n")
	f.Add("alice:$2y$04$short")
	f.Add("alice\n")
	f.Add(":x")
	f.Add("alice:" + testHash + "\nalice:" + testHash)
	f.Fuzz(func(t *testing.T, in string) {
		users, err := ParseHtpasswd(strings.NewReader(in))
		if err != nil {
			if strings.Contains(err.Error(), "\n") {
				t.Errorf("multi-line error: %q", err)
			}
			return
		}
		if len(users) == 0 {
			t.Fatal("accepted a file without users")
		}
		seen := map[string]bool{}
		for _, u := range users {
			if u == "" || strings.ContainsAny(u, ": \t\n") || seen[u] {
				t.Errorf("accepted bad or repeated user %q", u)
			}
			seen[u] = true
		}
	})
}
