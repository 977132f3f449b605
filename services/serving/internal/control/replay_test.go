package control_test

import (
	"path/filepath"
	"testing"

	"go.temporal.io/sdk/worker"
	"go.temporal.io/sdk/workflow"

	"github.com/sluice-ml/sluice/libs/workflow/replaytest"
	"github.com/sluice-ml/sluice/services/serving/api/servingv1"
	"github.com/sluice-ml/sluice/services/serving/internal/control"
)

// TestReplayRecordedHistories replays the deployment workflow histories recorded from real runs
// (testdata/histories, written by the app tests with SLUICE_SERVING_RECORD_HISTORIES=1): a change
// to the workflow that would make running deployments non-deterministic fails here.
func TestReplayRecordedHistories(t *testing.T) {
	replaytest.Replay(t, filepath.Join("testdata", "histories"), func(r worker.WorkflowReplayer) {
		r.RegisterWorkflowWithOptions(control.DeploymentWorkflow, workflow.RegisterOptions{Name: servingv1.WorkflowType})
	})
}
