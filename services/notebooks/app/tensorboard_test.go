package app_test

import (
	"bytes"
	"context"
	"encoding/csv"
	"encoding/json"
	"net/http"
	"net/http/httptest"
	"net/url"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/google/uuid"
	"github.com/minio/minio-go/v7"
	"github.com/stretchr/testify/require"
	enumspb "go.temporal.io/api/enums/v1"
	historypb "go.temporal.io/api/history/v1"
	"google.golang.org/protobuf/encoding/protojson"

	"github.com/sluice-ml/sluice/libs/artifacts"
	"github.com/sluice-ml/sluice/libs/devstack/devstacktest"
	"github.com/sluice-ml/sluice/libs/events"
	"github.com/sluice-ml/sluice/libs/platform"
	"github.com/sluice-ml/sluice/libs/tfevents"
	"github.com/sluice-ml/sluice/services/notebooks/api/notebooksv1"
	"github.com/sluice-ml/sluice/services/notebooks/app"
)

// startTB is the notebooks service with S3 (the stack's bucket) for Tensorboard tests.
func startTB(t *testing.T) *harness {
	t.Helper()
	stack := devstacktest.Stack(t)
	env := map[string]string{"SLUICE_NOTEBOOKS_TOKENS": tokenA + "=team-a;" + tokenB + "=team-b"}
	h := &harness{t: t, stack: stack, env: env}
	h.deps = newDeps(t, stack, t.TempDir(), env)
	store, err := artifacts.New(artifacts.Config{Endpoint: stack.S3Endpoint, AccessKey: stack.S3AccessKey, SecretKey: stack.S3SecretKey, Bucket: stack.S3Bucket, Region: stack.S3Region})
	require.NoError(t, err)
	h.deps.Artifacts = store
	svc, err := app.New(t.Context(), h.deps)
	require.NoError(t, err)
	require.NoError(t, svc.Start(t.Context()))
	h.svc = svc
	h.srv = httptest.NewServer(platform.Handler(h.deps.Metrics, h.deps.Log, nil, svc))
	t.Cleanup(h.close)
	return h
}

func (h *harness) raw(method, path, token, contentType string, body []byte) (int, http.Header, []byte) {
	h.t.Helper()
	req, err := http.NewRequestWithContext(h.t.Context(), method, h.srv.URL+path, bytes.NewReader(body))
	require.NoError(h.t, err)
	if token != "" {
		req.Header.Set("Authorization", "Bearer "+token)
	}
	if contentType != "" {
		req.Header.Set("Content-Type", contentType)
	}
	resp, err := http.DefaultClient.Do(req)
	require.NoError(h.t, err)
	defer resp.Body.Close()
	var b bytes.Buffer
	_, _ = b.ReadFrom(resp.Body)
	return resp.StatusCode, resp.Header, b.Bytes()
}

// eventFile returns an event file with loss = 1/(step+1) at steps 0..n-1.
func eventFile(t *testing.T, n int, scale float32) []byte {
	t.Helper()
	var buf bytes.Buffer
	w, err := tfevents.NewWriter(&buf)
	require.NoError(t, err)
	for i := range n {
		require.NoError(t, w.AddScalar("loss", int64(i), scale/float32(i+1), time.Unix(1700000000+int64(i), 0)))
	}
	require.NoError(t, w.AddSimpleValue("accuracy", int64(n), 0.5, time.Unix(1700000100, 0)))
	require.NoError(t, w.Flush())
	return buf.Bytes()
}

func tbDoc(name, logspath string) []byte {
	return []byte("apiVersion: tensorboard.kubeflow.org/v1alpha1\nkind: Tensorboard\nmetadata:\n  name: " + name +
		"\n  namespace: team-a\nspec:\n  logspath: " + logspath + "\n")
}

func (h *harness) waitBoard(name, state string) notebooksv1.Tensorboard {
	h.t.Helper()
	var tb notebooksv1.Tensorboard
	require.Eventually(h.t, func() bool {
		code, _, b := h.raw("GET", "/apis/tensorboard.kubeflow.org/v1alpha1/namespaces/team-a/tensorboards/"+name, tokenA, "", nil)
		if code != 200 || json.Unmarshal(b, &tb) != nil || len(tb.Status.Conditions) == 0 {
			return false
		}
		return tb.Status.Conditions[len(tb.Status.Conditions)-1].DeploymentState == state
	}, time.Minute, 20*time.Millisecond, "tensorboard %s never %s", name, state)
	return tb
}

