package lifecycle_test

import (
	"context"
	"encoding/json"
	"fmt"
	"io"
	"log/slog"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/google/uuid"
	"github.com/nats-io/nats.go"
	"github.com/stretchr/testify/require"
	"go.temporal.io/sdk/client"
	"go.temporal.io/sdk/worker"

	"github.com/sluice-ml/sluice/libs/artifacts"
	"github.com/sluice-ml/sluice/libs/devstack/devstacktest"
	"github.com/sluice-ml/sluice/libs/events"
	"github.com/sluice-ml/sluice/libs/runtime"
	"github.com/sluice-ml/sluice/libs/runtime/kube/kubetest"
	wf "github.com/sluice-ml/sluice/libs/workflow"
	"github.com/sluice-ml/sluice/services/training/api/jobspec"
	"github.com/sluice-ml/sluice/services/training/api/trainingv1"
	"github.com/sluice-ml/sluice/services/training/internal/clusterspec"
	"github.com/sluice-ml/sluice/services/training/internal/lifecycle"
)

func TestMain(m *testing.M) {
	code := devstacktest.Run(m)
	kubetest.Stop() // the API server of the Kubernetes tests, if one started
	os.Exit(code)
}

type env struct {
	t       *testing.T
	tc      client.Client
	store   *artifacts.Store
	bus     *events.Bus
	queue   string
	ns      string
	dir     string
	dataDir string

	mu     sync.Mutex
	events []events.Event

	// backoff and historyLimit go into every JobInput (tests restart in
	// milliseconds unless they set their own).
	backoff      trainingv1.Backoff
	historyLimit int
	// network and runtime (default: local) for container tests.
	network string
	runtime runtime.Runtime
	// clusterNS is JobInput.ClusterNamespace (Kubernetes tests).
	clusterNS string
}

var seq atomic.Int32

func newEnv(t *testing.T) *env {
	t.Helper()
	st := devstacktest.Stack(t)
	ctx := t.Context()
	bus, err := events.Connect(ctx, st.NATSURL, "lifecycle-test", nil)
	require.NoError(t, err)
	t.Cleanup(bus.Close)
	require.NoError(t, bus.EnsureStreams(ctx))
	tc, err := wf.Dial(ctx, wf.Config{HostPort: st.TemporalAddress, Namespace: st.Namespace}, nil)
	require.NoError(t, err)
	t.Cleanup(tc.Close)
	store, err := artifacts.New(artifacts.Config{Endpoint: st.S3Endpoint, AccessKey: st.S3AccessKey, SecretKey: st.S3SecretKey, Bucket: st.S3Bucket, Region: st.S3Region})
	require.NoError(t, err)
	n := seq.Add(1)
	e := &env{t: t, tc: tc, store: store, bus: bus, queue: fmt.Sprintf("training-test-%d-%s", n, uuid.NewString()[:8]),
		ns: fmt.Sprintf("t%d-%s", n, uuid.NewString()[:6]), dir: t.TempDir(), dataDir: t.TempDir(),
		backoff: trainingv1.Backoff{Initial: 20 * time.Millisecond, Max: 200 * time.Millisecond}}
	sub, err := bus.Conn().Subscribe("sluice.training.>", func(m *nats.Msg) {
		ev, err := events.Decode(context.Background(), m.Header, m.Data)
		if err != nil || !strings.HasPrefix(ev.Subject(), "jobs/"+e.ns+"/") {
			return
		}
		e.mu.Lock()
		e.events = append(e.events, ev)
		e.mu.Unlock()
	})
	require.NoError(t, err)
	t.Cleanup(func() { _ = sub.Unsubscribe() })
	return e
}

func (e *env) activities() *lifecycle.Activities {
	return &lifecycle.Activities{
		Runtime: e.runtimeOrLocal(), Store: e.store, Bus: e.bus, Temporal: e.tc,
		Log: slogDiscard(), Source: "/sluice/training-test", DataDir: e.dataDir, HeartbeatEvery: 200 * time.Millisecond,
	}
}

