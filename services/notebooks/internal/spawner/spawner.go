// Package spawner runs notebook servers: Jupyter Notebook started through libs/runtime, bound to loopback on
// a free port with a random token and base_url /notebook/<namespace>/<name>/, readiness by GET
// <base_url>api/status. It keeps the endpoint and token of every server it runs in memory and in a small
// state file, so the proxy can reach the server and a restarted service can find (and end) an orphan.
//
// Layout under Dir: <namespace>/<name>/{work,home,runtime,data,config}/ plus server.json (mode 0600) and
// server.log (the server's output).
package spawner

import (
	"context"
	"crypto/rand"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"net"
	"net/http"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"sync"
	"syscall"
	"time"

	"github.com/sluice-ml/sluice/libs/netport"
	"github.com/sluice-ml/sluice/libs/runtime"
	"github.com/sluice-ml/sluice/services/notebooks/api/notebooksv1"
	"github.com/sluice-ml/sluice/services/notebooks/internal/culling"
)

// ErrNotRunning means the notebook has no server in this process.
var ErrNotRunning = errors.New("spawner: server not running")

// ErrClosing means the spawner is shutting down and starts nothing; retry on another worker.
var ErrClosing = errors.New("spawner: shutting down")

// Endpoint is where a running server listens.
type Endpoint struct {
	Namespace  string `json:"namespace"`
	Name       string `json:"name"`
	Generation int    `json:"generation"`
	PID        int    `json:"pid"`
	ProcessID  string `json:"processId"`
	// Host is the server's host name ("" means 127.0.0.1, a local server; on Kubernetes the Service's DNS name).
	Host      string    `json:"host,omitempty"`
	Port      int       `json:"port"`
	Token     string    `json:"token"`
	StartedAt time.Time `json:"startedAt"`
	// Zygote is the id of the warm-pool process that became this server ("" for a cold start).
	Zygote string `json:"zygote,omitempty"`
}

// Addr is the server's host:port, e.g. "127.0.0.1:41234" or, on Kubernetes,
// "nb.team-a.svc.cluster.local:80".
func (e Endpoint) Addr() string {
	host := e.Host
	if host == "" {
		host = "127.0.0.1"
	}
	return net.JoinHostPort(host, strconv.Itoa(e.Port))
}

// BaseURL is the server's address including its base_url, e.g. "http://127.0.0.1:41234/notebook/ns/nb/".
func (e Endpoint) BaseURL() string {
	return "http://" + e.Addr() + notebooksv1.PathPrefix(e.Namespace, e.Name)
}

// Config configures a Spawner.
type Config struct {
	// Dir holds every notebook's directory (DataDir/notebooks/notebooks).
	Dir string
	// Jupyter is the jupyter executable (default /usr/bin/jupyter).
	Jupyter string
	// PATH is the PATH the server and its kernels get.
	PATH string
	// ReadyTimeout bounds start-to-ready (default 60s).
	ReadyTimeout time.Duration
	// StopGrace is how long a SIGTERM'd server gets before SIGKILL (default 5s).
	StopGrace time.Duration
	// WarmPool is how many warm servers (Python processes with Jupyter already imported, see pool.go) wait
	// to be claimed by a start; 0 disables the pool. Only the local runtime has one.
	WarmPool int
}

type server struct {
	ep   Endpoint
	proc runtime.Process
	log  *os.File
}

// Spawner starts, watches, probes and stops notebook servers. It is safe for concurrent use.
type Spawner struct {
	cfg  Config
	rt   runtime.Runtime
	log  *slog.Logger
	base context.Context
	http *http.Client

	mu      sync.Mutex
	servers map[string]*server
	closing chan struct{}
	once    sync.Once
	pool    *pool
}

