package control

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"strings"
	"time"

	"go.temporal.io/sdk/activity"

	"github.com/sluice-ml/sluice/libs/events"
	wf "github.com/sluice-ml/sluice/libs/workflow"
)

// LoadInput asks for a source to be loaded while the current state keeps serving.
type LoadInput struct {
	Current Desired    `json:"current"`
	Source  SourceSpec `json:"source"`
	// Timeout bounds the wait for a first version to appear under the base path.
	Timeout time.Duration `json:"timeout"`
}

// LoadResult is the settled outcome of a load, with the model file's URI.
type LoadResult struct {
	Outcome
	ModelURI string `json:"modelUri,omitempty"`
}

// WatchInput re-applies Desired (reconcile after a restart) and waits for a version of Desired.Watch
// newer than Known to settle.
type WatchInput struct {
	Desired Desired `json:"desired"`
	Known   int64   `json:"known"`
}

// PublishInput is one event the workflow publishes, with its deterministic id.
type PublishInput struct {
	Type    string `json:"type"`
	ID      string `json:"id"`
	Subject string `json:"subject"`
	Data    any    `json:"data"`
}

// Activities are the deployment workflow's activities; they act on this process's Registry.
type Activities struct {
	Registry *Registry
	Bus      *events.Bus
	Log      *slog.Logger
	// Source is the CloudEvents source ("/sluice/serving").
	Source string
	// PollInterval is how often Watch and Load look at the Managers (default 100ms).
	PollInterval time.Duration
}

func (a *Activities) tick() time.Duration {
	if a.PollInterval > 0 {
		return a.PollInterval
	}
	return 100 * time.Millisecond
}

func permanentIfConflict(err error) error {
	if errors.Is(err, ErrModelNameInUse) {
		return wf.NonRetryable(wf.ErrTypeInvalidSpec, err)
	}
	return err
}

// Load makes sure the current state is served (reconciling after a restart), starts a Manager for
// the source and waits (heartbeating) until its newest version is AVAILABLE or failed, or until
// Timeout passes with no version under the base path.
func (a *Activities) Load(ctx context.Context, in LoadInput) (LoadResult, error) {
	stop := heartbeat(ctx, a.tick())
	defer stop()
	if !a.Registry.Has(in.Current.Key) && len(in.Current.Targets) > 0 {
		if err := a.Registry.Apply(ctx, in.Current); err != nil {
			return LoadResult{}, permanentIfConflict(err)
		}
	}
	m, err := a.Registry.Ensure(in.Current.Key, in.Current.ModelName, in.Source)
	if err != nil {
		if errors.Is(err, ErrModelNameInUse) {
			return LoadResult{}, permanentIfConflict(err)
		}
		return LoadResult{Outcome: Outcome{Failed: true, ErrorCode: "INVALID_ARGUMENT", Message: err.Error()}}, nil
	}
	deadline := time.Now().Add(in.Timeout)
	t := time.NewTicker(a.tick())
	defer t.Stop()
	for {
		if err := m.Poll(ctx); err != nil && ctx.Err() == nil {
			a.Log.WarnContext(ctx, "poll model base path", "storage_uri", in.Source.StorageURI, "err", err)
		}
		out, ok := Settled(m)
		if ok && !out.NoVersion {
			return LoadResult{Outcome: out, ModelURI: modelURI(in.Source.StorageURI, out.Dir)}, nil
		}
		if ok && time.Now().After(deadline) {
			return LoadResult{Outcome: Outcome{Failed: true, NoVersion: true, ErrorCode: "NOT_FOUND",
				Message: fmt.Sprintf("no version directory with a model under %s after %s", in.Source.StorageURI, in.Timeout)}}, nil
		}
		select {
		case <-ctx.Done():
			return LoadResult{}, ctx.Err()
		case <-t.C:
		}
	}
}

func modelURI(base, dir string) string {
	if dir == "" {
		return ""
	}
	return strings.TrimSuffix(base, "/") + "/" + dir + "/model.onnx"
}

// Apply sets the data plane to d (heartbeating while versions load).
func (a *Activities) Apply(ctx context.Context, d Desired) error {
	stop := heartbeat(ctx, a.tick())
	defer stop()
	return permanentIfConflict(a.Registry.Apply(ctx, d))
}

// heartbeat records heartbeats every interval until stop is called.
func heartbeat(ctx context.Context, every time.Duration) (stop func()) {
	done := make(chan struct{})
	go func() {
		t := time.NewTicker(every)
		defer t.Stop()
		for {
			activity.RecordHeartbeat(ctx)
			select {
			case <-done:
				return
			case <-ctx.Done():
				return
			case <-t.C:
			}
		}
	}()
	return func() { close(done) }
}

// Watch re-applies the desired state when this process lacks it (restart), then waits, heartbeating,
// until the watched source has a settled version newer than Known, and returns it. It runs until
// cancelled otherwise.
func (a *Activities) Watch(ctx context.Context, in WatchInput) (LoadResult, error) {
	if in.Desired.Watch == nil {
		return LoadResult{}, wf.NonRetryable(wf.ErrTypeInvalidSpec, errors.New("watch: no source"))
	}
	stop := heartbeat(ctx, a.tick())
	defer stop()
	if !a.Registry.Has(in.Desired.Key) || a.Registry.Manager(in.Desired.Key, *in.Desired.Watch) == nil {
		if err := a.Registry.Apply(ctx, in.Desired); err != nil {
			return LoadResult{}, permanentIfConflict(err)
		}
		a.Log.InfoContext(ctx, "reconciled deployment", "deployment", in.Desired.Key, "model", in.Desired.ModelName)
	}
	t := time.NewTicker(a.tick())
	defer t.Stop()
	for {
		m := a.Registry.Manager(in.Desired.Key, *in.Desired.Watch)
		if m == nil {
			return LoadResult{}, fmt.Errorf("deployment %s: watched source is gone", in.Desired.Key)
		}
		if out, ok := Settled(m); ok && !out.NoVersion && out.Version > in.Known {
			return LoadResult{Outcome: out, ModelURI: modelURI(in.Desired.Watch.StorageURI, out.Dir)}, nil
		}
		select {
		case <-ctx.Done():
			return LoadResult{}, ctx.Err()
		case <-t.C:
		}
	}
}

// Unload removes the deployment from the data plane.
func (a *Activities) Unload(ctx context.Context, key string) error {
	a.Registry.Remove(key)
	return nil
}

// Publish publishes one event with the id the workflow chose (a retry publishes the same id, which
// the bus deduplicates).
func (a *Activities) Publish(ctx context.Context, in PublishInput) error {
	ev, err := events.New(a.Source, in.Type, in.Subject, in.Data)
	if err != nil {
		return wf.NonRetryable(wf.ErrTypePermanent, err)
	}
	ev.SetID(in.ID)
	return a.Bus.Publish(ctx, ev)
}
