package main

import (
	"bufio"
	"bytes"
	"context"
	"errors"
	"io"
	"log/slog"
	"net"
	"net/http"
	"net/http/httptrace"
	"os/exec"
	"runtime"
	"strconv"
	"strings"
	"testing"
	"time"
)

// startServer serves on a loopback port with the server's defaults, changed
// by configure when it is not nil, until the test ends.
func startServer(t testing.TB, configure func(*server)) string {
	t.Helper()
	s := newServer(slog.New(slog.DiscardHandler))
	if configure != nil {
		configure(s)
	}
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	errc := make(chan error, 1)
	go func() { errc <- s.serve(ln) }()
	t.Cleanup(func() {
		ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
		defer cancel()
		if err := s.shutdown(ctx); err != nil {
			t.Errorf("shutdown: %v", err)
		}
		if err := <-errc; !errors.Is(err, errServerClosed) {
			t.Errorf("serve: %v", err)
		}
	})
	return ln.Addr().String()
}

// TestHeadSizes: a head of maxHead bytes is served, one byte more is not;
// heads arrive in pieces of any size.
func TestHeadSizes(t *testing.T) {
	addr := startServer(t, nil)
	head := func(n int) string {
		start, end := "GET / HTTP/1.1\r\nHost: x\r\nX: ", "\r\n\r\n"
		return start + strings.Repeat("y", n-len(start)-len(end)) + end
	}
	for _, tt := range []struct {
		name, req, want string
	}{
		{"maxHead", head(maxHead), healthy11},
		{"maxHead+1", head(maxHead + 1), tooLarge},
		{"beyond the first buffer", head(5000), healthy11},
	} {
		got, _ := exchange(t, addr, tt.req, 300*time.Millisecond)
		if got := withoutDates(t, got); got != tt.want {
			t.Errorf("%s: got %.80q, want %.80q", tt.name, got, tt.want)
		}
	}

	// The same requests one piece at a time, on one connection.
	c, err := net.Dial("tcp", addr)
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close()
	c.SetDeadline(time.Now().Add(10 * time.Second))
	br := bufio.NewReader(c)
	reqs := "GET / HTTP/1.1\r\nHost: x\r\n\r\n" + head(6000) + "GET /x HTTP/1.1\r\nHost: x\r\n\r\n"
	for _, size := range []int{1, 7, 1000} {
		go func() {
			for i := 0; i < len(reqs); i += size {
				c.Write([]byte(reqs[i:min(i+size, len(reqs))]))
			}
		}()
		for _, want := range []int{200, 200, 404} {
			resp, err := http.ReadResponse(br, nil)
			if err != nil {
				t.Fatalf("pieces of %d: %v", size, err)
			}
			io.Copy(io.Discard, resp.Body)
			if resp.StatusCode != want {
				t.Errorf("pieces of %d: %d, want %d", size, resp.StatusCode, want)
			}
		}
	}
}

// TestPipelining sends many requests at once and reads the answers in
// order while still sending, so answers are written out as the buffer fills.
func TestPipelining(t *testing.T) {
	addr := startServer(t, nil)
	c, err := net.Dial("tcp", addr)
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close()
	c.SetDeadline(time.Now().Add(20 * time.Second))
	reqs := []struct {
		req  string
		code int
	}{
		{"GET / HTTP/1.1\r\nHost: x\r\n\r\n", 200},
		{"HEAD / HTTP/1.1\r\nHost: x\r\n\r\n", 200},
		{"GET /nope HTTP/1.1\r\nHost: x\r\n\r\n", 404},
		{"DELETE / HTTP/1.1\r\nHost: x\r\n\r\n", 405},
	}
	const n = 5000
	var all bytes.Buffer
	for i := range n {
		all.WriteString(reqs[i%len(reqs)].req)
	}
	go c.Write(all.Bytes())
	br := bufio.NewReader(c)
	for i := range n {
		r := reqs[i%len(reqs)]
		method, _, _ := strings.Cut(r.req, " ")
		resp, err := http.ReadResponse(br, &http.Request{Method: method})
		if err != nil {
			t.Fatalf("answer %d: %v", i, err)
		}
		io.Copy(io.Discard, resp.Body)
		if resp.StatusCode != r.code {
			t.Fatalf("answer %d: %d, want %d", i, resp.StatusCode, r.code)
		}
	}
}

