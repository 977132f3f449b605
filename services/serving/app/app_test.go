package app_test

import (
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"io"
	"log/slog"
	"net/http"
	"net/http/httptest"
	"os"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/google/uuid"
	"github.com/nats-io/nats.go"
	"github.com/stretchr/testify/require"
	"sigs.k8s.io/yaml"

	"github.com/sluice-ml/sluice/libs/artifacts"
	"github.com/sluice-ml/sluice/libs/auth"
	"github.com/sluice-ml/sluice/libs/devstack/devstacktest"
	"github.com/sluice-ml/sluice/libs/events"
	"github.com/sluice-ml/sluice/libs/platform"
	wf "github.com/sluice-ml/sluice/libs/workflow"
	"github.com/sluice-ml/sluice/services/serving/api/servingv1"
	"github.com/sluice-ml/sluice/services/serving/app"
	"github.com/sluice-ml/sluice/services/serving/internal/modelruntime/onnxtest"
)

func TestMain(m *testing.M) { os.Exit(devstacktest.Run(m)) }

type env struct {
	t     *testing.T
	deps  *platform.Deps
	cfg   app.Config
	app   *app.App
	srv   *httptest.Server
	ns    string
	store *artifacts.Store
	mu    sync.Mutex
	evs   []events.Event
}

// newEnv starts a serving app on the test stack; setup runs on its deps first (e.g. EnableAuth).
func newEnv(t *testing.T, setup ...func(*platform.Deps)) *env {
	t.Helper()
	st := devstacktest.Stack(t)
	ctx := t.Context()
	bus, err := events.Connect(ctx, st.NATSURL, "serving-app-test", nil)
	require.NoError(t, err)
	t.Cleanup(bus.Close)
	require.NoError(t, bus.EnsureStreams(ctx))
	tc, err := wf.Dial(ctx, wf.Config{HostPort: st.TemporalAddress, Namespace: st.Namespace}, slog.New(slog.DiscardHandler))
	require.NoError(t, err)
	t.Cleanup(tc.Close)
	store, err := artifacts.New(artifacts.Config{Endpoint: st.S3Endpoint, AccessKey: st.S3AccessKey, SecretKey: st.S3SecretKey, Bucket: st.S3Bucket, Region: st.S3Region})
	require.NoError(t, err)
	e := &env{t: t, store: store, ns: "t" + uuid.NewString()[:8]}
	e.deps = &platform.Deps{Log: slog.New(slog.DiscardHandler), Bus: bus, Temporal: tc, Namespace: st.Namespace, Artifacts: store,
		DataDir: t.TempDir(), RuntimeKind: "local", Getenv: func(string) string { return "" }}
	e.cfg, err = app.ConfigFromEnv(e.deps.Getenv)
	require.NoError(t, err)
	e.cfg.PollInterval = 100 * time.Millisecond
	e.cfg.HeartbeatTimeout = 2 * time.Second
	e.cfg.LoadTimeout = 5 * time.Second
	e.cfg.TaskQueue = "serving-test-" + e.ns
	e.cfg.GRPCAddr = "127.0.0.1:0"
	for _, f := range setup {
		f(e.deps)
	}
	e.start()
	sub, err := bus.Conn().Subscribe("sluice.serving.>", func(m *nats.Msg) {
		ev, err := events.Decode(context.Background(), m.Header, m.Data)
		if err != nil {
			return
		}
		e.mu.Lock()
		e.evs = append(e.evs, ev)
		e.mu.Unlock()
	})
	require.NoError(t, err)
	t.Cleanup(func() { _ = sub.Unsubscribe() })
	return e
}

// start builds and starts a serving app (again, after stop: a restarted service).
func (e *env) start() {
	a, err := app.New(e.cfg, e.deps)
	require.NoError(e.t, err)
	require.NoError(e.t, a.Start(e.t.Context()))
	mux := http.NewServeMux()
	a.Routes(mux)
	e.app = a
	if e.srv == nil {
		e.srv = httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) { e.mux().ServeHTTP(w, r) }))
		e.t.Cleanup(func() { e.srv.Close(); _ = e.app.Close() })
	}
	e.setMux(mux)
}

var muxMu sync.Mutex
var curMux *http.ServeMux

func (e *env) setMux(m *http.ServeMux) { muxMu.Lock(); curMux = m; muxMu.Unlock() }
func (e *env) mux() *http.ServeMux     { muxMu.Lock(); defer muxMu.Unlock(); return curMux }

