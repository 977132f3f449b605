package boards

import (
	"context"
	"errors"
	"fmt"

	"github.com/google/uuid"
	"go.temporal.io/sdk/activity"

	"github.com/sluice-ml/sluice/libs/events"
	wf "github.com/sluice-ml/sluice/libs/workflow"

	"github.com/sluice-ml/sluice/services/notebooks/api/notebooksv1"
)

// Activities are the lifecycle's side effects. Register them with worker.RegisterActivity.
type Activities struct {
	Store *Store
	Data  *Data
	// Bus receives io.sluice.notebook.tensorboard.{created,deleted}.v1; nil publishes nothing.
	Bus *events.Bus
}

// Source is the CloudEvents source of Tensorboard events (the notebooks service).
const Source = "/sluice/notebooks"

// eventNamespace seeds the deterministic CE ids of Tensorboard events.
var eventNamespace = uuid.MustParse("0f8b3a56-5d1e-4a53-9c2e-7a61e4b0d2c7")

// ProbeInput names the board whose logs path to probe.
type ProbeInput struct {
	Tensorboard notebooksv1.Tensorboard `json:"tensorboard"`
}

// ProbeResult is empty when the logs path can be listed; otherwise Message says why not.
type ProbeResult struct {
	Message string `json:"message,omitempty"`
	// Files is how many event files were found (none is fine: the trainer may not have started).
	Files int `json:"files"`
}

// Probe lists the board's logs path once. A path that cannot be listed (missing bucket, no access) is a
// result, not an error: the board is still created, in ReplicaFailure.
func (a *Activities) Probe(ctx context.Context, in ProbeInput) (ProbeResult, error) {
	ctx, cancel := context.WithTimeout(ctx, probeTimeout)
	defer cancel()
	src, err := a.Data.Source(in.Tensorboard)
	if err != nil {
		return ProbeResult{Message: err.Error()}, nil
	}
	files, err := src.Files(ctx)
	if err != nil {
		if errors.Is(err, context.Canceled) {
			return ProbeResult{}, err
		}
		return ProbeResult{Message: fmt.Sprintf("cannot list %s: %v", src.Location(), err)}, nil
	}
	return ProbeResult{Files: len(files)}, nil
}

// RecordInput writes (or, Deleted, removes) a board's record.
type RecordInput struct {
	Tensorboard notebooksv1.Tensorboard `json:"tensorboard"`
	Deleted     bool                    `json:"deleted,omitempty"`
}

// Record keeps the stored record in step with the workflow and publishes the matching event, with a CE id
// derived from the workflow run, so a retried Record is deduplicated by the stream; idempotent.
func (a *Activities) Record(ctx context.Context, in RecordInput) error {
	md := in.Tensorboard.Metadata
	typ := events.TensorboardCreatedV1
	if in.Deleted {
		typ = events.TensorboardDeletedV1
		a.Data.Forget(md.Namespace, md.Name)
		if err := a.Store.Delete(md.Namespace, md.Name); err != nil {
			return err
		}
	} else if err := a.Store.Put(in.Tensorboard); err != nil {
		return err
	}
	if a.Bus == nil {
		return nil
	}
	ev, err := events.New(Source, typ, "tensorboards/"+md.Namespace+"/"+md.Name, in.Tensorboard)
	if err != nil {
		return wf.NonRetryable(wf.ErrTypePermanent, err)
	}
	ev.SetID(uuid.NewSHA1(eventNamespace, []byte(activity.GetInfo(ctx).WorkflowExecution.RunID+"/"+typ)).String())
	return a.Bus.Publish(ctx, ev)
}
