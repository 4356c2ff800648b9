package main

import "bytes"

// maxHead is the most bytes a request's head (request line, header fields
// and the empty line ending them) may have; a longer one is answered 431.
const maxHead = 16 << 10

// answer is what the server replies to a request: an index into responses.
type answer uint8

const (
	answerHealthy      answer = iota // GET or HEAD /: 200 healthy
	answerNotFound                   // any other target: 404
	answerNotAllowed                 // / with another method: 405
	answerOptions                    // OPTIONS *: 200, no body
	failBadRequest                   // malformed request: 400
	failExpectation                  // Expect other than 100-continue: 417
	failTooLarge                     // head longer than maxHead: 431
	failNotImplemented               // Transfer-Encoding other than chunked: 501
	failVersion                      // not HTTP/1.x: 505
	answers
)

// request is what the server needs to know of one request, filled in by
// parse a line at a time, so a head that arrives in pieces is read once.
type request struct {
	line   bool // the request line has been read
	method uint8
	target uint8
	minor  byte // HTTP/1.minor
	hosts  int  // Host fields
	close  bool // Connection: close
	keep   bool // Connection: keep-alive
	body   bool // Content-Length above 0 or Transfer-Encoding: a body follows
	length int64
	fail   answer // the first fault found, or 0
}

const (
	methodOther uint8 = iota
	methodGet
	methodHead
	methodOptions
)

const (
	targetOther uint8 = iota // a path other than /
	targetRoot               // / with or without a query
	targetStar               // *
)

// parse reads the lines of b from off on, b being a request's head so far
// from its first byte. It returns the offset after the last whole line it
// read and whether that line was the empty one that ends the head; it
// stops early once r.fail is set. Lines end in CRLF or a bare LF.
func (r *request) parse(b []byte, off int) (int, bool) {
	for r.fail == 0 {
		i := bytes.IndexByte(b[off:], '\n')
		if i < 0 {
			return off, false
		}
		line := b[off : off+i]
		off += i + 1
		if n := len(line); n > 0 && line[n-1] == '\r' {
			line = line[:n-1]
		}
		if !r.line {
			r.line = true
			r.requestLine(line)
			continue
		}
		if len(line) == 0 {
			r.finish()
			return off, true
		}
		r.field(line)
	}
	return off, true
}

// requestLine reads METHOD SP TARGET SP HTTP/1.x.
func (r *request) requestLine(line []byte) {
	sp := bytes.IndexByte(line, ' ')
	if sp <= 0 || !isToken(line[:sp]) {
		r.fail = failBadRequest
		return
	}
	switch string(line[:sp]) {
	case "GET":
		r.method = methodGet
	case "HEAD":
		r.method = methodHead
	case "OPTIONS":
		r.method = methodOptions
	}
	rest := line[sp+1:]
	sp = bytes.IndexByte(rest, ' ')
	if sp <= 0 {
		r.fail = failBadRequest
		return
	}
	target, version := rest[:sp], rest[sp+1:]
	if len(version) != 8 || string(version[:5]) != "HTTP/" || !isDigit(version[5]) || version[6] != '.' || !isDigit(version[7]) {
		r.fail = failBadRequest
		return
	}
	if version[5] != '1' {
		r.fail = failVersion
		return
	}
	r.minor = version[7] - '0'
	r.target, r.fail = parseTarget(target)
}

// parseTarget tells / (with or without a query) from * and other targets,
// in origin form (/path?query) or absolute form (scheme://authority/path).
func parseTarget(t []byte) (uint8, answer) {
	for _, c := range t {
		if c < 0x21 || c == 0x7f {
			return 0, failBadRequest
		}
	}
	if string(t) == "*" {
		return targetStar, 0
	}
	if t[0] != '/' {
		// absolute form: a scheme, "://", an authority up to the path
		i := bytes.Index(t, []byte("://"))
		if i <= 0 || !isScheme(t[:i]) {
			return 0, failBadRequest
		}
		t = t[i+3:]
		j := bytes.IndexAny(t, "/?")
		if j < 0 {
			j = len(t)
		}
		if !plainAuthority(t[:j]) {
			return 0, failBadRequest
		}
		if j == len(t) || t[j] == '?' {
			return targetOther, 0
		}
		t = t[j:]
	}
	path := t
	if q := bytes.IndexByte(t, '?'); q >= 0 {
		path = t[:q]
	}
	for i := 0; i < len(path); i++ {
		if path[i] == '%' && (i+2 >= len(path) || !isHex(path[i+1]) || !isHex(path[i+2])) {
			return 0, failBadRequest
		}
	}
	if string(path) == "/" {
		return targetRoot, 0
	}
	return targetOther, 0
}

// plainAuthority tells whether a is a host name or IPv4 address with an
// optional port: the authorities of absolute-form targets served here (no
// user info, no IPv6 literal; a proxy sends those rarely, if ever, to a
// health service).
func plainAuthority(a []byte) bool {
	host, port := a, []byte(nil)
	if i := bytes.IndexByte(a, ':'); i >= 0 {
		host, port = a[:i], a[i+1:]
	}
	for _, c := range host {
		if !isAlpha(c) && !isDigit(c) && c != '-' && c != '.' && c != '_' && c != '~' {
			return false
		}
	}
	for _, c := range port {
		if !isDigit(c) {
			return false
		}
	}
	return true
}

