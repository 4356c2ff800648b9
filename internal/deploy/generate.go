package deploy

// Secrets whose values the cluster holds and the repository never does. A
// Secret of pods/ declares them in annotations:
//
//	metadata:
//	  annotations:
//	    # made by the deploy, on the first deploy, kept by every later one
//	    stack.hashbang.sh/generate: "secret-key=alnum:64, host-key=ssh-ed25519"
//	    # captured after a deploy from a command run in a ready pod
//	    stack.hashbang.sh/capture: |
//	      key: password
//	      workload: deployment/app
//	      container: app
//	      command: [/bin/app, create-admin, --random-password]
//	      match: "password is '(.+)'"
//	    # a line `stack up` prints the one time it created the values
//	    stack.hashbang.sh/show-once: "app admin: {username} / {password}"
//
// Generate: the deploy fills every listed key before it validates anything:
// with the live Secret's value when the key has one (a value is generated
// once and never again), else a new random value, made on this machine and
// sent only to the API server. Capture: see capture.go. The state repo, the
// diffs and the deploy's output show a generated or captured key with the
// value Redacted; a public key (KEY.pub of ssh-ed25519) is shown as it is.

import (
	"crypto/ed25519"
	"crypto/rand"
	"encoding/base64"
	"encoding/hex"
	"encoding/pem"
	"errors"
	"fmt"
	"regexp"
	"strconv"
	"strings"

	"go.yaml.in/yaml/v3"
	"golang.org/x/crypto/ssh"
	"k8s.io/apimachinery/pkg/apis/meta/v1/unstructured"
)

// The annotations of generated and captured secrets.
const (
	GenerateAnnotation = "stack.hashbang.sh/generate"
	CaptureAnnotation  = "stack.hashbang.sh/capture"
	ShowOnceAnnotation = "stack.hashbang.sh/show-once"
)

// Redacted stands for a generated or captured value wherever stack shows
// or records a Secret: it is not base64, so a recorded object cannot be
// applied back with it by mistake.
const Redacted = "(generated)"

// Generator kinds.
const (
	GenHex        = "hex"         // LENGTH random bytes as lowercase hex, as `openssl rand -hex LENGTH`
	GenBase64     = "base64"      // LENGTH random bytes as padded base64, as `openssl rand -base64 LENGTH`
	GenAlnum      = "alnum"       // LENGTH characters drawn uniformly from A-Z, a-z and 0-9
	GenSSHEd25519 = "ssh-ed25519" // an OpenSSH ed25519 private key under KEY, its public key line under KEY.pub
)

// Bounds of a generator's length: below 16 a secret is guessable.
const (
	MinGenLength = 16
	MaxGenLength = 4096
)

// Generated is one entry of the generate annotation: KEY=KIND[:LENGTH].
type Generated struct {
	Key    string
	Kind   string
	Length int // bytes for hex and base64, characters for alnum; 0 for ssh-ed25519
}

// String is the entry as the annotation writes it.
func (g Generated) String() string {
	if g.Kind == GenSSHEd25519 {
		return g.Key + "=" + g.Kind
	}
	return g.Key + "=" + g.Kind + ":" + strconv.Itoa(g.Length)
}

// Keys are the Secret keys the entry fills.
func (g Generated) Keys() []string {
	if g.Kind == GenSSHEd25519 {
		return []string{g.Key, g.Key + ".pub"}
	}
	return []string{g.Key}
}

// ParseGenerate parses the value of the generate annotation: entries
// KEY=KIND[:LENGTH] separated by commas or newlines.
func ParseGenerate(s string) ([]Generated, error) {
	var out []Generated
	seen := map[string]bool{}
	for _, e := range strings.FieldsFunc(s, func(r rune) bool { return r == ',' || r == '\n' }) {
		e = strings.TrimSpace(e)
		if e == "" {
			continue
		}
		g, err := parseGenerated(e)
		if err != nil {
			return nil, err
		}
		for _, k := range g.Keys() {
			if seen[k] {
				return nil, fmt.Errorf("key %q is generated twice: keep one entry", k)
			}
			seen[k] = true
		}
		out = append(out, g)
	}
	if len(out) == 0 {
		return nil, fmt.Errorf("no entry: list KEY=GENERATOR entries, e.g. %q", "secret-key=alnum:64")
	}
	return out, nil
}

