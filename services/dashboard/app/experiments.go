package app

import (
	"fmt"
	"net/http"
	"net/url"
	"sort"
	"time"
)

// experimentRow is a KFP experiment as the pipelines API lists it.
type experimentRow struct {
	ID          string    `json:"experiment_id"`
	Name        string    `json:"display_name"`
	Description string    `json:"description,omitempty"`
	Namespace   string    `json:"namespace"`
	CreatedAt   time.Time `json:"created_at"`
}

// recurringRunRow is a KFP recurring run as the pipelines API lists it.
type recurringRunRow struct {
	ID           string     `json:"recurring_run_id"`
	Name         string     `json:"display_name,omitempty"`
	Cron         string     `json:"cron,omitempty"`
	Status       string     `json:"status"`
	Paused       bool       `json:"paused"`
	NextRunTime  *time.Time `json:"next_run_time,omitempty"`
	PipelineName string     `json:"pipeline_name,omitempty"`
	Namespace    string     `json:"namespace"`
}

// experiments lists the KFP experiments of every namespace the caller may read.
func (a *App) experiments(w http.ResponseWriter, r *http.Request) {
	c, err := a.callerFor(r)
	if err != nil {
		a.fail(w, r, "Experiments", err)
		return
	}
	var el struct {
		Experiments []experimentRow `json:"experiments"`
	}
	if err := c.getJSON(r.Context(), "/apis/v1/experiments", &el); err != nil {
		a.fail(w, r, "Experiments", err)
		return
	}
	sort.SliceStable(el.Experiments, func(i, j int) bool { return el.Experiments[i].CreatedAt.After(el.Experiments[j].CreatedAt) })
	a.render(w, r, http.StatusOK, "experiments", view{Title: "Experiments", Nav: "experiments", Data: el.Experiments})
}

type experimentData struct {
	Experiment experimentRow
	Runs       []runSummary
	Next       string
}

// experiment shows a KFP experiment and its runs (newest first, 50 a page).
func (a *App) experiment(w http.ResponseWriter, r *http.Request) {
	id := r.PathValue("id")
	c, err := a.callerFor(r)
	if err != nil {
		a.fail(w, r, "Experiment", err)
		return
	}
	var d experimentData
	if err := c.getJSON(r.Context(), "/apis/v1/experiments/"+url.PathEscape(id), &d.Experiment); err != nil {
		a.fail(w, r, "Experiment "+id, err)
		return
	}
	q := url.Values{"page_size": {"50"}, "experiment_id": {id}}
	if t := r.URL.Query().Get("page_token"); t != "" {
		q.Set("page_token", t)
	}
	var rl runList
	if err := c.getJSON(r.Context(), "/apis/v1/runs?"+q.Encode(), &rl); err != nil {
		a.fail(w, r, "Experiment "+id, err)
		return
	}
	d.Runs = rl.Runs
	if rl.NextPageToken != "" {
		d.Next = "/ui/experiments/" + url.PathEscape(id) + "?" + url.Values{"page_token": {rl.NextPageToken}}.Encode()
	}
	a.render(w, r, http.StatusOK, "experiment", view{Title: "Experiment " + d.Experiment.Name, Nav: "experiments", Data: d})
}

// recurringRuns lists the recurring runs (schedules) of every namespace the caller may read.
func (a *App) recurringRuns(w http.ResponseWriter, r *http.Request) {
	c, err := a.callerFor(r)
	if err != nil {
		a.fail(w, r, "Recurring runs", err)
		return
	}
	var rl struct {
		RecurringRuns []recurringRunRow `json:"recurring_runs"`
	}
	if err := c.getJSON(r.Context(), "/apis/v1/recurringruns", &rl); err != nil {
		a.fail(w, r, "Recurring runs", err)
		return
	}
	sort.SliceStable(rl.RecurringRuns, func(i, j int) bool { return rl.RecurringRuns[i].Name < rl.RecurringRuns[j].Name })
	v := view{Title: "Recurring runs", Nav: "experiments", Data: rl.RecurringRuns}
	switch r.URL.Query().Get("done") {
	case "enable":
		v.Notice = "Recurring run enabled."
	case "disable":
		v.Notice = "Recurring run disabled."
	}
	a.render(w, r, http.StatusOK, "recurringruns", v)
}

// recurringRunAction enables or disables a recurring run (KFP's :enable / :disable).
func (a *App) recurringRunAction(w http.ResponseWriter, r *http.Request) {
	if !a.sameOrigin(w, r) {
		return
	}
	id, action := r.PathValue("id"), r.PathValue("action")
	if action != "enable" && action != "disable" {
		a.render(w, r, http.StatusNotFound, "error", view{Title: "Recurring run", Error: fmt.Sprintf("action: %q is not enable or disable", action)})
		return
	}
	c, err := a.callerFor(r)
	if err != nil {
		a.fail(w, r, "Recurring run", err)
		return
	}
	if err := c.sendJSON(r.Context(), http.MethodPost, "/apis/v1/recurringruns/"+url.PathEscape(id)+"/"+action, nil, nil); err != nil {
		a.fail(w, r, "Recurring run "+id, err)
		return
	}
	http.Redirect(w, r, "/ui/recurringruns?done="+action, http.StatusSeeOther)
}

// runInput is what a run was started with (GET /apis/v1/runs/{id}/input).
type runInput struct {
	RunID             string         `json:"run_id"`
	RunName           string         `json:"run_name"`
	ExperimentID      string         `json:"experiment_id,omitempty"`
	PipelineID        string         `json:"pipeline_id,omitempty"`
	PipelineVersionID string         `json:"pipeline_version_id,omitempty"`
	PipelineName      string         `json:"pipeline_name,omitempty"`
	Parameters        map[string]any `json:"parameters,omitempty"`
}

// cloneRun is KFP's "Clone run": the run form of the run's pipeline version, pre-filled with the run's
// parameters and a new name. A run of an inline spec (sluice run -f) has no uploaded pipeline to clone.
func (a *App) cloneRun(w http.ResponseWriter, r *http.Request) {
	id := r.PathValue("id")
	c, err := a.callerFor(r)
	if err != nil {
		a.fail(w, r, "Clone run", err)
		return
	}
	var in runInput
	if err := c.getJSON(r.Context(), "/apis/v1/runs/"+url.PathEscape(id)+"/input", &in); err != nil {
		a.fail(w, r, "Clone run "+id, err)
		return
	}
	if in.PipelineID == "" {
		a.render(w, r, http.StatusConflict, "error", view{Title: "Clone run", Error: "run " + id + " ran an inline pipeline spec, not an uploaded pipeline: upload the pipeline to clone its runs"})
		return
	}
	d, err := a.loadPipeline(r, c, in.PipelineID, in.PipelineVersionID)
	if err != nil {
		a.fail(w, r, "Clone run "+id, err)
		return
	}
	for k, v := range in.Parameters {
		d.Values[k] = formValue(v)
	}
	name := in.RunName
	if name == "" {
		name = id
	}
	d.RunName = "Clone of " + name
	a.render(w, r, http.StatusOK, "pipeline", view{Title: "Clone run " + name, Nav: "runs", Notice: "The form holds the run's pipeline version and parameters: change what you need and start the clone.", Data: d})
}