func (e *env) do(method, path, body string, out any) int {
	e.t.Helper()
	req, err := http.NewRequestWithContext(e.t.Context(), method, e.srv.URL+path, strings.NewReader(body))
	require.NoError(e.t, err)
	req.Header.Set("Content-Type", "application/yaml")
	resp, err := http.DefaultClient.Do(req)
	require.NoError(e.t, err)
	defer resp.Body.Close()
	b, _ := io.ReadAll(resp.Body)
	if out != nil {
		if s, ok := out.(*string); ok {
			*s = string(b)
		} else if json.Unmarshal(b, out) != nil {
			e.t.Logf("%s %s -> %d %s", method, path, resp.StatusCode, b)
		}
	}
	return resp.StatusCode
}

// del deletes a deployment: 200 when it finished at once, 202 when it finishes in the background; either
// way it is gone (GET 404) soon after.
func (e *env) del(path string) {
	e.t.Helper()
	code := e.do(http.MethodDelete, path, "", nil)
	require.Contains(e.t, []int{http.StatusOK, http.StatusAccepted}, code)
	require.Eventually(e.t, func() bool { return e.do(http.MethodGet, path, "", nil) == http.StatusNotFound },
		time.Minute, 50*time.Millisecond)
}

func (e *env) deployments() string { return "/apis/serving/v1/namespaces/" + e.ns + "/deployments" }

// upload writes an MNIST-shaped model (seeded; seed 0 writes bytes that are not a model) as
// <prefix>/<version>/model.onnx.
func (e *env) upload(prefix string, version int, seed uint64) {
	e.t.Helper()
	b := []byte("not an onnx model")
	if seed != 0 {
		b = onnxtest.NewMLP(seed, []int{784, 16, 10}, "input", "probabilities").ONNX
	}
	_, err := e.store.Put(e.t.Context(), fmt.Sprintf("%s/%d/model.onnx", prefix, version), bytes.NewReader(b), int64(len(b)))
	require.NoError(e.t, err)
}

func (e *env) waitView(name string, what string, ok func(v servingv1.DeploymentView) bool) servingv1.DeploymentView {
	e.t.Helper()
	var v servingv1.DeploymentView
	deadline := time.Now().Add(30 * time.Second)
	for time.Now().Before(deadline) {
		v = servingv1.DeploymentView{}
		if e.do(http.MethodGet, e.deployments()+"/"+name, "", &v) == 200 && ok(v) {
			return v
		}
		time.Sleep(50 * time.Millisecond)
	}
	b, _ := json.MarshalIndent(v, "", " ")
	e.t.Fatalf("deployment %s never became %s: %s", name, what, b)
	return v
}

func (e *env) waitEvent(typ string, match func(servingv1.ModelEvent) bool) servingv1.ModelEvent {
	e.t.Helper()
	deadline := time.Now().Add(20 * time.Second)
	for time.Now().Before(deadline) {
		e.mu.Lock()
		evs := append([]events.Event(nil), e.evs...)
		e.mu.Unlock()
		for _, ev := range evs {
			var me servingv1.ModelEvent
			if ev.Type() == typ && ev.DataAs(&me) == nil && me.Namespace == e.ns && (match == nil || match(me)) {
				return me
			}
		}
		time.Sleep(20 * time.Millisecond)
	}
	e.t.Fatalf("no %s event", typ)
	return servingv1.ModelEvent{}
}

func (e *env) count(typ string) int {
	e.mu.Lock()
	defer e.mu.Unlock()
	n := 0
	for _, ev := range e.evs {
		if ev.Type() == typ && strings.Contains(ev.Subject(), e.ns) {
			n++
		}
	}
	return n
}

func isvc(name, ns, uri string, canary int) string {
	c := ""
	if canary >= 0 {
		c = fmt.Sprintf("\n    canaryTrafficPercent: %d", canary)
	}
	return fmt.Sprintf(`apiVersion: serving.kserve.io/v1beta1
kind: InferenceService
metadata: {name: %s, namespace: %s}
spec:
  predictor:
    minReplicas: 1
    maxReplicas: 2%s
    model:
      modelFormat: {name: onnx}
      protocolVersion: v2
      storageUri: %s
`, name, ns, c, uri)
}

