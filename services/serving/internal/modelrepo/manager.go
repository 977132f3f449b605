package modelrepo

import (
	"context"
	"crypto/sha256"
	"encoding/hex"
	"errors"
	"fmt"
	"log/slog"
	"maps"
	"slices"
	"sort"
	"strconv"
	"sync"
	"sync/atomic"
	"time"

	"github.com/sluice-ml/sluice/services/serving/internal/modelruntime"
)

// State is a version's lifecycle state, named as TF Serving's ModelVersionStatus.State.
type State string

// States.
const (
	StateUnknown   State = "UNKNOWN"
	StateStart     State = "START"
	StateLoading   State = "LOADING"
	StateAvailable State = "AVAILABLE"
	StateUnloading State = "UNLOADING"
	StateEnd       State = "END"
)

// VersionStatus is the state of one version. A version that failed to load is END with
// ErrorCode and ErrorMessage set and never serves.
type VersionStatus struct {
	Version      int64
	State        State
	ErrorCode    string // canonical code name: "OK", "INVALID_ARGUMENT", "NOT_FOUND", "UNKNOWN"
	ErrorMessage string
	// Dir is the version directory's name in the base path ("0003").
	Dir string
	// Digest is "sha256:<hex>" of the model file bytes that were loaded ("" until read).
	Digest string
}

// Errors of version resolution.
var (
	ErrVersionNotFound = errors.New("modelrepo: servable version not found")
	ErrLabelNotFound   = errors.New("modelrepo: version label not found")
	ErrNoVersion       = errors.New("modelrepo: no version available")
	ErrUnloaded        = errors.New("modelrepo: servable unloaded")
)

// Servable is one loaded version of a model. Predict is safe for concurrent use and may run
// while the version is being retired: unloading waits for calls in flight.
type Servable struct {
	Name    string
	Version int64
	Model   modelruntime.Model

	mu     sync.RWMutex
	closed bool
}

// Predict runs the model; ErrUnloaded means the version was retired before the call began
// (callers resolve again from a fresh snapshot).
func (s *Servable) Predict(ctx context.Context, in map[string]modelruntime.Tensor) (map[string]modelruntime.Tensor, error) {
	s.mu.RLock()
	defer s.mu.RUnlock()
	if s.closed {
		return nil, ErrUnloaded
	}
	return s.Model.Predict(ctx, in)
}

func (s *Servable) retire() error {
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.closed {
		return nil
	}
	s.closed = true
	return s.Model.Close()
}

// Snapshot is an immutable view of a model's loaded versions, statuses and labels.
type Snapshot struct {
	Name string
	// Available maps version to servable (only AVAILABLE versions).
	Available map[int64]*Servable
	// Statuses lists every known version, highest first.
	Statuses []VersionStatus
	// Labels maps a version label to a version.
	Labels map[string]int64
}

// Latest returns the highest available version.
func (s *Snapshot) Latest() (*Servable, error) {
	var best *Servable
	for v, sv := range s.Available {
		if best == nil || v > best.Version {
			best = sv
		}
	}
	if best == nil {
		return nil, fmt.Errorf("%w: model %q", ErrNoVersion, s.Name)
	}
	return best, nil
}

// Version returns an available version.
func (s *Snapshot) Version(v int64) (*Servable, error) {
	sv, ok := s.Available[v]
	if !ok {
		return nil, fmt.Errorf("%w: model %q version %d", ErrVersionNotFound, s.Name, v)
	}
	return sv, nil
}

// Label returns the available version a label points at.
func (s *Snapshot) Label(label string) (*Servable, error) {
	v, ok := s.Labels[label]
	if !ok {
		return nil, fmt.Errorf("%w: model %q label %q", ErrLabelNotFound, s.Name, label)
	}
	sv, ok := s.Available[v]
	if !ok {
		return nil, fmt.Errorf("%w: model %q label %q points at version %d, which is not available", ErrLabelNotFound, s.Name, label, v)
	}
	return sv, nil
}

// Status returns the status of one version (ok=false if the version is unknown).
func (s *Snapshot) Status(v int64) (VersionStatus, bool) {
	for _, st := range s.Statuses {
		if st.Version == v {
			return st, true
		}
	}
	return VersionStatus{}, false
}

// Config configures a Manager.
type Config struct {
	// Name is the model name requests use.
	Name string
	// Source is the model base path.
	Source Source
	// Loader turns model file bytes into a Model.
	Loader modelruntime.Loader
	// ModelFile is the file inside a version directory (default modelruntime.ModelFileONNX).
	ModelFile string
	// Policy selects the versions to serve (zero = latest 1).
	Policy Policy
	// Labels maps version labels ("stable", "canary") to versions.
	Labels map[string]int64
	// Log receives discovery warnings and load failures.
	Log *slog.Logger
}

