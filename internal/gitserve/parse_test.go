package gitserve

import (
	"bytes"
	"context"
	"errors"
	"io"
	"io/fs"
	"os"
	"os/exec"
	"path/filepath"
	"reflect"
	"strings"
	"testing"
	"time"

	"go.yaml.in/yaml/v3"
	"golang.org/x/crypto/ssh"
)

func TestParseCommand(t *testing.T) {
	for _, tc := range []struct {
		line    string
		want    Command
		wantErr string
	}{
		{line: "git-upload-pack '/stack.git'", want: Command{Service: UploadPack, Repo: "stack"}},
		{line: "git-receive-pack '/stack.git'", want: Command{Service: ReceivePack, Repo: "stack"}},
		{line: "git-upload-archive '/stack.git'", want: Command{Service: UploadArchive, Repo: "stack"}},
		{line: "git-upload-pack 'stack'", want: Command{Service: UploadPack, Repo: "stack"}},
		{line: "git-upload-pack '/stack'", want: Command{Service: UploadPack, Repo: "stack"}},
		{line: "git-upload-pack stack.git", want: Command{Service: UploadPack, Repo: "stack"}},
		{line: "git upload-pack '/infra/dns.git'", want: Command{Service: UploadPack, Repo: "infra/dns"}},
		{line: "git-upload-pack  'a'\\''b'", wantErr: "invalid repository path \"a'b\""},
		{line: "git-upload-pack 'my-repo'", want: Command{Service: UploadPack, Repo: "my-repo"}},
		{line: "git-upload-pack 'my'-'repo'", want: Command{Service: UploadPack, Repo: "my-repo"}},
		{line: "", wantErr: "no command"},
		{line: "sh", wantErr: `command "sh" is not allowed`},
		{line: "git-upload-pack", wantErr: "needs a repository argument"},
		{line: "git-upload-pack ", wantErr: "empty repository argument"},
		{line: "git-shell -c 'git-upload-pack x'", wantErr: "not allowed"},
		{line: "git upload-pack", wantErr: "needs a repository argument"},
		{line: "git status 'x'", wantErr: `command "git-status" is not allowed`},
		{line: "git-upload-pack ../../etc", wantErr: "invalid repository path"},
		{line: "git-upload-pack '/etc/../stack'", wantErr: "invalid repository path"},
		{line: "git-upload-pack '//stack'", wantErr: "invalid repository path"},
		{line: "git-upload-pack '~/stack'", wantErr: "invalid repository path"},
		{line: "git-upload-pack '/a/b/c'", wantErr: "invalid repository path"},
		{line: "git-upload-pack '/Stack'", wantErr: "invalid repository path"},
		{line: "git-upload-pack 'stack", wantErr: "unterminated quote"},
		{line: "git-upload-pack stack\\", wantErr: "trailing backslash"},
		{line: "git-upload-pack 'a' 'b'", wantErr: "more than one argument"},
		{line: "git-upload-pack $(id)", wantErr: "needs quoting"},
		{line: "git-upload-pack 'stack'\n", wantErr: "control character"},
		{line: "git-upload-pack 'sta\x00ck'", wantErr: "control character"},
		{line: "git-upload-pack '" + strings.Repeat("a", 5000) + "'", wantErr: "longer than 4096"},
		{line: "git-lfs-transfer '/stack.git' upload", want: Command{Service: LFSTransfer, Repo: "stack", Op: "upload"}},
		{line: "git-lfs-transfer stack download", want: Command{Service: LFSTransfer, Repo: "stack", Op: "download"}},
		{line: "git-lfs-transfer '/stack.git'", wantErr: "needs a repository and an operation"},
		{line: "git-lfs-transfer '/stack.git' delete", wantErr: `operation "delete" is neither upload nor download`},
		{line: "git-lfs-transfer '../x' upload", wantErr: "invalid repository path"},
		{line: "git-lfs-transfer 'a' 'b' upload", wantErr: "more than one argument"},
	} {
		got, err := ParseCommand(tc.line)
		if tc.wantErr != "" {
			if err == nil || !strings.Contains(err.Error(), tc.wantErr) {
				t.Errorf("ParseCommand(%q) = %+v, %v; want error with %q", tc.line, got, err, tc.wantErr)
			}
			continue
		}
		if err != nil || got != tc.want {
			t.Errorf("ParseCommand(%q) = %+v, %v; want %+v", tc.line, got, err, tc.want)
		}
	}
}

