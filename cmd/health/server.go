package main

import (
	"context"
	"errors"
	"log/slog"
	"net"
	"strconv"
	"sync"
	"sync/atomic"
	"time"
)

// The server is a minimal HTTP/1.1 server for a handful of fixed answers:
// every response is precomputed but for its Date, requests are parsed in
// place in a per-connection buffer, and answers to pipelined requests go
// out in one write. Serving a request allocates nothing and logs nothing.

// response is one precomputed answer, split around the value of its Date
// field (which changes once a second).
type response struct {
	head string // status and reason, the fields before Date, "Date: "
	tail string // the end of the Date line, the fields after it
	body string
}

// Fields the answers share; the first and last are the security fields
// every answer carries.
const (
	cacheControl = "Cache-Control: no-store\r\n"
	textPlain    = "Content-Type: text/plain; charset=utf-8\r\n"
	nosniff      = "X-Content-Type-Options: nosniff\r\n"
)

// responses are the answers, the fields in the order net/http wrote them
// when it served this program, so clients see what they always saw.
var responses = [answers]response{
	answerHealthy: {
		head: "200 OK\r\n" + cacheControl + "Content-Length: 8\r\n" + textPlain + nosniff + "Date: ",
		tail: "\r\n",
		body: "healthy\n",
	},
	answerOptions: {
		head: "200 OK\r\n" + cacheControl + "Content-Length: 0\r\n" + nosniff + "Date: ",
		tail: "\r\n",
	},
	answerNotFound:     text("404 Not Found", "", "not found\n"),
	answerNotAllowed:   text("405 Method Not Allowed", "Allow: GET, HEAD\r\n", "method not allowed\n"),
	failBadRequest:     text("400 Bad Request", "", "bad request\n"),
	failExpectation:    text("417 Expectation Failed", "", "expectation failed: only 100-continue is known\n"),
	failTooLarge:       text("431 Request Header Fields Too Large", "", "request header fields too large\n"),
	failNotImplemented: text("501 Not Implemented", "", "unsupported transfer encoding\n"),
	failVersion:        text("505 HTTP Version Not Supported", "", "HTTP version not supported: only HTTP/1.x\n"),
}

// text is an answer with a plain text body, as http.Error wrote it.
func text(status, fields, body string) response {
	return response{
		head: status + "\r\n" + fields + cacheControl + textPlain + nosniff + "Date: ",
		tail: "\r\nContent-Length: " + strconv.Itoa(len(body)) + "\r\n",
		body: body,
	}
}

// maxResponse bounds the length of any one answer, so a write buffer with
// that much room left takes the next answer without growing.
const maxResponse = 512

// dateFormat is the format of the Date field (RFC 9110 5.6.7), in UTC.
const dateFormat = "Mon, 02 Jan 2006 15:04:05 GMT"

// server serves the health answers on a listener.
type server struct {
	headerTimeout time.Duration // for a request's head, from its first byte (or the connection's start)
	idleTimeout   time.Duration // for the next request on a kept-alive connection
	writeTimeout  time.Duration // for each write of answers
	lingerTimeout time.Duration // for the client to close after a last answer
	log           *slog.Logger

	closing atomic.Bool
	mu      sync.Mutex
	ln      net.Listener
	conns   map[*conn]struct{}
	wg      sync.WaitGroup
}

// errServerClosed is what serve returns after shutdown.
var errServerClosed = errors.New("health: server closed")

func newServer(log *slog.Logger) *server {
	return &server{
		headerTimeout: 5 * time.Second,
		idleTimeout:   60 * time.Second,
		writeTimeout:  10 * time.Second,
		lingerTimeout: time.Second,
		log:           log,
		conns:         map[*conn]struct{}{},
	}
}