func (e *env) runtimeOrLocal() runtime.Runtime {
	if e.runtime != nil {
		return e.runtime
	}
	return runtime.NewLocal(runtime.LocalConfig{GracePeriod: time.Second})
}

// startWorker runs a worker on the test's queue; the returned func stops it
// (as the training service dying would).
func (e *env) startWorker() func() {
	e.t.Helper()
	w := worker.New(e.tc, e.queue, lifecycle.WorkerOptions(worker.Options{Identity: fmt.Sprintf("%s-%d", e.queue, seq.Add(1))}))
	lifecycle.Register(w, e.activities())
	require.NoError(e.t, w.Start())
	var once atomic.Bool
	stop := func() {
		if once.CompareAndSwap(false, true) {
			w.Stop()
		}
	}
	e.t.Cleanup(stop)
	return stop
}

// submit parses doc (a TFJob in YAML with {{ns}} and {{dir}} placeholders)
// and starts its lifecycle.
func (e *env) submit(doc string) (*trainingv1.Job, client.WorkflowRun) {
	e.t.Helper()
	doc = strings.NewReplacer("{{ns}}", e.ns, "{{dir}}", e.dir).Replace(doc)
	job, err := jobspec.Parse([]byte(doc))
	require.NoError(e.t, err)
	run, err := lifecycle.StartOn(e.t.Context(), e.tc, e.queue, trainingv1.JobInput{Job: *job, RequestID: uuid.NewString(), HeartbeatTimeout: 2 * time.Second,
		RestartBackoff: e.backoff, HistoryLimit: e.historyLimit, Network: e.network, ClusterNamespace: e.clusterNS})
	require.NoError(e.t, err)
	e.t.Cleanup(func() {
		_ = e.tc.SignalWorkflow(context.Background(), run.GetID(), run.GetRunID(), trainingv1.SignalDelete, nil)
	})
	return job, run
}

func (e *env) view(id string) trainingv1.JobView {
	e.t.Helper()
	v, err := lifecycle.Query(e.t.Context(), e.tc, id)
	require.NoError(e.t, err)
	return v
}

// waitFor polls the job until cond holds.
func (e *env) waitFor(id, what string, cond func(v trainingv1.JobView) bool) trainingv1.JobView {
	e.t.Helper()
	deadline := time.Now().Add(2 * time.Minute)
	var v trainingv1.JobView
	for time.Now().Before(deadline) {
		var err error
		v, err = lifecycle.Query(e.t.Context(), e.tc, id)
		if err == nil && cond(v) {
			return v
		}
		time.Sleep(25 * time.Millisecond)
	}
	b, _ := json.MarshalIndent(v, "", "  ")
	e.t.Fatalf("timed out waiting for %s; job:\n%s", what, b)
	return v
}

func stateIs(s trainingv1.JobConditionType) func(trainingv1.JobView) bool {
	return func(v trainingv1.JobView) bool { return v.State == s }
}

func replicaOf(v trainingv1.JobView, name string) trainingv1.ReplicaView {
	for _, r := range v.Replicas {
		if r.LogName() == name {
			return r
		}
	}
	return trainingv1.ReplicaView{}
}

func (e *env) eventTypes() []string {
	e.mu.Lock()
	defer e.mu.Unlock()
	var out []string
	for _, ev := range e.events {
		out = append(out, strings.TrimSuffix(strings.TrimPrefix(ev.Type(), "io.sluice.training."), ".v1"))
	}
	return out
}

func (e *env) waitEvent(typ string) events.Event {
	e.t.Helper()
	deadline := time.Now().Add(20 * time.Second)
	for time.Now().Before(deadline) {
		e.mu.Lock()
		for _, ev := range e.events {
			if ev.Type() == typ {
				e.mu.Unlock()
				return ev
			}
		}
		e.mu.Unlock()
		time.Sleep(20 * time.Millisecond)
	}
	e.t.Fatalf("no %s event; got %v", typ, e.eventTypes())
	return events.Event{}
}

