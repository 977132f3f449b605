// Package runtime decides where a pipeline step, a training replica or a notebook server runs, and gives
// every place the same handle: start a program from a [Spec], wait for its [ExitStatus], signal or kill it.
//
// Three implementations exist:
//   - [Local] (this package, the default): the program runs on the host as a child process in its own
//     process group, like kfp.local's subprocess runner; Spec.Image is recorded only.
//   - runtime/docker: one Docker Engine container per Spec, through the Engine API.
//   - runtime/kube: one Kubernetes Pod per Spec (restartPolicy Never), through client-go.
//
// The argv contract is the Kubernetes container one (core/v1 Container command/args): the program's argv
// is Command followed by Args, each element passed as exactly one argument, never through a shell. In a
// container runtime an empty Command keeps the image's entrypoint and Args replace its CMD.
//
// Exit codes follow shells and container runtimes: a program ended by signal N reports 128+N (SIGKILL
// is 137, SIGTERM 143).
package runtime

import (
	"context"
	"errors"
	"fmt"
	"io"
	"path"
	"regexp"
	"sort"
	"strings"
	"syscall"

	"golang.org/x/sys/unix"
)

// Names of the implementations, as returned by Runtime.Name and accepted by SLUICE_RUNTIME.
const (
	NameLocal      = "local"
	NameDocker     = "docker"
	NameKubernetes = "kubernetes"
)

// LabelName is the label every container runtime puts on what it creates, with Spec.Name as value, so a
// container or pod can be found again by its deterministic name.
const LabelName = "sluice.io/runtime-name"

// Spec describes one program to run. The zero value is not valid: Name and (for Local) Command are required.
type Spec struct {
	// Name is unique among running programs and deterministic (e.g. "run-<id>-<task>-a1"). It becomes
	// the container or pod name, so it must be a DNS-1123 subdomain: lowercase letters, digits, '-' and
	// '.', starting and ending with a letter or digit, at most 253 characters.
	Name string
	// Image is the OCI image reference for container runtimes; Local records it and runs Command on the host.
	Image string
	// Command is the start of argv (the container entrypoint). Required by Local.
	Command []string
	// Args follow Command in argv (the container CMD when Command is empty).
	Args []string
	// Env holds the program's environment variables. Implementations pass them sorted by name so the
	// result is deterministic. Names must be non-empty and contain no '=' or NUL.
	Env map[string]string
	// InheritEnv, for Local only, starts the environment from the host process's, with Env overriding.
	// Without it Local passes only Env, plus PATH (a standard one unless Env sets it).
	InheritEnv bool
	// WorkDir is the program's working directory: an absolute path (on the host for Local, inside the
	// container otherwise). Empty means the host process's directory (Local) or the image's (containers).
	WorkDir string
	// Stdout and Stderr receive the program's output when set. Kubernetes merges both streams into Stdout.
	// A writer is called from one goroutine at a time per stream, and never after Wait returns.
	Stdout, Stderr io.Writer
	// Mounts bind host directories into a container. Local rewrites no paths: it accepts only mounts whose
	// HostPath equals ContainerPath (the program then sees the host path) and rejects the rest.
	Mounts []Mount
	// Labels are attached to the container or pod (Kubernetes label rules apply there). Local ignores them.
	Labels map[string]string
	// Network, for Docker, attaches the container to that user-defined network instead of the runtime's
	// NetworkMode, reachable there by Aliases (DNS names other containers on the network resolve) and
	// Hostname. Local and Kubernetes ignore the three.
	Network  string
	Aliases  []string
	Hostname string
	// CPULimit caps the program's CPU time in cores (Docker: NanoCPUs) and MemoryLimit its memory in
	// bytes (Docker: Memory); 0 means no limit. Local rejects them: it cannot enforce them.
	CPULimit    float64
	MemoryLimit int64
	// RunAs, for Local, runs the program as this Unix user and group (the host process must be root);
	// nil keeps the host process's, or, when Local isolates (LocalConfig.Isolate), the user of Namespace.
	// See [EnsureUser] for per-namespace users.
	RunAs *Credential
	// Namespace is the Sluice namespace the program belongs to (DefaultNamespace when empty). A Local
	// that isolates runs it as that namespace's Unix user ([NamespaceUser]); other runtimes ignore it.
	Namespace string
}

// Credential is a Unix user and group id.
type Credential struct {
	UID, GID uint32
}

// Mount binds a host directory (or file) into a container.
type Mount struct {
	// HostPath is an absolute path on the host (Docker) or node (Kubernetes hostPath volume).
	HostPath string
	// ContainerPath is the absolute path where the program sees it.
	ContainerPath string
	// ReadOnly mounts it read-only.
	ReadOnly bool
	// Volume, for Docker, mounts the named volume (created on first use) instead of HostPath, which is
	// then left empty. Local rejects it.
	Volume string
}

