package devstack

import (
	"fmt"
	"math/rand/v2"
	"net"
	"os"
	"strconv"
	"strings"
)

// loopback is the only address the stack listens on.
const loopback = "127.0.0.1"

// freePort picks a free loopback TCP port for a server that binds it itself (Temporal's services, the
// UI). The port is released before returning, so it is taken from below the kernel's ephemeral range
// (/proc/sys/net/ipv4/ip_local_port_range): the kernel never hands those out to outgoing connections or
// to ":0" listeners, so on a busy machine the port cannot be taken by one of them before the server
// binds it. Only when no such port is found does it fall back to a kernel-chosen one.
func freePort() (int, error) {
	low := ephemeralLow()
	if low > belowEphemeralFrom+1000 {
		for range 200 {
			port := belowEphemeralFrom + rand.IntN(low-belowEphemeralFrom)
			if l, err := net.Listen("tcp", hostPort(port)); err == nil {
				_ = l.Close()
				return port, nil
			}
		}
	}
	l, err := net.Listen("tcp", net.JoinHostPort(loopback, "0"))
	if err != nil {
		return 0, fmt.Errorf("pick free port: %w", err)
	}
	defer l.Close()
	return l.Addr().(*net.TCPAddr).Port, nil
}

// belowEphemeralFrom is the lowest port freePort picks (above the well-known and common service ports).
const belowEphemeralFrom = 20000

// ephemeralLow is the first port of the kernel's ephemeral range (Linux's default 32768 when unreadable).
func ephemeralLow() int {
	b, err := os.ReadFile("/proc/sys/net/ipv4/ip_local_port_range")
	if err != nil {
		return 32768
	}
	f := strings.Fields(string(b))
	if len(f) == 0 {
		return 32768
	}
	n, err := strconv.Atoi(f[0])
	if err != nil {
		return 32768
	}
	return n
}

// portOrFree returns port when it is positive and a free port otherwise
// (0 and -1 mean "random").
func portOrFree(port int) (int, error) {
	if port > 0 {
		return port, nil
	}
	return freePort()
}

// checkPortFree fails when the loopback port is already bound. Used before
// starting servers that would exit the process on a bind error.
func checkPortFree(name string, port int) error {
	l, err := net.Listen("tcp", hostPort(port))
	if err != nil {
		return fmt.Errorf("%s: port %d is not available: %w", name, port, err)
	}
	return l.Close()
}

func hostPort(port int) string {
	return net.JoinHostPort(loopback, strconv.Itoa(port))
}
