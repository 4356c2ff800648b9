package policy

import (
	"bytes"
	"strings"
	"testing"
)

const (
	tree1 = "4b825dc642cb6eb9a060e54bf8d69288fbee4904"
	par1  = "1111111111111111111111111111111111111111"
	par2  = "2222222222222222222222222222222222222222"
)

func TestParseCommit(t *testing.T) {
	payload := "tree " + tree1 + "\nparent " + par1 + "\nparent " + par2 + "\n" +
		"author A U Thor <a@example.org> 1700000000 +0100\n" +
		"committer C O Mitter <c@example.org> 1700000060 -0230\n" +
		"mergetag object " + par2 + "\n type commit\n tag v1\n\n" + // continuation lines stay
		"\nSubject line\n\nBody\n"
	sig := "gpgsig -----BEGIN SSH SIGNATURE-----\n AAAA\n -----END SSH SIGNATURE-----\n"
	other := "gpgsig-sha256 -----BEGIN SSH SIGNATURE-----\n BBBB\n -----END SSH SIGNATURE-----\n"
	i := strings.Index(payload, "mergetag")
	raw := payload[:i] + sig + other + payload[i:]
	c, err := ParseCommit("id", []byte(raw), 40)
	if err != nil {
		t.Fatal(err)
	}
	if string(c.Payload) != payload {
		t.Errorf("payload:\n%q\nwant\n%q", c.Payload, payload)
	}
	if want := "-----BEGIN SSH SIGNATURE-----\nAAAA\n-----END SSH SIGNATURE-----\n"; string(c.Signature) != want {
		t.Errorf("signature %q", c.Signature)
	}
	if c.Tree != tree1 || len(c.Parents) != 2 || c.Parents[1] != par2 || c.Subject() != "Subject line" {
		t.Errorf("%+v", c)
	}
	if c.Time.Unix() != 1700000060 {
		t.Errorf("time %v", c.Time)
	}
	if _, off := c.Time.Zone(); off != -(2*3600 + 30*60) {
		t.Errorf("zone offset %d", off)
	}
	// In a SHA-256 repository the other header is the signature.
	tree256 := strings.Repeat("a", 64)
	raw256 := "tree " + tree256 + "\nauthor A <a> 1 +0000\ncommitter A <a> 1 +0000\n" + sig + other + "\nm\n"
	c, err = ParseCommit("id", []byte(raw256), 64)
	if err != nil {
		t.Fatal(err)
	}
	if !bytes.Contains(c.Signature, []byte("BBBB")) || bytes.Contains(c.Payload, []byte("gpgsig")) {
		t.Errorf("sha256: signature %q payload %q", c.Signature, c.Payload)
	}
}

func TestParseCommitUnsigned(t *testing.T) {
	raw := "tree " + tree1 + "\nauthor A <a> 1 +0000\ncommitter A <a> 1 +0000\n\nmsg"
	c, err := ParseCommit("id", []byte(raw), 40)
	if err != nil {
		t.Fatal(err)
	}
	if c.Signature != nil || string(c.Payload) != raw || c.Message != "msg" {
		t.Errorf("%+v", c)
	}
}

func TestParseCommitErrors(t *testing.T) {
	a := "author A <a> 1 +0000\n"
	cm := "committer A <a> 1 +0000\n"
	sig := "gpgsig x\n y\n"
	tests := []struct{ in, want string }{
		{"", "lacks tree"},
		{"tree xyz\n" + a + cm, "bad tree"},
		{"parent " + par1 + "\ntree " + tree1 + "\n" + a + cm, "bad parent"},
		{"tree " + tree1 + "\n" + a + "parent " + par1 + "\n" + cm, "bad parent"},
		{"tree " + tree1 + "\n" + cm, "misplaced committer"},
		{"tree " + tree1 + "\n" + a + a + cm, "misplaced author"},
		{"tree " + tree1 + "\n" + a + "committer A <a> x +0000\n", "bad timestamp"},
		{"tree " + tree1 + "\n" + a + "committer A <a> 1 0000\n", "bad zone"},
		{"tree " + tree1 + "\n" + a + "committer A 1 +0000\n", "no <email>"},
		{"tree " + tree1 + "\nencoding x\n" + a + cm, "before committer"},
		{"tree " + tree1 + "\n" + a + cm + sig + sig, "more than one signature"},
	}
	for _, tt := range tests {
		_, err := ParseCommit("id", []byte(tt.in), 40)
		if err == nil || !strings.Contains(err.Error(), tt.want) {
			t.Errorf("%q: got %v, want %q", tt.in, err, tt.want)
		}
	}
}

func FuzzParseCommit(f *testing.F) {
	f.Add([]byte("tree "+tree1+"\nparent "+par1+"\nauthor A <a> 1 +0000\ncommitter A <a> 1 +0000\ngpgsig -----BEGIN SSH SIGNATURE-----\n AAAA\n -----END SSH SIGNATURE-----\n\nmsg\n"), 40)
	f.Add([]byte("tree "+tree1+"\nauthor A <a> 1 +0000\ncommitter A <a> 1 +0000\ngpgsig-sha256 x\n y\nencoding UTF-8\n\n"), 40)
	f.Add([]byte("tree "+strings.Repeat("b", 64)+"\nauthor A <a> 1 +0000\ncommitter A <a> 1 +0000\ngpgsig-sha256 x\n\nm"), 64)
	f.Fuzz(func(t *testing.T, raw []byte, hexLen int) {
		if hexLen != 64 {
			hexLen = 40
		}
		c, err := ParseCommit("id", raw, hexLen)
		if err != nil {
			return
		}
		if len(c.Payload) > len(raw) {
			t.Fatal("payload longer than the object")
		}
		// Removing the signature again changes nothing: the payload
		// carries no signature header of this repository's hash.
		again, err := ParseCommit("id", c.Payload, hexLen)
		if err != nil {
			t.Fatalf("payload does not parse: %v", err)
		}
		if again.Signature != nil || !bytes.Equal(again.Payload, c.Payload) {
			t.Fatal("payload still holds a signature")
		}
		_ = c.Subject()
	})
}