func (e *env) readLog(ns, job, replica string, attempt int) string {
	e.t.Helper()
	v := e.view(trainingv1.WorkflowID(trainingv1.KindTFJob, ns, job))
	uid := string(v.Job.Meta().UID)
	require.NotEmpty(e.t, uid, "every job has a UID")
	rc, _, err := e.store.Get(e.t.Context(), lifecycle.LogKey(ns, "tfjob", job, uid, replica, attempt))
	require.NoError(e.t, err)
	defer rc.Close()
	b, err := io.ReadAll(rc)
	require.NoError(e.t, err)
	return string(b)
}

// replicaSpec renders one replica type running `sh -c script`.
func replicaSpec(rtype string, replicas int, policy, script string) string {
	return fmt.Sprintf(`    %s:
      replicas: %d
      restartPolicy: %s
      template:
        spec:
          containers:
            - name: tensorflow
              image: busybox
              command: [sh, -c, %q]
              env: [{name: DIR, value: "{{dir}}"}]
`, rtype, replicas, policy, script)
}

func tfjob(name, runPolicy string, specs ...string) string {
	return fmt.Sprintf(`apiVersion: kubeflow.org/v1
kind: TFJob
metadata: {name: %s, namespace: "{{ns}}"}
spec:
  runPolicy: {%s}
  tfReplicaSpecs:
%s`, name, runPolicy, strings.Join(specs, ""))
}

func TestDistributedTFConfigAndChiefSuccessWithLingeringPS(t *testing.T) {
	t.Parallel()
	e := newEnv(t)
	e.startWorker()
	job, run := e.submit(tfjob("dist", "cleanPodPolicy: Running",
		replicaSpec("Chief", 1, "Never", `echo "$TF_CONFIG"; while [ ! -f "$DIR/w0" ] || [ ! -f "$DIR/w1" ] || [ ! -f "$DIR/e0" ]; do sleep 0.02; done`),
		replicaSpec("PS", 1, "Never", `echo "$TF_CONFIG"; touch "$DIR/ps"; exec sleep 60`),
		replicaSpec("Worker", 2, "Never", `echo "$TF_CONFIG"; touch "$DIR/w$(echo "$TF_CONFIG" | sed 's/.*"index":\([0-9]*\).*/\1/')"`),
		replicaSpec("Evaluator", 1, "Never", `echo "$TF_CONFIG"; touch "$DIR/e0"`),
	))
	v := e.waitFor(run.GetID(), "Succeeded and PS terminated", func(v trainingv1.JobView) bool {
		return v.State == trainingv1.JobSucceeded && replicaOf(v, "ps-0").State == trainingv1.ReplicaTerminated
	})
	require.NoError(t, run.Get(t.Context(), nil), "workflow ends once the PS is cleaned up")
	require.Equal(t, trainingv1.ReplicaSucceeded, replicaOf(v, "chief-0").State)
	require.NotNil(t, v.Job.Status().CompletionTime)
	require.NotNil(t, v.Job.Status().StartTime)

	var cfg clusterspec.TFConfig
	require.NoError(t, json.Unmarshal([]byte(strings.TrimSpace(e.readLog(e.ns, "dist", "worker-1", 1))), &cfg))
	require.Equal(t, clusterspec.Task{Type: "worker", Index: 1}, cfg.Task)
	require.Equal(t, "cloud", cfg.Environment)
	require.Len(t, cfg.Cluster["worker"], 2)
	require.Len(t, cfg.Cluster["chief"], 1)
	require.Len(t, cfg.Cluster["ps"], 1)
	require.Len(t, cfg.Cluster["evaluator"], 1)
	require.Equal(t, replicaOf(v, "worker-1").Address, cfg.Cluster["worker"][1])
	require.True(t, strings.HasPrefix(cfg.Cluster["ps"][0], "127.0.0.1:"))
	var evalCfg clusterspec.TFConfig
	require.NoError(t, json.Unmarshal([]byte(strings.TrimSpace(e.readLog(e.ns, "dist", "evaluator-0", 1))), &evalCfg))
	require.Equal(t, clusterspec.Task{Type: "evaluator", Index: 0}, evalCfg.Task)
	_ = job

	e.waitEvent(events.TrainingJobSucceededV1)
	types := e.eventTypes()
	require.Equal(t, "job.created", types[0])
	require.Contains(t, types, "job.running")
}

