package app

import (
	"net/http"
	"net/url"
	"strings"
	"time"

	"github.com/sluice-ml/sluice/services/notebooks/api/notebooksv1"
)

// notebookRow is one notebook of the Jupyter web app's list: its state as Kubeflow's JWA shows it
// (running, waiting, stopped, culled, failed) and its culling state from the notebook's annotations.
type notebookRow struct {
	notebooksv1.Notebook
	State        string // Running, Starting, Stopped, Culled, Failed, ...
	Reason       string
	Message      string
	Running      bool
	Stopped      bool
	Culled       bool
	LastActivity string // the culler's notebooks.kubeflow.org/last-activity
	LastCheck    string // notebooks.kubeflow.org/last_activity_check_timestamp
	StoppedAt    string // kubeflow-resource-stopped
	Image        string
	CPU, Memory  string
}

// rowOf derives a notebook's row: the true condition gives the state, the annotations the culling state.
func rowOf(nb notebooksv1.Notebook) notebookRow {
	row := notebookRow{Notebook: nb, State: "Unknown"}
	for _, c := range nb.Status.Conditions {
		if c.Status != "True" {
			continue
		}
		row.State, row.Reason, row.Message = c.Type, c.Reason, c.Message
	}
	ann := nb.Metadata.Annotations
	row.LastActivity = stamp(ann[notebooksv1.AnnotationLastActivity])
	row.LastCheck = stamp(ann[notebooksv1.AnnotationLastActivityCheck])
	row.StoppedAt = stamp(ann[notebooksv1.AnnotationStopped])
	_, row.Stopped = ann[notebooksv1.AnnotationStopped]
	row.Running = nb.Status.URL != "" && row.State == notebooksv1.ConditionRunning
	switch {
	case row.Reason == notebooksv1.ReasonCulled:
		row.State, row.Culled = "Culled", true
	case row.Stopped || row.Reason == notebooksv1.ReasonStopped:
		row.State = "Stopped"
	case row.State == notebooksv1.ConditionWaiting:
		row.State = "Starting"
		if row.Reason == notebooksv1.ReasonCrashLoopBackOff || row.Reason == notebooksv1.ReasonRestarting {
			row.State = "Restarting"
		}
	case row.State == notebooksv1.ConditionTerminated:
		row.State = "Failed"
	}
	if cs := nb.Spec.Template.Spec.Containers; len(cs) > 0 {
		row.Image = cs[0].Image
		row.CPU = cs[0].Resources.Requests["cpu"]
		row.Memory = cs[0].Resources.Requests["memory"]
	}
	return row
}

// stamp shows an RFC 3339 annotation as the dashboard writes times ("" stays "").
func stamp(s string) string {
	if s == "" {
		return ""
	}
	if t, err := time.Parse(time.RFC3339Nano, s); err == nil {
		return t.UTC().Format("2006-01-02 15:04:05Z")
	}
	return s
}

// notebookConnect opens a running notebook: a 303 to its proxied path /notebook/<ns>/<name>/ on this
// site. No token goes in that URL: the browser's sign-in cookie (HttpOnly, SameSite=Strict, path /,
// the cookie the gateway accepts on the notebook proxy's browser route) authenticates it, and the
// notebooks proxy replaces it with the server's own Jupyter token and strips it before the request
// reaches Jupyter. A notebook that is not running sends the user back to the list with the reason.
func (a *App) notebookConnect(w http.ResponseWriter, r *http.Request) {
	ns, name := r.PathValue("ns"), r.PathValue("name")
	c, err := a.callerFor(r)
	if err != nil {
		a.fail(w, r, "Notebook", err)
		return
	}
	var nb notebooksv1.Notebook
	if err := c.getJSON(r.Context(), "/apis/notebooks/v1/namespaces/"+url.PathEscape(ns)+"/notebooks/"+url.PathEscape(name), &nb); err != nil {
		a.fail(w, r, "Notebook "+ns+"/"+name, err)
		return
	}
	row := rowOf(nb)
	want := notebooksv1.PathPrefix(nb.Metadata.Namespace, nb.Metadata.Name)
	if !row.Running || nb.Status.URL != want || strings.Contains(nb.Status.URL, "?") {
		a.render(w, r, http.StatusConflict, "error", view{Title: "Notebook " + ns + "/" + name,
			Error: "The notebook is not running (" + row.State + "): start it on the notebooks page, then connect."})
		return
	}
	http.Redirect(w, r, want, http.StatusSeeOther)
}
