package yamlfile

import (
	"bytes"
	"errors"
	"io"
	"os"
	"path/filepath"
	"reflect"
	"regexp"
	"strings"
	"testing"
	"time"

	"go.yaml.in/yaml/v3"
)

type testRule struct {
	Refs   []string `yaml:"refs"`
	Quorum *int     `yaml:"quorum"`
	Hard   bool     `yaml:"hardware"`
	Note   string   `yaml:"note,omitempty"`
	Skip   string   `yaml:"-"`
}

type testExtra struct {
	Extra string `yaml:"extra"`
}

type testDoc struct {
	Name      string               `yaml:"name"`
	Rules     map[string]*testRule `yaml:"rules"`
	List      []testRule           `yaml:"list"`
	Any       any                  `yaml:"any"`
	Node      yaml.Node            `yaml:"node"`
	Every     time.Duration        `yaml:"every"`
	Ratio     float64              `yaml:"ratio"`
	Untagged  string
	testExtra `yaml:",inline"`
}

func TestDecode(t *testing.T) {
	var d testDoc
	err := Decode("f.yaml", []byte(`
name: x
rules:
  a: {refs: [refs/heads/a], quorum: 2, hardware: true}
  b:
list:
  - note: n
any: [1, {b: c}]
node: {free: form}
every: 90s
ratio: 1
untagged: u
extra: e
`), &d, Options{})
	if err != nil {
		t.Fatal(err)
	}
	if d.Name != "x" || *d.Rules["a"].Quorum != 2 || !d.Rules["a"].Hard || d.Rules["b"] != nil || d.List[0].Note != "n" ||
		d.Every != 90*time.Second || d.Ratio != 1 || d.Untagged != "u" || d.Extra != "e" || d.Node.Kind != yaml.MappingNode {
		t.Errorf("decoded %+v", d)
	}
}

func TestDecodeErrors(t *testing.T) {
	for _, tc := range []struct{ in, want string }{
		{"nme: x\n", `f.yaml:1: unknown key "nme" in the top level: remove it or fix its spelling (known: any, every, extra, list, name, node, ratio, rules, untagged)`},
		{"rules:\n  a: {reefs: []}\n", `f.yaml:2: unknown key "reefs" in rules.a: remove it or fix its spelling (known: hardware, note, quorum, refs)`},
		{"list:\n  - {}\n  - skip: x\n", `f.yaml:3: unknown key "skip" in list[1]`},
		{"- a\n", "f.yaml:1: the file is a list, not a mapping: write it as key: value lines"},
		{"rules: [a]\n", "f.yaml:1: rules is a list, not a mapping: write it as key: value lines"},
		{"list: {a: b}\n", "f.yaml:1: list is a mapping, not a list: write it as [a, b] or as lines starting with -"},
		{"rules: {a: {refs: refs/heads/a}}\n", `f.yaml:1: rules.a.refs is str "refs/heads/a", not a list`},
		{"rules: {a: {hardware: yes}}\n", `f.yaml:1: rules.a.hardware is str "yes", not true or false: write true or false`},
		{"rules: {a: {quorum: \"2\"}}\n", `f.yaml:1: rules.a.quorum is str "2", not a whole number: write a number without quotes`},
		{"rules: {a: {quorum: 1.5}}\n", `rules.a.quorum is float "1.5", not a whole number`},
		{"name: [a]\n", "f.yaml:1: name is a list, not a single value: write one value (quoted if need be)"},
		{"ratio: x\n", `ratio is str "x", not a number`},
		{"every: [1]\n", "every is a list, not a duration"},
		{"every: soon\n", "f.yaml:1: invalid YAML: cannot unmarshal !!str `soon` into time.Duration: write a value of the kind this key takes"},
	} {
		var d testDoc
		err := Decode("f.yaml", []byte(tc.in), &d, Options{})
		if err == nil || !strings.Contains(err.Error(), tc.want) {
			t.Errorf("Decode(%q) = %v, want %q", tc.in, err, tc.want)
		}
		checkLines(t, "f.yaml", err)
	}
}

