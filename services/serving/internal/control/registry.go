// Package control is the serving control plane: the Registry holds this process's data-plane state
// (which model repository Managers serve which model name with which traffic split), and the
// deployment workflow (Temporal, one per deployment) drives it through activities: load a revision,
// apply a traffic split, watch for new versions, unload. A restarted process starts with an empty
// Registry; the workflows re-apply their desired state (reconcile), so serving resumes.
package control

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"slices"
	"sort"
	"strings"
	"sync"
	"time"

	"github.com/sluice-ml/sluice/libs/artifacts"
	"github.com/sluice-ml/sluice/services/serving/api/servingv1"
	"github.com/sluice-ml/sluice/services/serving/internal/dataplane"
	"github.com/sluice-ml/sluice/services/serving/internal/modelrepo"
	"github.com/sluice-ml/sluice/services/serving/internal/modelruntime"
)

// ErrModelNameInUse reports a model name already served by another deployment (the data plane
// serves by model name only, as TF Serving does, so names are unique across namespaces).
var ErrModelNameInUse = errors.New("control: model name in use")

// SourceSpec identifies a Manager: a model base path with its version policy and labels.
type SourceSpec struct {
	StorageURI string                  `json:"storageUri"`
	Policy     servingv1.VersionPolicy `json:"policy,omitzero"`
	Labels     map[string]int64        `json:"labels,omitempty"`
}

func (s SourceSpec) id() string { return s.StorageURI + "#" + s.Policy.String() }

// Target is one traffic target: a version of a source receiving Percent of default traffic.
type Target struct {
	Source  SourceSpec `json:"source"`
	Version int64      `json:"version"`
	Percent int        `json:"percent"`
}

// Desired is a deployment's complete data-plane state.
type Desired struct {
	Key       string `json:"key"` // "<namespace>/<name>"
	ModelName string `json:"modelName"`
	// Targets receive the default traffic (empty: the model is not served yet).
	Targets []Target `json:"targets,omitempty"`
	// Watch is the source polled for new versions (kept loaded per its policy even when it serves
	// no traffic yet, so a new revision is loaded off the request path).
	Watch *SourceSpec `json:"watch,omitempty"`
}

type managed struct {
	spec   SourceSpec
	m      *modelrepo.Manager
	cancel context.CancelFunc
	done   chan struct{}
}

type entry struct {
	modelName string
	managers  map[string]*managed
	served    bool
	// unrouted: served through serveUnrouted (latest version of the watched source), not a split.
	unrouted bool
}

// Registry is the process's set of deployed models. It is safe for concurrent use.
type Registry struct {
	server   *dataplane.Server
	store    *artifacts.Store
	loader   modelruntime.Loader
	interval time.Duration
	log      *slog.Logger

	mu      sync.Mutex
	entries map[string]*entry // by deployment key
	ctx     context.Context
	stop    context.CancelFunc
}

// NewRegistry returns an empty registry that registers models on server, reads s3:// base paths
// from store, loads models with loader and polls every source every interval.
func NewRegistry(server *dataplane.Server, store *artifacts.Store, loader modelruntime.Loader, interval time.Duration, log *slog.Logger) *Registry {
	if log == nil {
		log = slog.New(slog.DiscardHandler)
	}
	ctx, stop := context.WithCancel(context.Background())
	return &Registry{server: server, store: store, loader: loader, interval: interval, log: log,
		entries: map[string]*entry{}, ctx: ctx, stop: stop}
}

// Server returns the data plane the registry drives.
func (r *Registry) Server() *dataplane.Server { return r.server }

// Has reports whether a deployment's state is present (false after a process restart until the
// workflow reconciles).
func (r *Registry) Has(key string) bool {
	r.mu.Lock()
	defer r.mu.Unlock()
	_, ok := r.entries[key]
	return ok
}

func (r *Registry) source(uri string) (modelrepo.Source, error) {
	switch {
	case strings.HasPrefix(uri, "s3://"):
		return modelrepo.NewS3Source(r.store, uri)
	case strings.HasPrefix(uri, "file://"):
		return modelrepo.DirSource{Path: strings.TrimPrefix(uri, "file://")}, nil
	case strings.HasPrefix(uri, "/"):
		return modelrepo.DirSource{Path: uri}, nil
	}
	return nil, fmt.Errorf("storageUri %q: scheme not supported", uri)
}