func TestSingleReplicaHasNoTFConfig(t *testing.T) {
	t.Parallel()
	e := newEnv(t)
	e.startWorker()
	_, run := e.submit(tfjob("single", "", replicaSpec("Worker", 1, "Never", `echo "tf=[$TF_CONFIG]"`)))
	require.NoError(t, run.Get(t.Context(), nil))
	v := e.view(run.GetID())
	require.Equal(t, trainingv1.JobSucceeded, v.State)
	require.Equal(t, "tf=[]\n", e.readLog(e.ns, "single", "worker-0", 1))
}

func TestZeroPSReplicasAreNeverStarted(t *testing.T) {
	t.Parallel()
	e := newEnv(t)
	e.startWorker()
	_, run := e.submit(tfjob("nops", "",
		replicaSpec("Chief", 1, "Never", `echo "$TF_CONFIG"`),
		replicaSpec("PS", 0, "Never", `exit 9`),
		replicaSpec("Worker", 1, "Never", `true`),
	))
	require.NoError(t, run.Get(t.Context(), nil))
	v := e.view(run.GetID())
	require.Equal(t, trainingv1.JobSucceeded, v.State)
	for _, r := range v.Replicas {
		require.NotEqual(t, trainingv1.ReplicaTypePS, r.Type, "no PS replica exists")
	}
	var cfg clusterspec.TFConfig
	require.NoError(t, json.Unmarshal([]byte(e.readLog(e.ns, "nops", "chief-0", 1)), &cfg))
	require.Empty(t, cfg.Cluster["ps"])
}

func TestExitCodePolicy(t *testing.T) {
	t.Parallel()
	e := newEnv(t)
	e.startWorker()
	// First attempt dies by SIGKILL (137: retryable), the second exits 1 (permanent).
	_, run := e.submit(tfjob("exitcode", "", replicaSpec("Worker", 1, "ExitCode",
		`if [ ! -f "$DIR/once" ]; then touch "$DIR/once"; kill -9 $$; fi; exit 1`)))
	require.Error(t, run.Get(t.Context(), nil), "a failed job fails its workflow")
	v := e.view(run.GetID())
	require.Equal(t, trainingv1.JobFailed, v.State)
	w := replicaOf(v, "worker-0")
	require.Equal(t, int32(1), w.Restarts)
	require.Equal(t, 2, w.Attempt)
	require.Equal(t, int32(1), *w.ExitCode)
	c := v.Job.Status().Conditions[len(v.Job.Status().Conditions)-1]
	require.Equal(t, "TFJobFailed", c.Reason)
	require.Contains(t, c.Message, "exitcode-worker-0 exited with code 1")
	require.Equal(t, int32(1), v.Job.Status().ReplicaStatuses[trainingv1.ReplicaTypeWorker].Failed)
	e.waitEvent(events.TrainingJobFailedV1)
	require.Contains(t, e.eventTypes(), "job.restarting")
}

func TestRestartPolicies(t *testing.T) {
	t.Parallel()
	cases := map[string]struct {
		policy, runPolicy, script string
		want                      trainingv1.JobConditionType
		restarts                  int32
		message                   string
	}{
		"OnFailure restarts then succeeds": {policy: "OnFailure", script: `if [ ! -f "$DIR/once" ]; then touch "$DIR/once"; exit 3; fi`,
			want: trainingv1.JobSucceeded, restarts: 1},
		"Never fails on exit 2": {policy: "Never", script: `exit 2`, want: trainingv1.JobFailed, message: "exited with code 2"},
		"OnFailure exhausts backoffLimit": {policy: "OnFailure", runPolicy: "backoffLimit: 2", script: `exit 3`,
			want: trainingv1.JobFailed, restarts: 2, message: "reached the specified backoff limit"},
		"Always restarts a success": {policy: "Always", runPolicy: "backoffLimit: 1", script: `true`,
			want: trainingv1.JobFailed, restarts: 1, message: "reached the specified backoff limit"},
	}
	for name, tc := range cases {
		t.Run(name, func(t *testing.T) {
			t.Parallel()
			e := newEnv(t)
			e.startWorker()
			_, run := e.submit(tfjob("policy", tc.runPolicy, replicaSpec("Worker", 1, tc.policy, tc.script)))
			_ = run.Get(t.Context(), nil)
			v := e.view(run.GetID())
			require.Equal(t, tc.want, v.State)
			require.Equal(t, tc.restarts, replicaOf(v, "worker-0").Restarts)
			if tc.message != "" {
				c := v.Job.Status().Conditions[len(v.Job.Status().Conditions)-1]
				require.Contains(t, c.Message, tc.message)
			}
		})
	}
}

