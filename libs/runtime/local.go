package runtime

import (
	"context"
	"errors"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"sort"
	"strconv"
	"strings"
	"sync"
	"syscall"
	"time"

	"golang.org/x/sys/unix"
)

// DefaultPath is the PATH a Local program gets when neither Spec.Env nor the inherited environment sets
// one; it is the PATH Docker gives containers.
const DefaultPath = "/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin"

// DefaultGracePeriod is how long a program has between SIGTERM and SIGKILL when Start's ctx ends.
const DefaultGracePeriod = 10 * time.Second

// LocalConfig configures [Local].
type LocalConfig struct {
	// GracePeriod is the time between SIGTERM and SIGKILL when Start's ctx ends (default DefaultGracePeriod).
	// It also bounds how long Wait waits for output pipes held open by descendants that left the process group.
	GracePeriod time.Duration
	// Environ returns the host environment used by Spec.InheritEnv (default os.Environ).
	Environ func() []string
	// LedgerDir records the process groups this Local runs, so a later Local (after the host process was
	// killed, even with SIGKILL) ends every process they left (default: DefaultLedgerDir).
	LedgerDir string
	// Isolate runs every program whose Spec has no RunAs as the Unix user of its Spec.Namespace
	// ([NamespaceUser], created when missing), with its read-write mounts private to that user: each
	// mount's tree is handed to the user and the mount dir made mode 0700 ([PrivateDir]), and HOME is
	// the work dir unless Spec.Env sets it. Programs of different namespaces then cannot read each
	// other's files, nor signal or inspect each other's processes (/proc/<pid>/environ). Requires root
	// ([CanIsolate]); Start fails without it.
	Isolate bool
}

// Local runs programs as host processes, like kfp.local's subprocess runner: Spec.Image is recorded
// only, and Command must name a host executable (looked up in the program's own PATH when it has no '/').
//
// Each program leads its own process group, so Signal and Kill reach everything it started. When the
// program itself exits, the rest of its group is killed, as a container's processes die with its init.
// The program is sent SIGKILL if the host process dies (Linux parent-death signal; it covers the direct
// child only). Mounts are accepted only when HostPath equals ContainerPath; Labels are ignored.
type Local struct {
	cfg     LocalConfig
	ledger  *groupLedger
	mu      sync.Mutex
	running map[string]struct{}
}

// NewLocal returns a Local runtime.
func NewLocal(cfg LocalConfig) *Local {
	if cfg.GracePeriod <= 0 {
		cfg.GracePeriod = DefaultGracePeriod
	}
	if cfg.Environ == nil {
		cfg.Environ = os.Environ
	}
	l := &Local{cfg: cfg, running: map[string]struct{}{}, ledger: openLedger(cfg.LedgerDir)}
	l.ledger.killOrphans()
	return l
}

// Name returns "local".
func (l *Local) Name() string { return NameLocal }

// Start starts s.Command+s.Args on the host. It fails with ErrInvalidSpec for an invalid Spec, with
// ErrNameInUse while another program of this Local has the same Name, and with the exec error when the
// executable cannot be found or started (nothing is left running then).
func (l *Local) Start(ctx context.Context, s Spec) (Process, error) {
	if err := l.validate(s); err != nil {
		return nil, err
	}
	if l.cfg.Isolate && s.RunAs == nil {
		var err error
		if s, err = l.isolate(s); err != nil {
			return nil, fmt.Errorf("runtime: start %s: %w", s.Name, err)
		}
	}
	env := l.environment(s)
	exe, err := lookPath(s.Command[0], env, s.WorkDir)
	if err != nil {
		return nil, fmt.Errorf("runtime: start %s: %w", s.Name, err)
	}
	cmd := &exec.Cmd{
		Path:        exe,
		Args:        s.Argv(),
		Env:         env,
		Dir:         s.WorkDir,
		Stdout:      s.Stdout,
		Stderr:      s.Stderr,
		SysProcAttr: &syscall.SysProcAttr{Setpgid: true, Pdeathsig: syscall.SIGKILL},
		WaitDelay:   l.cfg.GracePeriod,
	}
	if s.RunAs != nil {
		cmd.SysProcAttr.Credential = &syscall.Credential{Uid: s.RunAs.UID, Gid: s.RunAs.GID, NoSetGroups: false, Groups: []uint32{}}
	}
	marker := groupMarker()
	cmd.Env = append(cmd.Env, groupEnv+"="+marker)

	l.mu.Lock()
	if _, ok := l.running[s.Name]; ok {
		l.mu.Unlock()
		return nil, fmt.Errorf("%w: %s", ErrNameInUse, s.Name)
	}
	l.running[s.Name] = struct{}{}
	l.mu.Unlock()
	release := func() {
		l.mu.Lock()
		delete(l.running, s.Name)
		l.mu.Unlock()
	}

	if err := cmd.Start(); err != nil {
		release()
		return nil, fmt.Errorf("runtime: start %s: %w", s.Name, err)
	}
	p := &localProcess{cmd: cmd, pid: cmd.Process.Pid, done: make(chan struct{}), exited: make(chan struct{})}
	forget := l.ledger.record(p.pid, marker)
	go p.reap(func() { forget(); release() })
	go p.watch(ctx, l.cfg.GracePeriod)
	return p, nil
}