func FuzzParseCommand(f *testing.F) {
	for _, s := range []string{"git-upload-pack '/stack.git'", "git receive-pack 'a/b'", "git-upload-archive x", "sh", "git-upload-pack 'a'\\''b'", "git-upload-pack ../x", "", "git-lfs-transfer 'x.git' upload"} {
		f.Add(s)
	}
	f.Fuzz(func(t *testing.T, line string) {
		c, err := ParseCommand(line)
		if err != nil {
			if strings.Contains(err.Error(), "\n") {
				t.Errorf("error has a newline: %q", err)
			}
			return
		}
		switch {
		case c.Service == LFSTransfer && (c.Op == "upload" || c.Op == "download"):
		case c.Op == "" && (c.Service == UploadPack || c.Service == ReceivePack || c.Service == UploadArchive):
		default:
			t.Fatalf("command %+v accepted", c)
		}
		if err := ValidName(c.Repo); err != nil {
			t.Fatalf("repo %q accepted: %v", c.Repo, err)
		}
		if strings.Contains(c.Repo, "..") || strings.HasPrefix(c.Repo, "/") {
			t.Fatalf("repo %q escapes", c.Repo)
		}
	})
}

func TestValidName(t *testing.T) {
	for name, ok := range map[string]bool{
		"stack": true, "a": true, "0day": true, "my-repo_1.x": true, "infra/dns": true,
		"": false, "Stack": false, "-x": false, ".x": false, "_x": false, "a/b/c": false, "/a": false, "a/": false,
		"..": false, "a..b": false, "x.git": false, "x.lock": false, "a b": false, "é": false,
		strings.Repeat("a", 100): true, strings.Repeat("a", 101): false,
	} {
		if err := ValidName(name); (err == nil) != ok {
			t.Errorf("ValidName(%q) = %v, want ok=%v", name, err, ok)
		}
	}
}

const (
	keyA = "ssh-ed25519 AAAAC3NzaC1lZDI1NTE5AAAAIJZ8ZbD6j1n1e4v6Vx1DHfbcbkZC1fTQ9Nq2q2Nq3QfM"
	keyB = "sk-ssh-ed25519@openssh.com AAAAGnNrLXNzaC1lZDI1NTE5QG9wZW5zc2guY29tAAAAIBv7gbTi8CtF9XySzDUt8ZDwkUo/Cg6FaSdQDUQbPXD2AAAABHNzaDo="
)

