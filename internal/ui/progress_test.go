package ui

import (
	"bytes"
	"errors"
	"strings"
	"testing"
	"time"
)

// clock is a fake time the test moves by hand.
type clock struct{ t time.Time }

func (c *clock) now() time.Time { return c.t }

// testProgress is a Progress on buf whose clock is c; live says whether it
// behaves as on a terminal, tick is how often the live line is redrawn.
func testProgress(buf *bytes.Buffer, c *clock, live bool, tick time.Duration) *Progress {
	return &Progress{w: buf, live: live, now: c.now, tick: tick}
}

// output reads what p wrote so far, under its lock (the redrawing
// goroutine writes too).
func output(p *Progress, buf *bytes.Buffer) string {
	p.mu.Lock()
	defer p.mu.Unlock()
	return buf.String()
}

func TestProgressPlainLines(t *testing.T) {
	for _, tt := range []struct {
		name string
		took time.Duration
		err  error
		want string
	}{
		{"done", 2*time.Minute + 13*time.Second + 400*time.Millisecond, nil, "build kube-apiserver ...\nbuild kube-apiserver done (2m13s)\n"},
		{"failed", 1500 * time.Millisecond, errors.New("boom"), "build kube-apiserver ...\nbuild kube-apiserver failed (1.5s)\n"},
		{"quick", 42 * time.Millisecond, nil, "build kube-apiserver ...\nbuild kube-apiserver done (42ms)\n"},
	} {
		t.Run(tt.name, func(t *testing.T) {
			var buf bytes.Buffer
			c := &clock{t: time.Unix(1000, 0)}
			p := testProgress(&buf, c, false, time.Millisecond)
			s := p.Start("build %s", "kube-apiserver")
			s.Bytes(10, 100) // silent off a terminal
			c.t = c.t.Add(tt.took)
			time.Sleep(5 * time.Millisecond) // a redraw would have happened by now
			if got := s.Done(tt.err); got != tt.err {
				t.Errorf("Done returned %v, want %v", got, tt.err)
			}
			if got := output(p, &buf); got != tt.want {
				t.Errorf("wrote %q, want %q", got, tt.want)
			}
			if p.stop != nil {
				t.Error("a redrawing goroutine runs off a terminal")
			}
		})
	}
}

// TestProgressLiveElapsed: on a terminal the live line shows how long the
// step has run, redrawn by itself; the final line says how long it took,
// and the redrawing stops with the last step.
func TestProgressLiveElapsed(t *testing.T) {
	var buf bytes.Buffer
	c := &clock{t: time.Unix(1000, 0)}
	p := testProgress(&buf, c, true, 5*time.Millisecond)
	s := p.Start("build kube-apiserver")
	if got := output(p, &buf); got != "\r\033[Kbuild kube-apiserver …" {
		t.Fatalf("start drew %q", got)
	}
	p.mu.Lock()
	c.t = c.t.Add(2*time.Minute + 13*time.Second + 600*time.Millisecond)
	p.mu.Unlock()
	want := "\r\033[Kbuild kube-apiserver … 2m13s"
	deadline := time.Now().Add(5 * time.Second)
	for !strings.HasSuffix(output(p, &buf), want) {
		if time.Now().After(deadline) {
			t.Fatalf("the live line was not redrawn with the elapsed time: %q", output(p, &buf))
		}
		time.Sleep(time.Millisecond)
	}
	s.Done(nil)
	if got := output(p, &buf); !strings.HasSuffix(got, "\r\033[K✓ build kube-apiserver (2m13s)\n") {
		t.Errorf("done line: %q", got)
	}
	p.mu.Lock()
	running := p.stop != nil
	p.mu.Unlock()
	if running {
		t.Error("the redrawing goroutine still runs with no step left")
	}
	n := len(output(p, &buf))
	time.Sleep(30 * time.Millisecond)
	if got := output(p, &buf); len(got) != n {
		t.Errorf("drew after the last step: %q", got[n:])
	}
}

// TestProgressLiveNested: a step inside another takes the live line; when
// it is done the outer one is drawn again, with its own elapsed time.
func TestProgressLiveNested(t *testing.T) {
	var buf bytes.Buffer
	c := &clock{t: time.Unix(1000, 0)}
	p := testProgress(&buf, c, true, time.Hour) // redrawn only by the steps
	outer := p.Start("image gitea")
	c.t = c.t.Add(3 * time.Second)
	inner := p.Start("build code.gitea.io/gitea")
	c.t = c.t.Add(61 * time.Second)
	inner.Bytes(1024, 2048)
	if got := output(p, &buf); !strings.HasSuffix(got, "\r\033[Kbuild code.gitea.io/gitea … 1.0 KiB/2.0 KiB (50%) 1m1s") {
		t.Errorf("bytes line: %q", got)
	}
	inner.Done(errors.New("exit status 1"))
	got := output(p, &buf)
	if !strings.HasSuffix(got, "\r\033[K✗ build code.gitea.io/gitea (1m1s)\n\r\033[Kimage gitea … 1m4s") {
		t.Errorf("after the inner step: %q", got)
	}
	out := func() string { return output(p, &buf) }
	before := len(out())
	p.Write([]byte("  ! note\n"))
	if got := out()[before:]; got != "\r\033[K  ! note\n\r\033[Kimage gitea … 1m4s" {
		t.Errorf("a line between steps: %q", got)
	}
	outer.Done(nil)
	if got := out(); !strings.HasSuffix(got, "\r\033[K✓ image gitea (1m4s)\n") {
		t.Errorf("outer done: %q", got)
	}
}

func TestElapsed(t *testing.T) {
	for d, want := range map[time.Duration]string{
		0: "0s",
		340*time.Millisecond + 400*time.Microsecond:           "340ms",
		12345 * time.Millisecond:                              "12.3s",
		2*time.Minute + 13*time.Second + 999*time.Millisecond: "2m13s",
		time.Hour + 2*time.Minute + 3*time.Second:             "1h2m3s",
	} {
		if got := Elapsed(d); got != want {
			t.Errorf("Elapsed(%v) = %q, want %q", d, got, want)
		}
	}
}

func TestNilProgress(t *testing.T) {
	var p *Progress
	s := p.Start("x")
	s.Bytes(1, 2)
	if n, err := p.Write([]byte("abc")); n != 3 || err != nil {
		t.Errorf("Write = %d, %v", n, err)
	}
	want := errors.New("x")
	if got := s.Done(want); got != want {
		t.Errorf("Done = %v", got)
	}
}
