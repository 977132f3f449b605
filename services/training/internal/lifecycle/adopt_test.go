package lifecycle_test

import (
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/stretchr/testify/require"
	"go.temporal.io/api/enums/v1"
	"go.temporal.io/sdk/client"

	"github.com/sluice-ml/sluice/services/training/api/trainingv1"
)

// runChain follows a workflow's runs from its first through
// continue-as-new and returns their run ids.
func runChain(t *testing.T, tc client.Client, id, first string) []string {
	t.Helper()
	runs := []string{first}
	for {
		it := tc.GetWorkflowHistory(t.Context(), id, runs[len(runs)-1], false, enums.HISTORY_EVENT_FILTER_TYPE_CLOSE_EVENT)
		next := ""
		for it.HasNext() {
			ev, err := it.Next()
			require.NoError(t, err)
			if a := ev.GetWorkflowExecutionContinuedAsNewEventAttributes(); a != nil {
				next = a.GetNewExecutionRunId()
			}
		}
		if next == "" {
			return runs
		}
		runs = append(runs, next)
	}
}

// A replica that runs for a long time does not block continue-as-new:
// with a small history limit and a worker crash-looping beside a PS that
// runs throughout, the workflow continues as new again and again while the
// PS keeps running (one process, one attempt, never Lost: each run's
// watcher adopts it), and the job then completes as usual.
func TestLongRunningReplicaDoesNotBlockContinueAsNew(t *testing.T) {
	t.Parallel()
	e := newEnv(t)
	e.historyLimit = 60
	e.startWorker()
	_, run := e.submit(tfjob("longps", "cleanPodPolicy: Running",
		replicaSpec("PS", 1, "Never", `echo $$ >> "$DIR/ps.pids"; exec sleep 600`),
		replicaSpec("Worker", 1, "OnFailure", `[ -f "$DIR/go" ] || exit 1`),
	))
	id := run.GetID()
	pids := func() []string {
		b, _ := os.ReadFile(filepath.Join(e.dir, "ps.pids"))
		return strings.Fields(string(b))
	}
	var seen map[string]bool
	for deadline := time.Now().Add(3 * time.Minute); ; time.Sleep(100 * time.Millisecond) {
		require.True(t, time.Now().Before(deadline), "the workflow did not continue as new twice while the PS ran")
		d, err := e.tc.DescribeWorkflowExecution(t.Context(), id, "")
		require.NoError(t, err)
		if seen == nil {
			seen = map[string]bool{}
		}
		seen[d.WorkflowExecutionInfo.Execution.RunId] = true
		if len(seen) >= 3 {
			break
		}
	}
	v := e.waitFor(id, "the PS followed by the latest run", func(v trainingv1.JobView) bool {
		return replicaOf(v, "ps-0").State == trainingv1.ReplicaRunning
	})
	require.Equal(t, 1, replicaOf(v, "ps-0").Attempt, "the PS was never restarted")
	require.Len(t, pids(), 1, "one PS process")
	pid, err := strconv.Atoi(pids()[0])
	require.NoError(t, err)
	require.NoError(t, syscall.Kill(pid, 0), "the PS process still runs after two continue-as-new")
	require.Greater(t, replicaOf(v, "worker-0").Restarts, int32(2))

	require.NoError(t, os.WriteFile(filepath.Join(e.dir, "go"), nil, 0o644))
	v = e.waitFor(id, "Succeeded and PS terminated", func(v trainingv1.JobView) bool {
		return v.State == trainingv1.JobSucceeded && replicaOf(v, "ps-0").State == trainingv1.ReplicaTerminated
	})
	require.Equal(t, 1, replicaOf(v, "ps-0").Attempt)
	require.Equal(t, trainingv1.ReplicaSucceeded, replicaOf(v, "worker-0").State)
	require.Len(t, pids(), 1, "the PS was never started again")
	for deadline := time.Now().Add(30 * time.Second); syscall.Kill(pid, 0) == nil; time.Sleep(50 * time.Millisecond) {
		require.True(t, time.Now().Before(deadline), "cleanPodPolicy Running stops the adopted PS")
	}
	runs := runChain(t, e.tc, id, run.GetRunID())
	require.GreaterOrEqual(t, len(runs), 3, "continued as new at least twice")
	require.NoError(t, e.tc.GetWorkflow(t.Context(), id, "").Get(t.Context(), nil))
	for _, r := range runs {
		hist := e.tc.GetWorkflowHistory(t.Context(), id, r, false, enums.HISTORY_EVENT_FILTER_TYPE_ALL_EVENT)
		n := 0
		for hist.HasNext() {
			_, err := hist.Next()
			require.NoError(t, err)
			n++
		}
		require.Less(t, n, 60+80, "run %s history stays bounded", r)
	}
}