func pixels(n int) string {
	row := strings.TrimSuffix(strings.Repeat("0.5,", 784), ",")
	rows := make([]string, n)
	for i := range rows {
		rows[i] = "[" + row + "]"
	}
	return `{"instances":[` + strings.Join(rows, ",") + `]}`
}

func v2Body() string {
	d := strings.TrimSuffix(strings.Repeat("0.25,", 784), ",")
	return `{"inputs":[{"name":"input","shape":[1,784],"datatype":"FP32","data":[` + d + `]}]}`
}

func ready(v servingv1.DeploymentView) bool { return v.Ready }

func traffic(v servingv1.DeploymentView) string {
	var parts []string
	for _, t := range v.Status.Components.Predictor.Traffic {
		parts = append(parts, fmt.Sprintf("v%d=%d", t.Version, t.Percent))
	}
	return strings.Join(parts, ",")
}

func TestDeploymentLifecycle(t *testing.T) {
	e := newEnv(t)
	model := "mnist-" + e.ns
	prefix := e.ns + "/mnist"
	uri := e.store.URI(prefix)
	e.upload(prefix, 1, 1)

	// Invalid documents are rejected with field paths and create nothing.
	var bad map[string]any
	require.Equal(t, 400, e.do(http.MethodPost, e.deployments(), strings.Replace(isvc(model, e.ns, uri, 120), "maxReplicas: 2", "maxReplicas: 0\n    minReplicas: 3", 1), &bad))
	require.Contains(t, fmt.Sprint(bad["error"]), "spec.predictor.canaryTrafficPercent: must be within 0..100, got 120")
	require.Equal(t, 400, e.do(http.MethodPost, e.deployments(), strings.Replace(isvc(model, e.ns, uri, 20), "maxReplicas: 2", "maxReplicas: 1\n    minReplicas: 3", 1), &bad))
	require.Contains(t, fmt.Sprint(bad["error"]), "spec.predictor.maxReplicas: must be >= minReplicas (3) unless 0, got 1")
	require.Equal(t, 404, e.do(http.MethodGet, e.deployments()+"/"+model, "", nil))

	// Deploy from S3 -> ready -> predict with both protocols.
	var acc servingv1.DeploymentAccepted
	require.Equal(t, 201, e.do(http.MethodPost, e.deployments(), isvc(model, e.ns, uri, 20), &acc), acc)
	require.Equal(t, "deployment/"+e.ns+"/"+model, acc.WorkflowID)
	v := e.waitView(model, "ready", ready)
	require.Equal(t, "v1=100", traffic(v))
	require.Equal(t, servingv1.TransitionUpToDate, v.Status.ModelStatus.TransitionStatus)
	require.Equal(t, servingv1.ModelStateLoaded, v.Status.ModelStatus.States.ActiveModelState)
	e.requirePhase(model, servingv1.TransitionUpToDate)
	require.Equal(t, "True", v.Condition(servingv1.ConditionPredictorReady).Status)
	var pred struct{ Predictions [][]float64 }
	require.Equal(t, 200, e.do(http.MethodPost, "/v1/models/"+model+":predict", pixels(3), &pred))
	require.Len(t, pred.Predictions, 3)
	require.Len(t, pred.Predictions[0], 10)
	dep := e.waitEvent(events.ServingModelDeployedV1, nil)
	require.Equal(t, uri, dep.StorageURI)
	require.Equal(t, model, dep.ModelName)
	require.Equal(t, int64(1), dep.Version)
	require.Equal(t, uri+"/1/model.onnx", dep.ModelURI)
	require.True(t, strings.HasPrefix(dep.Digest, "sha256:"), dep.Digest)

	// Same model name in another namespace: refused.
	var conflict map[string]any
	require.Equal(t, 409, e.do(http.MethodPost, "/apis/serving/v1/namespaces/other-"+e.ns+"/deployments", isvc(model, "other-"+e.ns, uri, -1), &conflict))
	require.Contains(t, fmt.Sprint(conflict["error"]), "already served by "+e.ns+"/"+model)

	// A new version under the base path is rolled out as a canary at 20%.
	e.upload(prefix, 2, 2)
	v = e.waitView(model, "canary", func(v servingv1.DeploymentView) bool { return traffic(v) == "v2=20,v1=80" })
	require.Equal(t, model+"-predictor-00002", v.Status.Components.Predictor.LatestReadyRevision)
	require.Equal(t, model+"-predictor-00001", v.Status.Components.Predictor.LatestRolledoutRevision)
	counts := map[string]int{}
	for range 1000 {
		var out struct {
			ModelVersion string `json:"model_version"`
		}
		require.Equal(t, 200, e.do(http.MethodPost, "/v2/models/"+model+"/infer", v2Body(), &out))
		counts[out.ModelVersion]++
	}
	t.Logf("canary split over 1000 v2 requests: %v", counts)
	require.InDelta(t, 200, counts["2"], 50, "version 2 share %v", counts)
	require.Equal(t, 1000, counts["1"]+counts["2"])
	e.waitEvent(events.ServingModelTrafficShiftedV1, func(m servingv1.ModelEvent) bool { return len(m.Traffic) == 2 })

	// Promote: all traffic to version 2.
	require.Equal(t, 202, e.do(http.MethodPost, e.deployments()+"/"+model+"/promote", "", nil))
	v = e.waitView(model, "promoted", func(v servingv1.DeploymentView) bool { return traffic(v) == "v2=100" })
	require.Equal(t, model+"-predictor-00001", v.Status.Components.Predictor.PreviousRolledoutRevision)
	for range 50 {
		var out struct {
			ModelVersion string `json:"model_version"`
		}
		require.Equal(t, 200, e.do(http.MethodPost, "/v2/models/"+model+"/infer", v2Body(), &out))
		require.Equal(t, "2", out.ModelVersion)
	}

	// A version that fails to load never takes traffic: version 2 keeps serving.
	e.upload(prefix, 3, 0)
	failed := e.waitEvent(events.ServingModelFailedV1, func(m servingv1.ModelEvent) bool { return m.Version == 3 })
	require.Equal(t, "ModelLoadFailed", failed.Reason)
	v = e.waitView(model, "blocked", func(v servingv1.DeploymentView) bool {
		return v.Status.ModelStatus.TransitionStatus == servingv1.TransitionBlockedByFailedLoad
	})
	require.Equal(t, "v2=100", traffic(v))
	require.True(t, v.Ready)
	e.requirePhase(model, servingv1.TransitionBlockedByFailedLoad)
	require.NotNil(t, v.Status.ModelStatus.LastFailureInfo)
	require.Contains(t, v.Status.ModelStatus.LastFailureInfo.Message, "version 3")
	var status struct {
		ModelVersionStatus []struct{ Version, State string } `json:"model_version_status"`
	}
	require.Equal(t, 200, e.do(http.MethodGet, "/v1/models/"+model+"/versions/2", "", &status))
	require.Equal(t, "AVAILABLE", status.ModelVersionStatus[0].State)
	require.Equal(t, 200, e.do(http.MethodPost, "/v1/models/"+model+":predict", pixels(1), nil))

	// Update: canary percent changes nothing while version 2 is rolled out; list shows it.
	var list servingv1.DeploymentList
	require.Equal(t, 200, e.do(http.MethodGet, e.deployments(), "", &list))
	require.Len(t, list.Deployments, 1)

	// Delete unloads the model.
	e.del(e.deployments() + "/" + model)
	require.Equal(t, 404, e.do(http.MethodPost, "/v1/models/"+model+":predict", pixels(1), nil))
	require.Equal(t, 404, e.do(http.MethodGet, e.deployments()+"/"+model, "", nil))
	require.Eventually(t, func() bool { return e.count(events.ServingDeploymentDeletedV1) == 1 }, 10*time.Second, 20*time.Millisecond)
	// Exactly one deployed event per revision, deterministic ids.
	require.Equal(t, 2, e.count(events.ServingModelDeployedV1))
	// lifecycle-canary-promote-failed-delete is the same scenario recorded before the SluicePhase upserts.
	e.recordHistory(model, "lifecycle-canary-promote-failed-delete-phase")
}

