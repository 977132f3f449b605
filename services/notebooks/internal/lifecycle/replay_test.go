package lifecycle_test

import (
	"path/filepath"
	"testing"

	"go.temporal.io/sdk/worker"
	sdkworkflow "go.temporal.io/sdk/workflow"

	"github.com/sluice-ml/sluice/libs/workflow/replaytest"
	"github.com/sluice-ml/sluice/services/notebooks/api/notebooksv1"
	"github.com/sluice-ml/sluice/services/notebooks/internal/lifecycle"
)

// Every recorded history (testdata/histories, written by the app tests with SLUICE_RECORD_HISTORIES=1:
// create/stop/start/delete, culling then start and delete, crash loop then delete, and on Kubernetes
// (TestNotebookOnKubernetes: create, cull, start, delete)) must replay against
// the current workflow code without non-determinism.
func TestReplayRecordedHistories(t *testing.T) {
	replaytest.Replay(t, filepath.Join("testdata", "histories"), func(r worker.WorkflowReplayer) {
		r.RegisterWorkflowWithOptions(lifecycle.Lifecycle, sdkworkflow.RegisterOptions{Name: notebooksv1.WorkflowType})
	})
}