func (l *Local) validate(s Spec) error {
	errs := []error{s.Validate()}
	if len(s.Command) == 0 {
		errs = append(errs, fmt.Errorf("%w: spec.command: required by the local runtime", ErrInvalidSpec))
	}
	if s.CPULimit != 0 || s.MemoryLimit != 0 {
		errs = append(errs, fmt.Errorf("%w: spec.cpuLimit/memoryLimit: the local runtime cannot enforce resource limits", ErrInvalidSpec))
	}
	for i, m := range s.Mounts {
		if m.Volume != "" {
			errs = append(errs, fmt.Errorf("%w: spec.mounts[%d].volume: the local runtime has no named volumes", ErrInvalidSpec, i))
			continue
		}
		if filepath.Clean(m.HostPath) != filepath.Clean(m.ContainerPath) {
			errs = append(errs, fmt.Errorf("%w: spec.mounts[%d].containerPath: the local runtime cannot map %q to %q; use the host path",
				ErrInvalidSpec, i, m.HostPath, m.ContainerPath))
		}
	}
	return errors.Join(errs...)
}

// isolate gives s the user of its namespace and its read-write mounts to that user (LocalConfig.Isolate).
func (l *Local) isolate(s Spec) (Spec, error) {
	if !CanIsolate() {
		return s, errors.New("isolating namespaces needs root: the local runtime cannot run programs as other users")
	}
	ns := s.Namespace
	if ns == "" {
		ns = DefaultNamespace
	}
	cred, err := EnsureUser(NamespaceUser(ns))
	if err != nil {
		return s, err
	}
	for _, m := range s.Mounts {
		if m.ReadOnly {
			continue
		}
		if err := giveTree(m.HostPath, cred); err != nil {
			return s, err
		}
		if err := PrivateDir(m.HostPath, cred); err != nil {
			return s, err
		}
	}
	if _, ok := s.Env["HOME"]; !ok && s.WorkDir != "" {
		env := make(map[string]string, len(s.Env)+1)
		for k, v := range s.Env {
			env[k] = v
		}
		env["HOME"] = s.WorkDir
		s.Env = env
	}
	s.RunAs = &cred
	return s, nil
}

// environment is the inherited environment (if asked) overridden by s.Env, plus PATH, sorted by name.
func (l *Local) environment(s Spec) []string {
	vars := map[string]string{}
	if s.InheritEnv {
		for _, kv := range l.cfg.Environ() {
			if k, v, ok := strings.Cut(kv, "="); ok && k != "" {
				vars[k] = v
			}
		}
	}
	for k, v := range s.Env {
		vars[k] = v
	}
	if _, ok := vars["PATH"]; !ok {
		vars["PATH"] = DefaultPath
	}
	out := make([]string, 0, len(vars))
	for k, v := range vars {
		out = append(out, k+"="+v)
	}
	sort.Strings(out)
	return out
}

