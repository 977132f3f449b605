// Package dataplane serves loaded models over HTTP with the TensorFlow Serving REST API
// (/v1/models/...) and the KServe v2 Open Inference Protocol REST API (/v2/...), byte-compatible
// with both protocols' JSON, and splits default-version traffic between the backends of a model
// (canary rollout) by weighted choice.
package dataplane

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"math/rand/v2"
	"net/http"
	"strconv"
	"sync"
	"sync/atomic"

	"google.golang.org/grpc/codes"

	"github.com/sluice-ml/sluice/services/serving/internal/modelrepo"
	"github.com/sluice-ml/sluice/services/serving/internal/modelruntime"
)

// Backend is one traffic target of a model: a repository Manager and optionally a pinned
// version (0 = the manager's latest available version), receiving Percent of the requests
// that name no version or label.
type Backend struct {
	Manager *modelrepo.Manager
	Version int64
	Percent int
}

// DefaultMaxBodyBytes is the default limit of one request body (REST) or message (gRPC).
const DefaultMaxBodyBytes = 64 << 20

// Options configures a Server.
type Options struct {
	// Name and Version are reported by GET /v2 (defaults "sluice-serving", "v1").
	Name, Version string
	// Seed seeds the traffic splitter's generator (deterministic splits in tests).
	Seed uint64
	// MaxBodyBytes limits one request body (default 64 MiB; larger bodies get 413).
	MaxBodyBytes int64
	// MaxInflightBytes caps the request bytes held by all requests in flight (default 256 MiB):
	// REST, a body's bytes plus what decoding and the response cost (limit.go); gRPC, a message's
	// wire size, charged before it is unmarshalled (NewGRPCServer), plus its decoded tensors. Past
	// the cap a request is refused at once with 429 (gRPC RESOURCE_EXHAUSTED). Peak heap stays
	// within about 3x this cap plus the loaded models (see the service README).
	MaxInflightBytes int64
	Log              *slog.Logger
	// StartUnready makes the server report not ready (v2 server/model readiness) until SetReady
	// (a restarted process reloading its deployments).
	StartUnready bool
}

// Server is the data plane. Models are registered with SetModel and can be replaced at any
// time; requests see an atomic snapshot of the registry.
type Server struct {
	opts   Options
	log    *slog.Logger
	models atomic.Pointer[map[string][]Backend]
	mu     sync.Mutex // guards rng and registry writes
	rng    *rand.Rand
	budget budget
	ready  atomic.Bool
}

// NewServer returns a Server with no models.
func NewServer(opts Options) *Server {
	if opts.Name == "" {
		opts.Name = "sluice-serving"
	}
	if opts.Version == "" {
		opts.Version = "v1"
	}
	if opts.MaxBodyBytes <= 0 {
		opts.MaxBodyBytes = DefaultMaxBodyBytes
	}
	if opts.MaxInflightBytes <= 0 {
		opts.MaxInflightBytes = 256 << 20
	}
	log := opts.Log
	if log == nil {
		log = slog.New(slog.DiscardHandler)
	}
	s := &Server{opts: opts, log: log, rng: rand.New(rand.NewPCG(opts.Seed, opts.Seed^0x5eed))}
	s.budget.max = opts.MaxInflightBytes
	s.ready.Store(!opts.StartUnready)
	empty := map[string][]Backend{}
	s.models.Store(&empty)
	return s
}

// SetModel registers or replaces model name. With several backends their Percent values must
// each be in [0,100] and sum to 100; a single backend takes all traffic.
func (s *Server) SetModel(name string, backends ...Backend) error {
	if name == "" {
		return errors.New("name: must not be empty")
	}
	if len(backends) == 0 {
		return errors.New("backends: at least one is required")
	}
	sum := 0
	for i, b := range backends {
		if b.Manager == nil {
			return fmt.Errorf("backends[%d].manager: must be set", i)
		}
		if len(backends) > 1 && (b.Percent < 0 || b.Percent > 100) {
			return fmt.Errorf("backends[%d].percent: must be within [0,100], got %d", i, b.Percent)
		}
		sum += b.Percent
	}
	if len(backends) > 1 && sum != 100 {
		return fmt.Errorf("backends: percents sum to %d, want 100", sum)
	}
	s.mu.Lock()
	defer s.mu.Unlock()
	next := map[string][]Backend{}
	for k, v := range *s.models.Load() {
		next[k] = v
	}
	next[name] = append([]Backend(nil), backends...)
	s.models.Store(&next)
	return nil
}

// SetReady marks the server ready once the models it should serve are registered.
func (s *Server) SetReady(ready bool) { s.ready.Store(ready) }

// Ready reports whether SetReady(true) was called (or the server started ready).
func (s *Server) Ready() bool { return s.ready.Load() }

// RemoveModel unregisters a model.
func (s *Server) RemoveModel(name string) {
	s.mu.Lock()
	defer s.mu.Unlock()
	next := map[string][]Backend{}
	for k, v := range *s.models.Load() {
		if k != name {
			next[k] = v
		}
	}
	s.models.Store(&next)
}

