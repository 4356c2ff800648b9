package policy

import (
	"strings"
	"testing"
)

// TestSetTrustRoot writes trust roots where ConfiguredRoot reads them, in a
// bare repository and in a clone.
func TestSetTrustRoot(t *testing.T) {
	ctx := ctxT(t)
	r := newTestRepo(t)
	c := r.commit(commitOpts{files: trustTree("x", "", ""), msg: "root"})
	run(t, r.dir, nil, "git", "update-ref", "refs/heads/main", c)
	bare := t.TempDir()
	run(t, bare, nil, "git", "init", "-q", "--bare")
	key := "SHA256:" + strings.Repeat("A", 43)
	for _, tc := range []struct {
		dir  string
		in   TrustRoot
		want TrustRoot
	}{
		{r.dir, TrustRoot{Commit: "main", Key: key}, TrustRoot{Commit: c, Key: key}},
		{r.dir, TrustRoot{Commit: strings.ToUpper(c)}, TrustRoot{Commit: c}}, // unpins the key
		{bare, TrustRoot{Commit: strings.Repeat("AB", 20)}, TrustRoot{Commit: strings.Repeat("ab", 20)}},
		{bare, TrustRoot{Commit: strings.Repeat("cd", 32), Key: key}, TrustRoot{Commit: strings.Repeat("cd", 32), Key: key}},
	} {
		got, err := SetTrustRoot(ctx, tc.dir, tc.in)
		if err != nil || got != tc.want {
			t.Errorf("SetTrustRoot(%+v) = %+v, %v; want %+v", tc.in, got, err, tc.want)
		}
		if read, err := ConfiguredRoot(ctx, tc.dir); err != nil || read != tc.want {
			t.Errorf("after SetTrustRoot(%+v): ConfiguredRoot = %+v, %v; want %+v", tc.in, read, err, tc.want)
		}
	}
	if got := run(t, bare, nil, "git", "config", "--get", RootConfig); got != strings.Repeat("cd", 32) {
		t.Errorf("git config %s = %q", RootConfig, got)
	}
	for _, tc := range []struct {
		in   TrustRoot
		want string
	}{
		{TrustRoot{Commit: "nope"}, `trust root "nope": not a full commit id`},
		{TrustRoot{Commit: "0123"}, "not a full commit id"},
		{TrustRoot{Commit: c, Key: "MD5:aa"}, "want a SHA256:... fingerprint"},
		{TrustRoot{Commit: c, Key: "SHA256:short"}, "not a SHA256 fingerprint"},
	} {
		_, err := SetTrustRoot(ctx, bare, tc.in)
		if err == nil || !strings.Contains(err.Error(), tc.want) || strings.Contains(err.Error(), "\n") {
			t.Errorf("SetTrustRoot(%+v) = %v, want one line with %q", tc.in, err, tc.want)
		}
	}
	if read, _ := ConfiguredRoot(ctx, bare); read.Commit != strings.Repeat("cd", 32) || read.Key != key {
		t.Errorf("a refused trust root was written: %+v", read)
	}
}

func FuzzCheckFingerprint(f *testing.F) {
	for _, s := range []string{"SHA256:" + strings.Repeat("A", 43), "SHA256:", "MD5:aa", "", "SHA256:" + strings.Repeat("/", 44)} {
		f.Add(s)
	}
	f.Fuzz(func(t *testing.T, s string) {
		err := checkFingerprint(s)
		if err == nil && (!strings.HasPrefix(s, "SHA256:") || len(s) != 7+43) {
			t.Errorf("accepted %q", s)
		}
		if err != nil && strings.Contains(err.Error(), "\n") {
			t.Errorf("multi-line error for %q", s)
		}
	})
}