func parseGenerated(e string) (Generated, error) {
	key, spec, ok := strings.Cut(e, "=")
	key, spec = strings.TrimSpace(key), strings.TrimSpace(spec)
	if !ok || key == "" || spec == "" {
		return Generated{}, fmt.Errorf("entry %q is not KEY=GENERATOR: write e.g. secret-key=alnum:64", e)
	}
	if err := checkSecretKey(key); err != nil {
		return Generated{}, err
	}
	kind, length, hasLength := strings.Cut(spec, ":")
	g := Generated{Key: key, Kind: kind}
	switch kind {
	case GenSSHEd25519:
		if hasLength {
			return Generated{}, fmt.Errorf("key %q: %s takes no length: write %s=%s", key, kind, key, kind)
		}
		if err := checkSecretKey(key + ".pub"); err != nil {
			return Generated{}, err
		}
		return g, nil
	case GenHex, GenBase64, GenAlnum:
	default:
		return Generated{}, fmt.Errorf("key %q: unknown generator %q: use hex:BYTES, base64:BYTES, alnum:CHARACTERS or ssh-ed25519", key, spec)
	}
	if !hasLength {
		return Generated{}, fmt.Errorf("key %q: %s needs a length: write e.g. %s=%s:32", key, kind, key, kind)
	}
	n, err := strconv.Atoi(length)
	if err != nil || strings.TrimLeft(length, "0123456789") != "" {
		return Generated{}, fmt.Errorf("key %q: length %q is not a number: write e.g. %s=%s:32", key, length, key, kind)
	}
	if n < MinGenLength || n > MaxGenLength {
		return Generated{}, fmt.Errorf("key %q: length %d is out of range: use %d to %d", key, n, MinGenLength, MaxGenLength)
	}
	g.Length = n
	return g, nil
}

// checkSecretKey checks a Secret key as the API server does.
func checkSecretKey(k string) error {
	if k == "" || len(k) > 253 || k == "." || k == ".." || strings.HasPrefix(k, "..") || strings.TrimFunc(k, isKeyChar) != "" {
		return fmt.Errorf("key %q is not a Secret key: use letters, digits, '-', '_' and '.' (at most 253, not starting with ..)", k)
	}
	return nil
}

func isKeyChar(r rune) bool {
	return r == '-' || r == '_' || r == '.' || r >= 'a' && r <= 'z' || r >= 'A' && r <= 'Z' || r >= '0' && r <= '9'
}

// value makes a new random value for the entry: its keys and values.
func (g Generated) value() (map[string][]byte, error) {
	switch g.Kind {
	case GenHex, GenBase64:
		b := make([]byte, g.Length)
		if _, err := rand.Read(b); err != nil {
			return nil, err
		}
		if g.Kind == GenHex {
			return map[string][]byte{g.Key: []byte(hex.EncodeToString(b))}, nil
		}
		return map[string][]byte{g.Key: []byte(base64.StdEncoding.EncodeToString(b))}, nil
	case GenAlnum:
		const alphabet = "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789"
		out := make([]byte, 0, g.Length)
		buf := make([]byte, 64)
		for len(out) < g.Length {
			if _, err := rand.Read(buf); err != nil {
				return nil, err
			}
			for _, c := range buf {
				// 248 = 4*62: rejecting the rest keeps every character
				// equally likely.
				if c < 248 && len(out) < g.Length {
					out = append(out, alphabet[c%62])
				}
			}
		}
		return map[string][]byte{g.Key: out}, nil
	case GenSSHEd25519:
		_, priv, err := ed25519.GenerateKey(rand.Reader)
		if err != nil {
			return nil, err
		}
		block, err := ssh.MarshalPrivateKey(priv, "")
		if err != nil {
			return nil, err
		}
		pub, err := publicLine(priv)
		if err != nil {
			return nil, err
		}
		return map[string][]byte{g.Key: pem.EncodeToMemory(block), g.Key + ".pub": pub}, nil
	}
	return nil, fmt.Errorf("unknown generator %q", g.Kind)
}

// publicLine is the authorized_keys line of a private key.
func publicLine(priv any) ([]byte, error) {
	signer, err := ssh.NewSignerFromKey(priv)
	if err != nil {
		return nil, err
	}
	return ssh.MarshalAuthorizedKey(signer.PublicKey()), nil
}