// Manager keeps the versions of one model loaded according to its policy.
type Manager struct {
	cfg  Config
	log  *slog.Logger
	snap atomic.Pointer[Snapshot]

	mu       sync.Mutex // serialises Poll and label changes
	loaded   map[int64]*Servable
	statuses map[int64]VersionStatus
	failed   map[int64]bool
	labels   map[string]int64
	pinned   []int64
	warned   map[string]bool
}

// NewManager validates cfg and returns a Manager with nothing loaded (call Poll or Run).
func NewManager(cfg Config) (*Manager, error) {
	var errs []error
	if cfg.Name == "" {
		errs = append(errs, errors.New("name: must not be empty"))
	}
	if cfg.Source == nil {
		errs = append(errs, errors.New("source: must be set"))
	}
	if cfg.Loader == nil {
		errs = append(errs, errors.New("loader: must be set"))
	}
	if err := cfg.Policy.Validate(); err != nil {
		errs = append(errs, err)
	}
	if err := errors.Join(errs...); err != nil {
		return nil, err
	}
	if cfg.ModelFile == "" {
		cfg.ModelFile = modelruntime.ModelFileONNX
	}
	log := cfg.Log
	if log == nil {
		log = slog.New(slog.DiscardHandler)
	}
	m := &Manager{
		cfg:      cfg,
		log:      log.With("model", cfg.Name),
		loaded:   map[int64]*Servable{},
		statuses: map[int64]VersionStatus{},
		failed:   map[int64]bool{},
		labels:   maps.Clone(cfg.Labels),
		warned:   map[string]bool{},
	}
	m.publish()
	return m, nil
}

// Name is the model name.
func (m *Manager) Name() string { return m.cfg.Name }

// Snapshot returns the current immutable view; never nil.
func (m *Manager) Snapshot() *Snapshot { return m.snap.Load() }

// SetLabels replaces the version labels.
func (m *Manager) SetLabels(labels map[string]int64) {
	m.mu.Lock()
	defer m.mu.Unlock()
	m.labels = maps.Clone(labels)
	m.publish()
}

// SetPinned sets versions kept loaded in addition to the policy's selection (a canary rollout
// pins the previous revision while the policy moves on). It takes effect at the next Poll.
func (m *Manager) SetPinned(versions []int64) {
	m.mu.Lock()
	defer m.mu.Unlock()
	m.pinned = slices.Clone(versions)
}

// Pinned returns the versions set by SetPinned.
func (m *Manager) Pinned() []int64 {
	m.mu.Lock()
	defer m.mu.Unlock()
	return slices.Clone(m.pinned)
}

// Source returns the model base path.
func (m *Manager) Source() Source { return m.cfg.Source }

// Run polls the source every interval until ctx is done, then unloads every version.
func (m *Manager) Run(ctx context.Context, interval time.Duration) {
	t := time.NewTicker(interval)
	defer t.Stop()
	for {
		if err := m.Poll(ctx); err != nil && ctx.Err() == nil {
			m.log.WarnContext(ctx, "poll model base path", "base_path", m.cfg.Source.String(), "err", err)
		}
		select {
		case <-ctx.Done():
			m.Close()
			return
		case <-t.C:
		}
	}
}

