// Package lifecycle is the notebook lifecycle as one Temporal workflow per notebook (workflow ID
// "notebook/<namespace>/<name>") and the activities it drives: start, watch and stop the server, probe its
// kernels for the culler, and report records and events.
package lifecycle

import (
	"context"
	"errors"
	"time"

	"github.com/google/uuid"
	"go.temporal.io/sdk/activity"

	"github.com/sluice-ml/sluice/libs/events"
	"github.com/sluice-ml/sluice/libs/runtime"
	"github.com/sluice-ml/sluice/libs/workflow"
	"github.com/sluice-ml/sluice/services/notebooks/api/notebooksv1"
	"github.com/sluice-ml/sluice/services/notebooks/internal/culling"
	"github.com/sluice-ml/sluice/services/notebooks/internal/nbstore"
	"github.com/sluice-ml/sluice/services/notebooks/internal/spawner"
)

// Source is the CloudEvents source of every event the notebooks service publishes.
const Source = "/sluice/notebooks"

// eventNamespace seeds the deterministic ids of published events.
var eventNamespace = uuid.MustParse("6f1d1c52-8f0e-4c43-9d0a-2f5d7f3c9b11")

// Servers runs notebook servers for the activities: the local spawner, or StatefulSets on Kubernetes
// (internal/cluster). Start, Watch and Kernels have the spawner's contract.
type Servers interface {
	Start(ctx context.Context, nb notebooksv1.Notebook, gen int, heartbeat func()) (spawner.StartResult, error)
	Watch(ctx context.Context, ns, name string, gen int, interval time.Duration, heartbeat func()) (spawner.WatchResult, error)
	// Stop ends the server (no-op when none runs); Remove also deletes its runtime state.
	Stop(ctx context.Context, ns, name string) error
	Remove(ctx context.Context, ns, name string) error
	Kernels(ctx context.Context, ns, name string) ([]culling.Kernel, error)
}

// Recorder is implemented by Servers that record lifecycle changes where the servers run (Kubernetes Events).
type Recorder interface {
	Record(ctx context.Context, nb notebooksv1.Notebook, eventType string, ev notebooksv1.Event)
}

// Local adapts the local spawner to Servers.
type Local struct{ *spawner.Spawner }

// Stop ends the server.
func (l Local) Stop(_ context.Context, ns, name string) error { l.Spawner.Stop(ns, name); return nil }

// Remove ends the server and deletes its runtime state.
func (l Local) Remove(_ context.Context, ns, name string) error { return l.Spawner.Remove(ns, name) }

// Activities are the lifecycle's side effects. Register them with worker.RegisterActivity.
type Activities struct {
	// Servers runs the servers; nil means Spawner (the local runtime).
	Servers Servers
	Spawner *spawner.Spawner
	Store   *nbstore.Store
	Bus     *events.Bus
	// WatchInterval is how often WatchServer heartbeats (default 2s).
	WatchInterval time.Duration
}

// StartServerInput starts one generation of a notebook's server.
type StartServerInput struct {
	Notebook   notebooksv1.Notebook `json:"notebook"`
	Generation int                  `json:"generation"`
}

// StartServerResult tells whether the server became ready, or how it ended before.
type StartServerResult struct {
	Ready     bool      `json:"ready"`
	StartedAt time.Time `json:"startedAt"`
	ExitCode  int       `json:"exitCode"`
	Reason    string    `json:"reason,omitempty"`
	Message   string    `json:"message,omitempty"`
}

// StartServer starts the server and waits for readiness (heartbeating). It is idempotent per generation.
func (a *Activities) StartServer(ctx context.Context, in StartServerInput) (StartServerResult, error) {
	hb := func() { activity.RecordHeartbeat(ctx, in.Generation) }
	r, err := a.servers().Start(ctx, in.Notebook, in.Generation, hb)
	switch {
	case err == nil:
	case errors.Is(err, runtime.ErrInvalidSpec):
		return StartServerResult{}, workflow.NonRetryable(workflow.ErrTypeInvalidSpec, err)
	case errors.Is(err, spawner.ErrClosing), ctx.Err() != nil:
		// This worker is going away: another one retries.
		return StartServerResult{}, err
	default:
		// The program could not be started (missing executable, no free port…): the crash policy decides.
		return StartServerResult{ExitCode: -1, Reason: "StartError", Message: err.Error()}, nil
	}
	if !r.Ready {
		return StartServerResult{ExitCode: r.Exit.Code, Reason: r.Exit.Reason, Message: tail(r.LogTail)}, nil
	}
	return StartServerResult{Ready: true, StartedAt: r.Endpoint.StartedAt}, nil
}

// WatchServerInput names the server generation to watch.
type WatchServerInput struct {
	Namespace  string `json:"namespace"`
	Name       string `json:"name"`
	Generation int    `json:"generation"`
}