// TestClients: Go's HTTP client and curl keep the connection alive, get the
// security fields, and see HTTP/1.0 served.
func TestClients(t *testing.T) {
	addr := startServer(t, nil)
	base := "http://" + addr
	client := &http.Client{Timeout: 5 * time.Second}
	conns := 0
	trace := &httptrace.ClientTrace{GotConn: func(i httptrace.GotConnInfo) {
		if !i.Reused {
			conns++
		}
	}}
	for _, tt := range []struct {
		method, path string
		code         int
		body         string
		fields       map[string]string
	}{
		{"GET", "/", 200, "healthy\n", map[string]string{"Content-Type": "text/plain; charset=utf-8", "Content-Length": "8"}},
		{"HEAD", "/", 200, "", map[string]string{"Content-Length": "8"}},
		{"GET", "/?probe=1", 200, "healthy\n", nil},
		{"GET", "/healthz", 404, "not found\n", nil},
		{"POST", "/", 405, "method not allowed\n", map[string]string{"Allow": "GET, HEAD"}},
		{"GET", "/", 200, "healthy\n", nil},
	} {
		req, _ := http.NewRequestWithContext(httptrace.WithClientTrace(context.Background(), trace), tt.method, base+tt.path, nil)
		resp, err := client.Do(req)
		if err != nil {
			t.Fatal(err)
		}
		b, _ := io.ReadAll(resp.Body)
		resp.Body.Close()
		if resp.StatusCode != tt.code || string(b) != tt.body {
			t.Errorf("%s %s: %d %q, want %d %q", tt.method, tt.path, resp.StatusCode, b, tt.code, tt.body)
		}
		fields := map[string]string{"Cache-Control": "no-store", "X-Content-Type-Options": "nosniff"}
		for k, v := range tt.fields {
			fields[k] = v
		}
		for k, v := range fields {
			if got := resp.Header.Get(k); got != v {
				t.Errorf("%s %s: %s: %q, want %q", tt.method, tt.path, k, got, v)
			}
		}
	}
	// POST has no body here, so the connection stays.
	if conns != 1 {
		t.Errorf("%d connections for 6 requests, want 1 kept alive", conns)
	}

	curl, err := exec.LookPath("curl")
	if err != nil {
		t.Skip("no curl: apt-get install -y curl")
	}
	for _, tt := range []struct {
		args []string
		want string
	}{
		// Two transfers on one connection: the second connects 0 times.
		{[]string{base + "/", base + "/"}, "healthy\n200 1\nhealthy\n200 0\n"},
		{[]string{"--http1.0", base + "/"}, "healthy\n200 1\n"},
		{[]string{"-I", base + "/"}, "200 1\n"},
		{[]string{"-X", "PUT", base + "/"}, "method not allowed\n405 1\n"},
		{[]string{base + "/x"}, "not found\n404 1\n"},
	} {
		args := append([]string{"-sS", "--max-time", "5", "-o", "-", "-w", "%{http_code} %{num_connects}\n"}, tt.args...)
		if tt.args[0] == "-I" {
			args = append([]string{"-sS", "--max-time", "5", "-o", "/dev/null", "-w", "%{http_code} %{num_connects}\n"}, tt.args...)
		}
		out, err := exec.Command(curl, args...).Output()
		if err != nil || string(out) != tt.want {
			t.Errorf("curl %q: %q (%v), want %q", tt.args, out, err, tt.want)
		}
	}
	out, err := exec.Command(curl, "-sS", "--max-time", "5", "--http1.0", "-i", base+"/").Output()
	if got := withoutDates(t, string(out)); err != nil || got != healthy10 {
		t.Errorf("curl --http1.0 -i: %q (%v), want %q", got, err, healthy10)
	}
}