// Routes mounts the protocol paths on mux: /v1/ (TF Serving, whose server answers every path
// under /v1/) and /v2, /v2/ (KServe).
func (s *Server) Routes(mux *http.ServeMux) {
	mux.Handle("/v1", s)
	mux.Handle("/v1/", s)
	mux.Handle("/v2", s)
	mux.Handle("/v2/", s)
}

// ServeHTTP dispatches on the protocol prefix.
func (s *Server) ServeHTTP(w http.ResponseWriter, r *http.Request) {
	segs, err := splitPath(r.URL.EscapedPath())
	if err != nil {
		writeError(w, http.StatusBadRequest, err.Error())
		return
	}
	switch {
	case len(segs) >= 2 && eqFold(segs[0], "v1") && eqFold(segs[1], "models"):
		s.serveTF(w, r, segs[2:])
	case len(segs) >= 1 && segs[0] == "v2":
		s.serveV2(w, r, segs[1:])
	case len(segs) >= 1 && eqFold(segs[0], "v1"):
		// TF Serving hands every /v1/ path to its REST handler, which refuses what it cannot
		// route as INVALID_ARGUMENT.
		writeError(w, http.StatusBadRequest, "Malformed request: "+r.Method+" "+r.URL.Path)
	default:
		writeError(w, http.StatusNotFound, "Not Found: "+r.Method+" "+r.URL.Path)
	}
}

// request target: a model and at most one of version / label.
type target struct {
	model   string
	version int64
	hasVer  bool
	label   string
}

func (t target) String() string {
	switch {
	case t.hasVer:
		return fmt.Sprintf("Specific(%s, %d)", t.model, t.version)
	case t.label != "":
		return fmt.Sprintf("Label(%s, %s)", t.model, t.label)
	}
	return fmt.Sprintf("Latest(%s)", t.model)
}

func (s *Server) backends(model string) ([]Backend, bool) {
	b, ok := (*s.models.Load())[model]
	return b, ok
}

// resolve picks the servable for t; default requests go through the traffic split. A default request
// that read the split just before a rollout replaced it may find its version already unloaded (the
// registry swaps the split first, then unloads what nothing routes to): the split has then changed, so
// it resolves again against the new one instead of answering 404 (availability-preserving rollouts).
func (s *Server) resolve(t target) (*modelrepo.Servable, error) {
	for attempt := 0; ; attempt++ {
		models := s.models.Load()
		sv, err := s.resolveIn(*models, t)
		if err != nil && attempt < 3 && !t.hasVer && t.label == "" && s.models.Load() != models {
			continue
		}
		return sv, err
	}
}

func (s *Server) resolveIn(models map[string][]Backend, t target) (*modelrepo.Servable, error) {
	backends, ok := models[t.model]
	if !ok {
		return nil, statusf(codes.NotFound, "Servable not found for request: %s", t)
	}
	switch {
	case t.hasVer:
		for _, b := range backends {
			if sv, err := b.Manager.Snapshot().Version(t.version); err == nil {
				return sv, nil
			}
		}
		return nil, statusf(codes.NotFound, "Servable not found for request: %s", t)
	case t.label != "":
		for _, b := range backends {
			if sv, err := b.Manager.Snapshot().Label(t.label); err == nil {
				return sv, nil
			}
		}
		// TF Serving's ServerCore: an unknown label is INVALID_ARGUMENT.
		return nil, statusf(codes.InvalidArgument, "Unrecognized servable version label: %s", t.label)
	}
	b := s.pick(backends)
	snap := b.Manager.Snapshot()
	var sv *modelrepo.Servable
	var err error
	if b.Version != 0 {
		sv, err = snap.Version(b.Version)
	} else {
		sv, err = snap.Latest()
	}
	if err != nil {
		return nil, statusf(codes.NotFound, "Servable not found for request: %s", t)
	}
	return sv, nil
}

// pick is a weighted random choice by Percent.
func (s *Server) pick(backends []Backend) Backend {
	if len(backends) == 1 {
		return backends[0]
	}
	s.mu.Lock()
	n := s.rng.IntN(100)
	s.mu.Unlock()
	for _, b := range backends {
		if n < b.Percent {
			return b
		}
		n -= b.Percent
	}
	return backends[len(backends)-1]
}

// predict resolves and runs, re-resolving once if the version was unloaded in between.
func (s *Server) predict(ctx context.Context, t target, in map[string]modelruntime.Tensor) (*modelrepo.Servable, map[string]modelruntime.Tensor, error) {
	for attempt := 0; ; attempt++ {
		sv, err := s.resolve(t)
		if err != nil {
			return nil, nil, err
		}
		out, err := sv.Predict(ctx, in)
		if errors.Is(err, modelrepo.ErrUnloaded) && attempt < 2 {
			continue
		}
		return sv, out, err
	}
}

func writeJSON(w http.ResponseWriter, status int, body []byte) {
	w.Header().Set("Content-Type", "application/json")
	w.Header().Set("Content-Length", strconv.Itoa(len(body)))
	w.WriteHeader(status)
	_, _ = w.Write(body)
}

// writeError writes {"error": msg}.
func writeError(w http.ResponseWriter, status int, msg string) {
	b := append([]byte(`{"error":`), appendString(nil, msg)...)
	writeJSON(w, status, append(b, '}'))
}
