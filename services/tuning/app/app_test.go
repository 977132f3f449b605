package app_test

import (
	"context"
	"encoding/json"
	"fmt"
	"io"
	"log/slog"
	"math"
	"net/http"
	"net/http/httptest"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/google/uuid"
	"github.com/stretchr/testify/require"
	enumspb "go.temporal.io/api/enums/v1"
	historypb "go.temporal.io/api/history/v1"
	"go.temporal.io/api/workflowservice/v1"
	"go.temporal.io/sdk/converter"
	"google.golang.org/protobuf/encoding/protojson"

	"github.com/sluice-ml/sluice/libs/artifacts"
	"github.com/sluice-ml/sluice/libs/devstack/devstacktest"
	"github.com/sluice-ml/sluice/libs/events"
	"github.com/sluice-ml/sluice/libs/platform"
	wf "github.com/sluice-ml/sluice/libs/workflow"
	"github.com/sluice-ml/sluice/services/training/api/trainingv1"
	trainingapp "github.com/sluice-ml/sluice/services/training/app"
	"github.com/sluice-ml/sluice/services/tuning/api/tuningv1"
	"github.com/sluice-ml/sluice/services/tuning/app"
	"github.com/sluice-ml/sluice/services/tuning/internal/collect"
	"github.com/sluice-ml/sluice/services/tuning/internal/experiments"
)

func TestMain(m *testing.M) { os.Exit(devstacktest.Run(m)) }

type env struct {
	t        testing.TB
	srv      *httptest.Server
	deps     *platform.Deps
	ns       string
	training *trainingapp.App
}

// newEnv runs the training service and the tuning service (each on its own task queue) against the
// embedded dev stack; the tuning service requests its trials' jobs by event and reads them over REST.
func newEnv(t *testing.T) *env { return newEnvWith(t, nil) }

// newEnvWith passes extra variables to the services (e.g. SLUICE_TRAINING_BIN_DIR).
func newEnvWith(t testing.TB, vars map[string]string) *env { return newEnvConfig(t, vars, nil) }

// newEnvConfig lets the caller adjust the tuning service's configuration (after the tests' short poll
// interval and trials per run are set).
func newEnvConfig(t testing.TB, vars map[string]string, adjust func(*app.Config)) *env {
	return newEnvDeps(t, vars, adjust, nil)
}

// newEnvDeps also lets the caller give the tuning service other dependencies than the training
// service's (e.g. its own Temporal client).
func newEnvDeps(t testing.TB, vars map[string]string, adjust func(*app.Config), tuningDeps func(platform.Deps) *platform.Deps) *env {
	st := devstacktest.Stack(t)
	ctx := t.Context()
	bus, err := events.Connect(ctx, st.NATSURL, "tuning-app-test", nil)
	require.NoError(t, err)
	t.Cleanup(bus.Close)
	require.NoError(t, bus.EnsureStreams(ctx))
	tc, err := wf.Dial(ctx, wf.Config{HostPort: st.TemporalAddress, Namespace: st.Namespace}, nil)
	require.NoError(t, err)
	t.Cleanup(tc.Close)
	store, err := artifacts.New(artifacts.Config{Endpoint: st.S3Endpoint, AccessKey: st.S3AccessKey, SecretKey: st.S3SecretKey, Bucket: st.S3Bucket, Region: st.S3Region})
	require.NoError(t, err)
	deps := &platform.Deps{Log: slog.New(slog.DiscardHandler), Bus: bus, Temporal: tc, Namespace: st.Namespace, Artifacts: store,
		DataDir: t.TempDir(), RuntimeKind: "local", Getenv: func(k string) string {
			if k == "PATH" {
				return os.Getenv("PATH")
			}
			return vars[k]
		}}
	id := uuid.NewString()[:8]
	tcfg, err := trainingapp.ConfigFromEnv(deps.Getenv)
	require.NoError(t, err)
	tcfg.TaskQueue = "training-tuning-test-" + id
	tcfg.HeartbeatTimeout = 5 * time.Second
	training, err := trainingapp.New(tcfg, deps)
	require.NoError(t, err)
	require.NoError(t, training.Start(ctx))
	t.Cleanup(func() { _ = training.Close() })
	mux := http.NewServeMux()
	training.Routes(mux)
	srv := httptest.NewServer(mux)
	t.Cleanup(srv.Close)

	cfg, err := app.ConfigFromEnv(func(k string) string {
		if k == "SLUICE_TUNING_TRAINING_URL" {
			return srv.URL
		}
		return ""
	})
	require.NoError(t, err)
	cfg.TaskQueue = "tuning-test-" + id
	cfg.PollInterval = 100 * time.Millisecond
	cfg.TrialsPerRun = 4 // six or more trials continue as new at least once
	if adjust != nil {
		adjust(&cfg)
	}
	sdeps := deps
	if tuningDeps != nil {
		sdeps = tuningDeps(*deps)
	}
	svc := app.New(cfg, sdeps)
	require.NoError(t, svc.Start(ctx))
	t.Cleanup(func() { _ = svc.Close() })
	svc.Routes(mux)
	return &env{t: t, srv: srv, deps: deps, ns: "t" + id, training: training}
}