func TestParseErrors(t *testing.T) {
	for _, tc := range []struct{ in, want string }{
		{"", "f.yaml: empty file: write the file's settings"},
		{"# only a comment\n", "f.yaml: empty file"},
		{"---\n", "f.yaml: empty file"},
		{"~\n", "f.yaml: empty file"},
		{"a: 1\n---\nb: 2\n", "f.yaml:2: more than one YAML document: keep one document per file"},
		{"a: 1\n---\n", "f.yaml:2: more than one YAML document"},
		{"a: 1\n--- [\n", "f.yaml:2: invalid YAML"},
		{"a: [\n", "f.yaml:1: invalid YAML: did not find expected node content: give the value, or close the [ or { it is in"},
		{"\t", "f.yaml:1: invalid YAML: found character that cannot start any token: quote values that start with @ or a backquote, and indent with spaces, not tabs"},
		{"a:\n  b: @x\n", "f.yaml:2: invalid YAML: found character that cannot start any token: quote values"},
		{"a: b: c\n", `f.yaml:1: invalid YAML: mapping values are not allowed in this context: quote a value that holds ": ", or fix the indentation`},
		{"a:\n  b: 1\n c: 2\n", "f.yaml:2: invalid YAML: did not find expected key: fix the indentation"},
		{"a: 'x\n", "f.yaml:2: invalid YAML: found unexpected end of stream: close the quote or bracket that is still open"},
		{"a: 1\nb: \x01\n", "f.yaml:2: control character U+0001: remove it"},
		{"a: 1\r\nb: 2\r\nc: \xff\n", "f.yaml:3: byte 0xff is not UTF-8: save the file as UTF-8 text"},
		{"a: 1\nb: *x\n", "f.yaml:2: YAML alias *x names no anchor: anchors and aliases are not supported"},
		{"a: &x 1\nb: *x\n", "f.yaml:1: YAML anchor &x: anchors and aliases are not supported: write the value out where it is used"},
		{"a: &x 1\nb: *x\n", "f.yaml:2: YAML alias *x: anchors and aliases are not supported: write the value out"},
		{"a: [&x 1]\n", "f.yaml:1: YAML anchor &x"},
		{"<<: {a: 1}\nb: 2\n", "f.yaml:1: merge key << in the top level is not supported: write the keys out"},
		{"a: !foo 1\n", "f.yaml:1: custom YAML tag !foo is not supported: remove it"},
		{"a: !!set {x}\n", "f.yaml:1: YAML tag !!set is not supported: remove it"},
		{"? [a]\n: 1\n", "f.yaml:1: a key in the top level is a list: keys must be plain names"},
		{"a: {? {b: c} : d}\n", "f.yaml:1: a key in a is a mapping: keys must be plain names"},
		{"a: 1\n#" + strings.Repeat("#", DefaultMaxSize), "f.yaml: the file is 1048582 bytes, larger than the 1048576 allowed: split it or trim it"},
	} {
		_, err := Parse("f.yaml", []byte(tc.in), Options{})
		if err == nil || !strings.Contains(err.Error(), tc.want) {
			t.Errorf("Parse(%.80q) = %v, want %q", tc.in, err, tc.want)
		}
		checkLines(t, "f.yaml", err)
	}
}

// TestDuplicateKeys: a key given twice is refused in every mapping, at any
// depth and in either style, naming both lines; yaml itself does not when
// it builds a node tree.
func TestDuplicateKeys(t *testing.T) {
	for _, tc := range []struct{ in, want string }{
		{"a: 1\nb: 2\na: 3\n", `f.yaml:3: duplicate key "a" in the top level (first at line 1): keep only one`},
		{"a:\n  b: 1\n  c: 2\n  b: 3\n", `f.yaml:4: duplicate key "b" in a (first at line 2)`},
		{"a:\n  - x: 1\n    x: 2\n", `f.yaml:3: duplicate key "x" in a[0] (first at line 2)`},
		{"a: {b: {c: 1,\n  c: 2}}\n", `f.yaml:2: duplicate key "c" in a.b (first at line 1)`},
		{"a:\n  - [{x: 1, y: 2}, {y: 3, y: 4}]\n", `f.yaml:2: duplicate key "y" in a[0][1] (first at line 2)`},
		{"1: a\n\"1\": b\n", `f.yaml:2: duplicate key "1" in the top level (first at line 1)`},
		{"\"a.b\":\n  c: 1\n  c: 2\n", `f.yaml:3: duplicate key "c" in "a.b" (first at line 2)`},
	} {
		var n yaml.Node
		if err := yaml.Unmarshal([]byte(tc.in), &n); err != nil {
			t.Fatalf("yaml refuses %q itself: %v", tc.in, err)
		}
		_, err := Parse("f.yaml", []byte(tc.in), Options{})
		if err == nil || !strings.Contains(err.Error(), tc.want) {
			t.Errorf("Parse(%q) = %v, want %q", tc.in, err, tc.want)
		}
		var v map[string]any
		if err := Decode("f.yaml", []byte(tc.in), &v, Options{}); err == nil || !strings.Contains(err.Error(), tc.want) {
			t.Errorf("Decode(%q) = %v, want %q", tc.in, err, tc.want)
		}
	}
}

