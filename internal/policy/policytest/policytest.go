// Package policytest makes what tests of the signature policy need and no
// real device can give here: FIDO (sk-ssh-ed25519@openssh.com) keys whose
// signatures are fabricated in software, with any authenticator flags, and
// signed git commit objects. Ordinary keys come from the real ssh-keygen.
package policytest

import (
	"bytes"
	"crypto/ed25519"
	"crypto/rand"
	"crypto/sha256"
	"encoding/binary"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"

	"golang.org/x/crypto/ssh"

	"github.com/hashbang/stack/internal/policy"
)

// Key is a signing key.
type Key struct {
	// Name is the principal the key is listed under.
	Name string
	// Pub is the public key.
	Pub ssh.PublicKey
	// File is the private key file, for keys made by ssh-keygen.
	File string
	// Flags are the authenticator flags a FIDO key puts in its next
	// signatures: policy.FlagUserPresence (touched), FlagUserVerification.
	Flags byte

	sign func(data []byte) (*ssh.Signature, error)
}

// application is the FIDO application string of the keys, as ssh-keygen
// gives it by default.
const application = "ssh:"

// FIDO makes an sk-ssh-ed25519@openssh.com key that signs as a security key
// would: ed25519 over sha256(application) ‖ flags ‖ counter ‖ sha256(data).
func FIDO(t testing.TB, name string, flags byte) *Key {
	t.Helper()
	pub, priv, err := ed25519.GenerateKey(rand.Reader)
	if err != nil {
		t.Fatal(err)
	}
	pk, err := ssh.ParsePublicKey(ssh.Marshal(struct {
		Name, Key, App string
	}{ssh.KeyAlgoSKED25519, string(pub), application}))
	if err != nil {
		t.Fatal(err)
	}
	k := &Key{Name: name, Pub: pk, Flags: flags}
	var counter uint32
	k.sign = func(data []byte) (*ssh.Signature, error) {
		counter++
		app := sha256.Sum256([]byte(application))
		d := sha256.Sum256(data)
		m := append([]byte{}, app[:]...)
		m = append(m, k.Flags)
		m = binary.BigEndian.AppendUint32(m, counter)
		m = append(m, d[:]...)
		return &ssh.Signature{
			Format: ssh.KeyAlgoSKED25519,
			Blob:   ed25519.Sign(priv, m),
			Rest: ssh.Marshal(struct {
				Flags   byte
				Counter uint32
			}{k.Flags, counter}),
		}, nil
	}
	return k
}

// Software makes an ordinary ed25519 key with ssh-keygen in dir.
func Software(t testing.TB, dir, name string) *Key {
	t.Helper()
	file := filepath.Join(dir, name)
	if out, err := exec.Command("ssh-keygen", "-q", "-t", "ed25519", "-N", "", "-C", name, "-f", file).CombinedOutput(); err != nil {
		t.Fatalf("ssh-keygen: %v: %s", err, out)
	}
	data, err := os.ReadFile(file)
	if err != nil {
		t.Fatal(err)
	}
	signer, err := ssh.ParsePrivateKey(data)
	if err != nil {
		t.Fatal(err)
	}
	return &Key{Name: name, Pub: signer.PublicKey(), File: file, sign: func(data []byte) (*ssh.Signature, error) {
		return signer.Sign(rand.Reader, data)
	}}
}

// Authorized is the key in authorized_keys form: "TYPE BASE64".
func (k *Key) Authorized() string {
	return strings.TrimSpace(string(ssh.MarshalAuthorizedKey(k.Pub)))
}

// Fingerprint is the key's SHA256 fingerprint.
func (k *Key) Fingerprint() string { return ssh.FingerprintSHA256(k.Pub) }

// SSHSIG signs msg in namespace and returns the armored signature, as
// ssh-keygen -Y sign writes it.
func (k *Key) SSHSIG(t testing.TB, namespace string, msg []byte) []byte {
	t.Helper()
	data, err := policy.SignedData(namespace, "sha512", msg)
	if err != nil {
		t.Fatal(err)
	}
	sig, err := k.sign(data)
	if err != nil {
		t.Fatal(err)
	}
	s := &policy.Signature{PublicKey: k.Pub, Namespace: namespace, HashAlgorithm: "sha512", Sig: sig}
	return s.Armor()
}

// SignersFile is an allowed_signers file listing keys under their names.
func SignersFile(keys ...*Key) string {
	var b strings.Builder
	b.WriteString("# test signers\n")
	for _, k := range keys {
		fmt.Fprintf(&b, "%s %s\n", k.Name, k.Authorized())
	}
	return b.String()
}

// SignCommit returns the raw commit object raw (as git cat-file commit
// prints it, unsigned) with k's signature in a gpgsig header, as git commit
// -S with gpg.format=ssh writes it. A nil k returns raw unchanged.
func SignCommit(t testing.TB, raw []byte, k *Key) []byte {
	t.Helper()
	if k == nil {
		return raw
	}
	head, body, ok := bytes.Cut(raw, []byte("\n\n"))
	if !ok {
		t.Fatalf("not a commit object: %q", raw)
	}
	armored := k.SSHSIG(t, policy.CommitNamespace, raw)
	sig := "gpgsig " + strings.ReplaceAll(strings.TrimSuffix(string(armored), "\n"), "\n", "\n ")
	var b bytes.Buffer
	b.Write(head)
	b.WriteString("\n" + sig + "\n\n")
	b.Write(body)
	return b.Bytes()
}
