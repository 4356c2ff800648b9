package ui

import (
	"bytes"
	"encoding/json"
	"strings"
	"testing"

	"go.yaml.in/yaml/v3"
)

type job struct {
	ID    string   `json:"id"`
	State string   `json:"state"`
	Tags  []string `json:"tags,omitempty"`
	N     int      `json:"n"`
}

func TestWrite(t *testing.T) {
	tests := []struct {
		name       string
		v          any
		json, yaml string
	}{
		{"nil slice is an empty list", []job(nil), "[]\n", "[]\n"},
		{"empty slice", []job{}, "[]\n", "[]\n"},
		{"keys keep their order", job{ID: "b", State: "queued", N: 2},
			"{\n  \"id\": \"b\",\n  \"state\": \"queued\",\n  \"n\": 2\n}\n",
			"id: b\nstate: queued\nn: 2\n"},
		{"list of objects", []job{{ID: "1", State: "ok", Tags: []string{"x"}}},
			"[\n  {\n    \"id\": \"1\",\n    \"state\": \"ok\",\n    \"tags\": [\n      \"x\"\n    ],\n    \"n\": 0\n  }\n]\n",
			"- id: \"1\"\n  state: ok\n  tags:\n    - x\n  n: 0\n"},
		{"strings that read as other types stay strings", map[string]string{"a": "true", "b": "1.5", "c": "null", "d": "~", "e": "- x", "f": "a: b"},
			"", "a: \"true\"\nb: \"1.5\"\nc: \"null\"\nd: \"~\"\ne: '- x'\nf: 'a: b'\n"},
		{"multi-line strings", map[string]string{"log": "one\ntwo\n"}, "", "log: |\n  one\n  two\n"},
		{"nil map", map[string]int(nil), "null\n", "null\n"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			var j, y bytes.Buffer
			if err := Write(&j, JSON, tt.v); err != nil {
				t.Fatal(err)
			}
			if err := Write(&y, YAML, tt.v); err != nil {
				t.Fatal(err)
			}
			if tt.json != "" && j.String() != tt.json {
				t.Errorf("json:\n%s\nwant\n%s", j.String(), tt.json)
			}
			if y.String() != tt.yaml {
				t.Errorf("yaml:\n%s\nwant\n%s", y.String(), tt.yaml)
			}
			sameData(t, j.Bytes(), y.Bytes())
		})
	}
	if err := Write(new(bytes.Buffer), Text, 1); err == nil {
		t.Error("Write accepted the text format")
	}
}

// sameData fails unless the JSON and the YAML document decode to the same
// value.
func sameData(t *testing.T, j, y []byte) {
	t.Helper()
	var fromJSON, fromYAML any
	if err := json.Unmarshal(j, &fromJSON); err != nil {
		t.Fatalf("json: %v\n%s", err, j)
	}
	if err := yaml.Unmarshal(y, &fromYAML); err != nil {
		t.Fatalf("yaml: %v\n%s", err, y)
	}
	// YAML decodes integers as int, JSON as float64: compare through JSON.
	a, _ := json.Marshal(fromJSON)
	b, err := json.Marshal(fromYAML)
	if err != nil {
		t.Fatalf("yaml value %#v: %v", fromYAML, err)
	}
	if !bytes.Equal(a, b) {
		t.Errorf("yaml means %s, json %s\nyaml:\n%s", b, a, y)
	}
}

func TestParseFormat(t *testing.T) {
	for _, s := range []string{"text", "json", "yaml"} {
		f, err := ParseFormat(s)
		if err != nil || string(f) != s || f.Data() != (s != "text") {
			t.Errorf("ParseFormat(%q) = %q, %v", s, f, err)
		}
	}
	if _, err := ParseFormat("xml"); err == nil || !strings.Contains(err.Error(), "use text, json or yaml") {
		t.Errorf("xml: %v", err)
	}
}

// FuzzWriteYAML: whatever strings a result holds (names, log lines,
// reasons taken from outside), its YAML means what its JSON means.
func FuzzWriteYAML(f *testing.F) {
	for _, s := range []string{"", "yes", "0x1F", "1e3", "- a", "#x", "a\n b", "\t", "\x00", "'\"", "\u2028", "key: value", "&a *a", "!tag"} {
		f.Add(s, s)
	}
	f.Fuzz(func(t *testing.T, k, v string) {
		val := map[string]any{k: []any{v, map[string]string{v: k}}}
		var j, y bytes.Buffer
		if err := Write(&j, JSON, val); err != nil {
			return // not representable as JSON: nothing to compare
		}
		if err := Write(&y, YAML, val); err != nil {
			t.Fatalf("yaml of %q: %v", val, err)
		}
		sameData(t, j.Bytes(), y.Bytes())
	})
}
