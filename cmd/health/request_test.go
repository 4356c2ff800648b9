package main

import (
	"bufio"
	"bytes"
	"net/http"
	"strings"
	"testing"
)

// parseAll parses head in pieces of size bytes (all at once if size is 0),
// as the connection does when it arrives so, and returns the request, the
// bytes its head took and whether it ended.
func parseAll(head []byte, size int) (request, int, bool) {
	var r request
	r.reset()
	if size <= 0 {
		size = len(head)
	}
	off := 0
	for n := min(size, len(head)); ; n = min(n+size, len(head)) {
		var done bool
		off, done = r.parse(head[:n], off)
		if done || n == len(head) {
			return r, off, done
		}
	}
}

func TestParse(t *testing.T) {
	tests := []struct {
		head   string
		answer answer
		keep   bool
	}{
		{"GET / HTTP/1.1\r\nHost: x\r\n\r\n", answerHealthy, true},
		{"HEAD /?q HTTP/1.1\r\nhost: x\r\n\r\n", answerHealthy, true},
		{"GET / HTTP/1.1\r\nHOST:x\r\nConnection:\tclose \r\n\r\n", answerHealthy, false},
		{"GET / HTTP/1.1\r\nHost: x\r\nConnection: upgrade\r\nConnection: close\r\n\r\n", answerHealthy, false},
		{"GET / HTTP/1.0\r\n\r\n", answerHealthy, false},
		{"GET / HTTP/1.0\r\nConnection: Keep-Alive\r\n\r\n", answerHealthy, true},
		{"GET / HTTP/1.0\r\nConnection: keep-alive, close\r\n\r\n", answerHealthy, false},
		{"GET / HTTP/1.1\r\nHost: x\r\nContent-Length: 000\r\n\r\n", answerHealthy, true},
		{"GET / HTTP/1.1\r\nHost: x\r\nContent-Length: 2\r\nContent-Length: 2\r\n\r\n", answerHealthy, false},
		{"GET / HTTP/1.1\r\nHost: x\r\nTransfer-Encoding: Chunked\r\n\r\n", answerHealthy, false},
		{"GET / HTTP/1.1\r\nHost: x\r\nExpect: 100-Continue\r\n\r\n", answerHealthy, true},
		{"GET / HTTP/1.1\r\nHost: x\r\nExpect:\r\n\r\n", answerHealthy, true},
		{"GET / HTTP/1.1\r\nHost: [::1]:8080\r\n\r\n", answerHealthy, true},
		{"GET / HTTP/1.1\r\nHost:\r\n\r\n", answerHealthy, true},
		{"GET / HTTP/1.1\r\nHost: x\r\nX-Obs: caf\xc3\xa9\r\n\r\n", answerHealthy, true},
		{"GET https://x:1/?y HTTP/1.1\r\nHost: x\r\n\r\n", answerHealthy, true},
		{"GET svn+ssh://x.example:/ HTTP/1.1\r\nHost: x\r\n\r\n", answerHealthy, true},
		{"GET http:/// HTTP/1.1\r\nHost: x\r\n\r\n", answerHealthy, true},
		{"GET http://u@x/ HTTP/1.1\r\nHost: x\r\n\r\n", failBadRequest, false},
		{"GET http://[::1]/ HTTP/1.1\r\nHost: x\r\n\r\n", failBadRequest, false},
		{"GET http://x:y/ HTTP/1.1\r\nHost: x\r\n\r\n", failBadRequest, false},
		{"GET A://0#0/ HTTP/1.0\r\n\r\n", failBadRequest, false},
		{"GET /? HTTP/1.1\r\nHost: x\r\n\r\n", answerHealthy, true},
		{"GET /?%zz HTTP/1.1\r\nHost: x\r\n\r\n", answerHealthy, true},
		{"GET /a HTTP/1.1\r\nHost: x\r\n\r\n", answerNotFound, true},
		{"PUT /a HTTP/1.1\r\nHost: x\r\n\r\n", answerNotFound, true},
		{"GET /../etc/passwd HTTP/1.1\r\nHost: x\r\n\r\n", answerNotFound, true},
		{"GET /./ HTTP/1.1\r\nHost: x\r\n\r\n", answerNotFound, true},
		{"GET /%2f HTTP/1.1\r\nHost: x\r\n\r\n", answerNotFound, true},
		{"GET /# HTTP/1.1\r\nHost: x\r\n\r\n", answerNotFound, true},
		{"GET http://x?/ HTTP/1.1\r\nHost: x\r\n\r\n", answerNotFound, true},
		{"GET /\xff HTTP/1.1\r\nHost: x\r\n\r\n", answerNotFound, true},
		{"OPTIONS / HTTP/1.1\r\nHost: x\r\n\r\n", answerNotAllowed, true},
		{"OPTIONS * HTTP/1.1\r\nHost: x\r\n\r\n", answerOptions, true},
		{"POST / HTTP/1.1\r\nHost: x\r\nContent-Length: 1\r\n\r\n", answerNotAllowed, false},
		{"GET / HTTP/1.1\r\n\r\n", failBadRequest, false},
		{"GET / HTTP/1.1\r\nHost: x\r\nHOST: x\r\n\r\n", failBadRequest, false},
		{"GET / HTTP/1.0\r\nHost: a/b\r\n\r\n", failBadRequest, false},
		{"GET / HTTP/1.1\r\nHost: x\r\n: empty name\r\n\r\n", failBadRequest, false},
		{"GET / HTTP/1.1\r\nHost: x\r\nno colon\r\n\r\n", failBadRequest, false},
		{"GET / HTTP/1.1\r\nHost: x\r\n\tfolded\r\n\r\n", failBadRequest, false},
		{"GET / HTTP/1.1\r\nHost: x\r\nX: \x7f\r\n\r\n", failBadRequest, false},
		{"GET / HTTP/1.1\r\nHost: x\r\nContent-Length: +1\r\n\r\n", failBadRequest, false},
		{"GET / HTTP/1.1\r\nHost: x\r\nContent-Length: 1 2\r\n\r\n", failBadRequest, false},
		{"GET / HTTP/1.1\r\nHost: x\r\nContent-Length:\r\n\r\n", failBadRequest, false},
		{"GET / HTTP/1.1\r\nHost: x\r\nContent-Length: 1234567890123456789\r\n\r\n", failBadRequest, false},
		{"GET /% HTTP/1.1\r\nHost: x\r\n\r\n", failBadRequest, false},
		{"GET /%a HTTP/1.1\r\nHost: x\r\n\r\n", failBadRequest, false},
		{"GET 1a://x/ HTTP/1.1\r\nHost: x\r\n\r\n", failBadRequest, false},
		{"GET ://x/ HTTP/1.1\r\nHost: x\r\n\r\n", failBadRequest, false},
		{"GET x:80 HTTP/1.1\r\nHost: x\r\n\r\n", failBadRequest, false},
		{"GET / HTTP/1.1\r\r\nHost: x\r\n\r\n", failBadRequest, false},
		{"GET / http/1.1\r\nHost: x\r\n\r\n", failBadRequest, false},
		{"GET / HTTP/1.10\r\nHost: x\r\n\r\n", failBadRequest, false},
		{"GET / HTTP/1,1\r\nHost: x\r\n\r\n", failBadRequest, false},
		{"GET /\r\n\r\n", failBadRequest, false},
		{" / HTTP/1.1\r\nHost: x\r\n\r\n", failBadRequest, false},
		{"GET / HTTP/3.0\r\nHost: x\r\n\r\n", failVersion, false},
		{"GET / HTTP/1.1\r\nHost: x\r\nExpect: 200-ok\r\n\r\n", failExpectation, false},
		{"GET / HTTP/1.1\r\nHost: x\r\nTransfer-Encoding: gzip, chunked\r\n\r\n", failNotImplemented, false},
		{"GET / HTTP/1.0\r\nTransfer-Encoding: gzip\r\n\r\n", answerHealthy, false},
	}
	for _, tt := range tests {
		for _, size := range []int{0, 1, 2, 5, 17} {
			r, n, done := parseAll([]byte(tt.head), size)
			if !done || r.answer() != tt.answer || r.keepAlive() != tt.keep {
				t.Errorf("%q in pieces of %d: done %v, answer %d, keep-alive %v; want answer %d, keep-alive %v",
					tt.head, size, done, r.answer(), r.keepAlive(), tt.answer, tt.keep)
			}
			if r.fail == 0 && n != len(tt.head) {
				t.Errorf("%q in pieces of %d: head of %d bytes, want %d", tt.head, size, n, len(tt.head))
			}
		}
	}
	// Heads not ended yet.
	for _, head := range []string{"", "GET", "GET / HTTP/1.1", "GET / HTTP/1.1\r\n", "GET / HTTP/1.1\r\nHost: x\r\n", "GET / HTTP/1.1\r\nHost: x\r\n\r"} {
		if r, _, done := parseAll([]byte(head), 1); done {
			t.Errorf("%q: ended (answer %d)", head, r.answer())
		}
	}
}

