package lifecycle_test

import (
	"context"
	"strings"
	"testing"
	"time"

	"github.com/stretchr/testify/require"
	"go.temporal.io/api/enums/v1"

	"github.com/sluice-ml/sluice/services/training/api/trainingv1"
)

// timerDurations lists the StartToFireTimeout of every timer started in
// the run's history.
func (e *env) timerDurations(id, runID string) []time.Duration {
	e.t.Helper()
	var out []time.Duration
	it := e.tc.GetWorkflowHistory(e.t.Context(), id, runID, false, enums.HISTORY_EVENT_FILTER_TYPE_ALL_EVENT)
	for it.HasNext() {
		ev, err := it.Next()
		require.NoError(e.t, err)
		if a := ev.GetTimerStartedEventAttributes(); a != nil {
			out = append(out, a.GetStartToFireTimeout().AsDuration())
		}
	}
	return out
}

// Case crashloop-no-backoff: an OnFailure replica exiting 1 is restarted
// after kubelet-style exponential delays (Initial doubling up to Max), and
// the job keeps restarting with no hidden limit.
func TestCrashLoopBacksOffExponentially(t *testing.T) {
	t.Parallel()
	e := newEnv(t)
	e.backoff = trainingv1.Backoff{Initial: 100 * time.Millisecond, Max: 800 * time.Millisecond}
	e.startWorker()
	_, run := e.submit(`apiVersion: kubeflow.org/v1
kind: PyTorchJob
metadata: {name: lc-m, namespace: "{{ns}}"}
spec:
  pytorchReplicaSpecs:
    Master:
      replicas: 1
      restartPolicy: OnFailure
      template: {spec: {containers: [{name: pytorch, image: x/y:1, command: [sh, -c, 'echo crash; exit 1']}]}}
`)
	v := e.waitFor(run.GetID(), "6 attempts", func(v trainingv1.JobView) bool { return replicaOf(v, "master-0").Attempt >= 6 })
	require.NotEqual(t, trainingv1.JobFailed, v.State, "no implicit restart limit")
	got := e.timerDurations(run.GetID(), run.GetRunID())
	require.GreaterOrEqual(t, len(got), 5)
	want := []time.Duration{100 * time.Millisecond, 200 * time.Millisecond, 400 * time.Millisecond, 800 * time.Millisecond, 800 * time.Millisecond}
	require.Equal(t, want, got[:5], "CrashLoopBackOff delays")
	m := replicaOf(v, "master-0")
	require.GreaterOrEqual(t, m.Restarts, int32(5))
	require.NotNil(t, m.ExitCode)
	require.Equal(t, int32(1), *m.ExitCode)
}

// A restart loop longer than the history limit continues as new, keeping
// the job's state (attempts, restarts, conditions), instead of failing.
func TestLongRestartLoopContinuesAsNew(t *testing.T) {
	t.Parallel()
	e := newEnv(t)
	e.backoff = trainingv1.Backoff{Initial: 5 * time.Millisecond, Max: 10 * time.Millisecond}
	e.historyLimit = 120
	e.startWorker()
	_, run := e.submit(tfjob("loop", "", replicaSpec("Worker", 1, "OnFailure", `exit 7`)))
	var v trainingv1.JobView
	for deadline := time.Now().Add(2 * time.Minute); ; time.Sleep(50 * time.Millisecond) {
		require.True(t, time.Now().Before(deadline), "the run never continued as new")
		d, err := e.tc.DescribeWorkflowExecution(t.Context(), run.GetID(), "")
		require.NoError(t, err)
		if d.WorkflowExecutionInfo.Execution.RunId != run.GetRunID() {
			v = e.view(run.GetID())
			if replicaOf(v, "worker-0").Attempt > 0 {
				break
			}
		}
	}
	w := replicaOf(v, "worker-0")
	require.Greater(t, w.Attempt, 3, "attempts carried over")
	// The loop goes on in the continued runs.
	v = e.waitFor(run.GetID(), "more attempts", func(v trainingv1.JobView) bool { return replicaOf(v, "worker-0").Attempt >= w.Attempt+8 })
	w = replicaOf(v, "worker-0")
	// Every exit was a policy restart: restarts is attempts-1 (running) or
	// attempts (waiting in backoff), across runs.
	require.Contains(t, []int32{int32(w.Attempt - 1), int32(w.Attempt)}, v.Restarts)
	require.NotEqual(t, trainingv1.JobFailed, v.State)
	_, hasCreated := conditionOf(v, trainingv1.JobCreated)
	require.True(t, hasCreated, "conditions carried over")
	// The continued run still obeys signals.
	require.NoError(t, e.tc.SignalWorkflow(t.Context(), run.GetID(), "", trainingv1.SignalDelete, nil))
	wctx, cancel := context.WithTimeout(t.Context(), time.Minute)
	defer cancel()
	require.NoError(t, e.tc.GetWorkflow(wctx, run.GetID(), "").Get(wctx, nil))
}

