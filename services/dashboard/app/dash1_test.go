package app

import (
	"bytes"
	"encoding/json"
	"image"
	"image/color"
	"image/png"
	"io"
	"net/http"
	"net/http/httptest"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/sluice-ml/sluice/services/metadata/api/metadatav1"
	"github.com/sluice-ml/sluice/services/notebooks/api/notebooksv1"
	"github.com/sluice-ml/sluice/services/pipelines/api/pipelinesv1"
	"github.com/sluice-ml/sluice/services/tuning/api/tuningv1"
)

// These tests stand a local fake in for the API a page reads (the fake answers what the service's
// handler answers: the same JSON types); the browser test in cli/internal/command drives the pages
// against the real services.

func get(t *testing.T, h http.Handler, path string) *httptest.ResponseRecorder {
	t.Helper()
	rec := httptest.NewRecorder()
	h.ServeHTTP(rec, httptest.NewRequest("GET", path, nil))
	return rec
}

func mustContain(t *testing.T, what, body string, wants ...string) {
	t.Helper()
	for _, w := range wants {
		if !strings.Contains(body, w) {
			t.Errorf("%s lacks %q", what, w)
		}
	}
}

func pngBytes(t *testing.T) []byte {
	img := image.NewRGBA(image.Rect(0, 0, 4, 4))
	img.Set(1, 1, color.RGBA{255, 0, 0, 255})
	var b bytes.Buffer
	if err := png.Encode(&b, img); err != nil {
		t.Fatal(err)
	}
	return b.Bytes()
}

// artifactAPI fakes the pipelines API's run and artifact reads for one run "r" whose task "t" has the
// given outputs (name → content; a map value is a directory).
func artifactAPI(t *testing.T, arts map[string]pipelinesv1.Artifact, content map[string]any) string {
	mux := http.NewServeMux()
	mux.HandleFunc("GET /apis/v1/runs/{id}", func(w http.ResponseWriter, r *http.Request) {
		if r.PathValue("id") != "r" {
			w.WriteHeader(404)
			_, _ = io.WriteString(w, `{"error":"run not found"}`)
			return
		}
		_ = json.NewEncoder(w).Encode(runDetail{RunState: pipelinesv1.RunState{RunID: "r", RunName: "arts", State: pipelinesv1.RunSucceeded,
			Tasks: []pipelinesv1.TaskState{{Path: "t", Name: "t", State: pipelinesv1.TaskSucceeded, Outputs: &pipelinesv1.TaskOutputs{Artifacts: arts}}}}})
	})
	mux.HandleFunc("GET /apis/v1/runs/{id}/artifacts/{name}", func(w http.ResponseWriter, r *http.Request) {
		if r.Header.Get("Authorization") != "Bearer tok" || r.URL.Query().Get("task") != "t" {
			w.WriteHeader(400)
			return
		}
		c, ok := content[r.PathValue("name")]
		if !ok {
			w.WriteHeader(404)
			_, _ = io.WriteString(w, `{"error":"no output artifact"}`)
			return
		}
		if files, ok := c.(map[string]string); ok {
			f := r.URL.Query().Get("file")
			if f == "" {
				w.Header().Set("Content-Type", artifactDirectoryType)
				var list []artifactFile
				for p, s := range files {
					list = append(list, artifactFile{Path: p, Size: int64(len(s))})
				}
				_ = json.NewEncoder(w).Encode(map[string]any{"files": list})
				return
			}
			c = []byte(files[f])
		}
		w.Header().Set("Content-Type", "application/octet-stream")
		_, _ = w.Write(c.([]byte))
	})
	srv := httptest.NewServer(mux)
	t.Cleanup(srv.Close)
	return srv.URL
}