// Runtime starts programs. Implementations are safe for concurrent use.
type Runtime interface {
	// Name is "local", "docker" or "kubernetes".
	Name() string
	// Start validates s and starts the program, returning once it has been started (for Kubernetes: once
	// the pod exists). An invalid Spec yields an error wrapping [ErrInvalidSpec] and starts nothing.
	//
	// ctx bounds the program's life: when it is done the program is terminated (SIGTERM, then SIGKILL
	// after the runtime's grace period) and Wait reports ReasonCanceled. Pass context.WithoutCancel(ctx)
	// for a program that must outlive the caller (a notebook server, a training replica).
	Start(ctx context.Context, s Spec) (Process, error)
}

// ImageResolver is implemented by runtimes that can pin an image reference to content before running
// it: ImageID returns the identity of what a program started now with Spec.Image = ref would run (Docker:
// the local image's ID, the sha256 of its config). Running Spec.Image = that ID runs exactly it. Callers
// key caches on it (a moved tag is a different image). Local has no images; Kubernetes resolves tags on
// the node, after the pod is created, so neither implements it.
type ImageResolver interface {
	ImageID(ctx context.Context, ref string) (string, error)
}

// Process is one started program.
type Process interface {
	// ID identifies the program in its runtime: the pid (Local), the container ID (Docker), or
	// "namespace/name" of the pod (Kubernetes).
	ID() string
	// Wait blocks until the program has ended and its output has been written to the Spec's writers, then
	// returns its exit status; every call returns the same result. A non-zero exit code is not an error:
	// the error is for the runtime failing to observe the program, or ctx ending first (ctx only bounds
	// this wait; it does not stop the program).
	Wait(ctx context.Context) (ExitStatus, error)
	// Signal delivers sig to the program (for Local, to its whole process group). Signalling a program
	// that has ended is a no-op. Kubernetes accepts only SIGTERM (graceful delete) and SIGKILL.
	Signal(sig syscall.Signal) error
	// Kill ends the program and everything it started at once (SIGKILL to the process group, container
	// or pod); Wait then reports code 137 unless the program had already ended.
	Kill() error
	// Done is closed when the exit status is known (when Wait would return without blocking).
	Done() <-chan struct{}
}

// ExitStatus is how a program ended.
type ExitStatus struct {
	// Code is the exit code, 128+N when ended by signal N, and -1 when the program never ran (e.g. its
	// image cannot be pulled) or vanished without a recorded status.
	Code int
	// Signal names the signal that ended the program ("SIGKILL"), if any. Container runtimes only see
	// the code, so there it is the shell's reading of a code in 129..159.
	Signal string
	// Reason is one of the Reason constants, or a Kubernetes container/pod reason such as "Evicted".
	Reason string
	// Message is a human-readable detail from the runtime, if any.
	Message string
}

// Reasons reported in ExitStatus.Reason.
const (
	ReasonCompleted = "Completed" // exit code 0
	ReasonError     = "Error"     // non-zero exit code the program chose
	ReasonKilled    = "Killed"    // ended by a signal (Kill, Signal, or from outside)
	ReasonCanceled  = "Canceled"  // terminated because Start's ctx was done
	ReasonOOMKilled = "OOMKilled" // the container exceeded its memory limit
	ReasonDeleted   = "Deleted"   // the container or pod was removed by someone else before it ended
)

// Success reports whether the program exited with code 0.
func (s ExitStatus) Success() bool { return s.Code == 0 }

// Err returns nil for a successful exit and an *ExitError otherwise, for callers that treat failure as error.
func (s ExitStatus) Err() error {
	if s.Success() {
		return nil
	}
	return &ExitError{Status: s}
}

// ExitError is a non-zero ExitStatus as an error.
type ExitError struct{ Status ExitStatus }

func (e *ExitError) Error() string {
	msg := fmt.Sprintf("runtime: exit code %d", e.Status.Code)
	if e.Status.Signal != "" {
		msg += " (" + e.Status.Signal + ")"
	}
	if e.Status.Reason != "" {
		msg += ": " + e.Status.Reason
	}
	if e.Status.Message != "" {
		msg += ": " + e.Status.Message
	}
	return msg
}

// Errors returned by runtimes; match with errors.Is.
var (
	// ErrInvalidSpec wraps every Spec validation failure; the message names the field path.
	ErrInvalidSpec = errors.New("runtime: invalid spec")
	// ErrNameInUse means a program with the same Spec.Name is still running in this runtime.
	ErrNameInUse = errors.New("runtime: name in use")
	// ErrUnsupportedSignal means the runtime cannot deliver that signal.
	ErrUnsupportedSignal = errors.New("runtime: unsupported signal")
)

