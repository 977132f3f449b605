package netport

import (
	"net"
	"strconv"
	"testing"

	"github.com/stretchr/testify/require"
)

const host = "127.0.0.1"

func bindable(t *testing.T, port int) {
	t.Helper()
	l, err := net.Listen("tcp", net.JoinHostPort(host, strconv.Itoa(port)))
	require.NoError(t, err, "port %d is not bindable", port)
	require.NoError(t, l.Close())
}

// A picked port is bindable and outside the range the kernel assigns to outgoing connections and ":0"
// listeners, so none of those can take it before its server binds it.
func TestFreeIsBelowTheEphemeralRange(t *testing.T) {
	low := EphemeralLow()
	require.Greater(t, low, BelowEphemeralFrom+minSpan, "this machine's ephemeral range leaves no room below it")
	seen := map[int]bool{}
	for range 20 {
		port, err := Free(host)
		require.NoError(t, err)
		require.GreaterOrEqual(t, port, BelowEphemeralFrom)
		require.Less(t, port, low)
		bindable(t, port)
		seen[port] = true
	}
	require.Greater(t, len(seen), 1, "every pick was the same port")
}

// A port someone listens on is never picked: with every port of the span but one taken, Free returns
// that one or, failing to find it, a kernel-chosen port.
func TestFreeNeverPicksAPortInUse(t *testing.T) {
	from := 40000 - minSpan // below and in the default ephemeral range alike: free takes the span as given
	to := from + minSpan
	held := map[int]bool{}
	open := -1
	for p := from; p < to; p++ {
		l, err := net.Listen("tcp", net.JoinHostPort(host, strconv.Itoa(p)))
		if err != nil {
			held[p] = true // in use by someone else: just as good
			continue
		}
		if open < 0 {
			open = p // left free
			require.NoError(t, l.Close())
			continue
		}
		held[p] = true
		t.Cleanup(func() { _ = l.Close() })
	}
	for range 10 {
		port, err := free(host, from, to)
		require.NoError(t, err)
		require.False(t, held[port], "picked port %d, which is in use", port)
		if port != open {
			require.False(t, port >= from && port < to, "picked %d in the span", port)
		}
	}
}

// With no room below the ephemeral range (a tuned ip_local_port_range), Free still returns a free port:
// one the kernel picks.
func TestFreeFallsBackToAKernelPortWithoutRoomBelowTheRange(t *testing.T) {
	port, err := free(host, BelowEphemeralFrom, BelowEphemeralFrom+10)
	require.NoError(t, err)
	require.False(t, port >= BelowEphemeralFrom && port < BelowEphemeralFrom+10, "picked %d from a span too small to use", port)
	bindable(t, port)
}

func TestFreeNPicksDistinctPorts(t *testing.T) {
	ports, err := FreeN(host, 50)
	require.NoError(t, err)
	require.Len(t, ports, 50)
	seen := map[int]bool{}
	for _, p := range ports {
		require.False(t, seen[p], "port %d picked twice", p)
		seen[p] = true
		require.Less(t, p, EphemeralLow())
		bindable(t, p)
	}
	none, err := FreeN(host, 0)
	require.NoError(t, err)
	require.Empty(t, none)
}

func TestFreeFailsOnAnAddressItCannotBind(t *testing.T) {
	_, err := Free("192.0.2.1") // TEST-NET-1: not an address of this machine
	require.ErrorContains(t, err, "netport: pick a free port on 192.0.2.1")
	_, err = FreeN("192.0.2.1", 2)
	require.Error(t, err)
}

func TestParseRangeLow(t *testing.T) {
	for in, want := range map[string]int{"32768\t60999\n": 32768, "1024 65535": 1024, "49152  65535": 49152} {
		got, err := parseRangeLow(in)
		require.NoError(t, err, in)
		require.Equal(t, want, got, in)
	}
	for _, in := range []string{"", "32768", "x 60999", "0 60999", "70000 80000", "1 2 3"} {
		_, err := parseRangeLow(in)
		require.Error(t, err, "%q", in)
	}
}