func TestArtifactPagePreviewsEachKind(t *testing.T) {
	pic := pngBytes(t)
	arts := map[string]pipelinesv1.Artifact{
		"notes":  {URI: "s3://b/r/t/notes", SchemaTitle: "system.Artifact"},
		"table":  {URI: "s3://b/r/t/table.csv", SchemaTitle: "system.Dataset"},
		"conf":   {URI: "s3://b/r/t/conf.json"},
		"readme": {URI: "s3://b/r/t/readme", SchemaTitle: "system.Markdown"},
		"viz":    {URI: "s3://b/r/t/viz", SchemaTitle: "system.HTML"},
		"pic":    {URI: "s3://b/r/t/pic"},
		"bigpic": {URI: "s3://b/r/t/bigpic", Size: inlineBytes + 1},
		"blob":   {URI: "s3://b/r/t/blob"},
		"dir":    {URI: "s3://b/r/t/dir"},
		"metrics": {URI: "s3://b/r/t/metrics", SchemaTitle: "system.Metrics",
			Metadata: map[string]any{"accuracy": 0.93, "loss": 0.21, "display_name": "m"}},
		"cls": {URI: "s3://b/r/t/cls", SchemaTitle: "system.ClassificationMetrics", Metadata: map[string]any{
			"confusionMatrix":   map[string]any{"annotationSpecs": []any{map[string]any{"displayName": "cat"}, map[string]any{"displayName": "dog"}}, "rows": []any{map[string]any{"row": []any{8.0, 2.0}}, map[string]any{"row": []any{1.0, 9.0}}}},
			"confidenceMetrics": []any{map[string]any{"confidenceThreshold": 0.9, "falsePositiveRate": 0.0, "recall": 0.4}, map[string]any{"confidenceThreshold": 0.5, "falsePositiveRate": 0.2, "recall": 0.8}, map[string]any{"confidenceThreshold": 0.1, "falsePositiveRate": 1.0, "recall": 1.0}},
		}},
	}
	content := map[string]any{
		"notes":  []byte("line one\n<script>alert(1)</script>\n"),
		"table":  []byte("name,score\nada,3\n\"b,c\",4\n"),
		"conf":   []byte(`{"a":1,"b":[true,null]}`),
		"readme": []byte("# Title\n\n| x | y |\n|---|---|\n| 1 | 2 |\n\nSome <em>inline</em> HTML <script>alert(1)</script><a href=\"javascript:alert(1)\">bad</a>\n\n[ok](https://example.com)\n"),
		"viz":    []byte("<html><body><script>document.title='viz'</script>chart</body></html>"),
		"pic":    pic,
		"bigpic": pic,
		"blob":   []byte{0, 1, 2, 3, 0xff},
		"dir":    map[string]string{"index.html": "<b>x</b>", "data/a.txt": "a"},
	}
	h := newTestApp(t, artifactAPI(t, arts, content))
	page := func(name string, extra ...string) string {
		t.Helper()
		rec := get(t, h, "/ui/runs/r/artifacts/"+name+"?task=t"+strings.Join(extra, ""))
		if rec.Code != 200 {
			t.Fatalf("%s: %d %s", name, rec.Code, rec.Body)
		}
		return rec.Body.String()
	}
	body := page("notes")
	body = page("table")
	mustContain(t, "CSV preview", body, `data-kind="csv"`, `<th scope="col">score</th>`, "<td>b,c</td>")
	body = page("conf")
	mustContain(t, "JSON preview", body, `data-kind="json"`, "{\n  &#34;a&#34;: 1,")
	body = page("readme")
	mustContain(t, "Markdown preview", body, `data-kind="markdown"`, "<h1", "Title</h1>", "<table>", `href="https://example.com"`, "<em>inline</em>")
	if strings.Contains(body, "<script>alert") || strings.Contains(body, "javascript:alert") {
		t.Error("the Markdown preview kept script")
	}
	body = page("viz")
	mustContain(t, "HTML preview", body, `data-kind="html"`, `<iframe id="html"`, `sandbox="allow-scripts"`, `src="/ui/runs/r/artifacts/viz/raw?task=t&amp;view=html"`)
	if strings.Contains(body, "document.title='viz'") {
		t.Error("the HTML visualisation was inlined into the page")
	}
	body = page("pic")
	mustContain(t, "image preview", body, `data-kind="image"`, `src="/ui/runs/r/artifacts/pic/raw?task=t&amp;view=image"`)
	body = page("bigpic")
	mustContain(t, "large image", body, `data-kind="binary"`, "larger than the 10 MiB the page shows inline")
	body = page("blob")
	mustContain(t, "binary preview", body, `data-kind="binary"`, "download it")
	body = page("dir")
	mustContain(t, "directory preview", body, `data-kind="directory"`, `href="/ui/runs/r/artifacts/dir?task=t&amp;file=data%2fa.txt"`)
	body = page("dir", "&file=index.html")
	mustContain(t, "directory file", body, `data-kind="html"`, `raw?file=index.html&amp;task=t&amp;view=html`)
	body = page("metrics")
	mustContain(t, "metrics", body, `data-kind="metrics"`, `<th scope="row">accuracy</th><td>0.93</td>`, `<th scope="row">loss</th><td>0.21</td>`)
	body = page("cls")
	mustContain(t, "classification metrics", body, `data-kind="classification"`, `<th scope="col">dog</th>`, `<th scope="row">cat</th><td>8</td><td>2</td>`,
		`<img id="roc" src="data:image/svg&#43;xml;base64,`, `alt="ROC curve of 3 thresholds`)

	// The raw content: an image with its own type, HTML under a sandbox CSP, downloads as attachments.
	rec := get(t, h, "/ui/runs/r/artifacts/pic/raw?task=t&view=image")
	if rec.Code != 200 || rec.Header().Get("Content-Type") != "image/png" || !bytes.Equal(rec.Body.Bytes(), pic) {
		t.Errorf("image: %d %q", rec.Code, rec.Header().Get("Content-Type"))
	}
	rec = get(t, h, "/ui/runs/r/artifacts/notes/raw?task=t&view=image")
	if rec.Code != http.StatusUnsupportedMediaType {
		t.Errorf("text as an image: %d", rec.Code)
	}
	rec = get(t, h, "/ui/runs/r/artifacts/viz/raw?task=t&view=html")
	csp := rec.Header().Get("Content-Security-Policy")
	if rec.Code != 200 || !strings.HasPrefix(csp, "sandbox allow-scripts;") || strings.Contains(csp, "allow-same-origin") || !strings.Contains(csp, "default-src 'none'") {
		t.Errorf("html: %d CSP %q", rec.Code, csp)
	}
	rec = get(t, h, "/ui/runs/r/artifacts/blob/raw?task=t&view=download")
	if rec.Code != 200 || rec.Header().Get("Content-Disposition") != `attachment; filename=blob` || rec.Header().Get("Content-Type") != "application/octet-stream" {
		t.Errorf("download: %d %q %q", rec.Code, rec.Header().Get("Content-Disposition"), rec.Header().Get("Content-Type"))
	}
	for path, code := range map[string]int{
		"/ui/runs/r/artifacts/notes/raw?task=t&view=script": 400,
		"/ui/runs/r/artifacts/notes?task=":                  400,
		"/ui/runs/r/artifacts/missing?task=t":               404,
		"/ui/runs/other/artifacts/notes?task=t":             404,
		"/ui/runs/r/artifacts/dir/raw?task=t&view=download": 400,
	} {
		if rec := get(t, h, path); rec.Code != code {
			t.Errorf("%s: %d, want %d", path, rec.Code, code)
		}
	}
}

