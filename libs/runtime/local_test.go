package runtime_test

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/sluice-ml/sluice/libs/runtime"
	"github.com/sluice-ml/sluice/libs/runtime/runtimetest"
)

var probe string

func TestMain(m *testing.M) {
	if os.Getenv("SLUICE_ORPHAN_HELPER_LEDGER") != "" {
		os.Exit(m.Run()) // the helper process of TestLocalKillsOrphansOfDeadOwner needs no probe
	}
	dir, err := os.MkdirTemp("", "runtime-probe-")
	if err != nil {
		fmt.Fprintln(os.Stderr, err)
		os.Exit(1)
	}
	probe, err = runtimetest.BuildProbe(dir)
	if err != nil {
		fmt.Fprintln(os.Stderr, err)
		os.Exit(1)
	}
	code := m.Run()
	os.RemoveAll(dir)
	os.Exit(code)
}

func newLocal() *runtime.Local {
	return runtime.NewLocal(runtime.LocalConfig{GracePeriod: 500 * time.Millisecond})
}

func TestLocalContract(t *testing.T) {
	runtimetest.Contract(t, runtimetest.Target{Runtime: newLocal(), Probe: probe, Prefix: "ct-local", Timeout: 20 * time.Second})
}

func runProbe(t *testing.T, rt runtime.Runtime, s runtime.Spec) (runtime.ExitStatus, string) {
	t.Helper()
	var out runtimetest.Buffer
	s.Stdout = &out
	p, err := rt.Start(context.Background(), s)
	if err != nil {
		t.Fatalf("Start: %v", err)
	}
	ctx, cancel := context.WithTimeout(context.Background(), 20*time.Second)
	defer cancel()
	st, err := p.Wait(ctx)
	if err != nil {
		t.Fatalf("Wait: %v", err)
	}
	return st, out.String()
}

func envOf(t *testing.T, out string) map[string]string {
	t.Helper()
	var list []string
	if err := json.Unmarshal([]byte(out), &list); err != nil {
		t.Fatalf("probe env output %q: %v", out, err)
	}
	m := map[string]string{}
	for _, kv := range list {
		k, v, _ := strings.Cut(kv, "=")
		m[k] = v
	}
	return m
}

func TestLocalEnvironment(t *testing.T) {
	t.Parallel()
	host := []string{"HOME=/home/someone", "PATH=/host/bin", "SECRET=host-only", "SHARED=host"}
	rt := runtime.NewLocal(runtime.LocalConfig{Environ: func() []string { return host }})

	t.Run("not inherited by default, with a standard PATH", func(t *testing.T) {
		st, out := runProbe(t, rt, runtime.Spec{Name: "env-clean", Command: []string{probe, "env"}, Env: map[string]string{"SHARED": "spec"}})
		if st.Code != 0 {
			t.Fatalf("status %+v", st)
		}
		got := envOf(t, out)
		if got["SLUICE_PROCESS_GROUP"] == "" {
			t.Fatalf("env = %v: no process-group marker", got)
		}
		delete(got, "SLUICE_PROCESS_GROUP") // the crash-recovery marker (localgroups.go)
		want := map[string]string{"PATH": runtime.DefaultPath, "SHARED": "spec"}
		if len(got) != len(want) || got["PATH"] != want["PATH"] || got["SHARED"] != want["SHARED"] {
			t.Fatalf("env = %v, want %v", got, want)
		}
	})
	t.Run("inherited on request, Spec.Env wins", func(t *testing.T) {
		st, out := runProbe(t, rt, runtime.Spec{Name: "env-inherit", Command: []string{probe, "env"}, InheritEnv: true, Env: map[string]string{"SHARED": "spec"}})
		if st.Code != 0 {
			t.Fatalf("status %+v", st)
		}
		got := envOf(t, out)
		if got["HOME"] != "/home/someone" || got["SECRET"] != "host-only" || got["SHARED"] != "spec" || got["PATH"] != "/host/bin" {
			t.Fatalf("env = %v", got)
		}
	})
}

