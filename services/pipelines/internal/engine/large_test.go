package engine_test

import (
	"context"
	"testing"

	"github.com/stretchr/testify/require"
	enumspb "go.temporal.io/api/enums/v1"

	"github.com/sluice-ml/sluice/services/pipelines/api/pipelinesv1"
	"github.com/sluice-ml/sluice/services/pipelines/internal/engine"
	"github.com/sluice-ml/sluice/services/pipelines/internal/engine/enginetest"
)

// TestLargeDAGRunsStepsFused runs a DAG of more than 500 tasks (versionLargeDAG): its ready container
// steps share RunSteps activities, outputs still flow between them, a failed step still fails the run
// and skips its downstream, and the run's history stays far below Temporal's 4,096-event suggestion.
func TestLargeDAGRunsStepsFused(t *testing.T) {
	e := newEnv(t)
	e.startWorker(t)
	spec := layeredSpec(5, 101) + `    producer:
      image: alpine
      command: [sh, -c, 'printf hi > "$0"']
      args: ["{{outputs.out}}"]
      outputs: {parameters: [out]}
    consumer:
      image: alpine
      command: [sh, -c, 'printf "%s-x" "$0" > "$1"']
      args: ["{{inputs.in}}", "{{outputs.out}}"]
      inputs: {in: {fromTask: producer.out}}
      outputs: {parameters: [out]}
    bad:
      image: alpine
      command: [sh, -c, 'exit 3']
      dependsOn: [l4-s100]
    after-bad:
      image: alpine
      command: ["true"]
      dependsOn: [bad]
`
	id, run := e.start(t, spec, nil)
	_, err := e.wait(t, run)
	require.Error(t, err)
	rs, err := engine.State(t.Context(), e.tc, id)
	require.NoError(t, err)
	require.Equal(t, pipelinesv1.RunFailed, rs.State)
	st := e.state(t, id)
	require.Len(t, st, 5*101+4)
	for name, ts := range st {
		switch name {
		case "bad":
			require.Equal(t, pipelinesv1.TaskFailed, ts.State)
		case "after-bad":
			require.NotEqual(t, pipelinesv1.TaskSucceeded, ts.State, "downstream of a failed step must not run")
		default:
			require.Equal(t, pipelinesv1.TaskSucceeded, ts.State, name)
			require.Equal(t, 1, ts.Attempts, name)
		}
	}
	require.Equal(t, "hi-x", st["consumer"].Outputs.Parameters["out"])

	events, steps := 0, 0
	it := e.tc.GetWorkflowHistory(context.Background(), id, "", false, enumspb.HISTORY_EVENT_FILTER_TYPE_ALL_EVENT)
	for it.HasNext() {
		ev, err := it.Next()
		require.NoError(t, err)
		events++
		if a := ev.GetActivityTaskScheduledEventAttributes(); a != nil && a.GetActivityType().GetName() == "RunSteps" {
			steps++
		}
	}
	require.Positive(t, steps, "ready steps share RunSteps activities")
	require.Less(t, events, 1000, "509 tasks in %d history events", events)
	enginetest.RecordHistory(t, e.tc, id, "large-dag")
}
