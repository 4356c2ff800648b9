package source

import (
	"context"
	"errors"
	"fmt"
	"io"
	"net"
	"net/http"
	"net/url"
	"strings"
	"time"
)

// Network bounds the downloads of archive sources, so that no server can
// make a fetch wait forever: one that does not accept, one that accepts and
// never answers, and one that stops sending in the middle of a body all
// fail within a bound, after a few attempts. A download that keeps making
// progress is never cut short, however long it takes. Zero fields take
// the values of DefaultNetwork.
type Network struct {
	// Connect bounds connecting to the server, TLS handshake included.
	Connect time.Duration
	// Answer bounds the wait for the response headers, counted from the
	// start of the request.
	Answer time.Duration
	// Stall fails a download whose body brings no new byte for this long.
	Stall time.Duration
	// Attempts is how many times a GET is tried before it fails, when what
	// went wrong may not happen again: a network error, no answer, a stall,
	// a 5xx, 408 or 429 status. A 404 or a content mismatch is not retried.
	Attempts int
	// Backoff is the wait before the second attempt; it doubles for each
	// one after.
	Backoff time.Duration
}

// DefaultNetwork is what a Fetcher uses unless told otherwise.
var DefaultNetwork = Network{
	Connect:  30 * time.Second,
	Answer:   60 * time.Second,
	Stall:    60 * time.Second,
	Attempts: 3,
	Backoff:  2 * time.Second,
}

func (n Network) withDefaults() Network {
	d := DefaultNetwork
	if n.Connect > 0 {
		d.Connect = n.Connect
	}
	if n.Answer > 0 {
		d.Answer = n.Answer
	}
	if n.Stall > 0 {
		d.Stall = n.Stall
	}
	if n.Attempts > 0 {
		d.Attempts = n.Attempts
	}
	if n.Backoff > 0 {
		d.Backoff = n.Backoff
	}
	return d
}

// client is an HTTP client whose connections are bounded by n: connecting
// and the TLS handshake by Connect. (get bounds the wait for an answer and
// the stalls of the body by context, whatever the client.)
func (n Network) client() *http.Client {
	t := http.DefaultTransport.(*http.Transport).Clone()
	t.DialContext = (&net.Dialer{Timeout: n.Connect, KeepAlive: 30 * time.Second}).DialContext
	t.TLSHandshakeTimeout = n.Connect
	return &http.Client{Transport: t}
}

// Why an attempt was cut short, as the cause of its context.
var (
	errNoAnswer = errors.New("no answer")
	errStalled  = errors.New("stalled")
)

// attemptError is what went wrong with one attempt of a GET, and whether
// trying again may help.
type attemptError struct {
	msg   string
	hint  string
	retry bool
	err   error // for errors.Is/As: a sink's own error
}

func (e *attemptError) Error() string { return e.msg }
func (e *attemptError) Unwrap() error { return e.err }

// get downloads u and hands the body (and its announced length, or -1) to
// sink, which may be called again, from the start, on a later attempt: it
// must start its output over each time. Every attempt is bounded as Net
// says; the attempts are spaced by Backoff, doubling. An error of sink's
// own (not of reading the body) is returned as it is, without retrying.
// Other errors are one line: the URL, what went wrong, the number of
// attempts and what to do.
func (f *Fetcher) get(ctx context.Context, u string, sink func(body io.Reader, size int64) error) error {
	n := f.Net.withDefaults()
	c := f.Client
	if c == nil {
		c = n.client()
		defer c.CloseIdleConnections()
	}
	wait := n.Backoff
	for attempt := 1; ; attempt++ {
		err := f.attempt(ctx, c, n, u, sink)
		if err == nil {
			return nil
		}
		if ctx.Err() != nil {
			return fmt.Errorf("GET %s: %w", u, ctx.Err())
		}
		var ae *attemptError
		if !errors.As(err, &ae) {
			return err
		}
		if !ae.retry || attempt >= n.Attempts {
			tries := ""
			if attempt > 1 {
				tries = fmt.Sprintf(" (%d attempts)", attempt)
			}
			return fmt.Errorf("GET %s: %s%s: %s", u, ae.msg, tries, ae.hint)
		}
		t := time.NewTimer(wait)
		select {
		case <-ctx.Done():
			t.Stop()
			return fmt.Errorf("GET %s: %w", u, ctx.Err())
		case <-t.C:
		}
		wait *= 2
	}
}

// attempt makes one GET of u and feeds its body to sink.
func (f *Fetcher) attempt(ctx context.Context, c *http.Client, n Network, u string, sink func(io.Reader, int64) error) error {
	actx, cancel := context.WithCancelCause(ctx)
	defer cancel(nil)
	req, err := http.NewRequestWithContext(actx, http.MethodGet, u, nil)
	if err != nil {
		return &attemptError{msg: oneLine(err.Error()), hint: "check the url in sources.yaml"}
	}
	timer := time.AfterFunc(n.Answer, func() { cancel(errNoAnswer) })
	defer timer.Stop()
	resp, err := c.Do(req)
	if err != nil {
		if context.Cause(actx) == errNoAnswer {
			return &attemptError{
				msg:   fmt.Sprintf("no answer within %v", n.Answer),
				hint:  "the server accepts connections but does not answer; check the url in sources.yaml, or try again later",
				retry: true,
			}
		}
		var ue *url.Error
		if errors.As(err, &ue) {
			err = ue.Err
		}
		return &attemptError{
			msg:   oneLine(err.Error()),
			hint:  "check the url in sources.yaml and the network, or try again later",
			retry: true,
		}
	}
	defer resp.Body.Close()
	timer.Stop()
	if resp.StatusCode != http.StatusOK {
		ae := &attemptError{msg: resp.Status, hint: "check the url and version in sources.yaml"}
		switch code := resp.StatusCode; {
		case code >= 500, code == http.StatusRequestTimeout, code == http.StatusTooManyRequests:
			ae.retry, ae.hint = true, "the server failed; try again later"
		}
		return ae
	}
	// From here the clock is the stall timer, reset by every byte.
	body := &stallReader{r: resp.Body, t: time.AfterFunc(n.Stall, func() { cancel(errStalled) }), d: n.Stall}
	defer body.t.Stop()
	err = sink(body, resp.ContentLength)
	if err == nil || body.err == nil || ctx.Err() != nil {
		return err
	}
	if context.Cause(actx) == errStalled {
		return &attemptError{
			msg:   fmt.Sprintf("the download stalled: no data for %v after %d bytes", n.Stall, body.n),
			hint:  "the server stopped sending; try again later",
			retry: true,
		}
	}
	return &attemptError{
		msg:   fmt.Sprintf("reading the body after %d bytes: %s", body.n, oneLine(body.err.Error())),
		hint:  "try again later",
		retry: true,
	}
}

// stallReader reads a response body, restarting the stall timer t at each
// byte that comes, and keeps the first read error.
type stallReader struct {
	r   io.Reader
	t   *time.Timer
	d   time.Duration
	n   int64
	err error
}

func (s *stallReader) Read(p []byte) (int, error) {
	n, err := s.r.Read(p)
	if n > 0 {
		s.n += int64(n)
		s.t.Reset(s.d)
	}
	if err != nil && err != io.EOF && s.err == nil {
		s.err = err
	}
	return n, err
}

// oneLine joins the lines of a message.
func oneLine(s string) string { return strings.Join(strings.Fields(s), " ") }