func (e *env) do(method, path, body string, out any) (int, string) {
	e.t.Helper()
	req, err := http.NewRequestWithContext(e.t.Context(), method, e.srv.URL+path, strings.NewReader(body))
	require.NoError(e.t, err)
	req.Header.Set("Content-Type", "application/yaml")
	resp, err := http.DefaultClient.Do(req)
	require.NoError(e.t, err)
	defer resp.Body.Close()
	b, _ := io.ReadAll(resp.Body)
	if out != nil && resp.StatusCode/100 == 2 {
		require.NoError(e.t, json.Unmarshal(b, out), string(b))
	}
	return resp.StatusCode, string(b)
}

func (e *env) experiments() string { return "/apis/tuning/v1/namespaces/" + e.ns + "/experiments" }

// buildTrainer compiles testdata/trainer into a temporary directory.
func buildTrainer(t testing.TB) string {
	bin := filepath.Join(t.TempDir(), "trainer")
	cmd := exec.Command("go", "build", "-o", bin, "./testdata/trainer")
	cmd.Env = append(os.Environ(), "CGO_ENABLED=0")
	out, err := cmd.CombinedOutput()
	require.NoError(t, err, string(out))
	return bin
}

func experiment(name, algorithm, settings, trainer string, maxTrials int) string {
	return fmt.Sprintf(`apiVersion: kubeflow.org/v1beta1
kind: Experiment
metadata:
  name: %s
spec:
  objective:
    type: minimize
    objectiveMetricName: loss
    additionalMetricNames: [accuracy]
  algorithm:
    algorithmName: %s
%s
  parallelTrialCount: 2
  maxTrialCount: %d
  maxFailedTrialCount: 2
  parameters:
    - name: lr
      parameterType: double
      feasibleSpace: {min: "0.0001", max: "1", distribution: logUniform}
    - name: optimizer
      parameterType: categorical
      feasibleSpace:
        list: [sgd, adam]
  trialTemplate:
    primaryContainerName: tensorflow
    trialParameters:
      - name: learningRate
        description: Learning rate for the training model
        reference: lr
      - name: optimizer
        reference: optimizer
    trialSpec:
      apiVersion: kubeflow.org/v1
      kind: TFJob
      spec:
        tfReplicaSpecs:
          Worker:
            replicas: 1
            restartPolicy: Never
            template:
              spec:
                containers:
                  - name: tensorflow
                    image: example.org/trainer:latest
                    command:
                      - %q
                      - "--lr=${trialParameters.learningRate}"
                      - "--optimizer=${trialParameters.optimizer}"
`, name, algorithm, settings, maxTrials, trainer)
}

func cond(cs []tuningv1.Condition, typ string) tuningv1.Condition {
	for _, c := range cs {
		if c.Type == typ {
			return c
		}
	}
	return tuningv1.Condition{}
}

