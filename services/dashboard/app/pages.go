package app

import (
	"bytes"
	"encoding/json"
	"errors"
	"fmt"
	"html/template"
	"io"
	"io/fs"
	"net/http"
	"net/url"
	"path"
	"slices"
	"sort"
	"strconv"
	"strings"
	"time"

	"github.com/sluice-ml/sluice/libs/auth"
	"github.com/sluice-ml/sluice/services/notebooks/api/notebooksv1"
	"github.com/sluice-ml/sluice/services/pipelines/api/pipelinesv1"
	"github.com/sluice-ml/sluice/services/serving/api/servingv1"
	"github.com/sluice-ml/sluice/services/training/api/trainingv1"
)

// funcs are the template helpers.
var funcs = template.FuncMap{
	"when": func(t any) string {
		switch v := t.(type) {
		case time.Time:
			if v.IsZero() {
				return ""
			}
			return v.UTC().Format("2006-01-02 15:04:05Z")
		case *time.Time:
			if v == nil || v.IsZero() {
				return ""
			}
			return v.UTC().Format("2006-01-02 15:04:05Z")
		}
		return ""
	},
	"took": func(start, end *time.Time) string {
		if start == nil {
			return ""
		}
		e := time.Now()
		if end != nil {
			e = *end
		}
		return e.Sub(*start).Round(10 * time.Millisecond).String()
	},
	"lower": strings.ToLower,
	"json": func(v any) string {
		b, _ := json.Marshal(v)
		return string(b)
	},
	"deref32": func(p *int) string {
		if p == nil {
			return ""
		}
		return strconv.Itoa(*p)
	},
	"deref": func(p *int32) string {
		if p == nil {
			return ""
		}
		return strconv.Itoa(int(*p))
	},
}

func parsePages() (map[string]*template.Template, error) {
	names, err := fs.Glob(templateFS, "templates/*.html")
	if err != nil {
		return nil, err
	}
	out := map[string]*template.Template{}
	for _, n := range names {
		base := path.Base(n)
		if base == "layout.html" {
			continue
		}
		t, err := template.New(base).Funcs(funcs).ParseFS(templateFS, "templates/layout.html", n)
		if err != nil {
			return nil, fmt.Errorf("dashboard: template %s: %w", base, err)
		}
		out[strings.TrimSuffix(base, ".html")] = t
	}
	return out, nil
}

// view is what every page gets: its title, the navigation entry to mark, the signed-in subject and
// the page's own data.
type view struct {
	Title   string
	Nav     string
	Subject string
	Error   string
	Notice  string
	Data    any
	// TemporalUI is the Temporal Web UI page of the shown resource's workflow ("" when not configured).
	TemporalUI string
}

func (a *App) render(w http.ResponseWriter, r *http.Request, code int, page string, v view) {
	if id, ok := auth.FromContext(r.Context()); ok {
		v.Subject = id.Subject
	}
	var buf bytes.Buffer
	if err := a.pages[page].ExecuteTemplate(&buf, "layout", v); err != nil {
		a.log.Error("render", "page", page, "err", err)
		http.Error(w, "dashboard: cannot render "+page, http.StatusInternalServerError)
		return
	}
	w.Header().Set("Content-Type", "text/html; charset=utf-8")
	w.Header().Set("Cache-Control", "no-store")
	w.Header().Set("Content-Security-Policy", "default-src 'self'; img-src 'self' data:; style-src 'self' 'unsafe-inline'; frame-ancestors 'none'")
	w.Header().Set("Referrer-Policy", "same-origin")
	w.WriteHeader(code)
	_, _ = buf.WriteTo(w)
}

// fail renders an error page: an API's refusal keeps its status (a 400 stays a 400), anything else is 502.
func (a *App) fail(w http.ResponseWriter, r *http.Request, title string, err error) {
	code := http.StatusBadGateway
	var ae *apiError
	if errors.As(err, &ae) {
		code = ae.Code
		if code == http.StatusUnauthorized && r.Method == http.MethodGet {
			http.Redirect(w, r, "/login?next="+url.QueryEscape(r.URL.RequestURI()), http.StatusSeeOther)
			return
		}
		err = errors.New(ae.Msg)
	}
	a.render(w, r, code, "error", view{Title: title, Error: err.Error()})
}

var crossOrigin = http.NewCrossOriginProtection()

// sameOrigin refuses a state-changing request a page of another site sent with the browser's cookie.
func (a *App) sameOrigin(w http.ResponseWriter, r *http.Request) bool {
	if err := crossOrigin.Check(r); err != nil {
		a.render(w, r, http.StatusForbidden, "error", view{Title: "Refused", Error: "cross-origin request refused: " + err.Error()})
		return false
	}
	return true
}

// ---- sign-in ----

type loginData struct {
	Next string
}

func safeNext(next string) string {
	if !strings.HasPrefix(next, "/") || strings.HasPrefix(next, "//") || strings.HasPrefix(next, "/\\") {
		return "/"
	}
	return next
}

