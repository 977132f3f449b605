// Package runtimetest holds what runtime implementations are tested with: a probe program with known
// behaviour (built from ./probe), a thread-safe output buffer, and Contract, the behaviour every
// runtime.Runtime must show.
package runtimetest

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"

	"github.com/sluice-ml/sluice/libs/runtime"
)

// ProbePackage is the import path of the probe program.
const ProbePackage = "github.com/sluice-ml/sluice/libs/runtime/runtimetest/probe"

// BuildProbe builds the probe program as a static binary (CGO_ENABLED=0, so it also runs in a scratch
// image) at dir/probe and returns its path. It runs the go command, so it needs the Go toolchain and a
// working directory inside the libs module (as tests have).
func BuildProbe(dir string) (string, error) {
	out := filepath.Join(dir, "probe")
	cmd := exec.Command("go", "build", "-o", out, ProbePackage)
	cmd.Env = append(os.Environ(), "CGO_ENABLED=0")
	if b, err := cmd.CombinedOutput(); err != nil {
		return "", fmt.Errorf("build probe: %w\n%s", err, b)
	}
	return out, nil
}

// Buffer is an io.Writer safe for concurrent use that can wait for content to appear.
type Buffer struct {
	mu      sync.Mutex
	buf     bytes.Buffer
	changed chan struct{}
}

// Write appends p.
func (b *Buffer) Write(p []byte) (int, error) {
	b.mu.Lock()
	defer b.mu.Unlock()
	n, err := b.buf.Write(p)
	if b.changed != nil {
		close(b.changed)
		b.changed = nil
	}
	return n, err
}

// String returns what was written so far.
func (b *Buffer) String() string {
	b.mu.Lock()
	defer b.mu.Unlock()
	return b.buf.String()
}

// WaitFor blocks until the content contains s, or fails t after timeout.
func (b *Buffer) WaitFor(t testing.TB, s string, timeout time.Duration) {
	t.Helper()
	deadline := time.NewTimer(timeout)
	defer deadline.Stop()
	for {
		b.mu.Lock()
		if strings.Contains(b.buf.String(), s) {
			b.mu.Unlock()
			return
		}
		if b.changed == nil {
			b.changed = make(chan struct{})
		}
		ch := b.changed
		b.mu.Unlock()
		select {
		case <-ch:
		case <-deadline.C:
			t.Fatalf("timed out after %s waiting for %q in output %q", timeout, s, b.String())
		}
	}
}

// Target is a runtime under test and how to run the probe in it.
type Target struct {
	Runtime runtime.Runtime
	// Image holds the probe for container runtimes (ignored by Local).
	Image string
	// Probe is the probe's path as the program sees it (host path for Local, e.g. "/probe" in an image).
	Probe string
	// Prefix makes Spec names unique across parallel runs of the contract, e.g. "ct-local".
	Prefix string
	// Timeout bounds each wait (default 30s).
	Timeout time.Duration
}