func conditionOf(v trainingv1.JobView, c trainingv1.JobConditionType) (string, bool) {
	for _, cond := range v.Job.Status().Conditions {
		if cond.Type == c {
			return cond.Message, true
		}
	}
	return "", false
}

// A replica that cannot start (its executable is missing) fails the job
// with that reason instead of being restarted, and the Failed condition
// names the replica, the exit code and the reason.
func TestStartFailureFailsWithReason(t *testing.T) {
	t.Parallel()
	e := newEnv(t)
	e.startWorker()
	_, run := e.submit(`apiVersion: kubeflow.org/v1
kind: TFJob
metadata: {name: nostart, namespace: "{{ns}}"}
spec:
  tfReplicaSpecs:
    Worker:
      replicas: 1
      restartPolicy: OnFailure
      template: {spec: {containers: [{name: tensorflow, image: x/y:1, command: [/no/such/program]}]}}
`)
	_ = run.Get(t.Context(), nil)
	v := e.view(run.GetID())
	require.Equal(t, trainingv1.JobFailed, v.State)
	w := replicaOf(v, "worker-0")
	require.Equal(t, 1, w.Attempt, "not restarted")
	msg, _ := conditionOf(v, trainingv1.JobFailed)
	for _, part := range []string{"nostart-worker-0", "code 127", "StartError"} {
		require.Contains(t, msg, part)
	}
}

// A replica failing for good names its exit code and reason in Failed.
func TestFailedConditionNamesReplicaCodeAndReason(t *testing.T) {
	t.Parallel()
	e := newEnv(t)
	e.startWorker()
	_, run := e.submit(tfjob("exit3", "", replicaSpec("Worker", 1, "Never", `exit 3`)))
	_ = run.Get(t.Context(), nil)
	msg, ok := conditionOf(e.view(run.GetID()), trainingv1.JobFailed)
	require.True(t, ok)
	require.True(t, strings.Contains(msg, "exit3-worker-0") && strings.Contains(msg, "code 3") && strings.Contains(msg, "reason Error"), msg)
}

// Case pt-elastic-success-any-worker: an elastic PyTorchJob succeeds when
// worker-0 succeeds while worker-1 still runs; cleanPodPolicy Running stops
// worker-1.
func TestElasticPyTorchJobSucceedsOnAnyWorker(t *testing.T) {
	t.Parallel()
	e := newEnv(t)
	e.startWorker()
	_, run := e.submit(`apiVersion: kubeflow.org/v1
kind: PyTorchJob
metadata: {name: lc-l3, namespace: "{{ns}}"}
spec:
  runPolicy: {cleanPodPolicy: Running}
  elasticPolicy: {minReplicas: 1, maxReplicas: 2, rdzvBackend: c10d}
  pytorchReplicaSpecs:
    Worker:
      replicas: 2
      template: {spec: {containers: [{name: pytorch, image: x/y:1, command: [sh, -c, 'case "$PWD" in *worker-0) sleep 1; exit 0;; *) exec sleep 300;; esac']}]}}
`)
	wctx, cancel := context.WithTimeout(t.Context(), time.Minute)
	defer cancel()
	require.NoError(t, run.Get(wctx, nil))
	v := e.view(run.GetID())
	require.Equal(t, trainingv1.JobSucceeded, v.State)
	require.Equal(t, trainingv1.ReplicaSucceeded, replicaOf(v, "worker-0").State)
	require.Equal(t, trainingv1.ReplicaTerminated, replicaOf(v, "worker-1").State, "stopped by cleanPodPolicy, not waited for")
}