// New returns a Spawner running servers through rt. Servers outlive request contexts; Close ends them.
func New(cfg Config, rt runtime.Runtime, log *slog.Logger) *Spawner {
	if cfg.Jupyter == "" {
		cfg.Jupyter = "/usr/bin/jupyter"
	}
	if cfg.ReadyTimeout == 0 {
		cfg.ReadyTimeout = 60 * time.Second
	}
	if cfg.StopGrace == 0 {
		cfg.StopGrace = 5 * time.Second
	}
	s := &Spawner{
		cfg: cfg, rt: rt, log: log, base: context.Background(),
		http:    &http.Client{Timeout: 5 * time.Second, Transport: &http.Transport{DisableKeepAlives: false, MaxIdleConnsPerHost: 4}},
		servers: map[string]*server{},
		closing: make(chan struct{}),
	}
	if cfg.WarmPool > 0 {
		py := interpreter(cfg.Jupyter, cfg.PATH)
		switch {
		case rt.Name() != runtime.NameLocal:
			log.Warn("notebook warm pool off: only the local runtime has one", "runtime", rt.Name())
		case py == "":
			log.Warn("notebook warm pool off: the jupyter launcher is not a Python script", "jupyter", cfg.Jupyter)
		default:
			p, err := newPool(cfg.WarmPool, rt, py, filepath.Join(cfg.Dir, ".warm-pool"), cfg.PATH, log)
			if err != nil {
				log.Warn("notebook warm pool off", "err", err)
			}
			s.pool = p
		}
	}
	return s
}

// WarmReady is the number of warm servers waiting to be claimed (0 without a pool).
func (s *Spawner) WarmReady() int {
	if s.pool == nil {
		return 0
	}
	return s.pool.ready()
}

func key(ns, name string) string { return ns + "/" + name }

// Dir returns a notebook's directory.
func (s *Spawner) Dir(ns, name string) string { return filepath.Join(s.cfg.Dir, ns, name) }

func (s *Spawner) stateFile(ns, name string) string {
	return filepath.Join(s.Dir(ns, name), "server.json")
}

// Lookup returns the endpoint of a running server (in this process).
func (s *Spawner) Lookup(ns, name string) (Endpoint, bool) {
	s.mu.Lock()
	defer s.mu.Unlock()
	sv, ok := s.servers[key(ns, name)]
	if !ok {
		return Endpoint{}, false
	}
	select {
	case <-sv.proc.Done():
		return Endpoint{}, false
	default:
	}
	return sv.ep, true
}

// StartResult is the outcome of Start.
type StartResult struct {
	Endpoint Endpoint
	// Ready is false when the server ended before answering; Exit then says how.
	Ready bool
	Exit  runtime.ExitStatus
	// LogTail is the end of the server's output when it did not become ready.
	LogTail string
}