func TestParseAccess(t *testing.T) {
	for _, tc := range []struct {
		in      string
		wantErr string
	}{
		{in: "repos:\n  \"*\":\n    read: [\"@developers\"]\n    write: [\"@admins\"]\n"},
		{in: "repos:\n  stack: {write: [alice@example.org]}\n  infra/*: {read: [\"@admins\"]}\n  infra/dns: {read: [bob]}\n"},
		{in: "", wantErr: "empty file"},
		{in: "# nothing\n", wantErr: "empty file"},
		{in: "repos: {}\n", wantErr: "no rules"},
		{in: "repo:\n  \"*\": {read: [\"@admins\"]}\n", wantErr: `unknown key "repo"`},
		{in: "repos:\n  \"*\": {reed: [\"@admins\"]}\n", wantErr: `unknown key "reed"`},
		{in: "repos:\n  \"*\":\n", wantErr: "empty rule"},
		{in: "repos:\n  \"*\": {read: []}\n", wantErr: "empty rule"},
		{in: "repos:\n  \"*\": {read: [\"@users\"]}\n", wantErr: `unknown group "@users"`},
		{in: "repos:\n  \"*\": {read: [\"a b\"]}\n", wantErr: "space"},
		{in: "repos:\n  \"*\": {read: [x, x]}\n", wantErr: "listed twice"},
		{in: "repos:\n  \"../x\": {read: [x]}\n", wantErr: `pattern "../x"`},
		{in: "repos:\n  \"a*\": {read: [x]}\n", wantErr: `pattern "a*"`},
		{in: "repos:\n  \"*/*\": {read: [x]}\n", wantErr: `pattern "*/*"`},
		{in: "repos:\n  stack: {read: [x]}\n  stack: {read: [y]}\n", wantErr: `duplicate key "stack"`},
		{in: "repos:\n  stack: {read: [x]}\n---\nrepos: {}\n", wantErr: "more than one YAML document"},
		{in: "repos: [1, 2]\n", wantErr: "repos is a list, not a mapping"},
		{in: "\t", wantErr: "found character"},
	} {
		_, err := ParseAccess([]byte(tc.in))
		if tc.wantErr == "" && err != nil {
			t.Errorf("ParseAccess(%q): %v", tc.in, err)
		}
		if tc.wantErr != "" && (err == nil || !strings.Contains(err.Error(), tc.wantErr)) {
			t.Errorf("ParseAccess(%q) = %v, want error with %q", tc.in, err, tc.wantErr)
		}
	}
}

func TestAllowed(t *testing.T) {
	a, err := ParseAccess([]byte(`repos:
  "*": {read: ["@developers", "@admins"], write: ["@admins"]}
  infra/*: {read: ["@admins"], write: [carol]}
  infra/public: {read: ["@developers"]}
  private: {write: [alice]}
`))
	if err != nil {
		t.Fatal(err)
	}
	admin := Identity{Principal: "alice", Principals: []string{"alice"}, Groups: []string{"admins"}}
	dev := Identity{Principal: "bob", Principals: []string{"bob"}, Groups: []string{"developers"}}
	carol := Identity{Principal: "carol", Principals: []string{"carol", "c"}, Groups: []string{"developers"}}
	nobody := Identity{Principal: "eve"}
	for _, tc := range []struct {
		id          Identity
		repo        string
		read, write bool
	}{
		{admin, "stack", true, true},
		{dev, "stack", true, false},
		{nobody, "stack", false, false},
		{admin, "infra/dns", true, false},
		{dev, "infra/dns", false, false},
		{carol, "infra/dns", true, true},
		{dev, "infra/public", true, false},
		{admin, "infra/public", false, false},
		{admin, "private", true, true},
		{dev, "private", false, false},
		{carol, "other/x", true, false},
	} {
		if got := a.Allowed(tc.id, tc.repo, false); got != tc.read {
			t.Errorf("%s read %s = %v, want %v", tc.id.Principal, tc.repo, got, tc.read)
		}
		if got := a.Allowed(tc.id, tc.repo, true); got != tc.write {
			t.Errorf("%s write %s = %v, want %v", tc.id.Principal, tc.repo, got, tc.write)
		}
	}
	closed := &Access{Repos: map[string]Rule{"stack": {Read: []string{"@admins"}}}}
	if closed.Allowed(admin, "other", false) {
		t.Error("a repository without a rule was readable")
	}
}

func FuzzParseAccess(f *testing.F) {
	for _, s := range []string{
		"repos:\n  \"*\": {read: [\"@developers\"], write: [\"@admins\"]}\n",
		"repos:\n  infra/*: {read: [x]}\n  a: {write: [y]}\n",
		"repos: {}\n", "a: &a [*a]\n", "",
	} {
		f.Add([]byte(s))
	}
	f.Fuzz(func(t *testing.T, data []byte) {
		a, err := ParseAccess(data)
		if err != nil {
			return
		}
		// What parsed round-trips through YAML to the same rules.
		out, err := yaml.Marshal(a)
		if err != nil {
			t.Fatal(err)
		}
		b, err := ParseAccess(out)
		if err != nil {
			t.Fatalf("re-parse of %q: %v", out, err)
		}
		if !reflect.DeepEqual(a, b) {
			t.Fatalf("round trip changed %+v to %+v", a, b)
		}
	})
}