func (a *App) loginPage(w http.ResponseWriter, r *http.Request) {
	a.render(w, r, http.StatusOK, "login", view{Title: "Sign in", Data: loginData{Next: safeNext(r.URL.Query().Get("next"))}})
}

// login checks the token against the gateway (GET /apis/auth/v1/whoami with it) and keeps it in the
// HttpOnly, SameSite=Strict sluice cookie the gateway accepts on browser routes.
func (a *App) login(w http.ResponseWriter, r *http.Request) {
	if !a.sameOrigin(w, r) {
		return
	}
	r.Body = http.MaxBytesReader(w, r.Body, 64<<10)
	tok := strings.TrimSpace(r.PostFormValue("token"))
	next := safeNext(r.PostFormValue("next"))
	if tok == "" {
		a.render(w, r, http.StatusBadRequest, "login", view{Title: "Sign in", Error: "token: required", Data: loginData{Next: next}})
		return
	}
	c, err := a.callerWith(r, tok)
	if err != nil {
		a.fail(w, r, "Sign in", err)
		return
	}
	var id auth.Identity
	if err := c.getJSON(r.Context(), "/apis/auth/v1/whoami", &id); err != nil {
		var ae *apiError
		if errors.As(err, &ae) && ae.Code == http.StatusUnauthorized {
			a.render(w, r, http.StatusUnauthorized, "login", view{Title: "Sign in", Error: "token: not accepted by the gateway (" + ae.Msg + ")", Data: loginData{Next: next}})
			return
		}
		a.fail(w, r, "Sign in", err)
		return
	}
	http.SetCookie(w, &http.Cookie{Name: auth.CookieName, Value: tok, Path: "/", HttpOnly: true,
		SameSite: http.SameSiteStrictMode, Secure: r.TLS != nil, MaxAge: int((12 * time.Hour).Seconds())})
	http.Redirect(w, r, next, http.StatusSeeOther)
}

func (a *App) logout(w http.ResponseWriter, r *http.Request) {
	if !a.sameOrigin(w, r) {
		return
	}
	http.SetCookie(w, &http.Cookie{Name: auth.CookieName, Value: "", Path: "/", HttpOnly: true, SameSite: http.SameSiteStrictMode, MaxAge: -1})
	http.Redirect(w, r, "/login", http.StatusSeeOther)
}

// ---- home ----

type runList struct {
	Runs          []runSummary `json:"runs"`
	NextPageToken string       `json:"next_page_token"`
}

type runSummary struct {
	RunID      string     `json:"run_id"`
	RunName    string     `json:"run_name,omitempty"`
	Pipeline   string     `json:"pipeline_name,omitempty"`
	Experiment string     `json:"experiment_id,omitempty"`
	State      string     `json:"state"`
	CreatedAt  time.Time  `json:"created_at"`
	FinishedAt *time.Time `json:"finished_at,omitempty"`
}

type homeData struct {
	Runs      []runSummary
	Failures  []runSummary
	Jobs      []trainingv1.JobView
	Notebooks []notebooksv1.Notebook
	Deploys   []servingv1.DeploymentView
	// FailedJobs, FailedDeploys and FailedNotebooks join the failed runs in the failures card.
	FailedJobs      []trainingv1.JobView
	FailedDeploys   []servingv1.DeploymentView
	FailedNotebooks []notebookRow
	Namespaces      []string
	Problems        []string
}

type namespaceList struct {
	Namespaces []struct {
		Name string `json:"name"`
	} `json:"namespaces"`
}

// wellKnownNamespaces are shown on the overview pages beside the caller's profiles although they need
// no profile: "default" (where Sluice puts what names no namespace) and "kubeflow" (the namespace of
// Kubeflow's published examples, which the README tour uses). A caller that may not read one simply
// sees nothing from it.
var wellKnownNamespaces = []string{"default", "kubeflow"}

// namespaces lists the namespaces of the overview pages: the caller's profiles (at most 20), the well-known
// namespaces, and the one named by ?namespace= (to look at any other namespace the caller may read).
func (a *App) namespaces(r *http.Request, c *caller) ([]string, error) {
	var nl namespaceList
	if err := c.getJSON(r.Context(), "/apis/auth/v1/namespaces", &nl); err != nil {
		return nil, err
	}
	var out []string
	for _, n := range nl.Namespaces {
		out = append(out, n.Name)
	}
	sort.Strings(out)
	if len(out) > 20 {
		out = out[:20]
	}
	extra := wellKnownNamespaces
	if ns := r.URL.Query().Get("namespace"); ns != "" && auth.ValidNamespace(ns) == nil {
		extra = append([]string{ns}, extra...)
	}
	for _, ns := range extra {
		if !slices.Contains(out, ns) {
			out = append(out, ns)
		}
	}
	return out, nil
}