// FuzzParse holds the parser against net/http's: what is answered 200 or
// 404/405 must be a request net/http reads the same way (method, path is
// /, connection kept), and parsing in pieces must give what parsing at
// once gives.
func FuzzParse(f *testing.F) {
	for _, s := range []string{
		"GET / HTTP/1.1\r\nHost: x\r\n\r\n",
		"HEAD / HTTP/1.0\r\nConnection: keep-alive\r\n\r\n",
		"POST /x HTTP/1.1\r\nHost: x\r\nContent-Length: 3\r\n\r\nabc",
		"GET http://x/?a HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n",
		"OPTIONS * HTTP/1.1\r\nHost: x\r\n\r\n",
		"GET / HTTP/1.1\nHost: [::1]:80\nTransfer-Encoding: chunked\n\n",
		"GET /%41 HTTP/1.1\r\nHost: x\r\nExpect: 100-continue\r\n\r\n",
		"\x00",
	} {
		f.Add([]byte(s), uint8(3))
	}
	f.Fuzz(func(t *testing.T, raw []byte, size uint8) {
		r, n, done := parseAll(raw, 0)
		r2, n2, done2 := parseAll(raw, int(size))
		if done != done2 || r.answer() != r2.answer() || r.keepAlive() != r2.keepAlive() || (r.fail == 0 && n != n2) {
			t.Fatalf("%q: at once %v %d %v %d, in pieces of %d %v %d %v %d", raw,
				done, r.answer(), r.keepAlive(), n, size, done2, r2.answer(), r2.keepAlive(), n2)
		}
		if n > len(raw) {
			t.Fatalf("%q: head of %d bytes", raw, n)
		}
		if !done || r.fail != 0 {
			return
		}
		a := r.answer()
		req, err := http.ReadRequest(bufio.NewReader(bytes.NewReader(raw[:n])))
		if err != nil {
			if a == answerNotFound {
				return // net/http says 400, this server 404: both refuse
			}
			t.Fatalf("%q: answered %d, but net/http cannot read it: %v", raw, a, err)
		}
		root := req.URL.Path == "/" && req.URL.Opaque == ""
		getOrHead := req.Method == "GET" || req.Method == "HEAD"
		switch a {
		case answerHealthy:
			if !root || !getOrHead {
				t.Fatalf("%q: answered 200, but net/http reads %s %q", raw, req.Method, req.URL.Path)
			}
		case answerNotAllowed:
			if !root || getOrHead {
				t.Fatalf("%q: answered 405, but net/http reads %s %q", raw, req.Method, req.URL.Path)
			}
		case answerOptions:
			if req.Method != "OPTIONS" || req.RequestURI != "*" {
				t.Fatalf("%q: answered OPTIONS *, but net/http reads %s %q", raw, req.Method, req.RequestURI)
			}
		case answerNotFound:
			if root {
				t.Fatalf("%q: answered 404, but net/http reads %s %q", raw, req.Method, req.URL.Path)
			}
		}
		if !r.body && r.keepAlive() == req.Close {
			t.Fatalf("%q: keep-alive %v, but net/http's Close is %v", raw, r.keepAlive(), req.Close)
		}
		if strings.Contains(string(raw[:n]), "\r\n ") {
			t.Fatalf("%q: folded line accepted", raw)
		}
	})
}