// serve accepts connections on ln until shutdown, each served by its own
// goroutine. Accept errors that may pass (too many open files) are logged
// and retried after a pause that grows to a second.
func (s *server) serve(ln net.Listener) error {
	s.mu.Lock()
	if s.closing.Load() {
		s.mu.Unlock()
		ln.Close()
		return errServerClosed
	}
	s.ln = ln
	s.mu.Unlock()
	var pause time.Duration
	for {
		nc, err := ln.Accept()
		if err != nil {
			if s.closing.Load() {
				return errServerClosed
			}
			var te interface{ Temporary() bool }
			if !errors.As(err, &te) || !te.Temporary() {
				return err
			}
			pause = min(max(2*pause, 5*time.Millisecond), time.Second)
			s.log.Warn("accept failed, retrying", "err", err, "in", pause)
			time.Sleep(pause)
			continue
		}
		pause = 0
		c := &conn{s: s, nc: nc, rbuf: make([]byte, 4<<10), wbuf: make([]byte, 0, 4<<10)}
		c.req.reset()
		s.mu.Lock()
		if s.closing.Load() {
			s.mu.Unlock()
			nc.Close()
			return errServerClosed
		}
		s.conns[c] = struct{}{}
		s.wg.Add(1)
		s.mu.Unlock()
		go c.serve()
	}
}

// shutdown stops accepting, closes idle connections, lets the others
// finish the answers they are writing, and waits for them until ctx is
// done; then it closes what is left.
func (s *server) shutdown(ctx context.Context) error {
	s.mu.Lock()
	s.closing.Store(true)
	if s.ln != nil {
		s.ln.Close()
	}
	for c := range s.conns {
		// Wakes connections waiting for a request; serve sees closing.
		c.nc.SetReadDeadline(time.Unix(1, 0))
	}
	s.mu.Unlock()
	done := make(chan struct{})
	go func() { s.wg.Wait(); close(done) }()
	select {
	case <-done:
		return nil
	case <-ctx.Done():
	}
	s.mu.Lock()
	for c := range s.conns {
		c.nc.Close()
	}
	s.mu.Unlock()
	<-done
	return ctx.Err()
}

// conn is one client connection.
type conn struct {
	s  *server
	nc net.Conn

	rbuf   []byte // input: rbuf[r0:r1] is not answered yet
	r0, r1 int
	req    request // the request at rbuf[r0:], parsed up to r0+off
	off    int

	wbuf []byte // answers not written yet

	date    []byte // the Date value for second dateSec, in dateBuf
	dateBuf [len(dateFormat)]byte
	dateSec int64

	rdl, wdl   time.Time // the read and write deadlines set
	headerWait bool      // rdl is a request's header deadline, not the idle one
}

// serve reads requests and writes answers until the client closes, a
// timeout expires, a request asks to close or is bad, or the server
// shuts down.
func (c *conn) serve() {
	defer c.done()
	now := time.Now()
	c.setReadDeadline(now.Add(c.s.headerTimeout))
	c.headerWait = true
	for {
		if c.s.closing.Load() {
			return
		}
		n, err := c.nc.Read(c.rbuf[c.r1:])
		if n == 0 || err != nil {
			return // closed, timed out or shut down
		}
		c.r1 += n
		now = time.Now()
		keep, answered := c.answer(now)
		if len(c.wbuf) > 0 && !c.flush(now) {
			return
		}
		if !keep {
			c.linger()
			return
		}
		if c.r0 == c.r1 {
			// Waiting for the next request: the idle timeout, renewed
			// when it has run down by more than a tenth.
			c.r0, c.r1 = 0, 0
			if d := c.s.idleTimeout; c.headerWait || c.rdl.Sub(now) < d-d/10 {
				c.setReadDeadline(now.Add(d))
				c.headerWait = false
			}
			continue
		}
		// Part of a request: its head has headerTimeout in all.
		if answered || !c.headerWait {
			c.setReadDeadline(now.Add(c.s.headerTimeout))
			c.headerWait = true
		}
		if c.r1-c.r0 >= maxHead {
			c.wbuf = c.appendAnswer(c.wbuf[:0], failTooLarge, &c.req, false, now)
			if c.flush(now) {
				c.linger()
			}
			return
		}
		if c.r1 == len(c.rbuf) {
			if c.r0 > 0 {
				c.r1 = copy(c.rbuf, c.rbuf[c.r0:c.r1])
				c.r0 = 0
			} else {
				// A head longer than the buffer: grow it once to maxHead.
				c.rbuf = append(c.rbuf, make([]byte, maxHead-len(c.rbuf))...)
			}
		}
	}
}