var dns1123Subdomain = regexp.MustCompile(`^[a-z0-9]([-a-z0-9]*[a-z0-9])?(\.[a-z0-9]([-a-z0-9]*[a-z0-9])?)*$`)

// Validate checks what every runtime needs: a DNS-1123 Name, no NUL bytes in argv or env, valid env
// names, absolute WorkDir and mount paths. Errors wrap ErrInvalidSpec and name the field, e.g.
// "spec.args[2]: contains a NUL byte". Runtimes add their own checks (Local requires Command).
func (s Spec) Validate() error {
	var errs []error
	bad := func(field, format string, a ...any) {
		errs = append(errs, fmt.Errorf("%w: spec.%s: %s", ErrInvalidSpec, field, fmt.Sprintf(format, a...)))
	}
	switch {
	case s.Name == "":
		bad("name", "required")
	case len(s.Name) > 253:
		bad("name", "must be at most 253 characters, got %d", len(s.Name))
	case !dns1123Subdomain.MatchString(s.Name):
		bad("name", "%q must be lowercase letters, digits, '-' or '.', starting and ending with a letter or digit", s.Name)
	}
	for i, c := range s.Command {
		if strings.IndexByte(c, 0) >= 0 {
			bad(fmt.Sprintf("command[%d]", i), "contains a NUL byte")
		}
	}
	if len(s.Command) > 0 && s.Command[0] == "" {
		bad("command[0]", "must not be empty")
	}
	for i, a := range s.Args {
		if strings.IndexByte(a, 0) >= 0 {
			bad(fmt.Sprintf("args[%d]", i), "contains a NUL byte")
		}
	}
	for _, k := range sortedKeys(s.Env) {
		switch {
		case k == "":
			bad("env", "variable name must not be empty")
		case strings.ContainsAny(k, "=\x00"):
			bad(fmt.Sprintf("env[%q]", k), "name must not contain '=' or NUL")
		case strings.IndexByte(s.Env[k], 0) >= 0:
			bad(fmt.Sprintf("env[%q]", k), "value contains a NUL byte")
		}
	}
	if s.WorkDir != "" && !path.IsAbs(s.WorkDir) {
		bad("workDir", "%q must be an absolute path", s.WorkDir)
	}
	for i, m := range s.Mounts {
		if m.Volume == "" && !path.IsAbs(m.HostPath) {
			bad(fmt.Sprintf("mounts[%d].hostPath", i), "%q must be an absolute path", m.HostPath)
		}
		if !path.IsAbs(m.ContainerPath) {
			bad(fmt.Sprintf("mounts[%d].containerPath", i), "%q must be an absolute path", m.ContainerPath)
		}
	}
	return errors.Join(errs...)
}

// Argv is Command followed by Args, in a new slice.
func (s Spec) Argv() []string {
	argv := make([]string, 0, len(s.Command)+len(s.Args))
	argv = append(argv, s.Command...)
	return append(argv, s.Args...)
}

// EnvList is Env as "NAME=value" strings sorted by name.
func (s Spec) EnvList() []string {
	out := make([]string, 0, len(s.Env))
	for _, k := range sortedKeys(s.Env) {
		out = append(out, k+"="+s.Env[k])
	}
	return out
}

func sortedKeys(m map[string]string) []string {
	keys := make([]string, 0, len(m))
	for k := range m {
		keys = append(keys, k)
	}
	sort.Strings(keys)
	return keys
}

// SignalName is the conventional name of sig ("SIGKILL"), or "signal N" when it has none.
func SignalName(sig syscall.Signal) string {
	if n := unix.SignalName(sig); n != "" {
		return n
	}
	return fmt.Sprintf("signal %d", int(sig))
}

// StatusFromCode builds the ExitStatus a container runtime implies by an exit code alone: 0 is
// Completed, 129..159 reads as 128+signal (Killed, with the signal's name), anything else is Error.
// canceled marks a program terminated because Start's ctx ended.
func StatusFromCode(code int, canceled bool) ExitStatus {
	st := ExitStatus{Code: code}
	switch {
	case code == 0:
		st.Reason = ReasonCompleted
	case code > 128 && code < 160:
		st.Signal = SignalName(syscall.Signal(code - 128))
		st.Reason = ReasonKilled
	default:
		st.Reason = ReasonError
	}
	if canceled && code != 0 {
		st.Reason = ReasonCanceled
	}
	return st
}
