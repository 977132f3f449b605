// Package netport picks free TCP ports for servers that bind a port themselves and cannot be handed a
// listener or report the port they bound (Temporal's services, etcd, kube-apiserver, Jupyter).
//
// A port picked by listening on ":0" and closing the listener comes from the kernel's ephemeral range,
// the same range the kernel hands to outgoing connections and to every other ":0" listener; on a busy
// machine one of those can take the port before the server binds it. Free picks below that range
// instead (/proc/sys/net/ipv4/ip_local_port_range), where the kernel never assigns ports on its own.
//
// Where the server can be given a listener, or reports the port it bound, prefer that: listen on
// "127.0.0.1:0" and keep the listener, and no port is picked at all.
package netport

import (
	"errors"
	"fmt"
	"math/rand/v2"
	"net"
	"os"
	"strconv"
	"strings"
)

// BelowEphemeralFrom is the lowest port Free picks (above the well-known and common service ports).
const BelowEphemeralFrom = 20000

// defaultEphemeralLow is Linux's default first ephemeral port, used when the range cannot be read.
const defaultEphemeralLow = 32768

// tries is how many random ports below the ephemeral range Free tries before it falls back to a
// kernel-chosen one; minSpan is the smallest span below the range it picks from.
const (
	tries   = 200
	minSpan = 1000
)

// Free returns a TCP port on host (an IP address such as "127.0.0.1") that was free when it returned. The
// port is released before returning, so it is picked from [BelowEphemeralFrom, EphemeralLow()); only when
// that span is too small (a tuned ip_local_port_range) or no port in it is free does it fall back to a
// kernel-chosen ephemeral port.
func Free(host string) (int, error) {
	return free(host, BelowEphemeralFrom, EphemeralLow())
}

// FreeN returns n distinct ports on host, each picked as by [Free], for servers started together.
func FreeN(host string, n int) ([]int, error) {
	ports := make([]int, 0, n)
	seen := make(map[int]bool, n)
	for len(ports) < n {
		port, err := Free(host)
		if err != nil {
			return nil, err
		}
		if seen[port] {
			continue // picked again while still unbound: try once more
		}
		seen[port] = true
		ports = append(ports, port)
	}
	return ports, nil
}

// free picks a port in [from, to), or a kernel-chosen one when that span is smaller than minSpan or no
// port in it is free.
func free(host string, from, to int) (int, error) {
	if to-from >= minSpan {
		for range tries {
			port := from + rand.IntN(to-from)
			if l, err := net.Listen("tcp", net.JoinHostPort(host, strconv.Itoa(port))); err == nil {
				if err := l.Close(); err != nil {
					return 0, fmt.Errorf("netport: release port %d: %w", port, err)
				}
				return port, nil
			}
		}
	}
	l, err := net.Listen("tcp", net.JoinHostPort(host, "0"))
	if err != nil {
		return 0, fmt.Errorf("netport: pick a free port on %s: %w", host, err)
	}
	port := l.Addr().(*net.TCPAddr).Port
	if err := l.Close(); err != nil {
		return 0, fmt.Errorf("netport: release port %d: %w", port, err)
	}
	return port, nil
}

// EphemeralLow is the first port of the kernel's ephemeral range (Linux's default 32768 when
// /proc/sys/net/ipv4/ip_local_port_range cannot be read, e.g. on other systems).
func EphemeralLow() int {
	b, err := os.ReadFile("/proc/sys/net/ipv4/ip_local_port_range")
	if err != nil {
		return defaultEphemeralLow
	}
	low, err := parseRangeLow(string(b))
	if err != nil {
		return defaultEphemeralLow
	}
	return low
}

// parseRangeLow reads the first port of ip_local_port_range's "<low> <high>".
func parseRangeLow(s string) (int, error) {
	f := strings.Fields(s)
	if len(f) != 2 {
		return 0, errors.New("netport: ip_local_port_range is not two ports")
	}
	low, err := strconv.Atoi(f[0])
	if err != nil || low < 1 || low > 65535 {
		return 0, fmt.Errorf("netport: ip_local_port_range starts at %q, not a port", f[0])
	}
	return low, nil
}