// implicitDenied reports whether err is a namespace the caller may not read among the well-known ones
// added by namespaces (not a problem worth showing).
func implicitDenied(ns string, err error) bool {
	var ae *apiError
	return slices.Contains(wellKnownNamespaces, ns) && errors.As(err, &ae) && (ae.Code == http.StatusForbidden || ae.Code == http.StatusNotFound)
}

func (a *App) home(w http.ResponseWriter, r *http.Request) {
	c, err := a.callerFor(r)
	if err != nil {
		a.fail(w, r, "Home", err)
		return
	}
	var d homeData
	var rl runList
	if err := c.getJSON(r.Context(), "/apis/v1/runs?page_size=50", &rl); err != nil {
		var ae *apiError
		if errors.As(err, &ae) && ae.Code == http.StatusUnauthorized {
			a.fail(w, r, "Home", err)
			return
		}
		d.Problems = append(d.Problems, "runs: "+err.Error())
	}
	for _, run := range rl.Runs {
		if run.State == pipelinesv1.RunFailed && len(d.Failures) < 10 {
			d.Failures = append(d.Failures, run)
		}
	}
	d.Runs = rl.Runs
	if len(d.Runs) > 10 {
		d.Runs = d.Runs[:10]
	}
	nss, err := a.namespaces(r, c)
	if err != nil {
		d.Problems = append(d.Problems, "namespaces: "+err.Error())
	}
	d.Namespaces = nss
	for _, ns := range nss {
		var jl struct {
			Jobs []trainingv1.JobView `json:"jobs"`
		}
		if err := c.getJSON(r.Context(), "/apis/training/v1/namespaces/"+url.PathEscape(ns)+"/jobs", &jl); err == nil {
			d.Jobs = append(d.Jobs, jl.Jobs...)
		} else if !implicitDenied(ns, err) {
			d.Problems = append(d.Problems, "training jobs in "+ns+": "+err.Error())
		}
		var nl notebooksv1.NotebookList
		if err := c.getJSON(r.Context(), "/apis/notebooks/v1/namespaces/"+url.PathEscape(ns)+"/notebooks", &nl); err == nil {
			d.Notebooks = append(d.Notebooks, nl.Items...)
		} else if !implicitDenied(ns, err) {
			d.Problems = append(d.Problems, "notebooks in "+ns+": "+err.Error())
		}
		var dl servingv1.DeploymentList
		if err := c.getJSON(r.Context(), deploymentsPath(ns), &dl); err == nil {
			d.Deploys = append(d.Deploys, dl.Deployments...)
		} else if !implicitDenied(ns, err) {
			d.Problems = append(d.Problems, "deployments in "+ns+": "+err.Error())
		}
	}
	d.homeFailures()
	a.render(w, r, http.StatusOK, "home", view{Title: "Home", Nav: "home", Data: d})
}

// ---- runs ----

type runsData struct {
	Runs      []runSummary
	State     string
	Next      string
	PageToken string
}

func (a *App) runs(w http.ResponseWriter, r *http.Request) {
	c, err := a.callerFor(r)
	if err != nil {
		a.fail(w, r, "Runs", err)
		return
	}
	q := url.Values{"page_size": {"50"}}
	if t := r.URL.Query().Get("page_token"); t != "" {
		q.Set("page_token", t)
	}
	if e := r.URL.Query().Get("experiment_id"); e != "" {
		q.Set("experiment_id", e)
	}
	var rl runList
	if err := c.getJSON(r.Context(), "/apis/v1/runs?"+q.Encode(), &rl); err != nil {
		a.fail(w, r, "Runs", err)
		return
	}
	d := runsData{State: r.URL.Query().Get("state"), PageToken: rl.NextPageToken}
	for _, run := range rl.Runs {
		if d.State == "" || run.State == d.State {
			d.Runs = append(d.Runs, run)
		}
	}
	if rl.NextPageToken != "" {
		nq := url.Values{"page_token": {rl.NextPageToken}}
		if d.State != "" {
			nq.Set("state", d.State)
		}
		d.Next = "/ui/runs?" + nq.Encode()
	}
	a.render(w, r, http.StatusOK, "runs", view{Title: "Runs", Nav: "runs", Data: d})
}

type runDetail struct {
	pipelinesv1.RunState
	WorkflowStatus string `json:"workflow_status"`
}

// taskRow is one row of a run's task table.
type taskRow struct {
	Index      int
	Depth      int
	Graph      pipelinesv1.GraphTask
	State      pipelinesv1.TaskState
	Known      bool
	Iterations int
	IterDone   int
}

type runData struct {
	Run        runDetail
	Rows       []taskRow
	Extra      []pipelinesv1.TaskState
	SVG        template.HTML
	Index      map[string]int
	Live       bool
	TemporalUI string
	LayoutErr  string
}

func finalRun(state string) bool {
	return state == pipelinesv1.RunSucceeded || state == pipelinesv1.RunFailed || state == pipelinesv1.RunCancelled
}

