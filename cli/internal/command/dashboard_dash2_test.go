package command

import (
	"fmt"
	"io"
	"net/http"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/chromedp/chromedp"
)

// apiCall sends body (JSON) to the dev platform's API with the admin token and fails the test unless the
// answer is 2xx.
func apiCall(t *testing.T, method, url, token, body string) string {
	t.Helper()
	req, err := http.NewRequest(method, url, strings.NewReader(body))
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
		t.Fatalf("%s %s: %d %s", method, url, resp.StatusCode, b)
	}
	return string(b)
}

// modelDir writes the integration suite's two-input ONNX model (y = x·[[2,0],[0,3]] + [1,-1]) as version 1
// of a TF Serving model base path and returns the base path.
func modelDir(t *testing.T) string {
	t.Helper()
	model, err := os.ReadFile("../../../tests/integration/testdata/model.onnx")
	if err != nil {
		t.Fatal(err)
	}
	base := t.TempDir()
	if err := os.MkdirAll(filepath.Join(base, "1"), 0o755); err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(filepath.Join(base, "1", "model.onnx"), model, 0o644); err != nil {
		t.Fatal(err)
	}
	return base
}

// TestDashboardModelsNotebooksJobsEventsInABrowser drives the dashboard of `sluice dev` in chromium over
// the real services: a model deployed and tried from its page, then rolled out as a canary, promoted and
// rolled back from the page's buttons; a two-worker TFJob's replicas, TF_CONFIG, exit codes and events; a
// notebook created from the Jupyter web app form, opened (a real Jupyter server through the notebooks
// proxy, no token in any URL), stopped, started and deleted; the live event tail; and a 404 for an
// unknown page. Screenshots go to the test's artifact dir.
func TestDashboardModelsNotebooksJobsEventsInABrowser(t *testing.T) {
	needJupyterServer(t)
	b := newBrowser(t)
	base, token := startDevPlatform(t)
	allowTraverseTestDirs(t)

	// An unknown page is 404 for a browser without a credential (not a sign-in redirect).
	resp, err := http.Get(base + "/ui/no-such-page")
	if err != nil {
		t.Fatal(err)
	}
	resp.Body.Close()
	if resp.StatusCode != http.StatusNotFound {
		t.Errorf("GET /ui/no-such-page without a credential: %d, want 404", resp.StatusCode)
	}

	b.do("open sign-in", chromedp.Navigate(base+"/login"), chromedp.WaitVisible(chromedp.CSS("#token")))
	b.do("sign in", chromedp.SendKeys(chromedp.CSS("#token"), token+"\n"), chromedp.WaitVisible(chromedp.CSS("#h-runs")))

	// Start what takes a while first: the model, the job (API calls, as `sluice serve deploy` and
	// `sluice train` send them), and the notebook from the form.
	v1, v2 := modelDir(t), modelDir(t)
	apiCall(t, "POST", base+"/apis/serving/v1/namespaces/default/deployments", token, fmt.Sprintf(
		`{"apiVersion":"serving.kserve.io/v1beta1","kind":"InferenceService","metadata":{"name":"dash-model","namespace":"default"},
		  "spec":{"predictor":{"model":{"modelFormat":{"name":"onnx"},"storageUri":"file://%s"}}}}`, v1))
	apiCall(t, "POST", base+"/apis/training/v1/namespaces/default/jobs", token,
		`{"apiVersion":"kubeflow.org/v1","kind":"TFJob","metadata":{"name":"dash-job","namespace":"default"},
		  "spec":{"tfReplicaSpecs":{"Worker":{"replicas":2,"restartPolicy":"Never","template":{"spec":{"containers":[
		    {"name":"tensorflow","image":"busybox","command":["/bin/sh","-c","echo \"TF_CONFIG=$TF_CONFIG\""]}]}}}}}}`)

	b.do("notebooks page", chromedp.Navigate(base+"/ui/notebooks"), chromedp.WaitVisible(chromedp.CSS("#nb-form")))
	b.checkPage("notebooks-form", token)
	b.do("create notebook", chromedp.SetValue(chromedp.CSS("#nb-ns"), "default"), chromedp.SendKeys(chromedp.CSS("#nb-name"), "dash-nb"),
		chromedp.SendKeys(chromedp.CSS("#nb-cpu"), "500m"), chromedp.SendKeys(chromedp.CSS("#nb-mem"), "1Gi"),
		chromedp.Click(chromedp.CSS("#nb-form button[type=submit]")), chromedp.WaitVisible(chromedp.CSS("#nb-default-dash-nb")))
	b.reloadUntil("notebook running", base+"/ui/notebooks", `(() => {
		const row = document.getElementById('nb-default-dash-nb');
		return !!row && row.dataset.state === 'Running' && !!row.querySelector('a[href="/ui/notebooks/default/dash-nb/connect"]') && row.innerText.includes('500m');
	})()`, 4*time.Minute)
	b.checkPage("notebooks", token)
	b.do("connect", chromedp.Click(chromedp.CSS(`#nb-default-dash-nb a[href$="/connect"]`)))
	b.waitFor("jupyter loaded", `location.pathname.startsWith('/notebook/default/dash-nb/') &&
		!!document.querySelector('#notebook_list, #ipython-main-app, #main-panel, .jp-LabShell')`, 2*time.Minute)
	if href := eval[string](b, "location.href"); strings.Contains(href, "token") {
		t.Errorf("the notebook opened at %s, a URL with a token", href)
	}
	if leaked := eval[bool](b, fmt.Sprintf(`document.documentElement.outerHTML.includes(%q) || document.cookie.includes(%q)`, token, token)); leaked {
		t.Error("the Jupyter page can read the Sluice token")
	}
	b.shot("jupyter")
	b.mu.Lock()
	b.problems = nil // Jupyter's own page is not the dashboard's
	b.mu.Unlock()

	// Stop, start and delete from the list.
	b.do("notebooks page again", chromedp.Navigate(base+"/ui/notebooks"), chromedp.WaitVisible(chromedp.CSS("#h-nbs")))
	submit(b, "stop notebook", `#nb-default-dash-nb form[action$="/stop"] button`)
	b.reloadUntil("notebook stopped", base+"/ui/notebooks", `document.getElementById('nb-default-dash-nb')?.dataset.state === 'Stopped'`, 2*time.Minute)
	b.checkPage("notebooks-stopped", token)
	submit(b, "start notebook", `#nb-default-dash-nb form[action$="/start"] button`)
	b.reloadUntil("notebook running again", base+"/ui/notebooks", `document.getElementById('nb-default-dash-nb')?.dataset.state === 'Running'`, 4*time.Minute)
	submit(b, "delete notebook", `#nb-default-dash-nb form[action$="/delete"] button`)
	b.reloadUntil("notebook deleted", base+"/ui/notebooks", `!document.getElementById('nb-default-dash-nb')`, 2*time.Minute)

	// The model: listed, ready, tried, then canary, promote and rollback from its page.
	b.reloadUntil("model listed", base+"/ui/models", `!!document.querySelector('a[href="/ui/models/default/dash-model"]')`, time.Minute)
	b.checkPage("models", token)
	page := base + "/ui/models/default/dash-model"
	b.reloadUntil("model ready", page, `document.getElementById('dep-ready')?.textContent === 'Ready'`, 3*time.Minute)
	b.checkPage("deployment", token)
	b.do("predict", chromedp.SetValue(chromedp.CSS("#predict-body"), `{"instances": [[1, 2]]}`),
		chromedp.Click(chromedp.CSS("#predict-form button[type=submit]")), chromedp.WaitVisible(chromedp.CSS("#predict-response")))
	if got := eval[string](b, `document.getElementById('predict-response').textContent.replace(/\s+/g, '')`); got != `{"predictions":[[3,5]]}` {
		t.Errorf("the try-it form answered %s, want {\"predictions\":[[3,5]]}", got)
	}
	b.checkPage("deployment-predict", token)
	b.do("canary form", chromedp.Navigate(page), chromedp.SetValue(chromedp.CSS("#canary-uri"), "file://"+v2), chromedp.SetValue(chromedp.CSS("#canary-pct"), "30"))
	submit(b, "canary", "#canary-form button[type=submit]")
	trafficIs := func(want string) string {
		return fmt.Sprintf(`Array.from(document.querySelectorAll('#traffic tbody tr')).map(r => r.cells[0].textContent + '=' + r.cells[4].textContent.trim().split(' ').pop()).join(',') === %q`, want)
	}
	b.reloadUntil("canary split", page, trafficIs("dash-model-predictor-00002=30%,dash-model-predictor-00001=70%"), 3*time.Minute)
	b.checkPage("deployment-canary", token)
	submit(b, "promote", `form[action$="/promote"] button`)
	b.reloadUntil("promoted", page, trafficIs("dash-model-predictor-00002=100%"), 3*time.Minute)
	submit(b, "rollback", `form[action$="/rollback"] button`)
	if problems := eval[string](b, `Array.from(document.querySelectorAll('.warn, .error')).map(e => e.textContent).join('; ')`); problems != "" {
		t.Errorf("rollback: %s", problems)
	}
	b.reloadUntil("rolled back", page, trafficIs("dash-model-predictor-00003=100%")+
		fmt.Sprintf(` && document.querySelector('#traffic tbody tr').cells[3].textContent === %q`, "file://"+v1), 3*time.Minute)
	b.checkPage("deployment-rolled-back", token)

	// The TFJob: both workers succeeded with exit code 0, each with its own TF_CONFIG, and events.
	b.reloadUntil("job succeeded", base+"/ui/jobs/default/dash-job", `(() => {
		const tc = Array.from(document.querySelectorAll('pre.tfconfig')).map(p => JSON.parse(p.textContent));
		return document.getElementById('job-state')?.textContent === 'Succeeded' && tc.length === 2 &&
			tc.every((c, i) => c.task.type === 'worker' && c.task.index === i && c.cluster.worker.length === 2) &&
			document.querySelector('#replica-worker-0 [data-cell=exit]')?.textContent === '0' &&
			document.querySelector('#job-events').innerText.includes('TFJobSucceeded');
	})()`, 4*time.Minute)
	b.checkPage("job", token)
	log := eval[string](b, `document.querySelector('#replica-worker-0 a[href*="attempt=1"]').getAttribute('href')`)
	b.do("replica log", chromedp.Navigate(base+log), chromedp.WaitReady(chromedp.CSS("body")))
	if got := eval[string](b, "document.body.innerText"); !strings.Contains(got, `TF_CONFIG={"cluster":{"worker":[`) || !strings.Contains(got, `"task":{"type":"worker","index":0}`) {
		t.Errorf("worker-0's log is %q, want its TF_CONFIG", got)
	}

	// The event tail replays the notebook's and the job's events, filtered by type prefix.
	b.do("events", chromedp.Navigate(base+"/ui/events?type_prefix=io.sluice.notebook.&replay=true"), chromedp.WaitVisible(chromedp.CSS("#event-tail")))
	b.waitFor("notebook events", `(() => {
		const types = Array.from(document.querySelectorAll('#event-tail tr.event')).map(r => r.dataset.type);
		return types.length > 0 && types.every(t => t.startsWith('io.sluice.notebook.')) && document.getElementById('tail-status').textContent === 'live';
	})()`, time.Minute)
	b.checkPage("events", token)
	// New events arrive live: a job submitted now shows up on an open page.
	b.do("events live", chromedp.Navigate(base+"/ui/events?type_prefix=io.sluice.training.job."), chromedp.WaitVisible(chromedp.CSS("#event-tail")))
	b.waitFor("tail live", `document.getElementById('tail-status').textContent === 'live'`, time.Minute)
	apiCall(t, "POST", base+"/apis/training/v1/namespaces/default/jobs", token,
		`{"apiVersion":"kubeflow.org/v1","kind":"TFJob","metadata":{"name":"dash-job-2","namespace":"default"},
		  "spec":{"tfReplicaSpecs":{"Worker":{"replicas":1,"restartPolicy":"Never","template":{"spec":{"containers":[
		    {"name":"tensorflow","image":"busybox","command":["/bin/true"]}]}}}}}}`)
	b.waitFor("job event live", `Array.from(document.querySelectorAll('#event-tail tr.event')).some(r => r.textContent.includes('dash-job-2'))`, 2*time.Minute)
	b.checkPage("events-live", token)

	// The home page lists the deployment.
	b.do("home", chromedp.Navigate(base+"/"), chromedp.WaitVisible(chromedp.CSS("#h-dep")))
	if n := eval[int](b, `document.querySelectorAll('a[href="/ui/models/default/dash-model"]').length`); n != 1 {
		t.Errorf("the home page links the deployment %d times, want 1", n)
	}
	b.checkPage("home-models", token)
}