// WatchServerResult says how the server ended; Gone means this worker never ran it (service restarted).
type WatchServerResult struct {
	Gone       bool      `json:"gone"`
	ExitCode   int       `json:"exitCode"`
	Reason     string    `json:"reason,omitempty"`
	Message    string    `json:"message,omitempty"`
	FinishedAt time.Time `json:"finishedAt"`
}

// WatchServer blocks until the server ends, heartbeating. Cancelling it stops the watch, not the server.
func (a *Activities) WatchServer(ctx context.Context, in WatchServerInput) (WatchServerResult, error) {
	iv := a.WatchInterval
	if iv == 0 {
		iv = 2 * time.Second
	}
	r, err := a.servers().Watch(ctx, in.Namespace, in.Name, in.Generation, iv, func() { activity.RecordHeartbeat(ctx, in.Generation) })
	if err != nil {
		return WatchServerResult{}, err
	}
	if r.Gone {
		return WatchServerResult{Gone: true}, nil
	}
	return WatchServerResult{ExitCode: r.Exit.Code, Reason: r.Exit.Reason, Message: tail(r.LogTail), FinishedAt: time.Now().UTC()}, nil
}

// StopServerInput names the notebook whose server to end; Remove also deletes its runtime state.
type StopServerInput struct {
	Namespace string `json:"namespace"`
	Name      string `json:"name"`
	Remove    bool   `json:"remove"`
}

// StopServerResult is empty.
type StopServerResult struct{}

// StopServer ends the server (no-op when none runs).
func (a *Activities) StopServer(ctx context.Context, in StopServerInput) (StopServerResult, error) {
	if in.Remove {
		return StopServerResult{}, a.servers().Remove(ctx, in.Namespace, in.Name)
	}
	return StopServerResult{}, a.servers().Stop(ctx, in.Namespace, in.Name)
}

// ProbeInput names the notebook to probe.
type ProbeInput struct {
	Namespace string `json:"namespace"`
	Name      string `json:"name"`
}

// ProbeResult is the kernels list, or why it could not be read.
type ProbeResult struct {
	Kernels []culling.Kernel `json:"kernels"`
	Error   string           `json:"error,omitempty"`
	Gone    bool             `json:"gone,omitempty"`
}

// ProbeKernels reads GET <base_url>api/kernels (run as a local activity; never fails: errors are data).
func (a *Activities) ProbeKernels(ctx context.Context, in ProbeInput) (ProbeResult, error) {
	ks, err := a.servers().Kernels(ctx, in.Namespace, in.Name)
	switch {
	case errors.Is(err, spawner.ErrNotRunning):
		return ProbeResult{Gone: true, Error: err.Error()}, nil
	case err != nil:
		return ProbeResult{Error: err.Error()}, nil
	}
	return ProbeResult{Kernels: ks}, nil
}

// ReportInput writes the notebook's record (or deletes it) and publishes an event when EventType is set.
type ReportInput struct {
	Notebook  notebooksv1.Notebook `json:"notebook"`
	Delete    bool                 `json:"delete,omitempty"`
	EventType string               `json:"eventType,omitempty"`
	// EventKey makes the event id deterministic across retries.
	EventKey string            `json:"eventKey,omitempty"`
	Event    notebooksv1.Event `json:"event"`
}

// ReportResult is empty.
type ReportResult struct{}

// Report stores the record and publishes the event (id derived from EventKey, so a retry is a duplicate).
func (a *Activities) Report(ctx context.Context, in ReportInput) (ReportResult, error) {
	var err error
	if in.Delete {
		err = a.Store.Delete(in.Notebook.Metadata.Namespace, in.Notebook.Metadata.Name)
	} else {
		err = a.Store.Put(in.Notebook)
	}
	if err != nil {
		return ReportResult{}, err
	}
	if rec, ok := a.Servers.(Recorder); ok && in.EventType != "" {
		rec.Record(ctx, in.Notebook, in.EventType, in.Event)
	}
	if in.EventType == "" || a.Bus == nil {
		return ReportResult{}, nil
	}
	ev, err := events.New(Source, in.EventType, "notebooks/"+in.Notebook.Metadata.Namespace+"/"+in.Notebook.Metadata.Name, in.Event)
	if err != nil {
		return ReportResult{}, workflow.NonRetryable(workflow.ErrTypePermanent, err)
	}
	ev.SetID(uuid.NewSHA1(eventNamespace, []byte(in.EventKey)).String())
	return ReportResult{}, a.Bus.Publish(ctx, ev)
}

func (a *Activities) servers() Servers {
	if a.Servers != nil {
		return a.Servers
	}
	return Local{a.Spawner}
}

func tail(s string) string {
	const max = 1000
	if len(s) > max {
		return "…" + s[len(s)-max:]
	}
	return s
}