func TestPreviewKindAndLimits(t *testing.T) {
	for _, c := range []struct {
		schema, name string
		b            []byte
		want         string
	}{
		{"", "x.csv", []byte("a,b"), "csv"},
		{"", "x.tsv", []byte("a\tb"), "csv"},
		{"", "x", []byte("a,b\n1,2\n"), "csv"},
		{"", "x", []byte("a,b\n1,2,3\n"), "text"},
		{"", "x", []byte("hello, world\n"), "text"},
		{"", "x", []byte(`[1,2]`), "json"},
		{"", "x", []byte("é" + string([]byte{0xc3})), "text"}, // a character cut by the preview limit
		{"", "x", []byte{0xff, 0xfe, 0x01}, "binary"},
		{"", "x.svg", []byte("<svg/>"), "image"},
		{"system.HTML", "x.txt", []byte("<p>"), "html"},
		{"", "x", nil, "empty"},
	} {
		if got := previewKind(c.schema, c.name, c.b); got != c.want {
			t.Errorf("previewKind(%q, %q) = %s, want %s", c.schema, c.name, got, c.want)
		}
	}
	rows, err := csvTable([]byte(strings.Repeat("1,2\n", csvRows+50)), "x.csv", false)
	if err != nil || len(rows) != csvRows+1 {
		t.Errorf("csv rows %d, %v; want %d", len(rows), err, csvRows+1)
	}
}