// Start starts generation gen of the notebook's server and waits until GET <base_url>api/status answers
// 200 (heartbeat is called while waiting). It is idempotent per generation: a live server of the same
// generation is returned as is; a server of another generation, or an orphan left by an earlier process
// of the service, is ended first.
func (s *Spawner) Start(ctx context.Context, nb notebooksv1.Notebook, gen int, heartbeat func()) (StartResult, error) {
	ns, name := nb.Metadata.Namespace, nb.Metadata.Name
	select {
	case <-s.closing:
		return StartResult{}, ErrClosing
	default:
	}
	s.mu.Lock()
	old := s.servers[key(ns, name)]
	s.mu.Unlock()
	if old != nil {
		alive := true
		select {
		case <-old.proc.Done():
			alive = false
		default:
		}
		if alive && old.ep.Generation == gen {
			return s.waitReady(ctx, old, heartbeat)
		}
		s.stop(old)
	}
	s.reapOrphan(ns, name)
	if s.pool != nil {
		s.pool.starting.Add(1)
		defer s.pool.starting.Add(-1)
	}

	dir := s.Dir(ns, name)
	runAs, err := s.isolate(ns, dir)
	if err != nil {
		return StartResult{}, err
	}
	sub := map[string]string{}
	for _, d := range []string{"work", "home", "runtime", "data", "config"} {
		p := filepath.Join(dir, d)
		if err := os.MkdirAll(p, 0o700); err != nil {
			return StartResult{}, fmt.Errorf("spawner: %w", err)
		}
		if err := chownTo(p, runAs); err != nil {
			return StartResult{}, err
		}
		sub[d] = p
	}
	// Jupyter binds the port itself: one below the kernel's ephemeral range, which no outgoing
	// connection or ":0" listener can take before it does.
	port, err := netport.Free("127.0.0.1")
	if err != nil {
		return StartResult{}, fmt.Errorf("spawner: %w", err)
	}
	tok := make([]byte, 24)
	if _, err := rand.Read(tok); err != nil {
		return StartResult{}, err
	}
	ep := Endpoint{Namespace: ns, Name: name, Generation: gen, Port: port, Token: hex.EncodeToString(tok)}
	prefix := notebooksv1.PathPrefix(ns, name)
	c := nb.Spec.Template.Spec.Containers[0]
	env := map[string]string{}
	for _, e := range c.Env {
		env[e.Name] = e.Value
	}
	env["PATH"] = s.cfg.PATH
	env["LANG"] = "C.UTF-8"
	env["PYTHONUNBUFFERED"] = "1"
	env["HOME"] = sub["home"]
	env["JUPYTER_RUNTIME_DIR"] = sub["runtime"]
	env["JUPYTER_DATA_DIR"] = sub["data"]
	env["JUPYTER_CONFIG_DIR"] = sub["config"]
	env["IPYTHONDIR"] = filepath.Join(sub["home"], ".ipython")
	env["NB_PREFIX"] = strings.TrimSuffix(prefix, "/")
	// The Jupyter token goes in a config file only the server's user can read, never in argv (which every
	// local user can read in /proc/<pid>/cmdline).
	if err := writeTokenConfig(sub["config"], ep.Token, runAs); err != nil {
		return StartResult{}, err
	}
	args := []string{
		"notebook", "--no-browser", "--allow-root", "--ip=127.0.0.1",
		"--port=" + strconv.Itoa(port), "--port-retries=0",
		"--NotebookApp.base_url=" + prefix,
		"--notebook-dir=" + sub["work"],
		// The proxy forwards the browser's Host header; it is the only client of this loopback port.
		"--NotebookApp.allow_remote_access=True",
	}
	args = append(args, c.Args...)
	logf, err := os.OpenFile(filepath.Join(dir, "server.log"), os.O_CREATE|os.O_WRONLY|os.O_TRUNC, 0o600)
	if err != nil {
		return StartResult{}, fmt.Errorf("spawner: %w", err)
	}
	var proc runtime.Process
	if z := s.claimWarm(); z != nil {
		// The zygote runs what `jupyter notebook` execs: jupyter-notebook with the same arguments.
		spec := launchSpec{Argv: append([]string{filepath.Join(filepath.Dir(s.cfg.Jupyter), "jupyter-notebook")}, args[1:]...),
			Env: env, Cwd: sub["work"], Log: logf.Name()}
		if runAs != nil {
			spec.UID, spec.GID = &runAs.UID, &runAs.GID
		}
		if err := z.launch(spec); err != nil {
			s.log.Warn("warm notebook server not usable; starting one cold", "namespace", ns, "notebook", name, "err", err)
		} else {
			proc, ep.Zygote = z.proc, z.id
			logf.Close()
			logf = nil
		}
	}
	if proc == nil {
		proc, err = s.rt.Start(s.base, runtime.Spec{
			Name:    fmt.Sprintf("notebook-%s-%s-g%d", ns, name, gen),
			Image:   c.Image,
			Command: []string{s.cfg.Jupyter},
			Args:    args,
			Env:     env,
			WorkDir: sub["work"],
			Stdout:  logf,
			Stderr:  logf,
			Labels:  map[string]string{"sluice.io/notebook": name, "sluice.io/namespace": ns},
			RunAs:   runAs,
		})
		if err != nil {
			logf.Close()
			return StartResult{}, fmt.Errorf("spawner: start %s/%s: %w", ns, name, err)
		}
	}
	ep.ProcessID = proc.ID()
	ep.PID, _ = strconv.Atoi(proc.ID())
	ep.StartedAt = time.Now().UTC()
	sv := &server{ep: ep, proc: proc, log: logf}
	s.mu.Lock()
	s.servers[key(ns, name)] = sv
	s.mu.Unlock()
	if err := writeJSON(s.stateFile(ns, name), ep); err != nil {
		s.log.Warn("notebook state file not written", "namespace", ns, "notebook", name, "err", err)
	}
	if logf != nil {
		go func() {
			_, _ = proc.Wait(context.Background())
			logf.Close()
		}()
	}
	return s.waitReady(ctx, sv, heartbeat)
}

