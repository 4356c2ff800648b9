// Package ui owns how stack talks to the person or script running it: tables
// for people and JSON or YAML for scripts as results, and progress that is a
// live line on a terminal and plain lines everywhere else. Results go to
// stdout, progress to stderr.
package ui

import (
	"bytes"
	"encoding/json"
	"fmt"
	"io"
	"os"
	"reflect"
	"strings"
	"sync"
	"text/tabwriter"
	"time"

	"go.yaml.in/yaml/v3"
	"golang.org/x/term"
)

// Format is how results are printed.
type Format string

// The output formats every command that prints results understands.
const (
	Text Format = "text"
	JSON Format = "json"
	YAML Format = "yaml"
)

// ParseFormat checks a --output value.
func ParseFormat(s string) (Format, error) {
	switch Format(s) {
	case Text, JSON, YAML:
		return Format(s), nil
	}
	return "", fmt.Errorf("unknown output format %q: use text, json or yaml", s)
}

// Data reports whether f is for scripts (json, yaml): the command prints
// its result with Write, and nothing else on stdout.
func (f Format) Data() bool { return f == JSON || f == YAML }

// Write prints the result v for scripts: indented JSON (f is JSON) or YAML
// (f is YAML) followed by a newline. YAML holds what the JSON holds, under
// the same names and in the same order. A nil slice is printed as an empty
// list, so that a script always gets a list where one is promised.
func Write(w io.Writer, f Format, v any) error {
	if rv := reflect.ValueOf(v); rv.Kind() == reflect.Slice && rv.IsNil() {
		v = []any{}
	}
	var buf bytes.Buffer
	enc := json.NewEncoder(&buf)
	enc.SetIndent("", "  ")
	if err := enc.Encode(v); err != nil {
		return err
	}
	switch f {
	case JSON:
		_, err := w.Write(buf.Bytes())
		return err
	case YAML:
		out, err := jsonToYAML(buf.Bytes())
		if err != nil {
			return err
		}
		_, err = w.Write(out)
		return err
	}
	return fmt.Errorf("ui.Write: format %q is not for scripts", f)
}

// jsonToYAML converts one JSON document to block-style YAML, keeping the
// order of object keys: it builds the YAML node tree from the JSON tokens,
// each scalar tagged with its JSON type, and leaves the encoder to quote a
// string wherever its plain form would read as something else.
func jsonToYAML(data []byte) ([]byte, error) {
	dec := json.NewDecoder(bytes.NewReader(data))
	dec.UseNumber()
	n, err := yamlNode(dec)
	if err != nil {
		return nil, err
	}
	var out bytes.Buffer
	enc := yaml.NewEncoder(&out)
	enc.SetIndent(2)
	if err := enc.Encode(n); err != nil {
		return nil, err
	}
	if err := enc.Close(); err != nil {
		return nil, err
	}
	return out.Bytes(), nil
}

// yamlNode reads the next JSON value from dec as a YAML node.
func yamlNode(dec *json.Decoder) (*yaml.Node, error) {
	tok, err := dec.Token()
	if err != nil {
		return nil, err
	}
	scalar := func(tag, value string) *yaml.Node {
		return &yaml.Node{Kind: yaml.ScalarNode, Tag: tag, Value: value}
	}
	switch tok := tok.(type) {
	case json.Delim:
		n := &yaml.Node{Kind: yaml.SequenceNode, Tag: "!!seq"}
		if tok == '{' {
			n.Kind, n.Tag = yaml.MappingNode, "!!map"
		}
		for dec.More() {
			if n.Kind == yaml.MappingNode {
				key, err := dec.Token()
				if err != nil {
					return nil, err
				}
				n.Content = append(n.Content, scalar("!!str", key.(string)))
			}
			c, err := yamlNode(dec)
			if err != nil {
				return nil, err
			}
			n.Content = append(n.Content, c)
		}
		_, err := dec.Token() // the closing delimiter
		return n, err
	case string:
		return scalar("!!str", tok), nil
	case json.Number:
		if strings.ContainsAny(tok.String(), ".eE") {
			return scalar("!!float", tok.String()), nil
		}
		return scalar("!!int", tok.String()), nil
	case bool:
		return scalar("!!bool", fmt.Sprint(tok)), nil
	case nil:
		return scalar("!!null", "null"), nil
	}
	return nil, fmt.Errorf("unexpected JSON token %v", tok)
}

// Table writes rows as aligned columns under a header.
func Table(w io.Writer, header []string, rows [][]string) error {
	tw := tabwriter.NewWriter(w, 0, 4, 2, ' ', 0)
	fmt.Fprintln(tw, strings.Join(header, "\t"))
	for _, r := range rows {
		fmt.Fprintln(tw, strings.Join(r, "\t"))
	}
	return tw.Flush()
}

// IsTerminal reports whether w is a terminal.
func IsTerminal(w io.Writer) bool {
	f, ok := w.(*os.File)
	return ok && term.IsTerminal(int(f.Fd()))
}

// Progress reports the steps of long work. On a terminal the current step is
// one line rewritten in place, showing how long it has run (redrawn every
// second: `build kube-apiserver … 2m13s`); elsewhere each step's start and
// end is a plain line. Either way the line ending a step says how long it
// took. Steps may nest (an image's step holds its binaries' steps): the
// live line shows the newest step not done. A nil *Progress discards
// everything.
type Progress struct {
	mu     sync.Mutex
	w      io.Writer
	live   bool
	last   time.Time // when Bytes last drew
	active []*Step   // started and not done, oldest first
	// stop ends the goroutine redrawing the live line; nil while none runs.
	stop chan struct{}
	// now and tick are the clock and the redraw interval (tests set them).
	now  func() time.Time
	tick time.Duration
}