func TestParseRefUpdates(t *testing.T) {
	z, a, b := strings.Repeat("0", 40), strings.Repeat("a", 40), strings.Repeat("b", 40)
	a256 := strings.Repeat("c", 64)
	for _, tc := range []struct {
		in      string
		want    []RefUpdate
		wantErr string
	}{
		{in: "", want: nil},
		{in: z + " " + a + " refs/heads/main\n", want: []RefUpdate{{z, a, "refs/heads/main"}}},
		{in: a + " " + b + " refs/heads/x\n" + b + " " + z + " refs/tags/v1", want: []RefUpdate{{a, b, "refs/heads/x"}, {b, z, "refs/tags/v1"}}},
		{in: strings.Repeat("0", 64) + " " + a256 + " refs/heads/main\n", want: []RefUpdate{{strings.Repeat("0", 64), a256, "refs/heads/main"}}},
		{in: z + " " + a + "\n", wantErr: "got 2 fields"},
		{in: z + " " + a + " refs/heads/a b\n", wantErr: "got 4 fields"},
		{in: z + " " + a256 + " refs/heads/main\n", wantErr: "not object ids"},
		{in: z + " " + strings.ToUpper(a) + " refs/heads/main\n", wantErr: "not object ids"},
		{in: z + " " + a + " main\n", wantErr: "not a full ref name"},
		{in: z + " " + a + " refs/heads/\x01\n", wantErr: "control character"},
	} {
		got, err := ParseRefUpdates(strings.NewReader(tc.in))
		if tc.wantErr != "" {
			if err == nil || !strings.Contains(err.Error(), tc.wantErr) {
				t.Errorf("ParseRefUpdates(%q) error = %v, want %q", tc.in, err, tc.wantErr)
			}
			continue
		}
		if err != nil || !reflect.DeepEqual(got, tc.want) {
			t.Errorf("ParseRefUpdates(%q) = %+v, %v; want %+v", tc.in, got, err, tc.want)
		}
	}
	u := RefUpdate{Old: z, New: a}
	if !u.Created() || u.Deleted() {
		t.Errorf("%+v: Created %v Deleted %v", u, u.Created(), u.Deleted())
	}
}

func FuzzParseRefUpdates(f *testing.F) {
	f.Add(strings.Repeat("0", 40) + " " + strings.Repeat("a", 40) + " refs/heads/main\n")
	f.Add("x y z\n")
	f.Fuzz(func(t *testing.T, in string) {
		updates, err := ParseRefUpdates(strings.NewReader(in))
		if err != nil {
			return
		}
		for _, u := range updates {
			if !objectID(u.Old) || !objectID(u.New) || strings.ContainsAny(u.Ref, " \n\x00") {
				t.Fatalf("bad update accepted: %+v", u)
			}
		}
	})
}

