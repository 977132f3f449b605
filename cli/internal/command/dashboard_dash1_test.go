package command

import (
	"bytes"
	"encoding/json"
	"io"
	"net/http"
	"os"
	"testing"
	"time"

	"github.com/chromedp/chromedp"
	"github.com/chromedp/chromedp/kb"
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

	// Clone: the run form of the run's pipeline version, pre-filled with its parameters.
	b.do("clone", chromedp.Navigate(base+runURL), chromedp.WaitVisible(chromedp.CSS("#clone")), chromedp.Click(chromedp.CSS("#clone")), chromedp.WaitVisible(chromedp.CSS("#run-form")))
	if got := eval[string](b, `document.getElementById('run_name').value + ' / ' + document.getElementById('p-times').value + ' / ' + document.getElementById('p-greeting').value`); got != "Clone of from the browser / 3 / hello" {
		t.Errorf("the clone form holds %q", got)
	}
	b.checkPage("clone", token)

	// A KFP experiment with a run of a pipeline writing Markdown, HTML, CSV and an image.
	exp := api(t, base, token, http.MethodPost, "/apis/v1/experiments", map[string]any{"display_name": "browser experiment"})
	expID, _ := exp["experiment_id"].(string)
	spec, err := os.ReadFile("testdata/dashboard/artifacts.yaml")
	if err != nil {
		t.Fatal(err)
	}
	created := api(t, base, token, http.MethodPost, "/apis/v1/runs", map[string]any{"run_name": "artifact kinds", "spec": string(spec), "experiment_id": expID})
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
	b.do("recurring runs", chromedp.Navigate(base+"/ui/recurringruns"), chromedp.WaitVisible(chromedp.CSS("#recurring")))
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

	for _, p := range []struct{ name, path, sel string }{
		{"tuning", "/ui/katib", "main h1"},
		{"tensorboards", "/ui/tensorboards", "main h1"},
	} {
		b.do(p.name, chromedp.Navigate(base+p.path), chromedp.WaitVisible(chromedp.CSS(p.sel)))
		b.checkPage(p.name, token)
	}
}