func (s *Spawner) waitReady(ctx context.Context, sv *server, heartbeat func()) (StartResult, error) {
	ctx, cancel := context.WithTimeout(ctx, s.cfg.ReadyTimeout)
	defer cancel()
	url := sv.ep.BaseURL() + "api/status"
	tick := time.NewTicker(25 * time.Millisecond)
	defer tick.Stop()
	last := time.Now()
	for {
		req, _ := http.NewRequestWithContext(ctx, http.MethodGet, url, nil)
		req.Header.Set("Authorization", "token "+sv.ep.Token)
		if resp, err := s.http.Do(req); err == nil {
			io.Copy(io.Discard, resp.Body)
			resp.Body.Close()
			if resp.StatusCode == http.StatusOK {
				return StartResult{Endpoint: sv.ep, Ready: true}, nil
			}
		}
		if heartbeat != nil && time.Since(last) > time.Second {
			heartbeat()
			last = time.Now()
		}
		select {
		case <-sv.proc.Done():
			st, _ := sv.proc.Wait(context.Background())
			return StartResult{Endpoint: sv.ep, Exit: st, LogTail: s.logTail(sv.ep)}, nil
		case <-ctx.Done():
			if errors.Is(ctx.Err(), context.DeadlineExceeded) {
				// Not ready in time: end it and report it like a crash.
				s.stop(sv)
				return StartResult{Endpoint: sv.ep, Exit: runtime.ExitStatus{Code: -1, Reason: "ReadyTimeout",
					Message: fmt.Sprintf("no answer from api/status within %s", s.cfg.ReadyTimeout)}, LogTail: s.logTail(sv.ep)}, nil
			}
			return StartResult{}, ctx.Err()
		case <-tick.C:
		}
	}
}

func (s *Spawner) logTail(ep Endpoint) string {
	b, err := os.ReadFile(filepath.Join(s.Dir(ep.Namespace, ep.Name), "server.log"))
	if err != nil {
		return ""
	}
	if len(b) > 2000 {
		b = b[len(b)-2000:]
	}
	return string(b)
}

// WatchResult says why Watch returned.
type WatchResult struct {
	// Gone: this process has no server of that generation (e.g. the service restarted).
	Gone bool
	Exit runtime.ExitStatus
	// LogTail is the end of the server's output after an exit.
	LogTail string
}

// Watch blocks until generation gen of the notebook's server ends (or ctx ends), calling heartbeat every
// interval. Once BeginClose is called it returns Gone: the server is about to end with this process.
func (s *Spawner) Watch(ctx context.Context, ns, name string, gen int, interval time.Duration, heartbeat func()) (WatchResult, error) {
	s.mu.Lock()
	sv := s.servers[key(ns, name)]
	s.mu.Unlock()
	if sv == nil || sv.ep.Generation != gen {
		return WatchResult{Gone: true}, nil
	}
	select {
	case <-s.closing:
		return WatchResult{Gone: true}, nil
	default:
	}
	t := time.NewTicker(interval)
	defer t.Stop()
	for {
		select {
		case <-sv.proc.Done():
			st, err := sv.proc.Wait(ctx)
			if err != nil {
				return WatchResult{}, err
			}
			return WatchResult{Exit: st, LogTail: s.logTail(sv.ep)}, nil
		case <-ctx.Done():
			return WatchResult{}, ctx.Err()
		case <-s.closing:
			return WatchResult{Gone: true}, nil
		case <-t.C:
			if heartbeat != nil {
				heartbeat()
			}
		}
	}
}

// Stop ends the notebook's server (SIGTERM, SIGKILL after the grace period) and any orphan of it; it is a
// no-op when none runs.
func (s *Spawner) Stop(ns, name string) {
	s.mu.Lock()
	sv := s.servers[key(ns, name)]
	s.mu.Unlock()
	if sv != nil {
		s.stop(sv)
	}
	s.reapOrphan(ns, name)
}

func (s *Spawner) stop(sv *server) {
	_ = sv.proc.Signal(syscall.SIGTERM)
	select {
	case <-sv.proc.Done():
	case <-time.After(s.cfg.StopGrace):
		_ = sv.proc.Kill()
		<-sv.proc.Done()
	}
	s.mu.Lock()
	if s.servers[key(sv.ep.Namespace, sv.ep.Name)] == sv {
		delete(s.servers, key(sv.ep.Namespace, sv.ep.Name))
		_ = os.Remove(s.stateFile(sv.ep.Namespace, sv.ep.Name))
	}
	s.mu.Unlock()
}

// Remove deletes a stopped notebook's runtime state (home, runtime, data, config, logs) and keeps work/, the
// user's notebooks, like Kubeflow keeps the workspace volume of a deleted notebook.
func (s *Spawner) Remove(ns, name string) error {
	s.Stop(ns, name)
	dir := s.Dir(ns, name)
	var errs []error
	for _, d := range []string{"home", "runtime", "data", "config", "server.log", "server.json"} {
		errs = append(errs, os.RemoveAll(filepath.Join(dir, d)))
	}
	return errors.Join(errs...)
}