// Poll discovers versions once, loads the versions the policy selects that are not loaded yet
// (each becomes available as soon as it is loaded), then unloads versions no longer selected.
// A version that fails to load is recorded as END with its error, is never retried, and is
// not counted by the policy, so latest{1} keeps serving the previous version. Poll returns an
// error only when the source cannot be listed.
func (m *Manager) Poll(ctx context.Context) error {
	names, err := m.cfg.Source.List(ctx)
	if err != nil {
		return err
	}
	sort.Strings(names)
	dirs := map[int64]string{}
	for _, n := range names {
		v, ok := ParseVersion(n)
		if !ok {
			m.warnOnce(ctx, n, "ignoring non-version entry in model base path")
			continue
		}
		if prev, dup := dirs[v]; dup {
			m.warnOnce(ctx, n, "ignoring duplicate version directory", "version", v, "using", prev)
			continue
		}
		dirs[v] = n
	}

	m.mu.Lock()
	defer m.mu.Unlock()
	// Select, load, and select again until the selection holds only loaded versions: a version
	// that fails to load drops out and the policy falls back to the next one.
	var keep []int64
	for {
		var candidates []int64
		for v := range dirs {
			if !m.failed[v] {
				candidates = append(candidates, v)
			}
		}
		keep = m.cfg.Policy.Select(candidates)
		for _, v := range m.pinned {
			if slices.Contains(candidates, v) && !slices.Contains(keep, v) {
				keep = append(keep, v)
			}
		}
		progressed := false
		for _, v := range keep {
			if _, ok := m.loaded[v]; ok {
				continue
			}
			if err := ctx.Err(); err != nil {
				return nil
			}
			progressed = true
			m.statuses[v] = VersionStatus{Version: v, State: StateLoading, ErrorCode: "OK", Dir: dirs[v]}
			m.publish()
			sv, digest, err := m.load(ctx, v, dirs[v])
			if err != nil {
				if ctx.Err() != nil {
					delete(m.statuses, v)
					m.publish()
					return nil
				}
				m.log.ErrorContext(ctx, "load model version", "version", v, "err", err)
				m.failed[v] = true
				m.statuses[v] = VersionStatus{Version: v, State: StateEnd, ErrorCode: errorCode(err), ErrorMessage: err.Error(), Dir: dirs[v], Digest: digest}
				m.publish()
				continue
			}
			m.log.InfoContext(ctx, "model version available", "version", v)
			m.loaded[v] = sv
			m.statuses[v] = VersionStatus{Version: v, State: StateAvailable, ErrorCode: "OK", Dir: dirs[v], Digest: digest}
			m.publish()
		}
		if !progressed {
			break
		}
	}
	var retired []*Servable
	for v, sv := range m.loaded {
		if slices.Contains(keep, v) {
			continue
		}
		delete(m.loaded, v)
		st := m.statuses[v]
		st.State, st.ErrorCode, st.ErrorMessage = StateEnd, "OK", ""
		m.statuses[v] = st
		retired = append(retired, sv)
	}
	m.publish()
	for _, sv := range retired {
		// Waits for requests still running on the old snapshot.
		if err := sv.retire(); err != nil {
			m.log.WarnContext(ctx, "close model version", "version", sv.Version, "err", err)
		}
		m.log.InfoContext(ctx, "model version unloaded", "version", sv.Version)
	}
	return nil
}

func (m *Manager) load(ctx context.Context, v int64, dir string) (*Servable, string, error) {
	b, err := m.cfg.Source.ReadFile(ctx, dir, m.cfg.ModelFile)
	if err != nil {
		return nil, "", fmt.Errorf("read version %d: %w", v, err)
	}
	sum := sha256.Sum256(b)
	digest := "sha256:" + hex.EncodeToString(sum[:])
	model, err := m.cfg.Loader.Load(ctx, b)
	if err != nil {
		return nil, digest, fmt.Errorf("load version %d (%s/%s): %w", v, dir, m.cfg.ModelFile, err)
	}
	return &Servable{Name: m.cfg.Name, Version: v, Model: model}, digest, nil
}

func errorCode(err error) string {
	switch {
	case errors.Is(err, ErrNoModelFile):
		return "NOT_FOUND"
	case errors.Is(err, modelruntime.ErrInvalidModel), errors.Is(err, modelruntime.ErrUnsupported):
		return "INVALID_ARGUMENT"
	}
	return "UNKNOWN"
}

func (m *Manager) warnOnce(ctx context.Context, name, msg string, args ...any) {
	if m.warned[name] {
		return
	}
	m.warned[name] = true
	m.log.WarnContext(ctx, msg, append([]any{"entry", name, "base_path", m.cfg.Source.String()}, args...)...)
}

// publish swaps in a new snapshot built from the current state; callers hold m.mu (or own m).
func (m *Manager) publish() {
	s := &Snapshot{
		Name:      m.cfg.Name,
		Available: maps.Clone(m.loaded),
		Labels:    maps.Clone(m.labels),
	}
	for _, st := range m.statuses {
		s.Statuses = append(s.Statuses, st)
	}
	sort.Slice(s.Statuses, func(i, j int) bool { return s.Statuses[i].Version > s.Statuses[j].Version })
	m.snap.Store(s)
}

// Close unloads every version (waiting for requests in flight).
func (m *Manager) Close() {
	m.mu.Lock()
	defer m.mu.Unlock()
	for v, sv := range m.loaded {
		delete(m.loaded, v)
		m.statuses[v] = VersionStatus{Version: v, State: StateEnd, ErrorCode: "OK"}
		_ = sv.retire()
	}
	m.publish()
}

// FormatVersion renders a version as TF Serving's JSON does (int64 as string).
func FormatVersion(v int64) string { return strconv.FormatInt(v, 10) }