// A real experiment end to end: every trial is a TFJob of the training service whose Worker runs the
// test trainer; metrics come from its log through the StdOut collector. Random and TPE each run their
// trials two at a time, end with ExperimentMaxTrialsReached, and report the best observed trial as
// currentOptimalTrial.
func TestExperimentEndToEnd(t *testing.T) {
	e := newEnv(t)
	trainer := buildTrainer(t)
	for _, c := range []struct{ algo, settings string }{
		{"random", "    algorithmSettings: [{name: random_state, value: \"7\"}]"},
		{"tpe", "    algorithmSettings: [{name: n_startup_trials, value: \"3\"}, {name: random_state, value: \"5\"}]"},
	} {
		t.Run(c.algo, func(t *testing.T) {
			name := c.algo + "-lr"
			var created tuningv1.Experiment
			code, body := e.do(http.MethodPost, e.experiments(), experiment(name, c.algo, c.settings, trainer, 6), &created)
			require.Equal(t, http.StatusCreated, code, body)
			require.NotEmpty(t, created.Metadata.UID)

			var v tuningv1.ExperimentView
			deadline := time.Now().Add(4 * time.Minute)
			maxRunning := int32(0)
			for time.Now().Before(deadline) {
				code, body = e.do(http.MethodGet, e.experiments()+"/"+name, "", &v)
				require.Equal(t, http.StatusOK, code, body)
				maxRunning = max(maxRunning, v.Status.TrialsRunning)
				if s := v.State(); s == tuningv1.ConditionSucceeded || s == tuningv1.ConditionFailed {
					break
				}
				time.Sleep(100 * time.Millisecond)
			}
			require.Equal(t, tuningv1.ConditionSucceeded, v.State(), "%+v", v.Status)
			require.LessOrEqual(t, maxRunning, int32(2), "parallelTrialCount is 2")
			require.Equal(t, "True", cond(v.Status.Conditions, tuningv1.ConditionCreated).Status)
			require.Equal(t, "False", cond(v.Status.Conditions, tuningv1.ConditionRunning).Status)
			require.Equal(t, tuningv1.ReasonExperimentMaxTrialsReached, cond(v.Status.Conditions, tuningv1.ConditionSucceeded).Reason)
			require.Len(t, v.TrialsView, 6)
			require.Equal(t, int32(6), v.Status.TrialsSucceeded)
			requirePhase(t, e, tuningv1.WorkflowID(e.ns, name), tuningv1.ConditionSucceeded)

			// The optimal trial is the one with the lowest observed loss, and its loss is the trainer's.
			best, bestLoss := "", math.Inf(1)
			o := tuningv1.ObjectiveSpec{Type: tuningv1.ObjectiveMinimize, ObjectiveMetricName: "loss"}
			for _, tr := range v.TrialsView {
				require.Equal(t, tuningv1.ConditionSucceeded, tr.State(), "%+v", tr)
				loss, ok := collect.Objective(o, tr.Observation)
				require.True(t, ok)
				lr, _ := strconv.ParseFloat(tr.ParameterAssignments[0].Value, 64)
				want := math.Pow(math.Log10(lr)+2, 2)
				if tr.ParameterAssignments[1].Value != "adam" {
					want += 0.5
				}
				require.InDelta(t, want, loss, 1e-5, "min strategy picks the last epoch's loss")
				if loss < bestLoss {
					best, bestLoss = tr.Name, loss
				}
			}
			require.NotNil(t, v.Status.CurrentOptimalTrial)
			require.Equal(t, best, v.Status.CurrentOptimalTrial.BestTrialName)
			require.Len(t, v.Status.CurrentOptimalTrial.Observation.Metrics, 2)

			var list tuningv1.ExperimentList
			code, _ = e.do(http.MethodGet, e.experiments(), "", &list)
			require.Equal(t, http.StatusOK, code)
			require.Contains(t, names(list), name)

			code, body = e.do(http.MethodDelete, e.experiments()+"/"+name, "", nil)
			require.Equal(t, http.StatusAccepted, code, body)
			require.Eventually(t, func() bool {
				code, _ := e.do(http.MethodGet, e.experiments()+"/"+name, "", nil)
				return code == http.StatusNotFound
			}, time.Minute, 50*time.Millisecond)
			for _, tr := range v.TrialsView { // the trials' training jobs went with the experiment
				code, body := e.do(http.MethodGet, "/apis/training/v1/namespaces/"+e.ns+"/jobs/"+tr.Name, "", nil)
				require.Equal(t, http.StatusNotFound, code, body)
			}
			if os.Getenv("SLUICE_RECORD_HISTORIES") != "" {
				// v2-*: with the ui-search-attributes version marker and the SluicePhase upserts.
				recordHistories(t, e, tuningv1.WorkflowID(e.ns, name), "../internal/experiments/testdata/histories/v2-"+c.algo)
			}
		})
	}
}