func TestEveryProblem(t *testing.T) {
	_, err := Parse("f.yaml", []byte("a: 1\na: 2\nb: &x 3\nc: !t 4\n"), Options{})
	want := []string{
		`f.yaml:2: duplicate key "a" in the top level (first at line 1): keep only one`,
		`f.yaml:3: YAML anchor &x: anchors and aliases are not supported: write the value out where it is used`,
		`f.yaml:4: custom YAML tag !t is not supported: remove it`,
	}
	if err == nil || err.Error() != strings.Join(want, "\n") {
		t.Errorf("got %v, want\n%s", err, strings.Join(want, "\n"))
	}
	if First(err).Error() != want[0] {
		t.Errorf("First = %v", First(err))
	}
	var e *Error
	if !errors.As(err, &e) || e.Line != 2 {
		t.Errorf("not an *Error: %#v", err)
	}
	_, err = Parse("f.yaml", []byte(strings.Repeat("a: 1\n", 100)), Options{})
	if lines := strings.Split(err.Error(), "\n"); len(lines) != maxProblems+1 || lines[maxProblems] != "f.yaml: 79 more problems not shown: fix the ones above first" {
		t.Errorf("%d lines, last %q", len(lines), lines[len(lines)-1])
	}
}

func TestOptions(t *testing.T) {
	_, err := Parse("f", []byte("a: 1234\n"), Options{MaxSize: 4})
	if err == nil || err.Error() != "f: the file is 8 bytes, larger than the 4 allowed: split it or trim it" {
		t.Errorf("MaxSize: %v", err)
	}
	for _, in := range []string{"", "# c\n", "---\n", "null\n"} {
		var v map[string]any
		err := Decode("f", []byte(in), &v, Options{Empty: "declare at least `x: {}`"})
		if !errors.Is(err, ErrEmpty) || err.Error() != "f: empty file: declare at least `x: {}`" {
			t.Errorf("%q: %v", in, err)
		}
	}
	if _, err := Parse("f", []byte("a: 1\n"), Options{}); errors.Is(err, ErrEmpty) {
		t.Error("a full file is empty")
	}
	if err := Decode("f", []byte("a: [\n"), new(map[string]any), Options{}); errors.Is(err, ErrEmpty) {
		t.Error("a syntax error is an empty file")
	}
}

func TestHelpers(t *testing.T) {
	k := &yaml.Node{Kind: yaml.ScalarNode, Tag: "!!str", Value: "bar", Line: 7}
	if got := UnknownKey("f", k, "x.y", []string{"b", "a"}).Error(); got != `f:7: unknown key "bar" in x.y: remove it or fix its spelling (known: a, b)` {
		t.Errorf("UnknownKey = %s", got)
	}
	if got := Errorf("f", nil, "what:\nhow").Error(); got != "f: what: how" {
		t.Errorf("Errorf = %q", got)
	}
	long := &yaml.Node{Kind: yaml.ScalarNode, Tag: "!!str", Value: strings.Repeat("é", 30)}
	if got := Describe(long); got != `str "`+strings.Repeat("é", 20)+`..."` {
		t.Errorf("Describe = %s", got)
	}
}

// TestCommittedFiles: the repository's own config files pass the syntax
// rules (their packages check the rest).
func TestCommittedFiles(t *testing.T) {
	files := committedFiles(t)
	if len(files) < 6 {
		t.Fatalf("found only %v", files)
	}
	for _, f := range files {
		data, err := os.ReadFile(f)
		if err != nil {
			t.Fatal(err)
		}
		if _, err := Parse(f, data, Options{}); err != nil {
			t.Error(err)
		}
	}
}