func TestLineageLinksTaskOutputsToArtifactPages(t *testing.T) {
	key := "model"
	g := metadatav1.LineageGraph{
		Artifacts:  []metadatav1.Artifact{{ID: 1, URI: "s3://b/x"}, {ID: 2, URI: "s3://b/y"}},
		Executions: []metadatav1.Execution{{ID: 5, Type: metadatav1.ExecutionTypeContainer, Name: "run-1/loop/2/train"}, {ID: 6, Type: metadatav1.ExecutionTypeTrainingRun, Name: "ns/job"}},
		Events: []metadatav1.Event{{ArtifactID: 1, ExecutionID: 5, Type: metadatav1.EventOutput, Path: &metadatav1.EventPath{Steps: []metadatav1.Step{metadatav1.KeyStep(key)}}},
			{ArtifactID: 2, ExecutionID: 6, Type: metadatav1.EventOutput, Path: &metadatav1.EventPath{Steps: []metadatav1.Step{metadatav1.KeyStep(key)}}}},
	}
	got := artifactPages(g)
	if len(got) != 1 || got[1] != "/ui/runs/run-1/artifacts/model?task=loop%2F2%2Ftrain" {
		t.Errorf("artifact pages %v", got)
	}
}

func TestExperimentsRecurringRunsAndClone(t *testing.T) {
	var mu sync.Mutex
	var posted []string
	now := time.Now()
	mux := http.NewServeMux()
	mux.HandleFunc("GET /apis/v1/experiments", func(w http.ResponseWriter, r *http.Request) {
		_ = json.NewEncoder(w).Encode(map[string]any{"experiments": []experimentRow{{ID: "e1", Name: "tuning-a", Namespace: "team-a", CreatedAt: now}}})
	})
	mux.HandleFunc("GET /apis/v1/experiments/{id}", func(w http.ResponseWriter, r *http.Request) {
		_ = json.NewEncoder(w).Encode(experimentRow{ID: r.PathValue("id"), Name: "tuning-a", Namespace: "team-a", CreatedAt: now})
	})
	mux.HandleFunc("GET /apis/v1/runs", func(w http.ResponseWriter, r *http.Request) {
		if r.URL.Query().Get("experiment_id") != "e1" {
			_ = json.NewEncoder(w).Encode(runList{})
			return
		}
		_ = json.NewEncoder(w).Encode(runList{Runs: []runSummary{{RunID: "r9", RunName: "in e1", State: "SUCCEEDED", CreatedAt: now}}, NextPageToken: "p2"})
	})
	mux.HandleFunc("GET /apis/v1/recurringruns", func(w http.ResponseWriter, r *http.Request) {
		_ = json.NewEncoder(w).Encode(map[string]any{"recurring_runs": []recurringRunRow{
			{ID: "recurring-a", Name: "nightly", Cron: "0 0 * * * *", Status: "ENABLED", NextRunTime: &now, PipelineName: "p", Namespace: "default"},
			{ID: "recurring-b", Name: "weekly", Cron: "0 0 0 * * 0", Status: "DISABLED", Paused: true, PipelineName: "p", Namespace: "default"}}})
	})
	mux.HandleFunc("POST /apis/v1/recurringruns/{id}/{verb}", func(w http.ResponseWriter, r *http.Request) {
		mu.Lock()
		posted = append(posted, r.PathValue("id")+" "+r.PathValue("verb")+" "+r.Header.Get("Authorization"))
		mu.Unlock()
		_, _ = io.WriteString(w, `{}`)
	})
	mux.HandleFunc("GET /apis/v1/runs/{id}/input", func(w http.ResponseWriter, r *http.Request) {
		if r.PathValue("id") == "inline" {
			_ = json.NewEncoder(w).Encode(runInput{RunID: "inline", RunName: "x"})
			return
		}
		_ = json.NewEncoder(w).Encode(runInput{RunID: "r9", RunName: "first", PipelineID: "p1", PipelineVersionID: "v1", Parameters: map[string]any{"times": 3, "greeting": "hey"}})
	})
	mux.HandleFunc("GET /apis/v1/pipelines/{id}", func(w http.ResponseWriter, r *http.Request) {
		_ = json.NewEncoder(w).Encode(pipelineRow{ID: "p1", Name: "demo"})
	})
	mux.HandleFunc("GET /apis/v1/pipelines/{id}/versions", func(w http.ResponseWriter, r *http.Request) {
		_ = json.NewEncoder(w).Encode(map[string]any{"pipeline_versions": []versionRow{{ID: "v2", PipelineID: "p1", Name: "new"}, {ID: "v1", PipelineID: "p1", Name: "old"}}})
	})
	mux.HandleFunc("GET /apis/v1/pipelines/{id}/graph", func(w http.ResponseWriter, r *http.Request) {
		_ = json.NewEncoder(w).Encode(pipelinesv1.Graph{PipelineName: "demo", Inputs: []pipelinesv1.GraphInput{
			{Name: "greeting", Type: "STRING", HasDefault: true, Default: "hello"}, {Name: "times", Type: "NUMBER_INTEGER"}},
			Tasks: []pipelinesv1.GraphTask{{Path: "a", Name: "a", Kind: "container"}}})
	})
	api := httptest.NewServer(mux)
	t.Cleanup(api.Close)
	h := newTestApp(t, api.URL)

	rec := get(t, h, "/ui/experiments")
	mustContain(t, "experiments", rec.Body.String(), `href="/ui/experiments/e1"`, "tuning-a", "team-a")
	rec = get(t, h, "/ui/experiments/e1")
	mustContain(t, "experiment", rec.Body.String(), `href="/ui/runs/r9"`, "in e1", `href="/ui/experiments/e1?page_token=p2"`)
	rec = get(t, h, "/ui/recurringruns")
	mustContain(t, "recurring runs", rec.Body.String(), `action="/ui/recurringruns/recurring-a/disable"`, `action="/ui/recurringruns/recurring-b/enable"`, "nightly", "DISABLED")
	for _, action := range []string{"disable", "enable"} {
		rec := httptest.NewRecorder()
		req := httptest.NewRequest("POST", "/ui/recurringruns/recurring-a/"+action, nil)
		req.Header.Set("Sec-Fetch-Site", "same-origin")
		h.ServeHTTP(rec, req)
		if rec.Code != http.StatusSeeOther || rec.Header().Get("Location") != "/ui/recurringruns?done="+action {
			t.Errorf("%s: %d %q", action, rec.Code, rec.Header().Get("Location"))
		}
	}
	rec = httptest.NewRecorder()
	req := httptest.NewRequest("POST", "/ui/recurringruns/recurring-a/disable", nil)
	req.Header.Set("Sec-Fetch-Site", "cross-site")
	h.ServeHTTP(rec, req)
	if rec.Code != http.StatusForbidden {
		t.Errorf("cross-site disable: %d", rec.Code)
	}
	if rec := httptest.NewRecorder(); true {
		h.ServeHTTP(rec, httptest.NewRequest("POST", "/ui/recurringruns/recurring-a/delete", nil))
		if rec.Code != http.StatusNotFound {
			t.Errorf("unknown action: %d", rec.Code)
		}
	}
	if len(posted) != 2 || posted[0] != "recurring-a disable Bearer tok" || posted[1] != "recurring-a enable Bearer tok" {
		t.Errorf("API calls %q", posted)
	}

	// Clone: the run form of the run's pipeline version, pre-filled with its parameters.
	rec = get(t, h, "/ui/runs/r9/clone")
	body := rec.Body.String()
	mustContain(t, "clone", body, `<option value="v1" selected>`, `id="p-times" name="p.times" type="number" step="1" value="3"`,
		`id="p-greeting" name="p.greeting" type="text" value="hey"`, `value="Clone of first"`, `action="/ui/pipelines/p1/runs"`)
	if rec := get(t, h, "/ui/runs/inline/clone"); rec.Code != http.StatusConflict || !strings.Contains(rec.Body.String(), "inline pipeline spec") {
		t.Errorf("clone of an inline run: %d", rec.Code)
	}
}

