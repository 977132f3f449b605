package engine_test

import (
	"encoding/json"
	"fmt"
	"log/slog"
	"net/http"
	"net/http/httptest"
	"os"
	"strings"
	"testing"
	"time"

	"github.com/google/uuid"
	"github.com/stretchr/testify/require"

	"github.com/sluice-ml/sluice/libs/devstack/devstacktest"
	"github.com/sluice-ml/sluice/libs/platform"
	"github.com/sluice-ml/sluice/services/pipelines/api/pipelinesv1"
	"github.com/sluice-ml/sluice/services/pipelines/internal/dag"
	"github.com/sluice-ml/sluice/services/pipelines/internal/engine"
	"github.com/sluice-ml/sluice/services/training/api/trainingv1"
	trainingapp "github.com/sluice-ml/sluice/services/training/app"
)

// startTraining runs the real training service (its Temporal worker on its own task queue, local replica
// processes, REST API on an httptest server) and points the engine's trainingJob tasks at it.
func (e *env) startTraining(t *testing.T) string {
	t.Helper()
	st := devstacktest.Stack(t)
	deps := &platform.Deps{Log: slog.New(slog.DiscardHandler), Bus: e.bus, Temporal: e.tc, Namespace: st.Namespace, Artifacts: e.store,
		DataDir: t.TempDir(), RuntimeKind: "local", Getenv: func(k string) string {
			if k == "PATH" {
				return os.Getenv("PATH")
			}
			return ""
		}}
	cfg, err := trainingapp.ConfigFromEnv(deps.Getenv)
	require.NoError(t, err)
	cfg.HeartbeatTimeout = 2 * time.Second // as the training service's own tests: replicas stop fast
	id := uuid.NewString()[:8]
	cfg.TaskQueue, cfg.Durable = "training-pipelines-test-"+id, "training-pipelines-test-"+id
	a, err := trainingapp.New(cfg, deps)
	require.NoError(t, err)
	require.NoError(t, a.Start(t.Context()))
	t.Cleanup(func() { _ = a.Close() })
	mux := http.NewServeMux()
	a.Routes(mux)
	srv := httptest.NewServer(mux)
	t.Cleanup(srv.Close)
	e.acts.TrainingURL, e.acts.TrainingPoll = srv.URL, 50*time.Millisecond
	return srv.URL
}

// trainPipeline is a pipeline whose "train" task is a TFJob (chief + 2 workers running script) and whose
// "use" task reads the exported model.
func trainPipeline(ns, exportDir, chiefScript, workerScript string) string {
	return fmt.Sprintf(`
apiVersion: sluice.io/v1
kind: Pipeline
metadata: {name: train-pipeline}
spec:
  tasks:
    train:
      trainingJob:
        apiVersion: kubeflow.org/v1
        kind: TFJob
        metadata: {name: mnist-train, namespace: %s}
        spec:
          runPolicy: {cleanPodPolicy: Running}
          tfReplicaSpecs:
            Chief:
              restartPolicy: Never
              template:
                spec:
                  containers:
                    - name: tensorflow
                      image: busybox
                      command: [sh, -c, %q]
                      env: [{name: exportDir, value: %q}]
            Worker:
              replicas: 2
              restartPolicy: Never
              template:
                spec:
                  containers:
                    - name: tensorflow
                      image: busybox
                      command: [sh, -c, %q]
      outputs: {artifacts: {model: {type: system.Model}}}
    use:
      image: alpine
      command: [sh, -c, 'cat "$0/1/model.onnx" > "$1"']
      args: ["{{inputs.model}}", "{{outputs.bytes}}"]
      inputs: {model: {fromTask: train.model}}
      outputs: {parameters: [bytes]}
`, ns, chiefScript, exportDir, workerScript)
}