// loopIterations counts the iterations of loop task p in the run's tasks and how many of them ended.
func loopIterations(p string, tasks []pipelinesv1.TaskState) (n, done int) {
	for _, t := range tasks {
		rest, ok := strings.CutPrefix(t.Path, p+"/")
		if !ok {
			continue
		}
		if _, err := strconv.Atoi(rest); err != nil {
			continue
		}
		n++
		if t.State != pipelinesv1.TaskRunning && t.State != pipelinesv1.TaskPending {
			done++
		}
	}
	return n, done
}

func (a *App) run(w http.ResponseWriter, r *http.Request) {
	id := r.PathValue("id")
	c, err := a.callerFor(r)
	if err != nil {
		a.fail(w, r, "Run", err)
		return
	}
	var d runData
	if err := c.getJSON(r.Context(), "/apis/v1/runs/"+url.PathEscape(id), &d.Run); err != nil {
		a.fail(w, r, "Run "+id, err)
		return
	}
	var g pipelinesv1.Graph
	if err := c.getJSON(r.Context(), "/apis/v1/runs/"+url.PathEscape(id)+"/graph", &g); err != nil {
		a.fail(w, r, "Run "+id, err)
		return
	}
	a.fillRun(r, &d, g)
	title := d.Run.RunName
	if title == "" {
		title = id
	}
	a.render(w, r, http.StatusOK, "run", view{Title: "Run " + title, Nav: "runs", Data: d})
}

// fillRun joins a run's state with its graph: the rows of the task table and the coloured SVG.
func (a *App) fillRun(r *http.Request, d *runData, g pipelinesv1.Graph) {
	byPath := map[string]pipelinesv1.TaskState{}
	for _, t := range d.Run.Tasks {
		byPath[t.Path] = t
	}
	d.Index = map[string]int{}
	states := make([]string, len(g.Tasks))
	depth := map[string]int{}
	for i, gt := range g.Tasks {
		d.Index[gt.Path] = i
		row := taskRow{Index: i, Graph: gt}
		if gt.Parent != "" {
			row.Depth = depth[gt.Parent] + 1
		}
		depth[gt.Path] = row.Depth
		row.State, row.Known = byPath[gt.Path]
		if !row.Known {
			row.State = pipelinesv1.TaskState{Path: gt.Path, Name: gt.Name, State: pipelinesv1.TaskPending}
		}
		if gt.Loop {
			row.Iterations, row.IterDone = loopIterations(gt.Path, d.Run.Tasks)
		}
		states[i] = row.State.State
		d.Rows = append(d.Rows, row)
	}
	for _, t := range d.Run.Tasks {
		if _, ok := d.Index[t.Path]; !ok {
			d.Extra = append(d.Extra, t)
		}
	}
	svg, err := a.layout.svg(r.Context(), "run/"+d.Run.RunID, g)
	if err != nil {
		d.LayoutErr = err.Error()
	} else {
		d.SVG = template.HTML(colour(svg, states)) // Graphviz's SVG of our escaped DOT
	}
	d.Live = !finalRun(d.Run.State)
	if a.uiURL != "" {
		d.TemporalUI = a.uiURL + "/namespaces/" + url.PathEscape(a.deps.Namespace) + "/workflows/" + url.PathEscape(d.Run.RunID)
	}
}

// liveState is one server-sent update of a run page.
type liveState struct {
	State string              `json:"state"`
	Error string              `json:"error,omitempty"`
	Tasks map[string]liveTask `json:"tasks"`
	Loops map[string][2]int   `json:"loops,omitempty"`
}

type liveTask struct {
	State    string `json:"state"`
	Attempts int    `json:"attempts,omitempty"`
	Took     string `json:"took,omitempty"`
}

// runLive streams the run's state as server-sent events ("state" on every change, "done" once the run
// ended), reading the pipelines API every poll interval with the caller's credential.
func (a *App) runLive(w http.ResponseWriter, r *http.Request) {
	id := r.PathValue("id")
	c, err := a.callerFor(r)
	if err != nil {
		a.fail(w, r, "Run", err)
		return
	}
	var g pipelinesv1.Graph
	if err := c.getJSON(r.Context(), "/apis/v1/runs/"+url.PathEscape(id)+"/graph", &g); err != nil {
		a.fail(w, r, "Run "+id, err)
		return
	}
	fl, ok := w.(http.Flusher)
	if !ok {
		http.Error(w, "streaming unsupported", http.StatusInternalServerError)
		return
	}
	w.Header().Set("Content-Type", "text/event-stream")
	w.Header().Set("Cache-Control", "no-store")
	w.WriteHeader(http.StatusOK)
	fl.Flush()
	var last []byte
	t := time.NewTicker(a.poll)
	defer t.Stop()
	for {
		var run runDetail
		if err := c.getJSON(r.Context(), "/apis/v1/runs/"+url.PathEscape(id), &run); err != nil {
			if r.Context().Err() != nil {
				return
			}
			fmt.Fprintf(w, "event: problem\ndata: %s\n\n", jsonLine(err.Error()))
		} else {
			ls := liveState{State: run.State, Error: run.Error, Tasks: map[string]liveTask{}, Loops: map[string][2]int{}}
			for _, t := range run.Tasks {
				ls.Tasks[t.Path] = liveTask{State: t.State, Attempts: t.Attempts, Took: funcs["took"].(func(*time.Time, *time.Time) string)(t.StartedAt, t.FinishedAt)}
			}
			for _, gt := range g.Tasks {
				if gt.Loop {
					n, done := loopIterations(gt.Path, run.Tasks)
					ls.Loops[gt.Path] = [2]int{n, done}
				}
			}
			b, _ := json.Marshal(ls)
			if !bytes.Equal(b, last) {
				fmt.Fprintf(w, "event: state\ndata: %s\n\n", b)
				last = b
			}
			if finalRun(run.State) {
				fmt.Fprintf(w, "event: done\ndata: %s\n\n", jsonLine(run.State))
				fl.Flush()
				return
			}
		}
		fl.Flush()
		select {
		case <-r.Context().Done():
			return
		case <-t.C:
		}
	}
}

