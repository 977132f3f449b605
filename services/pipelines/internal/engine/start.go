package engine

import (
	"context"
	"errors"
	"fmt"
	"strings"
	"time"

	"go.temporal.io/api/enums/v1"
	"go.temporal.io/api/serviceerror"
	"go.temporal.io/sdk/client"
	"go.temporal.io/sdk/temporal"
	"go.temporal.io/sdk/worker"
	"go.temporal.io/sdk/workflow"

	wf "github.com/sluice-ml/sluice/libs/workflow"
	"github.com/sluice-ml/sluice/services/pipelines/api/pipelinesv1"
)

// Register adds the run and DAG workflows and the activities to a worker on pipelinesv1.TaskQueue.
func Register(w worker.Worker, a *Activities) {
	w.RegisterWorkflowWithOptions(RunWorkflow, workflow.RegisterOptions{Name: pipelinesv1.WorkflowType})
	w.RegisterWorkflowWithOptions(DAGWorkflow, workflow.RegisterOptions{Name: DAGWorkflowType})
	w.RegisterActivity(a)
}

// WorkerOptions adapts base for the engine's worker: heartbeats of running steps go out at least every
// half second, so a cancel reaches a running step's process within about a second (the SDK otherwise
// throttles heartbeats to 80% of the heartbeat timeout, 8 s here).
func WorkerOptions(base worker.Options) worker.Options {
	base.MaxHeartbeatThrottleInterval = 500 * time.Millisecond
	base.DefaultHeartbeatThrottleInterval = 500 * time.Millisecond
	return base
}

// ErrRunExists reports a run id that was already used (Start is idempotent: it returns the existing run).
var ErrRunExists = errors.New("engine: run already exists")

// Start starts the run workflow with workflow ID = in.RunID. Starting the same run id twice never starts
// a second run: the second call returns the first run and ErrRunExists wrapped with it.
func Start(ctx context.Context, c client.Client, in pipelinesv1.RunInput) (client.WorkflowRun, error) {
	opts := client.StartWorkflowOptions{
		ID:                       in.RunID,
		TaskQueue:                pipelinesv1.TaskQueue,
		WorkflowIDReusePolicy:    enums.WORKFLOW_ID_REUSE_POLICY_REJECT_DUPLICATE,
		WorkflowIDConflictPolicy: enums.WORKFLOW_ID_CONFLICT_POLICY_FAIL,
		// Without this the SDK silently returns the existing run and callers cannot tell a re-submission.
		WorkflowExecutionErrorWhenAlreadyStarted: true,
		Memo: map[string]any{"run_name": in.RunName, "pipeline_name": in.PipelineName, "experiment_id": in.ExperimentID,
			"namespace": in.Namespace},
		// What the Temporal Web UI shows and filters by (visibility.go).
		StaticSummary:         runSummary(in),
		StaticDetails:         runDetails(in),
		TypedSearchAttributes: temporal.NewSearchAttributes(runAttributes(in, wf.Owner(ctx))...),
	}
	run, err := c.ExecuteWorkflow(ctx, opts, pipelinesv1.WorkflowType, in)
	var started *serviceerror.WorkflowExecutionAlreadyStarted
	if errors.As(err, &started) {
		return c.GetWorkflow(ctx, in.RunID, ""), fmt.Errorf("%w: %s", ErrRunExists, in.RunID)
	}
	return run, err
}

// State queries a run's live state (works for finished runs too, from their history). Tasks of nested
// DAGs and loops that are still running live in child workflows; State follows them so the result lists
// every task known so far.
func State(ctx context.Context, c client.Client, runID string) (pipelinesv1.RunState, error) {
	st, err := queryState(ctx, c, runID)
	if err != nil {
		return st, err
	}
	seen := map[string]bool{}
	for _, t := range st.Tasks {
		seen[t.Path] = true
	}
	for i := 0; i < len(st.Tasks); i++ { // st.Tasks grows as children are merged
		t := st.Tasks[i]
		if t.State != pipelinesv1.TaskRunning || t.Extra["child_workflows"] == "" {
			continue
		}
		for _, id := range strings.Split(t.Extra["child_workflows"], ",") {
			child, err := queryState(ctx, c, id)
			if err != nil {
				continue // not started yet, or already closed and merged
			}
			for _, ct := range child.Tasks {
				if !seen[ct.Path] {
					seen[ct.Path] = true
					st.Tasks = append(st.Tasks, ct)
				}
			}
		}
	}
	return st, nil
}

func queryState(ctx context.Context, c client.Client, id string) (pipelinesv1.RunState, error) {
	var st pipelinesv1.RunState
	v, err := c.QueryWorkflow(ctx, id, "", pipelinesv1.QueryState)
	if err != nil {
		return st, err
	}
	return st, v.Get(&st)
}
