package devstack

import (
	"fmt"
	"net"
	"strconv"
)

// loopback is the only address the stack listens on.
const loopback = "127.0.0.1"

// freePort asks the kernel for a free loopback TCP port. The port is released
// before returning, so a concurrent process could take it; callers bind it
// right away.
func freePort() (int, error) {
	l, err := net.Listen("tcp", net.JoinHostPort(loopback, "0"))
	if err != nil {
		return 0, fmt.Errorf("pick free port: %w", err)
	}
	defer l.Close()
	return l.Addr().(*net.TCPAddr).Port, nil
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
