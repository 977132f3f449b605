package app

import (
	"encoding/json"
	"io"
	"net/http"
	"net/http/httptest"
	"net/url"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/sluice-ml/sluice/services/notebooks/api/notebooksv1"
	"github.com/sluice-ml/sluice/services/serving/api/servingv1"
	"github.com/sluice-ml/sluice/services/training/api/trainingv1"
)

// servingAPI stands in for the serving service's control and data plane to check the exact requests
// the deployment page sends (the browser test runs the real services).
type servingAPI struct {
	mu    sync.Mutex
	view  servingv1.DeploymentView
	calls []string
	docs  []map[string]any
}

func (s *servingAPI) server(t *testing.T) *httptest.Server {
	mux := http.NewServeMux()
	mux.HandleFunc("GET /apis/serving/v1/namespaces/{ns}/deployments/{name}", func(w http.ResponseWriter, r *http.Request) {
		s.mu.Lock()
		defer s.mu.Unlock()
		if r.PathValue("ns") != s.view.Namespace || r.PathValue("name") != s.view.Name {
			w.WriteHeader(http.StatusNotFound)
			_, _ = io.WriteString(w, `{"error":"deployment not found"}`)
			return
		}
		_ = json.NewEncoder(w).Encode(s.view)
	})
	mux.HandleFunc("POST /apis/serving/v1/namespaces/{ns}/deployments", func(w http.ResponseWriter, r *http.Request) {
		var doc map[string]any
		_ = json.NewDecoder(r.Body).Decode(&doc)
		s.mu.Lock()
		s.calls = append(s.calls, "apply "+r.PathValue("ns")+" "+r.Header.Get("Authorization"))
		s.docs = append(s.docs, doc)
		s.mu.Unlock()
		_, _ = io.WriteString(w, `{"created":false}`)
	})
	mux.HandleFunc("POST /apis/serving/v1/namespaces/{ns}/deployments/{name}/promote", func(w http.ResponseWriter, r *http.Request) {
		s.mu.Lock()
		s.calls = append(s.calls, "promote "+r.PathValue("name"))
		s.mu.Unlock()
		w.WriteHeader(http.StatusAccepted)
		_, _ = io.WriteString(w, `{}`)
	})
	mux.HandleFunc("POST /v1/models/{rest}", func(w http.ResponseWriter, r *http.Request) {
		b, _ := io.ReadAll(r.Body)
		s.mu.Lock()
		s.calls = append(s.calls, "predict "+r.PathValue("rest")+" "+string(b))
		s.mu.Unlock()
		if strings.Contains(string(b), "bad") {
			w.WriteHeader(http.StatusBadRequest)
			_, _ = io.WriteString(w, `{"error":"Failed to process element: 0 of 'instances' list."}`)
			return
		}
		_, _ = io.WriteString(w, `{"predictions":[[0.1,0.9]]}`)
	})
	srv := httptest.NewServer(mux)
	t.Cleanup(srv.Close)
	return srv
}

func post(h http.Handler, path string, form url.Values) *httptest.ResponseRecorder {
	rec := httptest.NewRecorder()
	req := httptest.NewRequest("POST", path, strings.NewReader(form.Encode()))
	req.Header.Set("Content-Type", "application/x-www-form-urlencoded")
	req.Header.Set("Sec-Fetch-Site", "same-origin")
	h.ServeHTTP(rec, req)
	return rec
}

