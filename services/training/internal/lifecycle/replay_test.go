package lifecycle_test

import (
	"context"
	"os"
	"path/filepath"
	"testing"
	"time"

	"github.com/stretchr/testify/require"
	"go.temporal.io/api/enums/v1"
	historypb "go.temporal.io/api/history/v1"
	"go.temporal.io/api/temporalproto"
	"go.temporal.io/sdk/worker"
	"go.temporal.io/sdk/workflow"

	"github.com/sluice-ml/sluice/libs/workflow/hbfault"
	"github.com/sluice-ml/sluice/libs/workflow/replaytest"
	"github.com/sluice-ml/sluice/services/training/api/trainingv1"
	"github.com/sluice-ml/sluice/services/training/internal/lifecycle"
)

// TestReplayRecordedHistories replays every history in
// testdata/histories against the current JobWorkflow: v0-*.json were
// recorded before restart backoff (workflow.GetVersion "restart-backoff"
// absent), v1-*.json with it, v2-*.json with "adopt-running-replicas"
// (kind-qualified workflow IDs; continue-as-new while replicas run), v3-*.json
// with "ui-search-attributes" (SluicePhase upserts), v4-*.json with "rewatch-after-lost-contact" (a
// replica watched again once its watcher ran out of attempts). A change to the workflow's commands that is
// not guarded by GetVersion fails here with a non-determinism error.
func TestReplayRecordedHistories(t *testing.T) {
	t.Parallel()
	replaytest.Replay(t, filepath.Join("testdata", "histories"), func(r worker.WorkflowReplayer) {
		r.RegisterWorkflowWithOptions(lifecycle.JobWorkflow, workflow.RegisterOptions{Name: trainingv1.WorkflowType})
	})
}

