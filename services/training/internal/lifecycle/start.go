package lifecycle

import (
	"context"
	"errors"
	"fmt"
	"time"

	"go.temporal.io/api/enums/v1"
	"go.temporal.io/api/serviceerror"
	"go.temporal.io/sdk/client"
	"go.temporal.io/sdk/worker"
	"go.temporal.io/sdk/workflow"

	wf "github.com/sluice-ml/sluice/libs/workflow"
	"github.com/sluice-ml/sluice/services/training/api/trainingv1"
)

// WorkerOptions are the training worker's options: base with the
// heartbeat throttle capped at 500 ms, so a replica stop (cleanPodPolicy,
// suspend, delete) reaches its watcher within about half a second rather
// than 80% of the heartbeat timeout.
func WorkerOptions(base worker.Options) worker.Options {
	base.MaxHeartbeatThrottleInterval = 500 * time.Millisecond
	base.DefaultHeartbeatThrottleInterval = 500 * time.Millisecond
	return base
}

// Register adds JobWorkflow and the activities to a worker on trainingv1.TaskQueue.
func Register(w worker.Worker, a *Activities) {
	w.RegisterWorkflowWithOptions(JobWorkflow, workflow.RegisterOptions{Name: trainingv1.WorkflowType})
	w.RegisterActivity(a)
}

// ErrJobExists reports a job whose workflow is already running.
var ErrJobExists = errors.New("lifecycle: job already exists")

// Start starts the lifecycle of in.Job with workflow ID
// trainingv1.WorkflowID(kind, ns, name). While a workflow with that ID runs, a
// second Start fails with ErrJobExists (and never starts a second job); a
// closed one (deleted, or finished) may be followed by a new run.
func Start(ctx context.Context, c client.Client, in trainingv1.JobInput) (client.WorkflowRun, error) {
	return StartOn(ctx, c, trainingv1.TaskQueue, in)
}

// StartOn is Start on another task queue (tests run one worker per queue).
func StartOn(ctx context.Context, c client.Client, queue string, in trainingv1.JobInput) (client.WorkflowRun, error) {
	meta := in.Job.Meta()
	id := trainingv1.WorkflowID(in.Job.Kind(), meta.Namespace, meta.Name)
	opts := client.StartWorkflowOptions{
		ID:                       id,
		TaskQueue:                queue,
		WorkflowIDReusePolicy:    enums.WORKFLOW_ID_REUSE_POLICY_ALLOW_DUPLICATE,
		WorkflowIDConflictPolicy: enums.WORKFLOW_ID_CONFLICT_POLICY_FAIL,
		Memo: map[string]any{trainingv1.MemoRequestID: in.RequestID, trainingv1.MemoKind: in.Job.Kind(),
			trainingv1.MemoDeleted: false},
		// What the Temporal Web UI shows and filters by (visibility.go).
		StaticSummary:         jobSummary(&in.Job),
		StaticDetails:         jobDetails(&in.Job),
		TypedSearchAttributes: jobAttributes(&in.Job, wf.Owner(ctx)),
	}
	run, err := c.ExecuteWorkflow(ctx, opts, trainingv1.WorkflowType, in)
	var started *serviceerror.WorkflowExecutionAlreadyStarted
	if errors.As(err, &started) {
		return c.GetWorkflow(ctx, id, ""), fmt.Errorf("%w: %s", ErrJobExists, in.Job.Key())
	}
	return run, err
}

// Query returns the live view of the job with workflow ID id.
func Query(ctx context.Context, c client.Client, id string) (trainingv1.JobView, error) {
	var v trainingv1.JobView
	val, err := c.QueryWorkflow(ctx, id, "", trainingv1.QueryJob)
	if err != nil {
		return v, err
	}
	return v, val.Get(&v)
}