// NewProgress returns a Progress writing to w.
func NewProgress(w io.Writer) *Progress {
	return &Progress{w: w, live: IsTerminal(w), now: time.Now, tick: time.Second}
}

// Write prints p as plain lines between the steps (on a terminal, over the
// current step's line, which is drawn again below them), so that a
// Progress can stand where an io.Writer is wanted; a nil Progress discards
// them.
func (p *Progress) Write(b []byte) (int, error) {
	if p == nil {
		return len(b), nil
	}
	p.mu.Lock()
	defer p.mu.Unlock()
	if p.live {
		fmt.Fprint(p.w, "\r\033[K")
	}
	n, err := p.w.Write(b)
	if p.live && len(b) > 0 && b[len(b)-1] == '\n' {
		p.draw()
	}
	return n, err
}

// Step is one unit of work shown by a Progress.
type Step struct {
	p     *Progress
	name  string
	start time.Time
	// done and total are what Bytes last reported (total 0: unknown);
	// bytes says whether it reported anything.
	done, total int64
	bytes       bool
}

// Start begins a step and shows its name.
func (p *Progress) Start(format string, args ...any) *Step {
	s := &Step{p: p, name: fmt.Sprintf(format, args...)}
	if p == nil {
		s.start = time.Now()
		return s
	}
	p.mu.Lock()
	defer p.mu.Unlock()
	s.start = p.now()
	if !p.live {
		fmt.Fprintf(p.w, "%s ...\n", s.name)
		return s
	}
	p.active = append(p.active, s)
	p.draw()
	if p.stop == nil {
		p.stop = make(chan struct{})
		go p.redraw(p.stop, p.tick)
	}
	return s
}

// redraw draws the live line every tick until stop is closed.
func (p *Progress) redraw(stop chan struct{}, tick time.Duration) {
	t := time.NewTicker(tick)
	defer t.Stop()
	for {
		select {
		case <-stop:
			return
		case <-t.C:
			p.mu.Lock()
			if p.stop == stop {
				p.draw()
			}
			p.mu.Unlock()
		}
	}
}

// draw writes the live line of the newest active step; p.mu is held.
func (p *Progress) draw() {
	if len(p.active) == 0 {
		return
	}
	s := p.active[len(p.active)-1]
	line := "\r\033[K" + s.name + " …"
	if s.bytes {
		if s.total > 0 {
			line += fmt.Sprintf(" %s/%s (%d%%)", Size(s.done), Size(s.total), s.done*100/s.total)
		} else {
			line += " " + Size(s.done)
		}
	}
	if d := p.now().Sub(s.start); d >= time.Second {
		line += " " + d.Truncate(time.Second).String()
	}
	fmt.Fprint(p.w, line)
}

// Bytes shows how far a transfer of total bytes (0 if unknown) has come. On
// a terminal it is redrawn at most ten times a second; elsewhere it is silent.
func (s *Step) Bytes(done, total int64) {
	p := s.p
	if p == nil || !p.live {
		return
	}
	p.mu.Lock()
	defer p.mu.Unlock()
	s.done, s.total, s.bytes = done, total, true
	if now := p.now(); now.Sub(p.last) >= 100*time.Millisecond {
		p.last = now
		p.draw()
	}
}

// Done ends the step, saying how long it took; a non-nil err marks it
// failed. It returns err.
func (s *Step) Done(err error) error {
	p := s.p
	if p == nil {
		return err
	}
	p.mu.Lock()
	defer p.mu.Unlock()
	d := Elapsed(p.now().Sub(s.start))
	mark, word := "✓", "done"
	if err != nil {
		mark, word = "✗", "failed"
	}
	if !p.live {
		fmt.Fprintf(p.w, "%s %s (%s)\n", s.name, word, d)
		return err
	}
	for i, a := range p.active {
		if a == s {
			p.active = append(p.active[:i], p.active[i+1:]...)
			break
		}
	}
	fmt.Fprintf(p.w, "\r\033[K%s %s (%s)\n", mark, s.name, d)
	if len(p.active) == 0 {
		if p.stop != nil {
			close(p.stop)
			p.stop = nil
		}
	} else {
		p.draw() // the step this one was part of, still running
	}
	return err
}

// Elapsed formats how long something took for people: 340ms, 12.3s,
// 2m13s, 1h2m3s.
func Elapsed(d time.Duration) string {
	switch {
	case d < time.Second:
		return d.Round(time.Millisecond).String()
	case d < time.Minute:
		return d.Round(100 * time.Millisecond).String()
	}
	return d.Truncate(time.Second).String()
}

// Size formats a byte count for people: 512 B, 1.5 KiB, 3.2 MiB.
func Size(n int64) string {
	const unit = 1024
	if n < unit {
		return fmt.Sprintf("%d B", n)
	}
	div, exp := int64(unit), 0
	for m := n / unit; m >= unit; m /= unit {
		div *= unit
		exp++
	}
	return fmt.Sprintf("%.1f %ciB", float64(n)/float64(div), "KMGTPE"[exp])
}
