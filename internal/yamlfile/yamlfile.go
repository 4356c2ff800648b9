// Package yamlfile owns how the stack's config files are decoded:
// config/sources.yaml, config/git.yaml, config/policy.yaml,
// ci/pipelines.yaml, images/*/image.yaml and infra/*/environment.yaml are
// all read by the same strict rules, checked here before the file's own
// package looks at what the values mean:
//
//   - UTF-8 text without control characters, at most Options.MaxSize bytes;
//   - exactly one YAML document: an empty file (nothing, only comments, or
//     a null document) and a second document are errors;
//   - no key given twice in any mapping, at any depth, block or flow style;
//   - keys are plain scalars; no anchors, aliases, merge keys (<<) or
//     custom tags;
//   - with Decode, no key the Go type does not name (by its yaml tags), and
//     every value of the shape its field wants (a mapping, a list, a single
//     value, true or false, a whole number).
//
// Parse gives the checked node tree, for parsers that need lines, key
// order or positions (sources.yaml is edited in place); Decode fills a Go
// value. Either way every problem is one line, FILE:LINE: what is wrong:
// how to fix it (FILE: alone when no line applies), as an *Error; several
// problems are joined with errors.Join. Errorf, UnknownKey and Describe let
// the parsers word their own checks the same way.
package yamlfile

import (
	"bytes"
	"errors"
	"fmt"
	"io"
	"reflect"
	"regexp"
	"slices"
	"strconv"
	"strings"
	"time"
	"unicode/utf8"

	"go.yaml.in/yaml/v3"
)

// DefaultMaxSize bounds a config file when Options.MaxSize is 0.
const DefaultMaxSize = 1 << 20

// maxProblems is how many problems one error lists before it stops.
const maxProblems = 20

// Options are the per-file settings of Parse and Decode.
type Options struct {
	// MaxSize bounds the file's size in bytes; 0 means DefaultMaxSize.
	MaxSize int
	// Empty says how to fix an empty file, as in "empty file: EMPTY".
	Empty string
}

// ErrEmpty is matched (errors.Is) by the error for an empty file, for the
// files whose absence of content means defaults.
var ErrEmpty = errors.New("empty file")

// Error is one problem at one line of a file (Line 0: the whole file).
type Error struct {
	File  string
	Line  int
	Msg   string
	empty bool
}

func (e *Error) Error() string {
	if e.Line > 0 {
		return fmt.Sprintf("%s:%d: %s", e.File, e.Line, e.Msg)
	}
	return fmt.Sprintf("%s: %s", e.File, e.Msg)
}

// Is reports whether e is the empty-file error when target is ErrEmpty.
func (e *Error) Is(target error) bool { return e.empty && target == ErrEmpty }

// Errorf returns a problem at node n of file (n nil: the whole file).
func Errorf(file string, n *yaml.Node, format string, args ...any) *Error {
	e := &Error{File: file, Msg: oneLine(fmt.Sprintf(format, args...))}
	if n != nil {
		e.Line = n.Line
	}
	return e
}

// UnknownKey is the problem of a key that context (a key path such as
// repos.stack, or a word such as "the top level") does not know; known
// lists the keys it does.
func UnknownKey(file string, key *yaml.Node, context string, known []string) *Error {
	known = slices.Clone(known)
	slices.Sort(known)
	return Errorf(file, key, "unknown key %q in %s: remove it or fix its spelling (known: %s)", key.Value, context, strings.Join(known, ", "))
}

// Describe names what a node is, for messages: "a mapping", "a list",
// "empty", or the type and text of a scalar (int "5").
func Describe(n *yaml.Node) string {
	switch n.Kind {
	case yaml.MappingNode:
		return "a mapping"
	case yaml.SequenceNode:
		return "a list"
	case yaml.AliasNode:
		return "an alias"
	case yaml.ScalarNode:
		if n.Tag == "!!null" {
			return "empty"
		}
		v := n.Value
		if len(v) > 40 {
			i := 40
			for i > 0 && !utf8.RuneStart(v[i]) {
				i--
			}
			v = v[:i] + "..."
		}
		return fmt.Sprintf("%s %q", strings.TrimPrefix(n.Tag, "!!"), v)
	}
	return "something else"
}