// The deployment page shows versions and the traffic split; canary, promote and rollback send what
// KServe users write (canaryTrafficPercent on the InferenceService; 0 to roll back a canary; the
// previous revision pinned after a full rollout) and the try-it form shows TF Serving's answer.
func TestDeploymentPageActions(t *testing.T) {
	pct := 20
	api := &servingAPI{view: servingv1.DeploymentView{Namespace: "team-a", Name: "mnist", Ready: true, Generation: 2,
		Spec: servingv1.Deployment{Namespace: "team-a", Name: "mnist", ModelName: "mnist", ModelFormat: "onnx", StorageURI: "s3://m/v2",
			CanaryTrafficPercent: &pct, VersionLabels: map[string]int64{"stable": 1}, Form: servingv1.FormInferenceService},
		Status: servingv1.Status{Revisions: []servingv1.Revision{
			{Name: "mnist-predictor-00001", StorageURI: "s3://m/v1", Version: 1},
			{Name: "mnist-predictor-00002", StorageURI: "s3://m/v2", Version: 3}}}}}
	api.view.Status.Components.Predictor = servingv1.PredictorStatus{LatestRolledoutRevision: "mnist-predictor-00001",
		Traffic: []servingv1.TrafficTarget{{RevisionName: "mnist-predictor-00002", Version: 3, Percent: 20, Tag: "latest"},
			{RevisionName: "mnist-predictor-00001", Version: 1, Percent: 80, Tag: "prev"}}}
	h := newTestApp(t, api.server(t).URL)

	rec := httptest.NewRecorder()
	h.ServeHTTP(rec, httptest.NewRequest("GET", "/ui/models/team-a/mnist", nil))
	body := rec.Body.String()
	if rec.Code != 200 {
		t.Fatalf("%d %s", rec.Code, body)
	}
	for _, want := range []string{"mnist-predictor-00002", `value="20"`, "Promote mnist-predictor-00002 to 100%", "Roll back to mnist-predictor-00001 (v1)",
		`action="/ui/models/team-a/mnist/canary"`, "/v1/models/mnist:predict"} {
		if !strings.Contains(body, want) {
			t.Errorf("deployment page lacks %s", want)
		}
	}

	for _, c := range []struct {
		action string
		form   url.Values
	}{
		{"promote", nil},
		{"rollback", nil},
		{"canary", url.Values{"storage_uri": {"s3://m/v3"}, "percent": {"10"}}},
	} {
		if rec := post(h, "/ui/models/team-a/mnist/"+c.action, c.form); rec.Code != http.StatusSeeOther {
			t.Errorf("%s: %d %s", c.action, rec.Code, rec.Body)
		}
	}
	if rec := post(h, "/ui/models/team-a/mnist/canary", url.Values{"storage_uri": {"s3://m/v3"}, "percent": {"101"}}); rec.Code != 400 || !strings.Contains(rec.Body.String(), "percent:") {
		t.Errorf("canary 101%%: %d, want 400 naming percent", rec.Code)
	}
	if len(api.docs) != 2 {
		t.Fatalf("applied %d documents, want 2 (rollback, canary): %v", len(api.docs), api.calls)
	}
	pred := func(doc map[string]any) map[string]any {
		return doc["spec"].(map[string]any)["predictor"].(map[string]any)
	}
	rb, canary := api.docs[0], api.docs[1]
	if rb["apiVersion"] != "serving.kserve.io/v1beta1" || rb["kind"] != "InferenceService" || pred(rb)["canaryTrafficPercent"] != 0.0 ||
		pred(rb)["model"].(map[string]any)["storageUri"] != "s3://m/v2" {
		t.Errorf("rollback of a canary sent %v, want the InferenceService with canaryTrafficPercent 0", rb)
	}
	if pred(canary)["canaryTrafficPercent"] != 10.0 || pred(canary)["model"].(map[string]any)["storageUri"] != "s3://m/v3" {
		t.Errorf("canary sent %v", canary)
	}
	if ann := canary["metadata"].(map[string]any)["annotations"].(map[string]any); ann[servingv1.AnnotationVersionLabels] != "stable=1" {
		t.Errorf("the version labels were not kept: %v", ann)
	}
	if !strings.HasPrefix(api.calls[0], "promote mnist") || !strings.HasSuffix(api.calls[1], "Bearer tok") {
		t.Errorf("calls %q", api.calls)
	}

	// After a full rollout, rollback pins the previous revision's model and version.
	api.mu.Lock()
	api.view.Spec.CanaryTrafficPercent = nil
	api.view.Status.Components.Predictor = servingv1.PredictorStatus{LatestRolledoutRevision: "mnist-predictor-00002", PreviousRolledoutRevision: "mnist-predictor-00001",
		Traffic: []servingv1.TrafficTarget{{RevisionName: "mnist-predictor-00002", Version: 3, Percent: 100, Tag: "latest"}}}
	api.mu.Unlock()
	if rec := post(h, "/ui/models/team-a/mnist/rollback", nil); rec.Code != http.StatusSeeOther {
		t.Fatalf("rollback: %d %s", rec.Code, rec.Body)
	}
	last := api.docs[len(api.docs)-1]
	if _, ok := pred(last)["canaryTrafficPercent"]; ok || pred(last)["model"].(map[string]any)["storageUri"] != "s3://m/v1" ||
		last["metadata"].(map[string]any)["annotations"].(map[string]any)[servingv1.AnnotationVersionPolicy] != "specific:1" {
		t.Errorf("rollback after a rollout sent %v, want s3://m/v1 pinned to version 1", last)
	}

	// Try it: the body goes to :predict as typed; the answer (an error too) is shown with its status.
	rec = post(h, "/ui/models/team-a/mnist/predict", url.Values{"request": {`{"instances": [[1, 2]]}`}})
	if rec.Code != 200 || !strings.Contains(rec.Body.String(), `&#34;predictions&#34;`) || !strings.Contains(rec.Body.String(), `id="predict-status" class="badge st-succeeded">200`) {
		t.Errorf("predict: %d %s", rec.Code, rec.Body)
	}
	rec = post(h, "/ui/models/team-a/mnist/predict", url.Values{"request": {`{"instances": "bad"}`}})
	if !strings.Contains(rec.Body.String(), ">400<") || !strings.Contains(rec.Body.String(), "Failed to process element") {
		t.Errorf("predict error: %d %s", rec.Code, rec.Body)
	}
	rec = post(h, "/ui/models/team-a/mnist/predict", url.Values{"request": {`{"instances": [`}})
	if rec.Code != 400 || !strings.Contains(rec.Body.String(), "request: not JSON") {
		t.Errorf("predict with bad JSON: %d", rec.Code)
	}
	if !strings.Contains(strings.Join(api.calls, "\n"), `predict mnist:predict {"instances": [[1, 2]]}`) {
		t.Errorf("predict calls: %q", api.calls)
	}
	rec = post(h, "/ui/models/team-a/mnist/explode", nil)
	if rec.Code != 404 {
		t.Errorf("unknown action: %d", rec.Code)
	}
}

