package policy

import (
	"bytes"
	"encoding/base64"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"golang.org/x/crypto/ssh"
)

// TestSignatureSSHKeygen checks signatures made by ssh-keygen verify here,
// and signatures made here (including fabricated FIDO ones) verify with
// ssh-keygen.
func TestSignatureSSHKeygen(t *testing.T) {
	dir := t.TempDir()
	soft := newSoftKey(t, dir, "carol")
	msg := []byte("tree 0000\n\nhello\n")
	msgFile := filepath.Join(dir, "msg")
	if err := os.WriteFile(msgFile, msg, 0o644); err != nil {
		t.Fatal(err)
	}
	run(t, dir, nil, "ssh-keygen", "-q", "-Y", "sign", "-n", "git", "-f", soft.file, msgFile)
	armored, err := os.ReadFile(msgFile + ".sig")
	if err != nil {
		t.Fatal(err)
	}
	sig, err := ParseSignature(armored)
	if err != nil {
		t.Fatal(err)
	}
	if err := sig.Verify("git", msg); err != nil {
		t.Fatalf("ssh-keygen signature: %v", err)
	}
	if err := sig.Verify("file", msg); err == nil || !strings.Contains(err.Error(), "namespace") {
		t.Errorf("wrong namespace: got %v", err)
	}
	if err := sig.Verify("git", append(msg, 'x')); err == nil {
		t.Error("tampered message verified")
	}
	if sig.Hardware() || sig.Fingerprint() != ssh.FingerprintSHA256(soft.pub) {
		t.Errorf("hardware=%v fingerprint=%s", sig.Hardware(), sig.Fingerprint())
	}
	if got := sig.Armor(); !bytes.Equal(got, armored) {
		t.Errorf("Armor differs from ssh-keygen's:\n%s\nvs\n%s", got, armored)
	}

	for _, k := range []*testKey{
		newSKEd25519(t, "alice", FlagUserPresence),
		newSKECDSA(t, "bob", FlagUserPresence|FlagUserVerification),
		soft,
	} {
		t.Run(k.pub.Type(), func(t *testing.T) {
			armored := k.sshsig(t, "git", msg)
			sig, err := ParseSignature(armored)
			if err != nil {
				t.Fatal(err)
			}
			if err := sig.Verify("git", msg); err != nil {
				t.Fatal(err)
			}
			allowed := filepath.Join(t.TempDir(), "allowed")
			os.WriteFile(allowed, []byte("alice "+k.authorized()+"\n"), 0o644)
			sigFile := filepath.Join(t.TempDir(), "sig")
			os.WriteFile(sigFile, armored, 0o644)
			out := run(t, dir, msg, "ssh-keygen", "-Y", "verify", "-f", allowed, "-I", "alice", "-n", "git", "-s", sigFile)
			if !strings.Contains(out, "Good") {
				t.Errorf("ssh-keygen -Y verify: %s", out)
			}
			if flags, _, ok := sig.FIDO(); ok != sig.Hardware() || ok && flags != k.flags {
				t.Errorf("FIDO() = %x, %v", flags, ok)
			}
		})
	}
}

func TestSignatureUserPresence(t *testing.T) {
	k := newSKEd25519(t, "alice", 0)
	msg := []byte("payload")
	sig, err := ParseSignature(k.sshsig(t, "git", msg))
	if err != nil {
		t.Fatal(err)
	}
	if err := sig.Verify("git", msg); err == nil || !strings.Contains(err.Error(), "user-presence") {
		t.Fatalf("signature without user presence: got %v", err)
	}
}

func TestParseSignatureErrors(t *testing.T) {
	k := newSKEd25519(t, "alice", FlagUserPresence)
	good, err := ParseSignature(k.sshsig(t, "git", []byte("m")))
	if err != nil {
		t.Fatal(err)
	}
	blob := good.Marshal()
	arm := func(b []byte) string {
		return sigBegin + "\n" + base64.StdEncoding.EncodeToString(b) + "\n" + sigEnd + "\n"
	}
	mutate := func(f func(*sigBlob)) string {
		var b sigBlob
		if err := ssh.Unmarshal(blob[len(sigMagic):], &b); err != nil {
			t.Fatal(err)
		}
		f(&b)
		return arm(append([]byte(sigMagic), ssh.Marshal(b)...))
	}
	tests := []struct {
		name, in, want string
	}{
		{"empty", "", "missing -----BEGIN"},
		{"pgp", "-----BEGIN PGP SIGNATURE-----\nabc\n-----END PGP SIGNATURE-----\n", "not an SSH signature"},
		{"no footer", sigBegin + "\nAAAA\n", "missing -----END"},
		{"trailing", arm(blob) + "junk", "unexpected data"},
		{"base64", sigBegin + "\n!!!!\n" + sigEnd + "\n", "base64"},
		{"magic", arm(append([]byte("XXXSIG"), blob[6:]...)), "magic"},
		{"short", arm(blob[:20]), "malformed"},
		{"extra bytes", arm(append(append([]byte{}, blob...), 0)), "malformed"},
		{"version", mutate(func(b *sigBlob) { b.Version = 2 }), "version 2"},
		{"hash", mutate(func(b *sigBlob) { b.HashAlgorithm = "md5" }), "md5"},
		{"namespace", mutate(func(b *sigBlob) { b.Namespace = "" }), "empty namespace"},
		{"key", mutate(func(b *sigBlob) { b.PublicKey = []byte("nope") }), "public key"},
		{"sig type", mutate(func(b *sigBlob) {
			b.Signature = ssh.Marshal(ssh.Signature{Format: "ssh-ed25519", Blob: make([]byte, 64)})
		}), "does not match key type"},
		{"sk flags", mutate(func(b *sigBlob) {
			b.Signature = ssh.Marshal(ssh.Signature{Format: ssh.KeyAlgoSKED25519, Blob: make([]byte, 64)})
		}), "FIDO signature flags"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			_, err := ParseSignature([]byte(tt.in))
			if err == nil || !strings.Contains(err.Error(), tt.want) {
				t.Errorf("got %v, want error containing %q", err, tt.want)
			}
		})
	}
}

func FuzzParseSignature(f *testing.F) {
	k := newSKEd25519(f, "alice", FlagUserPresence)
	e := newSKECDSA(f, "bob", FlagUserPresence)
	f.Add(k.sshsig(f, "git", []byte("hello")))
	f.Add(e.sshsig(f, "stack-approve", []byte("approve x for production\n")))
	f.Add([]byte(sigBegin + "\nU1NIU0lH\n" + sigEnd + "\n"))
	f.Add([]byte(""))
	f.Fuzz(func(t *testing.T, in []byte) {
		sig, err := ParseSignature(in)
		if err != nil {
			return
		}
		again, err := ParseSignature(sig.Armor())
		if err != nil {
			t.Fatalf("re-parse of armored signature: %v", err)
		}
		if !bytes.Equal(again.Marshal(), sig.Marshal()) {
			t.Fatal("armor round trip changed the signature")
		}
		_ = sig.Verify(sig.Namespace, in) // must not panic
	})
}