// First returns the first problem of an error that joins several.
func First(err error) error {
	if j, ok := err.(interface{ Unwrap() []error }); ok {
		if errs := j.Unwrap(); len(errs) > 0 {
			return First(errs[0])
		}
	}
	return err
}

// Parse checks data, the content of file, and returns the root node of its
// one document (a mapping, a list or a scalar: the caller says which it
// wants).
func Parse(file string, data []byte, o Options) (*yaml.Node, error) {
	max := o.MaxSize
	if max <= 0 {
		max = DefaultMaxSize
	}
	if len(data) > max {
		return nil, &Error{File: file, Msg: fmt.Sprintf("the file is %d bytes, larger than the %d allowed: split it or trim it", len(data), max)}
	}
	if err := checkText(file, data); err != nil {
		return nil, err
	}
	dec := yaml.NewDecoder(bytes.NewReader(data))
	var doc yaml.Node
	if err := dec.Decode(&doc); err != nil {
		if errors.Is(err, io.EOF) {
			return nil, emptyError(file, o)
		}
		return nil, syntaxError(file, data, err)
	}
	var extra yaml.Node
	switch err := dec.Decode(&extra); {
	case errors.Is(err, io.EOF):
	case err != nil:
		return nil, syntaxError(file, data, err)
	default:
		return nil, Errorf(file, &extra, "more than one YAML document: keep one document per file")
	}
	if len(doc.Content) != 1 {
		return nil, emptyError(file, o)
	}
	root := doc.Content[0]
	if root.Kind == yaml.ScalarNode && root.Tag == "!!null" && root.Anchor == "" {
		return nil, emptyError(file, o)
	}
	p := &problems{file: file}
	p.walk(root, "")
	if err := p.err(); err != nil {
		return nil, err
	}
	return root, nil
}

// Decode checks data, the content of file, against the type v points to,
// then decodes it into v.
func Decode(file string, data []byte, v any, o Options) error {
	rv := reflect.ValueOf(v)
	if rv.Kind() != reflect.Pointer || rv.IsNil() {
		panic("yamlfile.Decode: v must be a non-nil pointer")
	}
	root, err := Parse(file, data, o)
	if err != nil {
		return err
	}
	p := &problems{file: file}
	p.shape(root, rv.Type().Elem(), "")
	if err := p.err(); err != nil {
		return err
	}
	// The checks above leave nothing for yaml to refuse; it still decodes
	// strictly, so that what they missed is an error too.
	dec := yaml.NewDecoder(bytes.NewReader(data))
	dec.KnownFields(true)
	if err := dec.Decode(v); err != nil {
		return syntaxError(file, data, err)
	}
	return nil
}

func emptyError(file string, o Options) *Error {
	fix := o.Empty
	if fix == "" {
		fix = "write the file's settings"
	}
	return &Error{File: file, Msg: "empty file: " + fix, empty: true}
}

// problems collects the problems of one file.
type problems struct {
	file string
	list []error
}

func (p *problems) add(n *yaml.Node, format string, args ...any) {
	p.list = append(p.list, Errorf(p.file, n, format, args...))
}

func (p *problems) err() error {
	if len(p.list) > maxProblems {
		more := len(p.list) - maxProblems
		p.list = append(p.list[:maxProblems], &Error{File: p.file, Msg: fmt.Sprintf("%d more problems not shown: fix the ones above first", more)})
	}
	return errors.Join(p.list...)
}

// A path names a place in the document: "" is the top level, then keys
// joined by dots and list items by their index: repos.stack.read[0].
func where(path string) string {
	if path == "" {
		return "the top level"
	}
	return path
}

// subject is where, as the subject of a sentence about a value.
func subject(path string) string {
	if path == "" {
		return "the file"
	}
	return path
}

// KeyPath is the path of key in the mapping at path ("" for the top
// level), as messages write it: repos.stack, pipelines."a b".
func KeyPath(path, key string) string {
	if !plainKey.MatchString(key) {
		key = strconv.Quote(key)
	}
	if path == "" {
		return key
	}
	return path + "." + key
}

