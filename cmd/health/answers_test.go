package main

import (
	"errors"
	"io"
	"net"
	"net/http"
	"regexp"
	"strconv"
	"strings"
	"testing"
	"time"
)

// exchange sends raw on a new connection and returns what comes back
// until the server closes (closed) or is quiet for quiet.
func exchange(t *testing.T, addr, raw string, quiet time.Duration) (got string, closed bool) {
	t.Helper()
	c, err := net.DialTimeout("tcp", addr, 5*time.Second)
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close()
	if _, err := io.WriteString(c, raw); err != nil {
		t.Fatal(err)
	}
	var out []byte
	buf := make([]byte, 64<<10)
	for {
		c.SetReadDeadline(time.Now().Add(quiet))
		n, err := c.Read(buf)
		out = append(out, buf[:n]...)
		if err != nil {
			var ne net.Error
			if errors.As(err, &ne) && ne.Timeout() {
				return string(out), false
			}
			return string(out), true // EOF, or a reset after the answer
		}
	}
}

var dateField = regexp.MustCompile(`\r\nDate: ([^\r]*)\r\n`)

// withoutDates replaces every Date value with D, failing the test when one
// is not an HTTP date close to now.
func withoutDates(t *testing.T, s string) string {
	t.Helper()
	return dateField.ReplaceAllStringFunc(s, func(m string) string {
		v := dateField.FindStringSubmatch(m)[1]
		d, err := time.Parse(http.TimeFormat, v)
		if err != nil || time.Since(d).Abs() > 5*time.Second {
			t.Errorf("Date %q is not an HTTP date of now (%v)", v, err)
		}
		return "\r\nDate: D\r\n"
	})
}

// The answers as the net/http server of earlier versions wrote them; D
// stands for the Date value.
const (
	healthy11  = "HTTP/1.1 200 OK\r\nCache-Control: no-store\r\nContent-Length: 8\r\nContent-Type: text/plain; charset=utf-8\r\nX-Content-Type-Options: nosniff\r\nDate: D\r\n\r\nhealthy\n"
	healthyH11 = "HTTP/1.1 200 OK\r\nCache-Control: no-store\r\nContent-Length: 8\r\nContent-Type: text/plain; charset=utf-8\r\nX-Content-Type-Options: nosniff\r\nDate: D\r\n\r\n"
	healthy10  = "HTTP/1.0 200 OK\r\nCache-Control: no-store\r\nContent-Length: 8\r\nContent-Type: text/plain; charset=utf-8\r\nX-Content-Type-Options: nosniff\r\nDate: D\r\n\r\nhealthy\n"
	healthyH10 = "HTTP/1.0 200 OK\r\nCache-Control: no-store\r\nContent-Length: 8\r\nContent-Type: text/plain; charset=utf-8\r\nX-Content-Type-Options: nosniff\r\nDate: D\r\n\r\n"
	healthy10K = "HTTP/1.0 200 OK\r\nCache-Control: no-store\r\nContent-Length: 8\r\nContent-Type: text/plain; charset=utf-8\r\nX-Content-Type-Options: nosniff\r\nDate: D\r\nConnection: keep-alive\r\n\r\nhealthy\n"
	healthy11C = "HTTP/1.1 200 OK\r\nCache-Control: no-store\r\nContent-Length: 8\r\nContent-Type: text/plain; charset=utf-8\r\nX-Content-Type-Options: nosniff\r\nDate: D\r\nConnection: close\r\n\r\nhealthy\n"
	notFound   = "HTTP/1.1 404 Not Found\r\nCache-Control: no-store\r\nContent-Type: text/plain; charset=utf-8\r\nX-Content-Type-Options: nosniff\r\nDate: D\r\nContent-Length: 10\r\n\r\nnot found\n"
	notFoundH  = "HTTP/1.1 404 Not Found\r\nCache-Control: no-store\r\nContent-Type: text/plain; charset=utf-8\r\nX-Content-Type-Options: nosniff\r\nDate: D\r\nContent-Length: 10\r\n\r\n"
	notFoundC  = "HTTP/1.1 404 Not Found\r\nCache-Control: no-store\r\nContent-Type: text/plain; charset=utf-8\r\nX-Content-Type-Options: nosniff\r\nDate: D\r\nContent-Length: 10\r\nConnection: close\r\n\r\nnot found\n"
	notAllowed = "HTTP/1.1 405 Method Not Allowed\r\nAllow: GET, HEAD\r\nCache-Control: no-store\r\nContent-Type: text/plain; charset=utf-8\r\nX-Content-Type-Options: nosniff\r\nDate: D\r\nContent-Length: 19\r\n\r\nmethod not allowed\n"
	notAllowC  = "HTTP/1.1 405 Method Not Allowed\r\nAllow: GET, HEAD\r\nCache-Control: no-store\r\nContent-Type: text/plain; charset=utf-8\r\nX-Content-Type-Options: nosniff\r\nDate: D\r\nContent-Length: 19\r\nConnection: close\r\n\r\nmethod not allowed\n"

	// OPTIONS * had no security fields (net/http answered it itself).
	options = "HTTP/1.1 200 OK\r\nCache-Control: no-store\r\nContent-Length: 0\r\nX-Content-Type-Options: nosniff\r\nDate: D\r\n\r\n"
)