// needJupyterServer skips (fails under CI=true) without Debian's jupyter-notebook, which `make deps`
// installs.
func needJupyterServer(t *testing.T) {
	if _, err := os.Stat("/usr/bin/jupyter"); err != nil {
		if os.Getenv("CI") == "true" {
			t.Fatal("/usr/bin/jupyter is missing (scripts/test-deps.sh installs jupyter-notebook)")
		}
		t.Skip("/usr/bin/jupyter is missing (run scripts/test-deps.sh)")
	}
}

// allowTraverseTestDirs lets other users walk through the test's temporary directories (t.TempDir is
// 0700, under a 0700 root): run as root, the local runtime runs notebook servers as per-namespace users,
// which must reach their directories under the dev platform's data dir.
func allowTraverseTestDirs(t *testing.T) {
	t.Helper()
	if os.Geteuid() != 0 {
		return
	}
	root := filepath.Dir(t.TempDir())
	dirs := []string{root}
	entries, err := os.ReadDir(root)
	if err != nil {
		t.Fatal(err)
	}
	for _, e := range entries {
		if e.IsDir() {
			dirs = append(dirs, filepath.Join(root, e.Name()))
		}
	}
	for _, d := range dirs {
		fi, err := os.Stat(d)
		if err != nil {
			t.Fatal(err)
		}
		if err := os.Chmod(d, fi.Mode().Perm()|0o001); err != nil {
			t.Fatal(err)
		}
	}
}

// submit clicks the submit button sel and waits until the browser has loaded the page the form's answer
// leads to (so that nothing navigates away while the form is still being sent).
func submit(b *browser, what, sel string) {
	b.t.Helper()
	b.do("mark "+what, chromedp.WaitVisible(chromedp.CSS(sel)))
	_ = eval[bool](b, `(document.body.dataset.stale = '1') === '1'`)
	b.do(what, chromedp.Click(chromedp.CSS(sel)))
	b.waitFor(what+" answered", `document.readyState === 'complete' && !!document.body && !document.body.dataset.stale`, 2*time.Minute)
}