// Capture is the capture annotation, a YAML mapping: after a deploy, when
// the live Secret lacks Key, run Command in Container of a ready pod of
// Workload (in the Secret's namespace) and store what the one group of
// Match finds in its standard output. The output is never shown: it holds
// the secret.
type Capture struct {
	Key       string   `yaml:"key"`
	Workload  string   `yaml:"workload"`
	Container string   `yaml:"container"`
	Command   []string `yaml:"command"`
	Match     string   `yaml:"match"`
	// Help is added to the error when the command fails: how to recover.
	Help string `yaml:"help,omitempty"`

	// WorkloadKind is the workload's kind (Deployment, StatefulSet or
	// DaemonSet of apps/v1), WorkloadName its name.
	WorkloadKind, WorkloadName string
	re                         *regexp.Regexp
}

// workloadKinds are the kinds a capture runs in, by their kubectl name.
var workloadKinds = map[string]string{"deployment": "Deployment", "statefulset": "StatefulSet", "daemonset": "DaemonSet"}

var dnsName = regexp.MustCompile(`^[a-z0-9]([-a-z0-9.]{0,251}[a-z0-9])?$`)

// ParseCapture parses the value of the capture annotation.
func ParseCapture(s string) (*Capture, error) {
	c := &Capture{}
	dec := yaml.NewDecoder(strings.NewReader(s))
	dec.KnownFields(true)
	if err := dec.Decode(c); err != nil {
		return nil, fmt.Errorf("not a YAML mapping of key, workload, container, command, match (and help): %s", foldLines(strings.TrimPrefix(err.Error(), "yaml: ")))
	}
	var missing []string
	for _, f := range []struct{ name, v string }{{"key", c.Key}, {"workload", c.Workload}, {"container", c.Container}, {"match", c.Match}} {
		if f.v == "" {
			missing = append(missing, f.name)
		}
	}
	if len(c.Command) == 0 || c.Command[0] == "" {
		missing = append(missing, "command")
	}
	if len(missing) > 0 {
		return nil, fmt.Errorf("%s missing: give key, workload (deployment/NAME), container, command (a list) and match (a regular expression with one group)", strings.Join(missing, ", "))
	}
	if err := checkSecretKey(c.Key); err != nil {
		return nil, err
	}
	kind, name, ok := strings.Cut(c.Workload, "/")
	c.WorkloadKind, c.WorkloadName = workloadKinds[strings.ToLower(kind)], name
	if !ok || c.WorkloadKind == "" || !dnsName.MatchString(name) {
		return nil, fmt.Errorf("workload %q: write deployment/NAME, statefulset/NAME or daemonset/NAME, in the Secret's namespace", c.Workload)
	}
	if !dnsName.MatchString(c.Container) || len(c.Container) > 63 {
		return nil, fmt.Errorf("container %q is not a container name", c.Container)
	}
	re, err := regexp.Compile(c.Match)
	if err != nil {
		return nil, fmt.Errorf("match %q: %s: write a Go regular expression", c.Match, foldLines(err.Error()))
	}
	if re.NumSubexp() != 1 {
		return nil, fmt.Errorf("match %q has %d groups: it needs exactly one, around the value", c.Match, re.NumSubexp())
	}
	c.re = re
	return c, nil
}

// Find returns what Match's group finds in out, or nil.
func (c *Capture) Find(out []byte) []byte {
	m := c.re.FindSubmatch(out)
	if m == nil || len(m[1]) == 0 {
		return nil
	}
	return m[1]
}

// ShowOnce is the show-once annotation: one line, with {KEY} standing for
// the value of the Secret's key KEY.
type ShowOnce struct {
	parts []showPart
}

type showPart struct {
	text string
	key  bool
}

// ParseShowOnce parses the value of the show-once annotation.
func ParseShowOnce(s string) (*ShowOnce, error) {
	if strings.ContainsAny(s, "\r\n") {
		return nil, errors.New("it is one line: remove the line breaks")
	}
	t := &ShowOnce{}
	keys := 0
	for rest := s; rest != ""; {
		open := strings.IndexByte(rest, '{')
		if closing := strings.IndexByte(rest, '}'); closing >= 0 && (open < 0 || closing < open) {
			return nil, fmt.Errorf("%q: a '}' closes no {KEY}: braces only write {KEY}", s)
		}
		if open < 0 {
			t.parts = append(t.parts, showPart{text: rest})
			break
		}
		if open > 0 {
			t.parts = append(t.parts, showPart{text: rest[:open]})
		}
		end := strings.IndexByte(rest[open:], '}')
		if end < 0 {
			return nil, fmt.Errorf("%q: a '{' is not closed: write {KEY}", s)
		}
		key := rest[open+1 : open+end]
		if err := checkSecretKey(key); err != nil {
			return nil, fmt.Errorf("{%s}: %w", key, err)
		}
		t.parts = append(t.parts, showPart{text: key, key: true})
		keys++
		rest = rest[open+end+1:]
	}
	if keys == 0 {
		return nil, fmt.Errorf("%q names no key: write {KEY} where the value goes", s)
	}
	return t, nil
}