// field reads one header field, NAME ":" OWS VALUE OWS, and notes those
// that matter here: Host, Connection, Content-Length, Transfer-Encoding and
// Expect.
func (r *request) field(line []byte) {
	colon := 0
	for colon < len(line) && tokenByte[line[colon]] {
		colon++
	}
	if colon == 0 || colon == len(line) || line[colon] != ':' {
		// no name, a name with spaces, or a folded line (obsolete)
		r.fail = failBadRequest
		return
	}
	name, value := line[:colon], trimOWS(line[colon+1:])
	for _, c := range value {
		if (c < 0x20 && c != '\t') || c == 0x7f {
			r.fail = failBadRequest
			return
		}
	}
	if len(name) < len("host") || len(name) > len("transfer-encoding") || !fieldFirst[name[0]] {
		return // not one of those below
	}
	switch {
	case equalFold(name, "host"):
		r.hosts++
		for _, c := range value {
			if !hostByte[c] {
				r.fail = failBadRequest
				return
			}
		}
	case equalFold(name, "connection"):
		r.close = r.close || hasToken(value, "close")
		r.keep = r.keep || hasToken(value, "keep-alive")
	case equalFold(name, "content-length"):
		n, ok := parseLength(value)
		if !ok || (r.length >= 0 && r.length != n) {
			r.fail = failBadRequest
			return
		}
		r.length = n
		r.body = r.body || n > 0
	case equalFold(name, "transfer-encoding"):
		// Only chunked is understood (in HTTP/1.1); the body is never read,
		// so the connection closes after the answer either way.
		if r.minor > 0 && !equalFold(value, "chunked") {
			r.fail = failNotImplemented
			return
		}
		r.body = true
	case equalFold(name, "expect"):
		if len(value) > 0 && !hasToken(value, "100-continue") {
			r.fail = failExpectation
		}
	}
}

// finish checks the head as a whole once its last line is read.
func (r *request) finish() {
	if r.hosts > 1 || (r.hosts == 0 && r.minor > 0) {
		r.fail = failBadRequest
	}
}

// answer is the reply to a request parse has read in full.
func (r *request) answer() answer {
	switch {
	case r.fail != 0:
		return r.fail
	case r.target == targetStar && r.method == methodOptions:
		return answerOptions
	case r.target != targetRoot:
		return answerNotFound
	case r.method == methodGet || r.method == methodHead:
		return answerHealthy
	}
	return answerNotAllowed
}

// keepAlive tells whether the connection may carry another request after
// this one: HTTP/1.1 unless Connection: close, HTTP/1.0 only with
// Connection: keep-alive, never after a fault or with a body (bodies are
// not read, so the next request could not be found).
func (r *request) keepAlive() bool {
	if r.fail != 0 || r.body || r.close {
		return false
	}
	return r.minor > 0 || r.keep
}

// reset makes r ready for the next request.
func (r *request) reset() { *r = request{length: -1} }

// parseLength reads a Content-Length value: decimal digits only.
func parseLength(v []byte) (int64, bool) {
	if len(v) == 0 || len(v) > 18 {
		return 0, false
	}
	var n int64
	for _, c := range v {
		if !isDigit(c) {
			return 0, false
		}
		n = n*10 + int64(c-'0')
	}
	return n, true
}

// hasToken tells whether the comma-separated list v has token tok, in any
// case.
func hasToken(v []byte, tok string) bool {
	for len(v) > 0 {
		var item []byte
		if i := bytes.IndexByte(v, ','); i >= 0 {
			item, v = v[:i], v[i+1:]
		} else {
			item, v = v, nil
		}
		if equalFold(trimOWS(item), tok) {
			return true
		}
	}
	return false
}

// equalFold compares b and the lower-case ASCII s, ignoring b's case.
func equalFold(b []byte, s string) bool {
	if len(b) != len(s) {
		return false
	}
	for i := range len(b) {
		c := b[i]
		if 'A' <= c && c <= 'Z' {
			c += 'a' - 'A'
		}
		if c != s[i] {
			return false
		}
	}
	return true
}

func trimOWS(b []byte) []byte {
	for len(b) > 0 && (b[0] == ' ' || b[0] == '\t') {
		b = b[1:]
	}
	for len(b) > 0 && (b[len(b)-1] == ' ' || b[len(b)-1] == '\t') {
		b = b[:len(b)-1]
	}
	return b
}

func isDigit(c byte) bool { return '0' <= c && c <= '9' }

func isHex(c byte) bool { return isDigit(c) || ('a' <= c && c <= 'f') || ('A' <= c && c <= 'F') }

func isAlpha(c byte) bool { return ('a' <= c && c <= 'z') || ('A' <= c && c <= 'Z') }

// isScheme tells whether s is a URI scheme: a letter, then letters, digits,
// "+", "-" or ".".
func isScheme(s []byte) bool {
	if !isAlpha(s[0]) {
		return false
	}
	for _, c := range s[1:] {
		if !isAlpha(c) && !isDigit(c) && c != '+' && c != '-' && c != '.' {
			return false
		}
	}
	return true
}

func isToken(s []byte) bool {
	for _, c := range s {
		if !tokenByte[c] {
			return false
		}
	}
	return len(s) > 0
}

// tokenByte and hostByte are the bytes of a token (RFC 9110 5.6.2) and
// those accepted in a Host field (the characters of a host name, an IP
// address literal, a port and percent-encoding).
var tokenByte, hostByte = byteSet("!#$%&'*+-.^_`|~"), byteSet("!$%&'()*+,-.:;=[]_~")

// fieldFirst holds the first letters of the fields field looks at.
var fieldFirst = [256]bool{'h': true, 'H': true, 'c': true, 'C': true, 't': true, 'T': true, 'e': true, 'E': true}

func byteSet(punct string) (set [256]bool) {
	for c := range 256 {
		set[c] = isAlpha(byte(c)) || isDigit(byte(c))
	}
	for i := range len(punct) {
		set[punct[i]] = true
	}
	return set
}
