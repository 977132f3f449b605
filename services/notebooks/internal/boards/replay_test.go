package boards_test

import (
	"log/slog"
	"path/filepath"
	"testing"

	"github.com/stretchr/testify/require"
	"go.temporal.io/sdk/worker"
	sdkworkflow "go.temporal.io/sdk/workflow"

	wf "github.com/sluice-ml/sluice/libs/workflow"
	"github.com/sluice-ml/sluice/services/notebooks/api/notebooksv1"
	"github.com/sluice-ml/sluice/services/notebooks/internal/boards"
)

// Every recorded history (testdata/histories, written by the app tests with SLUICE_RECORD_HISTORIES=1)
// must replay against the current workflow code without non-determinism.
func TestReplayRecordedHistories(t *testing.T) {
	files, err := filepath.Glob("testdata/histories/*.json")
	require.NoError(t, err)
	require.NotEmpty(t, files, "no recorded histories")
	for _, f := range files {
		t.Run(filepath.Base(f), func(t *testing.T) {
			r := worker.NewWorkflowReplayer()
			r.RegisterWorkflowWithOptions(boards.Lifecycle, sdkworkflow.RegisterOptions{Name: notebooksv1.TensorboardWorkflowType})
			require.NoError(t, r.ReplayWorkflowHistoryFromJSONFile(wf.NewLogger(slog.New(slog.DiscardHandler)), f))
		})
	}
}
