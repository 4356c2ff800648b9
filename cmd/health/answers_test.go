package main

import (
	"errors"
	"io"
	"net"
	"net/http"
	"regexp"
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
		{"HTTP/1.0 chunked", "GET / HTTP/1.0\r\nTransfer-Encoding: chunked\r\n\r\n0\r\n\r\n", healthy10, true},
		{"empty body", "GET / HTTP/1.1\r\n" + h + "Content-Length: 0\r\n\r\n", healthy11, false},
		{"absolute form", "GET http://x/ HTTP/1.1\r\n" + h + "\r\n", healthy11, false},
		{"absolute form, no path", "GET http://x HTTP/1.1\r\n" + h + "\r\n", notFound, false},
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

// TestFaults: requests the server cannot serve get these status codes, and
// the connection ends.
func TestFaults(t *testing.T) {
	addr, _ := serve(t)
	const h = "Host: x\r\n"
	tests := []struct {
		name, req, status string
	}{
		{"no Host", "GET / HTTP/1.1\r\n\r\n", "400"},
		{"two Hosts", "GET / HTTP/1.1\r\n" + h + "Host: y\r\n\r\n", "400"},
		{"bad Host", "GET / HTTP/1.1\r\nHost: a b\r\n\r\n", "400"},
		{"bad version", "GET / FOO\r\n" + h + "\r\n", "400"},
		{"bad method", "G@T / HTTP/1.1\r\n" + h + "\r\n", "400"},
		{"bad escape", "GET /%zz HTTP/1.1\r\n" + h + "\r\n", "400"},
		{"control byte in target", "GET /a\x01 HTTP/1.1\r\n" + h + "\r\n", "400"},
		{"relative target", "GET x HTTP/1.1\r\n" + h + "\r\n", "400"},
		{"empty line first", "\r\nGET / HTTP/1.1\r\n" + h + "\r\n", "400"},
		{"two spaces", "GET  / HTTP/1.1\r\n" + h + "\r\n", "400"},
		{"space after version", "GET / HTTP/1.1 \r\n" + h + "\r\n", "400"},
		{"space in name", "GET / HTTP/1.1\r\n" + h + "Bad Name: y\r\n\r\n", "400"},
		{"space before colon", "GET / HTTP/1.1\r\nHost : x\r\n\r\n", "400"},
		{"control byte in value", "GET / HTTP/1.1\r\n" + h + "X: a\x01b\r\n\r\n", "400"},
		{"bare CR", "GET / HTTP/1.1\r\n" + h + "X: a\rb\r\n\r\n", "400"},
		{"bad length", "GET / HTTP/1.1\r\n" + h + "Content-Length: abc\r\n\r\n", "400"},
		{"negative length", "GET / HTTP/1.1\r\n" + h + "Content-Length: -1\r\n\r\n", "400"},
		{"huge length", "POST / HTTP/1.1\r\n" + h + "Content-Length: 99999999999999999999\r\n\r\n", "400"},
		{"two lengths", "GET / HTTP/1.1\r\n" + h + "Content-Length: 1\r\nContent-Length: 2\r\n\r\nab", "400"},
		{"binary", "\x00\x01\x02garbage\r\n\r\n", "400"},
		{"other expectation", "GET / HTTP/1.1\r\n" + h + "Expect: foo\r\n\r\n", "417"},
		{"gzip body", "GET / HTTP/1.1\r\n" + h + "Transfer-Encoding: gzip\r\n\r\n", "501"},
		{"HTTP/2.0", "GET / HTTP/2.0\r\n" + h + "\r\n", "505"},
		{"HTTP/0.9", "GET / HTTP/0.9\r\n" + h + "\r\n", "505"},
		{"long field", "GET / HTTP/1.1\r\n" + h + "X: " + strings.Repeat("y", 20<<10) + "\r\n\r\n", "431"},
		{"long target", "GET " + strings.Repeat("/a", 20000) + " HTTP/1.1\r\n" + h + "\r\n", "431"},
		{"long request line, unfinished", "GET /" + strings.Repeat("a", 20<<10), "431"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			t.Parallel()
			got, closed := exchange(t, addr, tt.req, 2*time.Second)
			if !strings.HasPrefix(got, "HTTP/1.1 "+tt.status+" ") || !closed {
				t.Errorf("answer %.60q, closed %v; want %s and closed", got, closed, tt.status)
			}
		})
	}
}