func TestKatibExperimentPage(t *testing.T) {
	goal := 0.99
	exp := tuningv1.ExperimentView{Experiment: tuningv1.Experiment{APIVersion: tuningv1.APIVersion, Kind: tuningv1.Kind,
		Metadata: tuningv1.ObjectMeta{Name: "random", Namespace: "kubeflow"},
		Spec: tuningv1.ExperimentSpec{
			Parameters: []tuningv1.ParameterSpec{{Name: "lr", ParameterType: tuningv1.ParameterDouble}, {Name: "optimizer", ParameterType: tuningv1.ParameterCategorical}},
			Objective:  &tuningv1.ObjectiveSpec{Type: tuningv1.ObjectiveMaximize, Goal: &goal, ObjectiveMetricName: "accuracy", AdditionalMetricNames: []string{"loss"}},
			Algorithm:  &tuningv1.AlgorithmSpec{AlgorithmName: "random"}},
		Status: tuningv1.ExperimentStatus{Trials: 3, TrialsSucceeded: 2, TrialsFailed: 1,
			Conditions:          []tuningv1.Condition{{Type: "Running", Status: "False"}, {Type: "Succeeded", Status: "True", Message: "max trials reached"}},
			CurrentOptimalTrial: &tuningv1.OptimalTrial{BestTrialName: "random-b", ParameterAssignments: []tuningv1.ParameterAssignment{{Name: "lr", Value: "0.02"}}, Observation: tuningv1.Observation{Metrics: []tuningv1.Metric{{Name: "accuracy", Min: "0.5", Max: "0.91", Latest: "0.91"}}}}}},
		TrialsView: []tuningv1.Trial{
			{Name: "random-a", Index: 0, JobKind: "TFJob/kubeflow/random-a", ParameterAssignments: []tuningv1.ParameterAssignment{{Name: "lr", Value: "0.01"}, {Name: "optimizer", Value: "sgd"}},
				Conditions: []tuningv1.Condition{{Type: "Succeeded", Status: "True"}}, Observation: tuningv1.Observation{Metrics: []tuningv1.Metric{{Name: "accuracy", Min: "0.4", Max: "0.8", Latest: "0.8"}, {Name: "loss", Min: "0.3", Max: "0.3", Latest: "0.3"}}}},
			{Name: "random-b", Index: 1, JobKind: "TFJob/kubeflow/random-b", ParameterAssignments: []tuningv1.ParameterAssignment{{Name: "lr", Value: "0.02"}, {Name: "optimizer", Value: "adam"}},
				Conditions: []tuningv1.Condition{{Type: "Succeeded", Status: "True"}}, Observation: tuningv1.Observation{Metrics: []tuningv1.Metric{{Name: "accuracy", Min: "0.5", Max: "0.91", Latest: "0.91"}}}},
			{Name: "random-c", Index: 2, ParameterAssignments: []tuningv1.ParameterAssignment{{Name: "lr", Value: "0.5"}}, Conditions: []tuningv1.Condition{{Type: "Failed", Status: "True"}}, Message: "exit code 1"},
		}}
	mux := http.NewServeMux()
	mux.HandleFunc("GET /apis/auth/v1/namespaces", func(w http.ResponseWriter, r *http.Request) { _, _ = io.WriteString(w, `{"namespaces":[]}`) })
	mux.HandleFunc("GET /apis/tuning/v1/namespaces/{ns}/experiments", func(w http.ResponseWriter, r *http.Request) {
		items := []tuningv1.Experiment{}
		if r.PathValue("ns") == "kubeflow" {
			items = append(items, exp.Experiment)
		}
		_ = json.NewEncoder(w).Encode(tuningv1.ExperimentList{Items: items})
	})
	mux.HandleFunc("GET /apis/tuning/v1/namespaces/{ns}/experiments/{name}", func(w http.ResponseWriter, r *http.Request) {
		if r.PathValue("name") != "random" {
			w.WriteHeader(404)
			_, _ = io.WriteString(w, `{"error":"experiment not found"}`)
			return
		}
		_ = json.NewEncoder(w).Encode(exp)
	})
	api := httptest.NewServer(mux)
	t.Cleanup(api.Close)
	h := newTestApp(t, api.URL)
	rec := get(t, h, "/ui/katib")
	mustContain(t, "tuning list", rec.Body.String(), `href="/ui/katib/kubeflow/random"`, "maximize accuracy (goal 0.99)", "random-b")
	rec = get(t, h, "/ui/katib/kubeflow/random")
	body := rec.Body.String()
	if rec.Code != 200 {
		t.Fatalf("%d %s", rec.Code, body)
	}
	mustContain(t, "tuning experiment", body, `id="best-trial"`, `href="#trial-random-b"`, `<tr id="trial-random-b" class="best">`,
		`<th scope="col">lr</th>`, `<th scope="col">optimizer</th>`, `<th scope="col">accuracy</th>`, `<th scope="col">loss</th>`,
		"0.8 (min 0.4, max 0.8)", `href="/ui/jobs/kubeflow/random-a"`, `href="/ui/jobs/kubeflow/random-c"`, "exit code 1", `<img id="objective-chart" src="data:image/svg&#43;xml;base64,`,
		`alt="accuracy of 2 trials; best 0.91"`, "max trials reached")
	if rec := get(t, h, "/ui/katib/kubeflow/nope"); rec.Code != 404 {
		t.Errorf("unknown experiment: %d", rec.Code)
	}
	// The objective follows Katib's strategies: max for maximize, latest when the spec says so.
	tr := exp.TrialsView[0]
	if v, _ := objectiveValue(tr, exp.Spec.Objective); v != 0.8 {
		t.Errorf("max strategy: %v", v)
	}
	if v, _ := objectiveValue(tr, &tuningv1.ObjectiveSpec{Type: tuningv1.ObjectiveMinimize, ObjectiveMetricName: "accuracy"}); v != 0.4 {
		t.Errorf("min strategy: %v", v)
	}
}