func TestActiveDeadline(t *testing.T) {
	t.Parallel()
	e := newEnv(t)
	e.startWorker()
	_, run := e.submit(tfjob("deadline", "activeDeadlineSeconds: 1, cleanPodPolicy: All", replicaSpec("Worker", 1, "Never", `exec sleep 60`)))
	require.Error(t, run.Get(t.Context(), nil))
	v := e.view(run.GetID())
	require.Equal(t, trainingv1.JobFailed, v.State)
	c := v.Job.Status().Conditions[len(v.Job.Status().Conditions)-1]
	require.Contains(t, c.Message, "active longer than specified deadline")
	require.Equal(t, trainingv1.ReplicaTerminated, replicaOf(v, "worker-0").State)
	took := v.Job.Status().CompletionTime.Sub(v.Job.Status().StartTime.Time)
	require.GreaterOrEqual(t, took, time.Second)
	require.Less(t, took, 5*time.Second)
}

func TestTTLDeletesFinishedJob(t *testing.T) {
	t.Parallel()
	e := newEnv(t)
	e.startWorker()
	_, run := e.submit(tfjob("ttl", "ttlSecondsAfterFinished: 1", replicaSpec("Worker", 1, "Never", `true`)))
	e.waitFor(run.GetID(), "Succeeded", stateIs(trainingv1.JobSucceeded))
	require.NoError(t, run.Get(t.Context(), nil))
	v := e.view(run.GetID())
	require.True(t, v.Deleted)
	ev := e.waitEvent(events.TrainingJobDeletedV1)
	require.Contains(t, string(ev.Data()), "ttlSecondsAfterFinished")
	desc, err := e.tc.DescribeWorkflowExecution(t.Context(), run.GetID(), run.GetRunID())
	require.NoError(t, err)
	require.Contains(t, desc.WorkflowExecutionInfo.Memo.Fields, trainingv1.MemoDeleted)
}

func TestCleanPodPolicy(t *testing.T) {
	t.Parallel()
	for _, policy := range []string{"None", "Running", "All"} {
		t.Run(policy, func(t *testing.T) {
			t.Parallel()
			e := newEnv(t)
			e.startWorker()
			_, run := e.submit(tfjob("clean", "cleanPodPolicy: "+policy,
				replicaSpec("Chief", 1, "Never", `while [ ! -f "$DIR/w" ]; do sleep 0.02; done`),
				replicaSpec("Worker", 1, "Never", `touch "$DIR/w"; exec sleep 60`),
			))
			v := e.waitFor(run.GetID(), "Succeeded", stateIs(trainingv1.JobSucceeded))
			if policy == "None" {
				// The worker keeps running until the job is deleted.
				require.Equal(t, trainingv1.ReplicaRunning, replicaOf(v, "worker-0").State)
				require.NoError(t, e.tc.SignalWorkflow(t.Context(), run.GetID(), "", trainingv1.SignalDelete, nil))
			}
			require.NoError(t, run.Get(t.Context(), nil))
			v = e.view(run.GetID())
			require.Equal(t, trainingv1.ReplicaTerminated, replicaOf(v, "worker-0").State)
			require.Equal(t, trainingv1.ReplicaSucceeded, replicaOf(v, "chief-0").State)
			require.Equal(t, policy == "None", v.Deleted)
		})
	}
}

