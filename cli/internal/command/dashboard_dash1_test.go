package command

import (
	"bytes"
	"encoding/json"
	"fmt"
	"io"
	"net/http"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/chromedp/chromedp"
	"github.com/chromedp/chromedp/kb"

	"github.com/sluice-ml/sluice/libs/tfevents"
)

// api calls a Sluice API of the dev platform with the admin token (to set up what the pages show).
func api(t *testing.T, base, token, method, path string, body any) map[string]any {
	t.Helper()
	var rd io.Reader
	if body != nil {
		b, err := json.Marshal(body)
		if err != nil {
			t.Fatal(err)
		}
		rd = bytes.NewReader(b)
	}
	req, err := http.NewRequestWithContext(t.Context(), method, base+path, rd)
	if err != nil {
		t.Fatal(err)
	}
	req.Header.Set("Authorization", "Bearer "+token)
	req.Header.Set("Content-Type", "application/json")
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	b, _ := io.ReadAll(resp.Body)
	if resp.StatusCode/100 != 2 {
		t.Fatalf("%s %s: %d %s", method, path, resp.StatusCode, b)
	}
	out := map[string]any{}
	_ = json.Unmarshal(b, &out)
	return out
}

// browseArtifactsExperimentsAndMore drives the artifact, clone, experiment, recurring run, tuning and
// TensorBoard pages against the real services: runURL is the succeeded run of the main test, whose task
// make wrote the text artifact "hello" three times.
func browseArtifactsExperimentsAndMore(t *testing.T, b *browser, base, token, runURL string) {
	// The run page links each output artifact to its page; a text artifact is shown and downloads.
	b.do("run page again", chromedp.Navigate(base+runURL), chromedp.WaitVisible(chromedp.CSS("#graph")))
	href := eval[string](b, `document.querySelector('#row-0 a[href*="/artifacts/text"]').getAttribute('href')`)
	b.do("artifact page", chromedp.Navigate(base+href), chromedp.WaitVisible(chromedp.CSS("#preview")))
	if kind := eval[string](b, `document.getElementById('preview').dataset.kind`); kind != "text" {
		t.Errorf("make.text previews as %q, want text", kind)
	}
	if got := eval[string](b, `document.getElementById('text').textContent`); got != "hello\nhello\nhello\n" {
		t.Errorf("the text preview is %q", got)
	}
	b.waitFor("download", `(() => { if (!window.__dl) { window.__dl = 'wait'; fetch(document.getElementById('download').href).then(r => r.text().then(s => { window.__dl = r.status + ' ' + r.headers.get('content-disposition') + ' ' + s; })); } return window.__dl !== 'wait'; })()`, time.Minute)
	if got := eval[string](b, `window.__dl`); got != "200 attachment; filename=text hello\nhello\nhello\n" {
		t.Errorf("download answered %q", got)
	}
	b.checkPage("artifact-text", token)
	// Its lineage links it back to its artifact page (from the metadata service's record of the task).
	lineage := eval[string](b, `document.querySelector('.actions a[href^="/ui/lineage"]').getAttribute('href')`)
	b.reloadUntil("lineage links the artifact page", base+lineage, fmt.Sprintf(`Array.from(document.querySelectorAll('main table a')).some(a => a.getAttribute('href') === %s)`, strconv.Quote(href)), 2*time.Minute)

	// Clone: the run form of the run's pipeline version, pre-filled with its parameters.
	b.do("clone", chromedp.Navigate(base+runURL), chromedp.WaitVisible(chromedp.CSS("#clone")), chromedp.Click(chromedp.CSS("#clone")), chromedp.WaitVisible(chromedp.CSS("#run-form")))
	if got := eval[string](b, `document.getElementById('run_name').value + ' / ' + document.getElementById('p-times').value + ' / ' + document.getElementById('p-greeting').value`); got != "Clone of from the browser / 3 / hello" {
		t.Errorf("the clone form holds %q", got)
	}
	b.checkPage("clone", token)

	// Cancel a running run from its page; retry a failed one (a new run reusing what succeeded).
	const slow = `apiVersion: sluice.io/v1
kind: Pipeline
metadata: {name: dashboard-cancel}
spec:
  tasks:
    wait: {image: alpine:3.20, command: [sh, -c, 'sleep 600']}
`
	created := api(t, base, token, http.MethodPost, "/apis/v1/runs", map[string]any{"run_name": "to cancel", "spec": slow})
	slowID, _ := created["run_id"].(string)
	b.reloadUntil("slow run running", base+"/ui/runs/"+slowID, `document.querySelector('#row-0 [data-cell=state]').textContent === 'RUNNING'`, 2*time.Minute)
	b.do("cancel", chromedp.Click(chromedp.CSS(`form[action$="/cancel"] button`)), chromedp.WaitVisible(chromedp.CSS("#graph")))
	b.waitFor("run cancelled", `document.getElementById('run-state').textContent === 'CANCELED' && !document.getElementById('run').dataset.live`, 2*time.Minute)
	const failing = `apiVersion: sluice.io/v1
kind: Pipeline
metadata: {name: dashboard-retry}
spec:
  tasks:
    ok: {image: alpine:3.20, command: [sh, -c, 'echo fine']}
    bad: {image: alpine:3.20, command: [sh, -c, 'exit 3'], dependsOn: [ok]}
`
	created = api(t, base, token, http.MethodPost, "/apis/v1/runs", map[string]any{"run_name": "to retry", "spec": failing})
	failID, _ := created["run_id"].(string)
	b.reloadUntil("failing run failed", base+"/ui/runs/"+failID, `document.getElementById('run-state').textContent === 'FAILED'`, 2*time.Minute)
	b.do("retry", chromedp.Click(chromedp.CSS(`form[action$="/retry"] button`)))
	b.waitFor("retry went to the new run", `location.pathname !== '/ui/runs/`+failID+`' && location.pathname.startsWith('/ui/runs/') && !!document.getElementById('run-state')`, time.Minute)
	retryURL := eval[string](b, "location.pathname")
	// The new run reuses ok's outputs and runs bad again, which fails again.
	b.reloadUntil("retry ran", base+retryURL, `document.getElementById('run-state').textContent === 'FAILED' && !document.getElementById('run').dataset.live &&
		document.querySelector('main h1').textContent.includes('to retry (retry)')`, 2*time.Minute)
	b.checkPage("run-retried", token)

	// A KFP experiment with a run of a pipeline writing Markdown, HTML, CSV and an image.
	exp := api(t, base, token, http.MethodPost, "/apis/v1/experiments", map[string]any{"display_name": "browser experiment"})
	expID, _ := exp["experiment_id"].(string)
	spec, err := os.ReadFile("testdata/dashboard/artifacts.yaml")
	if err != nil {
		t.Fatal(err)
	}
	created = api(t, base, token, http.MethodPost, "/apis/v1/runs", map[string]any{"run_name": "artifact kinds", "spec": string(spec), "experiment_id": expID})
	artRun, _ := created["run_id"].(string)
	b.do("experiments", chromedp.Navigate(base+"/ui/experiments"), chromedp.WaitVisible(chromedp.CSS("#experiments")))
	b.checkPage("experiments", token)
	b.do("experiment", chromedp.Click(chromedp.CSS(`a[href="/ui/experiments/`+expID+`"]`)), chromedp.WaitVisible(chromedp.CSS("#h-runs")))
	if got := eval[string](b, "location.pathname"); got != "/ui/experiments/"+expID {
		t.Errorf("the experiment link went to %s", got)
	}
	b.reloadUntil("artifact run succeeded", base+"/ui/runs/"+artRun, `document.getElementById('run-state').textContent === 'SUCCEEDED'`, 3*time.Minute)
	// The experiment lists its run (the runs list comes from Temporal's visibility, which may lag).
	b.reloadUntil("experiment lists its run", base+"/ui/experiments/"+expID, `(() => {
		const r = document.getElementById('experiment-runs');
		return !!r && r.innerText.includes('artifact kinds') && r.innerText.includes('SUCCEEDED');
	})()`, 2*time.Minute)
	b.checkPage("experiment", token)
	art := func(name string) string { return base + "/ui/runs/" + artRun + "/artifacts/" + name + "?task=write" }

	b.do("markdown", chromedp.Navigate(art("report")), chromedp.WaitVisible(chromedp.CSS("#markdown")))
	if got := eval[string](b, `document.querySelector('#markdown h1').textContent + ' ' + document.querySelectorAll('#markdown table td').length + ' ' + document.querySelectorAll('#markdown script').length`); got != "Report 2 0" {
		t.Errorf("the Markdown preview: %q (want the heading, a table of 2 cells, no script)", got)
	}
	b.checkPage("artifact-markdown", token)

	b.do("html", chromedp.Navigate(art("viz")), chromedp.WaitVisible(chromedp.CSS("iframe#html")))
	if got := eval[string](b, `(() => { const f = document.getElementById('html'); return f.getAttribute('sandbox') + ' ' + (f.contentDocument === null); })()`); got != "allow-scripts true" {
		t.Errorf("the HTML visualisation frame: %q (want sandboxed, its document out of the page's reach)", got)
	}
	if n := eval[int](b, `document.querySelectorAll('#preview p#v').length`); n != 0 {
		t.Error("the HTML visualisation was inlined into the page")
	}
	b.checkPage("artifact-html", token)

	b.do("csv", chromedp.Navigate(art("table")), chromedp.WaitVisible(chromedp.CSS("#csv")))
	if got := eval[string](b, `Array.from(document.querySelectorAll('#csv th, #csv td')).map(c => c.textContent).join(',')`); got != "name,score,ada,3,grace,4" {
		t.Errorf("the CSV table: %q", got)
	}
	b.checkPage("artifact-csv", token)

	b.do("image", chromedp.Navigate(art("picture")), chromedp.WaitVisible(chromedp.CSS("#image")))
	b.waitFor("image loaded", `(() => { const i = document.getElementById('image'); return i.complete && i.naturalWidth === 8; })()`, time.Minute)
	b.checkPage("artifact-image", token)

	// KFP metrics: a step's logged system.Metrics and system.ClassificationMetrics.
	ir, err := os.ReadFile("testdata/dashboard/metrics.yaml")
	if err != nil {
		t.Fatal(err)
	}
	created = api(t, base, token, http.MethodPost, "/apis/v1/runs", map[string]any{"run_name": "metrics", "spec": string(ir)})
	metricsRun, _ := created["run_id"].(string)
	b.reloadUntil("metrics run succeeded", base+"/ui/runs/"+metricsRun, `document.getElementById('run-state').textContent === 'SUCCEEDED'`, 3*time.Minute)
	b.do("metrics", chromedp.Navigate(base+"/ui/runs/"+metricsRun+"/artifacts/metrics?task=evaluate"), chromedp.WaitVisible(chromedp.CSS("#scalars")))
	if got := eval[string](b, `Array.from(document.querySelectorAll('#scalars tbody tr')).map(r => r.innerText.replace('\t', '=')).join(' ')`); got != "accuracy=0.92 f1=0.88" {
		t.Errorf("the metrics table: %q", got)
	}
	b.checkPage("artifact-metrics", token)
	b.do("classification", chromedp.Navigate(base+"/ui/runs/"+metricsRun+"/artifacts/classification?task=evaluate"), chromedp.WaitVisible(chromedp.CSS("#confusion")))
	if got := eval[string](b, `Array.from(document.querySelectorAll('#confusion td')).map(c => c.textContent).join(',')`); got != "45,5,3,47" {
		t.Errorf("the confusion matrix: %q", got)
	}
	b.waitFor("ROC curve drawn", `(() => { const i = document.getElementById('roc'); return !!i && i.complete && i.naturalWidth > 100; })()`, time.Minute)
	b.checkPage("artifact-classification", token)

	// Recurring runs: disable and enable from the page (the pipelines service pauses the schedule).
	rr := api(t, base, token, http.MethodPost, "/apis/v1/recurringruns", map[string]any{"display_name": "yearly from the browser test", "cron": "0 0 1 1 *", "run": map[string]any{"spec": string(spec)}})
	rrID, _ := rr["recurring_run_id"].(string)
	t.Cleanup(func() {
		req, _ := http.NewRequest(http.MethodDelete, base+"/apis/v1/recurringruns/"+rrID, nil)
		req.Header.Set("Authorization", "Bearer "+token)
		if resp, err := http.DefaultClient.Do(req); err == nil {
			resp.Body.Close()
		}
	})
	status := `document.querySelector('#rr-` + rrID + ` [data-cell=status]').textContent`
	// The list comes from Temporal's schedule visibility, which lags behind the create.
	b.reloadUntil("recurring run listed", base+"/ui/recurringruns", `!!document.getElementById('rr-`+rrID+`')`, 2*time.Minute)
	if got := eval[string](b, status); got != "ENABLED" {
		t.Errorf("the new recurring run is %q, want ENABLED", got)
	}
	b.checkPage("recurring-runs", token)
	b.do("disable", chromedp.Click(chromedp.CSS(`form[action="/ui/recurringruns/`+rrID+`/disable"] button`)), chromedp.WaitVisible(chromedp.CSS(`form[action="/ui/recurringruns/`+rrID+`/enable"]`)))
	if got := eval[string](b, status); got != "DISABLED" {
		t.Errorf("after Disable the recurring run is %q", got)
	}
	b.do("enable", chromedp.Click(chromedp.CSS(`form[action="/ui/recurringruns/`+rrID+`/enable"] button`)), chromedp.WaitVisible(chromedp.CSS(`form[action="/ui/recurringruns/`+rrID+`/disable"]`)))
	if got := eval[string](b, status); got != "ENABLED" {
		t.Errorf("after Enable the recurring run is %q", got)
	}

	// Keyboard: the recurring run's button works from the keyboard (focus, Enter).
	b.do("focus disable", chromedp.Focus(chromedp.CSS(`form[action="/ui/recurringruns/`+rrID+`/disable"] button`)))
	b.do("enter disable", chromedp.KeyEvent(kb.Enter), chromedp.WaitVisible(chromedp.CSS(`form[action="/ui/recurringruns/`+rrID+`/enable"]`)))

	browseTuningAndTensorBoard(t, b, base, token)
}