// TestAnswers pins every answer down byte for byte (Date aside), and
// whether the connection stays open after it.
func TestAnswers(t *testing.T) {
	addr, _ := serve(t)
	const h = "Host: x\r\n"
	tests := []struct {
		name, req, want string
		closed          bool
	}{
		{"GET /", "GET / HTTP/1.1\r\n" + h + "\r\n", healthy11, false},
		{"HEAD /", "HEAD / HTTP/1.1\r\n" + h + "\r\n", healthyH11, false},
		{"query", "GET /?a=b HTTP/1.1\r\n" + h + "\r\n", healthy11, false},
		{"real client", "GET / HTTP/1.1\r\nHost: 10.0.0.1:8080\r\nUser-Agent: kube-probe/1.36\r\nAccept: */*\r\nConnection: close\r\n\r\n", healthy11C, true},
		{"other path", "GET /x HTTP/1.1\r\n" + h + "\r\n", notFound, false},
		{"HEAD other path", "HEAD /x HTTP/1.1\r\n" + h + "\r\n", notFoundH, false},
		{"double slash", "GET // HTTP/1.1\r\n" + h + "\r\n", notFound, false},
		{"escaped path", "GET /%2F HTTP/1.1\r\n" + h + "\r\n", notFound, false},
		{"POST", "POST / HTTP/1.1\r\n" + h + "\r\n", notAllowed, false},
		{"lower-case method", "get / HTTP/1.1\r\n" + h + "\r\n", notAllowed, false},
		{"HTTP/1.0", "GET / HTTP/1.0\r\n\r\n", healthy10, true},
		{"HEAD HTTP/1.0", "HEAD / HTTP/1.0\r\n\r\n", healthyH10, true},
		{"HTTP/1.0 keep-alive", "GET / HTTP/1.0\r\nConnection: keep-alive\r\n\r\n", healthy10K, false},
		{"close", "GET / HTTP/1.1\r\n" + h + "Connection: close\r\n\r\n", healthy11C, true},
		{"close in a list", "GET / HTTP/1.1\r\n" + h + "Connection: keep-alive, Close\r\n\r\n", healthy11C, true},
		{"close 404", "GET /x HTTP/1.1\r\n" + h + "Connection: close\r\n\r\n", notFoundC, true},
		{"body", "POST / HTTP/1.1\r\n" + h + "Content-Length: 3\r\n\r\nabc", notAllowC, true},
		{"chunked body", "POST / HTTP/1.1\r\n" + h + "Transfer-Encoding: chunked\r\n\r\n3\r\nabc\r\n0\r\n\r\n", notAllowC, true},
		{"expect continue", "GET / HTTP/1.1\r\n" + h + "Expect: 100-continue\r\nContent-Length: 3\r\n\r\n", healthy11C, true},
		{"HTTP/1.0 chunked", "GET / HTTP/1.0\r\nTransfer-Encoding: chunked\r\n\r\n0\r\n\r\n", healthy10, true},
		{"empty body", "GET / HTTP/1.1\r\n" + h + "Content-Length: 0\r\n\r\n", healthy11, false},
		{"absolute form", "GET http://x/ HTTP/1.1\r\n" + h + "\r\n", healthy11, false},
		{"absolute form, no path", "GET http://x HTTP/1.1\r\n" + h + "\r\n", notFound, false},
		{"OPTIONS *", "OPTIONS * HTTP/1.1\r\n" + h + "\r\n", options, false},
		{"GET *", "GET * HTTP/1.1\r\n" + h + "\r\n", notFound, false},
		{"HTTP/1.2", "GET / HTTP/1.2\r\n" + h + "\r\n", healthy11, false},
		{"bare LF", "GET / HTTP/1.1\nHost: x\n\n", healthy11, false},
		{"h2c upgrade ignored", "GET / HTTP/1.1\r\n" + h + "Upgrade: h2c\r\nConnection: Upgrade, HTTP2-Settings\r\nHTTP2-Settings: AAMAAABkAAQCAAAAAAIAAAAA\r\n\r\n", healthy11, false},
		{"pipelined", "GET / HTTP/1.1\r\n" + h + "\r\nGET /x HTTP/1.1\r\n" + h + "\r\nHEAD / HTTP/1.1\r\n" + h + "\r\n", healthy11 + notFound + healthyH11, false},
		{"pipelined after close", "GET / HTTP/1.1\r\n" + h + "Connection: close\r\n\r\nGET /x HTTP/1.1\r\n" + h + "\r\n", healthy11C, true},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			t.Parallel()
			got, closed := exchange(t, addr, tt.req, 300*time.Millisecond)
			if got := withoutDates(t, got); got != tt.want {
				t.Errorf("answer\n got %q\nwant %q", got, tt.want)
			}
			if closed != tt.closed {
				t.Errorf("connection closed: %v, want %v", closed, tt.closed)
			}
		})
	}
}