func TestLocalCommandLookupUsesProgramPath(t *testing.T) {
	t.Parallel()
	dir := t.TempDir()
	if err := os.Symlink(probe, filepath.Join(dir, "sluice-probe")); err != nil {
		t.Fatal(err)
	}
	rt := newLocal()
	st, out := runProbe(t, rt, runtime.Spec{Name: "lookup", Command: []string{"sluice-probe"}, Args: []string{"argv", "x"}, Env: map[string]string{"PATH": "/nonexistent:" + dir}})
	if st.Code != 0 || strings.TrimSpace(out) != `["x"]` {
		t.Fatalf("status %+v output %q", st, out)
	}
	_, err := rt.Start(context.Background(), runtime.Spec{Name: "lookup-missing", Command: []string{"sluice-probe"}})
	if err == nil || !strings.Contains(err.Error(), "executable file not found") {
		t.Fatalf("Start with probe outside the default PATH = %v, want not found", err)
	}
}

func TestLocalWorkDir(t *testing.T) {
	t.Parallel()
	dir, err := filepath.EvalSymlinks(t.TempDir())
	if err != nil {
		t.Fatal(err)
	}
	st, out := runProbe(t, newLocal(), runtime.Spec{Name: "workdir", Command: []string{probe, "pwd"}, WorkDir: dir})
	if st.Code != 0 || strings.TrimSpace(out) != dir {
		t.Fatalf("status %+v, pwd %q, want %q", st, out, dir)
	}
}

func TestLocalSpecChecks(t *testing.T) {
	t.Parallel()
	rt := newLocal()
	for field, s := range map[string]runtime.Spec{
		"spec.command":                 {Name: "no-command", Image: "python:3.11"},
		"spec.mounts[0].containerPath": {Name: "mount", Command: []string{probe}, Mounts: []runtime.Mount{{HostPath: "/tmp/a", ContainerPath: "/data"}}},
	} {
		if _, err := rt.Start(context.Background(), s); !errors.Is(err, runtime.ErrInvalidSpec) || !strings.Contains(err.Error(), field+":") {
			t.Errorf("%s: Start = %v, want ErrInvalidSpec naming it", field, err)
		}
	}
	// A mount onto its own path is fine: the program sees the host path.
	dir := t.TempDir()
	st, _ := runProbe(t, rt, runtime.Spec{Name: "same-mount", Command: []string{probe, "pwd"}, Mounts: []runtime.Mount{{HostPath: dir, ContainerPath: dir}}})
	if st.Code != 0 {
		t.Fatalf("status %+v", st)
	}
}

func TestLocalNameInUseWhileRunning(t *testing.T) {
	t.Parallel()
	rt := newLocal()
	var out runtimetest.Buffer
	p, err := rt.Start(context.Background(), runtime.Spec{Name: "dup", Command: []string{probe, "sleep"}, Stdout: &out})
	if err != nil {
		t.Fatal(err)
	}
	if _, err := rt.Start(context.Background(), runtime.Spec{Name: "dup", Command: []string{probe, "sleep"}}); !errors.Is(err, runtime.ErrNameInUse) {
		t.Fatalf("second Start = %v, want ErrNameInUse", err)
	}
	out.WaitFor(t, "ready", 20*time.Second)
	if err := p.Kill(); err != nil {
		t.Fatal(err)
	}
	if _, err := p.Wait(context.Background()); err != nil {
		t.Fatal(err)
	}
	st, _ := runProbe(t, rt, runtime.Spec{Name: "dup", Command: []string{probe, "exit", "0", "", ""}})
	if st.Code != 0 {
		t.Fatalf("restart under the same name: %+v", st)
	}
}

// processGone polls until pid no longer exists (or is a zombie nobody reaps, which counts as dead).
func processGone(pid int, timeout time.Duration) bool {
	deadline := time.Now().Add(timeout)
	for time.Now().Before(deadline) {
		b, err := os.ReadFile(fmt.Sprintf("/proc/%d/stat", pid))
		if err != nil {
			return true
		}
		// Field 3 is the state; after the "(comm)" which may contain spaces.
		if i := strings.LastIndexByte(string(b), ')'); i > 0 && strings.HasPrefix(string(b[i+1:]), " Z") {
			return true
		}
		time.Sleep(10 * time.Millisecond)
	}
	return false
}

