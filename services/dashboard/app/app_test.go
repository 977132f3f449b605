package app

import (
	"encoding/json"
	"fmt"
	"io"
	"net/http"
	"net/http/httptest"
	"slices"
	"strings"
	"sync"
	"sync/atomic"
	"syscall"
	"testing"
	"time"

	"github.com/sluice-ml/sluice/libs/auth"
	"github.com/sluice-ml/sluice/libs/platform"
	"github.com/sluice-ml/sluice/services/pipelines/api/pipelinesv1"
)

func TestGraphLayoutAndStateColours(t *testing.T) {
	g := pipelinesv1.Graph{PipelineName: "p", Tasks: []pipelinesv1.GraphTask{
		{Path: "a", Name: "a", DisplayName: `quote " and <tag> & \ back`, Kind: "container"},
		{Path: "loop", Name: "loop", Kind: "container", Loop: true, DependsOn: []string{"a"}},
		{Path: "inner", Name: "inner", Kind: "dag", DependsOn: []string{"a"}},
		{Path: "inner/x", Name: "x", Parent: "inner", Kind: "container", Condition: "inputs.parameter_values['c'] == 'y'"},
		{Path: "end", Name: "end", Kind: "container", ExitHandler: true, DependsOn: []string{"loop", "inner"}},
	}}
	l := newLayouter()
	defer l.close()
	lay, err := l.svg(t.Context(), "k", g)
	if err != nil {
		t.Fatal(err)
	}
	if len(lay.idx) != len(g.Tasks) {
		t.Fatalf("layout has %d node classes, want %d", len(lay.idx), len(g.Tasks))
	}
	svg := colour(lay, []string{"SUCCEEDED", "RUNNING", "FAILED", "SKIPPED", `PENDING"><script>`})
	if !strings.HasPrefix(svg, "<svg") {
		t.Fatalf("svg starts with %.40q", svg)
	}
	for _, want := range []string{`class="node st-succeeded"`, `class="node st-running"`, `class="node st-failed"`, `class="node st-skipped"`,
		`class="node st-pendingscript"`, `id="task_0"`, `xlink:href="#row-3"`, "quote &quot; and &lt;tag&gt; &amp;", "[loop]", "[if]", "[exit handler]"} {
		if !strings.Contains(svg, want) {
			t.Errorf("svg lacks %s", want)
		}
	}
	if strings.Contains(svg, "<script") {
		t.Error("a state reached the SVG unescaped")
	}
	// Unchanged graphs are served from the cache; a changed one is laid out again.
	again, _ := l.svg(t.Context(), "k", g)
	if again != lay {
		t.Error("the same graph was laid out twice")
	}
	g.Tasks = g.Tasks[:2]
	changed, _ := l.svg(t.Context(), "k", g)
	if changed == lay || len(changed.idx) != 2 {
		t.Error("a changed graph kept its old layout")
	}
	if svg := colour(changed, nil); strings.Count(svg, "st-none") != 2 {
		t.Errorf("without states nodes are st-none: %s", svg)
	}
}

func TestParamValueFollowsDeclaredTypes(t *testing.T) {
	for _, c := range []struct {
		typ, in string
		want    any
		err     string
	}{
		{"STRING", " 12 ", " 12 ", ""},
		{"NUMBER_INTEGER", "12", int64(12), ""},
		{"NUMBER_INTEGER", "1.5", nil, `n: "1.5" is not an integer`},
		{"NUMBER_DOUBLE", "1.5", 1.5, ""},
		{"NUMBER_DOUBLE", "x", nil, `n: "x" is not a number`},
		{"BOOLEAN", "true", true, ""},
		{"BOOLEAN", "yes", nil, `n: "yes" is not true or false`},
		{"LIST", "[1, 2]", []any{1.0, 2.0}, ""},
		{"STRUCT", `{"a": 1}`, map[string]any{"a": 1.0}, ""},
		{"STRUCT", `{`, nil, "n: not JSON"},
	} {
		got, err := paramValue(pipelinesv1.GraphInput{Name: "n", Type: c.typ}, c.in)
		if c.err != "" {
			if err == nil || !strings.Contains(err.Error(), c.err) {
				t.Errorf("%s %q: error %v, want %q", c.typ, c.in, err, c.err)
			}
			continue
		}
		if err != nil || fmt.Sprint(got) != fmt.Sprint(c.want) {
			t.Errorf("%s %q = %#v, %v; want %#v", c.typ, c.in, got, err, c.want)
		}
	}
}

