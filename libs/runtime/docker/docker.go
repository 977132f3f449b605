// Package docker runs each runtime.Spec as one Docker Engine container, through the Engine API client
// (github.com/docker/docker/client, API version negotiated with the daemon, 1.41 or later).
//
// The container is named Spec.Name and labelled runtime.LabelName=Spec.Name. Command becomes the
// entrypoint and Args the CMD, as in a Kubernetes container (an empty Command keeps the image's
// entrypoint). It runs with an init process (docker-init) so signals reach the program and its children
// are reaped; a program ended by signal N reports 128+N, and an executable that cannot be run reports
// 127 (not found) or 126 (not executable) from Wait, as a shell would. The image must already be present: this
// runtime never pulls.
package docker

import (
	"context"
	"fmt"
	"io"
	"math"
	"sync"
	"syscall"
	"time"

	cerrdefs "github.com/containerd/errdefs"
	"github.com/docker/docker/api/types/container"
	"github.com/docker/docker/api/types/mount"
	"github.com/docker/docker/api/types/network"
	"github.com/docker/docker/client"
	"github.com/docker/docker/pkg/stdcopy"

	"github.com/sluice-ml/sluice/libs/runtime"
)

// Config configures the Docker runtime.
type Config struct {
	// Host is the daemon address, e.g. "unix:///var/run/docker.sock" or "tcp://127.0.0.1:2375"
	// (empty: the platform default socket). Callers read DOCKER_HOST themselves if they honour it.
	Host string
	// GracePeriod is the time between SIGTERM and SIGKILL when Start's ctx ends (default
	// runtime.DefaultGracePeriod; Docker counts whole seconds, so it is rounded up).
	GracePeriod time.Duration
	// NetworkMode is the container's network, e.g. "host" or a user network's name (empty: "bridge").
	NetworkMode string
	// KeepExited leaves containers in place after they exit (for inspection); by default a container
	// is removed once its exit status and output have been collected.
	KeepExited bool
}

var _ runtime.ImageResolver = (*Runtime)(nil)

// ImageID returns the ID of the local image ref (sha256 of its config: what a container created now
// from ref runs). An image that is not present is an error wrapping runtime.ErrInvalidSpec, since this
// runtime never pulls.
func (r *Runtime) ImageID(ctx context.Context, ref string) (string, error) {
	img, err := r.cli.ImageInspect(ctx, ref)
	if cerrdefs.IsNotFound(err) {
		return "", fmt.Errorf("%w: spec.image: %s is not present on the Docker host (this runtime never pulls)", runtime.ErrInvalidSpec, ref)
	}
	if err != nil {
		return "", fmt.Errorf("docker: inspect image %s: %w", ref, err)
	}
	return img.ID, nil
}

// Runtime starts containers on one Docker daemon.
type Runtime struct {
	cli   *client.Client
	cfg   Config
	netMu sync.Mutex // serialises EnsureNetwork
}

var _ runtime.Runtime = (*Runtime)(nil)

// New connects lazily to the daemon at cfg.Host; use Ping to check it is reachable.
func New(cfg Config) (*Runtime, error) {
	if cfg.GracePeriod <= 0 {
		cfg.GracePeriod = runtime.DefaultGracePeriod
	}
	opts := []client.Opt{client.WithAPIVersionNegotiation()}
	if cfg.Host != "" {
		opts = append(opts, client.WithHost(cfg.Host))
	}
	cli, err := client.NewClientWithOpts(opts...)
	if err != nil {
		return nil, fmt.Errorf("docker: client for %q: %w", cfg.Host, err)
	}
	return &Runtime{cli: cli, cfg: cfg}, nil
}

// Available reports whether a Docker daemon answers on the default socket within ctx.
func Available(ctx context.Context) bool {
	r, err := New(Config{})
	if err != nil {
		return false
	}
	defer r.Close()
	return r.Ping(ctx) == nil
}

// Ping checks that the daemon answers.
func (r *Runtime) Ping(ctx context.Context) error {
	if _, err := r.cli.Ping(ctx); err != nil {
		return fmt.Errorf("docker: ping: %w", err)
	}
	return nil
}

// Client is the underlying Engine API client (for image management, which this package does not do).
func (r *Runtime) Client() *client.Client { return r.cli }

// Close releases the client's connections. Running containers are not affected.
func (r *Runtime) Close() error { return r.cli.Close() }

// Name returns "docker".
func (r *Runtime) Name() string { return runtime.NameDocker }

