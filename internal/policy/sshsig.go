package policy

import (
	"bytes"
	"crypto/sha256"
	"crypto/sha512"
	"encoding/base64"
	"encoding/binary"
	"errors"
	"fmt"
	"strings"

	"golang.org/x/crypto/ssh"
)

// The SSHSIG format, as OpenSSH's PROTOCOL.sshsig defines it.
const (
	sigMagic   = "SSHSIG"
	sigVersion = 1
	sigBegin   = "-----BEGIN SSH SIGNATURE-----"
	sigEnd     = "-----END SSH SIGNATURE-----"
)

// FIDO authenticator flags carried by sk-* signatures (PROTOCOL.u2f).
const (
	FlagUserPresence     = 0x01
	FlagUserVerification = 0x04
)

// Signature is one SSHSIG signature: who signed (the public key), for what
// purpose (the namespace), and the signature over the message's hash.
type Signature struct {
	PublicKey     ssh.PublicKey
	Namespace     string
	HashAlgorithm string // sha256 or sha512
	Sig           *ssh.Signature
}

// sigBlob is the wire form of an SSHSIG signature after the magic preamble.
type sigBlob struct {
	Version       uint32
	PublicKey     []byte
	Namespace     string
	Reserved      []byte
	HashAlgorithm string
	Signature     []byte
}

// skFields are what a FIDO authenticator adds after the signature proper.
type skFields struct {
	Flags   byte
	Counter uint32
}

// ParseSignature parses an armored SSH signature ("-----BEGIN SSH
// SIGNATURE-----" ... "-----END SSH SIGNATURE-----"), as stored in a git
// commit's gpgsig header or written by ssh-keygen -Y sign.
func ParseSignature(armored []byte) (*Signature, error) {
	s := string(armored)
	s = strings.TrimLeft(s, " \t\r\n")
	if !strings.HasPrefix(s, sigBegin+"\n") && !strings.HasPrefix(s, sigBegin+"\r\n") {
		return nil, errors.New("not an SSH signature: missing " + sigBegin + " line")
	}
	s = s[len(sigBegin):]
	end := strings.Index(s, sigEnd)
	if end < 0 {
		return nil, errors.New("truncated SSH signature: missing " + sigEnd + " line")
	}
	if strings.TrimSpace(s[end+len(sigEnd):]) != "" {
		return nil, errors.New("unexpected data after " + sigEnd)
	}
	body := strings.Map(func(r rune) rune {
		switch r {
		case '\n', '\r':
			return -1
		}
		return r
	}, s[:end])
	blob, err := base64.StdEncoding.DecodeString(body)
	if err != nil {
		return nil, fmt.Errorf("SSH signature is not valid base64: %w", err)
	}
	return UnmarshalSignature(blob)
}

// UnmarshalSignature parses the binary SSHSIG blob (the decoded armor).
func UnmarshalSignature(blob []byte) (*Signature, error) {
	if !bytes.HasPrefix(blob, []byte(sigMagic)) {
		return nil, errors.New("SSH signature lacks the SSHSIG magic")
	}
	var b sigBlob
	if err := ssh.Unmarshal(blob[len(sigMagic):], &b); err != nil {
		return nil, fmt.Errorf("malformed SSH signature: %w", err)
	}
	if b.Version != sigVersion {
		return nil, fmt.Errorf("SSH signature version %d, want %d", b.Version, sigVersion)
	}
	if b.Namespace == "" {
		return nil, errors.New("SSH signature has an empty namespace")
	}
	switch b.HashAlgorithm {
	case "sha256", "sha512":
	default:
		return nil, fmt.Errorf("SSH signature uses hash %q: only sha256 and sha512 are accepted", b.HashAlgorithm)
	}
	key, err := ssh.ParsePublicKey(b.PublicKey)
	if err != nil {
		return nil, fmt.Errorf("SSH signature public key: %w", err)
	}
	if _, ok := key.(*ssh.Certificate); ok {
		return nil, errors.New("SSH signature made with a certificate: certificates are not supported, sign with the plain key")
	}
	sig := new(ssh.Signature)
	if err := ssh.Unmarshal(b.Signature, sig); err != nil {
		return nil, fmt.Errorf("malformed SSH signature value: %w", err)
	}
	if !isSK(key.Type()) && len(sig.Rest) > 0 {
		return nil, errors.New("malformed SSH signature value: trailing data")
	}
	if err := checkSigFormat(key.Type(), sig.Format); err != nil {
		return nil, err
	}
	if isSK(key.Type()) {
		var f skFields
		if err := ssh.Unmarshal(sig.Rest, &f); err != nil {
			return nil, fmt.Errorf("malformed FIDO signature flags: %w", err)
		}
	}
	return &Signature{PublicKey: key, Namespace: b.Namespace, HashAlgorithm: b.HashAlgorithm, Sig: sig}, nil
}