func committedFiles(t testing.TB) []string {
	var files []string
	for _, pat := range []string{"config/*.yaml", "ci/pipelines.yaml", "images/*/image.yaml", "infra/*/environment.yaml"} {
		m, err := filepath.Glob(filepath.Join("..", "..", pat))
		if err != nil {
			t.Fatal(err)
		}
		files = append(files, m...)
	}
	return files
}

// lineRE is one problem: FILE[:LINE]: what is wrong: how to fix it.
var lineRE = regexp.MustCompile(`^([^:]+)(:[1-9][0-9]*)?: \S.*: \S`)

// checkLines checks that every line of err names file, a line if any, and
// says what is wrong and how to fix it, without yaml's own prefixes.
func checkLines(t testing.TB, file string, err error) {
	t.Helper()
	if err == nil {
		return
	}
	for _, l := range strings.Split(err.Error(), "\n") {
		m := lineRE.FindStringSubmatch(l)
		if m == nil || m[1] != file || strings.Contains(l[len(m[1]+m[2]):], "yaml: ") || strings.Contains(l, "unmarshal errors") {
			t.Errorf("error line %q is not FILE:LINE: what: fix", l)
		}
	}
}

// FuzzDecode: no input panics; every error is lines of FILE:LINE: what:
// fix; whatever is accepted is one document, without a duplicate key at
// any level, that yaml decodes strictly to the same value.
func FuzzDecode(f *testing.F) {
	for _, s := range []string{
		"name: x\nrules:\n  a: {refs: [refs/heads/a], quorum: 2, hardware: true}\n  b:\nlist:\n  - note: n\n",
		"any: [1, {b: c}]\nnode: {free: form}\nevery: 90s\nratio: 1.5\nextra: e\n",
		"a: 1\na: 2\n", "rules: {a: {b: 1, b: 2}}\n", "list: [{note: a, note: b}]\n",
		"a: &x 1\nb: *x\n", "<<: {name: x}\n", "name: !foo x\n", "? [a]\n: b\n",
		"", "---\n", "name: x\n---\nname: y\n", "name: [\n", "\t", "name: \xff\n", "name: \x01\n",
		"rules: {a: {quorum: \"1\"}}\n", "rules: {a: {hardware: yes}}\n", "list: {a: b}\n",
	} {
		f.Add([]byte(s))
	}
	for _, file := range committedFiles(f) {
		if data, err := os.ReadFile(file); err == nil {
			f.Add(data)
		}
	}
	f.Fuzz(func(t *testing.T, data []byte) {
		var d testDoc
		err := Decode("f.yaml", data, &d, Options{})
		root, perr := Parse("f.yaml", data, Options{})
		if (perr != nil) && err == nil {
			t.Fatalf("Decode accepted what Parse refuses: %v", perr)
		}
		if err != nil {
			checkLines(t, "f.yaml", err)
			checkLines(t, "f.yaml", perr)
			return
		}
		// One document.
		dec := yaml.NewDecoder(bytes.NewReader(data))
		var doc, extra yaml.Node
		if dec.Decode(&doc) != nil || dec.Decode(&extra) != io.EOF {
			t.Fatal("accepted more or less than one document")
		}
		// No key twice, no alias, anywhere.
		var check func(n *yaml.Node)
		check = func(n *yaml.Node) {
			if n.Kind == yaml.AliasNode || n.Anchor != "" {
				t.Fatal("accepted an anchor or alias")
			}
			if n.Kind == yaml.MappingNode {
				seen := map[string]bool{}
				for i := 0; i < len(n.Content); i += 2 {
					if seen[n.Content[i].Value] {
						t.Fatalf("accepted key %q twice", n.Content[i].Value)
					}
					seen[n.Content[i].Value] = true
				}
			}
			for _, c := range n.Content {
				check(c)
			}
		}
		check(root)
		// yaml agrees, strictly.
		var strict testDoc
		dec = yaml.NewDecoder(bytes.NewReader(data))
		dec.KnownFields(true)
		if err := dec.Decode(&strict); err != nil {
			t.Fatalf("yaml refuses what Decode accepted: %v", err)
		}
		if !reflect.DeepEqual(strict, d) {
			t.Fatalf("decoded %+v, yaml %+v", d, strict)
		}
	})
}
