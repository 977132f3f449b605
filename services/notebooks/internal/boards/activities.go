package boards

import (
	"context"
	"errors"
	"fmt"

	"github.com/sluice-ml/sluice/services/notebooks/api/notebooksv1"
)

// Activities are the lifecycle's side effects. Register them with worker.RegisterActivity.
type Activities struct {
	Store *Store
	Data  *Data
}

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

// Record keeps the stored record in step with the workflow; idempotent.
func (a *Activities) Record(_ context.Context, in RecordInput) error {
	md := in.Tensorboard.Metadata
	if in.Deleted {
		a.Data.Forget(md.Namespace, md.Name)
		return a.Store.Delete(md.Namespace, md.Name)
	}
	return a.Store.Put(in.Tensorboard)
}