// TestTimeouts: a silent connection, a head sent too slowly (slowloris)
// and an idle kept-alive connection are closed; a client that does not read
// its answers is cut off.
func TestTimeouts(t *testing.T) {
	const header, idle, write = 300 * time.Millisecond, 800 * time.Millisecond, 300 * time.Millisecond
	addr := startServer(t, func(s *server) {
		s.headerTimeout, s.idleTimeout, s.writeTimeout = header, idle, write
	})
	dial := func() net.Conn {
		c, err := net.Dial("tcp", addr)
		if err != nil {
			t.Fatal(err)
		}
		t.Cleanup(func() { c.Close() })
		return c
	}
	// closedAfter waits for the server to close c, reading what it sends.
	closedAfter := func(c net.Conn, start time.Time) (time.Duration, string) {
		c.SetReadDeadline(time.Now().Add(10 * time.Second))
		b, err := io.ReadAll(c)
		if err != nil && !errors.Is(err, io.EOF) && !strings.Contains(err.Error(), "reset") {
			t.Fatalf("not closed by the server: %v", err)
		}
		return time.Since(start), string(b)
	}

	t.Run("silent", func(t *testing.T) {
		start := time.Now()
		if d, got := closedAfter(dial(), start); d < header-50*time.Millisecond || d > header+2*time.Second || got != "" {
			t.Errorf("silent connection closed after %v with %q, want after %v without an answer", d, got, header)
		}
	})

	t.Run("slowloris", func(t *testing.T) {
		c := dial()
		start := time.Now()
		go func() {
			io.WriteString(c, "GET / HTTP/1.1\r\nHost: x\r\n")
			for range 100 {
				time.Sleep(20 * time.Millisecond)
				if _, err := io.WriteString(c, "X: y\r\n"); err != nil {
					return
				}
			}
		}()
		if d, got := closedAfter(c, start); d < header-50*time.Millisecond || d > header+2*time.Second || got != "" {
			t.Errorf("slow head closed after %v with %q, want after %v without an answer", d, got, header)
		}
	})

	t.Run("slow second request", func(t *testing.T) {
		c := dial()
		io.WriteString(c, "GET / HTTP/1.1\r\nHost: x\r\n\r\nGET / HTT")
		br := bufio.NewReader(c)
		resp, err := http.ReadResponse(br, nil)
		if err != nil || resp.StatusCode != 200 {
			t.Fatalf("first answer: %v", err)
		}
		io.Copy(io.Discard, resp.Body)
		start := time.Now()
		if d, _ := closedAfter(c, start); d > header+2*time.Second {
			t.Errorf("unfinished second request closed after %v, want about %v", d, header)
		}
	})

	t.Run("idle", func(t *testing.T) {
		c := dial()
		br := bufio.NewReader(c)
		for range 2 {
			io.WriteString(c, "GET / HTTP/1.1\r\nHost: x\r\n\r\n")
			resp, err := http.ReadResponse(br, nil)
			if err != nil || resp.StatusCode != 200 {
				t.Fatalf("answer: %v", err)
			}
			io.Copy(io.Discard, resp.Body)
			// Longer than the header timeout: an idle connection has
			// the idle timeout.
			time.Sleep(header + 100*time.Millisecond)
		}
		start := time.Now().Add(-(header + 100*time.Millisecond))
		if d, _ := closedAfter(c, start); d < idle-idle/10-50*time.Millisecond || d > idle+2*time.Second {
			t.Errorf("idle connection closed after %v, want about %v", d, idle)
		}
	})

	t.Run("not reading", func(t *testing.T) {
		c := dial()
		req := []byte(strings.Repeat("GET / HTTP/1.1\r\nHost: x\r\n\r\n", 1000))
		c.SetWriteDeadline(time.Now().Add(20 * time.Second))
		start := time.Now()
		for {
			if _, err := c.Write(req); err != nil {
				if time.Since(start) > 15*time.Second {
					t.Fatalf("writes failed only after %v: %v", time.Since(start), err)
				}
				return // the server gave up and closed
			}
		}
	})
}

// TestShutdown: shutdown closes idle connections at once, lets a request
// in progress finish, and new connections are refused.
func TestShutdown(t *testing.T) {
	s := newServer(slog.New(slog.DiscardHandler))
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	addr := ln.Addr().String()
	errc := make(chan error, 1)
	go func() { errc <- s.serve(ln) }()

	idle, err := net.Dial("tcp", addr)
	if err != nil {
		t.Fatal(err)
	}
	defer idle.Close()
	idle.SetDeadline(time.Now().Add(10 * time.Second))
	io.WriteString(idle, "GET / HTTP/1.1\r\nHost: x\r\n\r\n")
	br := bufio.NewReader(idle)
	if resp, err := http.ReadResponse(br, nil); err != nil || resp.StatusCode != 200 {
		t.Fatalf("answer: %v", err)
	}

	start := time.Now()
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
	defer cancel()
	if err := s.shutdown(ctx); err != nil {
		t.Fatalf("shutdown: %v", err)
	}
	if d := time.Since(start); d > 2*time.Second {
		t.Errorf("shutdown took %v with one idle connection", d)
	}
	if err := <-errc; !errors.Is(err, errServerClosed) {
		t.Errorf("serve after shutdown: %v", err)
	}
	if _, err := io.ReadAll(br); err != nil && !strings.Contains(err.Error(), "reset") {
		t.Errorf("idle connection after shutdown: %v, want closed", err)
	}
	if c, err := net.DialTimeout("tcp", addr, time.Second); err == nil {
		c.Close()
		t.Error("new connection accepted after shutdown")
	}
}