func TestTensorboardCurvesPage(t *testing.T) {
	tb := notebooksv1.Tensorboard{APIVersion: notebooksv1.TensorboardAPIVersion, Kind: notebooksv1.TensorboardKind,
		Metadata: notebooksv1.ObjectMeta{Name: "mnist-board", Namespace: "kubeflow"}, Spec: notebooksv1.TensorboardSpec{LogsPath: "s3://bucket/mnist-job/logs"},
		Status: notebooksv1.TensorboardStatus{ReadyReplicas: 1, URL: "/tensorboard/kubeflow/mnist-board/", Conditions: []notebooksv1.TensorboardCondition{{DeploymentState: "Available"}}}}
	other := tb
	other.Metadata.Name, other.Spec.LogsPath = "other", "s3://bucket/else/logs"
	var asked []string
	mux := http.NewServeMux()
	mux.HandleFunc("GET /apis/auth/v1/namespaces", func(w http.ResponseWriter, r *http.Request) { _, _ = io.WriteString(w, `{"namespaces":[]}`) })
	mux.HandleFunc("GET /apis/tensorboard.kubeflow.org/v1alpha1/namespaces/{ns}/tensorboards", func(w http.ResponseWriter, r *http.Request) {
		items := []notebooksv1.Tensorboard{}
		if r.PathValue("ns") == "kubeflow" {
			items = append(items, tb, other)
		}
		_ = json.NewEncoder(w).Encode(map[string]any{"items": items})
	})
	mux.HandleFunc("GET /apis/tensorboard.kubeflow.org/v1alpha1/namespaces/{ns}/tensorboards/{name}", func(w http.ResponseWriter, r *http.Request) {
		_ = json.NewEncoder(w).Encode(tb)
	})
	mux.HandleFunc("GET /tensorboard/kubeflow/mnist-board/data/plugin/scalars/tags", func(w http.ResponseWriter, r *http.Request) {
		_, _ = io.WriteString(w, `{"train":{"loss":{"displayName":"loss"},"accuracy":{"displayName":"accuracy"}},"validation":{"loss":{"displayName":"loss"}}}`)
	})
	mux.HandleFunc("GET /tensorboard/kubeflow/mnist-board/data/plugin/scalars/scalars", func(w http.ResponseWriter, r *http.Request) {
		asked = append(asked, r.URL.Query().Get("run")+"/"+r.URL.Query().Get("tag"))
		_, _ = io.WriteString(w, `[[1700000000.5,0,1.5],[1700000001.5,1,0.9],[1700000002.5,2,"NaN"]]`)
	})
	api := httptest.NewServer(mux)
	t.Cleanup(api.Close)
	h := newTestApp(t, api.URL)
	rec := get(t, h, "/ui/tensorboards")
	mustContain(t, "boards", rec.Body.String(), `href="/ui/tensorboards/kubeflow/mnist-board"`, `href="/ui/tensorboards/kubeflow/other"`, "s3://bucket/mnist-job/logs")
	rec = get(t, h, "/ui/tensorboards?job=kubeflow/mnist-job")
	if body := rec.Body.String(); !strings.Contains(body, "mnist-board") || strings.Contains(body, "/ui/tensorboards/kubeflow/other") {
		t.Errorf("boards of a job: %s", body)
	}
	rec = get(t, h, "/ui/tensorboards/kubeflow/mnist-board")
	body := rec.Body.String()
	if rec.Code != 200 {
		t.Fatalf("%d %s", rec.Code, body)
	}
	mustContain(t, "curves", body, "<h2>accuracy</h2>", "<h2>loss</h2>", `alt="loss by step for 2 run(s)"`, `src="data:image/svg&#43;xml;base64,`,
		"(1 NaN/Inf not drawn)", `href="/tensorboard/kubeflow/mnist-board/data/plugin/scalars/scalars?format=csv&amp;run=train&amp;tag=loss"`)
	if strings.Join(asked, " ") != "train/accuracy train/loss validation/loss" {
		t.Errorf("series read: %v", asked)
	}
}