func TestRunHook(t *testing.T) {
	z, a := strings.Repeat("0", 40), strings.Repeat("a", 40)
	stdin := z + " " + a + " refs/heads/main\n"
	env := HookEnv{Repo: "stack", Pusher: "alice"}
	var got []RefUpdate
	var gotEnv HookEnv
	h := Hooks{
		PreReceive: func(ctx context.Context, e HookEnv, u []RefUpdate, stderr io.Writer) error {
			gotEnv, got = e, u
			if e.Pusher != "alice" {
				return errors.New("only alice\nmay push")
			}
			return nil
		},
		PostReceive: func(ctx context.Context, e HookEnv, u []RefUpdate, stderr io.Writer) {
			io.WriteString(stderr, "post\n")
		},
	}
	var stderr bytes.Buffer
	if err := runHook(context.Background(), "pre-receive", env, strings.NewReader(stdin), &stderr, h); err != nil {
		t.Fatalf("accepting pre-receive: %v", err)
	}
	if gotEnv != env || len(got) != 1 || got[0].New != a {
		t.Errorf("pre-receive got %+v %+v", gotEnv, got)
	}
	env.Pusher = "bob"
	err := runHook(context.Background(), "pre-receive", env, strings.NewReader(stdin), &stderr, h)
	if !errors.Is(err, ErrRejected) || stderr.String() != "only alice\nmay push\n" {
		t.Errorf("rejecting pre-receive: %v, stderr %q", err, stderr.String())
	}
	stderr.Reset()
	if err := runHook(context.Background(), "pre-receive", env, strings.NewReader("junk\n"), &stderr, h); !errors.Is(err, ErrRejected) || !strings.Contains(stderr.String(), "cannot read the pushed refs") {
		t.Errorf("pre-receive with bad input: %v, stderr %q", err, stderr.String())
	}
	stderr.Reset()
	if err := runHook(context.Background(), "post-receive", env, strings.NewReader(stdin), &stderr, h); err != nil || stderr.String() != "post\n" {
		t.Errorf("post-receive: %v, stderr %q", err, stderr.String())
	}
	if err := runHook(context.Background(), "update", env, strings.NewReader(stdin), &stderr, h); err == nil || !strings.Contains(err.Error(), `unknown hook "update"`) {
		t.Errorf("unknown hook: %v", err)
	}
	if err := runHook(context.Background(), "pre-receive", env, strings.NewReader(stdin), &stderr, Hooks{}); err != nil {
		t.Errorf("nil callbacks must accept: %v", err)
	}
}

func TestHookEnv(t *testing.T) {
	vars := map[string]string{"GIT_DIR": "/srv/git/infra/dns.git", EnvPusher: "alice", EnvData: "/srv", EnvConfig: "/c"}
	env, err := hookEnv(func(k string) string { return vars[k] })
	if err != nil {
		t.Fatal(err)
	}
	want := HookEnv{Repo: "dns", Path: "/srv/git/infra/dns.git", Pusher: "alice", DataDir: "/srv", ConfigDir: "/c"}
	if env != want {
		t.Errorf("hookEnv = %+v, want %+v", env, want)
	}
	vars[EnvRepo] = "infra/dns"
	if env, _ := hookEnv(func(k string) string { return vars[k] }); env.Repo != "infra/dns" {
		t.Errorf("Repo = %q", env.Repo)
	}
	if _, err := hookEnv(func(string) string { return "" }); err == nil || !strings.Contains(err.Error(), "GIT_DIR") {
		t.Errorf("no GIT_DIR: %v", err)
	}
}

func TestLoadHostKey(t *testing.T) {
	path := HostKeyPath(t.TempDir())
	k1, err := LoadHostKey(path)
	if err != nil {
		t.Fatal(err)
	}
	fi, err := os.Stat(path)
	if err != nil || fi.Mode().Perm() != 0o600 {
		t.Fatalf("host key mode: %v %v", fi.Mode(), err)
	}
	if k1.PublicKey().Type() != "ssh-ed25519" {
		t.Errorf("host key type %s", k1.PublicKey().Type())
	}
	k2, err := LoadHostKey(path)
	if err != nil || !bytes.Equal(k1.PublicKey().Marshal(), k2.PublicKey().Marshal()) {
		t.Fatalf("host key not kept: %v", err)
	}
	if pub, err := os.ReadFile(path + ".pub"); err != nil || !strings.HasPrefix(string(pub), "ssh-ed25519 ") {
		t.Errorf("public host key: %q %v", pub, err)
	}
	os.Chmod(path, 0o644)
	if _, err := LoadHostKey(path); err == nil || !strings.Contains(err.Error(), "chmod 600") {
		t.Errorf("readable host key: %v", err)
	}
	os.Chmod(path, 0o600)
	os.WriteFile(path, []byte("junk"), 0o600)
	if _, err := LoadHostKey(path); err == nil || !strings.Contains(err.Error(), "remove it") {
		t.Errorf("bad host key: %v", err)
	}
}

