package lifecycle_test

import (
	"context"
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/stretchr/testify/require"
	"go.temporal.io/sdk/client"
	"go.temporal.io/sdk/worker"
	"google.golang.org/grpc"

	"github.com/sluice-ml/sluice/libs/devstack/devstacktest"
	"github.com/sluice-ml/sluice/libs/workflow/hbfault"
	"github.com/sluice-ml/sluice/services/training/api/trainingv1"
	"github.com/sluice-ml/sluice/services/training/internal/lifecycle"
)

// startWorkerWithFaults is startWorker with the worker's own Temporal client, whose heartbeats h fails.
func (e *env) startWorkerWithFaults(h *hbfault.Faults) {
	e.t.Helper()
	st := devstacktest.Stack(e.t)
	wc, err := client.DialContext(e.t.Context(), client.Options{HostPort: st.TemporalAddress, Namespace: st.Namespace,
		ConnectionOptions: client.ConnectionOptions{DialOptions: []grpc.DialOption{h.DialOption()}}})
	require.NoError(e.t, err)
	e.t.Cleanup(wc.Close)
	w := worker.New(wc, e.queue, lifecycle.WorkerOptions(worker.Options{Identity: fmt.Sprintf("%s-%d", e.queue, seq.Add(1))}))
	lifecycle.Register(w, e.activities())
	require.NoError(e.t, w.Start())
	e.t.Cleanup(w.Stop)
}

// watcher is the activity ID and attempt of the job's pending replica watcher ("", 0 when none is pending).
func (e *env) watcher(id string) (string, int32) {
	d, err := e.tc.DescribeWorkflowExecution(e.t.Context(), id, "")
	if err != nil {
		return "", 0
	}
	for _, pa := range d.GetPendingActivities() {
		if pa.GetActivityType().GetName() == "WatchReplica" {
			return pa.GetActivityId(), pa.GetAttempt()
		}
	}
	return "", 0
}

// A heartbeat that fails makes the SDK cancel the watcher's context, but nobody stopped the replica: it runs
// on under the retried watcher, and the job succeeds on its first attempt. (The watcher used to kill it and
// report exit 137, reason Terminated, so a replica with restartPolicy Never failed its job on a loaded CI box.)
func TestAFailedHeartbeatDoesNotStopTheReplica(t *testing.T) {
	t.Parallel()
	e := newEnv(t)
	var h hbfault.Faults
	e.startWorkerWithFaults(&h)
	_, run := e.submit(tfjob("hb", "", replicaSpec("Worker", 1, "Never",
		`echo "started $$"; while [ ! -f "$DIR/go" ]; do sleep 0.05; done; echo "done $$"`)))
	e.waitFor(run.GetID(), "Running", stateIs(trainingv1.JobRunning))

	h.Fail(1)
	v := e.waitFor(run.GetID(), "the watcher retried, or the job ended", func(v trainingv1.JobView) bool {
		_, attempt := e.watcher(run.GetID())
		return h.Failed() == 1 && (attempt >= 2 || v.State == trainingv1.JobFailed || v.State == trainingv1.JobSucceeded)
	})
	require.Equal(t, trainingv1.JobRunning, v.State, "the failed heartbeat ended the job: %+v", replicaOf(v, "worker-0"))

	require.NoError(t, os.WriteFile(filepath.Join(e.dir, "go"), nil, 0o644))
	require.NoError(t, run.Get(t.Context(), nil))
	v = e.view(run.GetID())
	require.Equal(t, trainingv1.JobSucceeded, v.State)
	w := replicaOf(v, "worker-0")
	require.Equal(t, trainingv1.ReplicaSucceeded, w.State)
	require.Equal(t, 1, w.Attempt, "the replica was not restarted")
	require.Zero(t, w.Restarts)
	log := e.readLog(e.ns, "hb", "worker-0", 1)
	require.Equal(t, 1, strings.Count(log, "started "), log)
	pid := strings.TrimSpace(strings.TrimPrefix(strings.SplitN(log, "\n", 2)[0], "started "))
	require.Contains(t, log, "done "+pid, "the first process ran to its end")
}

// A watcher that keeps losing contact with Temporal runs out of attempts; the workflow then watches the
// replica again (versionRewatch), and the new watcher adopts the process: the job still succeeds on the
// replica's first attempt. (It used to fail the job with reason WatchFailed.)
func TestAWatcherOutOfAttemptsIsReplacedAndAdoptsTheReplica(t *testing.T) {
	t.Parallel()
	e := newEnv(t)
	var h hbfault.Faults
	e.startWorkerWithFaults(&h)
	_, run := rewatchScenario(t, e, &h)
	require.NoError(t, run.Get(t.Context(), nil))
	v := e.view(run.GetID())
	require.Equal(t, trainingv1.JobSucceeded, v.State)
	w := replicaOf(v, "worker-0")
	require.Equal(t, trainingv1.ReplicaSucceeded, w.State)
	require.Equal(t, 1, w.Attempt, "the replica was not restarted")
	log := e.readLog(e.ns, "rewatch", "worker-0", 1)
	require.Equal(t, 1, strings.Count(log, "started "), log)
	pid := strings.TrimSpace(strings.TrimPrefix(strings.SplitN(log, "\n", 2)[0], "started "))
	require.Contains(t, log, "done "+pid, "the first process ran to its end")
}

// rewatchScenario runs a job whose watcher fails every heartbeat of its 5 attempts (wf.LongActivity's
// MaximumAttempts), then lets the replica finish; it returns once the job ended.
func rewatchScenario(t *testing.T, e *env, h *hbfault.Faults) (*trainingv1.Job, client.WorkflowRun) {
	t.Helper()
	job, run := e.submit(tfjob("rewatch", "", replicaSpec("Worker", 1, "Never",
		`echo "started $$"; while [ ! -f "$DIR/go" ]; do sleep 0.05; done; echo "done $$"`)))
	id := run.GetID()
	e.waitFor(id, "Running", stateIs(trainingv1.JobRunning))
	var first string
	e.waitFor(id, "a watcher", func(trainingv1.JobView) bool { first, _ = e.watcher(id); return first != "" })
	h.Fail(5)
	// The first watcher's attempts are spent (a heartbeat failing on its own on a busy machine spends one
	// more); another watcher activity follows the replica.
	e.waitFor(id, "a new watcher, or the job's end", func(v trainingv1.JobView) bool {
		cur, _ := e.watcher(id)
		return (h.Failed() == 5 && cur != "" && cur != first) || v.State == trainingv1.JobFailed
	})
	require.NoError(t, os.WriteFile(filepath.Join(e.dir, "go"), nil, 0o644))
	ctx, cancel := context.WithTimeout(t.Context(), 2*time.Minute)
	defer cancel()
	_ = run.Get(ctx, nil)
	return job, run
}
