package engine_test

import (
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
	"github.com/sluice-ml/sluice/services/pipelines/api/pipelinesv1"
	"github.com/sluice-ml/sluice/services/pipelines/internal/engine"
)

// startWorkerWithFaults is startWorker with the worker's own Temporal client, whose heartbeats h fails.
func (e *env) startWorkerWithFaults(t *testing.T, h *hbfault.Faults) {
	t.Helper()
	st := devstacktest.Stack(t)
	wc, err := client.DialContext(t.Context(), client.Options{HostPort: st.TemporalAddress, Namespace: st.Namespace,
		ConnectionOptions: client.ConnectionOptions{DialOptions: []grpc.DialOption{h.DialOption()}}})
	require.NoError(t, err)
	t.Cleanup(wc.Close)
	w := worker.New(wc, pipelinesv1.TaskQueue, engine.WorkerOptions(worker.Options{Identity: fmt.Sprintf("test-worker-%d", workerSeq.Add(1))}))
	engine.Register(w, e.acts)
	require.NoError(t, w.Start())
	t.Cleanup(w.Stop)
}

const waitForGo = `
apiVersion: sluice.io/v1
kind: Pipeline
metadata: {name: heartbeat-fails}
spec:
  inputs:
    dir: {type: STRING}
  tasks:
    wait:
      image: alpine
      command: [sh, -c, 'echo started >> "$0/starts"; while [ ! -f "$0/go" ]; do sleep 0.05; done; printf done > "$1"']
      args: ["{{inputs.dir}}", "{{outputs.out}}"]
      inputs: {dir: {fromInput: dir}}
      outputs: {parameters: [out]}
`

// startWaitingStep runs waitForGo on a worker whose heartbeats h can fail; starts counts the step's
// process starts (it waits for dir/go).
func startWaitingStep(t *testing.T) (e *env, h *hbfault.Faults, dir, id string, run client.WorkflowRun, starts func() int) {
	e = newEnv(t)
	h = new(hbfault.Faults)
	e.startWorkerWithFaults(t, h)
	dir = t.TempDir()
	id, run = e.start(t, waitForGo, map[string]any{"dir": dir})
	starts = func() int {
		b, _ := os.ReadFile(filepath.Join(dir, "starts"))
		return strings.Count(string(b), "started")
	}
	return e, h, dir, id, run, starts
}

// A heartbeat that fails makes the SDK cancel the step's activity context, but nobody cancelled the
// step: its process runs on to its end under the same activity attempt, and the task succeeds on its
// first attempt. (The step used to be killed and run again by the retried activity; a task without
// retries whose activity ran out of attempts failed the run.)
func TestAFailedHeartbeatDoesNotKillTheStep(t *testing.T) {
	e, h, dir, id, run, starts := startWaitingStep(t)
	require.Eventually(t, func() bool { return starts() == 1 }, time.Minute, 20*time.Millisecond, "the step runs")
	require.Eventually(t, func() bool { return h.Sent() > 0 }, time.Minute, 20*time.Millisecond, "the step heartbeats")

	failHeartbeat(t, h, starts)
	require.NoError(t, os.WriteFile(filepath.Join(dir, "go"), nil, 0o644))

	res, err := e.wait(t, run)
	require.NoError(t, err)
	require.Equal(t, "done", res.Tasks["wait"].Parameters["out"])
	require.Equal(t, 1, starts(), "the step ran once")
	ts := e.state(t, id)["wait"]
	require.Equal(t, pipelinesv1.TaskSucceeded, ts.State)
	require.Equal(t, 1, ts.Attempts)
	hist := e.tc.GetWorkflowHistory(t.Context(), id, "", false, 0)
	for hist.HasNext() {
		ev, err := hist.Next()
		require.NoError(t, err)
		if a := ev.GetActivityTaskStartedEventAttributes(); a != nil {
			require.EqualValues(t, 1, a.GetAttempt(), "the step's activity was not retried")
		}
	}
}

// failHeartbeat fails the step's next heartbeat and waits for a few more after it (the step lives on), or
// for the step to start again.
func failHeartbeat(t *testing.T, h *hbfault.Faults, starts func() int) {
	t.Helper()
	failed := h.Failed()
	h.Fail(1)
	sent := 0
	require.Eventually(t, func() bool {
		if h.Failed() == failed+1 && sent == 0 {
			sent = h.Sent()
		}
		return sent > 0 && h.Sent() >= sent+3 || starts() > 1
	}, time.Minute, 20*time.Millisecond, "heartbeats after the failed one")
}

// After a failed heartbeat the step runs on, and cancelling the run still kills it (the step would wait
// for its go file forever).
func TestARunCancelledAfterAFailedHeartbeatKillsTheStep(t *testing.T) {
	e, h, _, id, run, starts := startWaitingStep(t)
	require.Eventually(t, func() bool { return starts() == 1 && h.Sent() > 0 }, time.Minute, 20*time.Millisecond, "the step runs and heartbeats")
	failHeartbeat(t, h, starts)
	require.Equal(t, 1, starts())

	require.NoError(t, e.tc.CancelWorkflow(t.Context(), id, ""))
	_, err := e.wait(t, run)
	require.Error(t, err)
	require.Equal(t, pipelinesv1.TaskCancelled, e.state(t, id)["wait"].State)
	require.Equal(t, 1, starts())
}
