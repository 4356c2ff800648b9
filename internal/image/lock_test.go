package image

import (
	"strings"
	"testing"

	"github.com/opencontainers/go-digest"
)

func TestLockRoundTrip(t *testing.T) {
	l := Lock{"health": digest.Digest("sha256:" + strings.Repeat("a", 64)), "base": digest.Digest("sha256:" + strings.Repeat("b", 64))}
	dir := t.TempDir()
	if err := l.Write(dir); err != nil {
		t.Fatal(err)
	}
	got, err := ReadLock(dir)
	if err != nil {
		t.Fatal(err)
	}
	if len(got) != 2 || got["health"] != l["health"] || got["base"] != l["base"] {
		t.Errorf("read back %v", got)
	}
	if b := string(l.Bytes()); strings.Index(b, "base ") > strings.Index(b, "health ") {
		t.Errorf("lock not sorted:\n%s", b)
	}
}

func TestParseLockErrors(t *testing.T) {
	for _, tt := range []struct{ in, want string }{
		{"health\n", "f:1: want `NAME sha256:DIGEST`"},
		{"health sha256:abc\n", "f:1: \"sha256:abc\" is not a sha256 digest"},
		{"Health sha256:" + strings.Repeat("a", 64) + "\n", "not an image name"},
		{"# c\nh sha256:" + strings.Repeat("a", 64) + "\nh sha256:" + strings.Repeat("a", 64) + "\n", "f:3: image h listed twice"},
	} {
		if _, err := ParseLock("f", []byte(tt.in)); err == nil || !strings.Contains(err.Error(), tt.want) {
			t.Errorf("ParseLock(%q) = %v, want %q", tt.in, err, tt.want)
		}
	}
}

func FuzzParseLock(f *testing.F) {
	f.Add([]byte(lockHeader + "health sha256:" + strings.Repeat("a", 64) + "\n"))
	f.Add([]byte("x y z\n"))
	f.Fuzz(func(t *testing.T, data []byte) {
		l, err := ParseLock("f", data)
		if err != nil {
			return
		}
		again, err := ParseLock("f", l.Bytes())
		if err != nil || len(again) != len(l) {
			t.Fatalf("round trip: %v %v", again, err)
		}
		for n, d := range l {
			if again[n] != d {
				t.Fatalf("%s: %s became %s", n, d, again[n])
			}
		}
	})
}
