// Package devstacktest runs a real devstack (NATS JetStream, Temporal + UI,
// S3) for tests, on random loopback ports in a temporary directory.
//
// Use it from TestMain:
//
//	func TestMain(m *testing.M) { os.Exit(devstacktest.Run(m)) }
//
// then call Stack(t) in tests. Run also lets the test binary act as the S3
// child process (see devstack.RunChild).
package devstacktest

import (
	"context"
	"fmt"
	"log/slog"
	"os"
	"testing"
	"time"

	"github.com/sluice-ml/sluice/libs/devstack"
)

// StartTimeout bounds each stack start-up.
const StartTimeout = 60 * time.Second

// shared is the package-wide stack started by Run.
var shared *devstack.Stack

// Run handles the devstack child role (never returning in the child), starts
// one shared stack in a fresh temporary directory with random ports, runs the
// tests, then closes the stack and removes the directory. It returns the exit
// code for os.Exit: the tests' code, or 1 when the stack fails to start or to
// close cleanly.
func Run(m *testing.M) int {
	devstack.RunChild()
	dir, err := os.MkdirTemp("", "sluice-devstacktest-")
	if err != nil {
		fmt.Fprintf(os.Stderr, "devstacktest: %v\n", err)
		return 1
	}
	defer os.RemoveAll(dir)
	ctx, cancel := context.WithTimeout(context.Background(), StartTimeout)
	st, err := devstack.Start(ctx, Config(dir))
	cancel()
	if err != nil {
		fmt.Fprintf(os.Stderr, "devstacktest: %v\n", err)
		return 1
	}
	shared = st
	code := m.Run()
	shared = nil
	if err := st.Close(); err != nil {
		fmt.Fprintf(os.Stderr, "devstacktest: close: %v\n", err)
		if code == 0 {
			code = 1
		}
	}
	return code
}

// Stack returns the stack started by Run. It fails the test when TestMain
// does not call Run.
func Stack(tb testing.TB) *devstack.Stack {
	tb.Helper()
	if shared == nil {
		tb.Fatal("devstacktest: no shared stack; call os.Exit(devstacktest.Run(m)) from TestMain")
	}
	return shared
}

// Config returns a devstack config for tests: data in dataDir, every port
// random, logs (warn and above) to stderr.
func Config(dataDir string) devstack.Config {
	return devstack.Config{
		DataDir:        dataDir,
		NATSPort:       -1,
		TemporalPort:   -1,
		TemporalUIPort: -1,
		S3Port:         -1,
		Logger:         testLogger(),
	}
}

// Start starts a separate stack on dataDir (use t.TempDir(), or the same
// directory twice for restart tests) and closes it when the test ends, unless
// the test closed it already. The test binary's TestMain must use Run so the
// S3 child role works.
func Start(tb testing.TB, dataDir string) *devstack.Stack {
	tb.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), StartTimeout)
	defer cancel()
	st, err := devstack.Start(ctx, Config(dataDir))
	if err != nil {
		tb.Fatalf("devstacktest: start stack on %s: %v", dataDir, err)
	}
	tb.Cleanup(func() {
		if err := st.Close(); err != nil {
			tb.Errorf("devstacktest: close stack: %v", err)
		}
	})
	return st
}

// testLogger logs the stack's warnings to stderr; SLUICE_DEVSTACK_LOG=off silences it (benchmarks,
// whose result lines must not be interleaved with log lines).
func testLogger() *slog.Logger {
	if os.Getenv("SLUICE_DEVSTACK_LOG") == "off" {
		return slog.New(slog.DiscardHandler)
	}
	return slog.New(slog.NewTextHandler(os.Stderr, &slog.HandlerOptions{Level: slog.LevelWarn}))
}
