package main

import (
	"bufio"
	"bytes"
	"context"
	"io"
	"net"
	"net/http"
	"os"
	"os/exec"
	"strings"
	"syscall"
	"testing"
	"time"
)

// TestMain lets the tests run this binary's main as a real process.
func TestMain(m *testing.M) {
	if os.Getenv("HEALTH_TEST_MAIN") == "1" {
		main()
		return
	}
	os.Exit(m.Run())
}

// serve starts run on a loopback port and returns its address and a
// function that stops it and returns run's error.
func serve(t *testing.T, args ...string) (string, func() error) {
	t.Helper()
	ctx, cancel := context.WithCancel(context.Background())
	ready := make(chan net.Addr, 1)
	errc := make(chan error, 1)
	var logs bytes.Buffer
	go func() {
		errc <- run(ctx, append([]string{"-addr", "127.0.0.1:0"}, args...), func(string) string { return "" }, &logs, ready)
	}()
	var addr string
	select {
	case a := <-ready:
		addr = a.String()
	case err := <-errc:
		cancel()
		t.Fatalf("run: %v", err)
	case <-time.After(10 * time.Second):
		cancel()
		t.Fatal("server did not start")
	}
	stopped := false
	stop := func() error {
		if stopped {
			return nil
		}
		stopped = true
		cancel()
		select {
		case err := <-errc:
			return err
		case <-time.After(15 * time.Second):
			t.Fatal("server did not stop")
			return nil
		}
	}
	t.Cleanup(func() { stop() })
	return addr, stop
}

func get(t *testing.T, url string) (int, string) {
	t.Helper()
	c := &http.Client{Timeout: 5 * time.Second}
	resp, err := c.Get(url)
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	b, _ := io.ReadAll(resp.Body)
	return resp.StatusCode, string(b)
}

func TestServeAndOddRequests(t *testing.T) {
	addr, stop := serve(t)
	if code, body := get(t, "http://"+addr+"/"); code != 200 || body != "healthy\n" {
		t.Fatalf("GET / = %d %q", code, body)
	}

	odd := []string{
		"\x00\x01\x02garbage\r\n\r\n",
		"GET / HTTP/1.1\r\n\r\n", // no Host
		"GET / HTTP/9.9\r\nHost: x\r\n\r\n",
		"GET " + strings.Repeat("/a", 10000) + " HTTP/1.1\r\nHost: x\r\n\r\n",
		"GET / HTTP/1.1\r\nHost: x\r\nX: " + strings.Repeat("y", 64<<10) + "\r\n\r\n",
		"POST / HTTP/1.1\r\nHost: x\r\nContent-Length: 99999999999999999999\r\n\r\n",
		"POST / HTTP/1.1\r\nHost: x\r\nTransfer-Encoding: chunked\r\n\r\nzz\r\n",
		"GET /\xff\xfe HTTP/1.1\r\nHost: x\r\n\r\n",
		"PRI * HTTP/2.0\r\n\r\nSM\r\n\r\n",
		"GET / HTTP/1.1\r\nHost: x\r\n", // never finishes the headers
		"",                              // connects and says nothing
	}
	for _, req := range odd {
		c, err := net.DialTimeout("tcp", addr, 5*time.Second)
		if err != nil {
			t.Fatal(err)
		}
		c.SetDeadline(time.Now().Add(500 * time.Millisecond))
		io.WriteString(c, req)
		line, _ := bufio.NewReader(c).ReadString('\n')
		c.Close()
		if strings.HasPrefix(line, "HTTP/1.1 200") && !strings.HasPrefix(req, "GET / HTTP/1.1\r\nHost: x\r\n\r\n") {
			t.Errorf("odd request %.40q answered %q", req, line)
		}
	}
	// Still healthy after all that.
	if code, body := get(t, "http://"+addr+"/"); code != 200 || body != "healthy\n" {
		t.Fatalf("GET / after odd requests = %d %q", code, body)
	}
	if code, _ := get(t, "http://"+addr+"/nope"); code != 404 {
		t.Fatalf("GET /nope = %d, want 404", code)
	}
	if err := stop(); err != nil {
		t.Fatalf("graceful stop: %v", err)
	}
}

func TestRunArgs(t *testing.T) {
	env := func(v string) func(string) string {
		return func(k string) string {
			if k == "HEALTH_ADDR" {
				return v
			}
			return ""
		}
	}
	ctx, cancel := context.WithCancel(context.Background())
	cancel()
	for _, tt := range []struct {
		args []string
		env  string
		want string
	}{
		{[]string{"extra"}, "", `unexpected argument "extra"`},
		{[]string{"-port", "1"}, "", "flag provided but not defined"},
		{nil, "256.0.0.1:1", "256.0.0.1"},
		{[]string{"-addr", "nope:nope"}, "127.0.0.1:0", "nope"},
	} {
		err := run(ctx, tt.args, env(tt.env), io.Discard, nil)
		if err == nil || !strings.Contains(err.Error(), tt.want) {
			t.Errorf("run(%q, HEALTH_ADDR=%q) = %v, want error containing %q", tt.args, tt.env, err, tt.want)
		}
	}
	// HEALTH_ADDR is used when -addr is not given.
	ready := make(chan net.Addr, 1)
	errc := make(chan error, 1)
	ctx2, cancel2 := context.WithCancel(context.Background())
	go func() { errc <- run(ctx2, nil, env("127.0.0.1:0"), io.Discard, ready) }()
	a := <-ready
	if !strings.HasPrefix(a.String(), "127.0.0.1:") {
		t.Errorf("listening on %s, want 127.0.0.1", a)
	}
	cancel2()
	if err := <-errc; err != nil {
		t.Errorf("run: %v", err)
	}
}

// TestSIGTERM runs the real program and stops it with SIGTERM.
func TestSIGTERM(t *testing.T) {
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	addr := ln.Addr().String()
	ln.Close()

	cmd := exec.Command(os.Args[0], "-addr", addr)
	cmd.Env = append(os.Environ(), "HEALTH_TEST_MAIN=1")
	var out bytes.Buffer
	cmd.Stderr = &out
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	done := make(chan error, 1)
	go func() { done <- cmd.Wait() }()
	t.Cleanup(func() {
		if cmd.ProcessState == nil {
			cmd.Process.Kill()
			<-done
		}
	})
	deadline := time.Now().Add(10 * time.Second)
	for {
		resp, err := (&http.Client{Timeout: time.Second}).Get("http://" + addr + "/")
		if err == nil {
			resp.Body.Close()
			break
		}
		if time.Now().After(deadline) {
			t.Fatalf("server never answered: %v\n%s", err, out.String())
		}
		time.Sleep(20 * time.Millisecond)
	}
	cmd.Process.Signal(syscall.SIGTERM)
	select {
	case err := <-done:
		if err != nil {
			t.Fatalf("exit after SIGTERM: %v\n%s", err, out.String())
		}
	case <-time.After(15 * time.Second):
		t.Fatal("did not exit after SIGTERM")
	}
	if !strings.Contains(out.String(), "shutting down") {
		t.Errorf("no shutdown log:\n%s", out.String())
	}
}