func TestCreateAndList(t *testing.T) {
	data := t.TempDir()
	if repos, err := List(data); err != nil || len(repos) != 0 {
		t.Fatalf("List of empty data dir = %v, %v", repos, err)
	}
	for _, name := range []string{"stack", "infra/dns.git", "a-b"} {
		if _, err := Create(data, name); err != nil {
			t.Fatalf("Create %s: %v", name, err)
		}
	}
	for _, tc := range []struct{ name, want string }{
		{"stack", "already exists"},
		{"stack.git", "already exists"},
		{"../x", "invalid repository name"},
		{"Bad", "invalid repository name"},
		{"a/b/c", "invalid repository name"},
	} {
		if _, err := Create(data, tc.name); err == nil || !strings.Contains(err.Error(), tc.want) {
			t.Errorf("Create(%q) = %v, want %q", tc.name, err, tc.want)
		}
	}
	os.Mkdir(filepath.Join(RepoRoot(data), "not-a-repo"), 0o755)
	os.Mkdir(filepath.Join(RepoRoot(data), ".new-123"), 0o755)
	os.Mkdir(filepath.Join(RepoRoot(data), "empty.git"), 0o755)                                   // a directory, not a repository
	os.MkdirAll(filepath.Join(RepoRoot(data), "infra", "half.git", "objects"), 0o755)             // no HEAD
	exec.Command("git", "init", "-q", "--bare", filepath.Join(RepoRoot(data), "Upper.git")).Run() // not a valid name
	paths, err := Paths(data)
	if err != nil {
		t.Fatal(err)
	}
	var pathNames []string
	for _, r := range paths {
		pathNames = append(pathNames, r.Name)
		if r.Branch != "" || r.Commit != "" || r.Path != filepath.Join(RepoRoot(data), filepath.FromSlash(r.Name)+".git") {
			t.Errorf("Paths: repo %+v", r)
		}
	}
	if want := []string{"a-b", "infra/dns", "stack"}; !reflect.DeepEqual(pathNames, want) {
		t.Errorf("Paths = %v, want %v", pathNames, want)
	}
	repos, err := List(data)
	if err != nil {
		t.Fatal(err)
	}
	var names []string
	for _, r := range repos {
		names = append(names, r.Name)
		if r.Branch != DefaultBranch || r.Commit != "" || !filepath.IsAbs(r.Path) {
			t.Errorf("repo %+v", r)
		}
	}
	if want := []string{"a-b", "infra/dns", "stack"}; !reflect.DeepEqual(names, want) {
		t.Errorf("List = %v, want %v", names, want)
	}
	exe, _ := os.Executable()
	hook, err := os.Readlink(filepath.Join(RepoRoot(data), "infra", "dns.git", "hooks", "pre-receive"))
	if err != nil || hook != exe {
		t.Errorf("pre-receive hook = %q, %v", hook, err)
	}
	if p, err := Resolve(data, "infra/dns"); err != nil || p != filepath.Join(RepoRoot(data), "infra", "dns.git") {
		t.Errorf("Resolve = %q, %v", p, err)
	}
	if _, err := Resolve(data, "nope"); err == nil || !strings.Contains(err.Error(), "stack repo create nope") || !errors.Is(err, fs.ErrNotExist) {
		t.Errorf("Resolve(nope) = %v", err)
	}
	for _, name := range []string{"empty", "infra/half"} {
		if _, err := Resolve(data, name); err == nil || !strings.Contains(err.Error(), "not a bare git repository") || errors.Is(err, fs.ErrNotExist) {
			t.Errorf("Resolve(%s) = %v", name, err)
		}
	}
}

