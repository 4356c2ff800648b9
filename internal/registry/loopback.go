package registry

import (
	"net"
	"net/netip"
	"strings"
)

// IsLoopback reports whether host — a host name or IP address without a
// port, optionally in brackets — names this machine's loopback interface
// only: "localhost", any address in 127.0.0.0/8, or ::1 (also written as an
// IPv4-mapped address). An empty host, 0.0.0.0 and :: mean every interface
// and are not loopback; no other name is resolved, so none counts.
func IsLoopback(host string) bool {
	host = strings.TrimSuffix(strings.TrimPrefix(host, "["), "]")
	if strings.EqualFold(strings.TrimSuffix(host, "."), "localhost") {
		return true
	}
	a, err := netip.ParseAddr(host)
	if err != nil || a.Zone() != "" {
		return false
	}
	return a.Unmap().IsLoopback()
}

// hostIsLoopback reports whether the host part of hostport (HOST or
// HOST:PORT) is loopback.
func hostIsLoopback(hostport string) bool {
	if h, _, err := net.SplitHostPort(hostport); err == nil {
		return IsLoopback(h)
	}
	return IsLoopback(hostport)
}
