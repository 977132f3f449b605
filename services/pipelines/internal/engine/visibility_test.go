package engine_test

import (
	"slices"
	"strings"
	"testing"

	"github.com/stretchr/testify/require"
	enums "go.temporal.io/api/enums/v1"
	"go.temporal.io/sdk/converter"

	"github.com/sluice-ml/sluice/services/pipelines/api/pipelinesv1"
	"github.com/sluice-ml/sluice/services/pipelines/internal/engine/enginetest"
)

const failingLoop = `
apiVersion: sluice.io/v1
kind: Pipeline
metadata: {name: failing-loop}
spec:
  tasks:
    ok:
      image: alpine
      command: [sh, -c, 'echo ok']
    sq:
      forEach: {items: [1, 2, 3], as: n, type: NUMBER_INTEGER}
      image: alpine
      command: [sh, -c, 'test "$0" != 2']
      args: ["{{inputs.n}}"]
      retry: {maxRetries: 1, backoff: 1s}
      dependsOn: [ok]
`

// TestSearchAttributesFollowTheRun: a run starts with its kind, pipeline and run name as search
// attributes and phase RUNNING (upserted at once here: engine.Start without RunInput.PipelineName, as a
// schedule's start, sets none of the pipeline's); a failed loop iteration and its loop task are upserted into
// SluiceFailedTasks and the final phase into SluicePhase (GetVersion "ui-search-attributes"). Records
// the ui-search-attributes history for the replay test.
func TestSearchAttributesFollowTheRun(t *testing.T) {
	e := newEnv(t)
	e.startWorker(t)
	id, run := e.start(t, failingLoop, nil)
	_, err := e.wait(t, run)
	require.Error(t, err, "the run fails with its iteration")

	desc, err := e.tc.DescribeWorkflowExecution(t.Context(), id, "")
	require.NoError(t, err)
	attrs := map[string]any{}
	for k, p := range desc.GetWorkflowExecutionInfo().GetSearchAttributes().GetIndexedFields() {
		var v any
		require.NoError(t, converter.GetDefaultDataConverter().FromPayload(p, &v))
		attrs[k] = v
	}
	require.Equal(t, "PipelineRun", attrs["SluiceKind"])
	require.Equal(t, "failing-loop", attrs["SluicePipeline"])
	require.Equal(t, t.Name(), attrs["SluiceRunName"])
	require.Equal(t, "default", attrs["SluiceNamespace"])
	require.Equal(t, pipelinesv1.RunFailed, attrs["SluicePhase"])
	require.ElementsMatch(t, []any{"sq/1", "sq"}, attrs["SluiceFailedTasks"], "iteration sq/1 (item 2) and its loop task failed")

	// The upserts are in the run's history (one per failed task path, one for the phase).
	upserts := 0
	it := e.tc.GetWorkflowHistory(t.Context(), id, "", false, enums.HISTORY_EVENT_FILTER_TYPE_ALL_EVENT)
	var sums []string
	for it.HasNext() {
		ev, err := it.Next()
		require.NoError(t, err)
		if a := ev.GetUpsertWorkflowSearchAttributesEventAttributes(); a != nil { // GetVersion upserts TemporalChangeVersion too
			for k := range a.GetSearchAttributes().GetIndexedFields() {
				if strings.HasPrefix(k, "Sluice") {
					upserts++
					break
				}
			}
		}
		if s := ev.GetUserMetadata().GetSummary(); s != nil {
			var v string
			require.NoError(t, converter.GetDefaultDataConverter().FromPayload(s, &v))
			sums = append(sums, v)
		}
	}
	require.Equal(t, 4, upserts, "the start without a pipeline name, two failed task paths, the phase")
	require.True(t, slices.Contains(sums, "step ok (attempt 1)"), "summaries: %q", sums)
	require.True(t, slices.Contains(sums, "loop sq batch 1/1"), "summaries: %q", sums)
	enginetest.RecordHistory(t, e.tc, id, "ui-search-attributes")
}