// A Kubeflow Tensorboard on an S3 logs path serves TensorBoard's scalar API for every run below it,
// picks up data written after it started, and is gone after delete.
func TestTensorboardS3ScalarsAPI(t *testing.T) {
	h := startTB(t)
	name := "tb-" + uuid.NewString()[:8]
	prefix := "tensorboard-test/" + name
	var evMu sync.Mutex
	var evTypes []string
	tailCtx, stopTail := context.WithCancel(context.Background())
	t.Cleanup(stopTail)
	go func() {
		_ = h.deps.Bus.Tail(tailCtx, "io.sluice.notebook.tensorboard.*", true, func(r events.Received) {
			if r.Err == nil && r.Event.Subject() == "tensorboards/team-a/"+name {
				evMu.Lock()
				evTypes = append(evTypes, r.Event.Type())
				evMu.Unlock()
			}
		})
	}()
	mc := h.deps.Artifacts.Client()
	put := func(key string, b []byte) {
		_, err := mc.PutObject(t.Context(), h.stack.S3Bucket, prefix+"/"+key, bytes.NewReader(b), int64(len(b)), minio.PutObjectOptions{})
		require.NoError(t, err)
	}
	put("replica-0/events.out.tfevents.1.host", eventFile(t, 3, 1))

	code, _, body := h.raw("POST", "/apis/tensorboard.kubeflow.org/v1alpha1/namespaces/team-a/tensorboards", tokenA, "application/yaml", tbDoc(name, "s3://"+h.stack.S3Bucket+"/"+prefix))
	require.Equal(t, http.StatusCreated, code, string(body))
	t.Cleanup(func() {
		_ = h.deps.Temporal.TerminateWorkflow(context.Background(), notebooksv1.TensorboardWorkflowID("team-a", name), "", "test over")
	})
	code, _, body = h.raw("POST", "/apis/tensorboard.kubeflow.org/v1alpha1/namespaces/team-a/tensorboards", tokenA, "application/yaml", tbDoc(name, "s3://x/y"))
	require.Equal(t, http.StatusConflict, code, string(body))

	tb := h.waitBoard(name, notebooksv1.TensorboardAvailable)
	requirePhase(t, h, notebooksv1.TensorboardWorkflowID("team-a", name), notebooksv1.TensorboardAvailable)
	require.Equal(t, int32(1), tb.Status.ReadyReplicas)
	base := notebooksv1.TensorboardPathPrefix("team-a", name)
	require.Equal(t, base, tb.Status.URL)

	put("replica-1/events.out.tfevents.1.host", eventFile(t, 2, 2)) // after the board started
	getJSON := func(path string, v any) {
		t.Helper()
		var code int
		var b []byte
		require.Eventually(t, func() bool { // the board reloads at most once a second
			code, _, b = h.raw("GET", base+path, tokenA, "", nil)
			return code == 200 && json.Unmarshal(b, v) == nil && !strings.Contains(string(b), "[]")
		}, time.Minute, 50*time.Millisecond, "GET %s: %d %s", path, code, b)
	}
	var runs []string
	require.Eventually(t, func() bool {
		getJSON("data/runs", &runs)
		return len(runs) == 2
	}, time.Minute, 100*time.Millisecond)
	require.Equal(t, []string{"replica-0", "replica-1"}, runs)

	var tags map[string]map[string]map[string]string
	getJSON("data/plugin/scalars/tags", &tags)
	require.Equal(t, map[string]map[string]map[string]string{
		"replica-0": {"loss": {"displayName": "", "description": ""}, "accuracy": {"displayName": "", "description": ""}},
		"replica-1": {"loss": {"displayName": "", "description": ""}, "accuracy": {"displayName": "", "description": ""}},
	}, tags)

	var rows [][3]float64
	getJSON("data/plugin/scalars/scalars?run=replica-1&tag=loss", &rows)
	require.Equal(t, [][3]float64{{1700000000, 0, 2}, {1700000001, 1, 1}}, rows)

	code, hdr, b := h.raw("GET", base+"data/plugin/scalars/scalars?run=replica-0&tag=loss&format=csv", tokenA, "", nil)
	require.Equal(t, 200, code)
	require.Contains(t, hdr.Get("Content-Type"), "text/csv")
	recs, err := csv.NewReader(bytes.NewReader(b)).ReadAll()
	require.NoError(t, err)
	require.Equal(t, [][]string{{"Wall time", "Step", "Value"}, {"1700000000", "0", "1"}, {"1700000001", "1", "0.5"}, {"1700000002", "2", "0.3333333432674408"}}, recs)

	form := url.Values{"tag": {"accuracy"}, "runs": {"replica-0", "replica-1", "nope"}}
	code, _, b = h.raw("POST", base+"data/plugin/scalars/scalars_multirun", tokenA, "application/x-www-form-urlencoded", []byte(form.Encode()))
	require.Equal(t, 200, code, string(b))
	var multi map[string][][3]float64
	require.NoError(t, json.Unmarshal(b, &multi))
	require.Equal(t, map[string][][3]float64{"replica-0": {{1700000100, 3, 0.5}}, "replica-1": {{1700000100, 2, 0.5}}}, multi)

	var env map[string]any
	getJSON("data/environment", &env)
	require.Equal(t, "s3://"+h.stack.S3Bucket+"/"+prefix, env["data_location"])

	code, _, b = h.raw("GET", base, tokenA, "", nil)
	require.Equal(t, 200, code)
	require.Contains(t, string(b), `<figcaption>loss</figcaption><img alt="loss" src="data:image/svg+xml;base64,`)

	// Client errors: 4xx naming what is wrong, never 500.
	code, _, b = h.raw("GET", base+"data/plugin/scalars/scalars?tag=loss", tokenA, "", nil)
	require.Equal(t, 400, code, string(b))
	code, _, b = h.raw("GET", base+"data/plugin/scalars/scalars?run=replica-0&tag=nope", tokenA, "", nil)
	require.Equal(t, 404, code, string(b))
	code, _, _ = h.raw("GET", base+"data/runs", tokenB, "", nil)
	require.Equal(t, 403, code)
	code, _, _ = h.raw("GET", base+"data/runs", "", "", nil)
	require.Equal(t, 401, code)

	code, _, b = h.raw("GET", "/apis/tensorboard.kubeflow.org/v1alpha1/namespaces/team-a/tensorboards", tokenA, "", nil)
	require.Equal(t, 200, code)
	require.Contains(t, string(b), `"name":"`+name+`"`)

	code, _, b = h.raw("DELETE", "/apis/tensorboard.kubeflow.org/v1alpha1/namespaces/team-a/tensorboards/"+name, tokenA, "", nil)
	require.Equal(t, http.StatusAccepted, code, string(b))
	require.Eventually(t, func() bool {
		code, _, _ := h.raw("GET", base+"data/runs", tokenA, "", nil)
		lc, _, lb := h.raw("GET", "/apis/tensorboard.kubeflow.org/v1alpha1/namespaces/team-a/tensorboards", tokenA, "", nil)
		return code == 404 && lc == 200 && !strings.Contains(string(lb), name)
	}, time.Minute, 50*time.Millisecond)
	require.Eventually(t, func() bool {
		evMu.Lock()
		defer evMu.Unlock()
		return len(evTypes) == 2
	}, time.Minute, 20*time.Millisecond, "tensorboard events")
	require.Equal(t, []string{events.TensorboardCreatedV1, events.TensorboardDeletedV1}, evTypes)
	if os.Getenv("SLUICE_RECORD_HISTORIES") != "" {
		// tensorboard-lifecycle.json is the same scenario recorded before the SluicePhase upsert.
		recordHistory(t, h, notebooksv1.TensorboardWorkflowID("team-a", name), "../internal/boards/testdata/histories/tensorboard-lifecycle-phase.json")
	}
}

