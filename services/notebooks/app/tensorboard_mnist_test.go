package app_test

import (
	"encoding/json"
	"math"
	"net/http"
	"net/http/httptest"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/google/uuid"
	"github.com/stretchr/testify/require"

	"github.com/sluice-ml/sluice/services/notebooks/api/notebooksv1"
	"github.com/sluice-ml/sluice/services/training/api/trainingv1"
	trainingapp "github.com/sluice-ml/sluice/services/training/app"
)

// Issue 16 item 3: the seed's MNIST TFJob (examples/training/mnist/tfjob.yaml: Chief, PS, 2 Workers,
// run as written but for 200 steps and this stack's bucket) runs on the training service and its
// workers write TF event files to the job's S3 log dir (logDir); a Kubeflow Tensorboard over that log
// dir answers TensorBoard's scalar API with the real training curve: one run per worker, a loss point
// per step, the loss falling and the mini-batch accuracy rising.
func TestTensorboardOverMNISTJob(t *testing.T) {
	h := startTB(t)
	bin := t.TempDir()
	build := exec.Command("go", "build", "-o", filepath.Join(bin, "mnist-trainer"), "./cmd/mnist-trainer")
	build.Dir = "../../../examples/training/mnist"
	out, err := build.CombinedOutput()
	require.NoError(t, err, string(out))

	// The training service on the same stack, replicas as local processes.
	tdeps := *h.deps
	tdeps.DataDir = t.TempDir()
	tdeps.Getenv = func(k string) string {
		if k == "SLUICE_TRAINING_BIN_DIR" {
			return bin
		}
		if k == "PATH" {
			return os.Getenv("PATH")
		}
		return ""
	}
	tcfg, err := trainingapp.ConfigFromEnv(tdeps.Getenv)
	require.NoError(t, err)
	id := uuid.NewString()[:8]
	tcfg.TaskQueue = "training-tb-test-" + id
	tcfg.Durable = "training-tb-test-" + id
	training, err := trainingapp.New(tcfg, &tdeps)
	require.NoError(t, err)
	require.NoError(t, training.Start(t.Context()))
	t.Cleanup(func() { _ = training.Close() })
	mux := http.NewServeMux()
	training.Routes(mux)
	tsrv := httptest.NewServer(mux)
	t.Cleanup(tsrv.Close)

	src, err := os.ReadFile("../../../examples/training/mnist/tfjob.yaml")
	require.NoError(t, err)
	name, prefix := "mnist-"+id, "tb-mnist-"+id
	logs := "s3://" + h.stack.S3Bucket + "/" + prefix + "/logs"
	doc := strings.NewReplacer("name: mnist-train", "name: "+name, "namespace: kubeflow", "namespace: tb-"+id,
		"/tmp/sluice-mnist-train/model", filepath.Join(t.TempDir(), "model"),
		"s3://sluice/training/mnist-train/export", "s3://"+h.stack.S3Bucket+"/"+prefix+"/export",
		"s3://sluice/training/mnist-train/logs", logs,
		"              env:\n", "              env:\n                - name: TRAIN_STEPS\n                  value: \"200\"\n").Replace(string(src))
	require.Contains(t, doc, logs, "tfjob.yaml sets logDir")
	resp, err := http.Post(tsrv.URL+"/apis/training/v1/namespaces/tb-"+id+"/jobs", "application/yaml", strings.NewReader(doc))
	require.NoError(t, err)
	resp.Body.Close()
	require.Equal(t, http.StatusCreated, resp.StatusCode)
	var jv trainingv1.JobView
	require.Eventually(t, func() bool {
		resp, err := http.Get(tsrv.URL + "/apis/training/v1/namespaces/tb-" + id + "/jobs/" + name)
		if err != nil {
			return false
		}
		defer resp.Body.Close()
		return resp.StatusCode == 200 && json.NewDecoder(resp.Body).Decode(&jv) == nil &&
			(jv.State == trainingv1.JobSucceeded || jv.State == trainingv1.JobFailed)
	}, 8*time.Minute, 200*time.Millisecond)
	require.Equal(t, trainingv1.JobSucceeded, jv.State, "%+v", jv.Job.Status())

	board := "tb-" + id
	code, _, body := h.raw("POST", "/apis/tensorboard.kubeflow.org/v1alpha1/namespaces/team-a/tensorboards", tokenA, "application/yaml", tbDoc(board, logs))
	require.Equal(t, http.StatusCreated, code, string(body))
	t.Cleanup(func() {
		_ = h.deps.Temporal.TerminateWorkflow(t.Context(), notebooksv1.TensorboardWorkflowID("team-a", board), "", "test over")
	})
	h.waitBoard(board, notebooksv1.TensorboardAvailable)
	base := notebooksv1.TensorboardPathPrefix("team-a", board)
	getJSON := func(path string, v any) {
		t.Helper()
		var code int
		var b []byte
		require.Eventually(t, func() bool {
			code, _, b = h.raw("GET", base+path, tokenA, "", nil)
			return code == 200 && json.Unmarshal(b, v) == nil && !strings.Contains(string(b), "[]")
		}, time.Minute, 50*time.Millisecond, "GET %s: %d %s", path, code, b)
	}
	var runs []string
	getJSON("data/runs", &runs)
	require.Equal(t, []string{"worker-0", "worker-1"}, runs, "one run per training replica")
	var tags map[string]map[string]map[string]string
	getJSON("data/plugin/scalars/tags", &tags)
	require.Contains(t, tags["worker-0"], "loss")
	require.Contains(t, tags["worker-1"], "accuracy")

	mean := func(rows [][3]float64) float64 {
		var s float64
		for _, r := range rows {
			s += r[2]
		}
		return s / float64(len(rows))
	}
	for _, run := range runs {
		var loss, acc [][3]float64
		getJSON("data/plugin/scalars/scalars?run="+run+"&tag=loss", &loss)
		getJSON("data/plugin/scalars/scalars?run="+run+"&tag=accuracy", &acc)
		// One point per step (a replica the training service restarted — e.g. after missed heartbeats
		// on a loaded machine — resumes from the last checkpoint in a new event file, so a few steps
		// may repeat, and those it computed after its last upload are lost).
		require.GreaterOrEqual(t, len(loss), 150, "%s: a loss point per step", run)
		require.GreaterOrEqual(t, len(acc), 150)
		require.Equal(t, 0.0, loss[0][1], "the first step")
		require.Equal(t, 199.0, loss[len(loss)-1][1], "the last step")
		for _, r := range loss {
			require.GreaterOrEqual(t, r[1], 0.0)
			require.Less(t, r[1], 200.0)
			require.Greater(t, r[0], 1.7e9, "wall time in seconds")
			require.False(t, math.IsNaN(r[2]))
		}
		first, last := mean(loss[:25]), mean(loss[len(loss)-25:])
		a0, a1 := mean(acc[:25]), mean(acc[len(acc)-25:])
		t.Logf("%s: %d points; mean loss of the first 25 %.3f, of the last 25 %.3f; accuracy %.3f -> %.3f", run, len(loss), first, last, a0, a1)
		require.Less(t, last, first*0.5, "%s: the loss falls", run)
		require.Greater(t, a1, a0+0.15, "%s: the accuracy rises", run)
	}
	code, _, b := h.raw("GET", base, tokenA, "", nil)
	require.Equal(t, 200, code)
	require.Contains(t, string(b), `<figcaption>loss</figcaption>`)
}