// reapOrphan ends a server recorded in the state file that this process does not own (left by an earlier
// process of the service), after checking the pid still runs Jupyter with this notebook's base_url.
func (s *Spawner) reapOrphan(ns, name string) {
	s.mu.Lock()
	_, owned := s.servers[key(ns, name)]
	s.mu.Unlock()
	if owned {
		return
	}
	var ep Endpoint
	b, err := os.ReadFile(s.stateFile(ns, name))
	if err != nil || json.Unmarshal(b, &ep) != nil {
		return
	}
	_ = os.Remove(s.stateFile(ns, name))
	if ep.PID <= 0 {
		return
	}
	cmd, err := os.ReadFile(fmt.Sprintf("/proc/%d/cmdline", ep.PID))
	own := strings.Contains(string(cmd), "--NotebookApp.base_url="+notebooksv1.PathPrefix(ns, name)) ||
		ep.Zygote != "" && strings.Contains(string(cmd), "sluice-zygote="+ep.Zygote+"\x00")
	if err != nil || !own {
		return
	}
	s.log.Warn("ending orphaned notebook server", "namespace", ns, "notebook", name, "pid", ep.PID)
	// The local runtime puts each program in its own process group: end the group (server and kernels).
	_ = syscall.Kill(-ep.PID, syscall.SIGKILL)
	_ = syscall.Kill(ep.PID, syscall.SIGKILL)
}

// ReapOrphans ends every orphan under Dir (run once at service start, before the worker).
func (s *Spawner) ReapOrphans() {
	nss, _ := os.ReadDir(s.cfg.Dir)
	for _, ns := range nss {
		nbs, _ := os.ReadDir(filepath.Join(s.cfg.Dir, ns.Name()))
		for _, nb := range nbs {
			s.reapOrphan(ns.Name(), nb.Name())
		}
	}
}

// ErrProbe wraps a failed kernels probe.
var ErrProbe = errors.New("spawner: probe failed")

// Kernels reads GET <base_url>api/kernels of the running server (the culler's probe).
func (s *Spawner) Kernels(ctx context.Context, ns, name string) ([]culling.Kernel, error) {
	ep, ok := s.Lookup(ns, name)
	if !ok {
		return nil, ErrNotRunning
	}
	req, err := http.NewRequestWithContext(ctx, http.MethodGet, ep.BaseURL()+"api/kernels", nil)
	if err != nil {
		return nil, err
	}
	req.Header.Set("Authorization", "token "+ep.Token)
	resp, err := s.http.Do(req)
	if err != nil {
		return nil, fmt.Errorf("%w: %v", ErrProbe, err)
	}
	defer resp.Body.Close()
	if resp.StatusCode != http.StatusOK {
		return nil, fmt.Errorf("%w: api/kernels answered %d", ErrProbe, resp.StatusCode)
	}
	var ks []culling.Kernel
	if err := json.NewDecoder(resp.Body).Decode(&ks); err != nil {
		return nil, fmt.Errorf("%w: %v", ErrProbe, err)
	}
	return ks, nil
}

// BeginClose makes Start refuse (ErrClosing) and every Watch return Gone, so the lifecycle workflows learn
// at once that their servers end with this process and start them again elsewhere (not counted as crashes).
func (s *Spawner) BeginClose() { s.once.Do(func() { close(s.closing) }) }

// Close ends every server this process runs (after BeginClose).
func (s *Spawner) Close() {
	s.BeginClose()
	s.mu.Lock()
	all := make([]*server, 0, len(s.servers))
	for _, sv := range s.servers {
		all = append(all, sv)
	}
	s.mu.Unlock()
	var wg sync.WaitGroup
	for _, sv := range all {
		wg.Go(func() { s.stop(sv) })
	}
	if s.pool != nil {
		wg.Go(s.pool.close)
	}
	wg.Wait()
}

// claimWarm takes a warm server from the pool (nil without a pool or when none is ready).
func (s *Spawner) claimWarm() *zygote {
	if s.pool == nil {
		return nil
	}
	return s.pool.claim()
}

func writeJSON(path string, v any) error {
	b, err := json.MarshalIndent(v, "", "  ")
	if err != nil {
		return err
	}
	tmp := path + ".tmp"
	if err := os.WriteFile(tmp, b, 0o600); err != nil {
		return err
	}
	return os.Rename(tmp, path)
}