// Keys are the keys the line shows, in order.
func (t *ShowOnce) Keys() []string {
	var out []string
	for _, p := range t.parts {
		if p.key {
			out = append(out, p.text)
		}
	}
	return out
}

// Format writes the line with the values of data.
func (t *ShowOnce) Format(data map[string][]byte) string {
	var b strings.Builder
	for _, p := range t.parts {
		if p.key {
			b.Write(data[p.text])
		} else {
			b.WriteString(p.text)
		}
	}
	return b.String()
}

// String is the annotation's value.
func (t *ShowOnce) String() string {
	var b strings.Builder
	for _, p := range t.parts {
		if p.key {
			b.WriteString("{" + p.text + "}")
		} else {
			b.WriteString(p.text)
		}
	}
	return b.String()
}

// SecretDecl is what one Secret's annotations declare.
type SecretDecl struct {
	// Secret is the Secret (its namespace settled: "default" when the
	// manifest has none).
	Secret   Key
	Generate []Generated
	Capture  *Capture
	ShowOnce *ShowOnce
}

// secretKey says whether key is one the deploy generates or captures and
// must not show (a public key it may).
func (d *SecretDecl) secretKey(key string) bool {
	if d.Capture != nil && d.Capture.Key == key {
		return true
	}
	for _, g := range d.Generate {
		if g.Key == key {
			return true
		}
	}
	return false
}

// DeclOf reads the declarations of u, a manifest: nil when it has none.
// Errors name the object, the annotation and the fix, on one line.
func DeclOf(u *unstructured.Unstructured) (*SecretDecl, error) {
	return declOf(u, true)
}

// declOf is DeclOf; manifest false reads a live object, whose data holds
// the generated and captured keys.
func declOf(u *unstructured.Unstructured, manifest bool) (*SecretDecl, error) {
	a := u.GetAnnotations()
	var present []string
	for _, k := range []string{GenerateAnnotation, CaptureAnnotation, ShowOnceAnnotation} {
		if _, ok := a[k]; ok {
			present = append(present, k)
		}
	}
	if len(present) == 0 {
		return nil, nil
	}
	k := KeyOf(u)
	if u.GetKind() != "Secret" || u.GetAPIVersion() != "v1" {
		return nil, fmt.Errorf("%s: annotation %s is for Secrets (apiVersion: v1, kind: Secret): move it to one", k, present[0])
	}
	if k.Namespace == "" {
		k.Namespace = "default"
	}
	d := &SecretDecl{Secret: k}
	fail := func(ann string, err error) error { return fmt.Errorf("%s: annotation %s: %w", k, ann, err) }
	var err error
	if v, ok := a[GenerateAnnotation]; ok {
		if d.Generate, err = ParseGenerate(v); err != nil {
			return nil, fail(GenerateAnnotation, err)
		}
	}
	if v, ok := a[CaptureAnnotation]; ok {
		if d.Capture, err = ParseCapture(v); err != nil {
			return nil, fail(CaptureAnnotation, err)
		}
	}
	// Every key has one source: the manifest, a generator or a capture.
	keys := map[string]string{}
	if manifest {
		for _, field := range []string{"data", "stringData"} {
			m, _, _ := unstructured.NestedMap(u.Object, field)
			for key := range m {
				keys[key] = "the manifest's data"
			}
		}
	}
	for _, g := range d.Generate {
		for _, key := range g.Keys() {
			if keys[key] != "" {
				return nil, fail(GenerateAnnotation, fmt.Errorf("key %q is also set by %s: keep one", key, keys[key]))
			}
			keys[key] = GenerateAnnotation
		}
	}
	if c := d.Capture; c != nil {
		if keys[c.Key] != "" {
			return nil, fail(CaptureAnnotation, fmt.Errorf("key %q is also set by %s: keep one", c.Key, keys[c.Key]))
		}
		keys[c.Key] = CaptureAnnotation
	}
	if v, ok := a[ShowOnceAnnotation]; ok {
		if d.ShowOnce, err = ParseShowOnce(v); err != nil {
			return nil, fail(ShowOnceAnnotation, err)
		}
		made := false
		for _, key := range d.ShowOnce.Keys() {
			if keys[key] == "" && manifest {
				return nil, fail(ShowOnceAnnotation, fmt.Errorf("{%s} is no key of the Secret: add it to data, %s or %s", key, GenerateAnnotation, CaptureAnnotation))
			}
			made = made || keys[key] != "the manifest's data"
		}
		if !made && manifest {
			return nil, fail(ShowOnceAnnotation, fmt.Errorf("it shows no generated or captured key: a line is shown once, when stack makes one of its values"))
		}
	}
	return d, nil
}