func TestTFServingFlagsFormAndFailedFirstLoad(t *testing.T) {
	e := newEnv(t)
	model := "flags_" + e.ns
	prefix := e.ns + "/flags"
	e.upload(prefix, 1, 0) // broken: the only version fails
	doc := fmt.Sprintf(`{"name":"flags","args":["--port=9000","--rest_api_port=8500","--model_name=%s","--model_base_path=%s","--model_version_policy=latest:1"]}`, model, e.store.URI(prefix))
	require.Equal(t, 201, e.do(http.MethodPost, e.deployments(), doc, nil))
	v := e.waitView("flags", "failed", func(v servingv1.DeploymentView) bool {
		return v.Status.ModelStatus.States.ActiveModelState == servingv1.ModelStateFailedToLoad
	})
	require.False(t, v.Ready)
	require.Equal(t, "False", v.Condition(servingv1.ConditionPredictorReady).Status)
	require.Equal(t, servingv1.TransitionBlockedByFailedLoad, v.Status.ModelStatus.TransitionStatus)
	require.Equal(t, 404, e.do(http.MethodPost, "/v1/models/"+model+":predict", pixels(1), nil))
	// A fixed version arrives and is rolled out.
	e.upload(prefix, 2, 5)
	v = e.waitView("flags", "ready", ready)
	require.Equal(t, "v2=100", traffic(v))
	require.Equal(t, 200, e.do(http.MethodPost, "/v1/models/"+model+":predict", pixels(2), nil))
	var bad map[string]any
	require.Equal(t, 400, e.do(http.MethodPost, e.deployments(), `{"args":["--model_name=x","--model_base_path=ftp://h/p"]}`, &bad))
	require.Contains(t, fmt.Sprint(bad["error"]), `--model_base_path: "ftp://h/p": scheme not supported`)
	e.del(e.deployments() + "/flags")
}