// answer answers every whole request in the input, appending the answers
// to wbuf and writing them out when it fills. It reports whether the
// connection stays open and whether it answered any request.
func (c *conn) answer(now time.Time) (keep, answered bool) {
	for c.r0 < c.r1 {
		off, done := c.req.parse(c.rbuf[c.r0:c.r1], c.off)
		if !done {
			c.off = off
			return true, answered
		}
		keep = c.req.keepAlive() && !c.s.closing.Load()
		if cap(c.wbuf)-len(c.wbuf) < maxResponse && !c.flush(now) {
			return false, true
		}
		c.wbuf = c.appendAnswer(c.wbuf, c.req.answer(), &c.req, keep, now)
		answered = true
		c.r0 += off
		c.off = 0
		c.req.reset()
		if !keep {
			return false, true
		}
	}
	return true, answered
}

// appendAnswer appends answer a to request r. Its Connection field says
// close when the connection ends and the client may have expected it to
// stay (HTTP/1.1, or HTTP/1.0 that asked for keep-alive), and keep-alive
// when an HTTP/1.0 client asked for it and the connection stays. Faults
// always end the connection and are answered in HTTP/1.1.
func (c *conn) appendAnswer(b []byte, a answer, r *request, keep bool, now time.Time) []byte {
	resp := &responses[a]
	fault := a >= failBadRequest
	if r.minor == 0 && !fault {
		b = append(b, "HTTP/1.0 "...)
	} else {
		b = append(b, "HTTP/1.1 "...)
	}
	b = append(b, resp.head...)
	b = append(b, c.dateAt(now)...)
	b = append(b, resp.tail...)
	switch {
	case fault, !keep && (r.minor > 0 || r.keep):
		b = append(b, "Connection: close\r\n"...)
	case keep && r.minor == 0:
		b = append(b, "Connection: keep-alive\r\n"...)
	}
	b = append(b, "\r\n"...)
	if fault || r.method != methodHead {
		b = append(b, resp.body...)
	}
	return b
}

// dateAt is the Date value for now, formatted once a second.
func (c *conn) dateAt(now time.Time) []byte {
	if sec := now.Unix(); sec != c.dateSec || c.date == nil {
		c.date = now.UTC().AppendFormat(c.dateBuf[:0], dateFormat)
		c.dateSec = sec
	}
	return c.date
}

// flush writes out wbuf; the write deadline is renewed when it has run
// down by more than a tenth.
func (c *conn) flush(now time.Time) bool {
	if d := c.s.writeTimeout; c.wdl.Sub(now) < d-d/10 {
		c.wdl = now.Add(d)
		c.nc.SetWriteDeadline(c.wdl)
	}
	_, err := c.nc.Write(c.wbuf)
	c.wbuf = c.wbuf[:0]
	return err == nil
}

func (c *conn) setReadDeadline(t time.Time) {
	c.rdl = t
	c.nc.SetReadDeadline(t)
}

// linger ends a connection after its last answer: it closes the sending
// side and reads what the client still sends until it closes too (or a
// second passes), so unread requests do not make the kernel reset the
// connection before the client has read the answer.
func (c *conn) linger() {
	if cw, ok := c.nc.(interface{ CloseWrite() error }); ok {
		cw.CloseWrite()
	}
	c.nc.SetReadDeadline(time.Now().Add(c.s.lingerTimeout))
	for range 64 {
		if _, err := c.nc.Read(c.rbuf); err != nil {
			return
		}
	}
}

func (c *conn) done() {
	c.nc.Close()
	c.s.mu.Lock()
	delete(c.s.conns, c)
	c.s.mu.Unlock()
	c.s.wg.Done()
}