func TestSuspendResume(t *testing.T) {
	t.Parallel()
	e := newEnv(t)
	e.startWorker()
	_, run := e.submit(tfjob("suspend", "", replicaSpec("Worker", 1, "Never",
		`echo started >> "$DIR/starts"; while [ ! -f "$DIR/go" ]; do sleep 0.02; done`)))
	e.waitFor(run.GetID(), "Running", stateIs(trainingv1.JobRunning))
	require.NoError(t, e.tc.SignalWorkflow(t.Context(), run.GetID(), "", trainingv1.SignalSuspend, nil))
	v := e.waitFor(run.GetID(), "Suspended with the worker terminated", func(v trainingv1.JobView) bool {
		return v.State == trainingv1.JobSuspended && replicaOf(v, "worker-0").State == trainingv1.ReplicaTerminated
	})
	require.Nil(t, v.Job.Status().StartTime, "suspend clears startTime")
	require.NoError(t, e.tc.SignalWorkflow(t.Context(), run.GetID(), "", trainingv1.SignalResume, nil))
	e.waitFor(run.GetID(), "worker running again", func(v trainingv1.JobView) bool {
		w := replicaOf(v, "worker-0")
		return w.Attempt == 2 && w.State == trainingv1.ReplicaRunning
	})
	require.NoError(t, os.WriteFile(filepath.Join(e.dir, "go"), nil, 0o644))
	require.NoError(t, run.Get(t.Context(), nil))
	v = e.view(run.GetID())
	require.Equal(t, trainingv1.JobSucceeded, v.State)
	starts, err := os.ReadFile(filepath.Join(e.dir, "starts"))
	require.NoError(t, err)
	require.Equal(t, "started\nstarted\n", string(starts))
	e.waitEvent(events.TrainingJobResumedV1)
	types := e.eventTypes()
	require.Contains(t, types, "job.suspended")
}

func TestCreatedSuspended(t *testing.T) {
	t.Parallel()
	e := newEnv(t)
	e.startWorker()
	_, run := e.submit(tfjob("presuspended", "suspend: true", replicaSpec("Worker", 1, "Never", `true`)))
	v := e.waitFor(run.GetID(), "Suspended", stateIs(trainingv1.JobSuspended))
	require.Equal(t, 0, replicaOf(v, "worker-0").Attempt, "nothing started while suspended")
	require.NoError(t, e.tc.SignalWorkflow(t.Context(), run.GetID(), "", trainingv1.SignalResume, nil))
	require.NoError(t, run.Get(t.Context(), nil))
	require.Equal(t, trainingv1.JobSucceeded, e.view(run.GetID()).State)
}

func TestWorkerKilledMidJobResumes(t *testing.T) {
	t.Parallel()
	e := newEnv(t)
	stop := e.startWorker()
	_, run := e.submit(tfjob("crash", "", replicaSpec("Worker", 1, "Never",
		`echo started >> "$DIR/starts"; while [ ! -f "$DIR/go" ]; do sleep 0.02; done`)))
	e.waitFor(run.GetID(), "Running", stateIs(trainingv1.JobRunning))
	stop() // the training service dies; its replica dies with it
	e.startWorker()
	v := e.waitFor(run.GetID(), "replica recreated", func(v trainingv1.JobView) bool {
		w := replicaOf(v, "worker-0")
		return w.Attempt == 2 && w.State == trainingv1.ReplicaRunning
	})
	require.Equal(t, int32(0), replicaOf(v, "worker-0").Restarts, "worker loss is not a policy restart")
	require.NoError(t, os.WriteFile(filepath.Join(e.dir, "go"), nil, 0o644))
	require.NoError(t, run.Get(t.Context(), nil))
	v = e.view(run.GetID())
	require.Equal(t, trainingv1.JobSucceeded, v.State)
	starts, err := os.ReadFile(filepath.Join(e.dir, "starts"))
	require.NoError(t, err)
	require.Equal(t, "started\nstarted\n", string(starts), "exactly one replacement process")
}

func slogDiscard() *slog.Logger { return slog.New(slog.DiscardHandler) }