func jsonLine(s string) string {
	b, _ := json.Marshal(s)
	return string(b)
}

// runLogs shows a task's step log as plain text.
func (a *App) runLogs(w http.ResponseWriter, r *http.Request) {
	c, err := a.callerFor(r)
	if err != nil {
		a.fail(w, r, "Log", err)
		return
	}
	q := url.Values{}
	if t := r.URL.Query().Get("task"); t != "" {
		q.Set("task", t)
	}
	resp, err := c.do(r.Context(), http.MethodGet, "/apis/v1/runs/"+url.PathEscape(r.PathValue("id"))+"/logs?"+q.Encode(), "", nil)
	if err != nil {
		a.fail(w, r, "Log", err)
		return
	}
	defer resp.Body.Close()
	w.Header().Set("Content-Type", "text/plain; charset=utf-8")
	w.Header().Set("Cache-Control", "no-store")
	_, _ = io.Copy(w, resp.Body)
}

func (a *App) runAction(w http.ResponseWriter, r *http.Request) {
	if !a.sameOrigin(w, r) {
		return
	}
	id, action := r.PathValue("id"), r.PathValue("action")
	if action != "cancel" && action != "retry" {
		a.render(w, r, http.StatusNotFound, "error", view{Title: "Run", Error: fmt.Sprintf("action: %q is not cancel or retry", action)})
		return
	}
	c, err := a.callerFor(r)
	if err != nil {
		a.fail(w, r, "Run", err)
		return
	}
	var out struct {
		RunID string `json:"run_id"`
	}
	if err := c.sendJSON(r.Context(), http.MethodPost, "/apis/v1/runs/"+url.PathEscape(id)+"/"+action, nil, &out); err != nil {
		a.fail(w, r, "Run "+id, err)
		return
	}
	if out.RunID == "" {
		out.RunID = id
	}
	http.Redirect(w, r, "/ui/runs/"+url.PathEscape(out.RunID), http.StatusSeeOther)
}

// ---- pipelines ----

type pipelineRow struct {
	ID          string    `json:"pipeline_id"`
	Name        string    `json:"display_name"`
	Description string    `json:"description,omitempty"`
	CreatedAt   time.Time `json:"created_at"`
}

type versionRow struct {
	ID         string    `json:"pipeline_version_id"`
	PipelineID string    `json:"pipeline_id"`
	Name       string    `json:"display_name"`
	Format     string    `json:"format"`
	CreatedAt  time.Time `json:"created_at"`
}

func (a *App) pipelines(w http.ResponseWriter, r *http.Request) {
	c, err := a.callerFor(r)
	if err != nil {
		a.fail(w, r, "Pipelines", err)
		return
	}
	var pl struct {
		Pipelines []pipelineRow `json:"pipelines"`
	}
	if err := c.getJSON(r.Context(), "/apis/v1/pipelines", &pl); err != nil {
		a.fail(w, r, "Pipelines", err)
		return
	}
	sort.SliceStable(pl.Pipelines, func(i, j int) bool { return pl.Pipelines[i].CreatedAt.After(pl.Pipelines[j].CreatedAt) })
	a.render(w, r, http.StatusOK, "pipelines", view{Title: "Pipelines", Nav: "pipelines", Data: pl.Pipelines})
}