var plainKey = regexp.MustCompile(`^[A-Za-z0-9_][A-Za-z0-9_/-]*$`)

func elem(path string, i int) string { return fmt.Sprintf("%s[%d]", path, i) }

// standardTags are the tags a config file may carry, written or resolved.
var standardTags = []string{"", "!", "!!str", "!!int", "!!float", "!!bool", "!!null", "!!map", "!!seq", "!!timestamp", "!!binary"}

// walk checks the syntax rules of every node under n.
func (p *problems) walk(n *yaml.Node, path string) {
	if n.Kind == yaml.AliasNode {
		p.add(n, "YAML alias *%s: anchors and aliases are not supported: write the value out", n.Value)
		return
	}
	p.node(n)
	switch n.Kind {
	case yaml.MappingNode:
		seen := map[string]int{}
		for i := 0; i+1 < len(n.Content); i += 2 {
			k, v := n.Content[i], n.Content[i+1]
			switch {
			case k.Kind == yaml.AliasNode:
				p.add(k, "YAML alias *%s: anchors and aliases are not supported: write the key out", k.Value)
			case k.Kind != yaml.ScalarNode:
				p.node(k)
				p.add(k, "a key in %s is %s: keys must be plain names", where(path), Describe(k))
			case k.Tag == "!!merge":
				p.add(k, "merge key << in %s is not supported: write the keys out", where(path))
			default:
				p.node(k)
				if first, dup := seen[k.Value]; dup {
					p.add(k, "duplicate key %q in %s (first at line %d): keep only one", k.Value, where(path), first)
				} else {
					seen[k.Value] = k.Line
				}
			}
			p.walk(v, KeyPath(path, k.Value))
		}
	case yaml.SequenceNode:
		for i, c := range n.Content {
			p.walk(c, elem(path, i))
		}
	}
}

// node checks the anchor and tag of one node.
func (p *problems) node(n *yaml.Node) {
	if n.Anchor != "" {
		p.add(n, "YAML anchor &%s: anchors and aliases are not supported: write the value out where it is used", n.Anchor)
	}
	if !slices.Contains(standardTags, n.Tag) {
		if strings.HasPrefix(n.Tag, "!!") {
			p.add(n, "YAML tag %s is not supported: remove it", n.Tag)
		} else {
			p.add(n, "custom YAML tag %s is not supported: remove it", n.Tag)
		}
	}
}

var (
	nodeType        = reflect.TypeFor[yaml.Node]()
	unmarshalerType = reflect.TypeFor[yaml.Unmarshaler]()
	durationType    = reflect.TypeFor[time.Duration]()
)

// shape checks that n has the shape Go type t wants, and that every key of
// a struct is one of its fields. The walk has already refused aliases.
func (p *problems) shape(n *yaml.Node, t reflect.Type, path string) {
	if n.Kind == yaml.ScalarNode && n.Tag == "!!null" {
		return // the zero value
	}
	for t.Kind() == reflect.Pointer {
		t = t.Elem()
	}
	if t == nodeType || t.Implements(unmarshalerType) || reflect.PointerTo(t).Implements(unmarshalerType) {
		return // decodes itself
	}
	switch t.Kind() {
	case reflect.Struct:
		if !p.want(n, yaml.MappingNode, path) {
			return
		}
		fs := fieldsOf(t)
		for i := 0; i+1 < len(n.Content); i += 2 {
			k, v := n.Content[i], n.Content[i+1]
			ft, ok := fs.types[k.Value]
			if !ok && fs.rest != nil {
				ft, ok = fs.rest, true
			}
			if !ok {
				p.list = append(p.list, UnknownKey(p.file, k, where(path), fs.names))
				continue
			}
			p.shape(v, ft, KeyPath(path, k.Value))
		}
	case reflect.Map:
		if !p.want(n, yaml.MappingNode, path) {
			return
		}
		for i := 0; i+1 < len(n.Content); i += 2 {
			p.shape(n.Content[i+1], t.Elem(), KeyPath(path, n.Content[i].Value))
		}
	case reflect.Slice, reflect.Array:
		if t.Elem().Kind() == reflect.Uint8 && n.Tag == "!!binary" {
			return
		}
		if !p.want(n, yaml.SequenceNode, path) {
			return
		}
		for i, c := range n.Content {
			p.shape(c, t.Elem(), elem(path, i))
		}
	case reflect.Bool:
		if n.Kind != yaml.ScalarNode || n.Tag != "!!bool" {
			p.add(n, "%s is %s, not true or false: write true or false", subject(path), Describe(n))
		}
	case reflect.Int, reflect.Int8, reflect.Int16, reflect.Int32, reflect.Int64,
		reflect.Uint, reflect.Uint8, reflect.Uint16, reflect.Uint32, reflect.Uint64, reflect.Uintptr:
		if t == durationType {
			if n.Kind != yaml.ScalarNode {
				p.add(n, "%s is %s, not a duration: write one such as 30m", subject(path), Describe(n))
			}
		} else if n.Kind != yaml.ScalarNode || n.Tag != "!!int" {
			p.add(n, "%s is %s, not a whole number: write a number without quotes", subject(path), Describe(n))
		}
	case reflect.Float32, reflect.Float64:
		if n.Kind != yaml.ScalarNode || (n.Tag != "!!int" && n.Tag != "!!float") {
			p.add(n, "%s is %s, not a number: write a number without quotes", subject(path), Describe(n))
		}
	case reflect.String:
		if n.Kind != yaml.ScalarNode {
			p.add(n, "%s is %s, not a single value: write one value (quoted if need be)", subject(path), Describe(n))
		}
	}
}