// Issue item 4, plain batch Job trials: Katib's random.yaml shape (a batch/v1 Job whose one container
// runs the training program, restartPolicy Never, default success condition Complete), with the test
// trainer as the program. Each trial runs through the training service as a one-Worker TFJob; the
// experiment runs three trials at a time and ends Succeeded with the best observed trial optimal.
func TestBatchJobTrialsEndToEnd(t *testing.T) {
	e := newEnv(t)
	trainer := buildTrainer(t)
	src, err := os.ReadFile("../internal/expspec/testdata/random-batch-job.yaml")
	require.NoError(t, err)
	doc := strings.NewReplacer("namespace: kubeflow", "namespace: "+e.ns,
		"objectiveMetricName: Validation-accuracy", "objectiveMetricName: accuracy", "- Train-accuracy", "- loss",
		"maxTrialCount: 12", "maxTrialCount: 6",
		`- "python3"`+"\n                  - \"/opt/mxnet-mnist/mnist.py\"", "- "+strconv.Quote(trainer)).Replace(string(src))
	require.Contains(t, doc, trainer)
	code, body := e.do(http.MethodPost, e.experiments(), doc, nil)
	require.Equal(t, http.StatusCreated, code, body)
	var v tuningv1.ExperimentView
	maxRunning := int32(0)
	require.Eventually(t, func() bool {
		code, _ := e.do(http.MethodGet, e.experiments()+"/random", "", &v)
		maxRunning = max(maxRunning, v.Status.TrialsRunning)
		if code != http.StatusOK || (v.State() != tuningv1.ConditionSucceeded && v.State() != tuningv1.ConditionFailed) {
			return false
		}
		// When the goal is reached, the trials still running are stopped and turn Killed once their jobs
		// are deleted (as in Katib): wait for that too.
		for _, tr := range v.TrialsView {
			if tr.State() == tuningv1.ConditionRunning {
				return false
			}
		}
		return true
	}, 4*time.Minute, 100*time.Millisecond)
	require.Equal(t, tuningv1.ConditionSucceeded, v.State(), "%+v %+v", v.Status, v.TrialsView)
	require.LessOrEqual(t, maxRunning, int32(3))
	require.Contains(t, []string{tuningv1.ReasonExperimentMaxTrialsReached, tuningv1.ReasonExperimentGoalReached},
		cond(v.Status.Conditions, tuningv1.ConditionSucceeded).Reason)
	o := tuningv1.ObjectiveSpec{Type: tuningv1.ObjectiveMaximize, ObjectiveMetricName: "accuracy"}
	best, bestAcc := "", -1.0
	for _, tr := range v.TrialsView {
		if tr.State() == tuningv1.ConditionKilled {
			continue // still running when the goal was reached
		}
		require.Equal(t, tuningv1.ConditionSucceeded, tr.State(), "%+v", tr)
		acc, ok := collect.Objective(o, tr.Observation)
		require.True(t, ok)
		if acc > bestAcc {
			best, bestAcc = tr.Name, acc
		}
	}
	require.NotNil(t, v.Status.CurrentOptimalTrial)
	require.Equal(t, best, v.Status.CurrentOptimalTrial.BestTrialName)

	// The trial ran as a TFJob of the training service with one Worker running the Job's container.
	var jv trainingv1.JobView
	code, body = e.do(http.MethodGet, "/apis/training/v1/namespaces/"+e.ns+"/jobs/"+best, "", &jv)
	require.Equal(t, http.StatusOK, code, body)
	require.Equal(t, "TFJob", jv.Kind, body)
	require.Equal(t, []trainingv1.ReplicaType{trainingv1.ReplicaTypeWorker}, jv.Job.ReplicaTypes())
	w := jv.Job.ReplicaSpecs()[trainingv1.ReplicaTypeWorker].Template.Spec.Containers[0]
	require.Equal(t, "tensorflow", w.Name)
	require.Equal(t, trainer, w.Command[0])
}

// Trials' jobs are requested by event: each trial's job was created from an
// io.sluice.training.job.requested.v1 the tuning service published (source /sluice/tuning, id from the
// experiment and trial names, the id the job records as its request), and the same event published
// again (a retried activity; past the stream's duplicate window, or handed to the consumer again) makes
// no second job.
func TestTrialJobsRequestedByEvent(t *testing.T) {
	e := newEnv(t)
	trainer := buildTrainer(t)
	code, body := e.do(http.MethodPost, e.experiments(), experiment("byevent", "random", "", trainer, 2), nil)
	require.Equal(t, http.StatusCreated, code, body)
	var v tuningv1.ExperimentView
	require.Eventually(t, func() bool {
		code, _ := e.do(http.MethodGet, e.experiments()+"/byevent", "", &v)
		return code == http.StatusOK && (v.State() == tuningv1.ConditionSucceeded || v.State() == tuningv1.ConditionFailed)
	}, 4*time.Minute, 100*time.Millisecond)
	require.Equal(t, tuningv1.ConditionSucceeded, v.State(), "%+v", v.Status)
	require.Len(t, v.TrialsView, 2)

	// The requests as the stream holds them.
	requests := map[string]events.Event{}
	ctx, cancel := context.WithCancel(t.Context())
	done := make(chan error, 1)
	go func() {
		done <- e.deps.Bus.Tail(ctx, events.TrainingJobRequestedV1, true, func(r events.Received) {
			if r.Err == nil && strings.HasPrefix(r.Event.Subject(), "jobs/"+e.ns+"/") {
				requests[r.Event.Subject()] = r.Event
				if len(requests) == len(v.TrialsView) {
					cancel()
				}
			}
		})
	}()
	select {
	case err := <-done:
		require.NoError(t, err)
	case <-time.After(time.Minute):
		cancel()
		t.Fatalf("the trials' job requests are not on the stream: %v", requests)
	}
	for _, tr := range v.TrialsView {
		ev, ok := requests["jobs/"+e.ns+"/tfjob/"+tr.Name]
		require.True(t, ok, "no job request for trial %s: %v", tr.Name, requests)
		require.Equal(t, experiments.Source, ev.Source())
		require.Equal(t, experiments.TrialJobRequestID(e.ns, "byevent", tr.Name), ev.ID())
		var doc struct {
			Metadata struct{ Name, Namespace string } `json:"metadata"`
		}
		require.NoError(t, json.Unmarshal(ev.Data(), &doc))
		require.Equal(t, tr.Name, doc.Metadata.Name)
		require.Equal(t, e.ns, doc.Metadata.Namespace)

		// The job records the request id; its workflow is the one run created.
		id := trainingv1.WorkflowID(trainingv1.KindTFJob, e.ns, tr.Name)
		runs := func() []string {
			resp, err := e.deps.Temporal.ListWorkflow(t.Context(), &workflowservice.ListWorkflowExecutionsRequest{
				Namespace: e.deps.Namespace, Query: fmt.Sprintf("WorkflowId = '%s'", id)})
			require.NoError(t, err)
			var ids []string
			for _, x := range resp.Executions {
				var req string
				require.NoError(t, converter.GetDefaultDataConverter().FromPayload(x.Memo.Fields[trainingv1.MemoRequestID], &req))
				require.Equal(t, ev.ID(), req, "the job was created from the tuning service's event")
				ids = append(ids, x.Execution.RunId)
			}
			return ids
		}
		first := runs()
		require.Len(t, first, 1)

		// Published again (the stream drops it as a duplicate) and delivered again to the consumer (as
		// after the duplicate window): no second job.
		require.NoError(t, e.deps.Bus.Publish(t.Context(), ev))
		require.NoError(t, e.training.HandleRequest(t.Context(), ev))
		require.Equal(t, first, runs())
	}

	// Deleting the experiment deletes the trials' jobs by event.
	code, body = e.do(http.MethodDelete, e.experiments()+"/byevent", "", nil)
	require.Equal(t, http.StatusAccepted, code, body)
	require.Eventually(t, func() bool {
		code, _ := e.do(http.MethodGet, e.experiments()+"/byevent", "", nil)
		return code == http.StatusNotFound
	}, time.Minute, 50*time.Millisecond)
	for _, tr := range v.TrialsView {
		code, body := e.do(http.MethodGet, "/apis/training/v1/namespaces/"+e.ns+"/jobs/"+tr.Name+"?kind=TFJob", "", nil)
		require.Equal(t, http.StatusNotFound, code, body)
	}
}