func TestSafeNextStaysOnThisSite(t *testing.T) {
	for in, want := range map[string]string{"/ui/runs?x=1": "/ui/runs?x=1", "//evil.example": "/", "https://evil.example/": "/", "/\\evil": "/", "": "/"} {
		if got := safeNext(in); got != want {
			t.Errorf("safeNext(%q) = %q, want %q", in, got, want)
		}
	}
}

// fakeRuns serves a run of n tasks (a layered DAG, 25 tasks a layer) as the pipelines API does. It stands
// in for the pipelines service only to measure the dashboard's own rendering; the browser test in
// cli/internal/command runs the real services.
func fakeRuns(t testing.TB, n int) *httptest.Server {
	g := pipelinesv1.Graph{PipelineName: "big"}
	st := runDetail{RunState: pipelinesv1.RunState{RunID: "big-run", RunName: "big", PipelineName: "big", State: pipelinesv1.RunRunning, CreatedAt: time.Now()}}
	states := []string{pipelinesv1.TaskSucceeded, pipelinesv1.TaskRunning, pipelinesv1.TaskCached, pipelinesv1.TaskFailed}
	for i := 0; i < n; i++ {
		gt := pipelinesv1.GraphTask{Path: fmt.Sprintf("t%d", i), Name: fmt.Sprintf("t%d", i), Kind: "container"}
		if i >= 25 {
			gt.DependsOn = []string{fmt.Sprintf("t%d", i-25), fmt.Sprintf("t%d", (i/25-1)*25+(i*7)%25)}
			slices.Sort(gt.DependsOn)
			gt.DependsOn = slices.Compact(gt.DependsOn)
		}
		g.Tasks = append(g.Tasks, gt)
		now := time.Now()
		st.Tasks = append(st.Tasks, pipelinesv1.TaskState{Path: gt.Path, Name: gt.Name, State: states[i%len(states)], Attempts: 1, StartedAt: &now,
			Outputs: &pipelinesv1.TaskOutputs{Parameters: map[string]any{"out": i}}, LogURI: "s3://b/log"})
	}
	mux := http.NewServeMux()
	mux.HandleFunc("GET /apis/v1/runs/{id}", func(w http.ResponseWriter, r *http.Request) { _ = json.NewEncoder(w).Encode(st) })
	mux.HandleFunc("GET /apis/v1/runs/{id}/graph", func(w http.ResponseWriter, r *http.Request) { _ = json.NewEncoder(w).Encode(g) })
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if r.Header.Get("Authorization") != "Bearer tok" {
			http.Error(w, `{"error":"no"}`, http.StatusUnauthorized)
			return
		}
		mux.ServeHTTP(w, r)
	}))
	t.Cleanup(srv.Close)
	return srv
}

func newTestApp(t testing.TB, api string) http.Handler {
	a, err := New(&platform.Deps{Namespace: "sluice"}, Config{APIURL: api, TemporalUIURL: "http://temporal-ui"})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { a.Close() })
	mux := http.NewServeMux()
	a.Routes(mux)
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		r.Header.Set("Authorization", "Bearer tok")
		mux.ServeHTTP(w, r.WithContext(auth.WithIdentity(r.Context(), auth.Identity{Subject: "alice"})))
	})
}

func TestRunPageShowsEveryTaskAndLinksTemporal(t *testing.T) {
	h := newTestApp(t, fakeRuns(t, 60).URL)
	rec := httptest.NewRecorder()
	h.ServeHTTP(rec, httptest.NewRequest("GET", "/ui/runs/big-run", nil))
	body := rec.Body.String()
	if rec.Code != 200 {
		t.Fatalf("%d %s", rec.Code, body)
	}
	for _, want := range []string{`id="row-59"`, `id="task_59"`, `class="node st-failed"`, `data-live="/ui/runs/big-run/live"`,
		`href="http://temporal-ui/namespaces/sluice/workflows/big-run"`, "alice"} {
		if !strings.Contains(body, want) {
			t.Errorf("run page lacks %s", want)
		}
	}
	if strings.Contains(body, "tok") && strings.Contains(body, "Bearer tok") {
		t.Error("the page shows the token")
	}
	rec = httptest.NewRecorder()
	h.ServeHTTP(rec, httptest.NewRequest("GET", "/ui/runs/missing/../big-run/nope", nil))
	if rec.Code/100 == 5 {
		t.Errorf("unknown path: %d", rec.Code)
	}
}