// claim returns the entry of key, creating it; it fails when modelName belongs to another key.
// Callers hold r.mu.
func (r *Registry) claim(key, modelName string) (*entry, error) {
	for k, e := range r.entries {
		if k != key && e.modelName == modelName {
			return nil, fmt.Errorf("%w: model %q is served by deployment %s", ErrModelNameInUse, modelName, k)
		}
	}
	e, ok := r.entries[key]
	if !ok {
		e = &entry{modelName: modelName, managers: map[string]*managed{}}
		r.entries[key] = e
	}
	e.modelName = modelName
	return e, nil
}

// ensure returns the Manager of spec in e, creating and starting it (its Run loop polls every
// interval). Callers hold r.mu.
func (r *Registry) ensure(e *entry, spec SourceSpec) (*managed, error) {
	if mg, ok := e.managers[spec.id()]; ok {
		mg.m.SetLabels(spec.Labels)
		mg.spec = spec
		return mg, nil
	}
	src, err := r.source(spec.StorageURI)
	if err != nil {
		return nil, err
	}
	m, err := modelrepo.NewManager(modelrepo.Config{
		Name: e.modelName, Source: src, Loader: r.loader, Labels: spec.Labels, Log: r.log,
		Policy: modelrepo.Policy{Latest: spec.Policy.Latest, All: spec.Policy.All, Specific: spec.Policy.Specific},
	})
	if err != nil {
		return nil, err
	}
	ctx, cancel := context.WithCancel(r.ctx)
	mg := &managed{spec: spec, m: m, cancel: cancel, done: make(chan struct{})}
	go func() {
		defer close(mg.done)
		m.Run(ctx, r.interval)
	}()
	e.managers[spec.id()] = mg
	return mg, nil
}

// Manager returns the running Manager of a deployment's source (nil when absent).
func (r *Registry) Manager(key string, spec SourceSpec) *modelrepo.Manager {
	r.mu.Lock()
	defer r.mu.Unlock()
	if e, ok := r.entries[key]; ok {
		if mg, ok := e.managers[spec.id()]; ok {
			return mg.m
		}
	}
	return nil
}

// Ensure makes sure the deployment has a running Manager for spec (keeping everything else) and
// returns it.
func (r *Registry) Ensure(key, modelName string, spec SourceSpec) (*modelrepo.Manager, error) {
	r.mu.Lock()
	defer r.mu.Unlock()
	e, err := r.claim(key, modelName)
	if err != nil {
		return nil, err
	}
	mg, err := r.ensure(e, spec)
	if err != nil {
		return nil, err
	}
	r.serveUnrouted(e, mg.m)
	return mg.m, nil
}

// serveUnrouted registers m on the data plane for an entry that has no traffic split yet, so the
// model's versions are visible from the first load on: its status (a version that failed to
// load is END with the error, as TF Serving reports it) and its latest available version.
// Callers hold r.mu.
func (r *Registry) serveUnrouted(e *entry, m *modelrepo.Manager) {
	if e.served {
		return
	}
	if err := r.server.SetModel(e.modelName, dataplane.Backend{Manager: m}); err != nil {
		r.log.Warn("register model", "model", e.modelName, "err", err)
		return
	}
	e.served = true
	e.unrouted = true
}

