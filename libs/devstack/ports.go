package devstack

import (
	"fmt"
	"net"
	"strconv"

	"github.com/sluice-ml/sluice/libs/netport"
)

// loopback is the only address the stack listens on.
const loopback = "127.0.0.1"

// portOrFree returns port when it is positive and otherwise (0 and -1 mean "random") a free loopback port
// for a server that binds it itself: below the kernel's ephemeral range, see [netport.Free].
func portOrFree(port int) (int, error) {
	if port > 0 {
		return port, nil
	}
	return netport.Free(loopback)
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
