package policy

import (
	"bufio"
	"bytes"
	"context"
	"crypto/ecdsa"
	"crypto/ed25519"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/sha256"
	"encoding/binary"
	"fmt"
	"math/big"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"golang.org/x/crypto/ssh"
)

// TestMain lets the test binary act as a git pre-receive hook (see
// installHook), so push tests run the real git receive-pack, quarantine
// and "remote:" lines.
func TestMain(m *testing.M) {
	if os.Getenv("POLICY_TEST_HOOK") == "1" {
		os.Exit(testHook())
	}
	code := m.Run()
	cleanupBench()
	os.Exit(code)
}

func testHook() int {
	var updates []RefUpdate
	sc := bufio.NewScanner(os.Stdin)
	for sc.Scan() {
		f := strings.Fields(sc.Text())
		if len(f) == 3 {
			updates = append(updates, RefUpdate{Old: f[0], New: f[1], Ref: f[2]})
		}
	}
	v := &Verifier{Dir: ".", Root: TrustRoot{Commit: os.Getenv("POLICY_TEST_ROOT")}}
	rej, err := v.CheckPush(context.Background(), updates)
	if err != nil {
		fmt.Fprintln(os.Stderr, "policy:", err)
		return 1
	}
	for _, r := range rej {
		fmt.Fprintln(os.Stderr, r.String())
	}
	if len(rej) > 0 {
		return 1
	}
	return 0
}

// testKey is a signing key: FIDO keys are fabricated in software, software
// keys are made by ssh-keygen.
type testKey struct {
	name  string
	pub   ssh.PublicKey
	file  string // private key file (ssh-keygen keys only)
	sign  func(data []byte) *ssh.Signature
	flags byte
}

func (k *testKey) authorized() string {
	return strings.TrimSpace(string(ssh.MarshalAuthorizedKey(k.pub)))
}

const skApplication = "ssh:"

// skFabricate signs data as a FIDO authenticator would: over
// sha256(application) ‖ flags ‖ counter ‖ sha256(data).
func skMessage(flags byte, counter uint32, data []byte) []byte {
	app := sha256.Sum256([]byte(skApplication))
	d := sha256.Sum256(data)
	m := append([]byte{}, app[:]...)
	m = append(m, flags)
	m = binary.BigEndian.AppendUint32(m, counter)
	return append(m, d[:]...)
}

func newSKEd25519(t testing.TB, name string, flags byte) *testKey {
	pub, priv, err := ed25519.GenerateKey(rand.Reader)
	if err != nil {
		t.Fatal(err)
	}
	pk, err := ssh.ParsePublicKey(ssh.Marshal(struct {
		Name, Key, App string
	}{ssh.KeyAlgoSKED25519, string(pub), skApplication}))
	if err != nil {
		t.Fatal(err)
	}
	k := &testKey{name: name, pub: pk, flags: flags}
	var counter uint32
	k.sign = func(data []byte) *ssh.Signature {
		counter++
		return &ssh.Signature{
			Format: ssh.KeyAlgoSKED25519,
			Blob:   ed25519.Sign(priv, skMessage(k.flags, counter, data)),
			Rest:   ssh.Marshal(skFields{Flags: k.flags, Counter: counter}),
		}
	}
	return k
}

func newSKECDSA(t testing.TB, name string, flags byte) *testKey {
	priv, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	if err != nil {
		t.Fatal(err)
	}
	pk, err := ssh.ParsePublicKey(ssh.Marshal(struct {
		Name, Curve, Key, App string
	}{ssh.KeyAlgoSKECDSA256, "nistp256", string(elliptic.Marshal(elliptic.P256(), priv.X, priv.Y)), skApplication}))
	if err != nil {
		t.Fatal(err)
	}
	k := &testKey{name: name, pub: pk, flags: flags}
	var counter uint32
	k.sign = func(data []byte) *ssh.Signature {
		counter++
		d := sha256.Sum256(skMessage(k.flags, counter, data))
		r, s, err := ecdsa.Sign(rand.Reader, priv, d[:])
		if err != nil {
			t.Fatal(err)
		}
		return &ssh.Signature{
			Format: ssh.KeyAlgoSKECDSA256,
			Blob:   ssh.Marshal(struct{ R, S *big.Int }{r, s}),
			Rest:   ssh.Marshal(skFields{Flags: k.flags, Counter: counter}),
		}
	}
	return k
}

// newSoftKey makes an ordinary ed25519 key with ssh-keygen.
func newSoftKey(t testing.TB, dir, name string) *testKey {
	file := filepath.Join(dir, name)
	run(t, dir, nil, "ssh-keygen", "-q", "-t", "ed25519", "-N", "", "-C", name, "-f", file)
	data, err := os.ReadFile(file)
	if err != nil {
		t.Fatal(err)
	}
	signer, err := ssh.ParsePrivateKey(data)
	if err != nil {
		t.Fatal(err)
	}
	return &testKey{name: name, pub: signer.PublicKey(), file: file, sign: func(data []byte) *ssh.Signature {
		sig, err := signer.Sign(rand.Reader, data)
		if err != nil {
			t.Fatal(err)
		}
		return sig
	}}
}

// sshsig signs msg in namespace and returns the armored SSHSIG.
func (k *testKey) sshsig(t testing.TB, namespace string, msg []byte) []byte {
	data, err := SignedData(namespace, "sha512", msg)
	if err != nil {
		t.Fatal(err)
	}
	s := &Signature{PublicKey: k.pub, Namespace: namespace, HashAlgorithm: "sha512", Sig: k.sign(data)}
	return s.Armor()
}

// approval is an approval block signed by k.
func (k *testKey) approval(t testing.TB, st Statement) []byte {
	msg := []byte(st.String())
	return append(msg, k.sshsig(t, ApprovalNamespace, msg)...)
}