// fault is the answer to a request the server cannot serve: the security
// fields too, a body saying what is wrong, and the connection ends.
func fault(status, body string) string {
	return "HTTP/1.1 " + status + "\r\nCache-Control: no-store\r\nContent-Type: text/plain; charset=utf-8\r\nX-Content-Type-Options: nosniff\r\nDate: D\r\nContent-Length: " +
		strconv.Itoa(len(body)) + "\r\nConnection: close\r\n\r\n" + body
}

// answerLen is the length of an answer written as one of the constants
// above: its Date value is 29 bytes, not 1.
func answerLen(s string) int { return len(s) - 1 + len(http.TimeFormat) }

var (
	badRequest  = fault("400 Bad Request", "bad request\n")
	expectation = fault("417 Expectation Failed", "expectation failed: only 100-continue is known\n")
	tooLarge    = fault("431 Request Header Fields Too Large", "request header fields too large\n")
	unsupported = fault("501 Not Implemented", "unsupported transfer encoding\n")
	version     = fault("505 HTTP Version Not Supported", "HTTP version not supported: only HTTP/1.x\n")
)

// TestFaults: requests the server cannot serve get these answers (the
// status codes net/http gave them), and the connection ends.
func TestFaults(t *testing.T) {
	addr, _ := serve(t)
	const h = "Host: x\r\n"
	tests := []struct {
		name, req, want string
	}{
		{"no Host", "GET / HTTP/1.1\r\n\r\n", badRequest},
		{"two Hosts", "GET / HTTP/1.1\r\n" + h + "Host: y\r\n\r\n", badRequest},
		{"bad Host", "GET / HTTP/1.1\r\nHost: a b\r\n\r\n", badRequest},
		{"bad version", "GET / FOO\r\n" + h + "\r\n", badRequest},
		{"bad method", "G@T / HTTP/1.1\r\n" + h + "\r\n", badRequest},
		{"bad escape", "GET /%zz HTTP/1.1\r\n" + h + "\r\n", badRequest},
		{"control byte in target", "GET /a\x01 HTTP/1.1\r\n" + h + "\r\n", badRequest},
		{"relative target", "GET x HTTP/1.1\r\n" + h + "\r\n", badRequest},
		{"empty line first", "\r\nGET / HTTP/1.1\r\n" + h + "\r\n", badRequest},
		{"two spaces", "GET  / HTTP/1.1\r\n" + h + "\r\n", badRequest},
		{"space after version", "GET / HTTP/1.1 \r\n" + h + "\r\n", badRequest},
		{"space in name", "GET / HTTP/1.1\r\n" + h + "Bad Name: y\r\n\r\n", badRequest},
		{"space before colon", "GET / HTTP/1.1\r\nHost : x\r\n\r\n", badRequest},
		{"control byte in value", "GET / HTTP/1.1\r\n" + h + "X: a\x01b\r\n\r\n", badRequest},
		{"bare CR", "GET / HTTP/1.1\r\n" + h + "X: a\rb\r\n\r\n", badRequest},
		{"bad length", "GET / HTTP/1.1\r\n" + h + "Content-Length: abc\r\n\r\n", badRequest},
		{"negative length", "GET / HTTP/1.1\r\n" + h + "Content-Length: -1\r\n\r\n", badRequest},
		{"huge length", "POST / HTTP/1.1\r\n" + h + "Content-Length: 99999999999999999999\r\n\r\n", badRequest},
		{"two lengths", "GET / HTTP/1.1\r\n" + h + "Content-Length: 1\r\nContent-Length: 2\r\n\r\nab", badRequest},
		{"binary", "\x00\x01\x02garbage\r\n\r\n", badRequest},
		// net/http read on over a folded line; folding is obsolete (RFC 9112 5.2).
		{"folded line", "GET / HTTP/1.1\r\n" + h + "X: a\r\n folded\r\n\r\n", badRequest},
		{"pipelined after a fault", "GET / HTTP/1.1\r\n\r\nGET / HTTP/1.1\r\n" + h + "\r\n", badRequest},
		{"other expectation", "GET / HTTP/1.1\r\n" + h + "Expect: foo\r\n\r\n", expectation},
		{"gzip body", "GET / HTTP/1.1\r\n" + h + "Transfer-Encoding: gzip\r\n\r\n", unsupported},
		{"HTTP/2.0", "GET / HTTP/2.0\r\n" + h + "\r\n", version},
		{"HTTP/0.9", "GET / HTTP/0.9\r\n" + h + "\r\n", version},
		// net/http let the handler answer it (404).
		{"HTTP/2 preface", "PRI * HTTP/2.0\r\n\r\nSM\r\n\r\n", version},
		{"long field", "GET / HTTP/1.1\r\n" + h + "X: " + strings.Repeat("y", 20<<10) + "\r\n\r\n", tooLarge},
		{"long target", "GET " + strings.Repeat("/a", 20000) + " HTTP/1.1\r\n" + h + "\r\n", tooLarge},
		{"long request line, unfinished", "GET /" + strings.Repeat("a", 20<<10), tooLarge},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			t.Parallel()
			got, closed := exchange(t, addr, tt.req, 2*time.Second)
			if got := withoutDates(t, got); got != tt.want || !closed {
				t.Errorf("answer %q, closed %v; want %q and closed", got, closed, tt.want)
			}
		})
	}
}