// uploadPipeline takes a native Sluice YAML or KFP IR file (or pasted text) and creates the pipeline.
func (a *App) uploadPipeline(w http.ResponseWriter, r *http.Request) {
	if !a.sameOrigin(w, r) {
		return
	}
	r.Body = http.MaxBytesReader(w, r.Body, 16<<20)
	if err := r.ParseMultipartForm(16 << 20); err != nil && !errors.Is(err, http.ErrNotMultipart) {
		a.render(w, r, http.StatusBadRequest, "error", view{Title: "Upload pipeline", Error: "form: " + err.Error()})
		return
	}
	spec := r.FormValue("spec_text")
	if f, _, err := r.FormFile("spec"); err == nil {
		b, err := io.ReadAll(f)
		f.Close()
		if err != nil {
			a.render(w, r, http.StatusBadRequest, "error", view{Title: "Upload pipeline", Error: "spec: " + err.Error()})
			return
		}
		if len(bytes.TrimSpace(b)) > 0 {
			spec = string(b)
		}
	}
	if strings.TrimSpace(spec) == "" {
		a.render(w, r, http.StatusBadRequest, "error", view{Title: "Upload pipeline", Error: "spec: choose a pipeline file (native YAML or KFP IR) or paste one"})
		return
	}
	c, err := a.callerFor(r)
	if err != nil {
		a.fail(w, r, "Upload pipeline", err)
		return
	}
	var out struct {
		Pipeline pipelineRow `json:"pipeline"`
	}
	body := map[string]string{"display_name": strings.TrimSpace(r.FormValue("name")), "spec": spec}
	if err := c.sendJSON(r.Context(), http.MethodPost, "/apis/v1/pipelines", body, &out); err != nil {
		a.fail(w, r, "Upload pipeline", err)
		return
	}
	http.Redirect(w, r, "/ui/pipelines/"+url.PathEscape(out.Pipeline.ID), http.StatusSeeOther)
}

type pipelineData struct {
	Pipeline pipelineRow
	Versions []versionRow
	Version  string
	Graph    pipelinesv1.Graph
	SVG      template.HTML
	Values   map[string]string
	Problems []string
	RunName  string
}

func (a *App) loadPipeline(r *http.Request, c *caller, id, version string) (pipelineData, error) {
	var d pipelineData
	pid := url.PathEscape(id)
	if err := c.getJSON(r.Context(), "/apis/v1/pipelines/"+pid, &d.Pipeline); err != nil {
		return d, err
	}
	var vl struct {
		Versions []versionRow `json:"pipeline_versions"`
	}
	if err := c.getJSON(r.Context(), "/apis/v1/pipelines/"+pid+"/versions", &vl); err != nil {
		return d, err
	}
	d.Versions = vl.Versions
	sort.SliceStable(d.Versions, func(i, j int) bool { return d.Versions[i].CreatedAt.After(d.Versions[j].CreatedAt) })
	d.Version = version
	if d.Version == "" && len(d.Versions) > 0 {
		d.Version = d.Versions[0].ID
	}
	if err := c.getJSON(r.Context(), "/apis/v1/pipelines/"+pid+"/graph?"+url.Values{"version_id": {d.Version}}.Encode(), &d.Graph); err != nil {
		return d, err
	}
	if svg, err := a.layout.svg(r.Context(), "pipeline/"+id+"/"+d.Version, d.Graph); err == nil {
		d.SVG = template.HTML(colour(svg, nil))
	}
	d.Values = map[string]string{}
	for _, in := range d.Graph.Inputs {
		if in.HasDefault {
			d.Values[in.Name] = formValue(in.Default)
		}
	}
	return d, nil
}

// formValue is how a parameter value is written in a form field: strings as they are, other values as JSON.
func formValue(v any) string {
	if s, ok := v.(string); ok {
		return s
	}
	b, _ := json.Marshal(v)
	return string(b)
}

func (a *App) pipeline(w http.ResponseWriter, r *http.Request) {
	c, err := a.callerFor(r)
	if err != nil {
		a.fail(w, r, "Pipeline", err)
		return
	}
	d, err := a.loadPipeline(r, c, r.PathValue("id"), r.URL.Query().Get("version"))
	if err != nil {
		a.fail(w, r, "Pipeline", err)
		return
	}
	a.render(w, r, http.StatusOK, "pipeline", view{Title: "Pipeline " + d.Pipeline.Name, Nav: "pipelines", Data: d})
}

// paramValue converts a run-form field to the parameter's declared KFP type.
func paramValue(in pipelinesv1.GraphInput, s string) (any, error) {
	switch in.Type {
	case "NUMBER_INTEGER":
		n, err := strconv.ParseInt(strings.TrimSpace(s), 10, 64)
		if err != nil {
			return nil, fmt.Errorf("%s: %q is not an integer", in.Name, s)
		}
		return n, nil
	case "NUMBER_DOUBLE":
		f, err := strconv.ParseFloat(strings.TrimSpace(s), 64)
		if err != nil {
			return nil, fmt.Errorf("%s: %q is not a number", in.Name, s)
		}
		return f, nil
	case "BOOLEAN":
		b, err := strconv.ParseBool(strings.TrimSpace(s))
		if err != nil {
			return nil, fmt.Errorf("%s: %q is not true or false", in.Name, s)
		}
		return b, nil
	case "LIST", "STRUCT":
		var v any
		if err := json.Unmarshal([]byte(s), &v); err != nil {
			return nil, fmt.Errorf("%s: not JSON: %v", in.Name, err)
		}
		return v, nil
	}
	return s, nil
}