func TestRequestedEventIsIdempotentAndInvalidIsRejected(t *testing.T) {
	e := newEnv(t)
	model := "ev-" + e.ns
	prefix := e.ns + "/ev"
	e.upload(prefix, 1, 3)
	doc := isvc(model, e.ns, e.store.URI(prefix), -1)
	ev, err := events.New("/test", events.ServingDeploymentRequestedV1, "deployments/"+e.ns+"/"+model, json.RawMessage(mustJSON(t, doc)))
	require.NoError(t, err)
	require.NoError(t, e.deps.Bus.Publish(t.Context(), ev))
	e.waitView(model, "ready", ready)
	// The same event handled again (redelivery) is a no-op: no second generation, no second revision.
	require.NoError(t, e.app.HandleDeploymentRequested(t.Context(), ev))
	require.NoError(t, e.app.HandleDeploymentRequested(t.Context(), ev))
	time.Sleep(300 * time.Millisecond) // let any (wrong) signal be processed before checking
	v := e.waitView(model, "ready", ready)
	require.Equal(t, int64(1), v.Generation)
	require.Len(t, v.Status.Revisions, 1)
	require.Equal(t, 1, e.count(events.ServingModelDeployedV1))

	// Invalid: rejected with field errors, dead-lettered.
	badDoc := strings.Replace(doc, "storageUri: "+e.store.URI(prefix), "storageUri: \"\"", 1)
	bad, err := events.New("/test", events.ServingDeploymentRequestedV1, "deployments/"+e.ns+"/bad", json.RawMessage(mustJSON(t, badDoc)))
	require.NoError(t, err)
	require.Error(t, e.app.HandleDeploymentRequested(t.Context(), bad))
	require.NoError(t, e.deps.Bus.Publish(t.Context(), bad))
	require.Eventually(t, func() bool {
		e.mu.Lock()
		defer e.mu.Unlock()
		for _, x := range e.evs {
			var r servingv1.DeploymentRejected
			if x.Type() == events.ServingDeploymentRejectedV1 && x.DataAs(&r) == nil && r.RequestID == bad.ID() {
				return strings.Contains(strings.Join(r.Errors, ";"), "spec.predictor.model.storageUri: required")
			}
		}
		return false
	}, 10*time.Second, 20*time.Millisecond)
	e.del(e.deployments() + "/" + model)
}

// mustJSON converts a YAML document into JSON event data.
func mustJSON(t *testing.T, doc string) []byte {
	t.Helper()
	b, err := yaml.YAMLToJSON([]byte(doc))
	require.NoError(t, err)
	return b
}