func (p *problems) want(n *yaml.Node, kind yaml.Kind, path string) bool {
	if n.Kind == kind {
		return true
	}
	if kind == yaml.MappingNode {
		p.add(n, "%s is %s, not a mapping: write it as key: value lines", subject(path), Describe(n))
	} else {
		p.add(n, "%s is %s, not a list: write it as [a, b] or as lines starting with -", subject(path), Describe(n))
	}
	return false
}

// fields are the keys of a struct type as yaml.v3 decodes them.
type fields struct {
	types map[string]reflect.Type
	names []string
	rest  reflect.Type // value type of an inline map, which takes any key
}

func fieldsOf(t reflect.Type) *fields {
	fs := &fields{types: map[string]reflect.Type{}}
	fs.add(t)
	slices.Sort(fs.names)
	return fs
}

func (fs *fields) add(t reflect.Type) {
	for i := range t.NumField() {
		f := t.Field(i)
		if f.PkgPath != "" && !f.Anonymous {
			continue // unexported
		}
		tag := f.Tag.Get("yaml")
		if tag == "" && !strings.Contains(string(f.Tag), ":") {
			tag = string(f.Tag) // yaml.v3 reads a bare tag as the yaml one
		}
		if tag == "-" {
			continue
		}
		name, opts, _ := strings.Cut(tag, ",")
		if slices.Contains(strings.Split(opts, ","), "inline") {
			ft := f.Type
			for ft.Kind() == reflect.Pointer {
				ft = ft.Elem()
			}
			switch ft.Kind() {
			case reflect.Struct:
				fs.add(ft)
			case reflect.Map:
				fs.rest = ft.Elem()
			}
			continue
		}
		if name == "" {
			name = strings.ToLower(f.Name)
		}
		fs.types[name] = f.Type
		fs.names = append(fs.names, name)
	}
}

// checkText refuses what is not UTF-8 text: YAML has no use for control
// characters, and yaml would refuse them without saying where.
func checkText(file string, data []byte) error {
	for off := 0; off < len(data); {
		r, size := utf8.DecodeRune(data[off:])
		switch {
		case r == utf8.RuneError && size <= 1:
			return &Error{File: file, Line: lineAt(data, off), Msg: fmt.Sprintf("byte %#02x is not UTF-8: save the file as UTF-8 text", data[off])}
		case r == '\t', r == '\n', r == '\r', r == 0x85,
			r >= 0x20 && r <= 0x7e, r >= 0xa0 && r <= 0xd7ff, r >= 0xe000 && r <= 0xfffd, r >= 0x10000:
		default:
			return &Error{File: file, Line: lineAt(data, off), Msg: fmt.Sprintf("control character %U: remove it (in a double-quoted value write it as an escape)", r)}
		}
		off += size
	}
	return nil
}