// gitEnv isolates test git commands from the machine's configuration.
var gitEnv = []string{
	"GIT_CONFIG_GLOBAL=/dev/null", "GIT_CONFIG_NOSYSTEM=1",
	"GIT_AUTHOR_NAME=Test", "GIT_AUTHOR_EMAIL=test@example.org",
	"GIT_COMMITTER_NAME=Test", "GIT_COMMITTER_EMAIL=test@example.org",
}

func run(t testing.TB, dir string, stdin []byte, name string, args ...string) string {
	t.Helper()
	out, err := runErr(dir, stdin, name, args...)
	if err != nil {
		t.Fatalf("%s %s: %v", name, strings.Join(args, " "), err)
	}
	return out
}

func runErr(dir string, stdin []byte, name string, args ...string) (string, error) {
	cmd := exec.Command(name, args...)
	cmd.Dir = dir
	cmd.Env = append(os.Environ(), gitEnv...)
	if stdin != nil {
		cmd.Stdin = bytes.NewReader(stdin)
	}
	var stderr bytes.Buffer
	cmd.Stderr = &stderr
	out, err := cmd.Output()
	if err != nil {
		return string(out), fmt.Errorf("%v: %s", err, stderr.String())
	}
	return strings.TrimSpace(string(out)), nil
}

// testRepo is a work repository in which tests build commits by hand.
type testRepo struct {
	t    testing.TB
	dir  string
	now  int64
	tree map[string]string
}

func newTestRepo(t testing.TB) *testRepo {
	dir := t.TempDir()
	run(t, dir, nil, "git", "init", "-q", "-b", "main")
	return &testRepo{t: t, dir: dir, now: 1700000000, tree: map[string]string{}}
}

// writeTree builds a tree object from files (path → content).
func (r *testRepo) writeTree(files map[string]string) string {
	subs := map[string]map[string]string{}
	var b strings.Builder
	for p, content := range files {
		if dir, rest, ok := strings.Cut(p, "/"); ok {
			if subs[dir] == nil {
				subs[dir] = map[string]string{}
			}
			subs[dir][rest] = content
			continue
		}
		oid := run(r.t, r.dir, []byte(content), "git", "hash-object", "-w", "--stdin")
		fmt.Fprintf(&b, "100644 blob %s\t%s\n", oid, p)
	}
	for dir, files := range subs {
		fmt.Fprintf(&b, "040000 tree %s\t%s\n", r.writeTree(files), dir)
	}
	return run(r.t, r.dir, []byte(b.String()), "git", "mktree")
}

// commitOpts describe a commit made by testRepo.commit.
type commitOpts struct {
	parents []string
	files   map[string]string // the whole tree; nil keeps the first parent's
	msg     string
	key     *testKey
	ns      string                      // signature namespace; default git
	edit    func(raw []byte) []byte     // changes the signed object
	when    int64                       // committer time; default increasing
	sigText func(armored []byte) []byte // replaces the signature text
}

// commit writes a commit object, signed (FIDO keys fabricated, software
// keys by the same SSHSIG code), and returns its id.
func (r *testRepo) commit(o commitOpts) string {
	r.t.Helper()
	files := o.files
	if files == nil {
		files = r.tree
	}
	r.tree = files
	tree := r.writeTree(files)
	if o.when == 0 {
		r.now += 60
		o.when = r.now
	}
	if o.msg == "" {
		o.msg = "change"
	}
	var b bytes.Buffer
	fmt.Fprintf(&b, "tree %s\n", tree)
	for _, p := range o.parents {
		fmt.Fprintf(&b, "parent %s\n", p)
	}
	fmt.Fprintf(&b, "author Test <test@example.org> %d +0000\n", o.when)
	fmt.Fprintf(&b, "committer Test <test@example.org> %d +0000\n", o.when)
	head := b.String()
	body := "\n" + o.msg + "\n"
	raw := []byte(head + body)
	if o.key != nil {
		ns := o.ns
		if ns == "" {
			ns = CommitNamespace
		}
		armored := o.key.sshsig(r.t, ns, raw)
		if o.sigText != nil {
			armored = o.sigText(armored)
		}
		sig := "gpgsig " + strings.ReplaceAll(strings.TrimSuffix(string(armored), "\n"), "\n", "\n ") + "\n"
		raw = []byte(head + sig + body)
	}
	if o.edit != nil {
		raw = o.edit(raw)
	}
	return run(r.t, r.dir, raw, "git", "hash-object", "-t", "commit", "-w", "--stdin")
}

// files returns a tree with the given trust files and a payload file.
func trustTree(admins, developers, policy string, extra ...string) map[string]string {
	f := map[string]string{"README": "stack\n" + strings.Join(extra, "\n")}
	if admins != "" {
		f[AdminsFile] = admins
	}
	if developers != "" {
		f[DevelopersFile] = developers
	}
	if policy != "" {
		f[PolicyFile] = policy
	}
	return f
}

func signersFile(keys ...*testKey) string {
	var b strings.Builder
	b.WriteString("# test signers\n")
	for _, k := range keys {
		fmt.Fprintf(&b, "%s %s\n", k.name, k.authorized())
	}
	return b.String()
}

func withTree(base map[string]string, kv ...string) map[string]string {
	out := map[string]string{}
	for k, v := range base {
		out[k] = v
	}
	for i := 0; i+1 < len(kv); i += 2 {
		out[kv[i]] = kv[i+1]
	}
	return out
}

func ctxT(t testing.TB) context.Context {
	ctx, cancel := context.WithTimeout(context.Background(), 2*time.Minute)
	t.Cleanup(cancel)
	return ctx
}