func TestTrainingJobTaskSucceedsWithModel(t *testing.T) {
	e := newEnv(t)
	url := e.startTraining(t)
	e.startWorker(t)
	ns := "t" + uuid.NewString()[:8]
	// The replicas are shell commands with no S3 client: the test plays the trainer's export.
	prefix := "exports/" + ns + "/mnist"
	_, err := e.store.Put(t.Context(), prefix+"/1/model.onnx", strings.NewReader("onnx-bytes"), 10)
	require.NoError(t, err)

	id, run := e.start(t, trainPipeline(ns, e.store.URI(prefix), "exit 0", "exit 0"), nil)
	res, err := e.wait(t, run)
	require.NoError(t, err)
	require.Equal(t, pipelinesv1.RunSucceeded, res.State)
	model := res.Tasks["train"].Artifacts["model"]
	require.Equal(t, e.store.URI(prefix)+"/", model.URI)
	require.Equal(t, "system.Model", model.SchemaTitle)
	require.True(t, strings.HasPrefix(model.Digest, "sha256:"), model.Digest)
	require.Equal(t, "onnx-bytes", res.Tasks["use"].Parameters["bytes"])

	// The job ran in the training service under a per-run name, and succeeded there.
	tasks := e.state(t, id)
	name := dag.TrainingJobName("mnist-train", id, "train", 1)
	require.Equal(t, ns+"/"+name, tasks["train"].Extra[engine.TaskExtraTrainingJob])
	var v trainingv1.JobView
	require.Equal(t, http.StatusOK, getJSON(t, url+"/apis/training/v1/namespaces/"+ns+"/jobs/"+name, &v))
	require.Equal(t, trainingv1.JobSucceeded, v.State)
	require.Len(t, v.Replicas, 3)
}

func TestTrainingJobTaskFailsWithJobMessage(t *testing.T) {
	e := newEnv(t)
	e.startTraining(t)
	e.startWorker(t)
	ns := "t" + uuid.NewString()[:8]
	id, run := e.start(t, trainPipeline(ns, "s3://bucket/unused", "sleep 60", "exit 1"), nil)
	_, err := e.wait(t, run)
	require.Error(t, err)
	tasks := e.state(t, id)
	require.Equal(t, pipelinesv1.TaskFailed, tasks["train"].State)
	name := dag.TrainingJobName("mnist-train", id, "train", 1)
	// Both workers exit 1; whichever the training service saw first is named in its Failed condition.
	require.Regexp(t, `training job `+ns+`/`+name+` failed: TFJob `+ns+`/`+name+` has failed because 1 Worker replica\(s\) failed: replica `+name+`-worker-[01] exited with code 1, reason Error\.`, tasks["train"].Error)
	require.Equal(t, pipelinesv1.TaskOmitted, tasks["use"].State)
}

func TestTrainingJobTaskRefusedDocumentAndCancel(t *testing.T) {
	e := newEnv(t)
	url := e.startTraining(t)
	e.startWorker(t)
	ns := "t" + uuid.NewString()[:8]

	// The training service refuses the document (no image): the task fails with its field path, no job.
	bad := strings.Replace(trainPipeline(ns, "s3://b/x", "exit 0", "exit 0"), "image: busybox\n                      command: [sh, -c, \"exit 0\"]\n                      env", "command: [sh, -c, \"exit 0\"]\n                      env", 1)
	require.NotEqual(t, trainPipeline(ns, "s3://b/x", "exit 0", "exit 0"), bad)
	id, run := e.start(t, bad, nil)
	_, err := e.wait(t, run)
	require.Error(t, err)
	tasks := e.state(t, id)
	require.Equal(t, pipelinesv1.TaskFailed, tasks["train"].State)
	require.Contains(t, tasks["train"].Error, "spec.tfReplicaSpecs.Chief.template.spec.containers[0].image")

	// Cancelling the run deletes the running job.
	id, run = e.start(t, trainPipeline(ns, "s3://b/x", "exec sleep 60", "exec sleep 60"), nil)
	name := dag.TrainingJobName("mnist-train", id, "train", 1)
	jobURL := url + "/apis/training/v1/namespaces/" + ns + "/jobs/" + name
	require.Eventually(t, func() bool {
		var v trainingv1.JobView
		return getJSON(t, jobURL, &v) == http.StatusOK && v.State == trainingv1.JobRunning
	}, 30*time.Second, 50*time.Millisecond)
	require.NoError(t, e.tc.CancelWorkflow(t.Context(), id, ""))
	_, err = e.wait(t, run)
	require.Error(t, err)
	require.Equal(t, pipelinesv1.TaskCancelled, e.state(t, id)["train"].State)
	require.Equal(t, http.StatusNotFound, getJSON(t, jobURL, nil), "the cancelled task's job is deleted")
}

func getJSON(t *testing.T, u string, out any) int {
	t.Helper()
	req, err := http.NewRequestWithContext(t.Context(), http.MethodGet, u, nil)
	require.NoError(t, err)
	resp, err := http.DefaultClient.Do(req)
	require.NoError(t, err)
	defer resp.Body.Close()
	if out != nil && resp.StatusCode == http.StatusOK {
		require.NoError(t, json.NewDecoder(resp.Body).Decode(out))
	}
	return resp.StatusCode
}
