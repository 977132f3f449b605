package devstack

import (
	"net"
	"testing"
)

// TestFreePortIsBelowTheEphemeralRange: a picked port is bindable and outside the range the kernel
// assigns to outgoing connections and ":0" listeners, so none of those can take it before its server binds.
func TestFreePortIsBelowTheEphemeralRange(t *testing.T) {
	low := ephemeralLow()
	for range 20 {
		port, err := freePort()
		if err != nil {
			t.Fatal(err)
		}
		if port < belowEphemeralFrom || port >= low {
			t.Fatalf("freePort() = %d, want a port in [%d, %d)", port, belowEphemeralFrom, low)
		}
		l, err := net.Listen("tcp", hostPort(port))
		if err != nil {
			t.Fatalf("port %d is not bindable: %v", port, err)
		}
		_ = l.Close()
	}
}