func (a *App) createRun(w http.ResponseWriter, r *http.Request) {
	if !a.sameOrigin(w, r) {
		return
	}
	r.Body = http.MaxBytesReader(w, r.Body, 8<<20)
	if err := r.ParseForm(); err != nil {
		a.render(w, r, http.StatusBadRequest, "error", view{Title: "Run", Error: "form: " + err.Error()})
		return
	}
	c, err := a.callerFor(r)
	if err != nil {
		a.fail(w, r, "Run", err)
		return
	}
	id := r.PathValue("id")
	d, err := a.loadPipeline(r, c, id, r.PostForm.Get("version"))
	if err != nil {
		a.fail(w, r, "Run", err)
		return
	}
	params := map[string]any{}
	d.RunName = strings.TrimSpace(r.PostForm.Get("run_name"))
	for _, in := range d.Graph.Inputs {
		s, set := r.PostForm["p."+in.Name]
		v := ""
		if set {
			v = s[0]
		}
		d.Values[in.Name] = v
		if v == "" && in.Type != "STRING" {
			if !in.HasDefault && !in.Optional {
				d.Problems = append(d.Problems, in.Name+": required")
			}
			continue
		}
		if v == "" && !set && (in.HasDefault || in.Optional) {
			continue
		}
		pv, err := paramValue(in, v)
		if err != nil {
			d.Problems = append(d.Problems, err.Error())
			continue
		}
		params[in.Name] = pv
	}
	if len(d.Problems) == 0 {
		req := pipelinesv1.RunRequest{RunName: d.RunName, PipelineID: id, PipelineVersionID: d.Version, Parameters: params}
		var out struct {
			RunID string `json:"run_id"`
		}
		err := c.sendJSON(r.Context(), http.MethodPost, "/apis/v1/runs", req, &out)
		if err == nil {
			http.Redirect(w, r, "/ui/runs/"+url.PathEscape(out.RunID), http.StatusSeeOther)
			return
		}
		var ae *apiError
		if !errors.As(err, &ae) || ae.Code != http.StatusBadRequest {
			a.fail(w, r, "Run", err)
			return
		}
		d.Problems = append(d.Problems, ae.Msg)
	}
	a.render(w, r, http.StatusBadRequest, "pipeline", view{Title: "Pipeline " + d.Pipeline.Name, Nav: "pipelines", Error: "The run was not started.", Data: d})
}

// ---- training jobs ----

type jobsData struct {
	Jobs     []trainingv1.JobView
	Problems []string
}

func (a *App) jobs(w http.ResponseWriter, r *http.Request) {
	c, err := a.callerFor(r)
	if err != nil {
		a.fail(w, r, "Training jobs", err)
		return
	}
	nss, err := a.namespaces(r, c)
	if err != nil {
		a.fail(w, r, "Training jobs", err)
		return
	}
	var d jobsData
	for _, ns := range nss {
		var jl struct {
			Jobs []trainingv1.JobView `json:"jobs"`
		}
		if err := c.getJSON(r.Context(), "/apis/training/v1/namespaces/"+url.PathEscape(ns)+"/jobs", &jl); err != nil {
			if !implicitDenied(ns, err) {
				d.Problems = append(d.Problems, ns+": "+err.Error())
			}
			continue
		}
		d.Jobs = append(d.Jobs, jl.Jobs...)
	}
	a.render(w, r, http.StatusOK, "jobs", view{Title: "Training jobs", Nav: "jobs", Data: d})
}

func (a *App) job(w http.ResponseWriter, r *http.Request) {
	c, err := a.callerFor(r)
	if err != nil {
		a.fail(w, r, "Training job", err)
		return
	}
	ns, name := r.PathValue("ns"), r.PathValue("name")
	var jv trainingv1.JobView
	if err := c.getJSON(r.Context(), "/apis/training/v1/namespaces/"+url.PathEscape(ns)+"/jobs/"+url.PathEscape(name)+kindQuery(r), &jv); err != nil {
		a.fail(w, r, "Training job "+name, err)
		return
	}
	v := view{Title: "Training job " + ns + "/" + name, Nav: "jobs", Data: jobPage(jv)}
	if a.uiURL != "" {
		v.TemporalUI = a.uiURL + "/namespaces/" + url.PathEscape(a.deps.Namespace) + "/workflows/" + url.PathEscape(trainingv1.WorkflowID(jv.Kind, jv.Namespace, jv.Name))
	}
	a.render(w, r, http.StatusOK, "job", v)
}

func (a *App) jobLogs(w http.ResponseWriter, r *http.Request) {
	c, err := a.callerFor(r)
	if err != nil {
		a.fail(w, r, "Log", err)
		return
	}
	q := url.Values{}
	for _, k := range []string{"replica", "attempt", "kind"} {
		if v := r.URL.Query().Get(k); v != "" {
			q.Set(k, v)
		}
	}
	resp, err := c.do(r.Context(), http.MethodGet, "/apis/training/v1/namespaces/"+url.PathEscape(r.PathValue("ns"))+"/jobs/"+url.PathEscape(r.PathValue("name"))+"/logs?"+q.Encode(), "", nil)
	if err != nil {
		a.fail(w, r, "Log", err)
		return
	}
	defer resp.Body.Close()
	w.Header().Set("Content-Type", "text/plain; charset=utf-8")
	w.Header().Set("Cache-Control", "no-store")
	_, _ = io.Copy(w, resp.Body)
}