func names(l tuningv1.ExperimentList) []string {
	var out []string
	for _, x := range l.Items {
		out = append(out, x.Metadata.Name)
	}
	return out
}

// Bad input is a 400 naming the field; unknown experiments are 404; a second create is 409.
func TestRESTErrors(t *testing.T) {
	e := newEnv(t)
	doc := experiment("errs", "random", "", "/bin/true", 2)
	code, body := e.do(http.MethodPost, e.experiments(), strings.Replace(doc, "algorithmName: random", "algorithmName: hyperband", 1), nil)
	require.Equal(t, http.StatusBadRequest, code)
	require.Contains(t, body, `"field":"spec.algorithm.algorithmName"`)
	code, body = e.do(http.MethodPost, e.experiments(), strings.Replace(doc, "parallelTrialCount: 2", "parallelTrialCount: 2\n  earlyStopping: {algorithmName: hyperband}", 1), nil)
	require.Equal(t, http.StatusBadRequest, code)
	require.Contains(t, body, "not supported yet")
	code, _ = e.do(http.MethodPost, e.experiments(), "{not yaml", nil)
	require.Equal(t, http.StatusBadRequest, code)
	code, body = e.do(http.MethodPost, "/apis/tuning/v1/namespaces/other/experiments", strings.Replace(doc, "name: errs", "name: errs\n  namespace: "+e.ns, 1), nil)
	require.Equal(t, http.StatusBadRequest, code)
	require.Contains(t, body, "metadata.namespace")
	code, _ = e.do(http.MethodGet, e.experiments()+"/nope", "", nil)
	require.Equal(t, http.StatusNotFound, code)
	code, _ = e.do(http.MethodDelete, e.experiments()+"/nope", "", nil)
	require.Equal(t, http.StatusNotFound, code)
}

// recordHistories writes every run of the workflow (the first ones end in continue-as-new) to
// dest-<n>.json for the replay test. Run with SLUICE_RECORD_HISTORIES=1 after a change to the workflow.
func recordHistories(t *testing.T, e *env, id, dest string) {
	resp, err := e.deps.Temporal.ListWorkflow(t.Context(), &workflowservice.ListWorkflowExecutionsRequest{
		Namespace: e.deps.Namespace, Query: fmt.Sprintf("WorkflowId = '%s'", id)})
	require.NoError(t, err)
	require.NotEmpty(t, resp.Executions)
	for i, ex := range resp.Executions {
		var evs []*historypb.HistoryEvent
		it := e.deps.Temporal.GetWorkflowHistory(t.Context(), id, ex.Execution.RunId, false, enumspb.HISTORY_EVENT_FILTER_TYPE_ALL_EVENT)
		for it.HasNext() {
			ev, err := it.Next()
			require.NoError(t, err)
			evs = append(evs, ev)
		}
		b, err := protojson.MarshalOptions{Indent: "  "}.Marshal(&historypb.History{Events: evs})
		require.NoError(t, err)
		require.NoError(t, os.MkdirAll(filepath.Dir(dest), 0o755))
		require.NoError(t, os.WriteFile(fmt.Sprintf("%s-%d.json", dest, i), b, 0o644))
	}
}

