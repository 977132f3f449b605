package experiments_test

import (
	"path/filepath"
	"testing"

	"go.temporal.io/sdk/worker"
	sdkworkflow "go.temporal.io/sdk/workflow"

	"github.com/sluice-ml/sluice/libs/workflow/replaytest"
	"github.com/sluice-ml/sluice/services/tuning/api/tuningv1"
	"github.com/sluice-ml/sluice/services/tuning/internal/experiments"
)

// Every recorded history (testdata/histories, written by the app's end-to-end test with
// SLUICE_RECORD_HISTORIES=1: random and tpe experiments of six trials, each a first run that continued
// as new and a final run ended by delete) replays against the current workflow code: v0-* from before
// trial jobs were requested by event, v1-* with the trial-jobs-by-event version marker, v2-* also with
// the ui-search-attributes marker and SluicePhase upserts.
func TestReplayRecordedHistories(t *testing.T) {
	replaytest.Replay(t, filepath.Join("testdata", "histories"), func(r worker.WorkflowReplayer) {
		r.RegisterWorkflowWithOptions(experiments.Run, sdkworkflow.RegisterOptions{Name: tuningv1.WorkflowType})
	})
}
