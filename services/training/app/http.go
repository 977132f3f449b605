package app

import (
	"errors"
	"fmt"
	"io"
	"net/http"
	"os"
	"sort"
	"strconv"
	"strings"
	"time"

	"go.temporal.io/api/serviceerror"
	"go.temporal.io/api/workflowservice/v1"

	"github.com/sluice-ml/sluice/libs/artifacts"
	"github.com/sluice-ml/sluice/libs/platform"
	"github.com/sluice-ml/sluice/services/training/api/jobspec"
	"github.com/sluice-ml/sluice/services/training/api/trainingv1"
	"github.com/sluice-ml/sluice/services/training/internal/lifecycle"
)

// prefix of every training route.
const prefix = "/apis/training/v1/namespaces/{ns}/jobs"

// JobCreated is the answer of POST .../jobs (201).
type JobCreated struct {
	Kind       string `json:"kind"`
	Namespace  string `json:"namespace"`
	Name       string `json:"name"`
	WorkflowID string `json:"workflowId"`
}

// JobList is the answer of GET .../jobs.
type JobList struct {
	Jobs []trainingv1.JobView `json:"jobs"`
}

// Routes registers the REST API under /apis/training/v1/namespaces/{ns}/jobs:
// POST (a TFJob or PyTorchJob, YAML or JSON), GET list, GET/DELETE /{name},
// POST /{name}/suspend, POST /{name}/resume, GET /{name}/logs?replica=worker-0[&attempt=N].
//
// The kind is part of a job's identity (a TFJob and a PyTorchJob may share
// a name): every /{name} route takes ?kind=TFJob|PyTorchJob (also tfjob,
// pytorchjob), needed only when both kinds have a job of that name (409
// otherwise); GET list takes it as a filter.
func (a *App) Routes(mux *http.ServeMux) {
	mux.HandleFunc("POST "+prefix, a.createJob)
	mux.HandleFunc("GET "+prefix, a.listJobs)
	mux.HandleFunc("GET "+prefix+"/{name}", a.getJob)
	mux.HandleFunc("DELETE "+prefix+"/{name}", a.deleteJob)
	mux.HandleFunc("POST "+prefix+"/{name}/suspend", a.control(trainingv1.SignalSuspend))
	mux.HandleFunc("POST "+prefix+"/{name}/resume", a.control(trainingv1.SignalResume))
	mux.HandleFunc("GET "+prefix+"/{name}/logs", a.jobLogs)
}

// httpError maps an error to a status code once, here. Invalid jobs answer
// 400 with {"error", "errors": [{"field","detail"}]}.
func httpError(w http.ResponseWriter, err error) {
	var inv *jobspec.InvalidError
	var nf *serviceerror.NotFound
	switch {
	case errors.As(err, &inv):
		platform.WriteJSON(w, http.StatusBadRequest, map[string]any{"error": inv.Error(), "errors": inv.Errors})
	case errors.Is(err, ErrNotFound), errors.As(err, &nf), errors.Is(err, artifacts.ErrNotFound), errors.Is(err, os.ErrNotExist):
		platform.WriteError(w, http.StatusNotFound, err)
	case errors.Is(err, ErrExists), errors.Is(err, ErrFinished), errors.Is(err, ErrAmbiguous):
		platform.WriteError(w, http.StatusConflict, err)
	default:
		platform.WriteError(w, http.StatusInternalServerError, err)
	}
}

// maxJobBytes bounds a job document.
const maxJobBytes = 8 << 20

func (a *App) createJob(w http.ResponseWriter, r *http.Request) {
	body, err := platform.ReadBody(w, r, maxJobBytes)
	if err != nil {
		platform.WriteDecodeError(w, "create job", err) // 413 naming the limit, or 400
		return
	}
	job, err := parse(body, r.PathValue("ns"))
	if err != nil {
		httpError(w, err)
		return
	}
	if _, err := a.create(r.Context(), job, ""); err != nil {
		httpError(w, err)
		return
	}
	meta := job.Meta()
	platform.WriteJSON(w, http.StatusCreated, JobCreated{Kind: job.Kind(), Namespace: meta.Namespace, Name: meta.Name,
		WorkflowID: trainingv1.WorkflowID(job.Kind(), meta.Namespace, meta.Name)})
}

// kindParam is the request's ?kind= (KindTFJob, KindPyTorchJob or "").
func kindParam(r *http.Request) (string, error) {
	s := r.URL.Query().Get("kind")
	if s == "" {
		return "", nil
	}
	if k := trainingv1.KindOf(s); k != "" {
		return k, nil
	}
	return "", &jobspec.InvalidError{Kind: "", Name: r.PathValue("name"), Errors: []jobspec.FieldError{{Field: "kind",
		Detail: fmt.Sprintf("%q is not a job kind (want TFJob or PyTorchJob)", s)}}}
}

func (a *App) getJob(w http.ResponseWriter, r *http.Request) {
	kind, err := kindParam(r)
	if err != nil {
		httpError(w, err)
		return
	}
	v, err := a.get(r.Context(), kind, r.PathValue("ns"), r.PathValue("name"))
	if err != nil {
		httpError(w, err)
		return
	}
	platform.WriteJSON(w, http.StatusOK, v)
}