func TestLocalProcessGroupEndsTogether(t *testing.T) {
	t.Parallel()
	for _, how := range []string{"cancel", "kill", "leader-exits"} {
		t.Run(how, func(t *testing.T) {
			t.Parallel()
			pidfile := filepath.Join(t.TempDir(), "child.pid")
			var out runtimetest.Buffer
			ctx, cancel := context.WithCancel(context.Background())
			defer cancel()
			p, err := newLocal().Start(ctx, runtime.Spec{Name: "group-" + how, Command: []string{probe, "spawn", pidfile}, Stdout: &out})
			if err != nil {
				t.Fatal(err)
			}
			out.WaitFor(t, "ready", 20*time.Second)
			b, err := os.ReadFile(pidfile)
			if err != nil {
				t.Fatal(err)
			}
			child, err := strconv.Atoi(string(b))
			if err != nil {
				t.Fatal(err)
			}
			leader, _ := strconv.Atoi(p.ID())
			if pgid, err := syscall.Getpgid(child); err != nil || pgid != leader {
				t.Fatalf("child pgid = %d, %v; want the leader's pid %d", pgid, err, leader)
			}
			want := 143
			switch how {
			case "cancel":
				cancel()
			case "kill":
				want = 137
				if err := p.Kill(); err != nil {
					t.Fatal(err)
				}
			case "leader-exits":
				// Only the leader is signalled; the container-like contract kills the rest of its group.
				if err := syscall.Kill(leader, syscall.SIGTERM); err != nil {
					t.Fatal(err)
				}
			}
			st, err := p.Wait(context.Background())
			if err != nil {
				t.Fatal(err)
			}
			if st.Code != want {
				t.Fatalf("status %+v, want code %d", st, want)
			}
			if !processGone(child, 10*time.Second) {
				t.Fatalf("child %d still running after the leader ended", child)
			}
		})
	}
}

func TestStatusFromCode(t *testing.T) {
	t.Parallel()
	for code, want := range map[int]runtime.ExitStatus{
		0:   {Code: 0, Reason: runtime.ReasonCompleted},
		1:   {Code: 1, Reason: runtime.ReasonError},
		128: {Code: 128, Reason: runtime.ReasonError},
		137: {Code: 137, Signal: "SIGKILL", Reason: runtime.ReasonKilled},
		143: {Code: 143, Signal: "SIGTERM", Reason: runtime.ReasonKilled},
		255: {Code: 255, Reason: runtime.ReasonError},
	} {
		if got := runtime.StatusFromCode(code, false); got != want {
			t.Errorf("StatusFromCode(%d) = %+v, want %+v", code, got, want)
		}
	}
	if got := runtime.StatusFromCode(143, true); got.Reason != runtime.ReasonCanceled {
		t.Errorf("canceled 143 reason = %q", got.Reason)
	}
}

// TestLocalKillsOrphansOfDeadOwner is the kind of security/orphan-grandchild-step and
// training/ps-orphan-after-crash: a program's grandchild (still in the program's process group) outlives
// a host process killed with SIGKILL; the next Local on the machine ends it before running anything.
func TestLocalKillsOrphansOfDeadOwner(t *testing.T) {
	t.Parallel()
	if _, err := exec.LookPath("sh"); err != nil {
		t.Skip("no sh")
	}
	ledger := t.TempDir()
	pidFile := filepath.Join(t.TempDir(), "grandchild.pid")
	// A helper process plays the service: it starts "sh -c 'sleep 300 & echo $! > pidFile; wait'" with
	// a Local on the ledger, then is killed with SIGKILL.
	helper := exec.Command(os.Args[0], "-test.run=^TestLocalOrphanHelper$")
	helper.Env = append(os.Environ(), "SLUICE_ORPHAN_HELPER_LEDGER="+ledger, "SLUICE_ORPHAN_HELPER_PIDFILE="+pidFile)
	if err := helper.Start(); err != nil {
		t.Fatal(err)
	}
	var gpid int
	deadline := time.Now().Add(60 * time.Second)
	for gpid == 0 {
		if time.Now().After(deadline) {
			_ = helper.Process.Kill()
			t.Fatal("grandchild never started")
		}
		if b, err := os.ReadFile(pidFile); err == nil && strings.HasSuffix(string(b), "\n") {
			gpid, _ = strconv.Atoi(strings.TrimSpace(string(b)))
		}
		time.Sleep(20 * time.Millisecond)
	}
	_ = helper.Process.Signal(syscall.SIGKILL)
	_ = helper.Wait()
	// The leader got its parent-death signal; the grandchild lives on, re-parented.
	if err := syscall.Kill(gpid, 0); err != nil {
		t.Fatalf("grandchild %d already gone before recovery: %v", gpid, err)
	}
	runtime.NewLocal(runtime.LocalConfig{LedgerDir: ledger})
	deadline = time.Now().Add(30 * time.Second)
	for alive(gpid) {
		if time.Now().After(deadline) {
			_ = syscall.Kill(gpid, syscall.SIGKILL)
			t.Fatalf("grandchild %d still runs after a new Local recovered the ledger", gpid)
		}
		time.Sleep(20 * time.Millisecond)
	}
}