// Start creates and starts a container for s. If a container named s.Name that this runtime created
// already exists (a retried start), Start attaches to it instead (starting it if it was only created), so
// Start is idempotent per name. A container of that name without the runtime's label yields
// runtime.ErrNameInUse. When several handles follow one container, the first to see it exit removes it
// and the others may report ReasonDeleted. A container the daemon cannot start is removed and its error returned.
func (r *Runtime) Start(ctx context.Context, s runtime.Spec) (runtime.Process, error) {
	if err := s.Validate(); err != nil {
		return nil, err
	}
	if s.Image == "" {
		return nil, fmt.Errorf("%w: spec.image: required by the docker runtime", runtime.ErrInvalidSpec)
	}
	api := context.WithoutCancel(ctx)
	id, out, err := r.create(api, s)
	if err != nil {
		return nil, err
	}
	p := &process{r: r, id: id, spec: s, done: make(chan struct{})}
	go p.run(api, ctx, out)
	return p, nil
}

// output is a multiplexed stdout/stderr stream of a container (the Engine's stdcopy framing).
type output struct {
	r     io.Reader
	close func()
}

func (r *Runtime) wantsOutput(s runtime.Spec) bool { return s.Stdout != nil || s.Stderr != nil }

// create makes and starts the container (or adopts an existing one). For a new container the output is
// attached before the start, so none of it is missed; for an adopted one it is read from the logs.
func (r *Runtime) create(ctx context.Context, s runtime.Spec) (string, *output, error) {
	labels := map[string]string{}
	for k, v := range s.Labels {
		labels[k] = v
	}
	labels[runtime.LabelName] = s.Name
	cfg := &container.Config{
		Image:      s.Image,
		Cmd:        s.Args,
		Env:        s.EnvList(),
		WorkingDir: s.WorkDir,
		Labels:     labels,
	}
	if len(s.Command) > 0 {
		cfg.Entrypoint = s.Command
	}
	useInit := true
	host := &container.HostConfig{Init: &useInit, NetworkMode: container.NetworkMode(r.cfg.NetworkMode)}
	host.Resources.NanoCPUs = int64(s.CPULimit * 1e9)
	host.Resources.Memory = s.MemoryLimit
	var netCfg *network.NetworkingConfig
	if s.Network != "" {
		host.NetworkMode = container.NetworkMode(s.Network)
		netCfg = &network.NetworkingConfig{EndpointsConfig: map[string]*network.EndpointSettings{s.Network: {Aliases: s.Aliases}}}
	}
	cfg.Hostname = s.Hostname
	for _, m := range s.Mounts {
		if m.Volume != "" {
			host.Mounts = append(host.Mounts, mount.Mount{Type: mount.TypeVolume, Source: m.Volume, Target: m.ContainerPath, ReadOnly: m.ReadOnly})
			continue
		}
		host.Mounts = append(host.Mounts, mount.Mount{Type: mount.TypeBind, Source: m.HostPath, Target: m.ContainerPath, ReadOnly: m.ReadOnly})
	}
	created, err := r.cli.ContainerCreate(ctx, cfg, host, netCfg, nil, s.Name)
	if cerrdefs.IsConflict(err) {
		id, err := r.adopt(ctx, s.Name)
		return id, nil, err
	}
	if err != nil {
		return "", nil, fmt.Errorf("docker: create container %s: %w", s.Name, err)
	}
	var out *output
	if r.wantsOutput(s) {
		hj, err := r.cli.ContainerAttach(ctx, created.ID, container.AttachOptions{Stream: true, Stdout: true, Stderr: true})
		if err != nil {
			_ = r.cli.ContainerRemove(ctx, created.ID, container.RemoveOptions{Force: true})
			return "", nil, fmt.Errorf("docker: attach to container %s: %w", s.Name, err)
		}
		out = &output{r: hj.Reader, close: hj.Close}
	}
	if err := r.cli.ContainerStart(ctx, created.ID, container.StartOptions{}); err != nil {
		if out != nil {
			out.close()
		}
		_ = r.cli.ContainerRemove(ctx, created.ID, container.RemoveOptions{Force: true})
		return "", nil, fmt.Errorf("docker: start container %s: %w", s.Name, err)
	}
	return created.ID, out, nil
}

// adopt returns the ID of the existing container called name if this runtime made it, starting it if
// it was created but never started.
func (r *Runtime) adopt(ctx context.Context, name string) (string, error) {
	info, err := r.cli.ContainerInspect(ctx, name)
	if err != nil {
		return "", fmt.Errorf("docker: inspect existing container %s: %w", name, err)
	}
	if info.Config == nil || info.Config.Labels[runtime.LabelName] != name {
		return "", fmt.Errorf("%w: container %s exists and was not created by the sluice runtime", runtime.ErrNameInUse, name)
	}
	if info.State != nil && info.State.Status == container.StateCreated {
		if err := r.cli.ContainerStart(ctx, info.ID, container.StartOptions{}); err != nil {
			return "", fmt.Errorf("docker: start container %s: %w", name, err)
		}
	}
	return info.ID, nil
}