// TestRecordHistories records the histories TestReplayRecordedHistories
// replays, when SLUICE_RECORD_HISTORIES names the output file prefix
// (e.g. testdata/histories/v1): a restart followed by success, suspend and
// resume, deletion of a running job, and a restart loop that continues as
// new.
func TestRecordHistories(t *testing.T) {
	prefix := os.Getenv("SLUICE_RECORD_HISTORIES")
	if prefix == "" {
		t.Skip("set SLUICE_RECORD_HISTORIES=testdata/histories/<version> to record")
	}
	e := newEnv(t)
	e.startWorker()
	save := func(name, id, runID string) {
		t.Helper()
		var hist historypb.History
		it := e.tc.GetWorkflowHistory(t.Context(), id, runID, false, enums.HISTORY_EVENT_FILTER_TYPE_ALL_EVENT)
		for it.HasNext() {
			ev, err := it.Next()
			require.NoError(t, err)
			hist.Events = append(hist.Events, ev)
		}
		b, err := temporalproto.CustomJSONMarshalOptions{Indent: "  "}.Marshal(&hist)
		require.NoError(t, err)
		require.NoError(t, os.WriteFile(prefix+"-"+name+".json", b, 0o644))
	}
	wait := func(id string) {
		ctx, cancel := context.WithTimeout(t.Context(), 2*time.Minute)
		defer cancel()
		_ = e.tc.GetWorkflow(ctx, id, "").Get(ctx, nil)
	}

	_, run := e.submit(tfjob("restart", "", replicaSpec("Worker", 1, "OnFailure", `if [ ! -f "$DIR/once" ]; then touch "$DIR/once"; exit 3; fi`)))
	wait(run.GetID())
	save("restart-then-success", run.GetID(), run.GetRunID())

	_, run = e.submit(tfjob("susp", "", replicaSpec("Worker", 1, "Never", `sleep 2`)))
	e.waitFor(run.GetID(), "running", stateIs(trainingv1.JobRunning))
	require.NoError(t, e.tc.SignalWorkflow(t.Context(), run.GetID(), "", trainingv1.SignalSuspend, nil))
	e.waitFor(run.GetID(), "suspended", stateIs(trainingv1.JobSuspended))
	require.NoError(t, e.tc.SignalWorkflow(t.Context(), run.GetID(), "", trainingv1.SignalResume, nil))
	wait(run.GetID())
	save("suspend-resume", run.GetID(), run.GetRunID())

	_, run = e.submit(tfjob("del", "", replicaSpec("PS", 1, "Never", `sleep 300`), replicaSpec("Worker", 1, "Never", `sleep 300`)))
	e.waitFor(run.GetID(), "running", stateIs(trainingv1.JobRunning))
	require.NoError(t, e.tc.SignalWorkflow(t.Context(), run.GetID(), "", trainingv1.SignalDelete, nil))
	wait(run.GetID())
	save("delete-running", run.GetID(), run.GetRunID())

	_, run = e.submit(tfjob("loop", "", replicaSpec("Worker", 1, "OnFailure", `exit 1`)))
	e.waitFor(run.GetID(), "a few restarts", func(v trainingv1.JobView) bool { return replicaOf(v, "worker-0").Attempt >= 4 })
	require.NoError(t, e.tc.SignalWorkflow(t.Context(), run.GetID(), "", trainingv1.SignalDelete, nil))
	wait(run.GetID())
	save("restart-loop", run.GetID(), run.GetRunID())

	// Version 1 only: a restart loop that continues as new (both runs).
	e.historyLimit = 100
	_, run = e.submit(tfjob("can", "", replicaSpec("Worker", 1, "OnFailure", `exit 1`)))
	var next string
	for deadline := time.Now().Add(2 * time.Minute); next == ""; time.Sleep(50 * time.Millisecond) {
		require.True(t, time.Now().Before(deadline), "no continue-as-new")
		d, err := e.tc.DescribeWorkflowExecution(t.Context(), run.GetID(), "")
		require.NoError(t, err)
		if id := d.WorkflowExecutionInfo.Execution.RunId; id != run.GetRunID() {
			next = id
		}
	}
	e.waitFor(run.GetID(), "restarted in the next run", func(v trainingv1.JobView) bool { return replicaOf(v, "worker-0").Restarts >= 2 })
	require.NoError(t, e.tc.SignalWorkflow(t.Context(), run.GetID(), next, trainingv1.SignalDelete, nil))
	wait(run.GetID())
	save("continue-as-new-first", run.GetID(), run.GetRunID())
	save("continue-as-new-next", run.GetID(), next)

	// Version 2 ("adopt-running-replicas") only: a run continues as new
	// while its PS runs, and the next run adopts the PS.
	e.historyLimit = 60
	_, run = e.submit(tfjob("adopt", "", replicaSpec("PS", 1, "Never", `exec sleep 300`), replicaSpec("Worker", 1, "OnFailure", `exit 1`)))
	next = ""
	for deadline := time.Now().Add(2 * time.Minute); next == ""; time.Sleep(50 * time.Millisecond) {
		require.True(t, time.Now().Before(deadline), "no continue-as-new")
		d, err := e.tc.DescribeWorkflowExecution(t.Context(), run.GetID(), "")
		require.NoError(t, err)
		if id := d.WorkflowExecutionInfo.Execution.RunId; id != run.GetRunID() {
			next = id
		}
	}
	e.waitFor(run.GetID(), "PS adopted in the next run", func(v trainingv1.JobView) bool {
		return replicaOf(v, "ps-0").State == trainingv1.ReplicaRunning && replicaOf(v, "ps-0").Attempt == 1
	})
	require.NoError(t, e.tc.SignalWorkflow(t.Context(), run.GetID(), next, trainingv1.SignalDelete, nil))
	wait(run.GetID())
	save("adopt-running-first", run.GetID(), run.GetRunID())
	save("adopt-running-next", run.GetID(), next)

	// Version 4 ("rewatch-after-lost-contact") only: every heartbeat of the watcher's 5 attempts fails, and
	// a second watcher adopts the replica.
	fe := newEnv(t)
	var h hbfault.Faults
	fe.startWorkerWithFaults(&h)
	_, run = rewatchScenario(t, fe, &h)
	save("rewatch-after-lost-contact", run.GetID(), run.GetRunID())
}