// katibExperiment is Katib's random search with plain batch/v1 Job trials whose one container prints
// the objective on stdout (the StdOut collector): accuracy = the trial's learning rate.
const katibExperiment = `apiVersion: kubeflow.org/v1beta1
kind: Experiment
metadata: {name: browser-random, namespace: default}
spec:
  objective: {type: maximize, goal: 0.999, objectiveMetricName: accuracy, additionalMetricNames: [loss]}
  algorithm: {algorithmName: random}
  parallelTrialCount: 3
  maxTrialCount: 3
  parameters:
    - {name: lr, parameterType: double, feasibleSpace: {min: "0.1", max: "0.9"}}
  trialTemplate:
    primaryContainerName: training-container
    trialParameters:
      - {name: learningRate, reference: lr}
    trialSpec:
      apiVersion: batch/v1
      kind: Job
      spec:
        template:
          spec:
            containers:
              - name: training-container
                image: alpine:3.20
                command: [/bin/sh, -c, "echo accuracy=${trialParameters.learningRate}; echo loss=0.5"]
            restartPolicy: Never
`

// browseTuningAndTensorBoard runs a Katib experiment through the tuning service and shows its page (trials,
// best trial, objective chart), then serves TensorBoard event files (written here, copied into a run's
// output artifact by a pipeline task) through a Tensorboard of the notebooks service and draws its curves.
func browseTuningAndTensorBoard(t *testing.T, b *browser, base, token string) {
	req, err := http.NewRequestWithContext(t.Context(), http.MethodPost, base+"/apis/tuning/v1/namespaces/default/experiments", strings.NewReader(katibExperiment))
	if err != nil {
		t.Fatal(err)
	}
	req.Header.Set("Authorization", "Bearer "+token)
	req.Header.Set("Content-Type", "application/yaml")
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	body, _ := io.ReadAll(resp.Body)
	resp.Body.Close()
	if resp.StatusCode != http.StatusCreated {
		t.Fatalf("create the tuning experiment: %d %s", resp.StatusCode, body)
	}
	// The experiments list reads Temporal's visibility store, which lags a new experiment by a moment.
	b.reloadUntil("tuning experiment listed", base+"/ui/katib", `!!document.querySelector('a[href="/ui/katib/default/browser-random"]')`, 2*time.Minute)
	b.checkPage("tuning", token)
	b.reloadUntil("tuning experiment ended", base+"/ui/katib/default/browser-random", `(() => {
		const s = document.getElementById('exp-state');
		return !!s && s.textContent === 'Succeeded' && document.querySelectorAll('#trials tbody tr').length === 3 &&
			!!document.getElementById('best-trial') && !!document.getElementById('objective-chart');
	})()`, 4*time.Minute)
	if ok := eval[bool](b, `document.querySelector('#trials tr.best th').textContent.trim() === document.querySelector('#best-trial a').textContent + ' best'`); !ok {
		t.Error("the best trial is not marked in the trials table")
	}
	if ok := eval[bool](b, `(() => { const i = document.getElementById('objective-chart'); return i.complete && i.naturalWidth > 100; })()`); !ok {
		t.Error("the objective chart did not load")
	}
	b.checkPage("tuning-experiment", token)
	// A trial's training job page links the job's TensorBoard curves.
	b.do("trial job", chromedp.Click(chromedp.CSS(`#trials tr.best a[href^="/ui/jobs/"]`)), chromedp.WaitVisible(chromedp.CSS("#job-tensorboards")))

	// TensorBoard: event files of two runs (train, validation), copied into a run's output artifact.
	logs := t.TempDir()
	for run, scale := range map[string]float32{"train": 1, "validation": 1.2} {
		if err := os.MkdirAll(filepath.Join(logs, run), 0o755); err != nil {
			t.Fatal(err)
		}
		w, err := tfevents.Create(filepath.Join(logs, run, "events.out.tfevents.1.browser"))
		if err != nil {
			t.Fatal(err)
		}
		for step := int64(0); step < 20; step++ {
			_ = w.AddScalar("loss", step, scale/float32(step+1), time.Time{})
			_ = w.AddScalar("accuracy", step, 1-scale/float32(step+2), time.Time{})
		}
		if err := w.Close(); err != nil {
			t.Fatal(err)
		}
	}
	copySpec := `apiVersion: sluice.io/v1
kind: Pipeline
metadata: {name: dashboard-tb-logs}
spec:
  tasks:
    train:
      image: alpine:3.20
      command: [sh, -c, 'mkdir -p "$1" && cp -R "$0"/. "$1"/']
      args: [` + strconv.Quote(logs) + `, "{{outputs.logs}}"]
      outputs: {artifacts: {logs: {type: system.Artifact}}}
`
	created := api(t, base, token, http.MethodPost, "/apis/v1/runs", map[string]any{"run_name": "tensorboard logs", "spec": copySpec})
	runID, _ := created["run_id"].(string)
	b.reloadUntil("logs run succeeded", base+"/ui/runs/"+runID, `document.getElementById('run-state').textContent === 'SUCCEEDED'`, 3*time.Minute)
	run := api(t, base, token, http.MethodGet, "/apis/v1/runs/"+runID, nil)
	logsURI := ""
	for _, task := range run["tasks"].([]any) {
		tm := task.(map[string]any)
		if outs, ok := tm["outputs"].(map[string]any); ok {
			if arts, ok := outs["artifacts"].(map[string]any); ok {
				if l, ok := arts["logs"].(map[string]any); ok {
					logsURI, _ = l["uri"].(string)
				}
			}
		}
	}
	if logsURI == "" {
		t.Fatalf("the logs run has no logs artifact: %v", run)
	}
	api(t, base, token, http.MethodPost, "/apis/tensorboard.kubeflow.org/v1alpha1/namespaces/default/tensorboards", map[string]any{
		"apiVersion": "tensorboard.kubeflow.org/v1alpha1", "kind": "Tensorboard",
		"metadata": map[string]any{"name": "browser-board", "namespace": "default"}, "spec": map[string]any{"logspath": logsURI}})
	// The board's lifecycle workflow records it for the list a moment after the create.
	b.reloadUntil("tensorboard listed", base+"/ui/tensorboards", `!!document.querySelector('a[href="/ui/tensorboards/default/browser-board"]')`, 2*time.Minute)
	b.checkPage("tensorboards", token)
	b.reloadUntil("tensorboard curves", base+"/ui/tensorboards/default/browser-board", `(() => {
		const h = Array.from(document.querySelectorAll('section.curves h2')).map(e => e.textContent).join(',');
		const imgs = Array.from(document.querySelectorAll('section.curves img'));
		return h === 'accuracy,loss' && imgs.length === 2 && imgs.every(i => i.complete && i.naturalWidth > 100) &&
			document.querySelector('section.curves').innerText.includes('validation');
	})()`, 2*time.Minute)
	b.checkPage("tensorboard-curves", token)
}