// listJobs lists the namespace's jobs that are not deleted, newest first.
func (a *App) listJobs(w http.ResponseWriter, r *http.Request) {
	ns := r.PathValue("ns")
	kind, err := kindParam(r)
	if err != nil {
		httpError(w, err)
		return
	}
	idPrefix := trainingv1.LegacyWorkflowID(ns, "")
	seen := map[string]bool{}
	out := JobList{Jobs: []trainingv1.JobView{}}
	var token []byte
	for page := 0; page < 20; page++ {
		resp, err := a.d.Temporal.ListWorkflow(r.Context(), &workflowservice.ListWorkflowExecutionsRequest{
			Namespace: a.d.Namespace, PageSize: 200, NextPageToken: token,
			Query: fmt.Sprintf("WorkflowType = '%s'", trainingv1.WorkflowType),
		})
		if err != nil {
			httpError(w, err)
			return
		}
		for _, e := range resp.Executions {
			id := e.Execution.WorkflowId
			if !strings.HasPrefix(id, idPrefix) || seen[id] {
				continue
			}
			seen[id] = true
			_, _, name, ok := trainingv1.ParseWorkflowID(id)
			if !ok {
				continue
			}
			rec, err := a.describe(r.Context(), id, ns, name)
			if err != nil || rec == nil || rec.deleted || (kind != "" && rec.kind != "" && rec.kind != kind) {
				continue
			}
			v, err := a.view(r.Context(), rec)
			if err != nil || (kind != "" && v.Kind != kind) {
				continue // deleted, or gone since listed
			}
			out.Jobs = append(out.Jobs, v)
		}
		token = resp.NextPageToken
		if len(token) == 0 {
			break
		}
	}
	sort.SliceStable(out.Jobs, func(i, j int) bool {
		if out.Jobs[i].Name != out.Jobs[j].Name {
			return out.Jobs[i].Name < out.Jobs[j].Name
		}
		return out.Jobs[i].Kind < out.Jobs[j].Kind
	})
	platform.WriteJSON(w, http.StatusOK, out)
}

func (a *App) deleteJob(w http.ResponseWriter, r *http.Request) {
	ns, name := r.PathValue("ns"), r.PathValue("name")
	kind, err := kindParam(r)
	if err != nil {
		httpError(w, err)
		return
	}
	if err := a.remove(r.Context(), kind, ns, name); err != nil {
		httpError(w, err)
		return
	}
	platform.WriteJSON(w, http.StatusOK, map[string]any{"namespace": ns, "name": name, "kind": kind, "deleted": true})
}

func (a *App) control(sig string) http.HandlerFunc {
	return func(w http.ResponseWriter, r *http.Request) {
		ns, name := r.PathValue("ns"), r.PathValue("name")
		kind, err := kindParam(r)
		if err != nil {
			httpError(w, err)
			return
		}
		if err := a.signal(r.Context(), kind, ns, name, sig); err != nil {
			httpError(w, err)
			return
		}
		platform.WriteJSON(w, http.StatusAccepted, map[string]any{"namespace": ns, "name": name, "signal": sig})
	}
}

// jobLogs serves one replica attempt's log as text/plain: the stored object
// lifecycle.LogKey, or while the attempt runs
// the local file being written. attempt defaults to the replica's latest.
func (a *App) jobLogs(w http.ResponseWriter, r *http.Request) {
	ns, name := r.PathValue("ns"), r.PathValue("name")
	kind, err := kindParam(r)
	if err != nil {
		httpError(w, err)
		return
	}
	rec, err := a.resolve(r.Context(), kind, ns, name)
	if err != nil {
		httpError(w, err)
		return
	}
	v, err := a.view(r.Context(), rec)
	if err != nil {
		httpError(w, err)
		return
	}
	want := r.URL.Query().Get("replica")
	var rep *trainingv1.ReplicaView
	var names []string
	for i := range v.Replicas {
		names = append(names, v.Replicas[i].LogName())
		if v.Replicas[i].LogName() == want || v.Replicas[i].Name == want {
			rep = &v.Replicas[i]
		}
	}
	if rep == nil {
		httpError(w, &jobspec.InvalidError{Kind: v.Kind, Name: name, Errors: []jobspec.FieldError{{Field: "replica",
			Detail: fmt.Sprintf("%q is not a replica of this job (want one of %s)", want, strings.Join(names, ", "))}}})
		return
	}
	attempt := rep.Attempt
	if s := r.URL.Query().Get("attempt"); s != "" {
		n, err := strconv.Atoi(s)
		if err != nil || n < 1 || n > rep.Attempt {
			httpError(w, &jobspec.InvalidError{Kind: v.Kind, Name: name, Errors: []jobspec.FieldError{{Field: "attempt",
				Detail: fmt.Sprintf("must be between 1 and %d", rep.Attempt)}}})
			return
		}
		attempt = n
	}
	if attempt == 0 {
		httpError(w, fmt.Errorf("%w: replica %s has not started", ErrNotFound, rep.LogName()))
		return
	}
	w.Header().Set("Content-Type", "text/plain; charset=utf-8")
	uid := string(v.Job.Meta().UID)
	ks := rec.kindSegment()
	rc, _, err := a.d.Artifacts.Get(r.Context(), lifecycle.LogKey(ns, ks, name, uid, rep.LogName(), attempt))
	if errors.Is(err, artifacts.ErrNotFound) {
		f, ferr := os.Open(lifecycle.LocalLogPath(a.dataDir, ns, ks, name, uid, rep.LogName(), attempt))
		if ferr != nil {
			httpError(w, fmt.Errorf("%w: no log for %s attempt %d (the latest %d attempts' logs are kept)", ErrNotFound, rep.LogName(), attempt, lifecycle.KeepAttemptLogs))
			return
		}
		defer f.Close()
		fi, _ := f.Stat()
		http.ServeContent(w, r, "", fi.ModTime(), f)
		return
	}
	if err != nil {
		httpError(w, err)
		return
	}
	defer rc.Close()
	w.Header().Set("Last-Modified", time.Now().UTC().Format(http.TimeFormat))
	_, _ = io.Copy(w, rc)
}