// lineAt is the 1-based line of byte offset off, counting line breaks as
// YAML does.
func lineAt(data []byte, off int) int {
	line := 1
	for i := 0; i < off && i < len(data); i++ {
		switch {
		case data[i] == '\n':
			line++
		case data[i] == '\r' && (i+1 >= len(data) || data[i+1] != '\n'):
			line++
		case data[i] == 0xc2 && i+1 < len(data) && data[i+1] == 0x85,
			data[i] == 0xe2 && i+2 < len(data) && data[i+1] == 0x80 && (data[i+2] == 0xa8 || data[i+2] == 0xa9):
			line++
		}
	}
	return line
}

var (
	yamlLineRE    = regexp.MustCompile(`^line (\d+): (.*)$`)
	unknownAnchor = regexp.MustCompile(`^unknown anchor '(.*)' referenced$`)
	// composerErrs are yaml's messages that do not come with a line even
	// when the problem is past the first one.
	composerErrs = []string{"anchor '", "document contains excessive aliasing", "attempted to go past the end of stream"}
)

// syntaxHints are how to fix yaml's syntax errors, by a part of their text.
var syntaxHints = []struct{ text, fix string }{
	{"cannot start any token", "quote values that start with @ or a backquote, and indent with spaces, not tabs"},
	{"tab character", "indent with spaces, not tabs"},
	{"mapping values are not allowed", `quote a value that holds ": ", or fix the indentation`},
	{"did not find expected key", "fix the indentation: the keys of one mapping start in the same column"},
	{"could not find expected ':'", "write each key as key: value"},
	{"did not find expected node content", "give the value, or close the [ or { it is in"},
	{"did not find expected ','", "close the [ or { with its ] or }, and separate items with commas"},
	{"unexpected end of stream", "close the quote or bracket that is still open"},
	{"unknown escape character", `in double quotes write a backslash as \\, or use single quotes`},
	{"block sequence entries are not allowed", "start the list on the line after its key, indented"},
	{"did not find expected '-' indicator", "fix the indentation of the list's items"},
	{"exceeded max depth", "nest less deeply"},
	{"tag handle", "remove the tag"},
	{"cannot unmarshal", "write a value of the kind this key takes"},
}

// syntaxError turns an error of yaml into one line per problem, without
// yaml's own prefixes.
func syntaxError(file string, data []byte, err error) error {
	var te *yaml.TypeError
	if errors.As(err, &te) {
		p := &problems{file: file}
		for _, e := range te.Errors {
			p.list = append(p.list, yamlError(file, data, e))
		}
		return p.err()
	}
	return yamlError(file, data, strings.TrimPrefix(err.Error(), "yaml: "))
}

func yamlError(file string, data []byte, msg string) *Error {
	msg = oneLine(msg)
	line := 0
	if m := yamlLineRE.FindStringSubmatch(msg); m != nil {
		line, _ = strconv.Atoi(m[1])
		msg = m[2]
	} else if m := unknownAnchor.FindStringSubmatch(msg); m != nil {
		return &Error{File: file, Line: lineOf(data, "*"+m[1]), Msg: fmt.Sprintf("YAML alias *%s names no anchor: anchors and aliases are not supported: write the value out", m[1])}
	} else if !slices.ContainsFunc(composerErrs, func(s string) bool { return strings.HasPrefix(msg, s) }) {
		// yaml leaves the line out of a syntax error on the first line.
		line = 1
	}
	fix := "fix the YAML syntax at that line"
	for _, h := range syntaxHints {
		if strings.Contains(msg, h.text) {
			fix = h.fix
			break
		}
	}
	return &Error{File: file, Line: line, Msg: "invalid YAML: " + msg + ": " + fix}
}

// lineOf is the line of the first occurrence of s in data, or 0.
func lineOf(data []byte, s string) int {
	i := bytes.Index(data, []byte(s))
	if i < 0 {
		return 0
	}
	return lineAt(data, i)
}

func oneLine(s string) string {
	if !strings.ContainsAny(s, "\r\n") {
		return s
	}
	return strings.Join(strings.Fields(s), " ")
}