func TestInstallHooks(t *testing.T) {
	dir := t.TempDir()
	hook := filepath.Join(dir, "hooks", "post-receive")
	// An older stack's script is replaced.
	os.MkdirAll(filepath.Dir(hook), 0o755)
	os.WriteFile(hook, []byte("#!/bin/sh\nexec /old/stack hook post-receive\n"), 0o755)
	if err := InstallHooks(dir, "/opt/it's/stack"); err != nil {
		t.Fatal(err)
	}
	if got, err := os.Readlink(hook); err != nil || got != "/opt/it's/stack" {
		t.Errorf("hook = %q, %v", got, err)
	}
	if err := InstallHooks(dir, "/usr/bin/stack"); err != nil {
		t.Fatal(err)
	}
	if got, err := os.Readlink(hook); err != nil || got != "/usr/bin/stack" {
		t.Errorf("hook not rewritten: %q, %v", got, err)
	}
	for _, tc := range []struct {
		args []string
		name string
	}{
		{[]string{"/data/git/x.git/hooks/pre-receive"}, "pre-receive"},
		{[]string{"hooks/post-receive"}, "post-receive"},
		{[]string{"/bin/stack", "hook", "pre-receive"}, "pre-receive"},
		{[]string{"/bin/stack", "serve"}, ""},
		{[]string{"/bin/stack"}, ""},
		{nil, ""},
	} {
		if name, ok := HookArgs(tc.args); name != tc.name || ok != (tc.name != "") {
			t.Errorf("HookArgs(%q) = %q %v, want %q", tc.args, name, ok, tc.name)
		}
	}
	if err := InstallHooks(dir, "stack"); err == nil {
		t.Error("relative executable accepted")
	}
	entries, _ := os.ReadDir(filepath.Join(dir, "hooks"))
	if len(entries) != 2 {
		t.Errorf("hooks dir has %d entries, want 2", len(entries))
	}
}

func TestLoadPolicy(t *testing.T) {
	dir := t.TempDir()
	p, err := LoadPolicy(dir)
	if err != nil || p.Keys() != 0 || !reflect.DeepEqual(p.Access, DefaultAccess()) {
		t.Fatalf("empty config dir: %+v, %v", p, err)
	}
	writeFile(t, filepath.Join(dir, "admins"), "alice "+keyA+"\n")
	writeFile(t, filepath.Join(dir, "developers"), "al,alice2 "+keyA+"\nbob "+keyB+"\n")
	p, err = LoadPolicy(dir)
	if err != nil {
		t.Fatal(err)
	}
	if p.Keys() != 2 {
		t.Errorf("keys = %d, want 2", p.Keys())
	}
	key, _, _, _, err := ssh.ParseAuthorizedKey([]byte(keyA))
	if err != nil {
		t.Fatal(err)
	}
	id, err := p.Identify(key, time.Now())
	want := Identity{Principal: "alice", Principals: []string{"alice", "al", "alice2"}, Groups: []string{"admins", "developers"}, Fingerprint: id.Fingerprint}
	if err != nil || !reflect.DeepEqual(id, want) || !strings.HasPrefix(id.Fingerprint, "SHA256:") {
		t.Errorf("Identify = %+v, %v; want %+v", id, err, want)
	}
	// A certificate authority does not log in: the policy refuses the
	// line, so the whole file is refused (see TestLoginAgreesWithPolicy).
	writeFile(t, filepath.Join(dir, "developers"), "al,alice2 "+keyA+"\nbob cert-authority "+keyB+"\n")
	if _, err := LoadPolicy(dir); err == nil || !strings.Contains(err.Error(), filepath.Join(dir, "developers")+":2: cert-authority is not supported") {
		t.Errorf("cert-authority line: %v", err)
	}
	writeFile(t, filepath.Join(dir, "developers"), "bob\n")
	if _, err := LoadPolicy(dir); err == nil || !strings.Contains(err.Error(), filepath.Join(dir, "developers")+":1: ") {
		t.Errorf("bad developers file: %v", err)
	}
	writeFile(t, filepath.Join(dir, "developers"), "")
	writeFile(t, filepath.Join(dir, AccessFile), "repos: {}\n")
	if _, err := LoadPolicy(dir); err == nil || !strings.Contains(err.Error(), AccessFile+": no rules") {
		t.Errorf("bad git.yaml: %v", err)
	}
}

// TestRepoConfig checks the stack repository's own config/git.yaml.
func TestRepoConfig(t *testing.T) {
	data, err := os.ReadFile("../../config/git.yaml")
	if err != nil {
		t.Fatal(err)
	}
	if _, err := ParseAccess(data); err != nil {
		t.Errorf("config/git.yaml: %v", err)
	}
}