// TestNoAllocations: serving requests on a kept-alive connection allocates
// nothing in the whole program (the client here allocates nothing either).
func TestNoAllocations(t *testing.T) {
	addr := startServer(t, nil)
	c, err := net.Dial("tcp", addr)
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close()
	req := []byte("GET / HTTP/1.1\r\nHost: x\r\nUser-Agent: test\r\n\r\n")
	want := answerLen(healthy11)
	buf := make([]byte, 4096)
	roundTrip := func() {
		if _, err := c.Write(req); err != nil {
			t.Fatal(err)
		}
		for got := 0; got < want; {
			n, err := c.Read(buf)
			if err != nil {
				t.Fatal(err)
			}
			got += n
		}
	}
	for range 100 {
		roundTrip() // warm up: the connection's buffers, the deadlines
	}
	const n = 5000
	var before, after runtime.MemStats
	runtime.ReadMemStats(&before)
	for range n {
		roundTrip()
	}
	runtime.ReadMemStats(&after)
	if allocs := after.Mallocs - before.Mallocs; allocs > n/100 {
		t.Errorf("%d allocations for %d requests, want none per request", allocs, n)
	}
}

// BenchmarkServe measures the handler path: parsing a kubelet probe's
// request in the connection's buffer and appending the answer.
func BenchmarkServe(b *testing.B) {
	c := &conn{s: newServer(nil), rbuf: make([]byte, 4<<10), wbuf: make([]byte, 0, 4<<10)}
	c.req.reset()
	req := "GET / HTTP/1.1\r\nHost: 10.0.0.1:8080\r\nUser-Agent: kube-probe/1.36\r\nAccept: */*\r\nConnection: close\r\n\r\n"
	now := time.Now()
	b.ReportAllocs()
	b.SetBytes(int64(len(req)))
	for b.Loop() {
		c.r0, c.r1 = 0, copy(c.rbuf, req)
		if keep, answered := c.answer(now); keep || !answered {
			b.Fatal("not answered")
		}
		c.wbuf = c.wbuf[:0]
	}
}

// BenchmarkLoopback measures a request and its answer over a loopback TCP
// connection, client and server in this process.
func BenchmarkLoopback(b *testing.B) {
	addr := startServer(b, nil)
	c, err := net.Dial("tcp", addr)
	if err != nil {
		b.Fatal(err)
	}
	defer c.Close()
	req := []byte("GET / HTTP/1.1\r\nHost: x\r\n\r\n")
	buf := make([]byte, 4096)
	b.ReportAllocs()
	for b.Loop() {
		c.Write(req)
		for got := 0; got < answerLen(healthy11); {
			n, err := c.Read(buf)
			if err != nil {
				b.Fatal(err)
			}
			got += n
		}
	}
}

// TestLastAnswerArrives: a connection closed after an answer while the
// client still sends (a body that is never read) must not be reset before
// the client has the answer.
func TestLastAnswerArrives(t *testing.T) {
	addr := startServer(t, nil)
	for range 20 {
		c, err := net.Dial("tcp", addr)
		if err != nil {
			t.Fatal(err)
		}
		c.SetDeadline(time.Now().Add(10 * time.Second))
		body := bytes.Repeat([]byte("x"), 256<<10)
		go func() {
			io.WriteString(c, "POST / HTTP/1.1\r\nHost: x\r\nContent-Length: "+strconv.Itoa(len(body))+"\r\n\r\n")
			c.Write(body)
		}()
		resp, err := http.ReadResponse(bufio.NewReader(c), nil)
		if err != nil {
			t.Fatalf("answer lost: %v", err)
		}
		b, err := io.ReadAll(resp.Body)
		c.Close()
		if err != nil || resp.StatusCode != 405 || string(b) != "method not allowed\n" || !resp.Close {
			t.Fatalf("answer %d %q (%v), close %v; want 405 and close", resp.StatusCode, b, err, resp.Close)
		}
	}
}

// TestAnswersFit: no answer is longer than maxResponse, the room answer
// keeps in the write buffer so that appending never grows it.
func TestAnswersFit(t *testing.T) {
	c := &conn{s: newServer(nil)}
	for a := range answers {
		for _, r := range []request{{minor: 0, keep: true}, {minor: 1}, {minor: 1, close: true}} {
			for _, keep := range []bool{false, true} {
				if n := len(c.appendAnswer(nil, a, &r, keep, time.Now())); n > maxResponse {
					t.Errorf("answer %d is %d bytes, more than maxResponse (%d)", a, n, maxResponse)
				}
			}
		}
	}
}