func TestNotebookRowsShowStateAndCulling(t *testing.T) {
	mk := func(cond, reason string, ann map[string]string, url string) notebooksv1.Notebook {
		nb := notebooksv1.Notebook{Metadata: notebooksv1.ObjectMeta{Name: "nb", Namespace: "team-a", Annotations: ann}}
		nb.Status.Conditions = []notebooksv1.Condition{{Type: cond, Status: "True", Reason: reason}}
		nb.Status.URL = url
		nb.Spec.Template.Spec.Containers = []notebooksv1.Container{{Image: "img", Resources: notebooksv1.ResourceRequirements{Requests: map[string]string{"cpu": "500m"}}}}
		return nb
	}
	culled := rowOf(mk(notebooksv1.ConditionTerminated, notebooksv1.ReasonCulled, map[string]string{
		notebooksv1.AnnotationStopped: "2026-01-02T03:04:05Z", notebooksv1.AnnotationLastActivity: "2026-01-01T00:00:00.5Z"}, ""))
	if culled.State != "Culled" || !culled.Culled || culled.Running || culled.LastActivity != "2026-01-01 00:00:00Z" || culled.StoppedAt != "2026-01-02 03:04:05Z" || culled.CPU != "500m" {
		t.Errorf("culled row: %+v", culled)
	}
	running := rowOf(mk(notebooksv1.ConditionRunning, notebooksv1.ReasonReady, nil, "/notebook/team-a/nb/"))
	if running.State != "Running" || !running.Running {
		t.Errorf("running row: %+v", running)
	}
	if r := rowOf(mk(notebooksv1.ConditionWaiting, notebooksv1.ReasonStarting, nil, "")); r.State != "Starting" {
		t.Errorf("waiting row: %+v", r)
	}
	if r := rowOf(mk(notebooksv1.ConditionTerminated, notebooksv1.ReasonError, nil, "")); r.State != "Failed" {
		t.Errorf("crashed row: %+v", r)
	}
}

// Connect redirects to the notebook's proxied path on this site, with no token in the URL; a notebook
// that is not running is refused with its state.
func TestNotebookConnectRedirectsWithoutToken(t *testing.T) {
	running := true
	mux := http.NewServeMux()
	mux.HandleFunc("GET /apis/notebooks/v1/namespaces/{ns}/notebooks/{name}", func(w http.ResponseWriter, r *http.Request) {
		nb := notebooksv1.Notebook{Metadata: notebooksv1.ObjectMeta{Name: r.PathValue("name"), Namespace: r.PathValue("ns")}}
		if running {
			nb.Status.Conditions = []notebooksv1.Condition{{Type: notebooksv1.ConditionRunning, Status: "True"}}
			nb.Status.URL = notebooksv1.PathPrefix(nb.Metadata.Namespace, nb.Metadata.Name)
		} else {
			nb.Metadata.Annotations = map[string]string{notebooksv1.AnnotationStopped: "2026-01-01T00:00:00Z"}
		}
		_ = json.NewEncoder(w).Encode(nb)
	})
	api := httptest.NewServer(mux)
	t.Cleanup(api.Close)
	h := newTestApp(t, api.URL)
	rec := httptest.NewRecorder()
	h.ServeHTTP(rec, httptest.NewRequest("GET", "/ui/notebooks/team-a/nb1/connect", nil))
	if rec.Code != http.StatusSeeOther || rec.Header().Get("Location") != "/notebook/team-a/nb1/" {
		t.Errorf("connect: %d to %q", rec.Code, rec.Header().Get("Location"))
	}
	running = false
	rec = httptest.NewRecorder()
	h.ServeHTTP(rec, httptest.NewRequest("GET", "/ui/notebooks/team-a/nb1/connect", nil))
	if rec.Code != http.StatusConflict || !strings.Contains(rec.Body.String(), "not running (Stopped)") {
		t.Errorf("connect to a stopped notebook: %d %s", rec.Code, rec.Body)
	}
}