// Apply makes the process serve d: Managers for every target source and the watch source (others
// stop), each keeping its targets' versions loaded, then the data plane's traffic split. It polls
// the sources so pinned versions are loaded before traffic moves; a target whose version is not
// available fails Apply and leaves the previous split in place.
func (r *Registry) Apply(ctx context.Context, d Desired) error {
	r.mu.Lock()
	e, err := r.claim(d.Key, d.ModelName)
	if err != nil {
		r.mu.Unlock()
		return err
	}
	pins := map[string][]int64{}
	var specs []SourceSpec
	for _, t := range d.Targets {
		id := t.Source.id()
		if _, ok := pins[id]; !ok {
			specs = append(specs, t.Source)
		}
		pins[id] = append(pins[id], t.Version)
	}
	if d.Watch != nil {
		if _, ok := pins[d.Watch.id()]; !ok {
			specs = append(specs, *d.Watch)
			pins[d.Watch.id()] = nil
		}
	}
	// Availability first (TF Serving's availability-preserving policy): the versions of the new
	// split are loaded while every version serving now stays pinned; traffic moves; only then are
	// the versions nothing routes to any more unpinned and unloaded.
	var managers []*managed
	for _, s := range specs {
		mg, err := r.ensure(e, s)
		if err != nil {
			r.mu.Unlock()
			return err
		}
		mg.m.SetPinned(union(mg.m.Pinned(), pins[s.id()]))
		managers = append(managers, mg)
	}
	r.mu.Unlock()

	for _, mg := range managers {
		if err := mg.m.Poll(ctx); err != nil {
			return err
		}
	}
	var backends []dataplane.Backend
	for i, t := range d.Targets {
		m := r.Manager(d.Key, t.Source)
		if m == nil {
			return fmt.Errorf("targets[%d]: deployment %s was removed", i, d.Key)
		}
		if _, err := m.Snapshot().Version(t.Version); err != nil {
			return fmt.Errorf("targets[%d]: %s version %d: %w", i, t.Source.StorageURI, t.Version, err)
		}
		backends = append(backends, dataplane.Backend{Manager: m, Version: t.Version, Percent: t.Percent})
	}

	r.mu.Lock()
	if cur, ok := r.entries[d.Key]; !ok || cur != e {
		r.mu.Unlock()
		return fmt.Errorf("deployment %s was removed", d.Key)
	}
	if len(backends) > 0 {
		if err := r.server.SetModel(d.ModelName, backends...); err != nil {
			r.mu.Unlock()
			return err
		}
		e.served, e.unrouted = true, false
	} else if len(managers) > 0 {
		r.serveUnrouted(e, managers[len(managers)-1].m)
	}
	keep := map[string]bool{}
	for _, s := range specs {
		keep[s.id()] = true
	}
	var stopped []*managed
	for id, mg := range e.managers {
		if !keep[id] {
			delete(e.managers, id)
			stopped = append(stopped, mg)
		}
	}
	if len(backends) > 0 {
		for _, mg := range managers {
			mg.m.SetPinned(pins[mg.spec.id()])
		}
	}
	r.mu.Unlock()
	for _, mg := range stopped {
		mg.cancel() // Run unloads every version, waiting for requests in flight
	}
	if len(backends) > 0 {
		for _, mg := range managers {
			if err := mg.m.Poll(ctx); err != nil {
				r.log.WarnContext(ctx, "unload versions no longer routed", "model", d.ModelName, "err", err)
			}
		}
	}
	return nil
}

// union returns the versions in a or b.
func union(a, b []int64) []int64 {
	out := slices.Clone(a)
	for _, v := range b {
		if !slices.Contains(out, v) {
			out = append(out, v)
		}
	}
	return out
}

// Remove stops serving a deployment and unloads its versions; removing an unknown key is a no-op.
func (r *Registry) Remove(key string) {
	r.mu.Lock()
	e, ok := r.entries[key]
	if ok {
		delete(r.entries, key)
		if e.served {
			r.server.RemoveModel(e.modelName)
		}
	}
	r.mu.Unlock()
	if !ok {
		return
	}
	for _, mg := range e.managers {
		mg.cancel()
		<-mg.done
	}
}

// Close stops every Manager.
func (r *Registry) Close() {
	r.mu.Lock()
	keys := make([]string, 0, len(r.entries))
	for k := range r.entries {
		keys = append(keys, k)
	}
	r.mu.Unlock()
	for _, k := range keys {
		r.Remove(k)
	}
	r.stop()
}

// Outcome is the settled state of a source's newest attempted version.
type Outcome struct {
	// Version is the newest version that is AVAILABLE or failed (0 with NoVersion).
	Version int64
	Dir     string
	Digest  string
	// Failed is set when that version failed to load; Message says why.
	Failed    bool
	ErrorCode string
	Message   string
	// NoVersion: nothing loadable was found under the base path yet.
	NoVersion bool
}

// Settled returns the outcome of m's newest attempted version: the highest version whose status is
// AVAILABLE or failed. ok is false while that version (or a newer one) is still loading.
func Settled(m *modelrepo.Manager) (Outcome, bool) {
	snap := m.Snapshot()
	sts := slices.Clone(snap.Statuses)
	sort.Slice(sts, func(i, j int) bool { return sts[i].Version > sts[j].Version })
	for _, st := range sts {
		switch {
		case st.State == modelrepo.StateLoading || st.State == modelrepo.StateStart:
			return Outcome{}, false
		case st.State == modelrepo.StateAvailable:
			return Outcome{Version: st.Version, Dir: st.Dir, Digest: st.Digest}, true
		case st.State == modelrepo.StateEnd && st.ErrorCode != "" && st.ErrorCode != "OK":
			return Outcome{Version: st.Version, Dir: st.Dir, Digest: st.Digest, Failed: true, ErrorCode: st.ErrorCode, Message: st.ErrorMessage}, true
		}
	}
	return Outcome{NoVersion: true}, true
}