// ---- notebooks ----

type notebooksData struct {
	Notebooks  []notebookRow
	Namespaces []string
	Problems   []string
}

func (a *App) notebooks(w http.ResponseWriter, r *http.Request) {
	c, err := a.callerFor(r)
	if err != nil {
		a.fail(w, r, "Notebooks", err)
		return
	}
	nss, err := a.namespaces(r, c)
	if err != nil {
		a.fail(w, r, "Notebooks", err)
		return
	}
	d := notebooksData{Namespaces: nss}
	for _, ns := range nss {
		var nl notebooksv1.NotebookList
		if err := c.getJSON(r.Context(), "/apis/notebooks/v1/namespaces/"+url.PathEscape(ns)+"/notebooks", &nl); err != nil {
			if !implicitDenied(ns, err) {
				d.Problems = append(d.Problems, ns+": "+err.Error())
			}
			continue
		}
		for _, nb := range nl.Items {
			d.Notebooks = append(d.Notebooks, rowOf(nb))
		}
	}
	a.render(w, r, http.StatusOK, "notebooks", view{Title: "Notebooks", Nav: "notebooks", Data: d})
}

// createNotebook submits a Kubeflow Notebook (kubeflow.org/v1) built from the form.
func (a *App) createNotebook(w http.ResponseWriter, r *http.Request) {
	if !a.sameOrigin(w, r) {
		return
	}
	r.Body = http.MaxBytesReader(w, r.Body, 64<<10)
	ns, name, image := strings.TrimSpace(r.PostFormValue("namespace")), strings.TrimSpace(r.PostFormValue("name")), strings.TrimSpace(r.PostFormValue("image"))
	if image == "" {
		image = "jupyter/minimal-notebook"
	}
	if err := auth.ValidNamespace(ns); err != nil {
		a.render(w, r, http.StatusBadRequest, "error", view{Title: "Create notebook", Error: "namespace: " + err.Error()})
		return
	}
	c, err := a.callerFor(r)
	if err != nil {
		a.fail(w, r, "Create notebook", err)
		return
	}
	container := map[string]any{"name": name, "image": image}
	requests := map[string]string{}
	for _, k := range []string{"cpu", "memory"} {
		if v := strings.TrimSpace(r.PostFormValue(k)); v != "" {
			requests[k] = v
		}
	}
	if len(requests) > 0 {
		container["resources"] = map[string]any{"requests": requests}
	}
	doc := map[string]any{"apiVersion": notebooksv1.APIVersion, "kind": "Notebook",
		"metadata": map[string]any{"name": name, "namespace": ns},
		"spec":     map[string]any{"template": map[string]any{"spec": map[string]any{"containers": []any{container}}}}}
	if err := c.sendJSON(r.Context(), http.MethodPost, "/apis/notebooks/v1/namespaces/"+url.PathEscape(ns)+"/notebooks", doc, nil); err != nil {
		a.fail(w, r, "Create notebook", err)
		return
	}
	http.Redirect(w, r, "/ui/notebooks", http.StatusSeeOther)
}

func (a *App) notebookAction(w http.ResponseWriter, r *http.Request) {
	if !a.sameOrigin(w, r) {
		return
	}
	ns, name, action := r.PathValue("ns"), r.PathValue("name"), r.PathValue("action")
	c, err := a.callerFor(r)
	if err != nil {
		a.fail(w, r, "Notebook", err)
		return
	}
	base := "/apis/notebooks/v1/namespaces/" + url.PathEscape(ns) + "/notebooks/" + url.PathEscape(name)
	switch action {
	case notebooksv1.ActionStop, notebooksv1.ActionStart:
		err = c.sendJSON(r.Context(), http.MethodPost, base+":"+action, nil, nil)
	case notebooksv1.ActionDelete:
		err = c.sendJSON(r.Context(), http.MethodDelete, base, nil, nil)
	default:
		a.render(w, r, http.StatusNotFound, "error", view{Title: "Notebook", Error: fmt.Sprintf("action: %q is not start, stop or delete", action)})
		return
	}
	if err != nil {
		a.fail(w, r, "Notebook "+ns+"/"+name, err)
		return
	}
	http.Redirect(w, r, "/ui/notebooks", http.StatusSeeOther)
}

// kindQuery passes the page's ?kind= on to the training API, whose job IDs are
// kind-qualified: a TFJob and a PyTorchJob may share a name in one namespace.
func kindQuery(r *http.Request) string {
	if k := r.URL.Query().Get("kind"); k != "" {
		return "?kind=" + url.QueryEscape(k)
	}
	return ""
}