// checkSigFormat refuses a signature whose algorithm does not belong to the
// key, and RSA signatures over SHA-1, which OpenSSH refuses too.
func checkSigFormat(keyType, format string) error {
	if keyType == ssh.KeyAlgoRSA {
		switch format {
		case ssh.KeyAlgoRSASHA256, ssh.KeyAlgoRSASHA512:
			return nil
		}
		return fmt.Errorf("RSA signature algorithm %q is not accepted: use rsa-sha2-512", format)
	}
	if format != keyType {
		return fmt.Errorf("signature algorithm %q does not match key type %q", format, keyType)
	}
	return nil
}

// isSK reports whether a key type is a FIDO (security key) type.
func isSK(keyType string) bool {
	return keyType == ssh.KeyAlgoSKED25519 || keyType == ssh.KeyAlgoSKECDSA256
}

// Hardware reports whether the signature was made by a FIDO security key.
func (s *Signature) Hardware() bool { return isSK(s.PublicKey.Type()) }

// FIDO returns the authenticator flags and counter of a FIDO signature;
// ok is false for other key types.
func (s *Signature) FIDO() (flags byte, counter uint32, ok bool) {
	if !s.Hardware() {
		return 0, 0, false
	}
	var f skFields
	if err := ssh.Unmarshal(s.Sig.Rest, &f); err != nil {
		return 0, 0, false
	}
	return f.Flags, f.Counter, true
}

// Fingerprint is the signing key's SHA256 fingerprint, as ssh-keygen -l shows it.
func (s *Signature) Fingerprint() string { return ssh.FingerprintSHA256(s.PublicKey) }

// Verify checks that the signature is over message in namespace. FIDO
// signatures must assert user presence (the key was touched).
func (s *Signature) Verify(namespace string, message []byte) error {
	if s.Namespace != namespace {
		return fmt.Errorf("signature namespace is %q, want %q", s.Namespace, namespace)
	}
	if flags, _, ok := s.FIDO(); ok && flags&FlagUserPresence == 0 {
		return errors.New("FIDO signature lacks the user-presence flag (the key was not touched)")
	}
	data, err := SignedData(s.Namespace, s.HashAlgorithm, message)
	if err != nil {
		return err
	}
	if err := s.PublicKey.Verify(data, s.Sig); err != nil {
		return errors.New("signature does not match the signed data")
	}
	return nil
}

// SignedData returns the bytes an SSHSIG signer signs for message: the
// magic, namespace, an empty reserved field, the hash algorithm and the
// message's hash.
func SignedData(namespace, hashAlgorithm string, message []byte) ([]byte, error) {
	var h []byte
	switch hashAlgorithm {
	case "sha256":
		d := sha256.Sum256(message)
		h = d[:]
	case "sha512":
		d := sha512.Sum512(message)
		h = d[:]
	default:
		return nil, fmt.Errorf("unsupported hash algorithm %q", hashAlgorithm)
	}
	out := []byte(sigMagic)
	out = appendString(out, []byte(namespace))
	out = appendString(out, nil)
	out = appendString(out, []byte(hashAlgorithm))
	out = appendString(out, h)
	return out, nil
}

func appendString(b, s []byte) []byte {
	b = binary.BigEndian.AppendUint32(b, uint32(len(s)))
	return append(b, s...)
}

// Marshal returns the binary SSHSIG blob.
func (s *Signature) Marshal() []byte {
	return append([]byte(sigMagic), ssh.Marshal(sigBlob{
		Version:       sigVersion,
		PublicKey:     s.PublicKey.Marshal(),
		Namespace:     s.Namespace,
		HashAlgorithm: s.HashAlgorithm,
		Signature:     ssh.Marshal(s.Sig),
	})...)
}

// Armor returns the signature in the armored text form ssh-keygen writes,
// base64 wrapped at 70 columns, ending in a newline.
func (s *Signature) Armor() []byte {
	enc := base64.StdEncoding.EncodeToString(s.Marshal())
	var b bytes.Buffer
	b.WriteString(sigBegin + "\n")
	for len(enc) > 70 {
		b.WriteString(enc[:70] + "\n")
		enc = enc[70:]
	}
	b.WriteString(enc + "\n")
	b.WriteString(sigEnd + "\n")
	return b.Bytes()
}