func TestJobPageShowsTFConfigExitCodesAndEvents(t *testing.T) {
	code := int32(137)
	start := time.Date(2026, 1, 1, 0, 0, 0, 0, time.UTC)
	jv := trainingv1.JobView{Kind: "TFJob", Namespace: "team-a", Name: "dist", State: trainingv1.JobRestarting, Restarts: 1,
		Job: trainingv1.Job{TFJob: &trainingv1.TFJob{}},
		Replicas: []trainingv1.ReplicaView{{Name: "dist-worker-0", Type: "Worker", Index: 0, State: trainingv1.ReplicaRunning, Attempt: 2, Restarts: 1,
			ExitCode: &code, Reason: "Killed", StartedAt: &start, TFConfig: `{"cluster":{"worker":["127.0.0.1:1"]},"task":{"type":"worker","index":0},"environment":"cloud"}`}}}
	jv.Job.TFJob.Status.Conditions = []trainingv1.JobCondition{{Type: trainingv1.JobRestarting, Status: "True", Reason: "TFJobRestarting", Message: "TFJob team-a/dist is restarting because 1 Worker replica(s) failed."}}
	mux := http.NewServeMux()
	mux.HandleFunc("GET /apis/training/v1/namespaces/{ns}/jobs/{name}", func(w http.ResponseWriter, r *http.Request) { _ = json.NewEncoder(w).Encode(jv) })
	api := httptest.NewServer(mux)
	t.Cleanup(api.Close)
	h := newTestApp(t, api.URL)
	rec := httptest.NewRecorder()
	h.ServeHTTP(rec, httptest.NewRequest("GET", "/ui/jobs/team-a/dist", nil))
	body := rec.Body.String()
	if rec.Code != 200 {
		t.Fatalf("%d %s", rec.Code, body)
	}
	for _, want := range []string{`<td data-cell="exit">137</td>`, `&#34;environment&#34;: &#34;cloud&#34;`, "TFJobRestarting", "ExitedWithCode",
		"Replica dist-worker-0 exited with code 137 (Killed)", `logs?replica=worker-0&amp;attempt=1`, `logs?replica=worker-0&amp;attempt=2`} {
		if !strings.Contains(body, want) {
			t.Errorf("job page lacks %s", want)
		}
	}
}

func TestEventTailLinesAndFilter(t *testing.T) {
	line := []byte(`{"specversion":"1.0","id":"e1","type":"io.sluice.training.job.running.v1","source":"/sluice/training","subject":"jobs/team-a/tfjob/x","time":"2026-01-01T00:00:00Z","datacontenttype":"application/json","data":{"namespace":"team-a","name":"x"},"stream":"TRAINING","sequence":"7"}`)
	ev, _, ok := decodeTailLine(line)
	if !ok || ev.Namespace != "team-a" || ev.Sequence != "7" || !strings.Contains(ev.Data, `"name":"x"`) {
		t.Fatalf("decoded %+v %v", ev, ok)
	}
	for _, c := range []struct {
		q    string
		want bool
	}{
		{"", true},
		{"type_prefix=io.sluice.training.", true},
		{"type_prefix=io.sluice.pipeline.", false},
		{"source=/sluice/train", true},
		{"source=/other", false},
		{"namespace=team-a", true},
		{"namespace=team-b", false},
	} {
		q, _ := url.ParseQuery(c.q)
		f, err := parseEventFilter(q)
		if err != nil {
			t.Fatal(err)
		}
		if got := f.match(ev); got != c.want {
			t.Errorf("%s: match %v, want %v", c.q, got, c.want)
		}
	}
	if _, err := parseEventFilter(url.Values{"type_prefix": {"io.*"}}); err == nil || !strings.Contains(err.Error(), "type_prefix") {
		t.Errorf("a glob in the prefix: %v", err)
	}
	if _, _, ok := decodeTailLine([]byte(`{"error":"events: tail X: gone"}`)); ok {
		t.Error("an error line decoded as an event")
	}
}