// Contract runs the behaviour every runtime.Runtime must show, with real programs: argv reaches the
// program byte for byte, exit codes and output streams are reported, env is passed, Kill reports 137,
// SIGTERM 143, and ending Start's context terminates the program (also one that ignores SIGTERM, by
// SIGKILL after the grace period, which the runtime must have set short for the test).
func Contract(t *testing.T, tg Target) {
	if tg.Timeout == 0 {
		tg.Timeout = 30 * time.Second
	}
	spec := func(name string, args ...string) runtime.Spec {
		return runtime.Spec{Name: tg.Prefix + "-" + name, Image: tg.Image, Command: []string{tg.Probe}, Args: args}
	}
	wait := func(t *testing.T, p runtime.Process) runtime.ExitStatus {
		t.Helper()
		ctx, cancel := context.WithTimeout(context.Background(), tg.Timeout)
		defer cancel()
		st, err := p.Wait(ctx)
		if err != nil {
			t.Fatalf("Wait: %v", err)
		}
		select {
		case <-p.Done():
		default:
			t.Fatal("Done not closed after Wait returned")
		}
		return st
	}
	start := func(t *testing.T, ctx context.Context, s runtime.Spec) runtime.Process {
		t.Helper()
		p, err := tg.Runtime.Start(ctx, s)
		if err != nil {
			t.Fatalf("Start(%s): %v", s.Name, err)
		}
		t.Cleanup(func() { _ = p.Kill(); _, _ = p.Wait(context.Background()) })
		return p
	}

	t.Run("argv reaches the program byte for byte", func(t *testing.T) {
		t.Parallel()
		args := []string{
			"{{$.inputs.parameters['x']}}", `"double" 'single'`, "line1\nline2", "ünïcødé ✓ 日本",
			"-leading-dash", "--flag=value", "=starts-with-equals", "", "  spaces  ", `back\slash $HOME ; rm -rf / && |`,
			"*", "tab\tseparated",
		}
		var out Buffer
		s := spec("argv", append([]string{"argv"}, args...)...)
		s.Stdout = &out
		st := wait(t, start(t, context.Background(), s))
		if st.Code != 0 || st.Reason != runtime.ReasonCompleted {
			t.Fatalf("status = %+v, want code 0 Completed", st)
		}
		var got []string
		if err := json.Unmarshal([]byte(out.String()), &got); err != nil {
			t.Fatalf("probe output %q: %v", out.String(), err)
		}
		if strings.Join(got, "\x00") != strings.Join(args, "\x00") || len(got) != len(args) {
			t.Fatalf("argv mismatch\n got: %q\nwant: %q", got, args)
		}
	})

	t.Run("exit code and both output streams are reported", func(t *testing.T) {
		t.Parallel()
		for _, code := range []int{0, 1, 3, 42} {
			var stdout, stderr Buffer
			s := spec(fmt.Sprintf("exit-%d", code), "exit", fmt.Sprint(code), "to-stdout\n", "to-stderr\n")
			s.Stdout, s.Stderr = &stdout, &stderr
			st := wait(t, start(t, context.Background(), s))
			want := runtime.ReasonError
			if code == 0 {
				want = runtime.ReasonCompleted
			}
			if st.Code != code || st.Reason != want || st.Signal != "" {
				t.Errorf("exit %d: status = %+v, want code %d reason %s", code, st, code, want)
			}
			if stdout.String() != "to-stdout\n" || stderr.String() != "to-stderr\n" {
				t.Errorf("exit %d: stdout %q stderr %q", code, stdout.String(), stderr.String())
			}
			if (st.Err() == nil) != (code == 0) {
				t.Errorf("exit %d: Err() = %v", code, st.Err())
			}
		}
	})

	t.Run("env is passed sorted and exactly", func(t *testing.T) {
		t.Parallel()
		var out Buffer
		s := spec("env", "env")
		s.Env = map[string]string{"TF_CONFIG": `{"cluster":{"worker":["w-0:2222"]},"task":{"type":"worker","index":0}}`, "B_VAR": "two\nlines", "A_VAR": "=x="}
		s.Stdout = &out
		st := wait(t, start(t, context.Background(), s))
		if st.Code != 0 {
			t.Fatalf("status = %+v", st)
		}
		var got []string
		if err := json.Unmarshal([]byte(out.String()), &got); err != nil {
			t.Fatalf("probe output %q: %v", out.String(), err)
		}
		for _, kv := range s.EnvList() {
			if !contains(got, kv) {
				t.Errorf("env lacks %q; got %q", kv, got)
			}
		}
	})

	t.Run("Kill reports 137 SIGKILL", func(t *testing.T) {
		t.Parallel()
		var out Buffer
		s := spec("kill", "ignore-term")
		s.Stdout = &out
		p := start(t, context.Background(), s)
		out.WaitFor(t, "ready", tg.Timeout)
		if err := p.Kill(); err != nil {
			t.Fatalf("Kill: %v", err)
		}
		st := wait(t, p)
		if st.Code != 137 || st.Signal != "SIGKILL" || st.Reason != runtime.ReasonKilled {
			t.Fatalf("status = %+v, want 137 SIGKILL Killed", st)
		}
		if err := p.Kill(); err != nil {
			t.Errorf("Kill after exit: %v", err)
		}
	})

	t.Run("SIGTERM reports 143", func(t *testing.T) {
		t.Parallel()
		var out Buffer
		s := spec("term", "sleep")
		s.Stdout = &out
		p := start(t, context.Background(), s)
		out.WaitFor(t, "ready", tg.Timeout)
		if err := p.Signal(syscall.SIGTERM); err != nil {
			t.Fatalf("Signal: %v", err)
		}
		st := wait(t, p)
		if st.Code != 143 || st.Signal != "SIGTERM" {
			t.Fatalf("status = %+v, want 143 SIGTERM", st)
		}
	})

	t.Run("ending Start's context terminates the program", func(t *testing.T) {
		t.Parallel()
		for _, mode := range []string{"sleep", "ignore-term"} {
			var out Buffer
			s := spec("cancel-"+mode, mode)
			s.Stdout = &out
			ctx, cancel := context.WithCancel(context.Background())
			p := start(t, ctx, s)
			out.WaitFor(t, "ready", tg.Timeout)
			cancel()
			st := wait(t, p)
			want := 143
			if mode == "ignore-term" {
				want = 137
			}
			if st.Code != want || st.Reason != runtime.ReasonCanceled {
				t.Errorf("%s: status = %+v, want %d Canceled", mode, st, want)
			}
		}
	})

	t.Run("Wait honours its own context without stopping the program", func(t *testing.T) {
		t.Parallel()
		var out Buffer
		s := spec("waitctx", "sleep")
		s.Stdout = &out
		p := start(t, context.Background(), s)
		out.WaitFor(t, "ready", tg.Timeout)
		ctx, cancel := context.WithCancel(context.Background())
		cancel()
		if _, err := p.Wait(ctx); !errors.Is(err, context.Canceled) {
			t.Fatalf("Wait(canceled ctx) = %v, want context.Canceled", err)
		}
		select {
		case <-p.Done():
			t.Fatal("program ended when only Wait's context was canceled")
		default:
		}
	})

	t.Run("invalid specs are rejected before anything runs", func(t *testing.T) {
		t.Parallel()
		for name, s := range map[string]runtime.Spec{
			"spec.name":       {Name: "Bad_Name", Image: tg.Image, Command: []string{tg.Probe}},
			"spec.args[1]":    {Name: tg.Prefix + "-nul", Image: tg.Image, Command: []string{tg.Probe}, Args: []string{"argv", "a\x00b"}},
			"spec.workDir":    {Name: tg.Prefix + "-wd", Image: tg.Image, Command: []string{tg.Probe}, WorkDir: "relative/dir"},
			`spec.env["A=B"]`: {Name: tg.Prefix + "-env", Image: tg.Image, Command: []string{tg.Probe}, Env: map[string]string{"A=B": "x"}},
		} {
			_, err := tg.Runtime.Start(context.Background(), s)
			if !errors.Is(err, runtime.ErrInvalidSpec) || !strings.Contains(err.Error(), name+":") {
				t.Errorf("%s: Start error = %v, want ErrInvalidSpec naming %s", name, err, name)
			}
		}
	})
}

func contains(list []string, s string) bool {
	for _, v := range list {
		if v == s {
			return true
		}
	}
	return false
}
