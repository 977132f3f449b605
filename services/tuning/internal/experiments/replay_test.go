package experiments_test

import (
	"log/slog"
	"path/filepath"
	"testing"

	"github.com/stretchr/testify/require"
	"go.temporal.io/sdk/worker"
	sdkworkflow "go.temporal.io/sdk/workflow"

	wf "github.com/sluice-ml/sluice/libs/workflow"
	"github.com/sluice-ml/sluice/services/tuning/api/tuningv1"
	"github.com/sluice-ml/sluice/services/tuning/internal/experiments"
)

// Every recorded history (testdata/histories, written by the app's end-to-end test with
// SLUICE_RECORD_HISTORIES=1: random and tpe experiments of six trials, each a first run that continued
// as new and a final run ended by delete) replays against the current workflow code.
func TestReplayRecordedHistories(t *testing.T) {
	files, err := filepath.Glob("testdata/histories/*.json")
	require.NoError(t, err)
	require.NotEmpty(t, files, "no recorded histories")
	for _, f := range files {
		t.Run(filepath.Base(f), func(t *testing.T) {
			r := worker.NewWorkflowReplayer()
			r.RegisterWorkflowWithOptions(experiments.Run, sdkworkflow.RegisterOptions{Name: tuningv1.WorkflowType})
			require.NoError(t, r.ReplayWorkflowHistoryFromJSONFile(wf.NewLogger(slog.New(slog.DiscardHandler)), f))
		})
	}
}