// alive reports whether pid runs (a zombie counts as gone).
func alive(pid int) bool {
	b, err := os.ReadFile("/proc/" + strconv.Itoa(pid) + "/stat")
	if err != nil {
		return false
	}
	s := string(b)
	i := strings.LastIndexByte(s, ')')
	return i > 0 && len(s) > i+2 && s[i+2] != 'Z'
}

func TestLocalOrphanHelper(t *testing.T) {
	ledger, pidFile := os.Getenv("SLUICE_ORPHAN_HELPER_LEDGER"), os.Getenv("SLUICE_ORPHAN_HELPER_PIDFILE")
	if ledger == "" {
		t.Skip("helper process of TestLocalKillsOrphansOfDeadOwner")
	}
	rt := runtime.NewLocal(runtime.LocalConfig{LedgerDir: ledger})
	p, err := rt.Start(context.Background(), runtime.Spec{Name: "orphan-probe", Command: []string{"sh", "-c", `sleep 300 & echo $! > "$0.tmp" && mv "$0.tmp" "$0"; wait`}, Args: []string{pidFile}})
	if err != nil {
		t.Fatal(err)
	}
	_, _ = p.Wait(context.Background())
}

// TestKillMarkedEndsOrphanedGroups: a grandchild left behind when its
// program's leader dies (as with a crashed service) carries the marker and
// is ended with its group; unmarked processes are left alone.
func TestKillMarkedEndsOrphanedGroups(t *testing.T) {
	t.Parallel()
	marker := fmt.Sprintf("orphan-%d-%d", os.Getpid(), time.Now().UnixNano())
	dir := t.TempDir()
	pidFile := filepath.Join(dir, "grandchild.pid")
	// The leader starts a grandchild in its group and exits without the group being killed
	// (as when the service that would kill it died): start it outside Local.
	cmd := exec.Command("sh", "-c", "sleep 300 & echo $! > "+pidFile+"; wait")
	cmd.Env = append(os.Environ(), "SLUICE_TEST_MARK="+marker)
	cmd.SysProcAttr = &syscall.SysProcAttr{Setpgid: true}
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	other := exec.Command("sleep", "300")
	if err := other.Start(); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = other.Process.Kill(); _ = other.Wait() })
	var grandchild int
	deadline := time.Now().Add(20 * time.Second)
	for grandchild == 0 && time.Now().Before(deadline) {
		if b, err := os.ReadFile(pidFile); err == nil {
			grandchild, _ = strconv.Atoi(strings.TrimSpace(string(b)))
		}
		time.Sleep(10 * time.Millisecond)
	}
	if grandchild == 0 {
		t.Fatal("grandchild did not start")
	}
	n, err := runtime.KillMarked("SLUICE_TEST_MARK", marker)
	if err != nil || n != 1 {
		t.Fatalf("KillMarked = %d, %v; want 1 group", n, err)
	}
	_ = cmd.Wait()
	for deadline := time.Now().Add(20 * time.Second); ; time.Sleep(10 * time.Millisecond) {
		if b, err := os.ReadFile(fmt.Sprintf("/proc/%d/stat", grandchild)); err != nil || strings.Contains(string(b), ") Z ") {
			break
		}
		if time.Now().After(deadline) {
			t.Fatalf("grandchild %d still running", grandchild)
		}
	}
	if err := other.Process.Signal(syscall.Signal(0)); err != nil {
		t.Fatalf("an unmarked process was signalled: %v", err)
	}
}
