package source

import (
	"fmt"
	"regexp"
	"sort"
	"strconv"
	"strings"
)

// An edit sets one key of one source to a new value. Edits are applied to
// the text of the file, so that everything else (comments, order, quoting,
// blank lines) stays exactly as the user wrote it.
type edit struct {
	src   *Source
	key   string
	value string
}

// applyEdits returns data with the edits applied. A key the entry already
// has is rewritten in place; a missing key is inserted on a new line after
// the entry's version (or its last key), with the same indentation.
func applyEdits(data []byte, edits []edit) ([]byte, error) {
	lines := splitLines(string(data))
	type insert struct {
		after int // 0-based line index the new line follows
		text  string
	}
	var inserts []insert
	for _, e := range edits {
		p, ok := e.src.fields[e.key]
		if !ok {
			anchor, ok := e.src.fields["version"]
			if !ok {
				return nil, fmt.Errorf("source %q: cannot add %s: the entry has no version line to put it after", e.src.Name, e.key)
			}
			line := lines[anchor.line-1]
			indent := line[:len(line)-len(strings.TrimLeft(line, " -"))]
			indent = strings.Repeat(" ", len(indent))
			inserts = append(inserts, insert{after: anchor.line - 1, text: indent + e.key + ": " + formatScalar(e.value, 0) + "\n"})
			continue
		}
		i := p.line - 1
		if i >= len(lines) {
			return nil, fmt.Errorf("source %q: %s is past the end of the file", e.src.Name, e.key)
		}
		line := lines[i]
		start := byteOffset(line, p.col-1)
		end, err := scalarEnd(line, start, p.flow)
		if err != nil {
			return nil, fmt.Errorf("source %q: cannot rewrite %s at line %d: %v; edit it by hand", e.src.Name, e.key, p.line, err)
		}
		lines[i] = line[:start] + formatScalar(e.value, line[start]) + line[end:]
	}
	sort.SliceStable(inserts, func(a, b int) bool { return inserts[a].after > inserts[b].after })
	for _, in := range inserts {
		lines = append(lines[:in.after+1], append([]string{in.text}, lines[in.after+1:]...)...)
	}
	return []byte(strings.Join(lines, "")), nil
}

// byteOffset converts a 0-based column counted in characters to a byte
// offset in line.
func byteOffset(line string, col int) int {
	for i := range line {
		if col == 0 {
			return i
		}
		col--
	}
	return len(line)
}

// scalarEnd returns the byte offset just past the scalar starting at start.
func scalarEnd(line string, start int, flow bool) (int, error) {
	if start >= len(line) {
		return 0, fmt.Errorf("no value")
	}
	switch line[start] {
	case '"':
		for i := start + 1; i < len(line); i++ {
			switch line[i] {
			case '\\':
				i++
			case '"':
				return i + 1, nil
			}
		}
		return 0, fmt.Errorf("quoted value spans lines")
	case '\'':
		for i := start + 1; i < len(line); i++ {
			if line[i] == '\'' {
				if i+1 < len(line) && line[i+1] == '\'' {
					i++
					continue
				}
				return i + 1, nil
			}
		}
		return 0, fmt.Errorf("quoted value spans lines")
	case '|', '>':
		return 0, fmt.Errorf("block scalar")
	}
	end := len(strings.TrimRight(line, "\r\n"))
	if i := strings.Index(line[start:end], " #"); i >= 0 {
		end = start + i
	}
	if i := strings.IndexAny(line[start:end], ",}]"); flow && i >= 0 {
		end = start + i
	}
	return start + len(strings.TrimRight(line[start:end], " \t")), nil
}

var plainSafeRE = regexp.MustCompile(`^[A-Za-z0-9_./+~=:-][A-Za-z0-9_./+~=:{}-]*$`)

// formatScalar writes v as a YAML scalar, in the quoting style of the value
// it replaces (its first byte), or plain when that is safe.
func formatScalar(v string, style byte) string {
	switch {
	case style == '\'':
		return "'" + strings.ReplaceAll(v, "'", "''") + "'"
	case style == '"' || !plainSafeRE.MatchString(v) || strings.Contains(v, ": ") || looksNonString(v):
		return strconv.Quote(v)
	}
	return v
}

// looksNonString reports whether a plain v would be read back as a number,
// boolean or null.
func looksNonString(v string) bool {
	switch strings.ToLower(v) {
	case "true", "false", "yes", "no", "on", "off", "null", "~", "":
		return true
	}
	_, err := strconv.ParseFloat(v, 64)
	return err == nil
}

// splitLines splits s after each line break as YAML counts them: "\r\n",
// "\n" or a lone "\r".
func splitLines(s string) []string {
	var lines []string
	start := 0
	for i := 0; i < len(s); i++ {
		switch {
		case s[i] == '\n':
		case s[i] == '\r' && (i+1 == len(s) || s[i+1] != '\n'):
		default:
			continue
		}
		lines = append(lines, s[start:i+1])
		start = i + 1
	}
	return append(lines, s[start:])
}