// lookPath resolves name as the program's own environment would: names with a '/' are used as given
// (relative to dir), others are searched in the PATH of env, absolute entries only.
func lookPath(name string, env []string, dir string) (string, error) {
	if strings.Contains(name, "/") {
		return name, nil
	}
	var pathVar string
	for _, kv := range env {
		if v, ok := strings.CutPrefix(kv, "PATH="); ok {
			pathVar = v
		}
	}
	for _, d := range filepath.SplitList(pathVar) {
		if !filepath.IsAbs(d) {
			continue
		}
		candidate := filepath.Join(d, name)
		if fi, err := os.Stat(candidate); err == nil && fi.Mode().IsRegular() && fi.Mode()&0o111 != 0 {
			return candidate, nil
		}
	}
	return "", &exec.Error{Name: name, Err: fmt.Errorf("%w in PATH %q", exec.ErrNotFound, pathVar)}
}

type localProcess struct {
	cmd    *exec.Cmd
	pid    int
	done   chan struct{}
	exited chan struct{} // closed once the leader has exited (and its group was killed)

	mu       sync.Mutex
	zombie   bool // leader exited: its pid must not be signalled any more
	canceled bool

	status ExitStatus
	err    error
}

func (p *localProcess) ID() string { return strconv.Itoa(p.pid) }

func (p *localProcess) Done() <-chan struct{} { return p.done }

func (p *localProcess) Wait(ctx context.Context) (ExitStatus, error) {
	select {
	case <-p.done:
		return p.status, p.err
	case <-ctx.Done():
		return ExitStatus{}, ctx.Err()
	}
}

func (p *localProcess) Signal(sig syscall.Signal) error {
	p.mu.Lock()
	defer p.mu.Unlock()
	return p.signalLocked(sig)
}

func (p *localProcess) signalLocked(sig syscall.Signal) error {
	if p.zombie {
		return nil
	}
	if err := syscall.Kill(-p.pid, sig); err != nil && !errors.Is(err, syscall.ESRCH) {
		return fmt.Errorf("runtime: signal %s to process group %d: %w", SignalName(sig), p.pid, err)
	}
	return nil
}

func (p *localProcess) Kill() error { return p.Signal(syscall.SIGKILL) }

// reap waits for the leader to exit without reaping it (so its pid, which is the group id, cannot be
// reused), kills what is left of the group, then reaps it and records the status.
func (p *localProcess) reap(release func()) {
	var info unix.Siginfo
	for {
		err := unix.Waitid(unix.P_PID, p.pid, &info, unix.WEXITED|unix.WNOWAIT, nil)
		if !errors.Is(err, syscall.EINTR) {
			break
		}
	}
	p.mu.Lock()
	_ = p.signalLocked(syscall.SIGKILL)
	p.zombie = true
	canceled := p.canceled
	p.mu.Unlock()
	close(p.exited)

	err := p.cmd.Wait()
	release()
	var st ExitStatus
	if ps := p.cmd.ProcessState; ps != nil {
		ws, _ := ps.Sys().(syscall.WaitStatus)
		if ws.Signaled() {
			st = ExitStatus{Code: 128 + int(ws.Signal()), Signal: SignalName(ws.Signal()), Reason: ReasonKilled}
		} else {
			st = ExitStatus{Code: ws.ExitStatus(), Reason: ReasonError}
			if st.Code == 0 {
				st.Reason = ReasonCompleted
			}
		}
		if canceled && st.Code != 0 {
			st.Reason = ReasonCanceled
		}
		var ee *exec.ExitError
		if errors.As(err, &ee) || errors.Is(err, exec.ErrWaitDelay) {
			// The exit is reported in st; ErrWaitDelay only means a descendant outside the group kept
			// an output pipe open past the grace period, and the pipes were closed.
			err = nil
		}
	}
	p.status, p.err = st, err
	close(p.done)
}

// watch terminates the group when ctx ends: SIGTERM, then SIGKILL after grace.
func (p *localProcess) watch(ctx context.Context, grace time.Duration) {
	select {
	case <-p.exited:
		return
	case <-ctx.Done():
	}
	p.mu.Lock()
	p.canceled = true
	_ = p.signalLocked(syscall.SIGTERM)
	p.mu.Unlock()
	t := time.NewTimer(grace)
	defer t.Stop()
	select {
	case <-p.exited:
	case <-t.C:
		_ = p.Kill()
	}
}