func processCPU() time.Duration {
	var ru syscall.Rusage
	_ = syscall.Getrusage(syscall.RUSAGE_SELF, &ru)
	return time.Duration(ru.Utime.Nano() + ru.Stime.Nano())
}

// The live stream sends the run's state on every change and "done" once the run ended.
func TestRunLiveStreamsChangesUntilDone(t *testing.T) {
	var calls atomic.Int32
	g := pipelinesv1.Graph{Tasks: []pipelinesv1.GraphTask{{Path: "a", Name: "a"}, {Path: "l", Name: "l", Loop: true, DependsOn: []string{"a"}}}}
	mux := http.NewServeMux()
	mux.HandleFunc("GET /apis/v1/runs/{id}/graph", func(w http.ResponseWriter, r *http.Request) { _ = json.NewEncoder(w).Encode(g) })
	mux.HandleFunc("GET /apis/v1/runs/{id}", func(w http.ResponseWriter, r *http.Request) {
		n := calls.Add(1)
		st := runDetail{RunState: pipelinesv1.RunState{RunID: "r", State: pipelinesv1.RunRunning,
			Tasks: []pipelinesv1.TaskState{{Path: "a", State: pipelinesv1.TaskRunning}}}}
		if n >= 3 {
			st.Tasks = []pipelinesv1.TaskState{{Path: "a", State: pipelinesv1.TaskSucceeded}, {Path: "l/0", State: pipelinesv1.TaskSucceeded}, {Path: "l/1", State: pipelinesv1.TaskRunning}}
		}
		if n >= 5 {
			st.State = pipelinesv1.RunSucceeded
			st.Tasks[2].State = pipelinesv1.TaskSucceeded
		}
		_ = json.NewEncoder(w).Encode(st)
	})
	api := httptest.NewServer(mux)
	t.Cleanup(api.Close)
	a, err := New(&platform.Deps{Namespace: "sluice"}, Config{APIURL: api.URL, Poll: 5 * time.Millisecond})
	if err != nil {
		t.Fatal(err)
	}
	dmux := http.NewServeMux()
	a.Routes(dmux)
	srv := httptest.NewServer(dmux)
	t.Cleanup(srv.Close)
	resp, err := http.Get(srv.URL + "/ui/runs/r/live")
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	if ct := resp.Header.Get("Content-Type"); ct != "text/event-stream" {
		t.Fatalf("content type %q", ct)
	}
	b, _ := io.ReadAll(resp.Body) // the server ends the stream after "done"
	s := string(b)
	if n := strings.Count(s, "event: state\n"); n != 3 {
		t.Errorf("%d state events, want 3 (one per change):\n%s", n, s)
	}
	for _, want := range []string{`"a":{"state":"RUNNING"}`, `"loops":{"l":[2,1]}`, `"loops":{"l":[2,2]}`, "event: done\ndata: \"SUCCEEDED\""} {
		if !strings.Contains(s, want) {
			t.Errorf("stream lacks %s:\n%s", want, s)
		}
	}
}