// Grid search with the TensorFlowEvent collector: six points (3 learning rates × 2 optimizers), each
// trial writes event files under its own directory (${trialSpec.Name} in the command, {trialName} in the
// collector's path); the experiment ends when the grid is exhausted, and the optimum is lr=0.01, adam.
func TestGridTensorFlowEventEndToEnd(t *testing.T) {
	e := newEnv(t)
	trainer := buildTrainer(t)
	logs := t.TempDir()
	doc := fmt.Sprintf(`apiVersion: kubeflow.org/v1beta1
kind: Experiment
metadata:
  name: grid-tfevent
spec:
  objective:
    type: minimize
    objectiveMetricName: loss
  algorithm:
    algorithmName: grid
  parallelTrialCount: 2
  metricsCollectorSpec:
    source:
      fileSystemPath:
        path: %s/{trialName}
        kind: Directory
    collector:
      kind: TensorFlowEvent
  parameters:
    - name: lr
      parameterType: discrete
      feasibleSpace:
        list: ["0.001", "0.01", "0.1"]
    - name: optimizer
      parameterType: categorical
      feasibleSpace:
        list: [sgd, adam]
  trialTemplate:
    primaryContainerName: tensorflow
    trialParameters:
      - name: learningRate
        reference: lr
      - name: optimizer
        reference: optimizer
      - name: trialName
        reference: ${trialSpec.Name}
    trialSpec:
      apiVersion: kubeflow.org/v1
      kind: TFJob
      spec:
        tfReplicaSpecs:
          Worker:
            replicas: 1
            restartPolicy: Never
            template:
              spec:
                containers:
                  - name: tensorflow
                    image: example.org/trainer:latest
                    command: [%q, "--lr=${trialParameters.learningRate}", "--optimizer=${trialParameters.optimizer}", "--logdir=%s/${trialParameters.trialName}"]
`, logs, trainer, logs)
	code, body := e.do(http.MethodPost, e.experiments(), doc, nil)
	require.Equal(t, http.StatusCreated, code, body)
	var v tuningv1.ExperimentView
	require.Eventually(t, func() bool {
		code, _ := e.do(http.MethodGet, e.experiments()+"/grid-tfevent", "", &v)
		return code == http.StatusOK && (v.State() == tuningv1.ConditionSucceeded || v.State() == tuningv1.ConditionFailed)
	}, 4*time.Minute, 100*time.Millisecond)
	require.Equal(t, tuningv1.ReasonExperimentSuggestionEndReached, cond(v.Status.Conditions, tuningv1.ConditionSucceeded).Reason, "%+v", v.Status)
	require.Len(t, v.TrialsView, 6)
	require.Equal(t, int32(6), v.Status.TrialsSucceeded, "%+v", v.TrialsView)
	require.Equal(t, []tuningv1.ParameterAssignment{{Name: "lr", Value: "0.01"}, {Name: "optimizer", Value: "adam"}},
		v.Status.CurrentOptimalTrial.ParameterAssignments)
	require.Equal(t, "0", v.Status.CurrentOptimalTrial.Observation.Metrics[0].Min)
	for _, tr := range v.TrialsView {
		m := tr.Observation.Metrics
		require.Len(t, m, 1)
		lo, _ := strconv.ParseFloat(m[0].Min, 64)
		hi, _ := strconv.ParseFloat(m[0].Max, 64)
		require.InDelta(t, 3*lo, hi, 1e-4, "three epochs read from the event file (%s)", tr.Name)
	}
}