// The run page links every output artifact (of tasks and of loop iterations) to its artifact page, and
// offers clone.
func TestRunPageLinksArtifactsAndClone(t *testing.T) {
	art := map[string]pipelinesv1.Artifact{"model": {URI: "s3://b/m", SchemaTitle: "system.Model"}}
	g := pipelinesv1.Graph{Tasks: []pipelinesv1.GraphTask{{Path: "train", Name: "train"}, {Path: "l", Name: "l", Loop: true}}}
	st := runDetail{RunState: pipelinesv1.RunState{RunID: "r", State: pipelinesv1.RunSucceeded, Tasks: []pipelinesv1.TaskState{
		{Path: "train", State: pipelinesv1.TaskSucceeded, Outputs: &pipelinesv1.TaskOutputs{Artifacts: art}},
		{Path: "l/0", State: pipelinesv1.TaskSucceeded, Outputs: &pipelinesv1.TaskOutputs{Artifacts: art}}}}}
	mux := http.NewServeMux()
	mux.HandleFunc("GET /apis/v1/runs/{id}", func(w http.ResponseWriter, r *http.Request) { _ = json.NewEncoder(w).Encode(st) })
	mux.HandleFunc("GET /apis/v1/runs/{id}/graph", func(w http.ResponseWriter, r *http.Request) { _ = json.NewEncoder(w).Encode(g) })
	api := httptest.NewServer(mux)
	t.Cleanup(api.Close)
	rec := get(t, newTestApp(t, api.URL), "/ui/runs/r")
	mustContain(t, "run page", rec.Body.String(), `href="/ui/runs/r/artifacts/model?task=train"`, `href="/ui/runs/r/artifacts/model?task=l%2f0"`, `href="/ui/runs/r/clone"`)
}