// recordHistory writes the closed workflow's history as JSON (the format of `temporal workflow show
// --output json`) for the replay tests. Run with SLUICE_RECORD_HISTORIES=1 after a change to a workflow.
func recordHistory(t *testing.T, h *harness, id, dest string) {
	t.Helper()
	var events []*historypb.HistoryEvent
	require.Eventually(t, func() bool {
		events = nil
		it := h.deps.Temporal.GetWorkflowHistory(t.Context(), id, "", false, enumspb.HISTORY_EVENT_FILTER_TYPE_ALL_EVENT)
		for it.HasNext() {
			ev, err := it.Next()
			if err != nil {
				return false
			}
			events = append(events, ev)
		}
		return len(events) > 0 && events[len(events)-1].GetEventType() == enumspb.EVENT_TYPE_WORKFLOW_EXECUTION_COMPLETED
	}, time.Minute, 50*time.Millisecond)
	b, err := protojson.MarshalOptions{Indent: "  "}.Marshal(&historypb.History{Events: events})
	require.NoError(t, err)
	require.NoError(t, os.MkdirAll(filepath.Dir(dest), 0o755))
	require.NoError(t, os.WriteFile(dest, b, 0o644))
}

// pvc://<claim>/<path> reads <volumes dir>/<namespace>/<claim>/<path>; a logs path in a missing bucket
// makes the board ReplicaFailure with the reason, and invalid documents are refused naming the field.
func TestTensorboardPVCAndFailures(t *testing.T) {
	h := startTB(t)
	name := "tb-" + uuid.NewString()[:8]
	dir := filepath.Join(h.deps.DataDir, "volumes", "team-a", "logs-claim", "runs", name, "train")
	require.NoError(t, os.MkdirAll(dir, 0o755))
	require.NoError(t, os.WriteFile(filepath.Join(dir, "events.out.tfevents.1.host"), eventFile(t, 2, 1), 0o644))
	code, _, b := h.raw("POST", "/apis/tensorboard.kubeflow.org/v1alpha1/namespaces/team-a/tensorboards", tokenA, "application/yaml", tbDoc(name, "pvc://logs-claim/runs/"+name))
	require.Equal(t, http.StatusCreated, code, string(b))
	bad := name + "-bad"
	code, _, b = h.raw("POST", "/apis/tensorboard.kubeflow.org/v1alpha1/namespaces/team-a/tensorboards", tokenA, "application/yaml", tbDoc(bad, "s3://no-such-bucket-"+name+"/x"))
	require.Equal(t, http.StatusCreated, code, string(b))
	t.Cleanup(func() {
		for _, n := range []string{name, bad} {
			_ = h.deps.Temporal.TerminateWorkflow(context.Background(), notebooksv1.TensorboardWorkflowID("team-a", n), "", "test over")
		}
	})
	h.waitBoard(name, notebooksv1.TensorboardAvailable)
	code, _, b = h.raw("GET", notebooksv1.TensorboardPathPrefix("team-a", name)+"data/plugin/scalars/scalars?run=train&tag=loss", tokenA, "", nil)
	require.Equal(t, 200, code, string(b))
	require.JSONEq(t, `[[1700000000,0,1],[1700000001,1,0.5]]`, string(b))

	failed := h.waitBoard(bad, notebooksv1.TensorboardReplicaFailure)
	require.Equal(t, int32(0), failed.Status.ReadyReplicas)
	require.Contains(t, failed.Status.Message, "no-such-bucket-")
	requirePhase(t, h, notebooksv1.TensorboardWorkflowID("team-a", bad), notebooksv1.TensorboardReplicaFailure)

	for doc, want := range map[string]string{
		string(tbDoc("x1", "gs://bucket/logs")): "spec.logspath",
		string(tbDoc("x2", "")):                 "spec.logspath: required",
		string(tbDoc("Bad_Name", "s3://b/p")):   "metadata.name",
		"apiVersion: v1\nkind: Tensorboard\nmetadata: {name: x3}\nspec: {logspath: s3://b/p}": "apiVersion",
		"{": "(document)",
	} {
		code, _, b := h.raw("POST", "/apis/tensorboard.kubeflow.org/v1alpha1/namespaces/team-a/tensorboards", tokenA, "application/yaml", []byte(doc))
		require.Equal(t, http.StatusBadRequest, code, doc)
		require.Contains(t, string(b), want, doc)
	}
	code, _, _ = h.raw("GET", "/apis/tensorboard.kubeflow.org/v1alpha1/namespaces/team-a/tensorboards/nope", tokenA, "", nil)
	require.Equal(t, 404, code)
	code, _, _ = h.raw("DELETE", "/apis/tensorboard.kubeflow.org/v1alpha1/namespaces/team-a/tensorboards/nope", tokenA, "", nil)
	require.Equal(t, 404, code)
}