// Issue item 5: the MNIST tuning example (examples/training/mnist/experiment.yaml: 12 trials, 3 at a
// time, learning rate and hidden width) runs as written with TPE, random search and Bayesian
// optimization, except that trials train 100 steps and checkpoint into a temporary directory. Each
// trial is a distributed TFJob of the real MNIST trainer (Chief + Worker); each experiment must end with
// currentOptimalTrial the trial of the highest test accuracy, and that accuracy must beat the untuned
// default (--learning-rate=0.3 --hidden-size=128, the same 100 steps: the trainer is deterministic and
// one worker computes what a single process does).
func TestMNISTExample(t *testing.T) {
	bin := t.TempDir()
	trainer := filepath.Join(bin, "mnist-trainer")
	cmd := exec.Command("go", "build", "-o", trainer, "./cmd/mnist-trainer")
	cmd.Dir = "../../../examples/training/mnist"
	out, err := cmd.CombinedOutput()
	require.NoError(t, err, string(out))
	out, err = exec.Command(trainer, "--steps=100").Output()
	require.NoError(t, err)
	def, err := strconv.ParseFloat(strings.TrimPrefix(strings.TrimSpace(string(out)), "accuracy="), 64)
	require.NoError(t, err, string(out))
	t.Logf("untuned default: accuracy=%.4f", def)

	e := newEnvWith(t, map[string]string{"SLUICE_TRAINING_BIN_DIR": bin})
	src, err := os.ReadFile("../../../examples/training/mnist/experiment.yaml")
	require.NoError(t, err)
	for _, algo := range []struct{ name, settings string }{
		{"tpe", ""},
		{"random", "algorithmName: random\n    algorithmSettings:\n      - name: random_state"},
		{"bayesianoptimization", "algorithmName: bayesianoptimization\n    algorithmSettings:\n      - name: random_state"},
	} {
		t.Run(algo.name, func(t *testing.T) {
			name := "mnist-" + algo.name
			r := []string{"name: mnist-tpe", "name: " + name, "namespace: kubeflow", "namespace: " + e.ns,
				"--steps=300", "--steps=100", "/tmp/sluice-tuning", t.TempDir()}
			if algo.settings != "" {
				// Random and Bayesian optimization keep random_state; Bayesian starts from 6 random points
				// like TPE's n_startup_trials.
				r = append(r, "algorithmName: tpe\n    algorithmSettings:\n      - name: n_startup_trials\n        value: \"6\"\n      - name: random_state", algo.settings)
				if algo.name == "bayesianoptimization" {
					r = append(r, "        value: \"42\"\n", "        value: \"42\"\n      - name: n_initial_points\n        value: \"6\"\n")
				}
			}
			doc := strings.NewReplacer(r...).Replace(string(src))
			require.Contains(t, doc, "algorithmName: "+algo.name)
			code, body := e.do(http.MethodPost, e.experiments(), doc, nil)
			require.Equal(t, http.StatusCreated, code, body)
			var v tuningv1.ExperimentView
			maxRunning := int32(0)
			require.Eventually(t, func() bool {
				code, _ := e.do(http.MethodGet, e.experiments()+"/"+name, "", &v)
				maxRunning = max(maxRunning, v.Status.TrialsRunning)
				return code == http.StatusOK && (v.State() == tuningv1.ConditionSucceeded || v.State() == tuningv1.ConditionFailed)
			}, 15*time.Minute, 200*time.Millisecond)
			require.Equal(t, tuningv1.ConditionSucceeded, v.State(), "%+v %+v", v.Status, v.TrialsView)
			require.Equal(t, tuningv1.ReasonExperimentMaxTrialsReached, cond(v.Status.Conditions, tuningv1.ConditionSucceeded).Reason)
			require.Len(t, v.TrialsView, 12)
			require.LessOrEqual(t, maxRunning, int32(3))
			require.NotNil(t, v.Status.CurrentOptimalTrial)
			o := tuningv1.ObjectiveSpec{Type: tuningv1.ObjectiveMaximize, ObjectiveMetricName: "accuracy"}
			best, bestAcc := "", -1.0
			for _, tr := range v.TrialsView {
				if acc, ok := collect.Objective(o, tr.Observation); ok && tr.State() == tuningv1.ConditionSucceeded && acc > bestAcc {
					best, bestAcc = tr.Name, acc
				}
			}
			require.Equal(t, best, v.Status.CurrentOptimalTrial.BestTrialName)
			t.Logf("%s: best trial %s %v accuracy=%.4f (untuned default %.4f)", algo.name, best, v.Status.CurrentOptimalTrial.ParameterAssignments, bestAcc, def)
			require.Greater(t, bestAcc, def, "the tuned model beats the untuned default")
		})
	}
}

