package engine_test

import (
	"log/slog"
	"os"
	"path/filepath"
	"testing"

	"github.com/stretchr/testify/require"
	"go.temporal.io/sdk/client"
	"go.temporal.io/sdk/converter"
	"go.temporal.io/sdk/log"
	"go.temporal.io/sdk/worker"
	"go.temporal.io/sdk/workflow"

	"github.com/sluice-ml/sluice/services/pipelines/api/pipelinesv1"
	"github.com/sluice-ml/sluice/services/pipelines/internal/engine"
	"github.com/sluice-ml/sluice/services/pipelines/internal/engine/enginetest"
)

// TestReplayRecordedHistories replays every recorded history of the run and DAG workflows (written by
// the tests that call enginetest.RecordHistory, with SLUICE_RECORD_HISTORIES=1) against today's code, so
// a change of command order without workflow.GetVersion fails here.
func TestReplayRecordedHistories(t *testing.T) {
	files, err := filepath.Glob(filepath.Join(enginetest.HistoriesDir(), "*.json"))
	require.NoError(t, err)
	require.NotEmpty(t, files, "no recorded histories")
	for _, f := range files {
		t.Run(filepath.Base(f), func(t *testing.T) {
			r := worker.NewWorkflowReplayer()
			r.RegisterWorkflowWithOptions(engine.RunWorkflow, workflow.RegisterOptions{Name: pipelinesv1.WorkflowType})
			r.RegisterWorkflowWithOptions(engine.DAGWorkflow, workflow.RegisterOptions{Name: engine.DAGWorkflowType})
			fh, err := os.Open(f)
			require.NoError(t, err)
			defer fh.Close()
			h, err := client.HistoryFromJSON(fh, client.HistoryJSONOptions{})
			require.NoError(t, err)
			// The run workflow compares its input's run id with its workflow ID (scheduled runs differ):
			// replay under the original ID, which for a run is the run id of its input.
			var opts worker.ReplayWorkflowHistoryOptions
			if a := h.Events[0].GetWorkflowExecutionStartedEventAttributes(); a.GetWorkflowType().GetName() == pipelinesv1.WorkflowType {
				var in pipelinesv1.RunInput
				require.NoError(t, converter.GetDefaultDataConverter().FromPayload(a.GetInput().GetPayloads()[0], &in))
				opts.OriginalExecution = workflow.Execution{ID: in.RunID, RunID: a.GetOriginalExecutionRunId()}
			}
			require.NoError(t, r.ReplayWorkflowHistoryWithOptions(log.NewStructuredLogger(slog.New(slog.DiscardHandler)), h, opts))
		})
	}
}