// The home page lists deployments (the serving list's "deployments" key) and notebooks with a connect
// link through the dashboard, and its failures card joins failed training jobs, deployments whose model
// failed to load and crashed notebooks to the failed runs.
func TestHomeShowsDeploymentsNotebooksAndFailures(t *testing.T) {
	mux := http.NewServeMux()
	mux.HandleFunc("GET /apis/v1/runs", func(w http.ResponseWriter, r *http.Request) {
		_, _ = io.WriteString(w, `{"runs":[{"run_id":"r1","run_name":"nightly","state":"FAILED","created_at":"2026-01-01T00:00:00Z"}]}`)
	})
	mux.HandleFunc("GET /apis/auth/v1/namespaces", func(w http.ResponseWriter, r *http.Request) {
		_, _ = io.WriteString(w, `{"namespaces":[{"name":"team-a"}]}`)
	})
	mux.HandleFunc("GET /apis/training/v1/namespaces/{ns}/jobs", func(w http.ResponseWriter, r *http.Request) {
		if r.PathValue("ns") != "team-a" {
			w.WriteHeader(http.StatusForbidden)
			_, _ = io.WriteString(w, `{"error":"forbidden"}`)
			return
		}
		_, _ = io.WriteString(w, `{"jobs":[{"kind":"TFJob","namespace":"team-a","name":"bad-job","state":"Failed","job":{"tfJob":{}},"replicas":[]}]}`)
	})
	mux.HandleFunc("GET /apis/notebooks/v1/namespaces/{ns}/notebooks", func(w http.ResponseWriter, r *http.Request) {
		if r.PathValue("ns") != "team-a" {
			_, _ = io.WriteString(w, `{"items":[]}`)
			return
		}
		_, _ = io.WriteString(w, `{"items":[{"metadata":{"name":"nb1","namespace":"team-a"},"spec":{"template":{"spec":{"containers":[{"image":"i"}]}}},
			"status":{"url":"/notebook/team-a/nb1/","readyReplicas":1,"conditions":[{"type":"Running","status":"True"}]}},
			{"metadata":{"name":"nb2","namespace":"team-a"},"spec":{"template":{"spec":{"containers":[{"image":"i"}]}}},
			"status":{"readyReplicas":0,"conditions":[{"type":"Terminated","status":"True","reason":"Error","message":"exit 1"}]}}]}`)
	})
	mux.HandleFunc("GET /apis/serving/v1/namespaces/{ns}/deployments", func(w http.ResponseWriter, r *http.Request) {
		if r.PathValue("ns") != "team-a" {
			_, _ = io.WriteString(w, `{"deployments":[]}`)
			return
		}
		_, _ = io.WriteString(w, `{"deployments":[{"namespace":"team-a","name":"mnist","spec":{"modelName":"mnist"},"ready":false,
			"status":{"conditions":[],"modelStatus":{"transitionStatus":"BlockedByFailedLoad","states":{"activeModelState":"FailedToLoad"},
			"lastFailureInfo":{"reason":"ModelLoadFailed","message":"no model.onnx","time":"2026-01-01T00:00:00Z"}},"components":{"predictor":{"traffic":[]}}}}]}`)
	})
	api := httptest.NewServer(mux)
	t.Cleanup(api.Close)
	h := newTestApp(t, api.URL)
	rec := httptest.NewRecorder()
	h.ServeHTTP(rec, httptest.NewRequest("GET", "/", nil))
	body := rec.Body.String()
	if rec.Code != 200 {
		t.Fatalf("%d %s", rec.Code, body)
	}
	for _, want := range []string{`href="/ui/models/team-a/mnist"`, "ModelLoadFailed: no model.onnx", `href="/ui/jobs/team-a/bad-job?kind=TFJob"`,
		`href="/ui/notebooks/team-a/nb1/connect"`, "team-a/nb2 Error exit 1", `href="/ui/runs/r1"`} {
		if !strings.Contains(body, want) {
			t.Errorf("home lacks %s", want)
		}
	}
	if strings.Contains(body, "forbidden") {
		t.Error("a well-known namespace the caller may not read is shown as a problem on home")
	}
	if strings.Contains(body, `href="/notebook/`) {
		t.Error("home links the notebook proxy directly instead of the dashboard's connect")
	}
}