// Medianstop: with min_trials_required 2 and start_step 2, the third grid trial (lr=1, loss 12, 8, 4
// per epoch) is stopped after its second report because it is worse than the median final loss (0.5)
// of the two completed trials; it is EarlyStopped, its job is deleted, and the experiment still ends.
func TestMedianStopEndToEnd(t *testing.T) {
	e := newEnv(t)
	trainer := buildTrainer(t)
	doc := fmt.Sprintf(`apiVersion: kubeflow.org/v1beta1
kind: Experiment
metadata:
  name: medianstop
spec:
  objective:
    type: minimize
    objectiveMetricName: loss
  algorithm:
    algorithmName: grid
  earlyStopping:
    algorithmName: medianstop
    algorithmSettings:
      - name: min_trials_required
        value: "2"
      - name: start_step
        value: "2"
  parallelTrialCount: 1
  parameters:
    - name: lr
      parameterType: discrete
      feasibleSpace:
        list: ["0.01", "0.1", "1"]
  trialTemplate:
    trialParameters:
      - name: learningRate
        reference: lr
    trialSpec:
      apiVersion: kubeflow.org/v1
      kind: TFJob
      spec:
        tfReplicaSpecs:
          Worker:
            replicas: 1
            restartPolicy: Never
            template:
              spec:
                containers:
                  - name: tensorflow
                    image: example.org/trainer:latest
                    command: [%q, "--lr=${trialParameters.learningRate}", "--optimizer=adam", "--epoch-delay=3s"]
`, trainer)
	code, body := e.do(http.MethodPost, e.experiments(), doc, nil)
	require.Equal(t, http.StatusCreated, code, body)
	var v tuningv1.ExperimentView
	require.Eventually(t, func() bool {
		code, _ := e.do(http.MethodGet, e.experiments()+"/medianstop", "", &v)
		return code == http.StatusOK && (v.State() == tuningv1.ConditionSucceeded || v.State() == tuningv1.ConditionFailed)
	}, 4*time.Minute, 100*time.Millisecond)
	require.Equal(t, tuningv1.ReasonExperimentSuggestionEndReached, cond(v.Status.Conditions, tuningv1.ConditionSucceeded).Reason, "%+v", v.Status)
	require.Len(t, v.TrialsView, 3)
	last := v.TrialsView[2]
	require.Equal(t, tuningv1.ConditionEarlyStopped, last.State(), "%+v", last)
	require.Equal(t, tuningv1.ReasonTrialEarlyStopped, cond(last.Conditions, tuningv1.ConditionEarlyStopped).Reason)
	require.Equal(t, "8", last.Observation.Metrics[0].Latest, "stopped after the second report")
	require.Equal(t, int32(1), v.Status.TrialsEarlyStopped)
	require.Equal(t, int32(2), v.Status.TrialsSucceeded)
	require.Equal(t, v.TrialsView[0].Name, v.Status.CurrentOptimalTrial.BestTrialName)
}

// Reaching the goal ends the experiment at once: the trial still running (lr=1, slow because its loss is
// high) is killed (Killed/TrialKilled, its training job deleted) and does not count as failed.
func TestGoalReachedKillsRunningTrial(t *testing.T) {
	e := newEnv(t)
	trainer := buildTrainer(t)
	doc := fmt.Sprintf(`apiVersion: kubeflow.org/v1beta1
kind: Experiment
metadata:
  name: goal
spec:
  objective:
    type: minimize
    goal: 0.0001
    objectiveMetricName: loss
  algorithm:
    algorithmName: grid
  parallelTrialCount: 2
  maxFailedTrialCount: 0
  parameters:
    - name: lr
      parameterType: discrete
      feasibleSpace:
        list: ["0.01", "1", "0.1"]
  trialTemplate:
    trialParameters:
      - name: learningRate
        reference: lr
    trialSpec:
      apiVersion: kubeflow.org/v1
      kind: TFJob
      spec:
        tfReplicaSpecs:
          Worker:
            replicas: 1
            restartPolicy: Never
            template:
              spec:
                containers:
                  - name: tensorflow
                    image: example.org/trainer:latest
                    command: [%q, "--lr=${trialParameters.learningRate}", "--optimizer=adam", "--epoch-delay-per-loss=30s"]
`, trainer)
	code, body := e.do(http.MethodPost, e.experiments(), doc, nil)
	require.Equal(t, http.StatusCreated, code, body)
	var v tuningv1.ExperimentView
	require.Eventually(t, func() bool {
		code, _ := e.do(http.MethodGet, e.experiments()+"/goal", "", &v)
		return code == http.StatusOK && v.Status.TrialsRunning == 0 && (v.State() == tuningv1.ConditionSucceeded || v.State() == tuningv1.ConditionFailed)
	}, 3*time.Minute, 100*time.Millisecond)
	require.Equal(t, tuningv1.ReasonExperimentGoalReached, cond(v.Status.Conditions, tuningv1.ConditionSucceeded).Reason, "%+v", v.Status)
	require.Len(t, v.TrialsView, 2, "the third grid point is never tried")
	require.Equal(t, v.TrialsView[0].Name, v.Status.CurrentOptimalTrial.BestTrialName)
	require.Equal(t, tuningv1.ConditionKilled, v.TrialsView[1].State(), "%+v", v.TrialsView[1])
	require.Equal(t, int32(1), v.Status.TrialsKilled)
	require.Equal(t, int32(0), v.Status.TrialsFailed)
	code, _ = e.do(http.MethodGet, "/apis/training/v1/namespaces/"+e.ns+"/jobs/"+v.TrialsView[1].Name, "", nil)
	require.Equal(t, http.StatusNotFound, code, "the killed trial's job is deleted")
}