func TestRestartKeepsServing(t *testing.T) {
	e := newEnv(t)
	model := "rs-" + e.ns
	prefix := e.ns + "/rs"
	e.upload(prefix, 1, 4)
	require.Equal(t, 201, e.do(http.MethodPost, e.deployments(), isvc(model, e.ns, e.store.URI(prefix), -1), nil))
	e.waitView(model, "ready", ready)
	require.Equal(t, 200, e.do(http.MethodPost, "/v1/models/"+model+":predict", pixels(1), nil))

	// The process goes away. The restarted one reloads the deployment from its workflow's record
	// before it reports ready: from then on the model answers, with no window of 404s.
	require.NoError(t, e.app.Close())
	e.start()
	select {
	case <-e.app.Restored():
	case <-time.After(3 * time.Minute):
		t.Fatal("restarted service never restored its deployments")
	}
	require.NoError(t, e.app.Ready(t.Context()))
	require.Equal(t, 200, e.do(http.MethodPost, "/v1/models/"+model+":predict", pixels(1), nil))
	var live string
	require.Equal(t, 200, e.do(http.MethodGet, "/v2/health/ready", "", &live))
	require.JSONEq(t, `{"ready":true}`, live)
	v := e.waitView(model, "ready", ready)
	require.Equal(t, "v1=100", traffic(v))
	e.del(e.deployments() + "/" + model)
	e.recordHistory(model, "restart-reconcile-delete")
}

// Case security/delete-loading-deployment: deleting a deployment whose model is still loading answers at
// once (200 or 202) and abandons the load; the deployment is gone long before the load would time out.
func TestCaseDeleteWhileLoadingIsPrompt(t *testing.T) {
	e := newEnv(t)
	require.NoError(t, e.app.Close())
	e.cfg.LoadTimeout = 10 * time.Minute
	e.start()
	name := "loadstuck"
	doc := `{"apiVersion":"serving.kserve.io/v1beta1","kind":"InferenceService","metadata":{"name":"` + name + `","namespace":"` + e.ns + `"},
 "spec":{"predictor":{"model":{"modelFormat":{"name":"onnx"},"protocolVersion":"v1","storageUri":"s3://sluice/nothing-here-` + e.ns + `"}}}}`
	require.Contains(t, []int{200, 201}, e.do(http.MethodPost, e.deployments(), doc, nil))
	e.waitView(name, "loading", func(v servingv1.DeploymentView) bool {
		return v.Status.ModelStatus.States.TargetModelState == servingv1.ModelStateLoading
	})
	start := time.Now()
	code := e.do(http.MethodDelete, e.deployments()+"/"+name, "", nil)
	require.Contains(t, []int{http.StatusOK, http.StatusAccepted}, code)
	require.Less(t, time.Since(start), 20*time.Second, "DELETE waits for the pending load")
	require.Eventually(t, func() bool { return e.do(http.MethodGet, e.deployments()+"/"+name, "", nil) == http.StatusNotFound },
		2*time.Minute, 100*time.Millisecond)
	require.Eventually(t, func() bool { return e.count(events.ServingDeploymentDeletedV1) == 1 }, time.Minute, 20*time.Millisecond)
}

// TestRequestedEventOwner: a deployment requested by an event carrying the authcontext the event gateway
// sets (events.SetAuthContext) is owned (SluiceOwner) by its publisher; one without authcontext by nobody.
func TestRequestedEventOwner(t *testing.T) {
	e := newEnv(t)
	prefix := e.ns + "/owner"
	e.upload(prefix, 1, 3)
	request := func(model string, id *auth.Identity) (string, bool) {
		t.Helper()
		ev, err := events.New("/test", events.ServingDeploymentRequestedV1, "deployments/"+e.ns+"/"+model,
			json.RawMessage(mustJSON(t, isvc(model, e.ns, e.store.URI(prefix), -1))))
		require.NoError(t, err)
		if id != nil {
			events.SetAuthContext(&ev, *id)
		}
		require.NoError(t, e.deps.Bus.Publish(t.Context(), ev))
		var v string
		var ok bool
		require.Eventually(t, func() bool {
			var err error
			v, ok, err = wf.KeywordOf(t.Context(), e.deps.Temporal, servingv1.WorkflowID(e.ns, model), wf.SAOwner)
			return err == nil
		}, 60*time.Second, 100*time.Millisecond, "deployment %s never started", model)
		return v, ok
	}
	got, ok := request("own-"+e.ns, &auth.Identity{Subject: "carl"})
	require.True(t, ok)
	require.Equal(t, "carl", got)
	got, ok = request("bare-"+e.ns, nil)
	require.False(t, ok, "no authcontext, no owner; got %q", got)
	e.del(e.deployments() + "/own-" + e.ns)
	e.del(e.deployments() + "/bare-" + e.ns)
}