type process struct {
	r    *Runtime
	id   string
	spec runtime.Spec
	done chan struct{}

	mu       sync.Mutex
	canceled bool

	status runtime.ExitStatus
	err    error
}

func (p *process) ID() string { return p.id }

func (p *process) Done() <-chan struct{} { return p.done }

func (p *process) Wait(ctx context.Context) (runtime.ExitStatus, error) {
	select {
	case <-p.done:
		return p.status, p.err
	case <-ctx.Done():
		return runtime.ExitStatus{}, ctx.Err()
	}
}

func (p *process) Signal(sig syscall.Signal) error {
	select {
	case <-p.done:
		return nil
	default:
	}
	err := p.r.cli.ContainerKill(context.Background(), p.id, runtime.SignalName(sig))
	if err != nil && !cerrdefs.IsConflict(err) && !cerrdefs.IsNotFound(err) { // conflict: not running any more
		return fmt.Errorf("docker: signal %s to container %s: %w", runtime.SignalName(sig), p.spec.Name, err)
	}
	return nil
}

func (p *process) Kill() error { return p.Signal(syscall.SIGKILL) }

// run copies the output, watches Start's ctx, waits for the exit, and records the status.
func (p *process) run(api, life context.Context, out *output) {
	logsDone := make(chan struct{})
	go p.copyOutput(api, out, logsDone)
	exited := make(chan struct{})
	go p.terminateOnCancel(api, life, exited)

	st, err := p.waitExit(api)
	close(exited)
	if err == nil && st.Reason != runtime.ReasonDeleted {
		// The log stream ends when the container stops; bound the wait anyway.
		select {
		case <-logsDone:
		case <-time.After(p.r.cfg.GracePeriod):
		}
		if !p.r.cfg.KeepExited {
			if rerr := p.r.cli.ContainerRemove(api, p.id, container.RemoveOptions{Force: true}); rerr != nil && !cerrdefs.IsNotFound(rerr) && !cerrdefs.IsConflict(rerr) { // conflict: removal already in progress
				err = fmt.Errorf("docker: remove container %s: %w", p.spec.Name, rerr)
			}
		}
	}
	p.status, p.err = st, err
	close(p.done)
}

func (p *process) waitExit(ctx context.Context) (runtime.ExitStatus, error) {
	waitCh, errCh := p.r.cli.ContainerWait(ctx, p.id, container.WaitConditionNotRunning)
	var code int64
	select {
	case resp := <-waitCh:
		if resp.Error != nil && resp.Error.Message != "" {
			return runtime.ExitStatus{}, fmt.Errorf("docker: wait for container %s: %s", p.spec.Name, resp.Error.Message)
		}
		code = resp.StatusCode
	case err := <-errCh:
		if cerrdefs.IsNotFound(err) {
			return runtime.ExitStatus{Code: -1, Reason: runtime.ReasonDeleted, Message: "container removed before it exited"}, nil
		}
		return runtime.ExitStatus{}, fmt.Errorf("docker: wait for container %s: %w", p.spec.Name, err)
	}
	p.mu.Lock()
	canceled := p.canceled
	p.mu.Unlock()
	st := runtime.StatusFromCode(int(code), canceled)
	if info, err := p.r.cli.ContainerInspect(ctx, p.id); err == nil && info.State != nil {
		if info.State.OOMKilled {
			st.Reason = runtime.ReasonOOMKilled
		}
		st.Message = info.State.Error
	}
	return st, nil
}

func (p *process) copyOutput(ctx context.Context, out *output, done chan<- struct{}) {
	defer close(done)
	if !p.r.wantsOutput(p.spec) {
		return
	}
	if out == nil {
		rc, err := p.r.cli.ContainerLogs(ctx, p.id, container.LogsOptions{ShowStdout: true, ShowStderr: true, Follow: true})
		if err != nil {
			return
		}
		out = &output{r: rc, close: func() { rc.Close() }}
	}
	defer out.close()
	stdout, stderr := p.spec.Stdout, p.spec.Stderr
	if stdout == nil {
		stdout = io.Discard
	}
	if stderr == nil {
		stderr = io.Discard
	}
	_, _ = stdcopy.StdCopy(stdout, stderr, out.r)
}

func (p *process) terminateOnCancel(api, life context.Context, exited <-chan struct{}) {
	select {
	case <-exited:
		return
	case <-life.Done():
	}
	p.mu.Lock()
	p.canceled = true
	p.mu.Unlock()
	secs := int(math.Ceil(p.r.cfg.GracePeriod.Seconds()))
	err := p.r.cli.ContainerStop(api, p.id, container.StopOptions{Timeout: &secs})
	if err != nil && !cerrdefs.IsNotFound(err) {
		_ = p.Kill()
	}
}