// Declarations are the declarations of r's Secrets, in r's order; the
// error lists every bad one.
func Declarations(r *Rendered) ([]*SecretDecl, error) {
	var out []*SecretDecl
	var errs []error
	for _, u := range r.Objects {
		d, err := DeclOf(u)
		if err != nil {
			errs = append(errs, err)
		} else if d != nil {
			out = append(out, d)
		}
	}
	return out, errors.Join(errs...)
}

// generateSecrets fills the generated keys of objs (copies about to be
// applied) from the live objects (by Key.ID), generating those the cluster
// lacks. It checks every declaration of objs, captures and show-once lines
// included, so that a bad one stops the deploy before anything is written.
func generateSecrets(objs []*unstructured.Unstructured, live map[string]*unstructured.Unstructured) error {
	var errs []error
	for _, u := range objs {
		if err := generateSecret(u, live[KeyOf(u).ID()]); err != nil {
			errs = append(errs, err)
		}
	}
	return errors.Join(errs...)
}

// generateSecret fills the generated keys of u from live (nil when the
// Secret does not exist), generating what live lacks. u without
// declarations is left as it is.
func generateSecret(u, live *unstructured.Unstructured) error {
	d, err := DeclOf(u)
	if err != nil || d == nil || len(d.Generate) == 0 {
		return err
	}
	var have map[string]any
	if live != nil {
		have, _, _ = unstructured.NestedMap(live.Object, "data")
	}
	data, _, _ := unstructured.NestedMap(u.Object, "data")
	if data == nil {
		data = map[string]any{}
	}
	for _, g := range d.Generate {
		if v, ok := have[g.Key].(string); ok {
			data[g.Key] = v
			if g.Kind == GenSSHEd25519 {
				pub, err := keptPublicKey(have, g.Key)
				if err != nil {
					return fmt.Errorf("%s: %w", d.Secret, err)
				}
				data[g.Key+".pub"] = pub
			}
			continue
		}
		vals, err := g.value()
		if err != nil {
			return fmt.Errorf("%s: generate %s: %w", d.Secret, g.Key, err)
		}
		for k, v := range vals {
			data[k] = base64.StdEncoding.EncodeToString(v)
		}
	}
	return unstructured.SetNestedMap(u.Object, data, "data")
}

// keptPublicKey is the live public key of the ssh-ed25519 key key, derived
// from the live private key when the cluster lacks it.
func keptPublicKey(have map[string]any, key string) (string, error) {
	if v, ok := have[key+".pub"].(string); ok {
		return v, nil
	}
	block, err := base64.StdEncoding.DecodeString(have[key].(string))
	if err == nil {
		var priv any
		if priv, err = ssh.ParseRawPrivateKey(block); err == nil {
			var pub []byte
			if pub, err = publicLine(priv); err == nil {
				return base64.StdEncoding.EncodeToString(pub), nil
			}
		}
	}
	return "", fmt.Errorf("key %s holds no OpenSSH private key (%v): delete the key from the Secret and deploy again to generate a new one", key, err)
}

// redactSecret replaces, in a copy about to be shown or recorded, the
// values of the generated and captured keys of a Secret by Redacted; every
// value when its declarations do not parse.
func redactSecret(u *unstructured.Unstructured) {
	if u.GetKind() != "Secret" || u.GetAPIVersion() != "v1" {
		return
	}
	data, _, _ := unstructured.NestedMap(u.Object, "data")
	if len(data) == 0 {
		return
	}
	d, err := declOf(u, false)
	if err == nil && d == nil {
		return
	}
	for k := range data {
		if err != nil || d.secretKey(k) {
			data[k] = Redacted
		}
	}
	_ = unstructured.SetNestedMap(u.Object, data, "data")
}

// foldLines folds an error's text onto one line.
func foldLines(s string) string { return strings.Join(strings.Fields(s), " ") }