// Cancel and retry post to the pipelines API with the caller's token and go to the (new) run; a form
// another site posts with the browser's cookie is refused before the API is called.
func TestRunActionsAndCrossSiteRefusal(t *testing.T) {
	var posted []string
	mux := http.NewServeMux()
	mux.HandleFunc("POST /apis/v1/runs/{id}/{action}", func(w http.ResponseWriter, r *http.Request) {
		posted = append(posted, r.PathValue("action")+" "+r.PathValue("id")+" "+r.Header.Get("Authorization"))
		if r.PathValue("action") == "retry" {
			_ = json.NewEncoder(w).Encode(map[string]string{"run_id": "r2"})
			return
		}
		w.WriteHeader(http.StatusAccepted)
		_ = json.NewEncoder(w).Encode(map[string]string{"run_id": "r1", "state": "CANCELING"})
	})
	api := httptest.NewServer(mux)
	t.Cleanup(api.Close)
	h := newTestApp(t, api.URL)
	for action, want := range map[string]string{"cancel": "/ui/runs/r1", "retry": "/ui/runs/r2"} {
		rec := httptest.NewRecorder()
		req := httptest.NewRequest("POST", "/ui/runs/r1/"+action, nil)
		req.Header.Set("Sec-Fetch-Site", "same-origin")
		h.ServeHTTP(rec, req)
		if rec.Code != http.StatusSeeOther || rec.Header().Get("Location") != want {
			t.Errorf("%s: %d to %q, want 303 to %s", action, rec.Code, rec.Header().Get("Location"), want)
		}
	}
	rec := httptest.NewRecorder()
	req := httptest.NewRequest("POST", "/ui/runs/r1/cancel", nil)
	req.Header.Set("Sec-Fetch-Site", "cross-site")
	h.ServeHTTP(rec, req)
	if rec.Code != http.StatusForbidden {
		t.Errorf("cross-site cancel: %d, want 403", rec.Code)
	}
	rec = httptest.NewRecorder()
	req = httptest.NewRequest("POST", "/ui/runs/r1/delete", nil)
	h.ServeHTTP(rec, req)
	if rec.Code != http.StatusNotFound {
		t.Errorf("unknown action: %d, want 404", rec.Code)
	}
	if len(posted) != 2 || posted[0][len(posted[0])-10:] != "Bearer tok" {
		t.Errorf("API calls: %q, want cancel and retry with the caller's token", posted)
	}
}

// The overview pages cover the caller's profiles plus "default" and "kubeflow" (which need no profile: the
// README tour's TFJob runs in kubeflow) and a namespace named by ?namespace=; a well-known namespace the
// caller may not read is not reported as a problem, one asked for by name is.
func TestJobsPageCoversWellKnownAndAskedNamespaces(t *testing.T) {
	var mu sync.Mutex
	asked := map[string]bool{}
	mux := http.NewServeMux()
	mux.HandleFunc("GET /apis/auth/v1/namespaces", func(w http.ResponseWriter, r *http.Request) {
		_, _ = io.WriteString(w, `{"namespaces":[{"name":"team-a"}]}`)
	})
	mux.HandleFunc("GET /apis/training/v1/namespaces/{ns}/jobs", func(w http.ResponseWriter, r *http.Request) {
		ns := r.PathValue("ns")
		mu.Lock()
		asked[ns] = true
		mu.Unlock()
		if ns == "default" || ns == "secret" {
			w.WriteHeader(http.StatusForbidden)
			_, _ = io.WriteString(w, `{"error":"forbidden"}`)
			return
		}
		_, _ = io.WriteString(w, `{"jobs":[]}`)
	})
	api := httptest.NewServer(mux)
	t.Cleanup(api.Close)
	h := newTestApp(t, api.URL)
	rec := httptest.NewRecorder()
	h.ServeHTTP(rec, httptest.NewRequest("GET", "/ui/jobs", nil))
	if rec.Code != http.StatusOK {
		t.Fatalf("jobs page: %d %s", rec.Code, rec.Body)
	}
	for _, ns := range []string{"team-a", "default", "kubeflow"} {
		if !asked[ns] {
			t.Errorf("namespace %s was not listed (asked: %v)", ns, asked)
		}
	}
	if strings.Contains(rec.Body.String(), "forbidden") {
		t.Errorf("a well-known namespace the caller may not read is shown as a problem:\n%s", rec.Body)
	}
	if !strings.Contains(rec.Body.String(), "sluice train -f") {
		t.Errorf("the empty page should name the real submit command:\n%s", rec.Body)
	}
	rec = httptest.NewRecorder()
	h.ServeHTTP(rec, httptest.NewRequest("GET", "/ui/jobs?namespace=secret", nil))
	if !asked["secret"] || !strings.Contains(rec.Body.String(), "secret: 403") {
		t.Errorf("?namespace=secret: asked %v, page:\n%s", asked, rec.Body)
	}
}
